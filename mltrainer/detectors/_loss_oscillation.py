"""loss_oscillation: the loss bounces instead of going down - usually a learning rate too high.

Rules (either fires):

* epochs: over the last `window` epochs, the epoch-to-epoch moves of `val_loss` that count -
  at least `amplitude` x the reference loss and at least `swing` x the lower of the two values -
  change direction `sign_changes` times or more, while the train loss fell by less than
  `train_progress` (relative) over the same epochs: swings without a downward trend
  (AUTOTRAINER's unstable-loss rule counts alternating local extremes of at least 0.03 in
  accuracy). The train-loss condition keeps apart a run that overfits noisily but still
  learns. When the epochs carry `train_eval_loss` (the end-of-epoch model's loss on fixed
  training rows), it must change direction as often, by moves that count the same way: an
  optimiser thrown about by too high a learning rate moves the model's fit of its own
  training rows too, while the wiggles of a converged model on a small val set (a few rows
  flipping) leave the training rows' loss smooth. Onset: the epoch of the first counted rise
  in the window.
* spikes: `spikes` spikes within `spike_horizon` steps, a spike being `spike_steps`
  consecutive step losses each at least `spike_factor` x the mean of the last `spike_window`
  ordinary step losses and at least `spike_atol` x the reference loss above it (after
  Lightning `SpikeDetection`: a running mean over 10 steps, relative and absolute tolerances).
  Elevated steps stay out of the running mean. A single high batch is not a spike: on small
  data sets one batch with a few hard rows routinely reaches several times the mean, while an
  optimiser kicked off course stays up for several steps. Onset: the first counted spike.

The reference loss is the trivial baseline's (or the first step's): amplitudes are judged on
the loss scale of the task, so the small wiggles of a converged model never count.
"""

from __future__ import annotations

from collections import deque
from itertools import pairwise
from typing import Any, ClassVar

from mltrainer.detectors._base import Detector, Finding, finite


class LossOscillationDetector(Detector):
    id: ClassVar[str] = "loss_oscillation"
    severity: ClassVar[str] = "warning"
    defaults: ClassVar[dict[str, float]] = {
        "window": 5,
        "sign_changes": 2,
        "amplitude": 0.02,
        "swing": 0.1,
        "train_progress": 0.1,
        "spike_factor": 2.0,
        "spike_window": 10,
        "spike_atol": 0.5,
        "spike_steps": 2,
        "spikes": 3,
        "spike_horizon": 200,
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
    }
    _state_fields: ClassVar[tuple[str, ...]] = (
        "epochs", "losses", "elevated", "spike_start", "spike_log",
    )

    def _setup(self) -> None:
        window = int(self.thresholds["window"])
        # [epoch, step, val, train, train_eval]
        self.epochs: deque[list[Any]] = deque(maxlen=max(window, 2))
        self.losses: deque[float] = deque(maxlen=int(self.thresholds["spike_window"]))
        self.elevated = 0  # consecutive steps above the spike bar
        self.spike_start: list[Any] = []  # [epoch, step, loss, running mean] of the first of them
        self.spike_log: deque[list[Any]] = deque()  # [epoch, step, loss, running mean]

    def _observe(self, event: dict[str, Any]) -> Finding | None:
        if event["type"] == "step":
            return self._judge_step(event)
        val = finite(event.get("val_loss"))
        if val is None:
            return None
        self.epochs.append([event.get("epoch"), event.get("step"), val,
                            finite(event.get("train_loss")),
                            finite(event.get("train_eval_loss"))])
        if len(self.epochs) < self.thresholds["window"]:
            return None
        return self._judge_window()

    def _judge_window(self) -> Finding | None:
        ref, source = self.reference_loss()
        if ref is None:
            return None
        floor = self.thresholds["amplitude"] * ref
        rows = list(self.epochs)
        moves = self._moves(rows, 2, floor)
        changes = _direction_changes(moves)
        if changes < self.thresholds["sign_changes"]:
            return None
        train_changes = None
        if all(r[4] is not None for r in rows):
            train_changes = _direction_changes(self._moves(rows, 4, floor))
            if train_changes < self.thresholds["sign_changes"]:
                return None  # the training rows' fit is smooth: val noise, not instability
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
            f"val loss changed direction {changes} times in {len(rows)} epochs (mean move "
            f"{mean_swing:.3g}; moves of at least {floor:.3g} count) without a downward trend",
            rule="epochs", sign_changes=changes, train_sign_changes=train_changes,
            min_sign_changes=self.thresholds["sign_changes"],
            val_losses=[r[2] for r in rows], epochs=[r[0] for r in rows],
            mean_move=mean_swing, min_move=floor, amplitude=self.thresholds["amplitude"],
            swing=self.thresholds["swing"], reference_loss=ref, reference=source, train_progress=progress,
            max_train_progress=self.thresholds["train_progress"],
        )

    def _moves(self, rows: list[list[Any]], column: int, floor: float
               ) -> list[tuple[int, int, float]]:
        """(sign, index of the row where the move ended, size) of each epoch-to-epoch move of
        `column` that counts: at least `floor` and `swing` x the lower of the two values."""
        moves = []
        swing = self.thresholds["swing"]
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
        if loss < self.thresholds["spike_factor"] * mean or (
            loss - mean < self.thresholds["spike_atol"] * ref
        ):
            self.elevated = 0
            losses.append(loss)
            return None
        self.elevated += 1  # elevated steps stay out of the running mean
        if self.elevated == 1:
            self.spike_start = [event.get("epoch"), event.get("step"), loss, mean]
        if self.elevated != self.thresholds["spike_steps"]:
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
            f"for {self.thresholds['spike_steps']} steps)",
            rule="spikes",
            spikes=[{"epoch": e, "step": s, "loss": v, "running_mean": m} for e, s, v, m in log],
            spike_factor=self.thresholds["spike_factor"], spike_atol=self.thresholds["spike_atol"],
            spike_steps=self.thresholds["spike_steps"], reference_loss=ref,
            min_spikes=self.thresholds["spikes"], spike_horizon=self.thresholds["spike_horizon"],
        )


def _direction_changes(moves: list[tuple[int, int, float]]) -> int:
    return sum(1 for a, b in pairwise(moves) if a[0] != b[0])
