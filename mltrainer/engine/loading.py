"""The DataLoader-backed data path, beside `batching.InMemoryBatches` (same interface).

Items (image files, texts, the user's Dataset) are read and preprocessed per item by a
`torch.utils.data.DataLoader` with `data.loader`'s workers. Reproducible by construction:

- the epoch's order is a permutation drawn from the run's shuffle generator (checkpointed, as
  for in-memory batches); the DataLoader only reads the batches of that order;
- each item's augmentation randomness is seeded from (a hash of the epoch's order, the item's
  position), so it does not depend on which worker loads it, how many workers there are, or
  whether the run was resumed in the middle of the epoch;
- resuming at batch k of an epoch restarts the loader at batch k of the same order.

A worker that raises names the item; one that dies names the item it was loading.
"""

from __future__ import annotations

import hashlib
import math
import re
import weakref
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from mltrainer.data._itemsets import ITEM_ERROR, SeededItems, item_seed
from mltrainer.engine.batching import SHUFFLE_SEED_OFFSET
from mltrainer.errors import DataError

EVAL_BATCH = 256  # items per forward pass when predicting a split: bounds memory only
_ITEM_RE = re.compile(re.escape(ITEM_ERROR) + r"\[(.*)\]")
_PID_RE = re.compile(r"pid\(s\) ([\d, ]+)")


class _BatchList:
    """A batch sampler whose batches are set per epoch (persistent workers keep running)."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[int, int]]] = []

    def __iter__(self) -> Any:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class _Tracked(SeededItems):
    """Records (pid, item) of what each worker is loading, in shared memory."""

    def __init__(self, *args: Any, slots: torch.Tensor, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.slots = slots

    def _load(self, key: tuple[int, ...]) -> tuple[Any, ...]:
        info = torch.utils.data.get_worker_info()
        if info is not None:
            import os

            self.slots[info.id, 0] = os.getpid()
            self.slots[info.id, 1] = key[0]
        return super()._load(key)


def _worker_init(worker_id: int) -> None:
    import random

    seed = torch.initial_seed() % 2**32  # DataLoader's base seed (from its generator) + id
    random.seed(seed)
    np.random.seed(seed)


def make_loader(dataset: Any, sampler: _BatchList, collate: Any, loader_cfg: Any, seed: int
                ) -> DataLoader:
    workers = int(loader_cfg.num_workers)
    extra: dict[str, Any] = {}
    if workers > 0:
        extra["persistent_workers"] = bool(loader_cfg.persistent_workers)
        if loader_cfg.prefetch_factor is not None:
            extra["prefetch_factor"] = int(loader_cfg.prefetch_factor)
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate, num_workers=workers,
                      pin_memory=bool(loader_cfg.pin_memory) and torch.cuda.is_available(),
                      worker_init_fn=_worker_init if workers else None,
                      generator=torch.Generator().manual_seed(seed), **extra)


def to_device(x: Any, device: torch.device) -> Any:
    if isinstance(x, dict):
        return {k: v.to(device, non_blocking=True) for k, v in x.items()}
    return x.to(device, non_blocking=True)


class _WithEvalInputs:
    """The training reader's collate when its keys may ask for evaluation inputs
    (`LoaderBatches.evaluate_too`, `SeededItems._load`): the training items' batch as the
    pipeline collates it, plus (the indices, their evaluation inputs stacked) when any sample
    carries one (a training item's, (input, label, (index, x)), or an item evaluated alone,
    ((index, x),), which is not part of the training batch)."""

    def __init__(self, collate: Any) -> None:
        self.collate = collate

    def __call__(self, samples: list[tuple[Any, ...]]) -> tuple[Any, ...]:
        if all(len(s) == 2 for s in samples):
            return self.collate(samples)
        batch = self.collate([s[:2] for s in samples if len(s) > 1])
        extra = [s[-1] for s in samples if len(s) != 2]
        return (*batch, ([i for i, _ in extra], torch.stack([x for _, x in extra])))


class _Reader:
    """One DataLoader over a split's items, with error translation."""

    def __init__(self, split: Any, train: bool, loader_cfg: Any, seed: int) -> None:
        workers = max(1, int(loader_cfg.num_workers))
        self.items = split.items
        self.slots = torch.full((workers, 2), -1, dtype=torch.int64).share_memory_()
        self.sampler = _BatchList()
        self.dataset = _Tracked(split.items, split.pipeline, train, slots=self.slots)
        collate = split.pipeline.collate  # not the split: the reader must not keep it alive
        if train and hasattr(split.pipeline, "load_twice"):
            collate = _WithEvalInputs(collate)
        # nor itself (a cycle): a reader nobody holds stops its workers at once, never in a
        # later garbage collection, maybe inside a worker forked meanwhile that inherited it
        dataset, sampler = self.dataset, self.sampler
        self._make = lambda: make_loader(dataset, sampler, collate, loader_cfg, seed)
        self.loader: DataLoader | None = self._make()

    def iterate(self, batches: list[list[tuple[int, int]]]) -> Any:
        self.sampler.batches = batches
        if self.loader is None:
            self.loader = self._make()
        return iter(self.loader)

    def release_workers(self) -> None:
        """No split needs it any more: the loader (and its persistent workers) goes."""
        self.loader = None

    def next(self, it: Any) -> Any:
        try:
            return next(it)
        except StopIteration:
            raise
        except RuntimeError as exc:
            raise self._explain(exc) from None

    def _explain(self, exc: RuntimeError) -> Exception:
        text = str(exc)
        found = _ITEM_RE.search(text)
        if found:
            return DataError(found.group(1), hint="fix or remove that item, then re-run")
        pids = _PID_RE.search(text)
        if pids:
            dead = {int(p) for p in pids.group(1).replace(" ", "").split(",") if p}
            items = [int(i) for pid, i in self.slots.tolist() if pid in dead and i >= 0]
            what = ", ".join(self.items.describe(i) for i in items) or "an unknown item"
            return DataError(f"a data loader worker died while loading {what} "
                             f"({text.strip().splitlines()[0]})",
                             hint="check that item (or run with data.loader.num_workers: 0 "
                                  "to see the error in the main process)")
        return exc


