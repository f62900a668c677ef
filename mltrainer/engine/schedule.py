"""Optimisers and the learning-rate schedule.

The schedule is a pure function of the global step (plus, for `plateau`, a factor driven by the
val metric), so a resumed run gets the same lr at every step as an uninterrupted one: there is
no hidden "last_epoch" counter to drift. The lr is set on the optimiser before each step.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

from mltrainer.config import TrainingConfig
from mltrainer.engine.metrics import is_better


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: TrainingConfig
                    ) -> torch.optim.Optimizer:
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay)
    raise ValueError(f"optimizer must be adamw, adam or sgd but got {cfg.optimizer!r}")


class LrSchedule:
    """Linear warmup over `warmup_epochs`, then `none | cosine | step | plateau`.

    The schedule spans `horizon_epochs` epochs (default: `cfg.epochs`) of `steps_per_epoch`
    steps: a run may stop before its horizon and still get, at every step, the lr of the longer
    run it replays (finalize's production training stops at the source run's best epoch, on
    train+val: more steps per epoch stretch every part of the schedule by the same factor).

    - warmup: lr rises linearly per step from base/warmup_steps to base.
    - cosine: per step from base (end of warmup) towards 0 at the last step of the run.
    - step: multiplied by `gamma` every `step_size` epochs, counted from the first epoch.
    - plateau: multiplied by `gamma` after `plateau_patience` epochs without improvement of
      the goal metric on val (NaN counts as no improvement).
    """

    def __init__(self, cfg: TrainingConfig, steps_per_epoch: int, greater_is_better: bool,
                 horizon_epochs: int | None = None) -> None:
        if horizon_epochs is not None and horizon_epochs < cfg.epochs:
            raise ValueError(f"horizon_epochs must be at least training.epochs ({cfg.epochs}) "
                             f"but got {horizon_epochs}")
        self.kind = cfg.scheduler
        self.base_lr = cfg.lr
        self.steps_per_epoch = steps_per_epoch
        self.horizon_epochs = horizon_epochs or cfg.epochs
        self.total_steps = self.horizon_epochs * steps_per_epoch
        self.warmup_steps = cfg.warmup_epochs * steps_per_epoch
        self.step_size = cfg.step_size
        self.gamma = cfg.gamma
        self.patience = cfg.plateau_patience
        self.greater_is_better = greater_is_better
        # plateau state: the only part that is not a function of the step
        self.factor = 1.0
        self.best: float | None = None
        self.bad_epochs = 0

    def lr_at(self, step: int) -> float:
        """The lr of optimisation step `step` (0-based over the run)."""
        factor = 1.0
        if step < self.warmup_steps:
            factor = (step + 1) / self.warmup_steps
        if self.kind == "cosine":
            span = max(1, self.total_steps - self.warmup_steps)
            progress = min(1.0, max(0, step - self.warmup_steps) / span)
            factor *= 0.5 * (1.0 + math.cos(math.pi * progress))
        elif self.kind == "step":
            factor *= self.gamma ** ((step // self.steps_per_epoch) // self.step_size)
        elif self.kind == "plateau":
            factor *= self.factor
        return self.base_lr * factor

    def apply(self, optimizer: torch.optim.Optimizer, step: int) -> float:
        lr = self.lr_at(step)
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)  # model.head_lr's group
        return lr

    def on_epoch_end(self, metric: float) -> None:
        if self.kind != "plateau":
            return
        if is_better(metric, self.best, self.greater_is_better):
            self.best, self.bad_epochs = metric, 0
            return
        self.bad_epochs += 1
        if self.bad_epochs > self.patience:
            self.factor *= self.gamma
            self.bad_epochs = 0

    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "factor": self.factor, "best": self.best,
                "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.factor = float(state["factor"])
        self.best = state["best"]
        self.bad_epochs = int(state["bad_epochs"])
