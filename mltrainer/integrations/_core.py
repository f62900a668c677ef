"""What the Lightning and Hugging Face callbacks share: one `RunMonitor` that turns a
framework's hooks into mlt's metric stream, feeds the online detectors and keeps checkpoints.

A callback is a few-line shim per hook (Lightning's `EarlyStopping` is the model): it reads
what its framework exposes (loss, lr, gradients, logged val metrics) and calls `step`/`epoch`
here; a non-None return is the stop reason ("detector:nan_loss"), which the shim turns into the
framework's own stop (`trainer.should_stop`, `control.should_training_stop`). The decision and
the findings live here, so both frameworks judge exactly as mlt's engine does: the same
`DetectorSubscriber` over the same events.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mltrainer.config import LOWER_IS_BETTER
from mltrainer.detectors import DetectorContext, DetectorSubscriber, Finding, build_detectors
from mltrainer.engine.checkpoint import CheckpointWriter, epoch_name, serialize, write_atomic
from mltrainer.engine.devices import peak_mem_mb
from mltrainer.engine.inference import evaluate
from mltrainer.engine.metrics import is_better
from mltrainer.engine.step import layer_statistics, loss_function, per_tensor_norms
from mltrainer.state import atomic_write_text
from mltrainer.stream import MetricWriter, encode_json

CHECKPOINT_FORMAT = "mlt-integration/1"
FINDINGS_FILE = "findings.json"
# logged keys that are bookkeeping, not metrics (HF's evaluate adds these)
_NOT_METRICS = ("runtime", "samples_per_second", "steps_per_second", "epoch")


def split_logged(logged: Mapping[str, Any], prefix: str) -> tuple[float | None, dict[str, float]]:
    """(val_loss, {metric: value}) from a framework's logged values: keys `<prefix>loss` and
    `<prefix><metric>` (`val_loss`, `val_accuracy`; HF's `eval_loss`, `eval_accuracy`), with
    "/" accepted after the prefix's stem (`val/accuracy`). Tensors become floats."""
    stem = prefix.rstrip("_/")
    val_loss: float | None = None
    val: dict[str, float] = {}
    for key, value in logged.items():
        name = None
        for head in (prefix, stem + "/", stem + "_"):
            if head and key.startswith(head):
                name = key[len(head):]
                break
        if not name or name in _NOT_METRICS:
            continue
        number = _as_float(value)
        if number is None:
            continue
        if name == "loss":
            val_loss = number
        else:
            val[name] = number
    return val_loss, val


def _as_float(value: Any) -> float | None:
    if isinstance(value, torch.Tensor):
        return float(value.detach().float().reshape(-1)[0]) if value.numel() == 1 else None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def trainable(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """(name, parameter) of every parameter that trains: looked up once per fit, not per step."""
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def gradient_norms(params: list[tuple[str, nn.Parameter]], layers: bool
                   ) -> tuple[list[str] | None, torch.Tensor | None]:
    """The gradients' numbers as one tensor on their device, not read yet (no host sync):
    `[global L2 norm]`, or with `layers` `[global, norm_1, zero_frac_1, norm_2, ...]` and the
    parameter names. The engine's own arithmetic (`per_tensor_norms`, `layer_statistics`:
    fused `_foreach_norm` passes). (None, None) when no parameter has a gradient."""
    named = [(n, p.grad) for n, p in params if p.grad is not None]
    if not named:
        return None, None
    grads = [g for _, g in named]
    norms = per_tensor_norms(grads, grads[0].device)
    total = torch.linalg.vector_norm(norms).reshape(1)
    if not layers:
        return None, total
    stats = layer_statistics(grads, norms)
    return [n for n, _ in named], torch.cat([total, stats.reshape(-1)])


def read_step(loss: Any, grads: tuple[list[str] | None, torch.Tensor | None]
              ) -> tuple[float, float | None, dict[str, Any] | None]:
    """(loss, global gradient norm, {param: {grad_norm, zero_frac}}) as Python numbers, read
    from the device in one transfer (the engine reads its step the same way: one sync a step).
    `loss` is a tensor (any shape with one element) or a number; `grads` from
    `gradient_norms`."""
    names, numbers = grads
    if isinstance(loss, torch.Tensor):
        loss = loss.detach().reshape(1).float()
        if numbers is not None:
            values = torch.cat([loss.to(numbers.device), numbers.float()]).tolist()
        else:
            values = loss.tolist()
    else:
        values = [float(loss), *(numbers.tolist() if numbers is not None else ())]
    norm = values[1] if len(values) > 1 else None
    table = None
    if names is not None:
        table = {name: {"grad_norm": values[2 + 2 * i], "zero_frac": values[3 + 2 * i]}
                 for i, name in enumerate(names)}
    return values[0], norm, table


class TrainRows:
    """Fixed training rows whose loss and metrics each epoch event reports as
    `train_eval_loss` and `train`, measured as mlt's engine measures them: the model of the
    epoch's end, in eval mode, without gradients, by mlt's own formulas (`engine.inference.
    evaluate`: the task's loss, cross-entropy or MSE, and every metric of the task).

    The model must map a tensor of rows to outputs (logits, or one value per row): the same
    contract as the project's `load_model`. When it cannot (its forward wants other inputs),
    the first attempt warns once and the events go without the fields; the detectors then
    judge the epoch's mean train loss, as for any stream without them. Cost: one forward pass
    over the rows per epoch (inside an mlt run as many rows as val, at least 2048 or all of
    train, like the engine: at most one more val pass)."""

    def __init__(self, X: Any, y: Any, task: str) -> None:
        self.task = task
        self.y_numpy = np.asarray(y)
        self.X = torch.as_tensor(np.ascontiguousarray(X, dtype=np.float32))
        self.y = torch.as_tensor(self.y_numpy, dtype=(
            torch.float32 if task == "regression" else torch.int64))
        self.loss_fn = loss_function(task)
        self.failed: str | None = None

    def measure(self, model: nn.Module) -> tuple[float, dict[str, float]] | None:
        if self.failed is not None:
            return None
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        if self.X.device != device:
            self.X, self.y = self.X.to(device), self.y.to(device)
        try:
            with torch.no_grad():
                return evaluate(model, self.X, self.y, self.loss_fn, self.task, self.y_numpy)
        except (TypeError, AttributeError, RuntimeError, ValueError) as exc:
            first = (str(exc).strip().splitlines() or [""])[0]
            self.failed = f"{type(exc).__name__}: {first}"
            warnings.warn(f"mlt: the epoch events go without train metrics: the model could not "
                          f"be evaluated on a tensor of training rows ({self.failed}); make "
                          "forward(rows) return the outputs, or pass train_rows=None",
                          RuntimeWarning, stacklevel=2)
            return None


class RunMonitor:
    """The metric stream, the online detectors and the checkpoints of one run in a framework's
    own loop. `run_dir` receives `metrics.jsonl`, `findings.json` and (with `checkpoints`)
    `checkpoints/epoch-NNN.pt`, `best.pt`, `last.pt` holding `{"format", "model": state_dict,
    "epoch", "step", "val", "metric"}` (and with `save_final`, `final.pt` at the end).

    `metric` is the goal metric the best checkpoint is chosen by (accuracy, rmse, ...);
    `baseline` the trivial baseline's val values the detectors compare against;
    `thresholds` the shape of `diagnose.thresholds` in mlt.yaml; `goal_target` (`goal.target`)
    and `n_val` (val rows) sharpen the detectors that judge against the goal and val noise;
    `train_rows` (X, y) are the fixed training rows of each epoch event's `train` and
    `train_eval_loss` (`TrainRows`; inside an mlt run the engine's own subset).

    Durability, the engine's rule: every event line is flushed to the OS as it is written (a
    killed process loses none); after each epoch event the file is fsynced on a background
    thread, and the checkpoint written there too (the engine's `CheckpointWriter`: the state
    is serialised at once, the file I/O overlaps the next steps); `end` waits for both and
    fsyncs the closed stream (a machine crash loses at most the epoch in progress). The
    step's numbers are read from the device once per step (loss and gradient norm together),
    as the engine does.
    """

    def __init__(self, run_dir: str | Path, *, task: str, metric: str,
                 baseline: Mapping[str, float] | None = None,
                 thresholds: Mapping[str, Mapping[str, float]] | None = None,
                 goal_target: float | None = None, n_val: int | None = None,
                 grad_stats_every: int = 10, checkpoints: bool = False,
                 save_final: bool = False, framework: str = "",
                 train_rows: tuple[Any, Any] | None = None) -> None:
        if task not in ("classification", "regression"):
            raise ValueError(f"task must be classification or regression but got {task!r}")
        if grad_stats_every < 0:
            raise ValueError(f"grad_stats_every cannot be negative but got {grad_stats_every}")
        self.run_dir = Path(run_dir)
        self.task, self.metric = task, metric
        self.greater_is_better = metric not in LOWER_IS_BETTER
        self.baseline = dict(baseline) if baseline else None
        self.grad_stats_every = grad_stats_every
        self.checkpoints = checkpoints
        self.save_final = save_final
        self.framework = framework
        self.train_rows = TrainRows(*train_rows, task) if train_rows is not None else None
        self.goal_target, self.n_val = goal_target, n_val
        context = DetectorContext(task=task, metric=metric,
                                  greater_is_better=self.greater_is_better,
                                  baseline=self.baseline, goal_target=goal_target, n_val=n_val)
        self.detectors = DetectorSubscriber(build_detectors(context, thresholds))
        self.writer: MetricWriter | None = None
        self._stream_fd = -1
        self._ckpts = CheckpointWriter(self.run_dir / "checkpoints", background=True)
        self._sync: threading.Thread | None = None
        self.stop_reason: str | None = None
        self.best_metric: float | None = None
        self.best_epoch = 0
        self.last_step = 0
        self.last_epoch = 0
        self.last_lr: float | None = None
        self._losses: list[float] = []
        self._epoch_started = time.perf_counter()

    @property
    def findings(self) -> list[Finding]:
        return self.detectors.findings

    @property
    def stopped(self) -> bool:
        return self.stop_reason is not None

    def wants_layer_stats(self, step: int) -> bool:
        """Per-layer statistics on every `grad_stats_every`-th step (1-based), as the engine."""
        return self.grad_stats_every > 0 and step % self.grad_stats_every == 0

    # -- events -------------------------------------------------------------------------------

    def start(self, *, steps_per_epoch: int | None, epochs: int | None = None,
              **fields: Any) -> str | None:
        if self.writer is not None:
            return None  # a second fit() on the same callback continues the same stream
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.writer = MetricWriter(self.run_dir / "metrics.jsonl", write_start=False,
                                   fsync_every_epoch=False)  # on a thread instead: _sync_later
        self._stream_fd = os.open(self.run_dir / "metrics.jsonl", os.O_RDONLY)
        event: dict[str, Any] = {
            "type": "start", "run_id": self.run_dir.name, "task": self.task,
            "metric": self.metric, "greater_is_better": self.greater_is_better,
            "steps_per_epoch": steps_per_epoch, "epochs": epochs,
            "framework": self.framework, "goal_target": self.goal_target, "n_val": self.n_val,
            **fields}
        if self.train_rows is not None:
            event["n_train_eval"] = len(self.train_rows.y_numpy)
        if self.baseline is not None:
            event["baseline"] = self.baseline
        self._epoch_started = time.perf_counter()
        return self._emit(event)

    def step(self, *, epoch: int, step: int, loss: float, lr: float | None,
             grad_norm: float | None = None,
             layers: Mapping[str, Any] | None = None) -> str | None:
        """One optimisation step (`epoch` from 1, `step` from 1 over the run)."""
        if self.stopped:
            return self.stop_reason
        self.last_step, self.last_epoch, self.last_lr = step, epoch, lr
        self._losses.append(loss)
        event: dict[str, Any] = {"type": "step", "epoch": epoch, "step": step, "loss": loss,
                                 "lr": lr}
        if grad_norm is not None:
            event["grad_norm"] = grad_norm
        if layers:
            event["layers"] = dict(layers)
        return self._emit(event)

    def epoch(self, *, epoch: int, step: int, val_loss: float | None,
              val: Mapping[str, float],
              state_dict: Callable[[], Mapping[str, torch.Tensor]] | None = None,
              model: nn.Module | None = None) -> str | None:
        """The end of epoch `epoch` with its val values; the train loss is the mean of the
        epoch's step losses; with `train_rows` and `model`, `train` and `train_eval_loss` are
        measured on those rows (`TrainRows`). With checkpoints on, `state_dict()` is saved
        (never non-finite weights: a diverged epoch keeps the previous best/last)."""
        if self.stopped:
            return self.stop_reason
        fitted = (self.train_rows.measure(model)
                  if self.train_rows is not None and model is not None else None)
        train_loss = sum(self._losses) / len(self._losses) if self._losses else math.nan
        self._losses = []
        value = val.get(self.metric)
        improved = value is not None and is_better(value, self.best_metric,
                                                   self.greater_is_better)
        name, payload = None, None
        if self.checkpoints and state_dict is not None:
            weights = {k: v.detach().cpu() for k, v in state_dict().items()}
            if _all_finite(weights.values()):
                name = epoch_name(epoch)
                payload = {"format": CHECKPOINT_FORMAT, "framework": self.framework,
                           "model": weights, "epoch": epoch, "step": step, "val": dict(val),
                           "metric": self.metric}
            else:
                improved = False
        if improved:
            self.best_metric, self.best_epoch = value, epoch
        self.last_epoch, self.last_step = epoch, step
        event = {"type": "epoch", "epoch": epoch, "step": step, "train_loss": train_loss,
                 "val_loss": val_loss if val_loss is not None else math.nan, "val": dict(val),
                 "lr": self.last_lr, "wall_time": time.perf_counter() - self._epoch_started,
                 "peak_mem_mb": peak_mem_mb(torch.device("cpu")), "checkpoint": name,
                 "best_epoch": self.best_epoch}
        if fitted is not None:
            event["train_eval_loss"], event["train"] = fitted
        self._epoch_started = time.perf_counter()
        reason = self._emit(event)
        if payload is not None and name is not None:
            self._ckpts.save(payload, name, exclusive=True,
                             links=["last.pt", "best.pt"] if improved else ["last.pt"])
        self._sync_later()
        return reason

    def end(self, reason: str | None = None,
            state_dict: Callable[[], Mapping[str, torch.Tensor]] | None = None) -> None:
        """Close the stream with the stop reason (a detector's, else `reason`, else
        "completed") and write `findings.json`; with `save_final`, the weights at the end go
        to `checkpoints/final.pt` (mlt's determinism check compares them). Safe to call twice."""
        if self.writer is None:
            return
        try:
            self._ckpts.wait()  # the last epoch's checkpoint is on disk (or its error raised)
            if self.save_final and state_dict is not None:
                weights = {k: v.detach().cpu() for k, v in state_dict().items()}
                write_atomic(self.run_dir / "checkpoints" / "final.pt", serialize(
                    {"format": CHECKPOINT_FORMAT, "model": weights, "step": self.last_step}))
        finally:
            why = self.stop_reason or reason or "completed"
            self.writer.end(reason=why, epoch=self.last_epoch, step=self.last_step)
            self.writer.close()
            self.writer = None
            if self._sync is not None:
                self._sync.join()
            self._fsync_stream()
            os.close(self._stream_fd)
            self._stream_fd = -1
        atomic_write_text(self.run_dir / FINDINGS_FILE, json.dumps(encode_json({
            "stop_reason": self.stop_reason,
            "findings": [f.to_dict() for f in self.findings]}), indent=2) + "\n")

    def _emit(self, event: dict[str, Any]) -> str | None:
        assert self.writer is not None, "start() must come first"
        event["time"] = time.time()
        self.writer.write(event)
        reason = self.detectors.on_event(event)
        if reason is not None and self.stop_reason is None:
            self.stop_reason = reason
        return reason

    # -- durability ---------------------------------------------------------------------------

    def _fsync_stream(self) -> None:
        if self._stream_fd >= 0:
            with contextlib.suppress(OSError):
                os.fsync(self._stream_fd)

    def _sync_later(self) -> None:
        """fsync the stream on a thread (~1-2 ms that would otherwise stall the loop), one
        at a time: the lines are already with the OS, this makes them survive a power loss."""
        if self._sync is not None:
            self._sync.join()
        self._sync = threading.Thread(target=self._fsync_stream, name="mlt-stream-fsync")
        self._sync.start()


def _all_finite(tensors: Iterable[torch.Tensor]) -> bool:
    floats = [t for t in tensors if t.is_floating_point()]
    return not floats or bool(torch.isfinite(torch.stack(
        torch._foreach_norm(floats, math.inf))).all())


def load_checkpoint_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The `state_dict` a callback saved (`checkpoints/best.pt`): for a `load_model`."""
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    return payload["model"]
