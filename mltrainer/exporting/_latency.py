"""Latency: p50/p95 per runtime and batch size, after warm-up, numpy in and numpy out.

In-process is fine here (parity is where the fresh process matters). Every runtime gets the
same thread budget, torch's current one, so the numbers compare engines, not thread counts.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from mltrainer.exporting._capture import captured
from mltrainer.exporting._deployable import DeployableModel
from mltrainer.exporting._formats import ExportRecord
from mltrainer.runtime.runners import Inputs, Runner, load_runner, torch_runner

MIN_SAMPLES = 20  # timed calls at least, whatever the time budget (a p95 needs them)

# Which runtime runs which export format.
RUNTIMES: dict[str, str] = {"onnx": "onnxruntime", "torchscript": "torchscript", "pt2": "pt2"}


def time_runner(runner: Runner, x: Inputs, warmup: int, iters: int,
                budget_s: float | None = None) -> dict[str, float]:
    """Milliseconds per call: p50, p95, mean, min, max over `iters` calls after `warmup`, or
    fewer (`samples`, never under MIN_SAMPLES) once the timed calls took `budget_s` seconds
    (and fewer warm-up calls once they took a quarter of it)."""
    started = time.perf_counter()
    for i in range(warmup):  # with a budget: a quarter of it at most (2 calls at least)
        if budget_s is not None and i >= 2 and time.perf_counter() - started > budget_s / 4:
            break
        runner(x)
    samples = np.empty(iters, dtype=np.float64)
    spent = 0.0
    n = 0
    while n < iters and (budget_s is None or n < MIN_SAMPLES or spent < budget_s * 1e3):
        start = time.perf_counter_ns()
        runner(x)
        samples[n] = (time.perf_counter_ns() - start) / 1e6
        spent += samples[n]
        n += 1
    samples = samples[:n]
    return {
        "samples": n,
        "p50_ms": float(np.percentile(samples, 50)),
        "p95_ms": float(np.percentile(samples, 95)),
        "mean_ms": float(samples.mean()),
        "min_ms": float(samples.min()),
        "max_ms": float(samples.max()),
    }


def machine_load() -> dict[str, Any]:
    """The CPUs this process may use and the 1-minute load average (None where the platform
    has none). Latency timed while other work keeps more CPUs busy than there are includes the
    time spent waiting for one: a report says so rather than print the numbers bare."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    try:
        load = round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):  # Windows
        load = None
    return {"cpus": cpus, "load_1min": load}


def _repeat_first(example: Inputs, b: int) -> Inputs:
    """The first row (a table's 1-D row counts as one) repeated `b` times, per input."""
    if isinstance(example, dict):
        return {k: np.ascontiguousarray(np.repeat(np.asarray(v)[:1], b, axis=0))
                for k, v in example.items()}
    array = np.asarray(example, dtype=np.float32)
    row = array.reshape(1, -1) if array.ndim == 1 else array[:1]
    return np.ascontiguousarray(np.repeat(row, b, axis=0))


def _measure(
    runner: Runner, inputs: dict[int, Inputs], warmup: int, iters: int, budget_s: float | None
) -> dict[str, dict[str, float]]:
    return {str(b): time_runner(runner, x, warmup, iters, budget_s) for b, x in inputs.items()}


def measure_latency(
    deployable: DeployableModel,
    records: Sequence[ExportRecord],
    example_row: Inputs,
    *,
    batch_sizes: Sequence[int] = (1, 64),
    warmup: int = 10,
    iters: int = 100,
    budget_s: float | None = None,
) -> dict[str, Any]:
    """Latency of PyTorch eager and of each ok export, at each batch size (the row repeated):
    `iters` timed calls each, or as many as `budget_s` seconds allow (at least MIN_SAMPLES;
    each cell records its `samples`), so a transformer's batch of 64 does not take minutes.

    Returns {"unit", "batch_sizes", "warmup", "iters", "torch_num_threads",
    "torch_num_interop_threads", "onnxruntime_session_options", "runtimes": {name: {"format",
    "ok", "error", "batches": {"<b>": {"p50_ms", "p95_ms", ...}}, "info"}}}.
    """
    if warmup < 0 or iters < 1:
        raise ValueError(f"warmup must be >= 0 and iters >= 1 but got {warmup} and {iters}")
    if any(b < 1 for b in batch_sizes):
        raise ValueError(f"batch sizes must be >= 1 but got {list(batch_sizes)}")
    inputs = {int(b): _repeat_first(example_row, int(b)) for b in batch_sizes}
    before = machine_load()
    threads = torch.get_num_threads()
    deployable.eval()
    runtimes: dict[str, dict[str, Any]] = {}
    runtimes["eager"] = {
        "format": None,
        "ok": True,
        "error": None,
        "batches": _measure(torch_runner(deployable), inputs, warmup, iters, budget_s),
        "info": {"runtime": "torch eager", "version": torch.__version__, "num_threads": threads},
    }
    session_options: dict[str, Any] | None = None
    for record in records:
        name = RUNTIMES.get(record.format, record.format)
        entry: dict[str, Any] = {
            "format": record.format,
            "ok": False,
            "error": None,
            "batches": {},
            "info": None,
        }
        runtimes[name] = entry
        if not record.ok:
            entry["error"] = f"export not available: {record.error}"
            continue
        warnings_seen: list[str] = []
        try:
            with captured(warnings_seen):
                # Torch runtimes (threads=None) keep torch's setting as it is; ORT gets the
                # same count instead of its default of one thread per core.
                pin = threads if record.format == "onnx" else None
                runner, info = load_runner(record.format, record.path, threads=pin)
                entry["batches"] = _measure(runner, inputs, warmup, iters, budget_s)
            entry["info"] = {**info, "warnings": warnings_seen}
            entry["ok"] = True
            if record.format == "onnx":
                session_options = info["session_options"]
        except Exception as exc:  # one runtime failing must not hide the others
            entry["error"] = f"{type(exc).__name__}: {exc}"
    return {
        "unit": "ms",
        "batch_sizes": [int(b) for b in batch_sizes],
        "warmup": warmup,
        "iters": iters,
        "budget_s": budget_s,
        "torch_num_threads": threads,
        "torch_num_interop_threads": torch.get_num_interop_threads(),
        "onnxruntime_session_options": session_options,
        "runtimes": runtimes,
        "machine": _busy(before, machine_load()),
    }


def _busy(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The load around the timing, and whether it exceeded the CPUs (then `busy`)."""
    loads = [x for x in (before["load_1min"], after["load_1min"]) if x is not None]
    return {"cpus": before["cpus"], "load_1min_before": before["load_1min"],
            "load_1min_after": after["load_1min"],
            "busy": bool(loads) and max(loads) > before["cpus"]}
