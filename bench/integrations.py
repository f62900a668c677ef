"""What MltCallback costs per optimisation step inside Lightning's and Hugging Face's loops, and
MltMonitor inside a hand-written PyTorch loop.

The same script (digits as `mlt plan` splits it, mlt's built-in MLP, adamw, batch 64, val every
epoch, no checkpoints, no logger, no progress bar) runs with and without the callback, in
alternating order in one process for several rounds, on one thread:

- lightning / lightning+mlt:  `lightning.Trainer.fit`, with `MltCallback` added in the second;
- hf / hf+mlt:                `transformers.Trainer.train` (`disable_tqdm`, `report_to="none"`,
                              the default `logging_steps`), with `MltCallback` added (which
                              takes each step's loss and gradient norm from the Trainer's
                              `training_step` and `_get_grad_norm`: no log of its own);
- lightning+empty:            the plain Lightning script with a callback that does nothing:
                              what Lightning's calling one more callback's hooks costs;
- hf+log:                     the plain HF script with a callback that only asks for a log
                              every step: what the Trainer's own per-step log costs (what
                              the callback's fallback, and earlier versions, pay);
- loop / loop+mlt:            a hand-written loop (the same DataLoader, model, adamw, a val
                              pass a epoch), with `MltMonitor` in the second (`mlt.step` after
                              each backward, `mlt.epoch` after each val pass, in a `with`);
- loop+empty:                 the same calls on a monitor whose methods do nothing: what the
                              calls themselves cost;
- the callbacks write the stream, per-layer statistics (every 10 steps or, measured too
  costly, less often), the global gradient norm (Lightning: every step or, measured to cost
  more than 0.1 % of the step, on a stride; HF computes its own every step), run all eight
  detectors online; checkpoints are off in both arms
  (`save_checkpoints=False`) because the plain scripts save none;
- with `--train-rows`, `+mlt+train` also measures the epoch events' `train`/`train_eval_loss`
  on the rows an mlt run would use (`train_subset`): one more forward pass an epoch, which
  mlt's own engine pays too.

    python bench/integrations.py [--epochs 8] [--rounds 7] [--hidden 256 128] [--batch 64]
                                 [--before REV] [--only lightning hf loop]

`--before main` adds "+before" arms: the callbacks as they are at that git revision, in the
same run, alternating with the others (before and after side by side); the rest of mltrainer
(detectors, stream) is this checkout's. `--before DIR`, DIR a `git archive` of a revision
extracted (`git archive main | tar -x -C DIR`), takes the whole package from there (renamed
`mlt_before`): the detectors' and the stream's changes counted too.

`--hidden 1024 1024 --batch 512` gives a ~20 ms step (the amortisation at a realistic size).
`--tile N` repeats the training rows N times an epoch: epochs N times longer (the default's are
17-20 steps) at the same step, so the per-epoch costs spread over more steps (extra
information: the headline figure is the default's).

Prints the median and best CPU time (`time.process_time`; `--wall` for wall time) per step of
each arm and the overhead: the median over rounds of (with / without - 1), each round's arms
run back to back (so a busy neighbour hits both), and the ratio of the medians. Target: <= 2 %.
Then `--hook-rounds` runs per framework (and per version, with `--before`, alternating) with
the callback's hooks timed from inside (the thread's CPU time in each hook per optimisation
step, the median of runs: on a busy machine a steadier figure than the end-to-end one; it
includes the timing's own clock reads, ~6 us each right after a training step: the same
hooks, empty, timed the same way alternating with them, give that floor, printed with the
figure net of it), and what the callback adapted to (the gradient norm and per-layer
statistics every N steps, their costs). With `--before`, also the median over rounds of each
round's difference (now - before), per hook: side by side, steadier than two medians. For the
loop the "hooks" are MltMonitor's `__enter__`, `step`, `epoch` and `__exit__` (the loop reads
`step`'s return, not `should_stop`, so every call of the monitor is timed); `--before` has no
loop arm where that revision has no `integrations/loop.py`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# The process's CPU time, not wall time: on a shared machine wall time mostly measures the
# neighbours (one thread: CPU time is the work this process did). --wall switches back.
CLOCK = time.process_time
LAST_STEPS = [0]  # optimisation steps of the last run
BATCH = [64]
TILE = [1]  # the training rows repeated this many times an epoch (--tile)
MADE: list[Any] = []  # the callbacks the last runs made (their monitors' adapted settings)
sys.path.insert(0, str(REPO))


def setup(hidden: list[int]) -> tuple[Any, Any]:
    from mltrainer.config import parse_config
    from mltrainer.data import prepare_data

    cfg = parse_config({"name": "bench", "task": "classification", "seed": 0,
                        "data": {"source": "sklearn:digits"},
                        "model": {"kind": "mlp", "hidden": hidden, "dropout": 0.0},
                        "goal": {"metric": "accuracy", "target": 0.9}})
    return cfg, prepare_data(cfg, REPO)


def train_rows(cfg: Any, bundle: Any) -> tuple[Any, Any]:
    from mltrainer.engine.loop import train_subset

    rows = train_subset(len(bundle.train.y), len(bundle.val.y), cfg.seed)
    return bundle.train.X[rows], bundle.train.y[rows]


BEFORE: dict[str, Any] = {}  # framework -> MltCallback of --before REV
FLOOR: dict[str, Any] = {}  # framework -> a callback with MltCallback's hooks, all empty


LOOP_HOOKS = ("__enter__", "step", "epoch", "__exit__")  # MltMonitor's, as the loop calls them


def hooks_of(kind: Any) -> list[str]:
    """The methods of `kind` a framework (or the hand-written loop) calls: its `on_*` hooks."""
    if kind.__name__.endswith("MltMonitor"):
        return list(LOOP_HOOKS)
    return [name for name in vars(kind) if name.startswith("on_")]


class NoMonitor:
    """The base of the loop's floor: takes MltMonitor's arguments, has no monitor."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass


