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

What a step is: a batch that stepped an optimiser, numbered from 1 over the run as
Lightning's loggers number them (a fit resumed with `ckpt_path` goes on from its count). With
`accumulate_grad_batches=N` that is every Nth batch (and an epoch's last), and the step's loss
is the mean of its micro-batches' losses as `training_step` returned them (Lightning divides
each by N before the callback sees it; the callback undoes that); so is a manual
optimisation's that steps every few batches. With several optimisers stepped in one batch (a
GAN's), the batch is one step: the lr is the
first optimiser's and the gradient norm is over every optimiser's parameters as each was
stepped. A value the validation logs with `on_step=True, on_epoch=True` is its epoch value
(Lightning's `_step` / `_epoch` copies are left out). With `precision="16-mixed"` the
gradients are Lightning's unscaled ones, and a step whose gradients overflowed (the
GradScaler skips it) stops nothing (`RunMonitor.note_scaler`). Each `fit()` is a run of its own:
a callback, or a run_dir, that already holds a stream is refused (ValueError).

With `train_rows` (default inside an mlt run: the engine's fixed training subset) each epoch
event also carries `train` and `train_eval_loss`, measured as the engine does (see
`mltrainer.integrations._core.TrainRows`); outside an mlt run pass `train_rows=(X, y)`.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor

from mltrainer.engine.entrypoint import frameworks_importable
from mltrainer.integrations._context import context, in_mlt_run, monitor_settings
from mltrainer.integrations._core import (
    RunMonitor,
    gradient_norms,
    split_logged,
    trainable,
)

frameworks_importable()  # before the framework itself: see its docstring

try:
    from lightning.pytorch import Callback, seed_everything
    from lightning.pytorch.callbacks import EarlyStopping, Timer
except ImportError:  # pragma: no cover - the older package name
    from pytorch_lightning import Callback, seed_everything  # type: ignore[no-redef]
    from pytorch_lightning.callbacks import EarlyStopping, Timer  # type: ignore[no-redef]

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
        self._params: list[Any] = []  # the (name, parameter)s whose gradients are sampled
        self._all_params: list[Any] = []  # every trainable one of the module
        # the stream's steps so far: the batches that stepped an optimiser, counted here (what
        # Lightning's loggers count: several optimisers stepped in one batch, a GAN's, are one
        # step; Lightning's global_step counts each optimiser's step)
        self._step = 0
        self._recorded = 0  # the last step on_train_batch_end handed on
        # with manual optimisation, each optimiser's trainable (name, parameter)s: a batch's
        # gradient norm is taken over each optimiser's own parameters as it steps them
        self._params_of: dict[int, list[Any]] | None = None
        # accumulate_grad_batches (automatic optimisation): Lightning hands on_train_batch_end
        # each micro-batch's loss divided by it; the step's loss is their mean undivided
        self._accumulate = 1
        # the losses of the batches since the last step that stepped no optimiser: the
        # micro-batches of the step in progress (_step_loss)
        self._micro: list[Any] = []
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
        self._stop_at: float = math.inf  # inside an mlt run: context().max_steps
        self._at_max_steps = False

    @property
    def findings(self) -> list[Any]:
        return self.monitor.findings

    # -- hooks: each a few lines around RunMonitor ----------------------------------------------

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if in_mlt_run():
            self._mlt_run_rules(trainer)
        self._active = trainer.is_global_zero  # one process writes the stream and decides
        self._world = trainer.world_size
        # a fit resumed from a checkpoint (ckpt_path) continues the step count
        self._step = self._recorded = _batches_stepped(trainer)
        manual = not pl_module.automatic_optimization
        self._accumulate = 1 if manual else max(1, int(trainer.accumulate_grad_batches))
        self._micro = self._no_micro()  # (kept by the process that writes only)
        reason = None
        if self._active:
            spe = trainer.num_training_batches
            steps = int(spe) // self._accumulate if spe != float("inf") else None
            self._params = self._all_params = trainable(pl_module)
            self._params_of = {} if manual else None
            # precision="16-mixed": Lightning's GradScaler skips the overflowing steps
            scaler = getattr(trainer.precision_plugin, "scaler", None)
            self.monitor.note_scaler(scaler)
            reason = self.monitor.start(steps_per_epoch=steps, epochs=_planned_epochs(trainer,
                                                                                      steps))
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
        step = self._step
        if step != self._recorded:  # another optimiser in the same batch (manual)
            self._more_grads(optimizer)
            return
        self._step = step = step + 1
        # the lr this step uses (Lightning steps the schedulers before on_train_batch_end)
        self._lr = optimizer.param_groups[0]["lr"]
        if step >= self._next_sample:
            # the gradients' numbers on a sampled step (RunMonitor.sample), before Lightning
            # clips: the unclipped norms, as the stream wants. Lightning keeps no norm to reuse
            # (it discards clip_grad_norm_'s; its grad_norm() utility is one norm per
            # parameter and a host sync): one fused pass of our own
            if self._params_of is not None:  # manual optimisation: this optimiser's parameters
                self._params = self._optimised(optimizer)
            self._grads = self.monitor.sample(self._params, step)
            self._next_sample = self.monitor.next_sample

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        step = self._step
        if step == self._recorded:
            # no optimisation step since the last batch: a micro-batch of the step to come
            # (accumulate_grad_batches, or a manual optimisation that steps every few batches)
            if self._active:
                self._micro.append(_loss_of(outputs))
            return
        self._recorded = step
        if step >= self._stop_at:  # plan's determinism check: context().max_steps
            trainer.should_stop = self._at_max_steps = True
        if not self._alone:
            self._record_elsewhere(trainer, outputs)
            return
        # Lightning's outputs: {"loss": the loss detached, ...} (both optimisation modes)
        loss = outputs.get("loss") if type(outputs) is dict else _loss_of(outputs)
        if self._micro:  # (never empty with accumulate_grad_batches: see _step_loss)
            loss = self._step_loss(loss)
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

    def _step_loss(self, last: Any) -> Any:
        """The loss of a step accumulated over micro-batches (accumulate_grad_batches, or the
        batches a manual optimisation stepped after): the mean of the micro-batches' losses as
        training_step returned them (with accumulate_grad_batches Lightning divides each by it
        before the backward and before it reaches on_train_batch_end), as a step of one batch
        of them all would have it; the micro-batches whose training_step returned no loss left
        out. None when none has one."""
        losses = [x for x in (*self._micro, last) if x is not None]
        self._micro = self._no_micro()
        if not losses:
            return None
        return sum(losses) * (self._accumulate / len(losses))

    def _no_micro(self) -> list[Any]:
        """`_micro` at a step's start: with accumulate_grad_batches a None (no loss) that keeps
        it non-empty, so on_train_batch_end's one check (`if self._micro`) sends every step
        through `_step_loss`, a last window of one batch too (its loss still divided by N)."""
        return [None] if self._accumulate > 1 else []

    def _optimised(self, optimizer: Any) -> list[Any]:
        """The trainable (name, parameter)s `optimizer` steps (manual optimisation), looked up
        once per optimiser."""
        params = self._params_of.get(id(optimizer)) if self._params_of is not None else None
        if params is None:
            mine = {id(p) for group in optimizer.param_groups for p in group["params"]}
            params = [(n, p) for n, p in self._all_params if id(p) in mine]
            if self._params_of is not None:
                self._params_of[id(optimizer)] = params
        return params

    def _more_grads(self, optimizer: Any) -> None:
        """A later optimiser stepped in the batch (manual optimisation, a GAN's generator and
        discriminator): when the batch's gradients were sampled, this optimiser's parameters'
        norms join them (the batch's norm over every parameter as it was stepped); the lr
        stays the first optimiser's."""
        grads = self._grads
        if grads is _NO_NORMS or grads[0] is None or self._params_of is None:
            return
        norms, stats = gradient_norms(self._optimised(optimizer), layers=grads[1] is not None)
        if norms is None:
            return
        if stats is None or grads[1] is None:
            self._grads = (grads[0] + norms, None)
        else:
            both = grads[1]
            merged = both._replace(names=both.names + stats.names, norms=both.norms + stats.norms,
                                   nonzero=both.nonzero + stats.nonzero,
                                   sizes=both.sizes + stats.sizes)
            self._grads = (merged.norms, merged)

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
            if self._micro:
                loss = self._step_loss(loss)
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
        step = self._step
        validated, self._validated = self._validated, False
        if self._active:
            # Lightning validates before this hook, so the epoch's val values are logged by now;
            # an epoch it did not validate (check_val_every_n_epoch, no val loader) has none:
            # callback_metrics would still hold the last validation's
            val_loss, val = (split_logged(_epoch_values(trainer.callback_metrics),
                                          self.val_prefix) if validated else (None, {}))
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

    def _mlt_run_rules(self, trainer: Any) -> None:
        """Inside an mlt run the script trains `context().max_steps` steps at most (plan's
        determinism check: `trainer.should_stop` at that step, end reason "max_steps", whether
        or not the script passes it to its Trainer), and the run's seed is the one training
        goes on with: a script's `seed_everything(42)` (Lightning records it in
        PL_GLOBAL_SEED) made every seed of optimize's seeds comparison one batch order, so it
        is redone with the run's seed, with a warning (the weights it initialised stay)."""
        ctx = context()
        if ctx.max_steps is not None:
            self._stop_at = ctx.max_steps
        seeded = os.environ.get("PL_GLOBAL_SEED")
        if seeded is not None and seeded != str(ctx.seed):
            warnings.warn(f"mlt: seed_everything({seeded}) replaced by the run's seed {ctx.seed} "
                          "for training (pass seed_everything(context().seed) before building "
                          "the model): mlt varies it to compare seeds", RuntimeWarning,
                          stacklevel=2)
            seed_everything(ctx.seed, workers=os.environ.get("PL_SEED_WORKERS") == "1",
                            verbose=False)

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        if not self._active:
            return
        why = "max_steps" if self._at_max_steps else _why_lightning_ended(trainer)
        self.monitor.end(why, state_dict=pl_module.state_dict)

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


def _planned_epochs(trainer: Any, steps_per_epoch: int | None) -> int | None:
    """The epochs the fit will run at most, for the start event: `max_epochs`, or fewer when
    `max_steps` ends the fit first; None when neither bounds it (Lightning's max_epochs=-1,
    "train forever", was written as -1 epochs, and a max_steps run as Lightning's default 1000
    epochs or -1)."""
    epochs = trainer.max_epochs
    epochs = epochs if isinstance(epochs, int) and epochs > 0 else None
    max_steps = getattr(trainer, "max_steps", -1)
    if isinstance(max_steps, int) and max_steps > 0 and steps_per_epoch:
        by_steps = math.ceil(max_steps / steps_per_epoch)
        epochs = by_steps if epochs is None else min(epochs, by_steps)
    return epochs


def _epoch_values(logged: Mapping[str, Any]) -> dict[str, Any]:
    """The logged values of the validation, without Lightning's suffixed copies: a value
    logged with both `on_step=True` and `on_epoch=True` is in `callback_metrics` as `name`
    (the epoch's value), `name_epoch` (the same) and `name_step` (the last batch's); only
    `name` is kept. A name that ends so without its stem (logged as such) stays."""
    return {key: value for key, value in logged.items()
            if not (key.endswith(("_step", "_epoch")) and key.rsplit("_", 1)[0] in logged)}


def _batches_stepped(trainer: Any) -> int:
    """The batches that stepped an optimiser so far (a fit resumed from a checkpoint starts
    past 0): the step Lightning's loggers log against, one per batch whatever the number of
    optimisers; `global_step` (each optimiser's steps) where a Lightning lacks it."""
    loop = getattr(getattr(trainer, "fit_loop", None), "epoch_loop", None)
    stepped = getattr(loop, "_batches_that_stepped", None)
    return int(stepped) if isinstance(stepped, int) else int(trainer.global_step)


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
    for callback in trainer.callbacks:
        # Trainer(max_time=...) adds Lightning's Timer, which stops the fit once it is spent
        # (time_remaining: None without a duration)
        remaining = callback.time_remaining() if isinstance(callback, Timer) else None
        if remaining is not None and remaining <= 0:
            return "max_time"
    return "completed"
