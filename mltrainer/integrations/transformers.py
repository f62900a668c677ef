"""mlt's metric stream and online detectors inside a Hugging Face `Trainer.train`.

    from mltrainer.integrations.transformers import MltCallback

    args = TrainingArguments(..., eval_strategy="epoch", report_to="none")
    trainer = Trainer(model, args, train_dataset=..., eval_dataset=...,
                      compute_metrics=..., callbacks=[MltCallback("runs/my-run",
                      task="classification", metric="accuracy")])

The Trainer hands callbacks neither the step's loss nor its gradient norm before clipping (both
are locals of its training loop; the hooks receive the model, optimiser, scheduler and loaders,
and `on_pre_optimizer_step` comes after clipping). So at `on_train_begin` the callback finds the
running `Trainer` (the caller of its hook) and wraps two of that instance's methods, for the run
only: `training_step`, whose return is the micro-batch's loss (the step's loss is their sum, what
the Trainer would log for it), and `_get_grad_norm`, whose return is the norm before clipping
the Trainer computes on every step. Each optimisation step becomes a step event in
`on_step_end` (loss, the lr of the step, grad_norm), handled in blocks as in `RunMonitor`; the
Trainer's own logging is untouched: your `logging_steps`, its printer or progress bar and your
`report_to` see only the logs they would without the callback. The loss is this process's (the
Trainer logs the mean over processes) and is never filtered (`logging_nan_inf_filter` replaces
a non-finite loss only in the Trainer's own logs), so a NaN step loss stops training at once.
Where the Trainer cannot be found or lacks those methods (another transformers version), the
callback falls back to asking for a log on every optimisation step (`control.should_log` in
`on_step_end`) and records each `on_log` (loss, learning_rate, grad_norm); those extra logs are
taken back out of `state.log_history`, but the printer and `report_to` see them.
`every_step=False` never wraps nor forces: only your logging steps become step events (the loss
is then the Trainer's average since the last log). Every `grad_stats_every` steps the callback
adds per-layer statistics, read in `on_pre_optimizer_step` (after the Trainer clipped: the
per-layer norms are the clipped ones, the zero fractions are exact). Each evaluation
(`eval_strategy="epoch"`) becomes the epoch's event, with `eval_loss` and `eval_<metric>` from
your `compute_metrics` (`val_prefix`; one warning when it returns no goal metric). With
`eval_strategy="steps"` mlt's epochs are the evaluation periods: each evaluation is an epoch
event (1, 2, ...), its epoch the steps since the one before (`steps_per_epoch` in the start
event: `eval_steps`). An evaluation before the first step (`eval_on_start`) or a second one at
the same step is no epoch event. The start event's `steps_per_epoch` and `epochs` are the
Trainer's own (a last, shorter accumulation is a step; `max_steps` and a fractional
`num_train_epochs` decide the epochs), and a run resumed with `resume_from_checkpoint` numbers
its epochs (or evaluation periods) from the checkpoint's, as the Trainer does.

When a detector that stops training fires (a non-finite loss or gradient norm: `nan_loss`),
the callback sets `control.should_training_stop` (the Trainer's own way to stop), records
`stopping_reason` and `stopping_reason_message`, and `findings.json` holds the findings.
In the fallback (no wrapped methods), set `logging_nan_inf_filter=False` in `TrainingArguments`
to see a NaN step loss itself (the Trainer otherwise logs an average in its place; the NaN
gradient norm still stops training).

With several processes the main one (`state.is_world_process_zero`) writes the stream and runs
the detectors; its stop is all-reduced over `torch.distributed` at each recorded step and each
evaluation, so every process sets `control.should_training_stop` at the same step (the others
record `stopping_reason` "stopped_by_rank0").

With `train_rows` (default inside an mlt run: the engine's fixed training subset) each epoch
event also carries `train` and `train_eval_loss`, measured as the engine does: the model is
called on a tensor of rows and must return the outputs (logits) when given no labels (see
`mltrainer.integrations._core.TrainRows`); outside an mlt run pass `train_rows=(X, y)`.

Inside `mlt train-baseline` (a `training.entrypoint`), `MltCallback()` takes its settings from
`mltrainer.integrations.context()`, makes the run's seed the Trainer's (`on_init_end`: see
there) and saves checkpoints for the gate's reload check; under
plan's determinism check (`context().max_steps`) it stops training at that step itself (the
Trainer's `control.should_training_stop`, end reason "max_steps"), so a script that does not
pass `max_steps` to its `TrainingArguments` is still probed for a few steps, not trained fully
twice.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

from mltrainer.engine.entrypoint import frameworks_importable
from mltrainer.integrations._context import context, in_mlt_run, monitor_settings
from mltrainer.integrations._core import (
    RunMonitor,
    any_process,
    gradient_norms,
    split_logged,
    trainable,
    world_size,
)

frameworks_importable()  # before the framework itself: see its docstring

from transformers import TrainerCallback  # noqa: E402

__all__ = ["MltCallback"]


class MltCallback(TrainerCallback):
    """See the module docstring. Arguments left None come from the mlt run context when there
    is one (`run_dir`, `task` and `metric` are required otherwise)."""

    def __init__(self, run_dir: str | Path | None = None, *, task: str | None = None,
                 metric: str | None = None, baseline: dict[str, float] | None = None,
                 thresholds: dict[str, dict[str, float]] | None = None,
                 goal_target: float | None = None, n_val: int | None = None,
                 val_prefix: str = "eval_", grad_stats_every: int | None = None,
                 save_checkpoints: bool | None = None, every_step: bool = True,
                 train_rows: Any = "auto") -> None:
        self.monitor = RunMonitor(**monitor_settings(
            run_dir, task=task, metric=metric, baseline=baseline, thresholds=thresholds,
            grad_stats_every=grad_stats_every, checkpoints=save_checkpoints,
            goal_target=goal_target, n_val=n_val, train_rows=train_rows,
            framework="transformers"))
        self.val_prefix = val_prefix
        self.every_step = every_step
        # plan's determinism check (MLT_MAX_STEPS): the run stops there, as MltMonitor does,
        # whether or not the script passes context().max_steps to TrainingArguments
        self._max_steps = context().max_steps if in_mlt_run() else None
        self._at_max_steps = False
        self._ended = False  # the stream has its end event (on_train_end)
        self.stopping_reason: str | None = None
        self.stopping_reason_message: str | None = None
        self._epoch = 0  # the Trainer's epoch in progress, from 1
        # eval_strategy="steps": mlt's epochs are the evaluation periods (an epoch event an
        # evaluation, the steps before it in its epoch), counted here
        self._by_steps = False
        self._evals = 0
        self._evaluated_at: int | None = None  # the step of the last evaluation recorded
        self._layers: dict[int, Any] = {}  # step -> gradient_norms(), read in on_log
        self._params: list[Any] | None = None
        self._training = False
        self._forced = False  # this step's log is one only mlt asked for (on_step_end)
        self._world = 1
        # the wrapped Trainer (see the module docstring) and what its methods returned this step
        self._trainer: Any = None
        self._wrapped: dict[str, Any] = {}  # method name -> the instance attribute it replaced
        self._losses: list[Any] = []  # training_step's returns since the last step
        self._grad_norm: Any = None  # _get_grad_norm's return
        self._lr: float | None = None

    @property
    def findings(self) -> list[Any]:
        return self.monitor.findings

    # -- hooks: each a few lines around RunMonitor ----------------------------------------------

    def on_init_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Inside an mlt run the run's seed is the Trainer's: `Trainer.__init__` has just
        seeded everything with `TrainingArguments.seed` (42 unless the script passes
        `context().seed`), so every seed of optimize's seeds comparison trained on the same
        batch order (with `model_init`, the same model). The run's seed replaces it (and a
        `data_seed`), and the seeding is redone, as the Trainer does it, with a warning."""
        if not in_mlt_run():
            return
        seed = context().seed
        if args.seed == seed and args.data_seed in (None, seed):
            return
        import warnings

        from transformers import enable_full_determinism, set_seed

        warnings.warn(f"mlt: TrainingArguments(seed={args.seed}, data_seed={args.data_seed}) "
                      f"replaced by the run's seed {seed} (pass seed=context().seed to "
                      "TrainingArguments): mlt varies it to compare seeds",
                      RuntimeWarning, stacklevel=2)
        args.seed = seed
        if args.data_seed is not None:  # the accelerator's copy of it seeds the sampler
            args.data_seed = seed
            trainer = _running_trainer(sys._getframe(1))
            config = getattr(getattr(trainer, "accelerator", None), "dataloader_config", None)
            if config is not None:
                config.data_seed = seed
        (enable_full_determinism if args.full_determinism else set_seed)(seed)

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._ended:
            # a second trainer.train() (a second stage, a resume) with this callback: its
            # events would follow the first run's end in one stream, epochs 1, 2, 1, 2
            raise RuntimeError(
                f"MltCallback records one training run and its stream "
                f"({self.monitor.run_dir}/metrics.jsonl) ended with the first train(): give "
                "the next train() a new MltCallback with another run_dir (inside an mlt run, "
                "train once per entrypoint run)")
        self._training = True  # in every process: trainer.evaluate() outside train() is not ours
        self._world = world_size()
        if self.every_step and self._trainer is None:
            self._wrap(_running_trainer(sys._getframe(1)))
        if not state.is_world_process_zero:
            return  # one process writes the stream (see the module docstring)
        loader = kwargs.get("train_dataloader")
        # the Trainer's own count: a last, shorter accumulation is a step of its own
        steps = (max(1, math.ceil(len(loader) / max(1, args.gradient_accumulation_steps)))
                 if loader is not None and hasattr(loader, "__len__") else None)
        self._by_steps = getattr(args, "eval_strategy", None) == "steps"
        if self._by_steps:  # an evaluation every eval_steps (a share of the run when < 1)
            every = args.eval_steps or args.logging_steps
            steps = max(1, round(every * state.max_steps) if every < 1 else int(every))
            # resumed (resume_from_checkpoint): the periods before the checkpoint's step
            self._evals = state.global_step // steps
        # the epochs the Trainer runs: max_steps decides when set (num_train_epochs is then
        # ignored), and a fractional num_train_epochs ends within its last epoch
        epochs = (math.ceil(state.max_steps / steps) if steps and state.max_steps
                  else math.ceil(args.num_train_epochs))
        # fp16: the accelerator's GradScaler skips overflowing steps, whose gradient norm the
        # Trainer reports as inf (nan_loss bears them: RunMonitor.note_scaler)
        self.monitor.note_scaler(getattr(getattr(self._trainer, "accelerator", None), "scaler",
                                         None))
        self._stop_if(args, control, self.monitor.start(
            steps_per_epoch=steps, epochs=epochs, max_steps=state.max_steps), collective=False)

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        # from the Trainer's state, not a count of these calls: resumed from a checkpoint
        # (resume_from_checkpoint), the first epoch begun is the checkpoint's
        self._epoch = math.floor(round(state.epoch or 0.0, 6)) + 1

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        step = state.global_step + 1
        if self._trainer is not None:  # the lr this step uses (the Trainer logs the same)
            optimizer = kwargs.get("optimizer")
            self._lr = float(optimizer.param_groups[0]["lr"]) if optimizer is not None else None
        if (state.is_world_process_zero and kwargs.get("model") is not None
                and self.monitor.wants_layer_stats(step)):
            if self._params is None:
                self._params = trainable(kwargs["model"])
            started = time.perf_counter()
            _, layers = gradient_norms(self._params, layers=True)
            self.monitor.note_stats_cost(time.perf_counter() - started)
            if layers is not None:
                self._layers[step] = layers  # handed over with the step's event, in on_log

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._max_steps is not None and state.global_step >= self._max_steps:
            self._at_max_steps = control.should_training_stop = True
        if self._trainer is not None:  # the step from the wrapped methods: no log asked for
            losses, self._losses = self._losses, []
            norm, self._grad_norm = self._grad_norm, None
            reason = None
            if state.is_world_process_zero and losses:
                loss = losses[0] if len(losses) == 1 else sum(losses[1:], losses[0])
                reason = self.monitor.step(
                    epoch=self._period(), step=state.global_step, loss=loss, lr=self._lr,
                    grad_norm=norm, layers=self._layers.pop(state.global_step, None))
            if self._layers:
                self._layers.clear()
            self._stop_if(args, control, reason)
            return
        if self.every_step:
            # DefaultFlowCallback (always first) has set should_log on your logging steps
            self._forced = not control.should_log
            control.should_log = True

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
               **kwargs: Any) -> None:
        if not logs or "loss" not in logs or not self._training or self._trainer is not None:
            return  # eval logs, the closing summary, your own logs (alike in every process)
        reason = None
        if state.is_world_process_zero:
            reason = self.monitor.step(
                epoch=self._period(), step=state.global_step, loss=float(logs["loss"]),
                lr=logs.get("learning_rate"), grad_norm=_float_or_none(logs.get("grad_norm")),
                layers=self._layers.pop(state.global_step, None))
        if self._forced:  # a log only mlt asked for: it stays out of the Trainer's history
            self._forced = False
            history = state.log_history
            if history and history[-1].get("step") == state.global_step and "loss" in history[-1]:
                history.pop()
        if self._layers:
            self._layers.clear()
        self._stop_if(args, control, reason)

    def on_evaluate(self, args: Any, state: Any, control: Any,
                    metrics: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not self._training:
            return  # trainer.evaluate() after train(): the stream is closed
        if state.global_step == 0 or state.global_step == self._evaluated_at:
            # eval_on_start (before any step), or a second evaluation of the same weights
            # (your own trainer.evaluate() in a hook): no epoch of the stream, which has one
            # event an epoch, after its steps
            return
        self._evaluated_at = state.global_step
        reason = None
        epoch = self._period()
        self._evals += 1
        if state.is_world_process_zero:
            val_loss, val = split_logged(metrics or {}, self.val_prefix)
            self.monitor.goal_logged(val, f"compute_metrics must return {{"
                                          f"{self.monitor.metric!r}: ...}} (the Trainer logs "
                                          f"it as {self.val_prefix}{self.monitor.metric})")
            model = kwargs.get("model")
            reason = self.monitor.epoch(
                epoch=epoch, step=state.global_step, val_loss=val_loss, val=val,
                state_dict=model.state_dict if model is not None else None, model=model)
        self._stop_if(args, control, reason)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._training = False
        self._ended = True
        self._unwrap()
        if not state.is_world_process_zero:
            return
        if self.monitor.stopped:
            why = None
        elif self._at_max_steps:
            why = "max_steps"
        elif control.should_training_stop and state.global_step < state.max_steps:
            why = "early_stopping"  # another callback (EarlyStoppingCallback) asked
        elif args.max_steps and args.max_steps > 0 and state.global_step >= args.max_steps:
            why = "max_steps"
        else:
            why = "completed"
        model = kwargs.get("model")
        self.monitor.end(why, state_dict=model.state_dict if model is not None else None)

    def _wrap(self, trainer: Any) -> None:
        """Wrap `trainer`'s `training_step` and `_get_grad_norm` (instance attributes, removed
        at the end of the run: `_unwrap`) to keep what they return. Without both, nothing is
        wrapped and the callback asks for a log every step instead (the module docstring)."""
        if trainer is None or not all(callable(getattr(trainer, name, None))
                                      for name in ("training_step", "_get_grad_norm")):
            return
        step_fn, norm_fn = trainer.training_step, trainer._get_grad_norm

        def training_step(*args: Any, **kwargs: Any) -> Any:
            loss = step_fn(*args, **kwargs)
            self._losses.append(loss)
            return loss

        def get_grad_norm(*args: Any, **kwargs: Any) -> Any:
            self._grad_norm = norm = norm_fn(*args, **kwargs)
            return norm

        for name, fn in (("training_step", training_step), ("_get_grad_norm", get_grad_norm)):
            self._wrapped[name] = vars(trainer).get(name)
            setattr(trainer, name, fn)
        self._trainer = trainer

    def _unwrap(self) -> None:
        trainer, self._trainer = self._trainer, None
        for name, before in self._wrapped.items():
            if before is None:
                vars(trainer).pop(name, None)
            else:
                setattr(trainer, name, before)
        self._wrapped.clear()
        self._losses.clear()

    def _period(self) -> int:
        """mlt's epoch in progress: the Trainer's, or with eval_strategy="steps" the
        evaluation period (one epoch event an evaluation: never two events, nor two
        checkpoints, of one epoch)."""
        return self._evals + 1 if self._by_steps else max(1, self._epoch)

    def _stop_if(self, args: Any, control: Any, reason: str | None,
                 collective: bool = True) -> None:
        """Stop when process 0's detectors say so. With several processes every process calls
        this at the same points (each logged step, each evaluation: the Trainer runs both in
        every process) and process 0's decision is all-reduced (`torch.distributed`, MAX), so
        every process sets `control.should_training_stop` at the same step; the others would
        otherwise wait forever in the next gradient all-reduce."""
        stop = reason is not None
        if collective and self._world > 1:
            stop = any_process(stop, args.device)
        if not stop:
            return
        control.should_training_stop = True
        if self.stopping_reason is not None:
            return
        self.stopping_reason = reason or "stopped_by_rank0"  # the engine's name for it
        found = [f for f in self.monitor.findings if reason == f"detector:{f.id}"]
        self.stopping_reason_message = found[0].message if found else reason


def _running_trainer(frame: Any) -> Any:
    """The `transformers.Trainer` whose training loop called the hook running in `frame`'s
    callee (the loop calls `CallbackHandler.on_<event>`, which calls `call_event`, which calls
    the hook): the first caller frame, a few up, whose `self` is a Trainer; None if none is."""
    from transformers import Trainer

    for _ in range(6):
        if frame is None:
            return None
        owner = frame.f_locals.get("self")
        if isinstance(owner, Trainer):
            return owner
        frame = frame.f_back
    return None


def _float_or_none(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
