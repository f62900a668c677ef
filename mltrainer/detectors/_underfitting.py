"""underfitting: the model cannot fit its own training data - it is no better than trivial.

Rule: from epoch `min_epochs` on, for `patience` consecutive epochs, `train_loss` stays at or
above (1 - `loss_margin`) x the reference loss - the val loss of the trivial baseline `mlt plan`
measured (`baseline["loss"]` in the start event) - unless the val metric clearly beats the
trivial baseline's (by `metric_margin`: absolute for accuracy/f1_macro/roc_auc/r2, relative for
rmse/mae). A model whose loss falls slowly but already predicts well (a tiny data set with two
steps per epoch) is learning, not underfitting. Onset: the first epoch of the streak.

Without a baseline in the context, the reference is the first step's loss (the untrained
model's), or the first epoch's train loss in a stream without steps; the rule then reads "the
train loss has not fallen by `loss_margin` from where it started".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from mltrainer.detectors._base import Detector, Finding, finite


class UnderfittingDetector(Detector):
    id: ClassVar[str] = "underfitting"
    severity: ClassVar[str] = "warning"
    defaults: ClassVar[dict[str, float]] = {
        "min_epochs": 3,
        "patience": 3,
        "loss_margin": 0.1,
        "metric_margin": 0.05,
    }
    kinds: ClassVar[dict[str, str]] = {
        "min_epochs": "count", "patience": "count", "loss_margin": "fraction",
        "metric_margin": "nonnegative",
    }
    watches: ClassVar[frozenset[str]] = frozenset({"epoch"})
    _state_fields: ClassVar[tuple[str, ...]] = ("run", "epochs_seen")

    def _setup(self) -> None:
        self.run: list[Any] = [0, None, None]  # [length, onset epoch, onset step]
        self.epochs_seen = 0

    def _observe(self, event: dict[str, Any]) -> Finding | None:
        self.epochs_seen += 1
        train = finite(event.get("train_loss"))
        ref, source = self.reference_loss()
        if train is None or ref is None:
            return None
        limit = (1 - self.thresholds["loss_margin"]) * ref
        val_metric, base_metric, beats = self._metric_check(event)
        if train < limit or beats:
            self.run = [0, None, None]
            return None
        epoch = event.get("epoch")
        if self.run[0] == 0:
            self.run[1], self.run[2] = epoch, event.get("step")
        self.run[0] += 1
        seen = epoch if isinstance(epoch, int) else self.epochs_seen
        if self.run[0] < self.thresholds["patience"] or seen < self.thresholds["min_epochs"]:
            return None
        metric = self.context.metric
        versus = (
            f"; val {metric} {val_metric:.4g} vs trivial {base_metric:.4g}"
            if val_metric is not None and base_metric is not None else ""
        )
        return self.finding(
            self.run[1], self.run[2],
            f"train loss {train:.4g} is {train / ref:.0%} of the {source} loss {ref:.4g} after "
            f"{seen} epochs (needs below {limit:.4g}){versus}",
            train_loss=train, reference_loss=ref, reference=source, loss_ratio=train / ref,
            limit=limit, loss_margin=self.thresholds["loss_margin"], metric=metric,
            val_metric=val_metric, baseline_metric=base_metric,
            metric_margin=self.thresholds["metric_margin"], consecutive_epochs=self.run[0],
            patience=self.thresholds["patience"], min_epochs=self.thresholds["min_epochs"],
        )

    def _metric_check(self, event: dict[str, Any]) -> tuple[float | None, float | None, bool]:
        """(val metric, trivial baseline's metric, whether the first clearly beats the second)."""
        base, metric, val = self.context.baseline_metric, self.context.metric, event.get("val")
        value = finite(val.get(metric)) if metric and isinstance(val, Mapping) else None
        if base is None or value is None:
            return value, base, False
        margin = self.thresholds["metric_margin"]
        if self.context.greater_is_better is False:
            return value, base, value <= base * (1 - margin)
        return value, base, value >= base + margin
