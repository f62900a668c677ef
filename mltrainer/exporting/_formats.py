"""Exporters, one per format, behind one small base class; `export_all` runs each of them.

One exporter failing never hides the others: its record says ok=False and why, and the next
format still runs. Records carry what a reviewer needs to trust the file: its hash and size,
the warnings the exporter emitted, and for ONNX the full checker's verdict.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from mltrainer.errors import BadInputError
from mltrainer.exporting._capture import captured, strip_ansi
from mltrainer.exporting._deployable import DeployableModel
from mltrainer.hashing import sha256_file

INPUT_NAME = "features"
OUTPUT_NAME = "outputs"
_MAX_ERROR = 2000  # characters; torch.export errors append pages of advice
_MAX_TRACE_ROWS = 16  # rows used to trace; more costs time and proves nothing extra


@dataclass
class ExportRecord:
    """What one export produced. `to_dict()` is JSON-safe."""

    format: str  # "onnx" | "torchscript" | "pt2"
    path: str
    ok: bool
    error: str | None = None
    size_bytes: int | None = None
    sha256: str | None = None
    checker: dict[str, Any] | None = None  # onnx only: {"passed", "error", "full_check"}
    warnings: list[str] = field(default_factory=list)
    opset: int | None = None  # onnx only: the default-domain opset in the file
    seconds: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Exporter:
    """One export format. `export` writes `path` (or raises) and returns details to record.

    `check` validates the written file and returns {"passed", "error", ...} or None when the
    format has no checker; a failed check makes the record not ok.
    """

    format: ClassVar[str]
    filename: ClassVar[str]

    def export(
        self, deployable: DeployableModel, example: tuple[torch.Tensor, ...], path: Path
    ) -> dict[str, Any]:
        raise NotImplementedError

    def check(self, path: Path) -> dict[str, Any] | None:
        return None


def _batch_dim() -> Any:
    # A named symbolic dim: torch.export raises if the model specialises the batch size, where
    # Dim.AUTO would silently freeze it. The name becomes the ONNX dim_param.
    return torch.export.Dim("batch")


def input_names(deployable: Any) -> list[str]:
    """The graph's input names: a table's one input, or the model's own (text: input_ids,
    attention_mask)."""
    return list(getattr(deployable, "input_names", [INPUT_NAME]))


def dynamic_shapes(deployable: Any) -> tuple[dict[int, Any], ...]:
    """Per input, its symbolic dims: the batch always; text's sequence length too. A name
    shared by two inputs is one dim (both must agree)."""
    spec = getattr(deployable, "dynamic_dims", [{0: "batch"}])
    made: dict[str, Any] = {"batch": _batch_dim()}

    def dim(entry: Any) -> Any:  # "name" or ("name", largest size the model can take)
        name, top = (entry, None) if isinstance(entry, str) else entry
        if name not in made:
            made[name] = torch.export.Dim(name, max=top) if top else torch.export.Dim(name)
        return made[name]

    return tuple({i: dim(entry) for i, entry in d.items()} for d in spec)


class OnnxExporter(Exporter):
    format = "onnx"
    filename = "model.onnx"

    def __init__(self, opset: int | None = None) -> None:
        self.opset = opset

    def export(
        self, deployable: DeployableModel, example: tuple[torch.Tensor, ...], path: Path
    ) -> dict[str, Any]:
        import onnx

        torch.onnx.export(
            deployable,
            example,
            str(path),
            dynamo=True,
            external_data=False,
            input_names=input_names(deployable),
            output_names=[OUTPUT_NAME],
            dynamic_shapes=dynamic_shapes(deployable),
            opset_version=self.opset,
            verbose=False,
        )
        proto = onnx.load(str(path), load_external_data=False)
        uses_external = [
            t.name
            for t in proto.graph.initializer
            if onnx.external_data_helper.uses_external_data(t)
        ]
        batch = proto.graph.input[0].type.tensor_type.shape.dim[0]
        details = {
            "opset": next(
                (o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None
            ),
            "opset_imports": {o.domain or "ai.onnx": o.version for o in proto.opset_import},
            "input_names": [i.name for i in proto.graph.input],
            "output_names": [o.name for o in proto.graph.output],
            "batch_dim": batch.dim_param or batch.dim_value,
            "dynamic_batch": bool(batch.dim_param),
            "self_contained": not uses_external
            and not path.with_name(path.name + ".data").exists(),
            "ir_version": proto.ir_version,
            "producer": f"{proto.producer_name} {proto.producer_version}".strip(),
        }
        if not details["self_contained"]:
            raise RuntimeError(f"ONNX weights were written outside the file: {uses_external}")
        if not details["dynamic_batch"]:
            raise RuntimeError(f"ONNX batch dimension is fixed at {batch.dim_value}")
        return details

    def check(self, path: Path) -> dict[str, Any]:
        import onnx

        try:
            # full_check also runs strict shape inference, which catches mis-typed graphs that
            # the structural check lets through.
            onnx.checker.check_model(str(path), full_check=True)
        except Exception as exc:  # the checker's verdict is data
            return {"passed": False, "error": f"{type(exc).__name__}: {exc}", "full_check": True}
        return {"passed": True, "error": None, "full_check": True}


class TorchScriptExporter(Exporter):
    format = "torchscript"
    filename = "model.ts"

    def export(
        self, deployable: DeployableModel, example: tuple[torch.Tensor, ...], path: Path
    ) -> dict[str, Any]:
        # torch.jit.trace is deprecated in torch >= 2.13; its warning lands in the record via
        # `captured`, which is where a model card can quote it.
        traced = torch.jit.trace(deployable, example, check_trace=True)
        traced.save(str(path))
        return {"method": "torch.jit.trace", "trace_batch": int(example[0].shape[0])}


class Pt2Exporter(Exporter):
    format = "pt2"
    filename = "model.pt2"

    def export(
        self, deployable: DeployableModel, example: tuple[torch.Tensor, ...], path: Path
    ) -> dict[str, Any]:
        program = torch.export.export(deployable, example,
                                      dynamic_shapes=dynamic_shapes(deployable))
        torch.export.save(program, str(path))
        return {"method": "torch.export.export", "dynamic_batch": True}


EXPORTERS: dict[str, Exporter] = {
    exporter.format: exporter
    for exporter in (OnnxExporter(), TorchScriptExporter(), Pt2Exporter())
}
FORMATS: tuple[str, ...] = tuple(EXPORTERS)


def trace_inputs(example: Any, n_features: int | None = None) -> tuple[torch.Tensor, ...]:
    """One traced tensor per graph input: `trace_example` of the one array, or of each named
    array (text's input_ids and attention_mask), all with the same number of rows."""
    if not isinstance(example, dict):
        return (trace_example(example, n_features),)
    arrays = [np.asarray(v) for v in example.values()]
    n = len(arrays[0]) if arrays else 0
    if n == 0 or any(a.ndim < 2 or len(a) != n for a in arrays):
        raise BadInputError("example inputs must share a non-empty batch dim but got "
                            f"{[a.shape for a in arrays]}")
    rows = max(2, min(n, _MAX_TRACE_ROWS))
    return tuple(torch.from_numpy(_repeat_rows(a, rows)) for a in arrays)


def trace_example(example: np.ndarray, n_features: int | None = None) -> torch.Tensor:
    """The batch every exporter traces with: at least 2 rows, so the batch dim stays symbolic.

    torch.export specialises sizes 0 and 1, and a batch equal to the feature count invites
    the two to be confused, so both are avoided. Images (N, C, H, W) keep their shape.
    """
    array = np.asarray(example, dtype=np.float32)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim < 2 or array.shape[0] == 0:
        raise BadInputError(f"example must be a non-empty (N, F) matrix but got {array.shape}")
    if array.ndim > 2:  # images
        return torch.from_numpy(_repeat_rows(array, max(2, min(len(array), _MAX_TRACE_ROWS))))
    if n_features is not None and array.shape[1] != n_features:
        raise BadInputError(
            f"example has {array.shape[1]} columns but the model's scale has {n_features}"
        )
    rows = min(array.shape[0], _MAX_TRACE_ROWS)
    if rows < 2 or rows == array.shape[1]:
        rows = 3 if array.shape[1] == 2 else 2
    return torch.from_numpy(_repeat_rows(array, rows))


def _repeat_rows(array: np.ndarray, rows: int) -> np.ndarray:
    reps = -(-rows // array.shape[0])  # ceil: repeat rows when the example is short
    return np.ascontiguousarray(np.concatenate([array] * reps)[:rows])


def export_one(
    exporter: Exporter, deployable: DeployableModel, example: tuple[torch.Tensor, ...],
    out_dir: Path
) -> ExportRecord:
    path = out_dir / exporter.filename
    # A stale file from an earlier run must never pass for this run's export.
    path.unlink(missing_ok=True)
    path.with_name(path.name + ".data").unlink(missing_ok=True)
    record = ExportRecord(format=exporter.format, path=str(path), ok=False)
    started = time.perf_counter()
    try:
        with captured(record.warnings), torch.no_grad():
            record.details = exporter.export(deployable, example, path)
            record.checker = exporter.check(path)
        record.opset = record.details.get("opset")
        if record.checker is not None and not record.checker["passed"]:
            record.error = f"checker failed: {record.checker['error']}"
        else:
            record.ok = True
    except Exception as exc:  # recorded; the other formats still run
        record.error = strip_ansi(f"{type(exc).__name__}: {exc}")[:_MAX_ERROR]
        record.details["traceback"] = traceback.format_exc()[-4000:]
    record.seconds = round(time.perf_counter() - started, 3)
    if path.is_file():
        record.size_bytes = path.stat().st_size
        record.sha256 = sha256_file(path)
    return record


def export_all(
    deployable: DeployableModel,
    example: Any,
    out_dir: Path,
    *,
    formats: Sequence[str] = FORMATS,
) -> list[ExportRecord]:
    """Write model.onnx, model.ts and model.pt2 into `out_dir`; one record per format.

    `example` is encoded features, float32 (N, F), NaN allowed (or an item model's inputs:
    images (N, C, H, W), named text arrays); a few rows are enough.
    """
    unknown = [fmt for fmt in formats if fmt not in EXPORTERS]
    if unknown:
        raise BadInputError(f"unknown export formats {unknown}; known: {list(FORMATS)}")
    traced = trace_inputs(example, getattr(deployable, "n_features", None))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    deployable.eval()
    return [export_one(EXPORTERS[fmt], deployable, traced, out_dir) for fmt in formats]
