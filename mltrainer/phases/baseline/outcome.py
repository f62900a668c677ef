"""What `mlt train-baseline` measured: the typed outcome its gate judges and diagnose reads."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from mltrainer.runner import Outcome


class RunSummary(BaseModel):
    """One training run, as the phases that train (baseline, optimize) record it."""

    model_config = ConfigDict(extra="forbid")
    id: str
    best_epoch: int | None = None
    val: dict[str, Any] = Field(default_factory=dict)  # val metrics at the best epoch
    stopped_reason: str | None = None  # completed | early_stopping | detector:<id> | ...
    epochs_run: int | None = None
    wall_time_s: float | None = None
    device: str | None = None
    device_notice: str | None = None  # set when training.device auto fell back to the CPU
    world_size: int = 1  # training processes (torchrun / DDP)
    precision: str | None = None  # fp32 | bf16 | fp16
    grad_accum_steps: int | None = None  # micro-batches per optimisation step
    train_eval_rows: int | None = None  # training rows the epochs' train metrics are over
    dir: str  # the run folder, relative to the project


class BaselineOutcome(Outcome):
    phase: ClassVar[str] = "baseline"
    run: RunSummary
    history: list[dict[str, Any]]  # one entry per epoch: train_loss, val_loss, val, lr, ...
    metric: str
    best_metric: float | None
    trivial_baseline: dict[str, Any]
    goal: dict[str, Any]  # metric, target
    goal_met: bool
    reload: dict[str, Any]  # checkpoint, recorded, reloaded, identical
    online_findings: list[dict[str, Any]]  # what the detectors found while it trained
    detector_stop: bool
