"""convergence_stall: the train loss stopped going down while it is still high.

Rule (SageMaker `LossNotDecreasing`, judged per epoch): the best epoch train loss of the last
`window` epochs improves on the best loss before them by less than `min_improvement`
(relative), while that best is still at least `high_loss` x the reference loss (the trivial
baseline's, or the first step's). The second condition keeps a converged model - whose loss has
flattened near zero - from counting as stalled. A run whose val metric has reached the goal
(`goal_target`) at some epoch is never stalled: "still high" is judged against what the user
asked for, not only against the trivial loss - on imbalanced classes or noisy targets the
achievable loss is a large share of the trivial one (issue 11, fourth pass: a healthy 85/15 MLP
converged at 70 % of it). Onset: the first epoch of the window. The train loss is the
end-of-epoch model's (`train_eval_loss`) when the stream has it, else the epoch mean (see
`fitted_loss`).
"""

from __future__ import annotations

from collections import deque
from typing import Any, ClassVar

from mltrainer.detectors._base import Detector, Finding, fitted_loss


class ConvergenceStallDetector(Detector):
    id: ClassVar[str] = "convergence_stall"
    severity: ClassVar[str] = "warning"
    defaults: ClassVar[dict[str, float]] = {"window": 3, "min_improvement": 0.01, "high_loss": 0.5}
    kinds: ClassVar[dict[str, str]] = {"window": "count", "min_improvement": "nonnegative"}
    watches: ClassVar[frozenset[str]] = frozenset({"epoch"})
    _state_fields: ClassVar[tuple[str, ...]] = ("recent", "best_before", "goal_met")
    _optional_state: ClassVar[frozenset[str]] = frozenset({"goal_met"})

    def _setup(self) -> None:
        self.recent: deque[list[Any]] = deque()  # [epoch, step, train_loss], the last `window`
        self.best_before: float | None = None  # best train loss before the window
        self.goal_met = False  # some epoch's val metric reached the goal

    def _observe(self, event: dict[str, Any]) -> Finding | None:
        if self.context.meets_goal(self.metric_of(event, "val")):
            self.goal_met = True
        loss = fitted_loss(event)
        if loss is None or self.goal_met:
            return None
        if len(self.recent) >= self.thresholds["window"]:
            leaving = self.recent.popleft()[2]
            self.best_before = (
                leaving if self.best_before is None else min(self.best_before, leaving)
            )
        self.recent.append([event.get("epoch"), event.get("step"), loss])
        ref, source = self.reference_loss()
        if self.best_before is None or ref is None or len(self.recent) < self.thresholds["window"]:
            return None
        best_now = min(row[2] for row in self.recent)
        improvement = (self.best_before - best_now) / self.best_before if self.best_before else 0.0
        high = self.thresholds["high_loss"] * ref
        if improvement >= self.thresholds["min_improvement"] or best_now < high:
            return None
        first = self.recent[0]
        return self.finding(
            first[0], first[1],
            f"train loss improved by {improvement:.2%} over {len(self.recent)} epochs (needs "
            f"{self.thresholds['min_improvement']:.0%}) and is stuck at {best_now:.4g}, "
            f"{best_now / ref:.0%} of the reference loss {ref:.4g}",
            improvement=improvement, min_improvement=self.thresholds["min_improvement"],
            best_before=self.best_before, best_in_window=best_now,
            train_losses=[row[2] for row in self.recent], epochs=[row[0] for row in self.recent],
            reference_loss=ref, reference=source, loss_ratio=best_now / ref,
            high_loss=self.thresholds["high_loss"], window=self.thresholds["window"],
        )
