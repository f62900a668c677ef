"""mlt's metric stream and online detectors around a training loop of your own (plain PyTorch,
no framework).

    from mltrainer.integrations.loop import MltMonitor

    with MltMonitor(model, "runs/my-run", task="regression", metric="r2",
                    steps_per_epoch=len(loader), epochs=epochs) as mlt:
        for epoch in range(epochs):
            for x, y in loader:
                optimizer.zero_grad()
                loss = loss_fn(model(x), y)
                loss.backward()
                mlt.step(loss, optimizer)       # after backward, before clipping and step()
                optimizer.step()
                if mlt.should_stop:
                    break
            if mlt.should_stop or mlt.epoch(val_loss, {"r2": r2, ...}):
                break

The counterpart of the Lightning and Hugging Face `MltCallback`s, a few lines around the same
`RunMonitor` (`_core.py`). Entering the block starts the stream (`steps_per_epoch`, `epochs`:
what you give); leaving it ends the stream with the reason: "completed", or the one you gave
with `mlt.stop("early_stopping")`, "max_steps" once `max_steps` steps were recorded, the
detector's ("detector:nan_loss"), "aborted" on a KeyboardInterrupt (mlt interrupts a pruned
`mlt optimize` trial so), `error:<Type>` on any other exception, which goes on up.

`mlt.step(loss, optimizer)` is one optimisation step: call it once the step's gradients are
complete (after the last `backward`) and before they are clipped or applied, so the gradient
norms are the unclipped ones and the lr (`optimizer.param_groups[0]["lr"]`, or `lr=`) is the
one this step uses. It keeps the loss (read at once on the CPU, where a read costs no sync;
elsewhere on its device) and, on the steps the monitor samples, the gradients' norms on their
device, exactly as the Lightning callback does (`RunMonitor.sample`: the global
norm on every step while it costs at most 0.1 % of the step, else on a stride; per-layer
statistics every `grad_stats_every` steps, less often when costly); the steps are handled in
blocks. It returns the reason to stop, or None (also `mlt.should_stop`, `mlt.stopping_reason`):
after a non-finite loss or gradient norm "detector:nan_loss", at most `max_block - 1` (31)
steps and `max_delay_s` (0.25 s) plus one step after the step that broke (`RunMonitor`); break
out of the loop then (the update of the step it returns on may be skipped or applied). With
gradient accumulation call it once per optimisation step, after the last micro-batch's
backward, with the step's loss (the mean of the micro-batches' losses, as Lightning and HF
record it), not once per micro-batch: a call is a step.

With fp16 mixed precision pass the loop's GradScaler (`MltMonitor(..., scaler=scaler)`) and
pass `step` the unscaled loss and the optimizer: the gradient norms are the true ones whether
or not the loop called `scaler.unscale_(optimizer)` before `step` (if not, they are divided by
the scale; the scaler's state is left alone, so the loop may unscale after), and a step whose
gradients overflowed, which the scaler skips on purpose, stops nothing: `nan_loss` fires on
non-finite gradient norms only once they held on as many consecutive measured steps as it
takes the scaler to bring its scale below 1 (`RunMonitor.note_scaler`, the detector's rule; a
non-finite loss stops at once).
Without `scaler=` such a step's non-finite norm stops training as `detector:nan_loss`.

A run folder that already holds a stream (`metrics.jsonl`) is refused at the start
(ValueError): one run a folder, as mlt's own runs.

The model may be the wrapped one the loop calls (DistributedDataParallel, DataParallel,
torch.compile): the monitor keeps the module inside (`_unwrapped`), so the checkpoints hold
its own keys, the ones `load_model`'s module has, as Lightning's callback's do.

`mlt.epoch(val_loss, val)` ends the epoch (counted from 1) with the val loss and the val
metrics as a dict that holds the goal metric (`RunContext.compute_metrics(outputs)` gives
every metric of the task by mlt's formulas); it saves the checkpoint from `model.state_dict()`
(inside an mlt run, or with `save_checkpoints=True`), measures the train rows on `model`
(`train` and `train_eval_loss`, as the engine does: `model(rows)` must return the outputs) and
returns the reason to stop, or None.

Arguments left None come from the run context inside an mlt run (`training.entrypoint`:
`context()`), as for `MltCallback()`, `max_steps` included (plan's determinism check); outside
one `run_dir`, `task` and `metric` are required (one ValueError otherwise).

With several processes (`torch.distributed` initialised before entering), process 0 writes
the stream and runs the detectors; every process calls `step` and `epoch` at the same points,
and each call all-reduces the stop flag (`any_process`, as the HF callback does: one tiny
collective a step, on the model's device), so every process stops at the same step (the others
with `stopping_reason` "stopped_by_rank0"); `mlt.stop(...)` stays the calling process's own.
"""