def empty_like(kind: Any, base: Any) -> Any:
    """A `base` callback class with the same hooks as `kind` (`hooks_of`), each doing nothing:
    timed as `kind`'s are, what the timing itself and the framework's calls cost (the floor)."""
    def nothing(self: Any, *args: Any, **kwargs: Any) -> None:
        return None

    return type(f"Empty{kind.__name__}", (base,), {name: nothing for name in hooks_of(kind)})


def load_before(rev: str, tmp: Path) -> None:
    """The callbacks as they were at git revision `rev` (their three files, importing the rest
    of mltrainer from this checkout), or, when `rev` is a folder (a `git archive` of main,
    extracted), the whole `mltrainer` package there (the detectors, the stream, ... too),
    renamed `mlt_before`, as the "+before" arms: old and new in one run."""
    import importlib
    import re
    import shutil
    import subprocess

    if Path(rev).is_dir():
        shutil.copytree(Path(rev) / "mltrainer", tmp / "mlt_before",
                        ignore=shutil.ignore_patterns("__pycache__"))
        names = re.compile(r"\bmltrainer(?=\.)|(?<=^from )mltrainer\b|(?<=^import )mltrainer\b",
                           re.MULTILINE)
        for path in (tmp / "mlt_before").rglob("*.py"):
            path.write_text(names.sub("mlt_before", path.read_text()))
        sys.path.insert(0, str(tmp))
        BEFORE["lightning"] = importlib.import_module(
            "mlt_before.integrations.lightning").MltCallback
        BEFORE["hf"] = importlib.import_module("mlt_before.integrations.transformers").MltCallback
        with contextlib.suppress(ImportError):  # (a revision before the plain loop's API)
            BEFORE["loop"] = importlib.import_module("mlt_before.integrations.loop").MltMonitor
        return
    package = tmp / "mlt_before"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in ("_core", "_context", "lightning", "transformers", "loop"):
        shown = subprocess.run(["git", "-C", str(REPO), "show",
                                f"{rev}:mltrainer/integrations/{name}.py"],
                               capture_output=True, text=True)
        if shown.returncode != 0 and name == "loop":
            continue  # a revision before the plain loop's API
        shown.check_returncode()
        source = shown.stdout
        for module in ("_core", "_context"):
            source = source.replace(f"from mltrainer.integrations.{module} import",
                                    f"from mlt_before.{module} import")
        (package / f"{name}.py").write_text(source)
    sys.path.insert(0, str(tmp))
    BEFORE["lightning"] = importlib.import_module("mlt_before.lightning").MltCallback
    BEFORE["hf"] = importlib.import_module("mlt_before.transformers").MltCallback
    if (package / "loop.py").is_file():
        BEFORE["loop"] = importlib.import_module("mlt_before.loop").MltMonitor