class LoaderBatches:
    """Batches of a lazily read split, in the order `new_order()` drew; see the module doc."""

    def __init__(self, split: Any, batch_size: int, device: torch.device, seed: int,
                 loader_cfg: Any, regression: bool, *, accum: int = 1, rank: int = 0,
                 world: int = 1) -> None:
        n = len(split)
        if n == 0:
            raise ValueError("the training split has no rows")
        self.split = split
        self.n = n
        # one step takes batch_size x accum x world items of the order; process `rank` every
        # world-th of them (padded from the start, as DistributedSampler): as InMemoryBatches
        self.batch_size = batch_size * accum * world
        self.rank, self.world = rank, world
        step_rows = self.batch_size
        rows = n - 1 if step_rows > 1 and n % step_rows == 1 and n > 1 else n
        self.steps_per_epoch = math.ceil(rows / step_rows)
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(seed + SHUFFLE_SEED_OFFSET)
        self._device = device
        self._ydtype = torch.float32 if regression else torch.int64
        self._reader = _Reader(split, True, loader_cfg, seed)
        self._it: Any = None
        self._order: torch.Tensor | None = None
        self._next = -1
        self._harvests: list[_Harvest] = []

    def evaluate_too(self, part: Any) -> bool:
        """Have the training workers also return the evaluation inputs of `part` in the first
        epoch this process trains, until `forward_split(part, keep=True)` takes them as its
        kept batches: that epoch's evaluation then starts no pool of workers of its own (its
        fork and start cost more than the decoding), and reads nothing from disk.
        - `part` a split of the training items (the train-metrics subset): from the decode
          the workers make for training anyway (`ImagePipeline.load_twice`), so no item is
          decoded a second time;
        - `part` of items it does not train on (val): read as an evaluation reader reads them
          (seed 0, `load(raw, False)`), spread evenly over the epoch's batches, while the
          main process trains.
        Exact (an item's evaluation input is a function of its content alone), for images only
        (their evaluation batches are stacks of items: `Pipeline.concatenates`), on one
        process, and only while the parts' inputs fit together in the memory kept for
        evaluation (`KEEP_EVAL_MB`, which bounds what is held meanwhile). Items the epoch does
        not read (a resume inside it, the dropped last item) are read by the evaluation as
        before. True when it will."""
        pipeline = self.split.pipeline
        shape = getattr(pipeline, "input_shape", None)
        if (self.world > 1 or not hasattr(pipeline, "load_twice") or shape is None
                or part.pipeline is not pipeline or part.items is not self.split.items
                or not len(part)):
            return False
        entry = _EVAL_READERS.get(id(part))
        if entry is not None and entry.split() is part and entry.kept:
            return False  # an earlier run in this process kept them already
        wanted = frozenset(int(i) for i in part.indices)
        trained = frozenset(int(i) for i in self.split.indices)
        if not (wanted <= trained or wanted.isdisjoint(trained)):
            return False
        size = 4 * math.prod(shape)
        held = sum(len(h.wanted) for h in self._harvests) * size
        if held + len(wanted) * size > KEEP_EVAL_MB * 2**20 - _kept_bytes():
            return False
        harvest = _HARVESTS[id(part)] = _Harvest(part, wanted, alone=not wanted <= trained)
        self._harvests.append(harvest)
        return True

    def new_order(self) -> torch.Tensor:
        return torch.randperm(self.n, generator=self.generator)

    def batch(self, order: torch.Tensor, index: int) -> tuple[Any, torch.Tensor]:
        if self._it is None or order is not self._order or index != self._next:
            self._start(order, index)
        got = self._reader.next(self._it)
        if len(got) > 2:
            items, inputs = got[2]
            private = inputs.clone()  # a worker's batch lives in shared memory (a file each)
            for harvest in self._harvests:
                harvest.add(items, private)
            got = got[:2]
        xb, yb = got
        self._next = index + 1
        return (to_device(xb, self._device),
                torch.as_tensor(yb).to(self._device, self._ydtype))

    def _start(self, order: torch.Tensor, index: int) -> None:
        positions = order.cpu().numpy().astype(np.int64)
        epoch_seed = int.from_bytes(hashlib.sha256(positions.tobytes()).digest()[:8],
                                    "little") >> 1
        indices = self.split.indices
        bs = self.batch_size
        self._harvests = [h for h in self._harvests if not h.taken]
        twice = frozenset().union(*(h.wanted for h in self._harvests if not h.alone))
        batches = [[(int(indices[p]), item_seed(epoch_seed, int(p)))
                    + ((True,) if int(indices[p]) in twice else ())
                    for p in self._shard(positions, positions[k * bs:(k + 1) * bs])]
                   for k in range(index, self.steps_per_epoch)]
        alone = sorted(frozenset().union(*(h.wanted for h in self._harvests if h.alone)))
        for k, batch in enumerate(batches):  # spread evenly over the batches left to read
            share = alone[k * len(alone) // len(batches):(k + 1) * len(alone) // len(batches)]
            batch.extend((i, 0, False) for i in share)
        self._it = self._reader.iterate(batches)
        self._order = order
        self._next = index

    def _shard(self, order: np.ndarray, step: np.ndarray) -> np.ndarray:
        if self.world == 1:
            return step
        short = -len(step) % self.world
        if short:
            step = np.concatenate([step, order[:short]])
        return step[self.rank::self.world]

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])