from __future__ import annotations

import numbers
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mltrainer.integrations._context import context, in_mlt_run, monitor_settings
from mltrainer.integrations._core import (
    RunMonitor,
    any_process,
    is_first_process,
    trainable,
    world_size,
)

__all__ = ["MltMonitor"]
_NO_NORMS = (None, None)  # a step whose gradient norm is not sampled


class MltMonitor:
    """See the module docstring. Arguments left None come from the mlt run context when there
    is one (`run_dir`, `task` and `metric` are required otherwise)."""

    def __init__(self, model: nn.Module, run_dir: str | Path | None = None, *,
                 task: str | None = None, metric: str | None = None,
                 steps_per_epoch: int | None = None, epochs: int | None = None,
                 max_steps: int | None = None, baseline: dict[str, float] | None = None,
                 thresholds: dict[str, dict[str, float]] | None = None,
                 goal_target: float | None = None, n_val: int | None = None,
                 grad_stats_every: int | None = None, save_checkpoints: bool | None = None,
                 train_rows: Any = "auto", scaler: Any = None) -> None:
        if not isinstance(model, nn.Module):
            raise ValueError(f"MltMonitor needs the torch.nn.Module being trained but got "
                             f"{type(model).__name__}")
        for name, value in (("steps_per_epoch", steps_per_epoch), ("epochs", epochs),
                            ("max_steps", max_steps)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 1):
                raise ValueError(f"MltMonitor's {name} must be a positive int or None but got "
                                 f"{value!r}")
        if scaler is not None and not isinstance(scaler, torch.amp.GradScaler):
            raise ValueError(f"MltMonitor's scaler must be the torch.amp.GradScaler the loop "
                             f"scales its loss with, or None, but got {type(scaler).__name__}")
        settings = monitor_settings(
            run_dir, task=task, metric=metric, baseline=baseline, thresholds=thresholds,
            grad_stats_every=grad_stats_every, checkpoints=save_checkpoints,
            goal_target=goal_target, n_val=n_val, train_rows=train_rows, framework="torch",
            who="MltMonitor")
        self.monitor = RunMonitor(**settings)
        # a GradScaler that is on: `step` takes the gradient norms unscaled (`unscaled`), and
        # nan_loss bears the overflows it skips (RunMonitor.note_scaler)
        self.scaler = scaler if scaler is not None and scaler.is_enabled() else None
        self.monitor.note_scaler(self.scaler)
        self.model = _unwrapped(model)  # (the weights load_model's module holds)
        self.steps_per_epoch, self.epochs = steps_per_epoch, epochs
        self.max_steps = max_steps if max_steps is not None else (
            context().max_steps if in_mlt_run() else None)
        self.global_step = 0  # optimisation steps so far
        self.current_epoch = 1  # the epoch in progress, from 1
        self.stopping_reason: str | None = None
        self._params: list[Any] = []
        self._next_sample: float = 0  # RunMonitor.next_sample, kept here (step's fast path)
        self._started = self._ended = False
        self._active = True  # this process writes the stream (process 0)
        self._world = 1
        self._alone = False  # started, active, one process: step's fast path
        self._device: Any = None  # the stop flag's device with several processes

    @property
    def findings(self) -> list[Any]:
        return self.monitor.findings

    @property
    def should_stop(self) -> bool:
        return self.stopping_reason is not None

    @property
    def stopping_reason_message(self) -> str | None:
        """The finding's message of a detector's stop, else the reason."""
        found = [f for f in self.monitor.findings if self.stopping_reason == f"detector:{f.id}"]
        return found[0].message if found else self.stopping_reason

    # -- the run ------------------------------------------------------------------------------

    def __enter__(self) -> MltMonitor:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: Any) -> bool:
        if kind is None:
            self.end()
        else:  # as the Lightning callback's on_exception; the exception goes on up
            self.end("aborted" if issubclass(kind, KeyboardInterrupt)
                     else f"error:{kind.__name__}")
        return False

    def start(self) -> MltMonitor:
        """Start the stream (what `with` does on entry)."""
        if self._started:
            return self
        self._started = True
        self._world = world_size()
        self._active = is_first_process()
        self._device = next((p.device for p in self.model.parameters()), torch.device("cpu"))
        reason = None
        if self._active:
            self._params = trainable(self.model)
            reason = self.monitor.start(steps_per_epoch=self.steps_per_epoch,
                                        epochs=self.epochs, max_steps=self.max_steps)
            self._next_sample = self.monitor.next_sample
        self._alone = self._active and self._world == 1
        self._decide(reason, collective=False)
        return self

    def end(self, reason: str | None = None) -> None:
        """End the stream (what `with` does on exit): with `reason` (an error's), else the
        reason training stopped for, else "completed"; a run that ended normally keeps its
        final weights when mlt asks for them (`checkpoints/final.pt`, plan's determinism
        check). Safe to call twice."""
        if not self._started or self._ended:
            return
        self._ended = True
        self._alone = False
        if not self._active:
            return
        if reason is not None:
            self.monitor.end(reason)
        else:
            ended = self.stopping_reason if self.stopping_reason != "stopped_by_rank0" else None
            self.monitor.end(ended, state_dict=self.model.state_dict)

    def stop(self, reason: str = "early_stopping") -> None:
        """Stop for a reason of your own: the stream's end event says `reason` (a detector's
        stop, when there was one first, wins)."""
        if not reason or not isinstance(reason, str):
            raise ValueError(f"MltMonitor.stop needs a reason (a non-empty str) but got "
                             f"{reason!r}")
        if self.stopping_reason is None:
            self.stopping_reason = reason

    # -- per step and per epoch ---------------------------------------------------------------

    def step(self, loss: torch.Tensor | float, optimizer: Any = None, *,
             lr: float | None = None) -> str | None:
        """One optimisation step (see the module docstring): `loss` a one-element tensor (on
        the CPU read here, where that costs no sync; on another device kept, detached, until
        its block is read) or a number, the lr from `optimizer.param_groups[0]` unless `lr`
        is given. Returns the reason to stop, or None."""
        if loss.__class__ is torch.Tensor and loss.is_cpu and loss.numel() == 1:
            loss = loss.item()  # `_loss_value`'s common case, inline
        elif loss.__class__ is not float:
            loss = _loss_value(loss)  # (a loss refused is no step)
        self.global_step = step = self.global_step + 1
        if lr is None and optimizer is not None:
            lr = optimizer.param_groups[0]["lr"]
        if self.scaler is not None and optimizer is None:
            raise ValueError("MltMonitor.step needs the optimizer with a scaler (to tell whether "
                             "its gradients are unscaled yet): mlt.step(loss, optimizer)")
        if not self._alone:
            return self._step_elsewhere(step, loss, lr, optimizer)
        # the common step: a few lines, one call of ours (RunMonitor.step, inlined as the
        # Lightning callback inlines it: right after a backward pass every call costs ~3 us)
        grads = _NO_NORMS
        monitor = self.monitor
        if step >= self._next_sample:
            grads = self._sampled(step, optimizer)
        pending = monitor._pending
        now = time.perf_counter()
        pending.append((self.current_epoch, step, loss, lr if lr is None else float(lr),
                        grads[0], grads[1], now))
        if len(pending) >= monitor._due_at or now >= monitor._flush_by:
            reason = monitor._due()
            if reason is not None and self.stopping_reason is None:
                self.stopping_reason = reason
        if self.max_steps is not None and step >= self.max_steps and self.stopping_reason is None:
            self.stopping_reason = "max_steps"
        return self.stopping_reason

    def _sampled(self, step: int, optimizer: Any) -> tuple[Any, Any]:
        """A sampled step's gradient numbers (`RunMonitor.sample`), unscaled with a scaler;
        the first step's finding no gradient is named (`_no_gradients`). Off the common step's
        path: only steps at or past `_next_sample` call it."""
        grads = self.monitor.sample(self._params, step)
        self._next_sample = self.monitor.next_sample
        if grads[0] is None and step == 1:
            self._no_gradients()
        elif self.scaler is not None:
            grads = unscaled(grads, self.scaler, optimizer)
        return grads

    def _no_gradients(self) -> None:
        """The run's first step (its norm is always taken: `NORM_EARLY`) found no gradient on
        any trainable parameter: `step` was called before `backward` or after
        `optimizer.zero_grad()`, so no step event would carry a gradient norm and the gradient
        detectors would see nothing, without a word. One warning."""
        if self._params:
            warnings.warn("mlt: MltMonitor.step found no gradients on the model's parameters, "
                          "so the stream has no gradient norms; call it after loss.backward() "
                          "and before optimizer.step() and optimizer.zero_grad()",
                          RuntimeWarning, stacklevel=3)

    def _step_elsewhere(self, step: int, loss: Any, lr: Any, optimizer: Any) -> str | None:
        """`step` before the start, after the end, with several processes (each joins the
        stop's all-reduce) or on a process that does not write."""
        if not self._started or self._ended:
            raise RuntimeError("MltMonitor.step outside its run: call it inside "
                               "`with MltMonitor(...) as mlt:` (or between start() and end())")
        reason = None
        if self._active:
            grads = _NO_NORMS
            if step >= self._next_sample:
                grads = self._sampled(step, optimizer)
            reason = self.monitor.step(epoch=self.current_epoch, step=step, loss=loss,
                                       lr=lr if lr is None else float(lr), grad_norm=grads[0],
                                       layers=grads[1])
        self._decide(reason)
        if self.max_steps is not None and step >= self.max_steps and self.stopping_reason is None:
            self.stopping_reason = "max_steps"
        return self.stopping_reason

    def epoch(self, val_loss: Any = None, val: Mapping[str, Any] | None = None) -> str | None:
        """The end of the epoch in progress (epochs count from 1): `val_loss` and `val`, the
        val metrics by name (numbers or one-element tensors) holding the goal metric, or
        neither for an epoch you did not validate (its event has no val values; inside an mlt
        run the baseline gate wants the goal metric every epoch). Saves the checkpoint and
        measures the train rows (see the module docstring). Returns the reason to stop, or
        None."""
        if not self._started or self._ended:
            raise RuntimeError("MltMonitor.epoch outside its run: call it inside "
                               "`with MltMonitor(...) as mlt:` (or between start() and end())")
        epoch = self.current_epoch
        reason = None
        if self._active:  # (values refused: the epoch is not over)
            values = {str(name): _number(f"val[{name!r}]", value)
                      for name, value in (val or {}).items()}
            loss = None if val_loss is None else _number("val_loss", val_loss)
            if (values or val_loss is not None) and self.monitor.metric not in values:
                raise ValueError(f"MltMonitor.epoch: val has no {self.monitor.metric!r} (the goal "
                                 f"metric) but {sorted(values)}; pass the val metrics by name "
                                 "(RunContext.compute_metrics(outputs) gives every one)")
        self.current_epoch += 1
        if self._active:
            reason = self.monitor.epoch(
                epoch=epoch, step=self.global_step, val_loss=loss, val=values,
                state_dict=self.model.state_dict, model=self.model)
        self._decide(reason)
        return self.stopping_reason

    def _decide(self, reason: str | None, collective: bool = True) -> None:
        """Process 0's stop, or-ed over every process (`any_process`) when there are several:
        each calls this at the same points (each step, each epoch's end)."""
        stop = reason is not None
        if collective and self._world > 1:
            stop = any_process(stop, self._device)
        if stop and self.stopping_reason is None:
            self.stopping_reason = reason or "stopped_by_rank0"  # the engine's name for it


