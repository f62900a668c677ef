"""exploding_gradients: the unclipped gradient norm (or the loss) blew up.

Rules, each sustained for `patience` consecutive steps (onset: the first of them):

* ratio: `grad_norm` > `factor` x the larger of (the median of the last `window` accepted
  steps, the median of the first `min_history` steps). Flagged steps stay out of the median, so
  an explosion cannot raise its own bar; the early median keeps the bar from sinking with the
  tiny gradients of a converged model (after the run's own scale: Lightning `SpikeDetection`
  judges against a running mean, AUTOTRAINER flags a gradient ratio above 70).
* ceiling: `grad_norm` > `max_norm` (or the early median, when a model starts above it).
* divergence: the step `loss` > `divergence` x the starting loss (the larger of the first
  step's loss and the trivial baseline's; Lightning `EarlyStopping(divergence_threshold)`).

A stream without step events is judged on epoch `train_loss` with the divergence rule alone.
The ratio and ceiling rules start after `min_history` finite gradient norms.
"""

from __future__ import annotations

import bisect
from collections import deque
from typing import Any, ClassVar

from mltrainer.detectors._base import Detector, Finding, finite


class ExplodingGradientsDetector(Detector):
    id: ClassVar[str] = "exploding_gradients"
    severity: ClassVar[str] = "critical"
    defaults: ClassVar[dict[str, float]] = {
        "factor": 10.0,
        "max_norm": 1000.0,
        "divergence": 5.0,
        "patience": 3,
        "window": 50,
        "min_history": 5,
    }
    kinds: ClassVar[dict[str, str]] = {
        "patience": "count", "window": "count", "min_history": "count"
    }
    _state_fields: ClassVar[tuple[str, ...]] = ("history", "early_median", "grad_run", "loss_run")

    def _setup(self) -> None:
        self.history: deque[float] = deque(maxlen=int(self.thresholds["window"]))
        self._sorted: list[float] = []
        self.early_median: float | None = None
        # a run: [length, onset epoch, onset step, peak value, bar it was judged against, rule]
        self.grad_run: list[Any] = [0, None, None, 0.0, 0.0, ""]
        self.loss_run: list[Any] = [0, None, None, 0.0, 0.0, "divergence"]

    def _after_load(self) -> None:
        self._sorted = sorted(self.history)

    def _observe(self, event: dict[str, Any]) -> Finding | None:
        if event["type"] == "epoch":
            return None if self._seen_step else self._epoch_divergence(event)
        epoch, step = event.get("epoch"), event.get("step")
        grad = finite(event.get("grad_norm"))
        if grad is not None:
            finding = self._judge_grad(grad, epoch, step)
            if finding is not None:
                return finding
        loss = finite(event.get("loss"))
        bar = self._divergence_bar()
        if loss is None or bar is None:
            return None
        if loss > bar:
            return self._extend(self.loss_run, epoch, step, loss, bar, "divergence")
        self.loss_run[0] = 0
        return None

    def _judge_grad(self, grad: float, epoch: int | None, step: int | None) -> Finding | None:
        if len(self.history) >= self.thresholds["min_history"] and self.early_median is not None:
            median = self._sorted[len(self._sorted) // 2]
            bar = self.thresholds["factor"] * max(median, self.early_median)
            ceiling = max(self.thresholds["max_norm"], self.early_median)
            if grad > bar or grad > ceiling:
                rule, limit = ("ratio", bar) if grad > bar else ("ceiling", ceiling)
                return self._extend(self.grad_run, epoch, step, grad, limit, rule)
        self.grad_run[0] = 0
        self._accept(grad)
        return None

    def _accept(self, grad: float) -> None:
        if len(self.history) == self.history.maxlen:
            oldest = self.history[0]
            del self._sorted[bisect.bisect_left(self._sorted, oldest)]
        self.history.append(grad)
        bisect.insort(self._sorted, grad)
        if self.early_median is None and len(self.history) >= self.thresholds["min_history"]:
            self.early_median = self._sorted[len(self._sorted) // 2]

    def _extend(
        self, run: list[Any], epoch: int | None, step: int | None, value: float, bar: float,
        rule: str,
    ) -> Finding | None:
        if run[0] == 0:
            run[1], run[2], run[3], run[4], run[5] = epoch, step, value, bar, rule
        run[0] += 1
        run[3] = max(run[3], value)
        if run[0] < self.thresholds["patience"]:
            return None
        return self._fire(run)

    def _fire(self, run: list[Any]) -> Finding:
        length, epoch, step, peak, bar, rule = run
        patience = self.thresholds["patience"]
        if rule == "divergence":
            start = self._start_loss()
            return self.finding(
                epoch, step,
                f"loss diverged from step {step}: up to {peak:.4g}, above {bar:.4g} "
                f"({self.thresholds['divergence']:g}x the starting loss {start:.4g}) "
                f"for {length} steps",
                rule=rule, peak_loss=peak, limit=bar, starting_loss=start,
                divergence=self.thresholds["divergence"], consecutive_steps=length,
                patience=patience,
            )
        what = (
            f"{self.thresholds['factor']:g}x the running median" if rule == "ratio"
            else "the ceiling"
        )
        return self.finding(
            epoch, step,
            f"unclipped gradient norm exploded from step {step}: up to {peak:.4g}, above "
            f"{bar:.4g} ({what}) for {length} steps",
            rule=rule, peak_grad_norm=peak, limit=bar,
            running_median=self._sorted[len(self._sorted) // 2] if self._sorted else None,
            early_median=self.early_median, factor=self.thresholds["factor"],
            max_norm=self.thresholds["max_norm"], consecutive_steps=length, patience=patience,
        )

    def _start_loss(self) -> float | None:
        values = [v for v in (self.initial_loss, self.context.baseline_loss) if v is not None]
        return max(values) if values else None

    def _divergence_bar(self) -> float | None:
        start = self._start_loss()
        return None if start is None else self.thresholds["divergence"] * start

    def _epoch_divergence(self, event: dict[str, Any]) -> Finding | None:
        loss, bar = finite(event.get("train_loss")), self._divergence_bar()
        if loss is None or bar is None or loss <= bar:
            return None
        epoch = event.get("epoch")
        return self.finding(
            epoch, event.get("step"),
            f"train loss diverged in epoch {epoch}: {loss:.4g}, above {bar:.4g} "
            f"({self.thresholds['divergence']:g}x the first epoch's {self._start_loss():.4g})",
            rule="divergence", peak_loss=loss, limit=bar, starting_loss=self._start_loss(),
            divergence=self.thresholds["divergence"], consecutive_epochs=1,
        )
