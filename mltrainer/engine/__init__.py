"""The training engine: seeding, the loop, checkpoints, metrics.

    from mltrainer.engine import Trainer, RunResult, seed_everything, determinism_probe
    result = Trainer(cfg, bundle, run_dir, subscribers=[...], baseline={...}).fit(resume=None)

Modules: `seeding` (seeds, deterministic flags, RNG states), `batching` (in-memory batches),
`schedule` (optimisers, lr schedule), `step` (the one optimisation step and how its parts are
built), `stopping` (early stopping), `metrics`, `checkpoint`, `inference` (predict, reload),
`loop` (Trainer), `runstate` (what a checkpoint holds, captured and restored), `runfolder`
(run files, refusals to overwrite), `probe` (determinism_probe), `signals`, `result`.
The engine never prints: progress reaches the CLI as events through subscribers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mltrainer.engine.checkpoint import find_resume_checkpoint, load_checkpoint
    from mltrainer.engine.devices import resolve_device
    from mltrainer.engine.inference import load_model_from_checkpoint, predict
    from mltrainer.engine.loop import Subscriber, Trainer
    from mltrainer.engine.metrics import compute_metrics, metric_names
    from mltrainer.engine.probe import determinism_probe
    from mltrainer.engine.result import RunResult
    from mltrainer.engine.seeding import seed_everything, set_deterministic
    from mltrainer.engine.stopping import EarlyStopping, StopDecision

# Loaded on first access, as `mltrainer.data` does: importing a torch-free submodule
# (`engine.launch`, which the CLI checks --nproc with) must not import torch, so that
# `mlt plan` can start preparing its data in a forked child before torch loads
_LAZY = {
    "find_resume_checkpoint": "checkpoint", "load_checkpoint": "checkpoint",
    "resolve_device": "devices", "load_model_from_checkpoint": "inference",
    "predict": "inference", "Subscriber": "loop", "Trainer": "loop",
    "compute_metrics": "metrics", "metric_names": "metrics", "determinism_probe": "probe",
    "RunResult": "result", "seed_everything": "seeding", "set_deterministic": "seeding",
    "EarlyStopping": "stopping", "StopDecision": "stopping",
}

__all__ = [
    "EarlyStopping", "RunResult", "StopDecision", "Subscriber", "Trainer", "compute_metrics",
    "determinism_probe", "find_resume_checkpoint", "load_checkpoint",
    "load_model_from_checkpoint", "metric_names", "predict", "resolve_device", "seed_everything",
    "set_deterministic",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mltrainer.engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"mltrainer.engine.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