def unscaled(grads: tuple[Any, Any], scaler: Any, optimizer: Any) -> tuple[Any, Any]:
    """A sampled step's gradient norms (`RunMonitor.sample`: the per-tensor norms, and the
    per-layer statistics) as they are unscaled: divided by the scaler's scale while the loop
    has not called `scaler.unscale_(optimizer)` yet (it may, for clipping, after `step`: the
    monitor leaves the scaler's state alone, or that call would raise), as they are once it
    has. On the device, no sync (the scale's tensor)."""
    norms, stats = grads
    if norms is None:
        return grads
    state = getattr(scaler, "_per_optimizer_states", {}).get(id(optimizer))
    if state is not None and getattr(state.get("stage"), "name", "") == "UNSCALED":
        return grads
    scale = getattr(scaler, "_scale", None)
    if not isinstance(scale, torch.Tensor):
        scale = torch.tensor(float(scaler.get_scale()))
    inverse = scale.float().reciprocal().reshape(()).to(norms[0].device)  # (a power of 2: exact)
    norms = [n.float() * inverse for n in norms]
    return norms, (stats._replace(norms=norms) if stats is not None else None)


def _unwrapped(model: nn.Module) -> nn.Module:
    """The module a training wrapper holds: DistributedDataParallel's or DataParallel's
    `.module`, torch.compile's `_orig_mod`, as deep as they nest. Its `state_dict` is the
    checkpoint's (the keys of the module `load_model` builds, not `module.`- or
    `_orig_mod.`-prefixed ones that fail to load into it), the train rows run through it (a
    DDP forward on process 0 alone could wait forever in its buffers' broadcast), and the
    gradient statistics name its parameters as they are named there (what Lightning's
    callback sees too: Lightning unwraps both)."""
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod  # torch.compile's OptimizedModule
        else:
            return model


