"""underfitting: the model cannot fit its own training data, and has stopped getting better.

Rule: from epoch `min_epochs` on, the train loss has flattened - the best of the last
`patience` epochs improves on the best before them by less than `min_progress` (relative), and
it is not accelerating (falling in every epoch of the window, by more in the last than in the
first: a curve leaving a plateau, where one converging to a floor takes ever smaller steps),
nor rising by `min_progress` or more (a loss thrown up by the optimiser is not at a plateau:
an lr too high for the target's spread made a healthy raw-unit regression's train loss jump
40 % mid-run, and that read as "flat and short of the goal"; issue 11, second pass) -
while the fit is poor: the train loss is still at or above (1 - `loss_margin`) x the reference
loss (no better than the trivial baseline `mlt plan` measured), or the train metric (epoch
events' `train`) falls short of the goal (`goal_target` in the start event) by at least
`metric_margin` (absolute for accuracy/f1_macro/roc_auc/r2, relative for rmse/mae) - the model
does not reach the goal even on the rows it learns from (the "high bias" diagnosis: compare
the training error with the desired performance). A model whose train metric meets the goal
is never underfitting; one whose loss is still falling is still learning (a raw-unit
regression that spends its first epochs learning the target's mean, a tiny data set with two
steps an epoch). Nor is a slow learner on course to clear the bar it is judged against in the
epochs it has left (the start event's `epochs`): a train loss that, falling on at the window's
own rate (its relative progress per epoch, compounded), would get below the no-better-than-
trivial bar before the run ends, or a train metric that, climbing on at the window's own
rate (per epoch, linear), would reach the goal's bar (issue 11, fifth pass: a mixture of
experts still breaking symmetry at 98 % of the trivial loss in epoch 4 of 40, gaining 2 % in
three epochs, fired; it met its goal). Without `epochs` in the stream the run is judged as
if it ended now. The fit is judged at its best in the window (the lowest train loss, the best
train metric of its last `patience` epochs), and so is the projection's starting point: one
noisy epoch is not where a model stands (issue 11, sixth pass: a raw-unit elevation model at
train r2 0.48-0.50, climbing about 0.006 an epoch to the goal's bar 0.50, fired on an epoch
that fell back to 0.46; it reached 0.70 by epoch 40). Onset: the first epoch of the flat window.

A model short of the goal whose loss still falls (by `min_progress` or more over the window,
not accelerating) is underfitting too once the window's own rate (the on-course projection
above) would leave its train metric short of the goal's bar at the end of the run: slow,
steady progress that cannot get there in the budget is what underfitting looks like on a net
too small or too regularised, and waiting for it to flatten put the finding 5-12 epochs late
(issue 11, tenth pass: one hidden unit on langs and ncbeta, found in epochs 12-13 of 20,
dropout 0.9 in epoch 8). A loss that falls faster each epoch is leaving a plateau and is not
judged; neither is the no-better-than-trivial level while the loss falls (the projection to
that bar stays as it was).

Short of the goal is judged only once the run has used `goal_after` of its epochs (the start
event's `epochs`): the goal is where the run should end, and a model on an early plateau that
it leaves later is not one that cannot fit (issue 11, ninth pass: a ReZero net - residual
scalars from 0 - sat at train r2 0.13 in epoch 5 of 40, a looped SiLU net at 0.24 in epochs
3-10 of 60; both left their plateaus and met their goals). No better than the trivial
baseline is judged from `min_epochs` on, whatever the budget.

A run that ends (the end event's reason `completed`, `early_stopping`, `max_steps` or
`max_time`: its budget ran out, not a detector, a Ctrl-C or an error) before the plateau rule
could judge it - too few epochs for `min_epochs` and a window, or a loss still falling when the
budget ran out - is judged once more at its end: when its train loss was never better than
trivial (at or above (1 - `loss_margin`) x the reference loss in every epoch: a model that got
below that bar and fell back collapsed, it did not underfit) and the train metric of its last
`patience` epochs does not meet the goal, the model never fitted its training rows in the run
it had (rule `ended_no_better_than_trivial`; issue 11, ninth pass: 3 epochs of 4 steps on wine,
train loss 93 % of trivial, train accuracy 0.52 against a goal of 0.8, a baseline that failed
its gate and a diagnose that said nothing was wrong). A slow start is a finding at the end, not
on the way.

All of it is scale-free: losses are judged against the reference loss and against their own
earlier values, metrics against the goal. The train loss judged is the end-of-epoch model's
(`train_eval_loss`) when the stream has it, else the epoch mean (`fitted_loss`). Without a
baseline in the context, the reference is the first step's loss (the untrained model's), or
the first epoch's train loss in a stream without steps.
"""