def callbacks(kind: Any, cfg: Any, bundle: Any, arm: str, tmp: Path) -> list[Any]:
    if not arm:
        return []
    if arm == "+before":
        MADE[:] = [BEFORE["lightning" if "lightning" in kind.__module__ else "hf"](
            tmp / f"b{time.perf_counter_ns()}", task="classification", metric="accuracy",
            save_checkpoints=False, train_rows=None)]
        return list(MADE)
    if arm == "+floor":
        MADE[:] = []
        return [FLOOR["lightning" if "lightning" in kind.__module__ else "hf"]()]
    if arm == "+empty":
        from lightning.pytorch import Callback

        return [Callback()]  # what any callback costs: Lightning calls every hook on it
    if arm == "+log":
        from transformers import TrainerCallback

        class LogEveryStep(TrainerCallback):
            def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                control.should_log = True

        return [LogEveryStep()]
    rows = train_rows(cfg, bundle) if arm == "+mlt+train" else None
    MADE[:] = [kind(tmp / f"r{time.perf_counter_ns()}", task="classification", metric="accuracy",
                 save_checkpoints=False, train_rows=rows)]
    return list(MADE)


def lightning_run(cfg: Any, bundle: Any, epochs: int, arm: str, tmp: Path) -> float:
    from mltrainer.engine.entrypoint import frameworks_importable

    frameworks_importable()  # before the framework (a CPU torch with a CUDA torchvision)
    import lightning as L
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    from mltrainer.integrations.lightning import MltCallback
    from mltrainer.models import build_model

    class Module(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = build_model(cfg.model, bundle.spec)

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # rows -> logits (train rows)
            return self.net(x)

        def training_step(self, batch: Any, idx: int) -> torch.Tensor:
            return nn.functional.cross_entropy(self.net(batch[0]), batch[1])

        def validation_step(self, batch: Any, idx: int) -> None:
            logits = self.net(batch[0])
            self.log("val_loss", nn.functional.cross_entropy(logits, batch[1]))
            self.log("val_accuracy", (logits.argmax(1) == batch[1]).float().mean())

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.AdamW(self.parameters(), lr=1e-3)

    torch.manual_seed(0)
    train = DataLoader(TensorDataset(torch.as_tensor(bundle.train.X).repeat(TILE[0], 1),
                                     torch.as_tensor(bundle.train.y).repeat(TILE[0])),
                       batch_size=BATCH[0],
                       shuffle=True)
    val = DataLoader(TensorDataset(torch.as_tensor(bundle.val.X), torch.as_tensor(bundle.val.y)),
                     batch_size=len(bundle.val.y))
    trainer = L.Trainer(max_epochs=epochs, callbacks=callbacks(MltCallback, cfg, bundle, arm, tmp),
                        logger=False, accelerator="cpu",
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0)
    start = CLOCK()
    trainer.fit(Module(), train, val)
    LAST_STEPS[0] = trainer.global_step
    return (CLOCK() - start) / trainer.global_step


def hf_run(cfg: Any, bundle: Any, epochs: int, arm: str, tmp: Path) -> float:
    from mltrainer.engine.entrypoint import frameworks_importable

    frameworks_importable()  # before the framework (a CPU torch with a CUDA torchvision)
    import torch
    from torch import nn
    from transformers import Trainer, TrainingArguments

    from mltrainer.integrations.transformers import MltCallback
    from mltrainer.models import build_model

    class Wrapped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = build_model(cfg.model, bundle.spec)

        def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> Any:
            logits = self.net(x)
            if labels is None:  # rows -> logits, as mlt's train rows call it
                return logits
            return {"loss": nn.functional.cross_entropy(logits, labels), "logits": logits}

    class Rows(torch.utils.data.Dataset):
        def __init__(self, split: Any, tile: int = 1) -> None:
            self.x = torch.as_tensor(split.X).repeat(tile, 1)
            self.y = torch.as_tensor(split.y).repeat(tile)

        def __len__(self) -> int:
            return len(self.y)

        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            return {"x": self.x[i], "labels": self.y[i]}

    torch.manual_seed(0)
    args = TrainingArguments(
        output_dir=str(tmp / "hf"), num_train_epochs=epochs, per_device_train_batch_size=BATCH[0],
        per_device_eval_batch_size=len(bundle.val.y), learning_rate=1e-3,
        eval_strategy="epoch", save_strategy="no", report_to="none", use_cpu=True,
        disable_tqdm=True, log_level="error")
    trainer = Trainer(model=Wrapped(), args=args, train_dataset=Rows(bundle.train, TILE[0]),
                      eval_dataset=Rows(bundle.val),
                      callbacks=callbacks(MltCallback, cfg, bundle, arm, tmp),
                      compute_metrics=lambda p: {"accuracy": float(
                          (p.predictions.argmax(1) == p.label_ids).mean())})
    start = CLOCK()
    with contextlib.redirect_stdout(io.StringIO()):  # PrintCallback's lines, in both arms
        trainer.train()
    LAST_STEPS[0] = trainer.state.global_step
    return (CLOCK() - start) / trainer.state.global_step


def loop_monitor(cfg: Any, bundle: Any, model: Any, arm: str, tmp: Path, steps: int,
                 epochs: int) -> Any:
    """The monitor of the hand-written loop's `arm` (None: the plain loop, no calls)."""
    from mltrainer.integrations.loop import MltMonitor

    if not arm:
        return None
    if arm in ("+empty", "+floor"):
        MADE[:] = []
        return FLOOR["loop"]()
    kind = BEFORE["loop"] if arm == "+before" else MltMonitor
    rows = train_rows(cfg, bundle) if arm == "+mlt+train" else None
    MADE[:] = [kind(model, tmp / f"l{time.perf_counter_ns()}", task="classification",
                    metric="accuracy", save_checkpoints=False, train_rows=rows,
                    steps_per_epoch=steps, epochs=epochs)]
    return MADE[0]


def loop_run(cfg: Any, bundle: Any, epochs: int, arm: str, tmp: Path) -> float:
    """A hand-written training loop: the Lightning script's work (model, data, adamw, a val
    pass an epoch logging its loss and accuracy), with `MltMonitor` in the `+mlt` arms."""
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    from mltrainer.models import build_model

    torch.manual_seed(0)
    model = build_model(cfg.model, bundle.spec)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    train = DataLoader(TensorDataset(torch.as_tensor(bundle.train.X).repeat(TILE[0], 1),
                                     torch.as_tensor(bundle.train.y).repeat(TILE[0])),
                       batch_size=BATCH[0], shuffle=True)
    X_val, y_val = torch.as_tensor(bundle.val.X), torch.as_tensor(bundle.val.y)
    mlt = loop_monitor(cfg, bundle, model, arm, tmp, len(train), epochs)
    steps = 0
    start = CLOCK()
    with mlt if mlt is not None else contextlib.nullcontext():
        for _ in range(epochs):
            model.train()
            for x, y in train:
                optimizer.zero_grad()
                loss = nn.functional.cross_entropy(model(x), y)
                loss.backward()
                stop = mlt.step(loss, optimizer) if mlt is not None else None
                optimizer.step()
                steps += 1
                if stop:
                    break
            model.eval()
            with torch.no_grad():
                logits = model(X_val)
            val_loss = nn.functional.cross_entropy(logits, y_val)
            accuracy = (logits.argmax(1) == y_val).float().mean()
            if mlt is not None and mlt.epoch(val_loss, {"accuracy": accuracy}):
                break
    LAST_STEPS[0] = steps
    return (CLOCK() - start) / steps


def hook_cost(kind: Any, run: Any, cfg: Any, bundle: Any, epochs: int, tmp: Path,
              arm: str = "+mlt") -> dict[str, float]:
    """Thread CPU seconds per optimisation step spent inside each of the callback's hooks
    (`kind`, the class the run's `arm` makes; `hooks_of`)."""
    spent: dict[str, float] = {}
    originals = {name: vars(kind)[name] for name in hooks_of(kind)}

    def timed(name: str, fn: Any) -> Any:
        # the thread's CPU time: on a busy machine wall time measures the neighbours. Its two
        # reads per call are counted in: right after a training step a read costs ~6 us, so
        # each per-step hook's figure carries ~6-10 us of the clock itself, now as before
        def hook(*args: Any, **kwargs: Any) -> Any:
            start = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] = spent.get(name, 0.0) + time.thread_time() - start
        return hook

    for name, fn in originals.items():
        setattr(kind, name, timed(name, fn))
    try:
        run(cfg, bundle, epochs, arm, tmp)
    finally:
        for name, fn in originals.items():
            setattr(kind, name, fn)
    return {name: value / LAST_STEPS[0] for name, value in spent.items()}


