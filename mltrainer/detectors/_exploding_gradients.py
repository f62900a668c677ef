"""exploding_gradients: the unclipped gradient norm (or the loss) blew up.

Rules (onset: the first step that counted):

* ratio (`patience` of the last `span` steps): `grad_norm` > `factor` x the larger of (the
  median of the last `window` accepted steps, the median of the first `min_history` steps).
  Flagged steps stay out of the median, so an explosion cannot raise its own bar; the early
  median keeps the bar from sinking with the tiny gradients of a converged model (after the
  run's own scale: Lightning `SpikeDetection` judges against a running mean, AUTOTRAINER flags
  a gradient ratio above 70).
  Not while the loss falls: when the norm climbed to the bar (a step just before the first
  flagged one was past the halfway mark, sqrt(`factor`) x the median: a jump from the usual
  level is not a climb) and every flagged step's loss is below the median loss of the
  accepted steps before them (the last `window`), the gradient grew because the model left a
  flat region - a plateau or a saddle, e.g. a transformer at the uniform prediction's loss
  ln 2 - and is descending a steeper one: the larger norm is the run's new scale, so the
  running median and the loss median restart from those steps (the early median, the bar's
  floor, stays). An explosion throws the loss up with the gradient (an update too
  large for the curvature overshoots); a gradient that grows while the loss drops below where
  it was is doing its job (issue 11, eighth pass: the text example's tiny BERT left its ln 2
  plateau in epoch 2, its gradient norm from 0.2 to 3-8 while the loss fell 0.69 -> 0.45, and
  the ratio rule fired).
* ceiling (`patience` of the last `span` steps): `grad_norm` > `max_norm` x the task's
  gradient scale (or the early median, when a model starts above it). The scale
  (`Detector.gradient_scale`) is 1 for classification and the square root of the starting
  loss for regression: targets in raw units of scale c give losses of scale c**2 and
  gradients of scale c, so an absolute bar fires on a healthy raw-unit run. An explosion that
  flickers (a step or two
  back under the bar between larger ones, common with plain SGD at a too-high learning rate)
  still counts. Not while the loss falls, in a run that started below the ceiling: when the
  norm climbed to it and every flagged step's loss is below the median loss before them (the
  ratio rule's descent), the ceiling rises to `factor` x the largest of those steps, as the
  ratio's bar rises with the running median. The ceiling's scale is the task's, not the run's:
  a ReZero net on raw-unit targets (0-255) starts with tiny gradients (its residual scalars are
  0) and its norm climbed to 800x its early norm, past the ceiling, while its loss fell learning
  the target's mean (issue 11, ninth pass: held-out v8's one exploding false positive). A
  model that starts above the ceiling (a bad initialisation) is judged against its early median
  and never excused.
* divergence (`patience` consecutive steps): the step `loss` > `divergence` x the starting loss
  (the larger of the first step's loss and the trivial baseline's; Lightning
  `EarlyStopping(divergence_threshold)`).
* loss_scale (`patience` consecutive steps): the step `loss` > `loss_scale` x the loss of a
  model that predicts about zero (`DetectorContext.untrained_loss`: the trivial baseline's
  loss for classification; for regression that plus the square of the target's mean, so a
  healthy start on targets with a large offset is not an explosion). Unlike the ratio,
  ceiling and divergence bars, which a model that starts exploded (a bad initialisation)
  raises itself, this bar is set by the data alone.

* overflow (at once): a step whose loss or gradient norm is non-finite, when the finite
  gradient norms of the `span` steps before it grew to `factor` x the early median (or the
  first norm, in a run too short to have one), or their losses to `divergence` x the starting
  loss: the explosion overflowed before the other rules' `patience` steps were up (sgd on
  raw-unit targets goes from a finite loss to NaN in three or four steps). A non-finite value
  that nothing grew into (a corrupt weight) is `nan_loss`'s alone. Onset: the first of those
  steps that passed the bar.

* collapse (`collapse_epochs` epochs): after a step whose gradient norm passed `factor` x the
  run's early norm (the median of its first `min_history` steps; the first step's while there
  are fewer), the end-of-epoch train loss sits at or above `collapse` x the reference
  (trivial) loss, improving by less than `collapse_progress` over those epochs, and most
  steps' gradient norms are back below the blow-up's 1/`factor` (no signal left). An explosion
  that kills the units it passes through (dead ReLUs, saturated outputs) leaves one or two
  huge steps - too few for the ratio rule's `patience` - and then a model that predicts a
  constant; only the other findings of its aftermath (dead_relu, convergence_stall,
  underfitting) fired, naming the symptom and not the cause (issue 11, third pass: sgd at a
  too-high lr on raw-unit targets, adamw at lr 0.1 on quantiles). The progress guard keeps a
  raw-unit regression that falls from far above its baseline's loss (learning the mean)
  apart, the gradient condition one whose gradient grows steadily while its loss creeps down
  (Friedman #2 at lr 1e-3). Or, gradients aside, the loss has given back at least
  `collapse_lost` of the progress made before the blow-up (at or above best + `collapse_lost`
  x (reference - best), best the lowest end-of-epoch train loss before it): a blow-up that
  throws a trained model out of its basin without landing it at the trivial loss, its
  gradients still bouncing (issue 11, fourth pass: adamw lr x100 mid-run on a gelu MLP). A
  loss creeping down never gives anything back. Onset: the blow-up step. `loss_oscillation`
  shares this rule (`_base.judge_collapse`).

A stream without step events is judged on epoch `train_loss` with the divergence and
loss_scale rules.
The ratio and ceiling rules start after `min_history` finite gradient norms.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from typing import Any, ClassVar

from mltrainer.detectors._base import (
    Detector,
    Finding,
    StepBlock,
    finite,
    is_nonfinite,
    new_collapse_watch,
    watch_blowup,
)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


_COLLAPSE = ("the gradient norm blew up at step {step} ({grad:.4g}, {ratio:.3g}x the run's early "
             "norm {early:.4g}) and the train loss then collapsed towards the trivial level "
             "(best before it {best}): {loss:.4g}, {share:.0%} of the {source} loss {ref:.4g}, "
             "for {epochs} epochs without progress")


_NORM_FIELD = frozenset({"grad_norm"})  # the steps `_observe_block` judges one by one


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
        "span": 5,
        "loss_scale": 100.0,
        "collapse": 0.9,
        "collapse_epochs": 3,
        "collapse_progress": 0.1,
        "collapse_lost": 0.5,
    }
    kinds: ClassVar[dict[str, str]] = {
        "patience": "count", "window": "count", "min_history": "count", "span": "count",
        "collapse_epochs": "count", "collapse_progress": "fraction",
        "collapse_lost": "fraction",
    }
    _state_fields: ClassVar[tuple[str, ...]] = (
        "history", "early_median", "grad_seen", "grad_hits", "loss_run", "scale_run", "recent",
        "collapse_watch", "loss_history", "ceiling_floor",
    )
    _optional_state: ClassVar[frozenset[str]] = frozenset({"loss_history", "ceiling_floor"})

    def _setup(self) -> None:
        self.history: deque[float] = deque(maxlen=int(self.thresholds["window"]))
        # the step losses of the accepted steps (the last `window` with a finite loss)
        self.loss_history: deque[float] = deque(maxlen=int(self.thresholds["window"]))
        self._sorted: list[float] = []
        self.early_median: float | None = None
        # the ceiling lifted by a climb out of a plateau past it (see the ceiling rule)
        self.ceiling_floor: float | None = None
        self.grad_seen = 0  # finite gradient norms judged so far
        # flagged gradient steps among the last `span`: [index, epoch, step, value, bar, rule,
        # loss] (the loss None when not finite)
        self.grad_hits: list[list[Any]] = []
        # a run: [length, onset epoch, onset step, peak value, bar it was judged against, rule]
        self.loss_run: list[Any] = [0, None, None, 0.0, 0.0, "divergence"]
        self.scale_run: list[Any] = [0, None, None, 0.0, 0.0, "loss_scale"]
        # the last `span` steps' finite values: [epoch, step, grad_norm, loss] (None if not)
        self.recent: deque[list[Any]] = deque(maxlen=int(self.thresholds["span"]))
        self.collapse_watch = new_collapse_watch()

    def _after_load(self) -> None:
        self._sorted = sorted(self.history)

    def _observe(self, event: dict[str, Any]) -> Finding | None:
        if event["type"] == "epoch":
            return self._judge_collapse(event) if self._seen_step else (
                self._epoch_divergence(event))
        return self._observe_step(event.get("epoch"), event.get("step"),
                                  event.get("grad_norm"), event.get("loss"), event)

    def _observe_step(self, epoch: Any, step: Any, raw_grad: Any, raw_loss: Any,
                      event: dict[str, Any] | None = None) -> Finding | None:
        """A step event's rules, from its fields (`_observe` gives its event too; the column
        path, `_observe_block`, the block's columns)."""
        grad, loss = finite(raw_grad), finite(raw_loss)
        if ((loss is None and is_nonfinite(raw_loss))
                or (grad is None and is_nonfinite(raw_grad))):
            return self._judge_overflow(event if event is not None else {
                "type": "step", "epoch": epoch, "step": step, "loss": raw_loss,
                "grad_norm": raw_grad})
        self.recent.append([epoch, step, grad, loss])
        if grad is not None:
            watch_blowup(self.collapse_watch, grad, epoch, step, self.thresholds["factor"],
                         int(self.thresholds["min_history"]))
            finding = self._judge_grad(grad, epoch, step, loss)
            if finding is not None:
                return finding
        if loss is None:
            return None
        for run, bar in ((self.loss_run, self._divergence_bar()),
                         (self.scale_run, self._scale_bar())):
            if bar is not None and loss > bar:
                finding = self._extend(run, epoch, step, loss, bar, run[5])
                if finding is not None:
                    return finding
            else:
                run[0] = 0
        return None

    def _observe_block(self, block: StepBlock, start: int) -> tuple[int, Finding] | None:
        """The column path (`Detector._observe_block`): every step counts here (the loss
        rules), so each is judged by `_observe_step` - the rules `_observe` applies to a step
        event - from the block's columns, without an event dict, but for the quiet steps: no
        gradient norm, a finite loss under both loss bars (constant once the first finite loss
        is known, as it is here: `update_steps`). What `_observe_step` does on such a step is
        taken in bulk: its row joins `recent` and both loss runs restart."""
        observe = self._observe_step
        epochs, steps, losses, grads = block.epochs, block.steps, block.losses, block.grad_norms
        bars = [bar for bar in (self._divergence_bar(), self._scale_bar()) if bar is not None]
        low = min(bars) if bars else math.inf
        loud = set(block.marked(start, _NORM_FIELD))  # (every loss not a finite float too)
        loud.update([i for i in range(start, len(losses)) if i not in loud and losses[i] > low])
        recent, span = self.recent, self.recent.maxlen or len(losses)
        done = start  # the steps before this one are judged
        for index in [*sorted(loud), len(losses)]:
            if index > done:  # quiet steps done .. index - 1
                recent.extend([epochs[i], steps[i], None, losses[i]]
                              for i in range(max(done, index - span), index))
                self.loss_run[0] = self.scale_run[0] = 0
            if index == len(losses):
                break
            finding = observe(epochs[index], steps[index], grads[index], losses[index])
            if finding is not None:
                return index, finding
            done = index + 1
        return None

    def _judge_grad(self, grad: float, epoch: int | None, step: int | None,
                    loss: float | None = None) -> Finding | None:
        if len(self.history) >= self.thresholds["min_history"] and self.early_median is not None:
            median = self._sorted[len(self._sorted) // 2]
            bar = self.thresholds["factor"] * max(median, self.early_median)
            ceiling = max(self._ceiling(), self.early_median, self.ceiling_floor or 0.0)
            self.grad_seen += 1
            span = self.thresholds["span"]
            if self.grad_hits and self.grad_hits[0][0] <= self.grad_seen - span:
                self.grad_hits = [h for h in self.grad_hits if h[0] > self.grad_seen - span]
            if grad > bar or grad > ceiling:
                rule, limit = ("ratio", bar) if grad > bar else ("ceiling", ceiling)
                # climbing: a norm among the steps just before it was past the halfway mark (in
                # ratio: sqrt(factor) x the median) but under the bar - it grew, not jumped
                halfway = limit / math.sqrt(self.thresholds["factor"])
                climbed = any(row[2] is not None and halfway < row[2] <= limit
                              for row in list(self.recent)[:-1])
                self.grad_hits.append([self.grad_seen, epoch, step, grad, limit, rule, loss,
                                       climbed])
                if len(self.grad_hits) < self.thresholds["patience"]:
                    return None
                if not self._descending():
                    return self._fire_grad()
                # a plateau left: the run's statistics restart from its new gradient scale, and
                # a ceiling it climbed past rises above that scale as the ratio's bar does
                peak = max(h[3] for h in self.grad_hits)
                if peak > ceiling and self._started_below():
                    self.ceiling_floor = self.thresholds["factor"] * peak
                self.history.clear()
                self._sorted = []
                self.loss_history.clear()
                for hit in self.grad_hits:
                    self._accept(hit[3], hit[6] if len(hit) > 6 else None)
                self.grad_hits = []
                return None
        self._accept(grad, loss)
        return None

    def _descending(self) -> bool:
        """Whether the flagged steps are a climb out of a plateau: the norm climbed past the
        halfway mark before the bar (not a jump from the run's usual level), and every flagged
        step's loss is below the median loss of the accepted steps before them (see the ratio
        rule). A ceiling hit counts only in a run that started below the ceiling (a model that
        starts exploded is judged against its early median, never excused)."""
        hits = self.grad_hits
        started_below = self._started_below()
        if (any(len(h) < 8 or (h[5] != "ratio" and not (h[5] == "ceiling" and started_below))
                for h in hits) or not hits[0][7]):
            return False
        losses = [h[6] for h in hits]
        if not self.loss_history or any(v is None for v in losses):
            return False
        before = sorted(self.loss_history)[len(self.loss_history) // 2]
        return max(losses) < before

    def _started_below(self) -> bool:
        """Whether the run started below the task's ceiling (its early median under it)."""
        return self.early_median is not None and self.early_median < self._ceiling()

    def _judge_collapse(self, event: dict[str, Any]) -> Finding | None:
        """A gradient blow-up, then the loss back at the trivial level and staying there."""
        return self.collapse_finding(event, _COLLAPSE, "factor")

    def _judge_overflow(self, event: dict[str, Any]) -> Finding | None:
        """A non-finite step: an explosion when the steps before it grew (see the docstring)."""
        ref = self.early_median if self.early_median is not None else (
            self.history[0] if self.history else None)
        grad_bar = None if ref is None else self.thresholds["factor"] * ref
        loss_bar = self._divergence_bar()
        grown = [row for row in self.recent
                 if (grad_bar is not None and row[2] is not None and row[2] > grad_bar)
                 or (loss_bar is not None and row[3] is not None and row[3] > loss_bar)]
        if not grown:
            return None
        epoch, step = grown[0][0], grown[0][1]
        grads = [row[2] for row in self.recent if row[2] is not None]
        losses = [row[3] for row in self.recent if row[3] is not None]
        where = event.get("step")
        return self.finding(
            epoch, step,
            f"the loss overflowed at step {where} after growing from step {step}: gradient "
            f"norm up to {max(grads, default=float('nan')):.4g} (bar {_fmt(grad_bar)}), loss up "
            f"to {max(losses, default=float('nan')):.4g} (bar {_fmt(loss_bar)}) in the last "
            f"{len(self.recent)} finite steps",
            rule="overflow", nonfinite_step=where, flagged_steps=[row[1] for row in grown],
            grad_norms=grads, losses=losses, grad_limit=grad_bar, loss_limit=loss_bar,
            reference_grad_norm=ref, factor=self.thresholds["factor"],
            divergence=self.thresholds["divergence"], span=self.thresholds["span"],
        )

    def _accept(self, grad: float, loss: float | None = None) -> None:
        if loss is not None:
            self.loss_history.append(loss)
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

    def _fire_grad(self) -> Finding:
        hits = self.grad_hits
        _, epoch, step, _, bar, rule = hits[0][:6]
        peak = max(h[3] for h in hits)
        what = (
            f"{self.thresholds['factor']:g}x the running median" if rule == "ratio"
            else "the ceiling"
        )
        return self.finding(
            epoch, step,
            f"unclipped gradient norm exploded from step {step}: up to {peak:.4g}, above "
            f"{bar:.4g} ({what}) on {len(hits)} of the last {self.thresholds['span']:g} steps",
            rule=rule, peak_grad_norm=peak, limit=bar, flagged_steps=[h[2] for h in hits],
            running_median=self._sorted[len(self._sorted) // 2] if self._sorted else None,
            early_median=self.early_median, factor=self.thresholds["factor"],
            max_norm=self.thresholds["max_norm"], patience=self.thresholds["patience"],
            span=self.thresholds["span"],
        )

    def _fire(self, run: list[Any]) -> Finding:
        length, epoch, step, peak, bar, rule = run
        patience = self.thresholds["patience"]
        if rule == "loss_scale":
            base = self.context.untrained_loss
            return self.finding(
                epoch, step,
                f"loss far above an untrained model's from step {step}: up to {peak:.4g}, "
                f"above {bar:.4g} ({self.thresholds['loss_scale']:g}x the untrained loss "
                f"{base:.4g}) for {length} steps",
                rule=rule, peak_loss=peak, limit=bar, untrained_loss=base,
                loss_scale=self.thresholds["loss_scale"], consecutive_steps=length,
                patience=patience,
            )
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
        raise AssertionError(f"unknown loss rule {rule!r}")

    def _start_loss(self) -> float | None:
        return self.start_loss()

    def _ceiling(self) -> float:
        return self.thresholds["max_norm"] * self.gradient_scale()

    def _divergence_bar(self) -> float | None:
        start = self._start_loss()
        return None if start is None else self.thresholds["divergence"] * start

    def _scale_bar(self) -> float | None:
        base = self.context.untrained_loss
        return None if base is None else self.thresholds["loss_scale"] * base

    def _epoch_divergence(self, event: dict[str, Any]) -> Finding | None:
        loss, bar = finite(event.get("train_loss")), self._divergence_bar()
        if loss is None:
            return None
        epoch = event.get("epoch")
        scale = self._scale_bar()
        if scale is not None and loss > scale and (bar is None or loss <= bar):
            return self.finding(
                epoch, event.get("step"),
                f"train loss in epoch {epoch} is {loss:.4g}, above {scale:.4g} "
                f"({self.thresholds['loss_scale']:g}x the untrained loss "
                f"{self.context.untrained_loss:.4g})",
                rule="loss_scale", peak_loss=loss, limit=scale,
                untrained_loss=self.context.untrained_loss,
                loss_scale=self.thresholds["loss_scale"], consecutive_epochs=1,
            )
        if bar is None or loss <= bar:
            return None
        return self.finding(
            epoch, event.get("step"),
            f"train loss diverged in epoch {epoch}: {loss:.4g}, above {bar:.4g} "
            f"({self.thresholds['divergence']:g}x the first epoch's {self._start_loss():.4g})",
            rule="divergence", peak_loss=loss, limit=bar, starting_loss=self._start_loss(),
            divergence=self.thresholds["divergence"], consecutive_epochs=1,
        )
