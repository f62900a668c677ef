"""Fresh-process parity worker: `python -m mltrainer.runtime.worker REQUEST.json`.

Loads one export the way a deployment would (onnxruntime / torch.jit.load / torch.export.load),
runs it on the first b rows of the inputs for each requested batch size, and writes
`outputs_b<b>.npy` plus `result.json` into the request's out_dir. It shares no memory with
the process that exported: a model that only works because of state left in the exporting
process (a monkeypatch, a registered op, a cached module) fails here.

request.json: {"format", "path", "inputs" (.npy: one float32 input; .npz: named inputs in the
               graph's order, dtypes kept), "batch_sizes": [int], "out_dir", "threads"}
result.json:  {"ok", "error", "python", "pid", "torch_imported", "runtime", "warnings",
               "outputs": {"<b>": "<file>"}, "seconds"}
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from mltrainer.runtime.runners import Inputs, load_runner, take_rows


def load_inputs(path: str) -> Inputs:
    if path.endswith(".npz"):
        with np.load(path) as archive:
            return {name: archive[name] for name in archive.files}
    return np.load(path).astype(np.float32, copy=False)


def run_request(request: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    out_dir = Path(request["out_dir"])
    result: dict[str, Any] = {
        "ok": False,
        "error": None,
        "python": sys.executable,
        "pid": os.getpid(),
        "format": request["format"],
        "path": request["path"],
        "outputs": {},
        "warnings": [],
    }
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            runner, info = load_runner(
                request["format"], request["path"], threads=request.get("threads")
            )
            inputs = load_inputs(request["inputs"])
            for batch in request["batch_sizes"]:
                outputs = np.asarray(runner(take_rows(inputs, batch)))
                name = f"outputs_b{batch}.npy"
                np.save(out_dir / name, outputs)
                result["outputs"][str(batch)] = name
        result["runtime"] = info
        result["warnings"] = sorted({f"{w.category.__name__}: {w.message}" for w in caught})
        result["ok"] = True
    except Exception as exc:  # any failure is the finding, reported to the parent
        result["error"] = f"{type(exc).__name__}: {exc}"
        result["traceback"] = traceback.format_exc()[-4000:]
    # Evidence for the ONNX check: whether this process ever imported torch.
    result["torch_imported"] = "torch" in sys.modules
    result["seconds"] = round(time.perf_counter() - started, 3)
    return result


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m mltrainer.runtime.worker REQUEST.json", file=sys.stderr)
        return 2
    request = json.loads(Path(argv[0]).read_text())
    result = run_request(request)
    (Path(request["out_dir"]) / "result.json").write_text(json.dumps(result, indent=1))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
