"""Detectors: rules over the metric stream that name what went wrong in a training run.

One private module per finding (`_nan_loss.py`, `_exploding_gradients.py`, ...) behind the
`Detector` base class in `_base.py`, whose docstrings state the contract (NaN handling
included). Each finding id also names a playbook, `diagnostics/<id>.md`, whose front matter
holds the same default thresholds as the detector class.

    from mltrainer.detectors import run_detectors, DetectorSubscriber, build_detectors

    findings = run_detectors("runs/<id>/metrics.jsonl")                  # offline
    sub = DetectorSubscriber(build_detectors(context, cfg.diagnose.thresholds))
    stop = sub.on_event(event)                                          # online, per event

Detectors read plain event dicts; they never import torch.
"""

from __future__ import annotations

from mltrainer.detectors._base import (
    SEVERITIES,
    Detector,
    DetectorContext,
    Finding,
    StepBlock,
    step_event,
)
from mltrainer.detectors._convergence_stall import ConvergenceStallDetector
from mltrainer.detectors._dead_relu import DeadReluDetector
from mltrainer.detectors._exploding_gradients import ExplodingGradientsDetector
from mltrainer.detectors._loss_oscillation import LossOscillationDetector
from mltrainer.detectors._nan_loss import NanLossDetector
from mltrainer.detectors._overfitting import OverfittingDetector
from mltrainer.detectors._runner import (
    FINDING_IDS,
    REGISTRY,
    DetectorSubscriber,
    build_detectors,
    run_detectors,
)
from mltrainer.detectors._underfitting import UnderfittingDetector
from mltrainer.detectors._vanishing_gradients import VanishingGradientsDetector

__all__ = [
    "FINDING_IDS",
    "REGISTRY",
    "SEVERITIES",
    "ConvergenceStallDetector",
    "DeadReluDetector",
    "Detector",
    "DetectorContext",
    "DetectorSubscriber",
    "ExplodingGradientsDetector",
    "Finding",
    "LossOscillationDetector",
    "NanLossDetector",
    "OverfittingDetector",
    "StepBlock",
    "UnderfittingDetector",
    "VanishingGradientsDetector",
    "build_detectors",
    "run_detectors",
    "step_event",
]
