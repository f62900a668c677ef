"""Experiment tracking beyond the run folder: `tracking.report_to: [tensorboard, mlflow, trackio]`.

The names are the Hugging Face Trainer's. The local metric stream (`runs/<id>/metrics.jsonl`) is
always written and stays the source of truth; a tracker is one more subscriber of the engine
that mirrors the run into a backend's own store, on this machine only:

    tensorboard  event files in runs/<id>/tensorboard/      (tensorboard --logdir runs)
    mlflow       sqlite:///<project>/.mlt/mlflow.db          (mlflow ui --backend-store-uri ...)
                 experiment = cfg.name, run name = the run id, artifacts (none logged) under
                 .mlt/mlflow-artifacts/; MLFLOW_TRACKING_URI is ignored, telemetry is off
    trackio      trackio's local store (TRACKIO_DIR, default ~/.cache/huggingface/trackio):
                 project = cfg.name, run name = the run id   (trackio show --project NAME)

What each receives (the same for all three):

    params   at the start event: the resolved config flattened to dotted keys
             (`training.lr`, `model.hidden` = "[8]", ...) plus run_id, metric, kind, device,
             greater_is_better, steps_per_epoch, n_train, n_val, config_fingerprint and
             baseline.<name> when the run has a trivial baseline
    metrics  x axis = the global optimisation step, for every metric:
             step/loss, step/lr, step/grad_norm   every `step_stride(steps_per_epoch)` steps
                                                  (at most ~50 points an epoch; a non-finite
                                                  loss is always logged)
             epoch/train_loss, epoch/val_loss, epoch/lr, epoch/wall_time_s, epoch (its number),
             val/<metric> for every validation metric, train/<metric> when the event has them
    end      flush and close at the end event (also after a stop or an interrupt, which end
             the stream the same way); a run that dies by an exception is closed at exit

Each backend is an optional extra (`pip install 'mltrainer[mlflow]'`) imported lazily: a
missing one is a ConfigError when the Trainer is built, before any work. A tracker never
stops training: `on_event` always returns None, and a backend that fails while the run goes
on is switched off for the rest of the run with one RuntimeWarning.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mltrainer.errors import ConfigError
from mltrainer.tracking._base import (
    Tracker,
    epoch_metrics,
    flatten_params,
    require,
    step_metrics,
    step_stride,
)
from mltrainer.tracking._mlflow import MlflowTracker
from mltrainer.tracking._tensorboard import TensorBoardTracker
from mltrainer.tracking._trackio import TrackioTracker

if TYPE_CHECKING:
    from mltrainer.config import MltConfig

# name in tracking.report_to -> its tracker; each backend imports its library lazily
TRACKERS: dict[str, type[Tracker]] = {
    "tensorboard": TensorBoardTracker,
    "mlflow": MlflowTracker,
    "trackio": TrackioTracker,
}


def tracker_class(name: str) -> type[Tracker]:
    try:
        return TRACKERS[name]
    except KeyError:
        raise ConfigError(
            f"tracking.report_to has unknown tracker {name!r}",
            hint=f"use any of {', '.join(TRACKERS)}",
        ) from None


def trackers_for(cfg: MltConfig, run_dir: Path, root: Path) -> list[Tracker]:
    """One tracker per name in `cfg.tracking.report_to` (in order, duplicates once), for the
    Trainer's subscribers. Raises ConfigError now when a backend's package is missing."""
    if not cfg.tracking.report_to:
        return []
    names = list(dict.fromkeys(cfg.tracking.report_to))
    return [tracker_class(name)(cfg, Path(run_dir), Path(root)) for name in names]


__all__ = [
    "TRACKERS",
    "MlflowTracker",
    "TensorBoardTracker",
    "Tracker",
    "TrackioTracker",
    "epoch_metrics",
    "flatten_params",
    "require",
    "step_metrics",
    "step_stride",
    "tracker_class",
    "trackers_for",
]
