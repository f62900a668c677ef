"""underfitting: the model cannot fit its own training data, and has stopped getting better.

Rule: from epoch `min_epochs` on, the train loss has flattened - the best of the last
`patience` epochs improves on the best before them by less than `min_progress` (relative) -
while the fit is poor: the train loss is still at or above (1 - `loss_margin`) x the reference
loss (no better than the trivial baseline `mlt plan` measured), or the train metric (epoch
events' `train`) falls short of the goal (`goal_target` in the start event) - the model does
not reach the goal even on the rows it learns from (the "high bias" diagnosis: compare the
training error with the desired performance). A model whose train metric meets the goal is
never underfitting; one whose loss is still falling is still learning (a raw-unit regression
that spends its first epochs learning the target's mean, a tiny data set with two steps an
epoch). Onset: the first epoch of the flat window.

All of it is scale-free: losses are judged against the reference loss and against their own
earlier values, metrics against the goal. The train loss judged is the end-of-epoch model's
(`train_eval_loss`) when the stream has it, else the epoch mean (`fitted_loss`). Without a
baseline in the context, the reference is the first step's loss (the untrained model's), or
the first epoch's train loss in a stream without steps.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any, ClassVar

from mltrainer.detectors._base import Detector, Finding, finite, fitted_loss


class UnderfittingDetector(Detector):
    id: ClassVar[str] = "underfitting"
    severity: ClassVar[str] = "warning"
    defaults: ClassVar[dict[str, float]] = {
        "min_epochs": 3,
        "patience": 3,
        "loss_margin": 0.1,
        "min_progress": 0.05,
    }
    kinds: ClassVar[dict[str, str]] = {
        "min_epochs": "count", "patience": "count", "loss_margin": "fraction",
        "min_progress": "nonnegative",
    }
    watches: ClassVar[frozenset[str]] = frozenset({"epoch"})
    _state_fields: ClassVar[tuple[str, ...]] = ("recent", "best_before", "epochs_seen")

    def _setup(self) -> None:
        self.recent: deque[list[Any]] = deque()  # [epoch, step, loss] of the last `patience`
        self.best_before: float | None = None  # best train loss before them
        self.epochs_seen = 0

    def _observe(self, event: dict[str, Any]) -> Finding | None:
        self.epochs_seen += 1
        train = fitted_loss(event)
        if train is None:
            return None
        if len(self.recent) >= self.thresholds["patience"]:
            leaving = self.recent.popleft()[2]
            self.best_before = leaving if self.best_before is None else min(self.best_before,
                                                                             leaving)
        epoch = event.get("epoch")
        self.recent.append([epoch, event.get("step"), train])
        ref, source = self.reference_loss()
        seen = epoch if isinstance(epoch, int) else self.epochs_seen
        if (ref is None or self.best_before is None or seen < self.thresholds["min_epochs"]
                or len(self.recent) < self.thresholds["patience"]):
            return None
        best_now = min(row[2] for row in self.recent)
        progress = (self.best_before - best_now) / self.best_before if self.best_before > 0 \
            else 0.0
        if progress >= self.thresholds["min_progress"]:
            return None  # still learning
        metric = self.context.metric
        train_metric = self._train_metric(event)
        meets = self.context.meets_goal(train_metric)
        limit = (1 - self.thresholds["loss_margin"]) * ref
        poor_loss = train >= limit
        if meets or not (poor_loss or meets is False):
            return None
        first = self.recent[0]
        why = (f"train loss {train:.4g} is {train / ref:.0%} of the {source} loss {ref:.4g} "
               f"(needs below {limit:.4g})" if poor_loss else
               f"train {metric} {train_metric:.4g} falls short of the goal "
               f"{self.context.goal_target:.4g} on the training rows")
        return self.finding(
            first[0], first[1],
            f"{why}, and the train loss improved by only {progress:.1%} over the last "
            f"{len(self.recent)} epochs (needs {self.thresholds['min_progress']:.0%})",
            rule="no_better_than_trivial" if poor_loss else "short_of_goal",
            train_loss=train, reference_loss=ref, reference=source, loss_ratio=train / ref,
            limit=limit, loss_margin=self.thresholds["loss_margin"], metric=metric,
            train_metric=train_metric, goal_target=self.context.goal_target,
            progress=progress, min_progress=self.thresholds["min_progress"],
            train_losses=[row[2] for row in self.recent], epochs=[row[0] for row in self.recent],
            patience=self.thresholds["patience"], min_epochs=self.thresholds["min_epochs"],
        )

    def _train_metric(self, event: dict[str, Any]) -> float | None:
        train, metric = event.get("train"), self.context.metric
        return finite(train.get(metric)) if metric and isinstance(train, Mapping) else None