class _Harvest:
    """The evaluation inputs of a split's items as the training workers return them
    (`LoaderBatches.evaluate_too`), for its first `forward_split(keep=True)`. `alone`: items
    the training does not read (val's), asked for on their own."""

    def __init__(self, part: Any, wanted: frozenset[int], alone: bool) -> None:
        self.part = weakref.ref(part)
        self.wanted = wanted
        self.alone = alone
        self.inputs: dict[int, torch.Tensor] = {}
        self.taken = False  # forward_split took what there was: the workers stop returning

    def add(self, items: list[int], inputs: torch.Tensor) -> None:
        if self.taken:
            return
        for k, item in enumerate(items):
            if int(item) in self.wanted:
                self.inputs[int(item)] = inputs[k]

    def take(self, entry: _EvalSplit, batches: list[list[tuple[int, int]]],
             batch_size: int) -> None:
        """The kept batches forward_split would keep after reading: the prefix of `batches`
        whose items all came, stacked as the pipeline collates them (`concatenates`), as far
        as the budget allows; the rest is read from disk as before."""
        self.taken = True
        inputs, self.inputs = self.inputs, {}
        budget = KEEP_EVAL_MB * 2**20 - _kept_bytes()
        for batch in batches:
            if any(i not in inputs for i, _ in batch):
                return
            xb = torch.stack([inputs[i] for i, _ in batch])
            size = _nbytes(xb) or 0
            if size > budget:
                entry.kept_full = True
                return
            entry.kept.append(xb)
            entry.kept_bytes += size
            entry.kept_batch = batch_size
            budget -= size


