"""loss_oscillation: the loss bounces instead of going down - usually a learning rate too high.

Rules (either fires):

* epochs: over the last `window` epochs, the epoch-to-epoch moves of `val_loss` - or of the
  train loss: the end-of-epoch model's on fixed training rows (`train_eval_loss`, see
  `fitted_loss`) when the stream has it, else the epoch mean - that count (at least `amplitude`
  x the reference loss and at least `swing` x the lower of the two values) change direction
  `sign_changes` times or more, while the train loss fell by less than `train_progress`
  (relative) over the same epochs: swings without a downward trend (AUTOTRAINER's unstable-loss
  rule counts alternating local extremes of at least 0.03 in accuracy). The train-loss
  condition keeps apart a run that overfits noisily but still learns. The train loss counts on
  its own: an optimiser thrown about by too high a learning rate makes the loss on the very
  rows it trains on go up and down by epochs, which a sound one does not, however small or
  noisy the val set. The end-of-epoch loss is measured on the same rows every epoch with
  dropout off, so its moves are the optimiser's alone; the epoch mean also holds batch-to-batch
  noise and dropout, which bounced on healthy small regressions (issue 11, second pass). Onset:
  the epoch of the first counted rise in the window. On a val set of n_val rows a val-loss move
  must also be at least 2 x sqrt(2 / n_val) of the lower value (when the start event says
  n_val): the wobble a mean over that many rows shows as the model jitters (0.3 on 90 rows,
  0.17 on 270). And a move must give back at least `give_back` of the progress its series has
  made (the reference loss minus the series' lowest value so far): a converged model whose
  val loss wobbles between 0.13 and 0.26 of a trivial 0.69 moves by a tenth of what it won,
  where an optimiser past the edge of stability throws away a quarter to all of it (issue 11,
  fourth pass: healthy checkerboard, batch-norm and offset nets fired on the amplitude
  alone).
* kicks: on `kicks` epochs of the run, the end-of-epoch train loss (`train_eval_loss`, on the
  same training rows every epoch with dropout off) is at least `kick_factor` x its value the
  epoch before and `amplitude` x the reference loss above it. A sound optimiser never makes
  the loss of rows it has already fitted jump by half again from one epoch to the next (on
  the tuning runs: no healthy run once, 14 of 15 high-learning-rate runs at least once); an
  optimiser past the edge of stability keeps throwing the model off them, whatever its trend
  in between (the window rule's `train_progress` guard lets a run through whose loss falls
  between kicks). Onset: the first kick.
* spikes: `spikes` spikes within `spike_horizon` steps, a spike being `spike_steps`
  consecutive step losses each at least `spike_factor` x the mean of the last `spike_window`
  ordinary step losses and at least `spike_atol` x the reference loss above it (after
  Lightning `SpikeDetection`: a running mean over 10 steps, relative and absolute tolerances).
  Elevated steps stay out of the running mean. A single high batch is not a spike: on small
  data sets one batch with a few hard rows routinely reaches several times the mean, while an
  optimiser kicked off course stays up for several steps. How many steps is the run's own
  measure: batches are drawn independently, so if a share q of this run's steps rise over the
  bar by chance (elevated steps outside counted spikes, over the steps judged so far, at least
  `spike_window` of them), about `spike_horizon` x q^L runs of L elevated steps come by chance
  within a horizon, their count Poisson; a spike must be the shortest L >= `spike_steps` for
  which `spikes` such runs come by chance within a horizon with a chance of at most
  `spike_chance`. A light-tailed run almost never rises over the bar alone (q ~ 0, L =
  `spike_steps`); on a heavy-tailed regression target one batch in ten holds a row many times
  the mean loss (q ~ 0.1), pairs of them come twice per horizon by chance, and three such pairs
  fired on healthy runs (issue 11, sixth pass: a day's trading volume, heldout6) - there a spike
  needs 3 steps. The share is read over the steps seen so far, not over a whole horizon: a
  heavy-tailed run's first pairs come in its first hundred steps, and counting the steps not
  yet seen as quiet put q at half or less of what the run showed (issue 11, tenth pass:
  held-out v9's healthy mlp on function lengths, lone high steps every 5-15 steps from step
  20, took three pairs by step 126 as spikes); and the chance is that of the `spikes` spikes
  the rule needs, not of one (read so, where one step in five rises alone, three 4-step runs
  come by chance once in 230 horizons, and 4 steps make a spike; by one run's expected count
  it took 5). Onset: the first counted spike.

* collapse: after a step whose gradient norm passed `blowup_factor` x the run's early norm
  (the median of its first `blowup_history` steps; the first step's while there are fewer),
  the end-of-epoch train loss sits at or above `collapse` x the reference loss for
  `collapse_epochs` epochs, improving by less than `collapse_progress` over them, with most
  steps' gradient norms back below the blow-up's 1/`blowup_factor`: the optimiser threw the
  model off and it never came back (its units died or saturated), so
  there is nothing left to bounce; or, gradients aside, it has given back at least
  `collapse_lost` of the progress made before the blow-up (thrown out of its basin and still
  bouncing above it). The same rule as exploding_gradients' `collapse` (the
  collapse hides which came first); a collapse without a blow-up (a bias shift killing the
  units) is dead_relu's. Onset: the blow-up step.

* overshoot: a step loss at least `overshoot` x the loss the run started from (the larger of
  the first step's and the trivial baseline's), then units that stopped passing gradient: from
  that step on, on `dead_reports` consecutive per-layer reports some judged weight
  (dead_relu's choice of layers) has `zero_frac` >= `dead_fraction` (dead_relu's bar). A
  sound optimiser's steps never take the loss far above where it started - that is the model
  thrown across the valley by steps too long for it - and ReLU units pushed that far die: the
  loss then has nothing left to bounce with (too few live units to move, or stuck near the
  trivial loss), so the window and kicks rules see no swings and only dead_relu fired,
  naming the symptom and not its cause (issue 11, sixth pass: adamw at lr 0.1 on friedman1
  and a raw elevation model). Units dead from the start (negative biases at init) or killed
  by a shift of their biases never overshoot: their loss starts at, or jumps to, about the
  trivial loss - the overshoot bar sits well above that. The throw also shows in the
  gradient (issue 11, seventh pass): a step whose norm blows up (`blowup_factor` x the run's
  early norm, as for `collapse`) while the last per-layer report had no dead layer, then
  units dead on `dead_reports` reports, is the same overshoot even when the loss rose only
  1.4-4x its start (adamw at lr 0.05 on heldout6's disparity mlp: gradient 14x, 70-90 % of
  the units dead ten steps later). A bias shift kills units without a blow-up; units dead
  before the blow-up are not its doing. Onset: the overshooting step.

The reference loss is the trivial baseline's (or the first step's): amplitudes are judged on
the loss scale of the task, so the small wiggles of a converged model never count.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from itertools import pairwise
from typing import Any, ClassVar

from mltrainer.detectors._base import (
    Detector,
    Finding,
    StepBlock,
    finite,
    fitted_loss,
    new_collapse_watch,
    watch_blowup,
)
from mltrainer.detectors._dead_relu import judged_layers

_COLLAPSE = ("the optimiser blew up at step {step} (gradient norm {grad:.4g}, {ratio:.3g}x the "
             "run's early norm) and threw the model back towards the trivial loss (best before "
             "it {best}): {loss:.4g}, {share:.0%} of the {source} loss {ref:.4g}, for {epochs} "
             "epochs without progress")


class LossOscillationDetector(Detector):
    id: ClassVar[str] = "loss_oscillation"
    severity: ClassVar[str] = "warning"
    defaults: ClassVar[dict[str, float]] = {
        "window": 5,
        "sign_changes": 2,
        "amplitude": 0.05,
        "swing": 0.1,
        "train_progress": 0.1,
        "spike_factor": 2.0,
        "spike_window": 10,
        "spike_atol": 0.5,
        "spike_steps": 2,
        "spikes": 3,
        "spike_horizon": 200,
        "spike_chance": 0.005,
        "kick_factor": 1.5,
        "kicks": 2,
        "blowup_factor": 10.0,
        "blowup_history": 5,
        "collapse": 0.9,
        "collapse_epochs": 3,
        "collapse_progress": 0.1,
        "collapse_lost": 0.5,
        "give_back": 0.2,
        "overshoot": 5.0,
        "dead_fraction": 0.6,
        "dead_reports": 3,
    }
    kinds: ClassVar[dict[str, str]] = {
        "window": "count",
        "sign_changes": "count",
        "amplitude": "nonnegative",
        "swing": "nonnegative",
        "train_progress": "fraction",
        "spike_window": "count",
        "spike_steps": "count",
        "spikes": "count",
        "spike_horizon": "count",
        "spike_chance": "nonnegative",
        "kicks": "count",
        "blowup_history": "count",
        "collapse_epochs": "count",
        "collapse_progress": "fraction", "collapse_lost": "fraction",
        "give_back": "fraction",
        "dead_fraction": "fraction", "dead_reports": "count",
    }
    _state_fields: ClassVar[tuple[str, ...]] = (
        "epochs", "losses", "elevated", "spike_start", "spike_log", "last_fitted", "kick_log",
        "collapse_watch", "best_losses", "overshot", "dead_run", "judged", "by_chance",
        "run_length", "last_worst",
    )
    _optional_state: ClassVar[frozenset[str]] = frozenset({"best_losses", "overshot",
                                                           "dead_run", "judged", "by_chance",
                                                           "run_length", "last_worst"})

    def _setup(self) -> None:
        window = int(self.thresholds["window"])
        self.epochs: deque[list[Any]] = deque(maxlen=max(window, 2))  # [epoch, step, val, train]
        self.losses: deque[float] = deque(maxlen=int(self.thresholds["spike_window"]))
        self.elevated = 0  # consecutive steps above the spike bar
        self.spike_start: list[Any] = []  # [epoch, step, loss, running mean] of the first of them
        self.spike_log: deque[list[Any]] = deque()  # [epoch, step, loss, running mean]
        self.last_fitted: float | None = None  # the previous epoch's train_eval_loss
        self.kick_log: list[list[Any]] = []  # [epoch, step, before, after] of each kick
        self.collapse_watch = new_collapse_watch()
        self.best_losses: list[float | None] = [None, None]  # lowest val, train loss so far
        self.overshot: list[Any] = []  # [epoch, step, loss, start] of the first overshoot
        self.dead_run: list[Any] = [0, None, None, 0.0]  # [reports, epoch, step, worst share]
        self._overshoot_bar: float | None = None  # overshoot x start_loss(), once known
        self.judged = 0  # step losses judged against the spike bar
        self.by_chance = 0  # elevated steps in runs too short to be a spike
        self.run_length = 0  # the length the current run of elevated steps needs (0: none)
        self.last_worst: float | None = None  # the last report's largest zero_frac (overshoot)

    def _after_load(self) -> None:
        self._overshoot_bar = None
        if self.elevated and not self.run_length:  # saved mid-run before run_length was
            self.run_length = int(self.thresholds["spike_steps"])

    def _observe(self, event: dict[str, Any]) -> Finding | None:
        if event["type"] == "step":
            grad = finite(event.get("grad_norm"))
            if grad is not None:
                watch_blowup(self.collapse_watch, grad, event.get("epoch"), event.get("step"),
                             self.thresholds["blowup_factor"],
                             int(self.thresholds["blowup_history"]))
            return self._judge_overshoot(event) or self._judge_step(event)
        finding = self._judge_kick(event) or self._judge_collapse(event)
        if finding is not None:
            return finding
        val = finite(event.get("val_loss"))
        if val is None:
            return None
        train = fitted_loss(event)
        self.epochs.append([event.get("epoch"), event.get("step"), val, train])
        for i, value in enumerate((val, train)):
            best = self.best_losses[i]
            if value is not None and (best is None or value < best):
                self.best_losses[i] = value
        if len(self.epochs) < self.thresholds["window"]:
            return None
        return self._judge_window()

    def _observe_block(self, block: StepBlock, start: int) -> tuple[int, Finding] | None:
        """The column path (`Detector._observe_block`): every step counts here (the spike
        rule's running mean). A quiet step (no gradient norm, no per-layer report, a finite
        loss under the overshoot and spike bars) only moves the running mean, and is taken so
        from the columns; `_observe` itself judges the others, from a small dict of the
        fields its step rules read (a test notes them), not the block's full event dicts
        (`StepBlock.events`: two calls and seven keys a step), unless those are built anyway:
        where most steps carry a gradient norm (mlt's loop, HF: the other step detectors read
        those steps' dicts)."""
        grads = block.grad_norms
        if grads.count(None) * 2 <= len(grads):
            return super()._observe_block(block, start)
        observe = self._observe
        epochs, steps, losses, layers = block.epochs, block.steps, block.losses, block.layers
        odd = set(block.odd_losses())
        # a quiet step (no gradient norm, no report, a finite loss that is no overshoot and
        # under the spike bar) only moves the running mean: taken here, without a dict
        window, reference = self.losses, self.reference_loss()[0]
        factor, atol = self.thresholds["spike_factor"], self.thresholds["spike_atol"]
        for index in range(start, len(losses)):
            loss = losses[index]
            if (grads[index] is None and layers[index] is None and index not in odd
                    and self._no_overshoot(loss, steps[index])):
                if len(window) < (window.maxlen or 0):
                    window.append(loss)
                    continue
                mean = sum(window) / len(window)
                if loss < factor * mean or loss - mean < atol * (reference or mean):
                    self.judged += 1  # `_judge_step` on a step under the spike bar
                    if 0 < self.elevated < self.run_length:
                        self.by_chance += self.elevated
                    self.elevated = 0
                    window.append(loss)
                    continue
            finding = observe({"type": "step", "epoch": epochs[index], "step": steps[index],
                               "loss": losses[index], "grad_norm": grads[index],
                               "layers": layers[index]})
            if finding is not None:
                return index, finding
        return None

    def _no_overshoot(self, loss: float, step: Any) -> bool:
        """Whether `_judge_overshoot` does nothing on a step without a per-layer report: an
        overshoot was already found (it counts reports from there), or this finite `loss` is
        under the overshoot bar (once known) and the gradient did not blow up on this step."""
        if self.overshot:
            return True
        bar = self._overshoot_bar
        if bar is None or loss >= bar:
            return False
        blowup = self.collapse_watch["blowup"]
        return blowup is None or blowup[1] != step

    def _judge_window(self) -> Finding | None:
        ref, source = self.reference_loss()
        if ref is None:
            return None
        floor = self.thresholds["amplitude"] * ref
        rows = list(self.epochs)
        series = "val_loss"
        # a val loss is a mean over n_val rows: a per-row loss spread about as wide as its mean
        # (squared Gaussian residuals: sqrt(2) x the mean) makes it wobble by ~sqrt(2 / n_val)
        # of itself as the model jitters; a move must clear twice that to count
        n_val = self.context.n_val
        val_swing = max(self.thresholds["swing"], 2 * (2 / n_val) ** 0.5 if n_val else 0.0)
        least = self._floor(floor, ref, 0)
        moves = self._moves(rows, 2, least, val_swing)
        changes = _direction_changes(moves)
        if changes < self.thresholds["sign_changes"] and all(r[3] is not None for r in rows):
            series = "train_loss"
            least = self._floor(floor, ref, 1)
            moves = self._moves(rows, 3, least, self.thresholds["swing"])
            changes = _direction_changes(moves)
        if changes < self.thresholds["sign_changes"]:
            return None
        first_train, last_train = rows[0][3], rows[-1][3]
        progress = None
        if first_train is not None and last_train is not None and first_train > 0:
            progress = (first_train - last_train) / first_train
            if progress >= self.thresholds["train_progress"]:
                return None  # the swings ride on a clear downward trend: still learning
        # the oscillation begins where the loss first went up instead of down
        onset_row = rows[next((m for m in moves if m[0] > 0), moves[0])[1]]
        mean_swing = sum(abs(m[2]) for m in moves) / len(moves)
        return self.finding(
            onset_row[0], onset_row[1],
            f"{series.replace('_', ' ')} changed direction {changes} times in {len(rows)} "
            f"epochs (mean move {mean_swing:.3g}; moves of at least {least:.3g} count) "
            "without a downward trend",
            rule="epochs", series=series, sign_changes=changes,
            min_sign_changes=self.thresholds["sign_changes"],
            val_losses=[r[2] for r in rows], train_losses=[r[3] for r in rows],
            epochs=[r[0] for r in rows],
            mean_move=mean_swing, min_move=least, amplitude=self.thresholds["amplitude"],
            give_back=self.thresholds["give_back"],
            swing=self.thresholds["swing"], reference_loss=ref, reference=source,
            train_progress=progress, max_train_progress=self.thresholds["train_progress"],
        )

    def _judge_overshoot(self, event: dict[str, Any]) -> Finding | None:
        """A step loss far above the run's start, or a gradient blow-up while the units were
        alive, then units dead on `dead_reports` reports in a row (see the module
        docstring)."""
        worst = _worst_share(event.get("layers"))
        if not self.overshot:
            self.overshot = self._overshoot_at(event)
            if not self.overshot:
                if worst is not None:
                    self.last_worst = worst
                return None  # units are counted from the overshoot on
        if worst is None:
            return None
        run = self.dead_run
        if worst < self.thresholds["dead_fraction"]:
            run[:] = [0, None, None, 0.0]
            return None
        if run[0] == 0:
            run[1], run[2] = event.get("epoch"), event.get("step")
        run[0] += 1
        run[3] = max(run[3], worst)
        if run[0] < self.thresholds["dead_reports"]:
            return None
        epoch, step, loss, start = self.overshot[:4]
        dead = (f"up to {run[3]:.0%} of a layer's gradient was exactly zero on {run[0]} reports "
                f"since step {run[2]} (dead units): steps too long for the model threw it "
                "across the valley and killed its units")
        common = {"rule": "overshoot", "start_loss": start, "dead_since_step": run[2],
                  "zero_frac": run[3], "dead_fraction": self.thresholds["dead_fraction"],
                  "dead_reports": self.thresholds["dead_reports"]}
        if len(self.overshot) > 4:  # by the gradient: [.., "gradient", norm, early norm]
            grad, early = self.overshot[5], self.overshot[6]
            return self.finding(
                epoch, step,
                f"the gradient norm blew up to {grad:.4g} at step {step}, {grad / early:.3g}x "
                f"the run's early norm {early:.4g}, while the units were alive, and then {dead}",
                by="gradient", grad_norm=grad, early_norm=early,
                blowup_factor=self.thresholds["blowup_factor"], **common)
        return self.finding(
            epoch, step,
            f"the step loss overshot to {loss:.4g} at step {step}, {loss / start:.3g}x the "
            f"{start:.4g} the run started from, and then {dead}",
            by="loss", overshoot_loss=loss, overshoot=self.thresholds["overshoot"], **common)

    def _overshoot_at(self, event: dict[str, Any]) -> list[Any]:
        """[epoch, step, loss, start loss] when this step's loss is `overshoot` x the run's
        start, [.., "gradient", norm, early norm] when its gradient norm just blew up
        (`watch_blowup`) while the last per-layer report had no dead layer; else []."""
        bar = self._overshoot_bar
        if bar is None:
            start = self.start_loss()
            if start is None or start <= 0:
                return []
            bar = self.thresholds["overshoot"] * start
            if self.initial_loss is not None:  # fixed from the first finite step loss on
                self._overshoot_bar = bar
        start = bar / self.thresholds["overshoot"]
        loss = event.get("loss")
        if isinstance(loss, (int, float)) and loss >= bar and finite(loss) is not None:
            return [event.get("epoch"), event.get("step"), loss, start]
        blowup = self.collapse_watch["blowup"]
        if (blowup is not None and blowup[1] == event.get("step")
                and (self.last_worst is None
                     or self.last_worst < self.thresholds["dead_fraction"])):
            return [blowup[0], blowup[1], finite(loss), start, "gradient", blowup[2],
                    blowup[3]]
        return []

    def _judge_collapse(self, event: dict[str, Any]) -> Finding | None:
        """A gradient blow-up, then the loss thrown back to the trivial level for good: the
        bounce that never came down (see the module docstring)."""
        return self.collapse_finding(event, _COLLAPSE, "blowup_factor")

    def _judge_kick(self, event: dict[str, Any]) -> Finding | None:
        """The end-of-epoch train loss jumped to `kick_factor` x its previous epoch's value and
        by `amplitude` x the reference loss; `kicks` such epochs in a run fire."""
        now = finite(event.get("train_eval_loss"))
        if now is None:
            return None
        before, self.last_fitted = self.last_fitted, now
        ref, source = self.reference_loss()
        if before is None or ref is None:
            return None
        if now < self.thresholds["kick_factor"] * before or (
                now - before < self.thresholds["amplitude"] * ref):
            return None
        self.kick_log.append([event.get("epoch"), event.get("step"), before, now])
        if len(self.kick_log) < self.thresholds["kicks"]:
            return None
        first = self.kick_log[0]
        epochs = ", ".join(str(k[0]) for k in self.kick_log)
        return self.finding(
            first[0], first[1],
            f"the end-of-epoch train loss jumped to at least "
            f"{self.thresholds['kick_factor']:g}x the epoch before in epochs {epochs} (last: "
            f"{before:.4g} to {now:.4g}): the optimiser throws the model off rows it had fitted",
            rule="kicks", kicks=[{"epoch": e, "step": st, "before": b, "after": a}
                                 for e, st, b, a in self.kick_log],
            kick_factor=self.thresholds["kick_factor"], min_kicks=self.thresholds["kicks"],
            amplitude=self.thresholds["amplitude"], reference_loss=ref, reference=source,
        )

    def _floor(self, floor: float, ref: float, column: int) -> float:
        """The smallest move that counts: `amplitude` x the reference loss, and `give_back` x
        the progress the series has made (reference - its lowest value so far)."""
        best = self.best_losses[column]
        if best is None or best >= ref:
            return floor
        return max(floor, self.thresholds["give_back"] * (ref - best))

    @staticmethod
    def _moves(rows: list[list[Any]], column: int, floor: float, swing: float
               ) -> list[tuple[int, int, float]]:
        """(sign, index of the row where the move ended, size) of each epoch-to-epoch move of
        `column` that counts: at least `floor` and `swing` x the lower of the two values."""
        moves = []
        for index, (before, after) in enumerate(pairwise(rows), start=1):
            change = after[column] - before[column]
            if abs(change) >= floor and abs(change) >= swing * min(before[column], after[column]):
                moves.append((1 if change > 0 else -1, index, change))
        return moves

    def _judge_step(self, event: dict[str, Any]) -> Finding | None:
        loss = finite(event.get("loss"))
        if loss is None:
            return None
        losses = self.losses
        if len(losses) < losses.maxlen:
            losses.append(loss)
            return None
        mean = sum(losses) / len(losses)
        ref = self.reference_loss()[0] or mean
        self.judged += 1
        if loss < self.thresholds["spike_factor"] * mean or (
            loss - mean < self.thresholds["spike_atol"] * ref
        ):
            if 0 < self.elevated < self.run_length:
                self.by_chance += self.elevated  # a run too short to be a spike
            self.elevated = 0
            losses.append(loss)
            return None
        self.elevated += 1  # elevated steps stay out of the running mean
        if self.elevated == 1:
            self.spike_start = [event.get("epoch"), event.get("step"), loss, mean]
            self.run_length = self._spike_length()
        if self.elevated != self.run_length:
            return None
        step = event.get("step")
        log = self.spike_log
        log.append(self.spike_start)
        if isinstance(step, int):
            horizon = self.thresholds["spike_horizon"]
            while log and isinstance(log[0][1], int) and step - log[0][1] >= horizon:
                log.popleft()
        if len(log) < self.thresholds["spikes"]:
            return None
        first = log[0]
        return self.finding(
            first[0], first[1],
            f"{len(log)} loss spikes within {self.thresholds['spike_horizon']} steps since "
            f"step {first[1]} (each >= {self.thresholds['spike_factor']:g}x the running mean "
            f"for {self.run_length} steps)",
            rule="spikes",
            spikes=[{"epoch": e, "step": s, "loss": v, "running_mean": m} for e, s, v, m in log],
            spike_factor=self.thresholds["spike_factor"], spike_atol=self.thresholds["spike_atol"],
            spike_steps=self.thresholds["spike_steps"], reference_loss=ref,
            min_spikes=self.thresholds["spikes"], spike_horizon=self.thresholds["spike_horizon"],
            spike_length=self.run_length, chance_share=self._chance_share(),
        )

    def _chance_share(self) -> float:
        """The share of the steps judged so far (at least `spike_window`) that rose over the
        spike bar by chance (elevated steps outside counted spikes)."""
        return self.by_chance / max(self.judged, self.thresholds["spike_window"])

    def _spike_length(self) -> int:
        """The fewest consecutive elevated steps that make a spike: `spike_steps`, or more
        while `spikes` runs that long would come by chance within a horizon with a chance over
        `spike_chance` (their count in a horizon is Poisson, mean horizon x share^length)."""
        length = int(self.thresholds["spike_steps"])
        share = self._chance_share()
        if share <= 0:
            return length
        from scipy.special import gammainc  # P(Poisson(mean) >= k) = gammainc(k, mean)

        horizon, chance = self.thresholds["spike_horizon"], self.thresholds["spike_chance"]
        needed = self.thresholds["spikes"]
        while gammainc(needed, horizon * share**length) > chance and length < horizon:
            length += 1
        return length


def _worst_share(layers: Any) -> float | None:
    """The largest `zero_frac` among dead_relu's judged layers of a per-layer report (None
    without one)."""
    if not layers or not isinstance(layers, Mapping):
        return None
    shares = [s for s in (finite(layers[n].get("zero_frac")) for n in judged_layers(layers)
                          if isinstance(layers[n], Mapping)) if s is not None]
    return max(shares) if shares else None


def _direction_changes(moves: list[tuple[int, int, float]]) -> int:
    return sum(1 for a, b in pairwise(moves) if a[0] != b[0])
