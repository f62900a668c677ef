"""`python:<module>:<function>` returning torch Datasets: a map-style `Dataset` (mlt splits it
by index, stratified by label) or a dict of "train"/"val"/"test" Datasets (the user's split;
items with identical content in two of them are counted as overlap). A `collate_fn` may come
along as the dict's "collate_fn" or the Dataset's attribute.

Every item is read once at `mlt plan` to check its types and hash its content: an item must be
`(input, label)` with a tensor/array input and an int label (a float for regression). Each read
is seeded from its index (python, numpy and torch randomness, as training seeds its reads), so
a Dataset that draws random numbers in `__getitem__` (noise, augmentation) hashes the same in
every command: its split fingerprints would otherwise change on every read.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from mltrainer.errors import DataError

SPLIT_KEYS = ("train", "val", "test")


def _split_key(result: dict[str, Any], name: str) -> str | None:
    """The key of split `name` in a returned dict: "val" may be "validation", "valid" or
    "dev", as in a DatasetDict (`SPLIT_NAMES`)."""
    from mltrainer.data._split import SPLIT_NAMES

    return next((k for k in SPLIT_NAMES[name] if k in result), None)
HASH_SEED = 0  # the per-item seeds of the reads that hash items: fixed, not the run's seed


def is_dataset_result(result: Any) -> bool:
    import sys

    torch = sys.modules.get("torch")
    if torch is None:
        return False
    ds = torch.utils.data.Dataset
    if isinstance(result, ds):
        return True
    return isinstance(result, dict) and any(isinstance(result.get(_split_key(result, k)), ds)
                                            for k in SPLIT_KEYS)


class Joined:
    """Several Datasets read as one, by global index."""

    def __init__(self, parts: list[Any]) -> None:
        self.parts = parts
        self.offsets = np.cumsum([0] + [len(p) for p in parts])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, i: int) -> Any:
        k = int(np.searchsorted(self.offsets, i, side="right") - 1)
        return self.parts[k][i - int(self.offsets[k])]


def items_from_datasets(result: Any, task: str, where: str, data_hash: str) -> Any:
    import torch

    from mltrainer.data._items import ItemData
    from mltrainer.data._itemsets import item_seed, rng_states_kept, seed_item

    collate = None
    given = None
    starts: Any = None  # a given split: where each split's items begin
    if isinstance(result, dict):
        dataset_type = torch.utils.data.Dataset
        keys = {k: _split_key(result, k) for k in SPLIT_KEYS}
        missing = [k for k in SPLIT_KEYS if not isinstance(result.get(keys[k]), dataset_type)]
        if missing:
            raise DataError(f"{where}: the returned dict has no Dataset under "
                            f"{', '.join(map(repr, missing))}",
                            hint="return {'train': ds, 'val': ds, 'test': ds} ('val' may be "
                                 "'validation'; optionally 'collate_fn'), or one Dataset for mlt "
                                 "to split")
        parts = [result[keys[k]] for k in SPLIT_KEYS]
        collate = result.get("collate_fn")
        dataset: Any = Joined(parts)
        sizes = [len(p) for p in parts]
        starts = np.cumsum([0, *sizes])
        given = {k: np.arange(starts[i], starts[i + 1]) for i, k in enumerate(SPLIT_KEYS)}
    else:
        dataset = result
        collate = getattr(result, "collate_fn", None)
    n = _length(dataset, where)
    if n == 0:
        raise DataError(f"{where}: the Dataset is empty")
    labels = np.empty(n, dtype=np.float64)
    digests = np.empty((n, 32), dtype=np.uint8)

    def name_of(i: int) -> str:
        """Item i as the user indexes it: in its own split's Dataset when the split is given."""
        if given is None:
            return f"item {i}"
        k = int(np.searchsorted(starts, i, side="right")) - 1
        return f"{SPLIT_KEYS[k]} item {i - int(starts[k])}"

    first_shape = None
    batch_shapes: list[tuple[int, ...]] = []  # with a collate_fn: the distinct row shapes
    with rng_states_kept():  # the caller's random numbers are not shifted by the reads
        for i in range(n):
            try:
                seed_item(item_seed(HASH_SEED, i))
                item = dataset[i]
            except Exception as exc:
                past_end = isinstance(exc, IndexError)  # __len__ counts more than it holds?
                raise DataError(
                    f"{where}: {name_of(i)} cannot be read ({type(exc).__name__}: {exc})"
                    + (f"; __len__ says there are {n}" if past_end else ""),
                    hint="make __len__ return the number of items __getitem__ reads (indices "
                         "0 to len - 1)" if past_end else
                         "fix __getitem__ for that index, or leave the item out") from None
            x, y, shape = _check_item(item, name_of(i), task, where)
            if first_shape is None:
                first_shape = shape
            elif shape != first_shape and collate is None:
                # the default collate stacks a batch: items of two shapes would crash training
                raise DataError(
                    f"{where}: {name_of(i)}'s input has shape {shape} but {name_of(0)}'s has "
                    f"{first_shape}; without a collate_fn every item must have one shape",
                    hint="return inputs of one shape, or give a collate_fn (the dict's "
                         "'collate_fn' or the Dataset's collate_fn attribute)")
            if collate is not None and len(batch_shapes) < 2:
                row = _collated_row_shape(collate, item, name_of(i), where)
                if row is not None and row not in batch_shapes:
                    batch_shapes.append(row)
            labels[i] = y
            digests[i] = np.frombuffer(hashlib.sha256(x).digest(), np.uint8)
    class_labels = None
    if task == "classification":
        ints = labels.astype(np.int64)
        class_labels = list(range(int(ints.max()) + 1))
        _check_classes(ints, where)
        labels_out: np.ndarray = ints
    else:
        labels_out = labels.astype(np.float32)
    return ItemData(dataset=dataset, labels=labels_out, class_labels=class_labels,
                    digests=digests, data_hash=data_hash, modality="tensor",
                    describe=lambda i: f"{where} {name_of(i)}", given_splits=given,
                    collate_fn=collate, batch_shapes=batch_shapes or None)