_HARVESTS: weakref.WeakValueDictionary[int, _Harvest] = weakref.WeakValueDictionary()


class _EvalSplit:
    """One split's evaluation passes: its input batches kept in memory (a prefix, in order),
    and the reader of the rest. Splits of the same items, pipeline and loader settings (val
    and the train subset the loop evaluates every epoch) share one reader, so one pool of
    workers reads for both: evaluation seeds every item alike, so who reads an item does not
    change its input."""

    def __init__(self, split: Any) -> None:
        self.split = weakref.ref(split)  # the entry of a split nobody holds any more is dropped
        self.reader: _Reader | None = None
        self.kept: list[Any] = []
        self.kept_bytes = 0
        self.kept_full = False  # a batch did not fit: keep no more
        self.kept_batch: int | None = None

    def open_reader(self, split: Any) -> _Reader:
        if self.reader is None:
            self.reader = next((e.reader for e in _EVAL_READERS.values()
                                if e.reader is not None and _same_source(e.split(), split)),
                               None) or _Reader(split, False, split.loader, 0)
        return self.reader

    def close_reader(self) -> None:
        reader, self.reader = self.reader, None
        if reader is not None and not any(e.reader is reader for e in _EVAL_READERS.values()):
            reader.release_workers()


def _same_source(a: Any, b: Any) -> bool:
    return a is not None and a.items is b.items and a.pipeline is b.pipeline \
        and a.loader == b.loader


def _forget(key: int) -> None:
    _EVAL_READERS.pop(key).close_reader()


_EVAL_READERS: dict[int, _EvalSplit] = {}
_EVAL_CACHE = 4  # splits kept (val and the train subset each epoch, a predict or two)
# Bytes of evaluation batches the training loop keeps in memory per process, all live splits
# together (val and the train subset it evaluates every epoch; `forward_split(keep=True)`).
KEEP_EVAL_MB = 256


