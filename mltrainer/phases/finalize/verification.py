"""Verifying what ships: parity of every export in a fresh process, latency, and the
DEPLOYMENT.md snippet run as a user would run it.

Parity runs on the validation split's encoded rows plus one row with every number missing,
so the in-graph NaN fill is exercised by every format. The expected outputs of the snippet come
from PyTorch eager on the same rows, encoded by the data layer's own `Preprocessor.encode`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from mltrainer.project import Project

PARITY_MAX_ROWS = 4096  # validation rows compared per export: bounds each worker's time and memory
LATENCY_BATCHES = (1, 64)
LATENCY_ITERS = 100  # timed calls per runtime and batch size, after 10 warm-up calls,
LATENCY_BUDGET_S = 1.0  # or fewer once they took this long (at least 20; a transformer's)
SNIPPET_TIMEOUT_S = 120
# The snippet runs the ONNX graph in float32, the reference is PyTorch eager: parity's tolerance.
SNIPPET_TOLERANCE = {"atol": 1e-5, "rtol": 1e-4}


def missing_row(preprocessor: Any) -> np.ndarray:
    """One encoded row with every number missing (NaN) and no category set."""
    row = np.zeros((1, preprocessor.n_features), dtype=np.float32)
    j = 0
    for col in preprocessor.columns:
        if col.kind == "numeric":
            row[0, j] = np.nan
            j += 1
        else:
            j += len(col.categories)
    return row


def parity_inputs(val_encoded: np.ndarray, preprocessor: Any) -> np.ndarray:
    """The first PARITY_MAX_ROWS validation rows, then the all-missing row."""
    rows = np.asarray(val_encoded, dtype=np.float32)[:PARITY_MAX_ROWS]
    return np.ascontiguousarray(np.vstack([rows, missing_row(preprocessor)]))


PARITY_INPUTS = {True: "validation rows and one row with every value missing",
                 False: "validation items"}


def verify_exports(project: Project, deployable: Any, records: list[Any], inputs: Any,
                   task: str, *, missing_row: bool
                   ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(one entry per export: file, checker, parity, latency; the full latency record).
    `missing_row`: the inputs end with `missing_row`'s row (a table's), as the entries say."""
    from mltrainer.exporting import RUNTIMES, check_parity, measure_latency
    from mltrainer.runtime.runners import n_rows, take_rows

    parity = check_parity(records, deployable, inputs, task)
    table = isinstance(inputs, np.ndarray) and inputs.ndim == 2
    latency = measure_latency(deployable, records, inputs[0] if table else take_rows(inputs, 1),
                              batch_sizes=LATENCY_BATCHES, iters=LATENCY_ITERS,
                              budget_s=LATENCY_BUDGET_S)
    exports = []
    for record, par in zip(records, parity):
        runtime = RUNTIMES.get(record.format, record.format)
        timed = latency["runtimes"].get(runtime, {})
        exports.append({
            "format": record.format, "path": project.relative(Path(record.path)),
            "ok": record.ok, "error": record.error, "size_bytes": record.size_bytes,
            "sha256": record.sha256, "checker": record.checker, "opset": record.opset,
            "export_warnings": len(record.warnings),
            "passed": bool(par["passed"]), "reason": par.get("reason"),
            "max_abs_diff": par.get("max_abs_diff"), "max_rel_diff": par.get("max_rel_diff"),
            "label_agreement": par.get("label_agreement"), "tolerance": par.get("tolerance"),
            "parity_rows": n_rows(inputs), "parity_inputs": PARITY_INPUTS[missing_row],
            "batch_sizes": par.get("batch_sizes"),
            "reloaded_in_fresh_process": bool(par.get("reloaded_in_fresh_process")),
            "nonfinite_mismatch": sum(int(b.get("nonfinite_mismatch") or 0)
                                      for b in par.get("batches", [])),
            "worker": par.get("worker"), "parity_error": par.get("error"),
            "runtime": runtime, "latency_ms": _latency_ms(timed),
        })
    return exports, latency