from __future__ import annotations

from collections import deque
from itertools import pairwise
from typing import Any, ClassVar

from mltrainer.detectors._base import Detector, Finding, fitted_loss


class UnderfittingDetector(Detector):
    id: ClassVar[str] = "underfitting"
    severity: ClassVar[str] = "warning"
    defaults: ClassVar[dict[str, float]] = {
        "min_epochs": 3,
        "patience": 3,
        "loss_margin": 0.1,
        "min_progress": 0.05,
        "metric_margin": 0.05,
        "goal_after": 0.25,
    }
    kinds: ClassVar[dict[str, str]] = {
        "min_epochs": "count", "patience": "count", "loss_margin": "fraction",
        "min_progress": "nonnegative", "metric_margin": "nonnegative", "goal_after": "fraction",
    }
    watches: ClassVar[frozenset[str]] = frozenset({"epoch", "end"})
    # the end reasons of a run whose budget ran out (not a detector's stop, a Ctrl-C or an
    # error): the run is over, and it is judged as it ended. `max_steps` is a step budget spent
    # (Lightning's or HF's max_steps, MltMonitor's; also plan's determinism probe, whose
    # findings nobody reads: it compares weights), `max_time` a time budget (Lightning's)
    ended: ClassVar[frozenset[str]] = frozenset({"completed", "early_stopping", "max_steps",
                                                 "max_time"})
    _state_fields: ClassVar[tuple[str, ...]] = ("recent", "best_before", "epochs_seen")

    def _setup(self) -> None:
        # [epoch, step, loss, train metric] of the last `patience` epochs and the one before
        self.recent: deque[list[Any]] = deque()
        self.best_before: float | None = None  # best train loss before those
        self.epochs_seen = 0

    def _observe(self, event: dict[str, Any]) -> Finding | None:
        if event.get("type") == "end":
            return self._at_end(event)
        self.epochs_seen += 1
        train = fitted_loss(event)
        if train is None:
            return None
        patience = self.thresholds["patience"]
        if len(self.recent) > patience:
            leaving = self.recent.popleft()[2]
            self.best_before = leaving if self.best_before is None else min(self.best_before,
                                                                             leaving)
        epoch = event.get("epoch")
        self.recent.append([epoch, event.get("step"), train, self.metric_of(event, "train")])
        ref, source = self.reference_loss()
        seen = epoch if isinstance(epoch, int) else self.epochs_seen
        if ref is None or seen < self.thresholds["min_epochs"] or len(self.recent) <= patience:
            return None
        losses = [row[2] for row in self.recent]
        before = min(losses[0], self.best_before) if self.best_before is not None else losses[0]
        best_now = min(losses[1:])
        progress = (before - best_now) / before if before > 0 else 0.0
        steps = [a - b for a, b in pairwise(losses)]
        accelerating = all(d > 0 for d in steps) and steps[-1] > steps[0]
        # still learning: judged against the goal alone, and only off course (below)
        learning = progress >= self.thresholds["min_progress"]
        if progress <= -self.thresholds["min_progress"] or accelerating:
            return None  # thrown about (rising), or leaving a plateau
        metric = self.context.metric
        # the fit is judged at its best in the window, not on its last epoch alone: one noisy
        # epoch (a worse loss, a lower train metric) is not where the model stands
        train_metric = self._best_metric(list(self.recent)[1:])
        meets = self.context.meets_goal(train_metric)
        short = self._short_of_goal(train_metric)
        limit = (1 - self.thresholds["loss_margin"]) * ref
        poor_loss = best_now >= limit
        if meets or not (poor_loss or short):
            return None
        if learning:  # a falling loss is no plateau: only short of the goal and off course
            if not short:
                return None
            poor_loss = False
        if not poor_loss and self._too_early_for_the_goal(seen):
            return None
        on_course = self._on_course(seen, progress, best_now, limit, poor_loss, short)
        if on_course:
            return None
        first = self.recent[1]
        why = (f"train loss {best_now:.4g} (the window's best) is {best_now / ref:.0%} of the "
               f"{source} loss {ref:.4g} (needs below {limit:.4g})" if poor_loss else
               f"train {metric} {train_metric:.4g} falls short of the goal "
               f"{self.context.goal_target:.4g} on the training rows (by more than "
               f"{self.thresholds['metric_margin']:g})")
        pace = (f"the train loss improved by only {progress:.1%} over the last "
                f"{len(self.recent)} epochs (needs {self.thresholds['min_progress']:.0%})"
                if not learning else
                f"at the pace of its last {len(self.recent)} epochs (train loss "
                f"{progress:.1%} lower) it would still fall short by the end of the run")
        return self.finding(
            first[0], first[1], f"{why}, and {pace}",
            rule="no_better_than_trivial" if poor_loss else "short_of_goal",
            train_loss=best_now, reference_loss=ref, reference=source,
            loss_ratio=best_now / ref,
            limit=limit, loss_margin=self.thresholds["loss_margin"], metric=metric,
            train_metric=train_metric, goal_target=self.context.goal_target,
            progress=progress, min_progress=self.thresholds["min_progress"],
            metric_margin=self.thresholds["metric_margin"],
            train_losses=losses[1:], epochs=[row[0] for row in list(self.recent)[1:]],
            patience=self.thresholds["patience"], min_epochs=self.thresholds["min_epochs"],
        )

    def _too_early_for_the_goal(self, epoch: int) -> bool:
        """Whether the run has used less than `goal_after` of its epochs (the start event's
        `epochs`; never without them): too early to judge it against the goal, which is where
        the run should end."""
        total = self.context.epochs
        return total is not None and epoch < self.thresholds["goal_after"] * total

    def _at_end(self, event: dict[str, Any]) -> Finding | None:
        """The run ended with its budget spent: a train loss still no better than trivial at
        its best over the last `patience` epochs, and a train metric short of the goal."""
        if event.get("reason") not in self.ended or not self.recent:
            return None
        ref, source = self.reference_loss()
        if ref is None:
            return None
        rows = list(self.recent)[-self.thresholds["patience"]:]
        limit = (1 - self.thresholds["loss_margin"]) * ref
        train_metric = self._best_metric(rows)
        # never below the bar in the whole run: a model that fitted and then fell back to the
        # trivial level collapsed (exploding_gradients, convergence_stall), it did not underfit
        ever = min([row[2] for row in self.recent]
                   + ([] if self.best_before is None else [self.best_before]))
        if ever < limit or self.context.meets_goal(train_metric):
            return None
        best = min(row[2] for row in rows)
        metric = self.context.metric
        fit = ("" if train_metric is None else
               f" (train {metric} {train_metric:.4g}"
               + ("" if self.context.goal_target is None else
                  f", goal {self.context.goal_target:.4g}") + ")")
        return self.finding(
            rows[0][0], rows[0][1],
            f"the run ended ({event.get('reason')}, epoch {event.get('epoch')}) with its train "
            f"loss {best:.4g} (the best of its last {len(rows)} epochs) at {best / ref:.0%} of "
            f"the {source} loss {ref:.4g} (needs below {limit:.4g}){fit}: the model never "
            f"fitted its training rows in the epochs it had",
            rule="ended_no_better_than_trivial", end_reason=event.get("reason"),
            train_loss=best, reference_loss=ref, reference=source, loss_ratio=best / ref,
            limit=limit, loss_margin=self.thresholds["loss_margin"], metric=metric,
            train_metric=train_metric, goal_target=self.context.goal_target,
            train_losses=[row[2] for row in rows], epochs=[row[0] for row in rows],
            patience=self.thresholds["patience"],
        )

    def _on_course(self, epoch: int, progress: float, train: float, limit: float,
                   poor_loss: bool, short: bool) -> bool:
        """Whether the run, learning on at the window's own rate for the epochs it has left,
        would clear a bar it is now below: the no-better-than-trivial bar `limit` (the train
        loss falling by the window's relative progress per epoch, compounded) or the goal's
        bar (the train metric moving by the window's gain per epoch, linear)."""
        total = self.context.epochs
        if total is None or total <= epoch:
            return False
        left = total - epoch
        window = len(self.recent) - 1
        if poor_loss and 0 < progress < 1 and train * (1 - progress) ** (left / window) < limit:
            return True
        # (a state saved before the metric joined the rows has none: judged on the loss)
        first = self.recent[0][3] if len(self.recent[0]) > 3 else None
        now = self._best_metric(list(self.recent)[1:])
        if short and first is not None and now is not None:
            projected = now + (now - first) / window * left
            return not self._short_of_goal(projected)
        return False

    def _best_metric(self, rows: list[list[Any]]) -> float | None:
        """The best train metric among `rows` (their fourth field), or None."""
        values = [row[3] for row in rows if len(row) > 3 and row[3] is not None]
        if not values:
            return None
        return min(values) if self.context.greater_is_better is False else max(values)

    def _short_of_goal(self, value: float | None) -> bool:
        """Whether the train metric misses the goal by at least `metric_margin`."""
        goal, margin = self.context.goal_target, self.thresholds["metric_margin"]
        if value is None or goal is None:
            return False
        if self.context.greater_is_better is False:
            return value > goal * (1 + margin)
        return value < goal - margin