def model_device(model: torch.nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _nbytes(x: Any) -> int | None:
    """Bytes of a collated batch's tensors; None when it holds anything else (not kept)."""
    if isinstance(x, torch.Tensor):
        return x.untyped_storage().nbytes()
    if type(x) is dict:
        x = list(x.values())
    if type(x) in (list, tuple):
        sizes = [_nbytes(v) for v in x]
        return None if any(s is None for s in sizes) else sum(sizes)  # type: ignore[misc]
    return None


def _private(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.clone()
    if type(x) is dict:
        return {k: _private(v) for k, v in x.items()}
    return type(x)(_private(v) for v in x)  # a list or tuple (`_nbytes` admits no other)


def _kept_bytes() -> int:
    return sum(r.kept_bytes for r in _EVAL_READERS.values())


def _reading_parts(split: Any) -> int:
    """Into how many reading batches one evaluation batch is cut: one per loader worker when
    the split's pipeline collates by stacking (`Pipeline.concatenates`: the concatenated parts
    are the batch collated whole, bit for bit), so every worker decodes a share of it at once,
    where one whole batch keeps one worker busy while the others wait (a split no larger than
    the batch, like val and the train subset, is one batch). Otherwise one."""
    workers = int(split.loader.num_workers)
    return workers if workers > 1 and getattr(split.pipeline, "concatenates", False) else 1


def _split_batch(batch: list[Any], parts: int) -> list[list[Any]]:
    size = -(-len(batch) // parts)
    return [batch[k:k + size] for k in range(0, len(batch), size)]


def _concat(parts: list[Any]) -> Any:
    """Collated batches joined along the batch dimension (tensors, or dicts/lists/tuples of
    them): what collating their items together gives, for a stacking collate."""
    first = parts[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(parts)
    if type(first) is dict:
        return {k: _concat([p[k] for p in parts]) for k in first}
    return type(first)(_concat(list(group)) for group in zip(*parts, strict=True))


@torch.no_grad()
def forward_split(model: torch.nn.Module, split: Any, batch_size: int = EVAL_BATCH, *,
                  keep: bool = False) -> torch.Tensor:
    """Outputs of `model` (eval mode, fp32) on every item of `split`, in split order.

    `keep` (the training loop's val and train-subset passes, every epoch): the collated input
    batches stay in memory, as far as `KEEP_EVAL_MB` per process allows, and later calls read
    only the rest from disk. Exact: evaluation applies no augmentation and seeds every item
    alike (seed 0), so an item's evaluation input is a function of its content alone."""
    for key in [k for k, e in _EVAL_READERS.items() if e.split() is None]:
        _forget(key)  # an earlier run's: its kept batches and workers go
    entry = _EVAL_READERS.get(id(split))
    if entry is None or entry.split() is not split:
        if entry is not None:
            _forget(id(split))
        entry = _EvalSplit(split)
        while len(_EVAL_READERS) >= _EVAL_CACHE:  # the oldest goes, and its workers with it
            _forget(next(iter(_EVAL_READERS)))
        _EVAL_READERS[id(split)] = entry
    device = model_device(model)
    idx = [int(i) for i in split.indices]
    batches = [[(i, 0) for i in idx[k:k + batch_size]] for k in range(0, len(idx), batch_size)]
    harvest = _HARVESTS.pop(id(split), None)
    if harvest is not None:  # epoch 1's train subset, decoded by the training workers
        if harvest.part() is split and keep and not entry.kept:
            harvest.take(entry, batches, batch_size)
        harvest.taken, harvest.inputs = True, {}
    was_training = model.training
    model.eval()
    kept = entry.kept if entry.kept_batch == batch_size else []
    try:
        outs = [model(to_device(xb, device)).float() for xb in kept]
        rest = batches[len(kept):]
        if rest:
            reader = entry.open_reader(split)
            parts = _reading_parts(split)
            it = reader.iterate([part for b in rest for part in _split_batch(b, parts)])
            keeping = keep and not entry.kept_full and entry.kept_batch in (None, batch_size)
            budget = KEEP_EVAL_MB * 2**20 - _kept_bytes()
            for batch in rest:
                read = [reader.next(it)[0] for _ in _split_batch(batch, parts)]
                xb = read[0] if len(read) == 1 else _concat(read)
                outs.append(model(to_device(xb, device)).float())
                if keeping:  # a prefix of the batches, in order
                    size = _nbytes(xb)
                    keeping = size is not None and size <= budget
                    if keeping:  # a private copy: a worker's batch lives in shared memory
                        entry.kept.append(_private(xb) if len(read) == 1 else xb)
                        entry.kept_bytes += size
                        entry.kept_batch = batch_size
                        budget -= size
                    else:
                        entry.kept_full = True
            if len(entry.kept) == len(batches) and entry.kept_batch == batch_size:
                entry.close_reader()  # every batch is kept: its workers go, unless shared
    finally:
        model.train(was_training)
    return torch.cat(outs) if outs else torch.empty(0)
