"""mlt's metric stream and online detectors inside a Lightning `Trainer.fit`.

    from mltrainer.integrations.lightning import MltCallback

    trainer = lightning.Trainer(max_epochs=20, callbacks=[MltCallback("runs/my-run",
                                task="classification", metric="accuracy")])
    trainer.fit(model, train_loader, val_loader)

Each optimisation step becomes a step event (the loss `training_step` returned, the lr, the
global gradient norm before clipping, taken in `on_before_optimizer_step` on every step while
that costs at most 0.1 % of the step and on a stride otherwise (`RunMonitor.wants_grad_norm`;
the event then goes without `grad_norm`), and every `grad_stats_every` steps per-layer
statistics); the numbers stay on the device until the
monitor handles a block of steps (`RunMonitor`: no sync per step, a detector's stop at most
`max_block - 1` steps and `max_delay_s` plus one step late); each epoch an epoch event with
the values the module logged as `val_loss` and `val_<metric>` (`val_prefix`). The detectors
run on every event; when one that stops training fires (a non-finite loss: `nan_loss`), the
callback sets `trainer.should_stop`, records `stopping_reason` ("detector:nan_loss") and
`stopping_reason_message` (the finding), as Lightning's `EarlyStopping` does, and the findings
go to `findings.json` beside `metrics.jsonl`.

Inside `mlt train-baseline` (a `training.entrypoint`), `MltCallback()` needs no arguments: the
run folder, task, metric, trivial baseline and thresholds come from
`mltrainer.integrations.context()`, and checkpoints are saved for the gate's reload check.
Works with `lightning.pytorch` and, when only that is installed, `pytorch_lightning`. With
several processes global rank 0 writes the stream and runs the detectors, and its stop
reaches every process through the strategy's `reduce_boolean_decision` (as `EarlyStopping`):
all stop at the same step (the others record `stopping_reason` "stopped_by_rank0").

With `train_rows` (default inside an mlt run: the engine's fixed training subset) each epoch
event also carries `train` and `train_eval_loss`, measured as the engine does (see
`mltrainer.integrations._core.TrainRows`); outside an mlt run pass `train_rows=(X, y)`.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor

from mltrainer.engine.entrypoint import frameworks_importable
from mltrainer.integrations._context import monitor_settings
from mltrainer.integrations._core import (
    RunMonitor,
    split_logged,
    trainable,
)

frameworks_importable()  # before the framework itself: see its docstring

try:
    from lightning.pytorch import Callback
    from lightning.pytorch.callbacks import EarlyStopping
except ImportError:  # pragma: no cover - the older package name
    from pytorch_lightning import Callback  # type: ignore[no-redef]
    from pytorch_lightning.callbacks import EarlyStopping  # type: ignore[no-redef]

__all__ = ["MltCallback"]
_NO_NORMS = (None, None)  # a step whose gradient norm is not sampled


class MltCallback(Callback):
    """See the module docstring. Arguments left None come from the mlt run context when there
    is one (`run_dir` is then required otherwise)."""

    def __init__(self, run_dir: str | Path | None = None, *, task: str | None = None,
                 metric: str | None = None, baseline: dict[str, float] | None = None,
                 thresholds: dict[str, dict[str, float]] | None = None,
                 goal_target: float | None = None, n_val: int | None = None,
                 val_prefix: str = "val_", grad_stats_every: int | None = None,
                 save_checkpoints: bool | None = None, train_rows: Any = "auto") -> None:
        super().__init__()
        self.monitor = RunMonitor(**monitor_settings(
            run_dir, task=task, metric=metric, baseline=baseline, thresholds=thresholds,
            grad_stats_every=grad_stats_every, checkpoints=save_checkpoints,
            goal_target=goal_target, n_val=n_val, train_rows=train_rows,
            framework="lightning"))
        self.val_prefix = val_prefix
        self.stopping_reason: str | None = None
        self.stopping_reason_message: str | None = None
        self._params: list[Any] = []
        self._step = 0  # the optimisation steps so far: trainer.global_step, counted here
        self._recorded = 0  # the last step on_train_batch_end handed on
        self._epoch = 1  # the epoch in progress, from 1: trainer.current_epoch + 1
        # from on_before_optimizer_step to on_train_batch_end: the step's lr and, when the
        # monitor samples it, its gradient norms (on the device; `RunMonitor.sample`)
        self._lr: Any = None
        self._grads: tuple[Any, Any] = _NO_NORMS
        self._next_sample: float = 0  # RunMonitor.next_sample, kept here (the hooks' fast path)
        self._active = True
        self._world = 1
        self._alone = True  # active, one process: on_train_batch_end's fast path
        self._validated = False  # a validation ran since the last epoch's end
        self._warned_no_loss = False

    @property
    def findings(self) -> list[Any]:
        return self.monitor.findings

    # -- hooks: each a few lines around RunMonitor ----------------------------------------------

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self._active = trainer.is_global_zero  # one process writes the stream and decides
        self._world = trainer.world_size
        self._step = self._recorded = trainer.global_step
        reason = None
        if self._active:
            spe = trainer.num_training_batches
            per_step = max(1, trainer.accumulate_grad_batches)
            steps = int(spe) // per_step if spe != float("inf") else None
            self._params = trainable(pl_module)
            reason = self.monitor.start(steps_per_epoch=steps, epochs=trainer.max_epochs)
        self._next_sample = self.monitor.next_sample if self._active else math.inf
        self._alone = self._active and self._world == 1
        self._stop_if(trainer, reason)

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self._epoch = trainer.current_epoch + 1  # once an epoch: a property chain a step

    # The two per-step hooks run right after the backward pass and the optimiser's step, when
    # every object they touch is out of the cache: a Python call costs ~3 us there, an
    # attribute of a large object ~0.5 us (bench/integrations.py). So the common step (no
    # norm sampled) is a few lines of each, with no call of ours: a count and the lr here, one
    # tuple appended to the monitor's pending block at the batch's end (`RunMonitor.step`,
    # inlined); `RunMonitor.sample` and `_due` only when a step is sampled or due.

    def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        # Lightning counts each call as one optimisation step (its global_step, read at each
        # epoch's end and the start: a property chain that costs more than the count here)
        self._step = step = self._step + 1
        # the lr this step uses (Lightning steps the schedulers before on_train_batch_end)
        self._lr = optimizer.param_groups[0]["lr"]
        if step >= self._next_sample:
            # the gradients' numbers on a sampled step (RunMonitor.sample), before Lightning
            # clips: the unclipped norms, as the stream wants. Lightning keeps no norm to reuse
            # (it discards clip_grad_norm_'s; its grad_norm() utility is one norm per
            # parameter and a host sync): one fused pass of our own
            self._grads = self.monitor.sample(self._params, step)
            self._next_sample = self.monitor.next_sample

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        step = self._step
        if step == self._recorded:
            return  # no optimisation step since the last batch: an accumulation micro-batch
        self._recorded = step
        if not self._alone:
            self._record_elsewhere(trainer, outputs)
            return
        # Lightning's outputs: {"loss": the loss detached, ...} (both optimisation modes)
        loss = outputs.get("loss") if type(outputs) is dict else _loss_of(outputs)
        if loss is None:  # training_step returned None
            self._no_loss(pl_module)
            return
        grads = self._grads
        if grads is not _NO_NORMS:
            self._grads = _NO_NORMS
        monitor = self.monitor
        pending = monitor._pending  # RunMonitor.step, inlined (see above)
        now = time.perf_counter()
        pending.append((self._epoch, step, loss, float(self._lr), grads[0], grads[1], now))
        if len(pending) >= monitor._due_at or now >= monitor._flush_by:
            reason = monitor._due()
            if reason is not None:
                self._stop_if(trainer, reason)

    def _no_loss(self, pl_module: Any) -> None:
        """A step without a loss is no step event (no loss, no gradient norm), so the step
        detectors see nothing of it and the epoch event has no train loss: its sampled norms
        are dropped (not handed to the next step's event), and a warning says so, once."""
        self._grads = _NO_NORMS
        if self._warned_no_loss:
            return
        self._warned_no_loss = True
        manual = not getattr(pl_module, "automatic_optimization", True)
        warnings.warn("mlt: training_step returned no loss, so its steps are not in the metric "
                      "stream (no loss, no gradient norm: the step detectors see nothing); "
                      "return the step's loss" + (" (with manual optimisation too: return "
                                                  "loss.detach())" if manual else ""),
                      RuntimeWarning, stacklevel=2)

    def _record_elsewhere(self, trainer: Any, outputs: Any) -> None:
        """on_train_batch_end with several processes (every one joins `_stop_if`'s collective
        each step; process 0 records the step) or on a process that does not write."""
        reason = None
        if self._active:
            loss = _loss_of(outputs)
            if loss is None:
                self._no_loss(trainer.lightning_module)
            else:
                grads, self._grads = self._grads, _NO_NORMS
                reason = self.monitor.step(epoch=self._epoch, step=self._step, loss=loss,
                                           lr=float(self._lr), grad_norm=grads[0],
                                           layers=grads[1])
        self._stop_if(trainer, reason)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        # once an epoch, right after validation: everything here is cold (each property chain
        # of the trainer and each call of ours costs a few us), so each is read once
        reason = None
        self._step = step = trainer.global_step
        validated, self._validated = self._validated, False
        if self._active:
            # Lightning validates before this hook, so the epoch's val values are logged by now;
            # an epoch it did not validate (check_val_every_n_epoch, no val loader) has none:
            # callback_metrics would still hold the last validation's
            val_loss, val = (split_logged(trainer.callback_metrics, self.val_prefix)
                             if validated else (None, {}))
            if validated:
                self.monitor.goal_logged(val, f"log it as {self.val_prefix}{self.monitor.metric}"
                                              " in validation_step (or pass val_prefix)")
            reason = self.monitor.epoch(epoch=self._epoch, step=step, val_loss=val_loss,
                                        val=val, state_dict=pl_module.state_dict,
                                        model=pl_module)
        if reason is not None or self._world > 1:
            self._stop_if(trainer, reason)

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.sanity_checking:  # (the check before training is no epoch's)
            self._validated = True

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        if not self._active:
            return
        self.monitor.end(_why_lightning_ended(trainer), state_dict=pl_module.state_dict)

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        why = "aborted" if isinstance(exception, KeyboardInterrupt) else (
            f"error:{type(exception).__name__}")
        self.monitor.end(why)

    def _stop_if(self, trainer: Any, reason: str | None) -> None:
        """Stop when process 0's detectors say so. With several processes every process calls
        this at the same hooks (train start, each optimisation step, each epoch's end) and
        the decision is reduced over them (the strategy's `reduce_boolean_decision`, as
        EarlyStopping does): all stop at the same step, or the others would wait forever in
        the next gradient all-reduce. One tiny collective a step, only when world_size > 1."""
        stop = reason is not None
        if self._world > 1:
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if not stop:
            return
        trainer.should_stop = True
        if self.stopping_reason is not None:
            return
        self.stopping_reason = reason or "stopped_by_rank0"  # the engine's name for it
        found = [f for f in self.monitor.findings if reason == f"detector:{f.id}"]
        self.stopping_reason_message = found[0].message if found else reason


def _loss_of(outputs: Any) -> Any:
    """The loss in what `training_step` returned, as on_train_batch_end receives it (Lightning
    detaches it in both optimisation modes); None when there is none."""
    loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
    if isinstance(loss, Tensor) and loss.requires_grad:
        loss = loss.detach()  # (a graph kept until the block is read would hold memory)
    return loss


def _why_lightning_ended(trainer: Any) -> str:
    for callback in trainer.callbacks:
        # Lightning's EarlyStopping records why (EarlyStoppingReason); NOT_STOPPED is falsy 0
        reason = getattr(callback, "stopping_reason", None)
        if isinstance(callback, EarlyStopping) and reason is not None and reason.value:
            return "early_stopping"
    max_steps = getattr(trainer, "max_steps", -1)
    if max_steps is not None and max_steps > 0 and trainer.global_step >= max_steps:
        return "max_steps"
    if getattr(trainer, "interrupted", False):
        return "interrupted"
    return "completed"
