"""overfitting: the model keeps fitting its training data while validation gets worse.

Rules (any fires):

* val_loss: for `patience` consecutive epochs, `val_loss` is above its minimum so far by at
  least `rise` (relative) and `rise_atol` x the reference loss (absolute, so the wiggles of
  a near-zero loss never count), while the model fits its training data better than it did
  at that minimum - its train loss is below its value there and at most `fitted_loss` x the
  reference loss - and one of: the val metric has fallen from its best by at least
  `metric_drop` (absolute for accuracy, f1_macro, roc_auc, r2; relative for rmse, mae); the
  val loss is above the reference loss (worse than the trivial baseline); or the val loss is
  above its minimum by at least `rise_alone` (relative) and by twice its own sampling error,
  2 sqrt(2 / n_val), and no lower than the epoch before (a climb, not the bounce of a near-
  zero val loss that comes straight back down: a healthy spirals net's 0.01 -> 0.08 -> 0.05
  -> 0.11 -> 0.03; issue 11, fourth pass) - SageMaker `Overtraining`/`Overfit`,
  Keras/Lightning `EarlyStopping` on val loss with patience. The metric condition keeps the
  harmless kind apart: a val loss that creeps up on a few confidently wrong rows while the
  val metric holds (common on small val sets) costs nothing. A val loss half as large again
  as its minimum while the train loss keeps falling is not a creep: the model's
  probabilities on new rows got worse however a ranking metric like roc_auc holds. Onset:
  the epoch after the minimum. The train loss judged is the end-of-epoch model's
  (`train_eval_loss`, see `fitted_loss`) when the stream has it: the epoch mean of epoch 1
  still holds the untrained start, and one noisy epoch after the minimum only breaks the
  streak, it never blocks the rule for the rest of the run.
* metric_gap (classification, when epoch events carry `train` metrics): once the model fits its
  training data (train loss at most `fitted_loss` x the reference loss), the train metric
  exceeds the val metric by at least `metric_gap` beyond twice the gap's sampling error,
  sqrt(v (1 - v) / n_val + t (1 - t) / n_train_eval) (the train term when the start event
  says how many training rows `train` is over: mlt's engine evaluates as many as val for item
  data) - the gap's lower confidence bound clears `metric_gap`, so a handful of rows cannot
  make a gap - for `patience` consecutive epochs (AUTOTRAINER flags
  a train/test accuracy gap of 0.07-0.1), while the best val metric has not improved over
  the last `patience` epochs by `metric_drop` or more (a model still getting better on new
  rows is not overfitting, whatever its gap). Onset: the first of them.
* loss_gap (regression, MSE): the same gap read from the losses - val loss / the trivial loss
  on val minus train loss / the trivial loss on the training rows, which is the r2 the model
  loses between its training rows and new rows whatever the metric - at least `metric_gap`
  beyond twice the gap's sampling error (sqrt(2 / n) of each ratio over its n rows, added in
  quadrature)
  for `patience` consecutive
  epochs, once the model fits its training data and the val loss has flattened (it fell by
  less than `val_progress`, relative, over those epochs: while it still falls fast, the model
  is learning and the gap is the training rows being learnt first) and the best val metric
  improved by less than `metric_drop` over them (the same guard as metric_gap). A regression
  model that memorises noise can drive its train loss towards zero while the val loss keeps falling
  slowly: no rise, a gap.

Without a metric in the events, the val_loss rule judges the losses alone.

"Fits its training data" (val_loss) is a level or a trend: the train loss at most `fitted_loss`
x the trivial loss of its rows, or - while the val loss climbs far above its minimum (the
`rise_alone` condition above) - at least `fit_progress` (relative) below the train loss at
that minimum. With noisy labels the train loss never gets near the level a clean fit reaches
(30 % of the labels redrawn: the best model's cross-entropy is 0.6-0.9 of the trivial loss),
and a wide net trained on them for 150 epochs drove the val loss up 1.75-3x its minimum while
its train loss fell to 0.64-0.72 of the trivial loss (by 15-30 % from its value at the val
minimum) - never "fitted" by the level, so no rule ran (issue 11, ninth pass: held-out v8's
atlas_bip_noisy and pictures_noisy). The level
alone still keeps an unstable run out (a val loss that jumps while the train loss jumps
too breaks the climb), and the trend needs the val loss half as large again as its minimum
and still climbing. The level is judged against the trivial loss of the rows the train loss is
measured on (`_train_reference`), and loss_gap reads each loss against its own rows' trivial
loss: on targets standardised on train (the baseline records `target_scale`) that is 1, the
MSE of the train mean in the loss's units, whatever the val rows' spread; otherwise the
baseline's val loss. On a heavy-tailed target the two differ by a factor of two or more: a
small train split that drew more of the tail than val starts at 1.8x the val baseline's loss
and memorises down to 0.9x it - half its own trivial loss, r2 0.55 on its rows against -0.2
on new ones - and was never "fitted" against the val baseline (issue 11, eighth pass: held-
out v7's surnames frequencies, raw 0.03-1006).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from typing import Any, ClassVar

from mltrainer.detectors._base import Detector, Finding, finite, fitted_loss


class OverfittingDetector(Detector):
    id: ClassVar[str] = "overfitting"
    severity: ClassVar[str] = "warning"
    defaults: ClassVar[dict[str, float]] = {
        "rise": 0.2,
        "rise_atol": 0.01,
        "metric_drop": 0.03,
        "patience": 3,
        "metric_gap": 0.1,
        "fitted_loss": 0.5,
        "rise_alone": 0.5,
        "val_progress": 0.05,
        "fit_progress": 0.1,
    }
    kinds: ClassVar[dict[str, str]] = {
        "rise_atol": "nonnegative",
        "metric_drop": "nonnegative",
        "patience": "count",
        "rise_alone": "nonnegative",
        "val_progress": "nonnegative",
        "fit_progress": "fraction",
    }
    watches: ClassVar[frozenset[str]] = frozenset({"epoch"})
    _state_fields: ClassVar[tuple[str, ...]] = (
        "best", "after_best", "best_metric", "rise_run", "gap_run", "val_recent",
        "best_metric_recent", "last_val",
    )
    _optional_state: ClassVar[frozenset[str]] = frozenset({"best_metric_recent", "last_val"})

    def _setup(self) -> None:
        self.best: list[Any] | None = None  # [epoch, step, val_loss, train_loss at it]
        self.after_best: list[Any] | None = None  # [epoch, step] of the epoch after the minimum
        self.best_metric: float | None = None  # best val metric so far
        self.rise_run = 0
        self.gap_run: list[Any] = [0, None, None, []]  # [length, epoch, step, gaps]
        # the val losses of the last `patience` + 1 epochs (loss_gap's flattening test)
        self.val_recent: deque[float] = deque(maxlen=int(self.thresholds["patience"]) + 1)
        self.last_val: float | None = None  # the previous epoch's val loss
        # the best val metric so far after each of the last `patience` + 1 epochs
        self.best_metric_recent: deque[float] = deque(
            maxlen=int(self.thresholds["patience"]) + 1)

    def _observe(self, event: dict[str, Any]) -> Finding | None:
        metric = self.metric_of(event, "val")
        drop = self._drop(metric)
        finding = self._judge_val_loss(event, metric, drop)
        if metric is not None and (drop is None or drop < 0):
            self.best_metric = metric
        if self.best_metric is not None:
            self.best_metric_recent.append(self.best_metric)
        if finding is None and self.context.task == "classification":
            finding = self._judge_gap(event)
        elif finding is None and self.context.task == "regression":
            finding = self._judge_loss_gap(event)
        return finding

    def _train_reference(self) -> float | None:
        """The trivial loss on the training rows: 1 for a regression on targets standardised
        on train (the MSE of the train mean in standardised units), else the baseline's val
        loss (classes are split stratified; raw-unit targets carry no train spread in the
        stream); None without a baseline."""
        base = self.context.baseline_loss
        if base is not None and self.context.task == "regression" and isinstance(
                (self.context.baseline or {}).get("target_scale"), Mapping):
            return 1.0
        return base

    def _val_noise(self) -> float:
        """Twice the relative sampling error of a mean squared loss over n_val rows (squared
        Gaussian residuals: sqrt(2 / n)); 0 when n_val is unknown."""
        n_val = self.context.n_val
        return 2 * math.sqrt(2 / n_val) if n_val else 0.0

    def _gap_noise(self, val: float, train: float) -> float:
        """Twice the sampling error of the gap val / base - train / train_base, each loss a
        mean squared loss over its rows (relative error sqrt(2 / n) each; the train term only
        when the start event says how many rows `train_eval_loss` is over) over its trivial
        loss (`val` and `train` given as those ratios)."""
        n_val, n_train = self.context.n_val, self.context.n_train_eval
        if not n_val:
            return 0.0
        variance = 2 * val**2 / n_val + (2 * train**2 / n_train if n_train else 0.0)
        return 2 * math.sqrt(variance)

    def _drop(self, metric: float | None) -> float | None:
        """How far `metric` is below the best so far (relative for lower-is-better metrics);
        negative when it is a new best; None when there is nothing to compare."""
        best = self.best_metric
        if metric is None or best is None:
            return None
        if self.context.greater_is_better is False:
            return (metric - best) / best if best > 0 else metric - best
        return best - metric

    def _judge_val_loss(
        self, event: dict[str, Any], metric: float | None, drop: float | None
    ) -> Finding | None:
        val, train = finite(event.get("val_loss")), fitted_loss(event)
        epoch, step = event.get("epoch"), event.get("step")
        if val is None:
            return None
        last, self.last_val = self.last_val, val
        if self.best is None or val < self.best[2]:
            self.best, self.after_best, self.rise_run = [epoch, step, val, train], None, 0
            return None
        if self.after_best is None:
            self.after_best = [epoch, step]
        best_epoch, _, best_val, train_at_best = self.best
        known_ref = self.reference_loss()[0]
        ref = known_ref or best_val
        limit = max(best_val * (1 + self.thresholds["rise"]),
                    best_val + self.thresholds["rise_atol"] * ref)
        train_falling = train is None or train_at_best is None or train < train_at_best
        train_ref = self._train_reference()
        # past the trivial baseline's loss: the model predicts val worse than a constant would
        past_baseline = known_ref is not None and val > known_ref
        # far above the minimum: more than `rise_alone` and more than the val loss's noise
        # far above the minimum and still climbing (no lower than the epoch before): a trend,
        # not the bounce of a near-zero val loss that comes back down
        rose_far = (val >= best_val * (1 + max(self.thresholds["rise_alone"], self._val_noise()))
                    and (last is None or val >= last))
        # fitting its training rows: at most `fitted_loss` of their trivial loss (a level), or,
        # while the val loss climbs far above its minimum, `fit_progress` below the train loss
        # at that minimum (a trend: on noisy labels the train loss never gets near a level a
        # clean fit reaches, yet falls on as the val loss climbs)
        fitted = (train is None or train_ref is None
                  or train <= self.thresholds["fitted_loss"] * train_ref
                  or (rose_far and train_at_best is not None
                      and train <= (1 - self.thresholds["fit_progress"]) * train_at_best))
        metric_fell = (metric is None or past_baseline or rose_far
                       or (drop is not None and drop >= self.thresholds["metric_drop"]))
        if val < limit or not train_falling or not fitted or not metric_fell:
            self.rise_run = 0
            return None
        self.rise_run += 1
        if self.rise_run < self.thresholds["patience"]:
            return None
        return self.finding(
            self.after_best[0], self.after_best[1],
            f"val loss rose from its minimum {best_val:.4g} (epoch {best_epoch}) to {val:.4g} "
            f"for {self.rise_run} epochs while the train loss kept falling"
            + self._metric_words(metric, drop),
            rule="val_loss", best_val_loss=best_val, best_epoch=best_epoch, val_loss=val,
            rise=(val - best_val) / best_val if best_val else None,
            min_rise=self.thresholds["rise"],
            limit=limit, train_loss_at_best=train_at_best, train_loss=train,
            metric=self.context.metric if metric is not None else None, val_metric=metric,
            best_val_metric=self.best_metric, metric_drop=drop,
            min_metric_drop=self.thresholds["metric_drop"], past_baseline=past_baseline,
            rose_far=rose_far, rise_alone=self.thresholds["rise_alone"],
            consecutive_epochs=self.rise_run, patience=self.thresholds["patience"],
        )

    def _metric_words(self, metric: float | None, drop: float | None) -> str:
        if metric is None or drop is None or self.best_metric is None:
            return ""
        name = self.context.metric
        if self.context.greater_is_better is False:
            return (f"; val {name} {metric:.4g} is {drop:.1%} worse than its best "
                    f"{self.best_metric:.4g}")
        return f"; val {name} {metric:.4g} is {drop:.3g} below its best {self.best_metric:.4g}"

    def _judge_gap(self, event: dict[str, Any]) -> Finding | None:
        metric = self.context.metric
        train_m, val_m = event.get("train"), event.get("val")
        if not metric or not isinstance(train_m, Mapping) or not isinstance(val_m, Mapping):
            return None
        tr, va = finite(train_m.get(metric)), finite(val_m.get(metric))
        if tr is None or va is None:
            return None
        gap = (tr - va) if self.context.greater_is_better is not False else (va - tr)
        train, ref = fitted_loss(event), self.reference_loss()[0]
        fitted = (train is not None and ref is not None
                  and train <= self.thresholds["fitted_loss"] * ref)
        n_val, n_train = self.context.n_val, self.context.n_train_eval
        noise = 0.0
        if n_val and 0 <= va <= 1:  # the gap's standard error: both means' variances add up
            variance = va * (1 - va) / n_val
            if n_train and 0 <= tr <= 1:
                variance += tr * (1 - tr) / n_train
            noise = 2 * math.sqrt(max(variance, 0.0))
        bar = self.thresholds["metric_gap"] + noise
        if not self._gap_streak(event, gap, gap >= bar and fitted and not self._improving()):
            return None
        run = self.gap_run
        return self.finding(
            run[1], run[2],
            f"train {metric} {tr:.4g} exceeds val {metric} {va:.4g} by {gap:.3g} (limit "
            f"{bar:.3g}) for {run[0]} epochs since epoch {run[1]}",
            rule="metric_gap", metric=metric, train_metric=tr, val_metric=va, gap=gap,
            gaps=list(run[3]), metric_gap=self.thresholds["metric_gap"], limit=bar,
            n_val=n_val, n_train_eval=n_train,
            consecutive_epochs=run[0], patience=self.thresholds["patience"],
        )

    def _improving(self) -> bool:
        """Whether the best val metric improved by at least `metric_drop` (absolute; relative
        for rmse/mae) over the last `patience` epochs: a model still getting better on new rows
        is not overfitting, however wide its train/val gap (an embedding or normalised net fits
        its training rows closely from early on; issue 11, fourth pass)."""
        recent = self.best_metric_recent
        if len(recent) < 2:
            return False
        before, now = recent[0], recent[-1]
        if self.context.greater_is_better is False:
            gain = (before - now) / before if before > 0 else before - now
        else:
            gain = now - before
        return gain >= self.thresholds["metric_drop"]

    def _gap_streak(self, event: dict[str, Any], gap: float, wide: bool) -> bool:
        """Count one more epoch of a gap `wide` beyond its limit (a narrow one ends the
        streak); True once the streak reaches the patience, `gap_run` then holding its start
        and its gaps."""
        if not wide:
            self.gap_run = [0, None, None, []]
            return False
        run = self.gap_run
        if run[0] == 0:
            run[1], run[2] = event.get("epoch"), event.get("step")
        run[0] += 1
        run[3].append(gap)
        return run[0] >= self.thresholds["patience"]

    def _judge_loss_gap(self, event: dict[str, Any]) -> Finding | None:
        val, train = finite(event.get("val_loss")), fitted_loss(event)
        base, train_base = self.context.baseline_loss, self._train_reference()
        if val is None or train is None or base is None or train_base is None:
            return None
        self.val_recent.append(val)
        earlier = self.val_recent[0]
        progress = (earlier - val) / earlier if earlier > 0 else 0.0
        flat = (len(self.val_recent) == self.val_recent.maxlen
                and progress < self.thresholds["val_progress"])
        # each side's loss over its own rows' trivial loss: the r2 lost between the training
        # rows and new rows (equal trivial losses: (val - train) / base)
        gap = val / base - train / train_base
        noise = self._gap_noise(val / base, train / train_base)
        bar = self.thresholds["metric_gap"] + noise
        if not self._gap_streak(event, gap, gap >= bar and flat and not self._improving()
                                and train <= self.thresholds["fitted_loss"] * train_base):
            return None
        run = self.gap_run
        return self.finding(
            run[1], run[2],
            f"val loss {val:.4g} ({val / base:.0%} of the trivial loss on val, {base:.4g}) "
            f"against train loss {train:.4g} ({train / train_base:.0%} of it on the training "
            f"rows, {train_base:.4g}): {gap:.3g} of r2 lost on new rows (limit {bar:.3g}) for "
            f"{run[0]} epochs since epoch {run[1]}",
            rule="loss_gap", val_loss=val, train_loss=train, baseline_loss=base,
            train_baseline_loss=train_base, gap=gap,
            gaps=list(run[3]), metric_gap=self.thresholds["metric_gap"], limit=bar,
            n_val=self.context.n_val, n_train_eval=self.context.n_train_eval,
            val_progress=progress,
            max_val_progress=self.thresholds["val_progress"], consecutive_epochs=run[0],
            patience=self.thresholds["patience"],
        )
