"""What the engine costs over a hand-written PyTorch loop.

The same model, data (digits, as `mlt plan` splits it), batch size, optimiser (adamw), lr
schedule (cosine), clipping and epochs, trained three ways, in rotating order in one process
for several rounds:

- plain:       a minimal hand-written loop (loss.item() per step, val loss and accuracy per
               epoch), no checkpoints;
- plain+ckpt:  the same, plus `torch.save({"model", "optimizer"})` every epoch, as a careful
               hand-written loop does;
- engine:      `Trainer.fit()` with step events, per-layer gradient statistics every
               `grad_stats_every` steps, a no-op subscriber standing in for the detectors, all
               val metrics, a full-state checkpoint every epoch (atomic, fsynced).

Early stopping is off so all run every epoch.

    python bench/overhead.py [--epochs 30] [--rounds 7] [--threads 1] [--tile 1]

Prints milliseconds per epoch (median over rounds, and the best round, which is what the code
costs when the shared machine leaves it alone), per step, and the ratios to the engine.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

Timing = tuple[float, list[float], list[float]]  # total s, epoch s, step intervals s


class NoOpSubscriber:
    def on_event(self, event: dict[str, Any]) -> str | None:
        return None


def plain_loop(cfg: Any, bundle: Any, save_to: Path | None = None) -> Timing:
    import torch
    import torch.nn.functional as F

    from mltrainer.models import build_model

    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    t = cfg.training
    model = build_model(cfg.model, bundle.spec)
    opt = torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    X, y = torch.as_tensor(bundle.train.X), torch.as_tensor(bundle.train.y)
    Xv, yv = torch.as_tensor(bundle.val.X), torch.as_tensor(bundle.val.y)
    n = len(X)
    steps = math.ceil(n / t.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=t.epochs * steps)
    gen = torch.Generator().manual_seed(cfg.seed)
    epoch_times, step_times = [], []
    for epoch in range(t.epochs):
        e0 = time.perf_counter()
        model.train()
        order = torch.randperm(n, generator=gen)
        total, last = 0.0, None
        for i in range(steps):
            idx = order[i * t.batch_size:(i + 1) * t.batch_size]
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(X[idx]), y[idx])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
            opt.step()
            sched.step()
            total += loss.item()
            now = time.perf_counter()
            if last is not None:
                step_times.append(now - last)
            last = now
        model.eval()
        with torch.no_grad():
            out = model(Xv)
            _val_loss = F.cross_entropy(out, yv).item()
            _acc = (out.argmax(1) == yv).float().mean().item()
        if save_to is not None:
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict()},
                       save_to / f"epoch-{epoch + 1:03d}.pt")
        epoch_times.append(time.perf_counter() - e0)
    return time.perf_counter() - start, epoch_times, step_times


def engine_loop(cfg: Any, bundle: Any, run_dir: Path) -> Timing:
    from mltrainer.engine import Trainer
    from mltrainer.stream import read_stream

    start = time.perf_counter()
    Trainer(cfg, bundle, run_dir, subscribers=[NoOpSubscriber()]).fit()
    total = time.perf_counter() - start
    events = read_stream(run_dir / "metrics.jsonl")
    epochs = [e["wall_time"] for e in events if e["type"] == "epoch"]
    steps = [b["time"] - a["time"] for a, b in itertools.pairwise(events)
             if a["type"] == b["type"] == "step" and a["epoch"] == b["epoch"]]
    return total, epochs, steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--tile", type=int, default=1,
                        help="repeat the training rows this many times: longer epochs, the "
                        "same per-epoch fixed costs (val, checkpoint)")
    args = parser.parse_args()

    import torch
    import yaml

    from mltrainer.config import parse_config
    from mltrainer.data import prepare_data
    from mltrainer.resources import example_config

    torch.set_num_threads(args.threads)
    raw = yaml.safe_load(example_config("digits"))
    raw["training"]["epochs"] = args.epochs
    raw["training"]["early_stopping"]["patience"] = 0  # all run every epoch
    cfg = parse_config(raw)
    bundle = prepare_data(cfg, REPO)
    if args.tile > 1:
        import numpy as np

        train = SimpleNamespace(X=np.tile(bundle.train.X, (args.tile, 1)),
                                y=np.tile(bundle.train.y, args.tile))
        bundle = SimpleNamespace(spec=bundle.spec, train=train, val=bundle.val,
                                 fingerprints=bundle.fingerprints)

    results: dict[str, list[Timing]] = {"plain": [], "plain+ckpt": [], "engine": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)

        def run(name: str, r: int) -> Timing:
            folder = root / f"{name}-{r}"
            folder.mkdir()
            if name == "engine":
                return engine_loop(cfg, bundle, folder / "run")
            return plain_loop(cfg, bundle, folder if name == "plain+ckpt" else None)

        for name in results:  # warm-up: imports, allocator, page cache
            run(name, -1)
        names = list(results)
        for r in range(args.rounds):
            for name in names[r % 3:] + names[:r % 3]:  # rotate the order
                results[name].append(run(name, r))

    def per_epoch(name: str, pick: Callable[[list[float]], float]) -> float:
        return pick([statistics.median(t[1]) for t in results[name]])

    def per_step(name: str) -> float:
        return statistics.median([statistics.median(t[2]) for t in results[name]])

    print(f"cores: {os.cpu_count()} (torch threads {torch.get_num_threads()}), "
          f"torch {torch.__version__}, device cpu")
    print(f"digits: {len(bundle.train.y)} train rows, {len(bundle.val.y)} val rows, batch "
          f"{cfg.training.batch_size}, {args.epochs} epochs, mlp {cfg.model.hidden}, "
          f"grad_stats_every {cfg.training.grad_stats_every}, {args.rounds} rounds")
    print(f"{'':26}{'plain':>10}{'plain+ckpt':>12}{'engine':>10}{'eng/plain':>11}"
          f"{'eng/plain+ckpt':>16}")
    rows = [
        ("ms per epoch, median", lambda n: per_epoch(n, statistics.median)),
        ("ms per epoch, best round", lambda n: per_epoch(n, min)),
        ("ms per epoch, whole run", lambda n: statistics.median(
            [t[0] / args.epochs for t in results[n]])),
        ("ms per step, median", per_step),
    ]
    for label, fn in rows:
        p, pc, e = (1000 * fn(n) for n in ("plain", "plain+ckpt", "engine"))
        print(f"{label:26}{p:10.2f}{pc:12.2f}{e:10.2f}{e / p:11.3f}{e / pc:16.3f}")
    print("per epoch: steps + val + checkpoint (epoch wall time); whole run: fit() / epochs, "
          "setup included (env capture, run files); per step: interval between steps")


if __name__ == "__main__":
    main()