def monitor_kind(name: str) -> Any:
    """The class whose hooks `hook_cost` times for framework `name` (the loop: MltMonitor)."""
    if name == "lightning":
        from mltrainer.integrations.lightning import MltCallback
        return MltCallback
    if name == "hf":
        from mltrainer.integrations.transformers import MltCallback as HFCallback
        return HFCallback
    from mltrainer.integrations.loop import MltMonitor
    return MltMonitor


def floor_of(name: str, kind: Any) -> Any:
    """`FLOOR[name]`: the empty callback (or monitor) with `kind`'s hooks, made once."""
    if name not in FLOOR:
        if name == "loop":
            FLOOR[name] = empty_like(kind, NoMonitor)
        elif name == "lightning":
            from lightning.pytorch import Callback
            FLOOR[name] = empty_like(kind, Callback)
        else:
            from transformers import TrainerCallback
            FLOOR[name] = empty_like(kind, TrainerCallback)
    return FLOOR[name]


def cost_model(arms: dict[str, Any], cfg: Any, bundle: Any, epochs: int, rounds: int) -> None:
    """The monitor's CPU split into a part per step, per epoch and per run: its hooks, net of
    the empty floor's (each run `+mlt` then `+floor` back to back), timed in runs of several
    shapes (`epochs` and 4x as many, 17-20-step epochs; and epochs 4x longer, `TILE`), the
    total per run fitted as a*steps + b*epochs + c by least squares over `rounds` runs of each
    shape. The issue's target is a share of a step: `a` is what every step pays; `b` (the
    epoch event: its write and line, the steps' block handled at it) and `c` (the stream
    opened, the early gradient norms, the end: the last judging, fsyncs, findings.json) are
    spread over an epoch's and a run's steps. Prints the fit and what it predicts beside
    what each shape measured."""
    import numpy as np

    shapes = [(epochs, 1), (4 * epochs, 1), (epochs, 4)]  # (epochs, tile)
    with tempfile.TemporaryDirectory() as tmp:
        for name, run in arms.items():
            kind = monitor_kind(name)
            floor = floor_of(name, kind)
            rows, totals, plain = [], [], []
            for r in range(rounds):
                for n_epochs, tile in shapes if r % 2 == 0 else shapes[::-1]:
                    TILE[0] = tile
                    took = run(cfg, bundle, n_epochs, "", Path(tmp))
                    mlt = sum(hook_cost(kind, run, cfg, bundle, n_epochs, Path(tmp)).values())
                    steps = LAST_STEPS[0]
                    empty = sum(hook_cost(floor, run, cfg, bundle, n_epochs, Path(tmp),
                                          "+floor").values())
                    rows.append((steps, n_epochs, 1.0))
                    totals.append((mlt - empty) * steps)
                    plain.append(took)
            TILE[0] = 1
            (a, b, c), *_ = np.linalg.lstsq(np.array(rows), np.array(totals), rcond=None)
            step = statistics.median(plain)
            print(f"{name}: the monitor's CPU = {1e6 * a:.1f} us a step + {1e6 * b:.0f} us an "
                  f"epoch + {1e6 * c:.0f} us a run (hooks net of the floor, least squares "
                  f"over {len(rows)} runs; plain step {1e3 * step:.2f} ms: a step's part "
                  f"{a / step:.2%})")
            for n_epochs, tile in shapes:
                picked = [i for i, (_, e, _) in enumerate(rows) if e == n_epochs
                          and (tile > 1) == (rows[i][0] / e > 30)]
                steps = statistics.median(rows[i][0] for i in picked)
                seen = statistics.median(totals[i] / rows[i][0] for i in picked)
                fit = a + (b * n_epochs + c) / steps
                print(f"  {n_epochs} epochs of {steps / n_epochs:.0f} steps: measured "
                      f"{1e6 * seen:.1f} us a step = {seen / step:.2%}, the fit "
                      f"{1e6 * fit:.1f} us = {fit / step:.2%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 128],
                        help="MLP widths: wider makes each step cost more real work")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--tile", type=int, default=1,
                        help="repeat the training rows N times an epoch: N times longer "
                             "epochs at the same step (the per-epoch costs spread thinner)")
    parser.add_argument("--train-rows", action="store_true",
                        help="also time +mlt+train (the epoch events' train metrics)")
    parser.add_argument("--only", choices=["lightning", "hf", "loop"], nargs="+",
                        help="these frameworks (or the hand-written loop) only")
    parser.add_argument("--before", metavar="REV",
                        help="also time the callbacks of git revision REV, or all of mltrainer in "
                             "the folder REV (a git archive), as +before arms")
    parser.add_argument("--hook-rounds", type=int, default=3,
                        help="runs (per version) with the hooks timed from inside")
    parser.add_argument("--cost-model", action="store_true",
                        help="instead: split the monitor's cost into a part per step, per "
                             "epoch and per run (hooks net of the floor, runs of several "
                             "lengths, least squares; see cost_model)")
    parser.add_argument("--wall", action="store_true",
                        help="time with the wall clock instead of the process's CPU time")
    args = parser.parse_args()
    global CLOCK
    if args.wall:
        CLOCK = time.perf_counter
    BATCH[0] = args.batch
    TILE[0] = args.tile

    import torch

    torch.set_num_threads(1)
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    cfg, bundle = setup(args.hidden)
    arms = {"lightning": lightning_run, "hf": hf_run, "loop": loop_run}
    if args.only:
        arms = {name: run for name, run in arms.items() if name in args.only}
    if args.cost_model:
        cost_model(arms, cfg, bundle, args.epochs, args.hook_rounds)
        return
    kinds = {name: ("", "+mlt") + (("+before",) if args.before else ())
             + (("+mlt+train",) if args.train_rows else ())
             + (("+log",) if name == "hf" else ("+empty",)) for name in arms}
    from mltrainer.integrations.loop import MltMonitor

    FLOOR["loop"] = empty_like(MltMonitor, NoMonitor)
    times: dict[str, list[float]] = {f"{a}{k}": [] for a in arms for k in kinds[a]}
    load_at_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        if args.before:
            load_before_dir = Path(tmp) / "before"
            load_before_dir.mkdir()
            load_before(args.before, load_before_dir)
            if "loop" not in BEFORE and "loop" in kinds:  # a revision without MltMonitor
                kinds["loop"] = tuple(k for k in kinds["loop"] if k != "+before")
                del times["loop+before"]
        for run in arms.values():  # warm-up: imports, first-call costs
            run(cfg, bundle, 1, "+mlt", Path(tmp))
        for r in range(args.rounds):
            for name, run in arms.items():
                order = kinds[name] if r % 2 == 0 else kinds[name][::-1]  # alternate
                for kind in order:
                    times[name + kind].append(run(cfg, bundle, args.epochs, kind, Path(tmp)))
    clock = "wall" if args.wall else "CPU"
    print(f"{clock} ms per step over {args.rounds} rounds of {args.epochs} epochs (digits, MLP "
          f"{args.hidden}, batch {args.batch}, training rows x{args.tile}, one thread); load "
          f"averages before {tuple(round(x, 2) for x in load_at_start)}, after "
          f"{tuple(round(x, 2) for x in os.getloadavg())}")
    print(f"{'arm':<20}{'median':>10}{'best':>10}")
    for key, values in times.items():
        print(f"{key:<20}{1e3 * statistics.median(values):>10.3f}{1e3 * min(values):>10.3f}")
    for name in arms:
        plain = times[name]
        for kind in kinds[name][1:]:
            mlt = times[name + kind]
            paired = statistics.median(m / p - 1 for m, p in zip(mlt, plain, strict=True))
            med = statistics.median(mlt) / statistics.median(plain) - 1
            print(f"{name}{kind}: overhead {paired:+.1%} (median of paired rounds), {med:+.1%} "
                  "(ratio of medians); target <= +2.0%")
    from mltrainer.integrations.lightning import MltCallback as LightningCallback
    from mltrainer.integrations.transformers import MltCallback as HFCallback

    # the hooks timed from inside, now (and with --before, the old callbacks) in alternating
    # runs: the median of runs, steadier on a busy machine than the end-to-end figures
    with tempfile.TemporaryDirectory() as tmp:
        for name, kind in (("lightning", LightningCallback), ("hf", HFCallback),
                           ("loop", MltMonitor)):
            if name not in arms:
                continue
            if name != "loop":
                from lightning.pytorch import Callback
                from transformers import TrainerCallback

                FLOOR[name] = empty_like(kind, Callback if name == "lightning"
                                         else TrainerCallback)
            versions = ([("+mlt", kind)] + ([("+before", BEFORE[name])] if name in BEFORE
                                            else []) + [("+floor", FLOOR[name])])
            spent: dict[str, list[dict[str, float]]] = {arm: [] for arm, _ in versions}
            for r in range(args.hook_rounds):
                for arm, cls in versions if r % 2 == 0 else versions[::-1]:
                    spent[arm].append(hook_cost(cls, arms[name], cfg, bundle, args.epochs,
                                                Path(tmp), arm))
                    if arm == "+mlt":
                        mon = MADE[0].monitor
            floor = statistics.median(sum(hooks.values()) for hooks in spent["+floor"])
            for arm, runs in spent.items():
                totals = [sum(hooks.values()) for hooks in runs]
                inside = statistics.median(totals)
                share = inside / statistics.median(times[name])
                each = ", ".join(
                    f"{k} {1e6 * statistics.median(h.get(k, 0.0) for h in runs):.0f}"
                    for k in runs[0] if statistics.median(h.get(k, 0.0) for h in runs) >= 0.5e-6)
                net = "" if arm == "+floor" else (
                    f"; net of the floor {1e6 * (inside - floor):.0f} us = "
                    f"{(inside - floor) / statistics.median(times[name]):.1%}")
                print(f"{name}{arm}: {1e6 * inside:.0f} us of CPU per step inside the "
                      f"callback's hooks (median of {len(runs)} runs, best "
                      f"{1e6 * min(totals):.0f}) = {share:.1%} of the plain step's median "
                      f"({each}){net}")
            if "+before" in spent:  # side by side: each round's new minus old, per hook
                paired = [(sum(new.values()) - sum(old.values()), new, old)
                          for new, old in zip(spent["+mlt"], spent["+before"], strict=True)]
                hooks = {k: statistics.median(n.get(k, 0.0) - o.get(k, 0.0)
                                              for _, n, o in paired) for k in paired[0][1]}
                each = ", ".join(f"{k} {1e6 * v:+.1f}" for k, v in hooks.items())
                middle = statistics.median(d for d, _, _ in paired)
                print(f"{name}: now - before, median of the rounds' differences "
                      f"{1e6 * middle:+.1f} us a step ({each})")
            norm = (f"the gradient norm every {mon.norm_every} steps ("
                    f"{1e6 * mon._norm_cost:.0f} us a pass), " if mon._norm_cost else "")
            costs = sorted(mon._stats_costs) or [0.0]
            print(f"  adapted (last run): {norm}per-layer statistics every {mon.stats_every} "
                  f"steps ({1e6 * costs[(len(costs) - 1) // 2]:.0f} us a pass); measured: step "
                  f"{1e3 * (mon._step_time or 0):.2f} ms (the lower quartile of its gaps), "
                  f"handling (read, write, detectors, wall) "
                  f"{1e6 * mon.handling_s / max(1, mon.handled):.1f} us an event")

if __name__ == "__main__":
    main()
