"""Parity: every export, reloaded in a fresh process, against PyTorch eager in this one.

A fresh process is the point: an export that only works thanks to this process's state (a
registered op, a patched module, weights still in memory) fails there as it would in
production. Each format runs in its own worker, concurrently; a worker that fails is a failed
parity with its error text, never an exception that hides the other formats.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

import mltrainer
from mltrainer.errors import BadInputError
from mltrainer.exporting._deployable import DeployableModel
from mltrainer.exporting._formats import ExportRecord
from mltrainer.runtime.runners import Inputs, n_rows, take_rows, torch_runner

DEFAULT_TOLERANCE: Mapping[str, float] = MappingProxyType({"atol": 1e-5, "rtol": 1e-4})
_REL_FLOOR = 1e-12  # denominator floor for max_rel_diff, so a zero reference stays finite


def parity_batch_sizes(n_rows: int) -> list[int]:
    """1, 2, an odd size (7) and all rows: catches frozen batch dims and batch-1 special cases."""
    return sorted({b for b in (1, 2, 7, n_rows) if 1 <= b <= n_rows})


def _labels(outputs: np.ndarray) -> np.ndarray:
    # One logit per row (binary) is thresholded at 0; otherwise the class is the argmax.
    if outputs.ndim == 1 or outputs.shape[-1] == 1:
        return (outputs.reshape(outputs.shape[0]) > 0).astype(np.int64)
    return outputs.argmax(axis=-1)


def compare_outputs(
    exported: np.ndarray, reference: np.ndarray, task: str, tolerance: Mapping[str, float]
) -> dict[str, Any]:
    """The numbers behind one batch size's verdict, with the verdict."""
    atol, rtol = float(tolerance["atol"]), float(tolerance["rtol"])
    out: dict[str, Any] = {
        "shape": list(exported.shape),
        "reference_shape": list(reference.shape),
        "max_abs_diff": None,
        "max_rel_diff": None,
        "nonfinite_mismatch": 0,
        "label_agreement": None,
        "passed": False,
        "error": None,
        "reason": None,
    }
    if exported.shape != reference.shape:
        out["error"] = f"shape {tuple(exported.shape)} != eager {tuple(reference.shape)}"
        out["reason"] = out["error"]
        return out
    a, b = exported.astype(np.float64), reference.astype(np.float64)
    # NaN/inf in the same place on both sides agree; anywhere else they are a mismatch.
    both_same = (np.isnan(a) & np.isnan(b)) | (np.isinf(a) & (a == b))
    finite = np.isfinite(a) & np.isfinite(b)
    out["nonfinite_mismatch"] = int((~finite & ~both_same).sum())
    diff = np.abs(a - b)[finite]
    rel = diff / np.maximum(np.abs(b[finite]), _REL_FLOOR)
    out["max_abs_diff"] = float(diff.max()) if diff.size else 0.0
    out["max_rel_diff"] = float(rel.max()) if rel.size else 0.0
    close = out["max_abs_diff"] <= atol or bool(
        np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True)
    )
    agree = True
    if task == "classification" and a.shape[0] > 0:
        out["label_agreement"] = float((_labels(a) == _labels(b)).mean())
        agree = out["label_agreement"] == 1.0
    out["passed"] = bool(close and agree and out["nonfinite_mismatch"] == 0)
    out["reason"] = _reason(out, close, atol, rtol)
    return out


def _reason(row: dict[str, Any], close: bool, atol: float, rtol: float) -> str:
    """One line saying why the verdict is what it is, with the numbers that decided it."""
    if row["nonfinite_mismatch"]:
        return f"{row['nonfinite_mismatch']} outputs are NaN/inf on one side only"
    diff = f"max_abs_diff {row['max_abs_diff']:.3g}"
    if not close:
        return f"{diff} > atol {atol:g} and not allclose(rtol={rtol:g}, atol={atol:g})"
    if row["label_agreement"] is not None and row["label_agreement"] < 1.0:
        return f"label agreement {row['label_agreement']:.4f} < 1.0"
    return f"{diff} within atol {atol:g} / rtol {rtol:g}"


def _eager(deployable: DeployableModel, inputs: Inputs, batch: int) -> np.ndarray:
    return torch_runner(deployable)(take_rows(inputs, batch))