def _loss_value(loss: Any) -> Any:
    """What a step keeps of its loss until the block is handled: on the CPU the number itself
    (a read costs no sync there, and less than the detached tensor it replaces), elsewhere the
    tensor detached (a graph kept until the block is read would hold memory; the block reads
    all its numbers at once, RunMonitor.flush); any other number (an int, a numpy scalar) as
    a float: the stream's JSON holds floats (a numpy float32 crashed the block's write)."""
    if isinstance(loss, torch.Tensor):
        if loss.numel() != 1:
            raise ValueError(f"MltMonitor.step: loss must be a number or a one-element tensor "
                             f"but got a tensor of shape {tuple(loss.shape)}; pass the step's "
                             "loss (its mean), as backward() took it")
        if loss.is_cpu:
            return loss.item()
        return loss.detach() if loss.requires_grad else loss
    if isinstance(loss, numbers.Real):  # an int, numpy's float32: the float the stream holds
        return float(loss)
    raise ValueError(f"MltMonitor.step: loss must be a number or a one-element tensor but got "
                     f"{type(loss).__name__}; pass the step's loss, as backward() took it")


def _number(name: str, value: Any) -> float:
    try:
        return float(value.item() if isinstance(value, torch.Tensor) else value)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"MltMonitor.epoch: {name} must be a number but got "
                         f"{type(value).__name__}") from None
