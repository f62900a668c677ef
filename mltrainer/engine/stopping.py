"""Early stopping on the goal metric on val: a decision and its reason, nothing else.

Semantics (those of Lightning's EarlyStopping): an epoch improves when its value beats the best
value so far by more than `min_delta` (NaN never improves), or, on an exact tie, has a lower val
loss (`engine.metrics.improves`: the same rule as the best checkpoint); after `patience` epochs
in a row without improvement the run stops. `patience == 0` turns early stopping off.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mltrainer.engine.metrics import improves


@dataclass(frozen=True)
class StopDecision:
    should_stop: bool
    improved: bool
    reason: str


class EarlyStopping:
    def __init__(self, patience: int, min_delta: float, greater_is_better: bool) -> None:
        if patience < 0:
            raise ValueError(f"patience cannot be negative but got {patience}")
        if min_delta < 0:
            raise ValueError(f"min_delta cannot be negative but got {min_delta}")
        self.patience = patience
        self.min_delta = min_delta
        self.greater_is_better = greater_is_better
        self.best: float | None = None
        self.best_loss: float | None = None  # the val loss of the best epoch (breaks ties)
        self.wait = 0  # epochs in a row without improvement

    def update(self, value: float, loss: float | None = None) -> StopDecision:
        if improves(value, loss, self.best, self.best_loss, self.greater_is_better,
                    self.min_delta):
            self.best, self.best_loss, self.wait = value, loss, 0
            return StopDecision(False, True, f"improved to {value:.6g}")
        self.wait += 1
        if self.patience == 0:
            return StopDecision(False, False, "early stopping off (patience 0)")
        if self.wait >= self.patience:
            return StopDecision(True, False, f"no improvement over {self.best} by more than "
                                f"{self.min_delta} for {self.wait} epochs (patience "
                                f"{self.patience})")
        return StopDecision(False, False, f"no improvement ({self.wait}/{self.patience})")

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_loss": self.best_loss, "wait": self.wait}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state["best"]
        self.best_loss = state.get("best_loss")  # absent in checkpoints of older versions
        self.wait = int(state["wait"])