def _worker_env() -> dict[str, str]:
    # The worker must import this very mltrainer, installed or from a source checkout.
    env = dict(os.environ)
    root = str(Path(mltrainer.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _start_worker(
    index: int,
    record: ExportRecord,
    inputs_path: Path,
    batches: list[int],
    work: Path,
    env: dict[str, str],
) -> tuple[subprocess.Popen[str], Path]:
    out_dir = work / f"{index}-{record.format}"
    out_dir.mkdir()
    request = {
        "format": record.format,
        "path": str(Path(record.path).resolve()),
        "inputs": str(inputs_path),
        "batch_sizes": batches,
        "out_dir": str(out_dir),
        "threads": 1,  # parity is about numbers, not speed: keep the shared cores free
    }
    request_path = out_dir / "request.json"
    request_path.write_text(json.dumps(request))
    process = subprocess.Popen(
        [sys.executable, "-m", "mltrainer.runtime.worker", str(request_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=str(work),
    )
    return process, out_dir


def _failed(record: ExportRecord, error: str, **extra: Any) -> dict[str, Any]:
    return {
        "format": record.format,
        "path": record.path,
        "passed": False,
        "error": error,
        "reason": error,
        "reloaded_in_fresh_process": False,
        "max_abs_diff": None,
        "max_rel_diff": None,
        "label_agreement": None,
        "batches": [],
        **extra,
    }


def _collect(
    record: ExportRecord,
    process: subprocess.Popen[str],
    out_dir: Path,
    deployable: DeployableModel,
    inputs: Inputs,
    task: str,
    tolerance: Mapping[str, float],
    timeout_s: float,
) -> dict[str, Any]:
    try:
        output, _ = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        return _failed(record, f"parity worker timed out after {timeout_s} s")
    result_path = out_dir / "result.json"
    if not result_path.is_file():
        tail = (output or "").strip()[-2000:]
        return _failed(record, f"parity worker exited {process.returncode}: {tail}")
    worker = json.loads(result_path.read_text())
    evidence = {
        key: worker.get(key)
        for key in ("python", "pid", "torch_imported", "runtime", "warnings", "seconds")
    }
    if not worker["ok"]:
        return _failed(
            record,
            f"worker: {worker['error']}",
            worker=evidence,
            worker_traceback=worker.get("traceback"),
        )
    batches = []
    for batch_key, name in worker["outputs"].items():
        batch = int(batch_key)
        row = compare_outputs(
            np.load(out_dir / name), _eager(deployable, inputs, batch), task, tolerance
        )
        batches.append({"batch_size": batch, **row})
    return _summarise(record, batches, task, tolerance, evidence)


def _summarise(
    record: ExportRecord,
    batches: list[dict[str, Any]],
    task: str,
    tolerance: Mapping[str, float],
    evidence: dict[str, Any],
) -> dict[str, Any]:
    def worst(key: str) -> float | None:
        values = [b[key] for b in batches if b[key] is not None]
        return max(values) if values else None

    label_agreement = None
    if task == "classification":
        rows = sum(b["batch_size"] for b in batches)
        agreeing = sum(b["batch_size"] * (b["label_agreement"] or 0.0) for b in batches)
        label_agreement = agreeing / rows if rows else None
    errors = [f"batch {b['batch_size']}: {b['error']}" for b in batches if b["error"]]
    failing = [b for b in batches if not b["passed"]]
    # The first failing batch explains a failure; the batch with the largest diff, a pass.
    decisive = failing[0] if failing else max(batches, key=lambda b: b["max_abs_diff"] or 0.0)
    reason = f"batch {decisive['batch_size']}: {decisive['reason']}"
    return {
        "format": record.format,
        "path": record.path,
        "passed": bool(batches) and all(b["passed"] for b in batches),
        "error": "; ".join(errors) or None,
        "reason": reason,
        "max_abs_diff": worst("max_abs_diff"),
        "max_rel_diff": worst("max_rel_diff"),
        "label_agreement": label_agreement,
        "tolerance": dict(tolerance),
        "batch_sizes": [b["batch_size"] for b in batches],
        "batches": batches,
        "reloaded_in_fresh_process": True,
        "worker": evidence,
    }


def check_parity(
    records: Sequence[ExportRecord],
    deployable: DeployableModel,
    inputs: Inputs,
    task: str,
    *,
    tolerance: Mapping[str, float] = DEFAULT_TOLERANCE,
    timeout_s: float = 300.0,
) -> list[dict[str, Any]]:
    """One result per record: reloaded in a fresh process, run at batch 1, 2, 7 and all rows.

    `inputs`: the encoded rows (float32 (N, F)), a batch of N-D inputs (images), or named
    arrays in the graph's input order (text: int64 input_ids and attention_mask).
    passed = (max_abs_diff <= atol or allclose(rtol, atol)) and, for classification, every
    label (argmax) agrees, at every batch size. max_rel_diff divides by |eager| floored at 1e-12.
    """
    if task not in ("classification", "regression"):
        raise BadInputError(f"task must be 'classification' or 'regression' but got {task!r}")
    if isinstance(inputs, dict):
        array: Inputs = {k: np.ascontiguousarray(v) for k, v in inputs.items()}
        shapes = [v.shape for v in array.values()]
        if not shapes or any(len(sh) < 2 or sh[0] != shapes[0][0] or sh[0] == 0
                             for sh in shapes):
            raise BadInputError(f"parity inputs must share a non-zero batch dim but got {shapes}")
    else:
        array = np.ascontiguousarray(np.asarray(inputs, dtype=np.float32))
        if array.ndim < 2 or array.shape[0] == 0:
            raise BadInputError(
                f"parity inputs must be a non-empty (N, F) matrix but got {array.shape}"
            )
    deployable.eval()
    batches = parity_batch_sizes(n_rows(array))
    env = _worker_env()
    results: dict[int, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="mlt-parity-") as tmp:
        work = Path(tmp)
        if isinstance(array, dict):
            inputs_path = work / "inputs.npz"
            np.savez(inputs_path, **array)
        else:
            inputs_path = work / "inputs.npy"
            np.save(inputs_path, array)
        started: dict[int, tuple[subprocess.Popen[str], Path]] = {}
        for i, record in enumerate(records):
            if not record.ok or not Path(record.path).is_file():
                results[i] = _failed(record, f"export not available: {record.error or 'no file'}")
                continue
            started[i] = _start_worker(i, record, inputs_path, batches, work, env)
        for i, (process, out_dir) in started.items():
            results[i] = _collect(
                records[i], process, out_dir, deployable, array, task, tolerance, timeout_s
            )
    return [results[i] for i in range(len(records))]
