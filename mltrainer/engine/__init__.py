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

from mltrainer.engine.checkpoint import find_resume_checkpoint, load_checkpoint
from mltrainer.engine.devices import resolve_device
from mltrainer.engine.inference import load_model_from_checkpoint, predict
from mltrainer.engine.loop import Subscriber, Trainer
from mltrainer.engine.metrics import compute_metrics, metric_names
from mltrainer.engine.probe import determinism_probe
from mltrainer.engine.result import RunResult
from mltrainer.engine.seeding import seed_everything, set_deterministic
from mltrainer.engine.stopping import EarlyStopping, StopDecision

__all__ = [
    "EarlyStopping", "RunResult", "StopDecision", "Subscriber", "Trainer", "compute_metrics",
    "determinism_probe", "find_resume_checkpoint", "load_checkpoint",
    "load_model_from_checkpoint", "metric_names", "predict", "resolve_device", "seed_everything",
    "set_deterministic",
]
