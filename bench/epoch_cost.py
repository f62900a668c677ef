"""What one epoch of `mlt train-baseline` costs above the plain loop, part by part, in process.

    python bench/timeline.py --epoch-cost [--rounds 2] -C PROJECT     # a planned project

Run through `bench/timeline.py` (see its docstring). Each round runs `mlt train-baseline`
through `cli.main` in a copy of PROJECT, every part of the epoch wrapped in a timer (thread CPU
and wall, exclusive of the timed parts inside it), and after each of its epochs one epoch of
the issue's plain loop (`bench/speed.py`'s script, in process, on the very tensors the run
trains on; with `--det` one more under `torch.use_deterministic_algorithms(True)`), so the two
alternate epoch by epoch and share the machine's load as it drifts. Per-epoch figures are
medians over epochs 2.. of all rounds (epoch 1 pays first calls).

The rows: the main thread's parts (what the epoch waits for), the checkpoint writer thread's
CPU (on 2 busy cores it competes with the loop), the collector's wall time (inside the rest),
the rest of the loop body (per step: the one sync for loss and gradient norm, the event's dict;
per epoch: early stopping, the schedule), and the whole epoch in wall, main-thread CPU and
process CPU. Nothing in mltrainer changes: the timers wrap functions from outside.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import math
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

Key = tuple[str, str]  # (thread: "main" / "writer", label)


class Clock:
    """Exclusive thread-CPU and wall seconds per label; a label starting with "/" is nested
    under its caller's label."""

    def __init__(self) -> None:
        self.local = threading.local()
        self.lock = threading.Lock()
        self.excl: dict[Key, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
        self.gc_wall = 0.0
        self._gc_t = 0.0

    def wrap(self, owner: Any, name: str, label: str | Callable[[], str]) -> None:
        fn = getattr(owner, name, None)
        if fn is None:  # a tree without it (an older main: no step blocks)
            return
        clock = self

        def timed(*args: Any, **kwargs: Any) -> Any:
            stack = clock.local.__dict__.setdefault("stack", [])
            text = label() if callable(label) else label
            if text.startswith("/"):
                text = (stack[-1][0] if stack else "?") + " " + text
            frame = [text, 0.0, 0.0]
            stack.append(frame)
            c0, w0 = time.thread_time(), time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                cpu, wall = time.thread_time() - c0, time.perf_counter() - w0
                stack.pop()
                who = "main" if threading.current_thread() is threading.main_thread() else "writer"
                with clock.lock:
                    entry = clock.excl[(who, text)]
                    entry[0] += cpu - frame[1]
                    entry[1] += wall - frame[2]
                    entry[2] += 1
                if stack:
                    stack[-1][1] += cpu
                    stack[-1][2] += wall

        timed.__wrapped__ = fn  # type: ignore[attr-defined]
        setattr(owner, name, timed)

    def on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_t = time.perf_counter()
        else:
            self.gc_wall += time.perf_counter() - self._gc_t

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            excl = {k: list(v) for k, v in self.excl.items()}
        return {"excl": excl, "wall": time.perf_counter(), "main": time.thread_time(),
                "process": time.process_time(), "gc": self.gc_wall}


def instrument(clock: Clock, marks: list[dict[str, Any]], kept: dict[str, Any]) -> None:
    import torch

    from mltrainer import runner, stream
    from mltrainer.detectors import _runner
    from mltrainer.engine import batching, checkpoint, inference, loading, loop, schedule, step

    calls = {"evaluate": 0}

    def evaluate_label() -> str:
        calls["evaluate"] += 1
        return "evaluate: val" if calls["evaluate"] % 2 else "evaluate: train subset"

    clock.wrap(batching.InMemoryBatches, "batch", "batches.batch (indexing)")
    clock.wrap(batching.InMemoryBatches, "new_order", "batches.new_order")
    clock.wrap(loading.LoaderBatches, "batch", "batches.batch (DataLoader)")
    clock.wrap(step.TrainStep, "__call__", "step (fwd, bwd, norms, clip, AdamW)")
    clock.wrap(step, "layer_statistics", "/ per-layer statistics")
    clock.wrap(step.TrainStep, "_accumulate", "/ forward, backward")
    clock.wrap(step, "per_tensor_norms", "/ gradient norms")
    clock.wrap(schedule.LrSchedule, "apply", "/ lr schedule")
    clock.wrap(torch.optim.Optimizer, "zero_grad", "/ zero_grad")
    clock.wrap(stream.MetricWriter, "write", "stream: MetricWriter.write")
    clock.wrap(stream.MetricWriter, "write_lines", "stream: MetricWriter.write_lines")
    clock.wrap(loop, "block_lines", "stream: a block's lines (block_lines)")
    clock.wrap(_runner.DetectorSubscriber, "on_event", "subscriber: detectors")
    clock.wrap(_runner.DetectorSubscriber, "on_steps", "subscriber: detectors")
    clock.wrap(runner.ProgressForwarder, "on_event", "subscriber: progress")
    clock.wrap(runner.ProgressForwarder, "on_steps", "subscriber: progress")
    clock.wrap(loop.Trainer, "_emit", "emit (dispatch)")
    clock.wrap(loop.Trainer, "_flush_steps", "step block (dispatch)")
    clock.wrap(loop.Trainer, "_step_event", "emit (dispatch)")
    clock.wrap(loop.Trainer, "_decide", "decide (stop reason)")
    clock.wrap(loop, "evaluate", evaluate_label)
    clock.wrap(inference, "forward_batches", "/ forward")
    clock.wrap(inference, "compute_metrics", "/ metrics")
    clock.wrap(loop, "parameters_finite", "parameters_finite")
    clock.wrap(loop.Trainer, "_payload", "checkpoint: payload (state dicts, RNG)")
    clock.wrap(checkpoint, "serialize", "checkpoint: serialise (torch.save)")
    clock.wrap(checkpoint.CheckpointWriter, "wait", "checkpoint: wait for the writer")
    clock.wrap(checkpoint.CheckpointWriter, "_write", "checkpoint: write, link, fsync")
    clock.wrap(loop.Trainer, "_fsync_stream", "/ fsync the stream")
    clock.wrap(loop, "reset_peak_memory", "peak memory")
    clock.wrap(loop, "peak_mem_mb", "peak memory")

    emit = loop.Trainer._emit

    def emit_and_mark(self: Any, event: dict[str, Any]) -> Any:
        try:
            return emit(self, event)
        finally:
            if event.get("type") == "start":
                kept["bundle"] = self.bundle
                kept["epochs"] = event["epochs"]
                kept["n_train_eval"] = event["n_train_eval"]
                marks.clear()
                marks.append(clock.snapshot())
            elif event.get("type") == "epoch":
                marks.append(clock.snapshot())
                kept["between"]()  # the plain loop's epochs, between two of mlt's
                marks.append(clock.snapshot())

    loop.Trainer._emit = emit_and_mark  # type: ignore[method-assign]


def epochs_of(marks: list[dict[str, Any]]) -> list[dict[str, float]]:
    """Per epoch (from the second): label -> (cpu, wall) deltas, and the totals. `marks`:
    the start, then each epoch's end and the next one's start (the plain epochs between)."""
    out = []
    windows = list(zip(marks[0::2], marks[1::2], strict=False))
    for before, after in windows[1:]:
        row: dict[str, float] = {}
        for key, (cpu, wall, n) in after["excl"].items():
            b = before["excl"].get(key, [0.0, 0.0, 0.0])
            row[f"{key[0]}|{key[1]}|cpu"] = cpu - b[0]
            row[f"{key[0]}|{key[1]}|wall"] = wall - b[1]
            row[f"{key[0]}|{key[1]}|n"] = n - b[2]
        row["wall"] = after["wall"] - before["wall"]
        row["main"] = after["main"] - before["main"]
        row["process"] = after["process"] - before["process"]
        row["gc"] = after["gc"] - before["gc"]
        row["timed calls"] = sum(v for k, v in row.items() if k.endswith("|n"))
        out.append(row)
    return out


def plain_loop(bundle: Any, epochs: int, out: Path, deterministic: bool
               ) -> Iterator[dict[str, float]]:
    """bench/speed.py's plain script's loop, on the run's own (preprocessed) tensors: one
    epoch per `next()`, under deterministic kernels or not (the flag as it was, after)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    X, y = bundle.train.X, bundle.train.y
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y.astype("int64"))
    Xv = torch.from_numpy(bundle.val.X)
    yv = torch.from_numpy(bundle.val.y.astype("int64"))
    torch.manual_seed(42)
    model = nn.Sequential(nn.Linear(Xt.shape[1], 256), nn.ReLU(), nn.Dropout(0.1),
                          nn.Linear(256, 256), nn.ReLU(), nn.Dropout(0.1),
                          nn.Linear(256, int(yt.max()) + 1))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    bs, n = 256, len(Xt)
    steps = math.ceil(n / bs)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps)
    gen = torch.Generator().manual_seed(42)
    best = -1.0
    clock = time.thread_time
    for epoch in range(1, epochs + 1):
        before = torch.are_deterministic_algorithms_enabled()
        torch.use_deterministic_algorithms(deterministic)
        w0, c0, p0 = time.perf_counter(), time.thread_time(), time.process_time()
        parts = dict.fromkeys(("indexing", "step", "fwd+bwd", "clip", "AdamW", "lr", "val",
                               "save"), 0.0)
        model.train()
        order = torch.randperm(n, generator=gen)
        total = torch.zeros(())
        for i in range(steps):
            t0 = clock()
            idx = order[i * bs:(i + 1) * bs]
            xb, yb = Xt[idx], yt[idx]
            t1 = clock()
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            t2 = clock()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            t3 = clock()
            opt.step()
            t4 = clock()
            sched.step()
            total += loss.detach()
            t5 = clock()
            parts["indexing"] += t1 - t0
            parts["step"] += t5 - t1
            parts["fwd+bwd"] += t2 - t1
            parts["clip"] += t3 - t2
            parts["AdamW"] += t4 - t3
            parts["lr"] += t5 - t4
        t0 = clock()
        model.eval()
        with torch.no_grad():
            logits = model(Xv)
            F.cross_entropy(logits, yv).item()
            acc = (logits.argmax(1) == yv).float().mean().item()
        t1 = clock()
        state = {"model": model.state_dict(), "optimizer": opt.state_dict(),
                 "scheduler": sched.state_dict(), "epoch": epoch}
        torch.save(state, out / f"epoch-{epoch:03d}.pt")
        if acc > best:
            best = acc
            torch.save(state, out / "best.pt")
        total.item()
        parts["val"], parts["save"] = t1 - t0, clock() - t1
        row = {"wall": time.perf_counter() - w0, "main": time.thread_time() - c0,
               "process": time.process_time() - p0, **parts}
        torch.use_deterministic_algorithms(before)
        yield row


def run_mlt(project: Path, work: Path, clock: Clock, marks: list[dict[str, Any]]
            ) -> list[dict[str, float]]:
    from mltrainer.cli import cli

    copy = work / f"project-{len(list(work.glob('project-*')))}"
    shutil.copytree(project, copy)
    with contextlib.suppress(SystemExit):
        cli(["-C", str(copy), "--json", "train-baseline"], prog_name="mlt",
            standalone_mode=False)
    rows = epochs_of(marks)
    shutil.rmtree(copy)
    return rows


def epoch_cost(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="timeline.py --epoch-cost")
    parser.add_argument("-C", dest="project", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--det", action="store_true", help="also the plain loop under "
                        "deterministic kernels (as mlt trains)")
    parser.add_argument("train_baseline", nargs="?", default="train-baseline")
    args = parser.parse_args(argv)
    import os

    import torch

    torch.set_num_threads(1)
    clock, marks, kept = Clock(), [], {}
    instrument(clock, marks, kept)
    gc.callbacks.append(clock.on_gc)
    from mltrainer.cli import GC_THRESHOLD

    gc.set_threshold(*GC_THRESHOLD)  # as `mlt`'s own process (cli.main)
    work = Path(tempfile.mkdtemp(prefix="mlt-epoch-cost-"))
    mlt_rows: list[dict[str, float]] = []
    plain: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    loads = [os.getloadavg()[0]]
    kinds = [False, True] if args.det else [False]
    try:
        for r in range(args.rounds):
            loops: dict[bool, Iterator[dict[str, float]]] = {}
            rows: dict[bool, list[dict[str, float]]] = {k: [] for k in kinds}

            def between(r: int = r, loops: Any = loops, rows: Any = rows) -> None:
                for det in kinds if r % 2 == 0 else kinds[::-1]:
                    if det not in loops:
                        folder = work / f"plain-{r}-{det}"
                        folder.mkdir()
                        loops[det] = plain_loop(kept["bundle"], kept["epochs"], folder, det)
                    with torch.random.fork_rng(devices=[]):  # mlt's own draws untouched
                        rows[det].append(next(loops[det]))

            kept["between"] = between
            mlt_rows += run_mlt(args.project, work, clock, marks)
            for det in kinds:
                plain[det] += rows[det][1:]
            loads.append(os.getloadavg()[0])
            print(f"  round {r} done, load {loads[-1]:.1f}", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(mlt_rows, plain, kept, loads, args.rounds)


def wrapper_cost() -> float:
    """Thread CPU seconds one timed call adds (the timers' own cost, in every row above)."""

    class Probe:
        def noop(self) -> None:
            return None

    clock, probe, n = Clock(), Probe(), 20_000
    c0 = time.thread_time()
    for _ in range(n):
        probe.noop()
    bare = time.thread_time() - c0
    clock.wrap(Probe, "noop", "probe")
    c0 = time.thread_time()
    for _ in range(n):
        probe.noop()
    return (time.thread_time() - c0 - bare) / n


def report(rows: list[dict[str, float]], plain: dict[bool, list[dict[str, float]]],
           kept: dict[str, Any], loads: list[float], rounds: int) -> None:
    med = statistics.median
    labels = sorted({k.rsplit("|", 1)[0] for r in rows for k in r if k.count("|") == 2})

    def m(key: str) -> float:
        return med([r.get(key, 0.0) for r in rows])

    print(f"epoch cost: {len(rows)} mlt epochs ({rounds} runs of {kept['epochs']}, epochs 2..), "
          f"train subset {kept['n_train_eval']} rows, load {min(loads):.1f}-{max(loads):.1f}; "
          "medians per epoch, seconds")
    print(f"{'part':58} {'thread CPU':>10} {'wall':>8} {'calls':>7}")
    main_cpu = main_wall = 0.0
    for label in labels:
        cpu, wall, n = m(label + "|cpu"), m(label + "|wall"), m(label + "|n")
        if not n:
            continue
        thread, text = label.split("|")
        if thread == "main":
            main_cpu += cpu
            main_wall += wall
        print(f"{('[writer thread] ' if thread == 'writer' else '') + text:58} {cpu:10.4f} "
              f"{wall:8.4f} {n:7.0f}")
    rest_cpu = med([r["main"] - sum(v for k, v in r.items()
                                    if k.startswith("main|") and k.endswith("|cpu"))
                    for r in rows])
    rest_wall = med([r["wall"] - sum(v for k, v in r.items()
                                     if k.startswith("main|") and k.endswith("|wall"))
                     for r in rows])
    print(f"{'rest of the loop body (sync, event dict, bookkeeping)':58} {rest_cpu:10.4f} "
          f"{rest_wall:8.4f}")
    print(f"{'  of which the cyclic collector (wall)':58} {'':10} {m('gc'):8.4f}")
    print(f"{'epoch, mlt: main thread CPU / wall':58} {m('main'):10.4f} {m('wall'):8.4f}")
    print(f"{'epoch, mlt: process CPU (all threads)':58} {m('process'):10.4f}")
    calls = m("timed calls")
    cost = wrapper_cost()
    print(f"{'  the timers themselves (in the rows above)':58} {calls * cost:10.4f} "
          f"{'':8} {calls:7.0f}  ({cost * 1e6:.2f} us a call)")
    for det, label in ((False, "plain loop"), (True, "plain loop, deterministic kernels")):
        if not plain[det]:
            continue
        keys = ("indexing", "step", "fwd+bwd", "clip", "AdamW", "lr", "val", "save")
        pm = {k: med([r[k] for r in plain[det]]) for k in ("main", "wall", "process", *keys)}
        print(f"{'epoch, ' + label + ': CPU / wall':58} {pm['main']:10.4f} {pm['wall']:8.4f}")
        print("  its parts, thread CPU: " + ", ".join(
            f"{k} {pm[k]:.4f}" for k in keys))
        print(f"{'  mlt / it: main CPU, process CPU, wall':58} {m('main') / pm['main']:9.3f}x "
              f"{m('wall') / pm['wall']:7.3f}x  process {m('process') / pm['process']:.3f}x")