def _latency_ms(timed: dict[str, Any]) -> dict[str, Any] | None:
    batches = timed.get("batches") or {}
    if not timed.get("ok") or not batches:
        return None
    first = batches[min(batches, key=int)]
    return {"batch_size": int(min(batches, key=int)), "p50": first["p50_ms"],
            "p95": first["p95_ms"],
            "by_batch": {b: {"p50": v["p50_ms"], "p95": v["p95_ms"]} for b, v in batches.items()}}


def example_rows(preprocessor: Any) -> list[dict[str, Any]]:
    """Three synthetic raw rows (no real data ships): every column at its train median / first
    category; every column missing; one standard deviation above the mean / last category."""
    params = preprocessor.scale_params
    rows: list[dict[str, Any]] = [{}, {}, {}]
    j = 0
    for col in preprocessor.columns:
        if col.kind == "numeric":
            rows[0][col.name] = params["fill"][j]
            rows[1][col.name] = None
            rows[2][col.name] = params["mean"][j] + params["std"][j]
            j += 1
        else:
            cats = list(col.categories)
            rows[0][col.name] = cats[0] if cats else None
            rows[1][col.name] = None
            rows[2][col.name] = cats[-1] if cats else None
            j += len(cats)
    return rows


def expected_predictions(deployable: Any, preprocessor: Any, spec: Any,
                         rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the snippet must print for `rows`, from PyTorch eager."""
    import pandas as pd
    import torch

    from mltrainer.engine.metrics import softmax

    frame = pd.DataFrame(rows, columns=[c.name for c in preprocessor.columns])
    encoded = preprocessor.encode(frame)
    with torch.inference_mode():
        out = deployable(torch.from_numpy(encoded)).numpy().astype(np.float64)
    if spec.task == "regression":
        return [{"value": float(v)} for v in out.reshape(len(rows))]
    labels = list(spec.class_labels)
    probs = softmax(out)
    return [{"label": labels[int(p.argmax())],
             "probabilities": {str(lab): float(q) for lab, q in zip(labels, p)}}
            for p in probs]


def run_snippet(snippet: str, folder: Path, expected: list[dict[str, Any]]) -> dict[str, Any]:
    """Run the snippet in a fresh interpreter from the artifact folder; compare its output."""
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    try:
        proc = subprocess.run([sys.executable, "-c", snippet], cwd=folder, env=env,
                              capture_output=True, text=True, timeout=SNIPPET_TIMEOUT_S,
                              check=False)
    except subprocess.TimeoutExpired:
        return {"ran": False, "matches": False, "error": f"timed out after {SNIPPET_TIMEOUT_S} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    try:
        got = json.loads(lines[-1])
    except (IndexError, ValueError):
        return {"ran": proc.returncode == 0, "returncode": proc.returncode, "matches": False,
                "error": (proc.stderr.strip() or "no JSON output")[-1500:]}
    return {"ran": proc.returncode == 0, "returncode": proc.returncode, "rows": len(expected),
            **compare_predictions(got, expected)}


def compare_predictions(got: Any, expected: list[dict[str, Any]]) -> dict[str, Any]:
    """Labels equal; probabilities or values within atol + rtol * |expected| (float32 graphs)."""
    if not isinstance(got, list) or len(got) != len(expected):
        return {"matches": False,
                "error": f"expected {len(expected)} predictions, got {got!r}"[:500]}
    pairs: list[tuple[float, float]] = []
    labels_agree = True
    for g, e in zip(got, expected):
        if "value" in e:
            pairs.append((float(g.get("value", np.inf)), e["value"]))
            continue
        labels_agree = labels_agree and g.get("label") == e["label"]
        probs = g.get("probabilities") or {}
        pairs.extend((float(probs.get(k, np.inf)), v) for k, v in e["probabilities"].items())
    a, b = np.array(pairs, dtype=np.float64).reshape(-1, 2).T
    diff = np.abs(a - b)
    close = bool(np.all(diff <= SNIPPET_TOLERANCE["atol"]
                        + SNIPPET_TOLERANCE["rtol"] * np.abs(b)))
    return {"matches": bool(labels_agree and close), "labels_agree": labels_agree,
            "max_abs_diff": float(diff.max()) if diff.size else 0.0,
            "tolerance": dict(SNIPPET_TOLERANCE)}
