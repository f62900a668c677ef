"""Export, parity and latency, one package: what `mlt finalize` calls to ship a model verified.

    deployable = build_deployable(model, preprocessor.scale_params, task,   # NaN fill + scale,
                                  target_scale=spec.target_scale)         # + y * std + mean
    records = export_all(deployable, val_X[:16], project.artifacts)        # onnx, ts, pt2
    parity = check_parity(records, deployable, test_X, task)              # fresh processes
    latency = measure_latency(deployable, records, test_X[0])             # p50/p95, ms

The model's input is the encoded feature matrix, float32 (N, F): numeric columns raw (NaN
allowed), categoricals already one-hot; for item models (`build_item_deployable`) a batch of
images (N, C, H, W) or named text arrays (input_ids, attention_mask; batch and length free).
Everything here returns data and prints nothing.
One private module per concern (`_deployable`, `_formats`, `_parity`, `_latency`, `_capture`);
importing this package imports torch. Loading and running an export without torch (the
fresh-process parity worker, `mlt predict`) is `mltrainer.runtime`.
"""

from __future__ import annotations

from mltrainer.exporting._deployable import (
    TASKS,
    DeployableModel,
    ScaleModule,
    TargetUnscale,
    build_deployable,
)
from mltrainer.exporting._formats import (
    EXPORTERS,
    FORMATS,
    INPUT_NAME,
    OUTPUT_NAME,
    Exporter,
    ExportRecord,
    export_all,
)
from mltrainer.exporting._items import build_item_deployable, model_inputs
from mltrainer.exporting._latency import RUNTIMES, measure_latency
from mltrainer.exporting._parity import (
    DEFAULT_TOLERANCE,
    check_parity,
    compare_outputs,
    parity_batch_sizes,
)
from mltrainer.runtime.runners import load_runner

__all__ = [
    "DEFAULT_TOLERANCE",
    "EXPORTERS",
    "FORMATS",
    "INPUT_NAME",
    "OUTPUT_NAME",
    "RUNTIMES",
    "TASKS",
    "DeployableModel",
    "ExportRecord",
    "Exporter",
    "ScaleModule",
    "TargetUnscale",
    "build_deployable",
    "build_item_deployable",
    "check_parity",
    "compare_outputs",
    "export_all",
    "load_runner",
    "measure_latency",
    "model_inputs",
    "parity_batch_sizes",
]