def _collated_row_shape(collate: Any, item: Any, name: str, where: str
                        ) -> tuple[int, ...] | None:
    """The shape of one row of the input the collate_fn makes of item i alone (what the model
    gets, padded or cropped as the collate_fn does); None when its input is no tensor."""
    import torch

    try:
        batch = collate([item])
    except Exception as exc:
        raise DataError(f"{where}: the collate_fn fails on {name} ({type(exc).__name__}: "
                        f"{exc})", hint="it is called with a list of (input, label) items "
                                        "and returns (inputs, labels)") from None
    x = batch[0] if isinstance(batch, (tuple, list)) and len(batch) == 2 else batch
    return tuple(int(d) for d in x.shape[1:]) if isinstance(x, torch.Tensor) else None


def _length(dataset: Any, where: str) -> int:
    """`len(dataset)`, or a DataError saying why there is none (an IterableDataset, or a
    `__len__` that fails or returns no count: a float, a negative number)."""
    import torch

    if isinstance(dataset, torch.utils.data.IterableDataset):
        raise DataError(f"{where}: the Dataset is an IterableDataset (no length, no index)",
                        hint="return a map-style Dataset (with __len__ and __getitem__)")
    try:
        return len(dataset)
    except Exception as exc:
        raise DataError(f"{where}: the Dataset's length cannot be read (len() raised "
                        f"{type(exc).__name__}: {exc})",
                        hint="return a map-style Dataset whose __len__ returns the number of "
                             "items, an int >= 0") from None


def _check_classes(labels: np.ndarray, where: str) -> None:
    """A Dataset's labels are class indices 0..K-1 and every class has an item: one class is
    no classifier, and a class no item holds (labels 1..K, or 0 and 100) would be an output
    the model can never learn, in every metric's average."""
    counts = np.bincount(labels)
    present = np.flatnonzero(counts)
    if len(present) < 2:
        raise DataError(f"{where}: every item has label {int(present[0])}; a classifier needs "
                        "at least 2 classes",
                        hint="return the items of the other classes too (or set task: "
                             "regression for a numeric target)")
    missing = np.flatnonzero(counts == 0)
    if len(missing):
        shown = ", ".join(map(str, missing[:5].tolist())) + (", ..." if len(missing) > 5 else "")
        raise DataError(
            f"{where}: the labels run from {int(present[0])} to {int(present[-1])} but no item "
            f"has label {shown} ({len(missing)} of {len(counts)} class indices unused)",
            hint="number the classes 0..K-1 with no gap (labels from 1: subtract 1)")


def _check_item(item: Any, name: str, task: str, where: str
                ) -> tuple[bytes, float, tuple[int, ...]]:
    """(the input's bytes and shape for its digest, the label as a float, the shape), or a
    DataError naming the item: not an (input, label) pair, an input that is no float (or
    uint8) tensor or holds NaN/inf, a label that is no class index (or no finite number)."""
    import torch

    fix = "a Dataset must return (input tensor, label) with an int label"
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise DataError(f"{where}: {name} is a {type(item).__name__}, not an (input, label) "
                        "pair", hint=fix)
    x, y = item
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor) or not (x.is_floating_point() or x.dtype == torch.uint8):
        picture = type(x).__module__.startswith("PIL.")
        raise DataError(f"{where}: {name}'s input is a {type(x).__name__}"
                        f"{'' if not isinstance(x, torch.Tensor) else ' of ' + str(x.dtype)}, "
                        "not a float tensor",
                        hint="give the Dataset a transform that ends in a tensor: "
                             "torchvision.transforms.v2.Compose([v2.ToImage(), "
                             "v2.ToDtype(torch.float32, scale=True)])" if picture else fix)
    if x.dim() == 0:
        raise DataError(f"{where}: {name}'s input is a single number (a 0-d tensor); a "
                        "model takes a vector of features per item",
                        hint="return x.reshape(1) (one feature) or the item's features as a "
                             "1-d tensor")
    if x.is_floating_point():
        bad = int((~torch.isfinite(x)).sum())
        if bad:
            raise DataError(f"{where}: {name}'s input holds {bad} non-finite value(s) (NaN "
                            "or inf); mlt trains on a Dataset's tensors as they are",
                            hint="replace missing or infinite values in your Dataset (impute, "
                                 "or drop the item)")
    if isinstance(y, torch.Tensor):
        if y.numel() != 1:
            raise DataError(f"{where}: {name}'s label has shape {tuple(y.shape)}, not a "
                            "scalar", hint=fix)
        y = y.item()
    if isinstance(y, np.generic):
        y = y.item()
    if task == "classification":
        if isinstance(y, bool) or not isinstance(y, int) or y < 0:
            raise DataError(f"{where}: {name}'s label is {y!r} ({type(y).__name__}); a "
                            "classification label must be a class index 0, 1, 2, ...",
                            hint=fix)
    elif not isinstance(y, (int, float)) or isinstance(y, bool) or not np.isfinite(y):
        raise DataError(f"{where}: {name}'s target is {y!r} ({type(y).__name__}), not a "
                        "finite number", hint="a regression Dataset must return (input tensor, "
                                              "finite number)")
    shape = tuple(x.shape)
    return x.detach().cpu().contiguous().numpy().tobytes() + str(shape).encode(), \
        float(y), shape
