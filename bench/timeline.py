"""Where a phase command's wall time goes: `mlt ARGS` run through its entry point
(`mltrainer.cli:main`, so the process is the command's own), with a mark at each phase
boundary (wall seconds since start, the process's own CPU seconds, its reaped children's CPU,
the load), every full collection of the cyclic garbage collector, and the interpreter's start-up
and exit measured from outside.

    python bench/timeline.py -C PROJECT train-baseline        # a planned project
    python bench/timeline.py --copy -C PROJECT train-baseline # in a copy (the project unchanged)

A span where wall time passes and neither CPU column moves is waiting (for the report drawer's
figures, a child, the disk). Prints the marks, then the summary: start-up (the interpreter
before the first mark), the command, exit (after the last exit handler: the interpreter's
teardown), the collector's passes per generation.

What one epoch costs above a plain loop (issue 16's per-epoch target), in one process:

    python bench/timeline.py --epoch-cost [--rounds 2] [--det] -C PROJECT   # a planned project

runs `mlt train-baseline` in process (through `cli.main`, in a copy of the project) with every
part of the epoch timed in thread CPU and wall (exclusive of the parts inside it: the step,
batching, the stream, each subscriber, val and the train subset (forward and metrics apart),
the finiteness check, the checkpoint's payload, serialising, waiting and the writer thread's
own CPU, the collector), and between its epochs one epoch each of the issue's plain loop
(`bench/speed.py`'s script: indexing tensors, AdamW, cosine, clipping, val, `torch.save` of
the state every epoch) on the very tensors the run trains on (with `--det` also under
deterministic kernels, as mlt trains), `--rounds` runs. Per-epoch figures are medians over
epochs 2.. of every round.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

# module -> (object path, attribute) pairs whose calls are marked on entry and exit
MARKED = {
    "mltrainer.runner": ["execute_phase", "evaluate_gate", "save_state", "current_fingerprints",
                         "phase_result"],
    "mltrainer.reporting": ["render_phase_report"],
    "mltrainer.reporting._drawer": ["FigureDrawer.__init__", "FigureDrawer.figures"],
    "mltrainer.data": ["prepare_data"],
    "mltrainer.phases.baseline.phase": ["run", "summarize_run"],
    "mltrainer.phases.plan.phase": ["run"],
    "mltrainer.engine.loop": ["Trainer.fit", "Trainer._loop", "evaluate", "build_training"],
    "mltrainer.engine.checkpoint": ["CheckpointWriter.wait"],
    "torch": [],
}


def child(log_path: str, argv: list[str]) -> None:
    import atexit
    import gc
    import importlib.abc
    import importlib.util
    import resource

    t0 = time.perf_counter()
    log: list[list[Any]] = []
    gc_passes = {0: [0, 0.0], 1: [0, 0.0], 2: [0, 0.0]}
    gc_start = [0.0]

    def mark(what: str) -> None:
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        log.append([time.perf_counter() - t0, time.process_time(),
                    kids.ru_utime + kids.ru_stime, os.getloadavg()[0], what])

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_start[0] = time.perf_counter()
            return
        spent = time.perf_counter() - gc_start[0]
        passes = gc_passes[info["generation"]]
        passes[0] += 1
        passes[1] += spent
        if info["generation"] == 2:
            mark(f"full collection: {spent:.3f} s")

    def wrap(module: Any, dotted: str) -> None:
        owner, _, name = dotted.rpartition(".")
        obj = getattr(module, owner) if owner else module
        fn = getattr(obj, name)
        label = f"{module.__name__.rsplit('.', 1)[-1]}.{dotted}"

        @functools.wraps(fn)
        def marked(*args: Any, **kwargs: Any) -> Any:
            mark("> " + label)
            try:
                return fn(*args, **kwargs)
            finally:
                mark("< " + label)
        setattr(obj, name, marked)

    class Hook(importlib.abc.MetaPathFinder):
        def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
            if name not in MARKED:
                return None
            sys.meta_path.remove(self)
            try:
                spec = importlib.util.find_spec(name)
            finally:
                sys.meta_path.insert(0, self)
            if spec is None or spec.loader is None:
                return spec
            load = spec.loader.exec_module

            def exec_module(module: Any) -> None:
                mark("import " + name)
                load(module)
                mark("imported " + name)
                for dotted in MARKED[name]:
                    wrap(module, dotted)
            spec.loader.exec_module = exec_module  # type: ignore[method-assign]
            return spec

    def dump() -> None:  # registered before main's own handlers: runs after them
        mark("last exit handler")
        Path(log_path).write_text(json.dumps({"log": log, "exit_at": time.time(), "gc": {
            str(k): v for k, v in gc_passes.items()}}))

    sys.meta_path.insert(0, Hook())
    gc.callbacks.append(on_gc)
    atexit.register(dump)
    mark("start")
    from mltrainer.cli import main
    sys.argv = ["mlt", *argv]
    main()


def run(argv: list[str], copy: bool) -> None:
    if copy:
        where = argv.index("-C") + 1
        work = Path(tempfile.mkdtemp(prefix="mlt-timeline-"))
        shutil.copytree(argv[where], work / "project")
        argv = [*argv[:where], str(work / "project"), *argv[where + 1:]]
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        log_path = f.name
    env = dict(os.environ, PYTHONPATH=os.environ.get("PYTHONPATH", str(REPO)))
    started = time.time()
    proc = subprocess.run([sys.executable, __file__, "--child", log_path, *argv], env=env,
                          capture_output=True, text=True, check=False)
    ended = time.time()
    data = json.loads(Path(log_path).read_text())
    os.unlink(log_path)
    if copy:
        shutil.rmtree(work)
    print(f"{'wall':>7} {'own CPU':>8} {'children':>8} {'load':>5}  (rc {proc.returncode})")
    for wall, cpu, kids, load, what in data["log"]:
        print(f"{wall:7.3f} {cpu:8.3f} {kids:8.2f} {load:5.1f}  {what}")
    first, last = data["log"][0][0], data["log"][-1][0]
    exit_s = ended - data["exit_at"]
    print(f"\nwhole process {ended - started:.2f} s: start-up "
          f"{ended - started - exit_s - (last - first):.2f}, command {last - first:.2f}, "
          f"exit {exit_s:.2f}")
    print("collector passes (generation: count, s): " + ", ".join(
        f"{g}: {n}, {s:.3f}" for g, (n, s) in data["gc"].items()))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3:])
    elif "--epoch-cost" in sys.argv:
        from epoch_cost import epoch_cost  # bench/epoch_cost.py

        epoch_cost([a for a in sys.argv[1:] if a != "--epoch-cost"])
    else:
        copy = "--copy" in sys.argv
        run([a for a in sys.argv[1:] if a != "--copy"], copy)
