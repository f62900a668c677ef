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
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from itertools import pairwise
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import distributed as dist
from torch import nn

from mltrainer.config import LOWER_IS_BETTER
from mltrainer.detectors import (
    DetectorContext,
    DetectorSubscriber,
    Finding,
    StepBlock,
    build_detectors,
)
from mltrainer.engine.checkpoint import CheckpointWriter, epoch_name, serialize, write_atomic
from mltrainer.engine.devices import peak_mem_mb
from mltrainer.engine.inference import evaluate
from mltrainer.engine.metrics import improves
from mltrainer.engine.step import loss_function, nonzero_counts
from mltrainer.state import atomic_write_text
from mltrainer.stream import (
    BLOCK_DELAY_S,
    BLOCK_STEPS,
    MetricWriter,
    encode_json,
    line_of,
    step_lines,
)

CHECKPOINT_FORMAT = "mlt-integration/1"
# the per-layer statistics' and the global gradient norm's (NORM_SHARE) most share each of
# the step time: 0.1 %, so that sampling takes 0.2 % of a ~1 ms CPU step and the handling
# of every step (its line, the detectors) the rest of the 2 % the issue allows (issue 15,
# eleventh pass: at 0.25 % each, sampled passes and their handling were ~10 of the loop's
# ~45 us a step). On such steps the norm is then taken every ~30 steps and the statistics
# every ~100 (0.1 s of training); a GPU step, or a CPU step of 40 ms and more, has its norm
# on every step.
STATS_SHARE = 0.001
# a pass's cost is the median of the last this many passes' (the lower of two): a pass a
# neighbour pre-empted is one outlier; and until this many were measured the stride grows at
# most STATS_STRETCH-fold from one report to the next: one first pass timed far too long
# (4.3 ms against ~0.1: a stride of 660 steps, a short run with no more reports) costs three
# reports, not the run's statistics. (Twofold cost the bench's 160-step runs a pass more,
# ~1.5 us a step: their passes want a stride of 3x.)
STATS_PASSES = 3
STATS_STRETCH = 4
NORM_SHARE = 0.001  # the global gradient norm's (see STATS_SHARE and RunMonitor)
# the first steps always carry a gradient norm: the detectors' early median (their first 5)
# and one full span (5) judged step by step, where an lr far too high blows up
NORM_EARLY = 10
MAX_BLOCK = BLOCK_STEPS  # at most this many steps wait to be handled
# the gradient norm's pass is timed on the first NORM_EARLY and then every this many passes
# (the estimate moves slowly; each timing costs two clock reads)
TIME_NORM_EVERY = 8
# A block of steps waits at most MAX_BLOCK steps, nor for longer than this (wall time). Each
# block pays a fixed cost on top of its events:
# the training step between two blocks has pushed the handling's code and data out of the
# cache (measured on a 1024-wide MLP, ~12 ms steps: 83 us an event in blocks of 2 at 50 ms,
# 35 us in blocks of 15 at 0.5 s). A quarter second keeps blocks of 20-32 steps up to ~10 ms
# steps, and a block's fixed cost under 0.1 % of longer ones; an entrypoint's follower
# (polling every `engine.entrypoint.POLL_S`) sees a step's line at most this late, an epoch
# event at once.
MAX_DELAY_S = BLOCK_DELAY_S
# The detectors judge the written steps (and the epoch events between them) once this many
# steps wait, or their first is this old, at once when a step or an epoch event carries a
# non-finite loss or gradient norm (what `nan_loss`, the one detector that stops training,
# fires on: its stop is as prompt as the block's), and at the end. A judging pays a fixed
# cost like a block's (the detectors' code and data back in the cache): on the bench's
# 17-step epochs judging every epoch cost ~7 us a step more than every ~4 epochs. The other
# detectors' findings (none stops training) come that much later; `findings.json` has all.
MAX_UNJUDGED = 64
JUDGE_DELAY_S = 1.0
SYNC_EVERY_S = 0.5  # the stream is fsynced at most this long after an epoch event
FINDINGS_FILE = "findings.json"
_CPU = torch.device("cpu")
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
        return float(value.item()) if value.numel() == 1 else None  # one read, no copies
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def trainable(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """(name, parameter) of every parameter that trains: looked up once per fit, not per step."""
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


class LayerStats(NamedTuple):
    """One step's per-layer gradient statistics, not read from the device yet: the names of
    the parameters with a gradient, each gradient's L2 norm and count of non-zero entries
    (0-d tensors: one fused `_foreach_norm` pass and the engine's `nonzero_counts`) and sizes."""

    names: list[str]
    norms: list[torch.Tensor]
    nonzero: list[torch.Tensor]
    sizes: list[int]

    def table(self, norms: list[float], nonzero: list[float]) -> dict[str, dict[str, float]]:
        return {name: {"grad_norm": norm, "zero_frac": 1.0 - count / size}
                for name, norm, count, size in zip(self.names, norms, nonzero, self.sizes,
                                                   strict=True)}


def gradient_norms(params: list[tuple[str, nn.Parameter]], layers: bool
                   ) -> tuple[list[torch.Tensor] | None, LayerStats | None]:
    """The gradients' numbers on their device, not read yet (no host sync): the L2 norm of
    each gradient (one fused `_foreach_norm` pass; the global norm is the L2 norm of these,
    taken when the step is handled) and, with `layers`, the `LayerStats` (one more pass
    counting non-zeros, `engine.step.nonzero_counts`). (None, None) when no parameter has a
    gradient."""
    if not layers:  # the common step: no names needed
        grads = [p.grad for _, p in params if p.grad is not None]
        return (list(torch._foreach_norm(grads)), None) if grads else (None, None)
    named = [(n, p.grad) for n, p in params if p.grad is not None]
    if not named:
        return None, None
    grads = [g for _, g in named]
    norms = list(torch._foreach_norm(grads))
    nonzero = nonzero_counts(grads)
    return norms, LayerStats([n for n, _ in named], norms, nonzero, [g.numel() for g in grads])


class TrainRows:
    """Fixed training rows whose loss and metrics each epoch event reports as
    `train_eval_loss` and `train`, measured as mlt's engine measures them: the model of the
    epoch's end, in eval mode, without gradients, by mlt's own formulas (`engine.inference.
    evaluate`: the task's loss, cross-entropy or MSE, and every metric of the task).

    The model must map a tensor of rows to outputs (logits, or one value per row; an output
    with `logits`, transformers-style, is read by its logits): the contract of the project's
    `load_model`. When it cannot (its forward wants other inputs),
    the first attempt warns once and the events go without the fields; the detectors then
    judge the epoch's mean train loss, as for any stream without them. Cost: one forward pass
    over the rows per epoch (inside an mlt run the engine's `train_subset`: at most one more
    val pass)."""

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
                return evaluate(_LogitsOf(model), self.X, self.y, self.loss_fn, self.task,
                                self.y_numpy)
        except (TypeError, AttributeError, RuntimeError, ValueError) as exc:
            first = (str(exc).strip().splitlines() or [""])[0]
            self.failed = f"{type(exc).__name__}: {first}"
            warnings.warn(f"mlt: the epoch events go without train metrics: the model could not "
                          f"be evaluated on a tensor of training rows ({self.failed}); make "
                          "forward(rows) return the outputs, or pass train_rows=None",
                          RuntimeWarning, stacklevel=2)
            return None


class _LogitsOf(nn.Module):
    """`model` seen through the tensor its forward returns: a transformers-style output (a
    `ModelOutput`, or a dict, with `logits`: what an HF Trainer's model returns without
    labels) by its logits, a tensor as it is. Its eval()/train() reach the model."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        out = self.model(rows)
        if isinstance(out, torch.Tensor):
            return out
        logits = out.get("logits") if isinstance(out, Mapping) else getattr(out, "logits", None)
        if not isinstance(logits, torch.Tensor):
            raise TypeError(f"forward returned a {type(out).__name__}, neither a tensor nor an "
                            "output with logits")
        return logits


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

    Per step, only references (`step`): the loss and the gradients' norms stay on their
    device as the framework left them: no host sync, no JSON, no detector. The steps are
    handled in blocks (`flush`: one device read for the block, its lines in one write); the
    detectors judge the written events every `max_unjudged` steps (`MAX_UNJUDGED`, or once the
    first waiting is `JUDGE_DELAY_S` old), at once when a loss or gradient norm in the block
    (or an epoch event's loss) is not finite, and at the end (`judge`: the steps by
    `DetectorSubscriber.on_steps`, the same findings, in the same order, with the same state
    as the engine's event by event). A block is
    handled when it holds `K` steps, when its first step is `max_delay_s` old, at each epoch
    event (which comes after every step before it) and at the end. Blocks are as large as
    these bounds allow, `K` = `max_block`: the handling's cost per event falls with the block
    (its code and data stay in the cache from one event to the next; see `MAX_DELAY_S`), and
    the bounds are what a stop's lag is promised. So a detector's stop (a non-finite loss; no
    other detector stops training; their findings may come `max_unjudged` steps later) reaches
    the framework at most `max_block - 1` steps and at most `max_delay_s` plus one step after
    the step that caused it; a step longer than `max_delay_s` is handled as it ends, and the
    stop is immediate. `stop_step` is the step the detector fired on, `last_step` the one
    training stopped after.

    Per-layer statistics are taken every `grad_stats_every` steps, or less often when
    measured to cost more than `STATS_SHARE` of the step (`stats_every`, a multiple of
    `grad_stats_every`): the detectors that read them count reports, not steps.

    The global gradient norm, where the callback computes it (Lightning; HF's Trainer computes
    its own every step), is taken on every step while its pass is measured to cost at most
    `norm_share` (`NORM_SHARE`) of the step (a GPU, a long step), else on every
    `norm_every`-th step, the smallest stride that keeps it within that share, at most
    `max_block` (`wants_grad_norm`, `note_norm_cost`). The first `NORM_EARLY` steps always
    carry one (the detectors' early references), and so does every step with per-layer
    statistics; a step event carries `grad_norm` exactly when it was measured. Every step's
    loss is kept, so a non-finite loss is judged on every step. A non-finite gradient with a
    finite loss is caught on the next step that measures the norm, or on the first later step
    whose loss it reaches: an update carries it into the weights (plain SGD or Adam without a
    gradient scaler; gradient clipping by norm spreads it to every weight), and the next
    forward pass through them into the loss.

    Durability, the engine's rule (a crash loses at most the epoch in progress): the step
    lines of a block reach the OS together; every epoch event is written after everything
    before it (in one write with the epoch's last step lines) and then fsynced on a background
    thread, and the checkpoint written there too
    (the engine's `CheckpointWriter`: the state is serialised at once, the file I/O overlaps
    the next steps); `end` handles what is pending, waits for both and fsyncs the closed
    stream. A killed process loses at most the unhandled steps of the epoch in progress.
    """

    def __init__(self, run_dir: str | Path, *, task: str, metric: str,
                 baseline: Mapping[str, float] | None = None,
                 thresholds: Mapping[str, Mapping[str, float]] | None = None,
                 goal_target: float | None = None, n_val: int | None = None,
                 grad_stats_every: int = 10, checkpoints: bool = False,
                 save_final: bool = False, framework: str = "",
                 train_rows: tuple[Any, Any] | None = None, max_block: int = MAX_BLOCK,
                 max_delay_s: float = MAX_DELAY_S, norm_share: float = NORM_SHARE,
                 max_unjudged: int = MAX_UNJUDGED) -> None:
        if task not in ("classification", "regression"):
            raise ValueError(f"task must be classification or regression but got {task!r}")
        if grad_stats_every < 0:
            raise ValueError(f"grad_stats_every cannot be negative but got {grad_stats_every}")
        self.run_dir = Path(run_dir)
        self.task, self.metric = task, metric
        self.greater_is_better = metric not in LOWER_IS_BETTER
        self.baseline = dict(baseline) if baseline else None
        if max_block < 1 or max_delay_s < 0:
            raise ValueError(f"max_block must be >= 1 and max_delay_s >= 0 but got "
                             f"{max_block}, {max_delay_s}")
        self.grad_stats_every = grad_stats_every
        self.stats_every = grad_stats_every  # adapted: see wants_layer_stats
        self._next_stats = grad_stats_every
        self._stats_taken = 0  # the last step with per-layer statistics
        self.max_block, self.max_delay_s = max_block, max_delay_s
        self.max_unjudged = max_unjudged
        # written events the detectors have not judged yet: (a block of steps, perf_counter at
        # each step) or (an epoch event, None)
        self._unjudged: list[tuple[Any, list[float] | None]] = []
        self._unjudged_steps = 0
        self._first_unjudged = 0.0  # perf_counter at the first unjudged step
        self.stop_step: int | None = None
        self._pending: list[tuple[Any, ...]] = []
        # at an epoch's end flush keeps the block's lines here, for the epoch line's write
        self._holding = False
        self._held: list[str] = []
        self._first_pending = 0.0  # perf_counter when the pending block's first step began
        # step()'s fast path: `_due` once this many steps are pending (0 after a stop: every
        # step) or the clock passes this (-inf: the first step after the start or an epoch)
        self._due_at = max_block
        self._flush_by = -math.inf
        self._last_record: float | None = None  # perf_counter at the last handled step's end
        self._prev_record = 0.0  # and at its start
        self.stop_lag: dict[str, float] | None = None  # how late the stop came (see flush)
        self._step_time: float | None = None  # seconds a step, smoothed (see _time_steps)
        self.handled = 0  # step events handled, and the seconds that took
        self.handling_s = 0.0  # (read, write, detectors; wall; for bench/integrations.py)
        self._stats_costs: deque[float] = deque(maxlen=STATS_PASSES)
        self.norm_share = norm_share
        self.norm_every = 1  # adapted: see wants_grad_norm
        self._next_norm = 1
        self._norm_taken = 0  # the last step with a gradient norm
        self._norm_passes = 0
        self._norm_cost: float | None = None
        # no step before this one is sampled (norm or statistics): the hooks' fast path
        self.next_sample = 0
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
        self._sync: threading.Thread | None = None  # the stream's fsync thread: _sync_later
        self._sync_stop = threading.Event()
        self._unsynced = False  # an epoch event was written since the thread's last fsync
        self.stop_reason: str | None = None
        self.best_metric: float | None = None
        self.best_loss: float | None = None
        self.best_epoch = 0
        self.last_step = 0
        self.last_epoch = 0
        self.last_lr: float | None = None
        self._losses: list[float] = []
        self._epoch_started = time.perf_counter()
        self._goal_warned = False
        self.grad_scale: float | None = None  # an fp16 GradScaler's scale (note_scaler)

    @property
    def findings(self) -> list[Finding]:
        return self.detectors.findings

    @property
    def stopped(self) -> bool:
        return self.stop_reason is not None

    def wants_layer_stats(self, step: int) -> bool:
        """Per-layer statistics on this step (1-based)? Every `grad_stats_every`-th step, as
        the engine, or every `stats_every`-th when they cost more than `STATS_SHARE` of the
        step (`note_stats_cost`)."""
        if self.grad_stats_every <= 0 or step < self._next_stats:
            return False
        self._stats_taken = step
        self._next_stats = (step // self.stats_every + 1) * self.stats_every
        self._plan()
        return True

    def note_stats_cost(self, seconds: float) -> None:
        """The time the per-layer statistics of one step took (the callbacks time the pass
        and, Lightning's, the sampling decision before it: what a sampled step costs more;
        with `time.perf_counter`, no system call: right after a training step a read of the
        thread's CPU clock costs ~5 us and, on a busy machine, far more wall time):
        `stats_every` becomes the smallest multiple of `grad_stats_every` that keeps them
        within `STATS_SHARE` of the step time, their cost being the median of the last
        `STATS_PASSES` passes' (a pass a neighbour pre-empted is one outlier; of two, the
        lower), and, until that many were measured, at most `STATS_STRETCH` times the stride
        before (a stride sized on one such first pass is re-measured a few reports on, not
        hundreds of steps on)."""
        costs = self._stats_costs
        costs.append(seconds)
        cost = sorted(costs)[(len(costs) - 1) // 2]
        if self._known_step_time() and self.grad_stats_every > 0:
            unit = self.grad_stats_every
            every = math.ceil(cost / (STATS_SHARE * self._step_time) / unit)
            if len(costs) < STATS_PASSES:
                every = min(every, STATS_STRETCH * self.stats_every // unit)
            self.stats_every = unit * max(1, every)
            # the next report by the new stride already (not one more at the old one)
            self._next_stats = (self._stats_taken // self.stats_every + 1) * self.stats_every
            self._plan()

    def wants_grad_norm(self, step: int) -> bool:
        """The global gradient norm on this step (1-based)? Each of the first `NORM_EARLY`
        steps, then every `norm_every`-th (1: every step) as `note_norm_cost` adapts it."""
        if step < self._next_norm and step > NORM_EARLY:
            return False
        self._norm_taken = step
        self._next_norm = (step // self.norm_every + 1) * self.norm_every
        self._plan()
        return True

    def times_norm(self) -> bool:
        """Time this gradient-norm pass (`note_norm_cost`)? The first `NORM_EARLY`, then
        every `TIME_NORM_EVERY`-th: the estimate moves slowly, and each timing costs two
        clock reads."""
        self._norm_passes += 1
        return self._norm_passes <= NORM_EARLY or self._norm_passes % TIME_NORM_EVERY == 0

    def note_norm_cost(self, seconds: float) -> None:
        """The time one step's gradient-norm pass took, with the sampling decision before it
        (timed as `note_stats_cost` says, on the passes `times_norm` picks):
        `norm_every` becomes the smallest stride that keeps it within `norm_share`
        (`NORM_SHARE`) of the step time, at most `max_block` steps."""
        self._norm_cost = seconds if self._norm_cost is None else (
            0.7 * self._norm_cost + 0.3 * min(seconds, 2 * self._norm_cost))
        if self._known_step_time():
            every = math.ceil(self._norm_cost / (self.norm_share * self._step_time))
            self.norm_every = max(1, min(self.max_block, every))
            self._next_norm = (self._norm_taken // self.norm_every + 1) * self.norm_every
            self._plan()

    def sample(self, params: list[tuple[str, nn.Parameter]], step: int
               ) -> tuple[list[torch.Tensor] | None, LayerStats | None]:
        """The gradients' numbers of step `step` (1-based) as `step` takes them (`grad_norm`,
        `layers`): per-layer statistics when `wants_layer_stats`, else the global norm's
        parts when `wants_grad_norm`, else (None, None); kept on the device, read with the
        step's block (no sync here). Call it once the gradients of the step are complete and
        before they are clipped (the norms are the unclipped ones, as the stream wants); a
        hook skips the call below `next_sample`. The cost noted (`note_stats_cost`,
        `note_norm_cost`) is all of this sampling's, the decision and the pass: what a sampled
        step costs more than another."""
        started = time.perf_counter()
        if self.wants_layer_stats(step):
            grads = gradient_norms(params, layers=True)
            self.note_stats_cost(time.perf_counter() - started)
            return grads
        if self.wants_grad_norm(step):
            grads = gradient_norms(params, layers=False)
            if self.times_norm():
                self.note_norm_cost(time.perf_counter() - started)
            return grads
        return None, None

    def _plan(self) -> None:
        """`next_sample`: the first step `wants_layer_stats` or `wants_grad_norm` may say yes
        to (a lower bound: a hook skips both below it)."""
        norm = self._next_norm
        if self._norm_taken < NORM_EARLY:  # each of the first NORM_EARLY steps
            norm = min(norm, self._norm_taken + 1)
        stats = self._next_stats if self.grad_stats_every > 0 else norm
        self.next_sample = min(norm, stats)

    def note_scaler(self, scaler: Any) -> None:
        """The run trains in fp16 with this GradScaler (None, or one that is off: it does
        not): its scale goes into the start event (`grad_scale`), from which `nan_loss` takes
        how many consecutive non-finite gradient norms are the scaler's skipped overflows, not
        a broken run (the detector's docstring; online and in `mlt diagnose` alike). Call it
        before `start`."""
        if scaler is not None and scaler.is_enabled():
            self.grad_scale = float(scaler.get_scale())

    # -- events -------------------------------------------------------------------------------

    def start(self, *, steps_per_epoch: int | None, epochs: int | None = None,
              **fields: Any) -> str | None:
        if self.writer is not None:
            return None  # a second fit() on the same callback continues the same stream
        if (self.run_dir / "metrics.jsonl").exists():  # (MetricWriter appends: two runs in one)
            raise ValueError(f"{self.run_dir} already holds a run's metric stream "
                             "(metrics.jsonl), and a run is never overwritten: give each run "
                             "(each fit() or with block) a new run_dir, or delete that one")
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
        if self.grad_scale is not None:
            event["grad_scale"] = self.grad_scale
        if self.baseline is not None:
            event["baseline"] = self.baseline
        self._epoch_started = time.perf_counter()
        return self._emit(event)

    def step(self, *, epoch: int, step: int, loss: float | torch.Tensor, lr: float | None,
             grad_norm: float | torch.Tensor | list[torch.Tensor] | None = None,
             layers: LayerStats | Mapping[str, Any] | None = None) -> str | None:
        """One optimisation step (`epoch` from 1, `step` from 1 over the run). `loss` and
        `grad_norm` are numbers or tensors on any device (a list of tensors: the per-tensor
        norms, whose L2 norm is the global one), kept as they are until the block is handled
        (see the class docstring). Returns the stop reason once a detector has asked for a
        stop, else None.

        Right after a training step every object this touches is a cache miss (a few us each
        time on the bench), so a step is one tuple, one clock read and one comparison; the
        rest waits for `_due` (the first step after the start or an epoch event, a full or
        old block) or `flush`. The Lightning hook inlines this
        (a call of its own costs ~3 us there)."""
        if (loss.__class__ is not float and isinstance(loss, torch.Tensor)
                and loss.requires_grad):
            loss = loss.detach()  # (a graph kept until the block is read would hold memory)
        now = time.perf_counter()
        pending = self._pending
        pending.append((epoch, step, loss, lr, grad_norm, layers, now))
        if len(pending) < self._due_at and now < self._flush_by:
            return None
        return self._due()

    def _due(self) -> str | None:
        """A step `step` hands on: nothing is recorded after a stop; the age bound of a new
        block (it began when the step before it ended, or as it ended after the start or an
        epoch event); the block handled when it holds `max_block` steps or its first is
        `max_delay_s` old."""
        pending = self._pending
        if self.stop_reason is not None:
            pending.clear()
            return self.stop_reason
        now = pending[-1][6]
        if self._flush_by == -math.inf:  # the first step after the start or an epoch event
            self._first_pending = pending[0][6]
            self._flush_by = self._first_pending + self.max_delay_s
        # the age counts from the start of the block's first step: a step longer than
        # max_delay_s is handled as it ends
        if len(pending) >= self.max_block or now >= self._flush_by:
            return self.flush()
        return None

    def _known_step_time(self) -> float | None:
        """`_step_time`, taken from the pending steps while no block was handled yet."""
        if self._step_time is None:
            self._time_steps([entry[6] for entry in self._pending])
        return self._step_time

    def _time_steps(self, marks: list[float]) -> None:
        """The step time the norm's and the statistics' shares are judged against, from the
        clock reads `step` takes anyway (each step's perf_counter as it was recorded, no other
        read: a read of the thread's CPU clock is a system call, ~0.85 us a read after a sleep
        here, with a call of `_due` every 8 steps to make it): the lower quartile of the gaps
        between a block's consecutive steps (a gap a busy neighbour stretched, or the
        validation before an epoch's first step, is left out: blocks end at each epoch
        event), smoothed over blocks."""
        if len(marks) < 2:
            return
        gaps = sorted([after - before for before, after in pairwise(marks)])
        took = gaps[(len(gaps) - 1) // 4]
        self._step_time = took if self._step_time is None else (
            0.8 * self._step_time + 0.2 * took)

    def flush(self) -> str | None:
        """Handle the pending steps as columns: one device read for all their numbers, their
        lines in one write (`stream.step_lines`), and the block (a `StepBlock`) queued for the
        detectors (`judge`: `DetectorSubscriber.on_steps`, the same findings and state as event
        by event, in order). Returns the stop reason, if any."""
        if not self._pending or self.writer is None:
            return self.stop_reason
        started = time.perf_counter()  # for bench/integrations.py: one clock read, not a syscall
        pending, self._pending = self._pending, []
        count = len(pending)
        epochs, steps, losses, lrs, norms, layers, marks = map(list, zip(*pending, strict=True))
        self.last_epoch, self.last_step, self.last_lr = epochs[-1], steps[-1], lrs[-1]
        # the last step began as the one before it ended (the block's first: see _due)
        self._prev_record = marks[-2] if count > 1 else self._first_pending
        # the next block's first step begins as this one's last ends
        self._last_record = self._first_pending = marks[-1]
        self._flush_by = marks[-1] + self.max_delay_s
        self._due_at = self.max_block if self.stop_reason is None else 0  # (a stop: _due)
        self._time_steps(marks)
        sampled = [i for i in range(count) if norms[i] is not None or layers[i] is not None]
        tensors = [x for x in losses if x.__class__ is not float and isinstance(x, torch.Tensor)]
        read = len(tensors)
        for i in sampled:
            norm, stats = norms[i], layers[i]
            if isinstance(norm, list):
                tensors.extend(norm)
            elif isinstance(norm, torch.Tensor):
                tensors.append(norm.reshape(()) if norm.dim() else norm)
            if isinstance(stats, LayerStats):
                if stats.norms is not norm:  # HF: its own global norm, our per-layer ones
                    tensors.extend(stats.norms)
                tensors.extend(stats.nonzero)
        values = _read(tensors)
        if read == count:  # every loss a tensor (a callback's)
            losses = values[:count]
        elif read:
            taken = iter(values).__next__
            losses = [x if x.__class__ is float or not isinstance(x, torch.Tensor) else taken()
                      for x in losses]
        take = iter(values[read:]).__next__
        try:
            nonfinite = not math.isfinite(sum(losses))  # a loss or gradient norm: judge at once
        except TypeError:
            nonfinite = True
        if nonfinite:  # (a sum of finite losses may overflow)
            nonfinite = any(loss - loss != 0.0 for loss in losses)  # NaN or inf (inf-inf: NaN)
        grad_norms: list[Any] = [None] * count
        tables: list[Any] = [None] * count
        for i in sampled:
            norm, stats = norms[i], layers[i]
            parts: list[float] = []
            if isinstance(norm, list):
                parts = [take() for _ in norm]
                norm = math.hypot(*parts)
                if math.isinf(norm) and any(map(math.isnan, parts)):
                    norm = math.nan  # as torch's norm: NaN wins
            elif isinstance(norm, torch.Tensor):
                norm = take()
            if norm is not None:
                grad_norms[i] = norm
                if norm - norm != 0.0:
                    nonfinite = True
            if isinstance(stats, LayerStats):
                if stats.norms is not norms[i]:
                    parts = [take() for _ in stats.norms]
                tables[i] = stats.table(parts, [take() for _ in stats.nonzero])
            elif stats:
                tables[i] = dict(stats)
        to_wall = time.time() - time.perf_counter()
        block = StepBlock(epochs, steps, losses, lrs, grad_norms, tables,
                          [mark + to_wall for mark in marks])
        lines = step_lines(epochs, steps, losses, lrs, grad_norms, block.times)
        for i in sampled:
            if tables[i] is not None:
                lines[i] = None
        if None in lines:
            lines = [line_of(block[i]) if line is None else line for i, line in enumerate(lines)]
        if self._holding:
            self._held = lines  # type: ignore[assignment]
        else:
            self.writer.write_lines(lines)  # type: ignore[arg-type]
        self._losses.extend(losses)
        unjudged = self._unjudged
        if not unjudged:
            self._first_unjudged = marks[0]
        unjudged.append((block, marks))
        self._unjudged_steps += count
        if (nonfinite or self._unjudged_steps >= self.max_unjudged
                or marks[-1] - self._first_unjudged >= JUDGE_DELAY_S):
            self.judge()
        self.handled += count
        self.handling_s += time.perf_counter() - started
        return self.stop_reason

    def judge(self) -> str | None:
        """Run the detectors over the written events not judged yet, in order: the blocks of
        steps between two epoch events as one (`DetectorSubscriber.on_steps`: the same
        findings and state as event by event), each epoch event (`on_event`). Returns the stop
        reason, if any."""
        queued, self._unjudged = self._unjudged, []
        self._unjudged_steps = 0
        detectors, start = self.detectors, 0
        while start < len(queued):
            item, marks = queued[start]
            if marks is None:  # an epoch event
                reason = detectors.on_event(item)  # type: ignore[arg-type]
                if reason is not None and self.stop_reason is None:
                    self.stop_reason, self.stop_step = reason, item.get("step")
                    self._due_at = 0  # nothing is recorded after a stop (_due)
                start += 1
                continue
            end = start + 1
            while end < len(queued) and queued[end][1] is not None:
                end += 1
            block = StepBlock.join([item for item, _ in queued[start:end]])  # type: ignore[misc]
            # columns when most steps carry no gradient norm (Lightning's sampled ones: the
            # detectors take those in bulk), else the dicts (HF: a norm on every step)
            sparse = block.grad_norms.count(None) * 2 > len(block)
            hit = detectors.on_steps(block if sparse else block.events)
            if hit is not None and self.stop_reason is None:
                index, self.stop_reason = hit
                self._due_at = 0
                at = [mark for _, part in queued[start:end] for mark in part][index]
                self.stop_step = block.steps[index]
                # the bound (class docstring): steps <= max_block - 1 and
                # seconds < max_delay_s + last_step_seconds
                now = self._last_record if self._last_record is not None else at
                self.stop_lag = {"steps": self.last_step - self.stop_step, "seconds": now - at,
                                 "last_step_seconds": now - self._prev_record}
            start = end
        return self.stop_reason

    def epoch(self, *, epoch: int, step: int, val_loss: float | None,
              val: Mapping[str, float],
              state_dict: Callable[[], Mapping[str, torch.Tensor]] | None = None,
              model: nn.Module | None = None) -> str | None:
        """The end of epoch `epoch` with its val values; the train loss is the mean of the
        epoch's step losses; with `train_rows` and `model`, `train` and `train_eval_loss` are
        measured on those rows (`TrainRows`). With checkpoints on, `state_dict()` is saved
        (never non-finite weights: a diverged epoch keeps the previous best/last)."""
        # every step before the epoch event, handled and written before it: their lines in
        # the epoch line's write (one write and flush an epoch, not two)
        self._holding = True
        try:
            self.flush()
        finally:
            self._holding = False
        self._last_record = None  # validation is no step: the next epoch's first starts anew
        self._flush_by = -math.inf
        if self.stop_reason is not None:
            self._write_held()
            return self.stop_reason
        fitted = (self.train_rows.measure(model)
                  if self.train_rows is not None and model is not None else None)
        # (an epoch with no step recorded, Lightning's training_step returning None, has no
        # train loss: missing, not a NaN that would stop training as nan_loss)
        train_loss = sum(self._losses) / len(self._losses) if self._losses else None
        self._losses = []
        value = val.get(self.metric)
        # the engine's rule: the goal metric decides, a tie goes to the lower val loss
        improved = value is not None and improves(value, val_loss, self.best_metric,
                                                  self.best_loss, self.greater_is_better)
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
            self.best_metric, self.best_epoch, self.best_loss = value, epoch, val_loss
        self.last_epoch, self.last_step = epoch, step
        # an epoch without validation (Lightning's check_val_every_n_epoch, no val loader) or
        # whose val loss was not logged has no `val_loss`: missing, not NaN (a NaN stops
        # training: nan_loss); the baseline gate names the epochs without the goal metric
        event = {"type": "epoch", "epoch": epoch, "step": step,
                 **({} if train_loss is None else {"train_loss": train_loss}),
                 **({} if val_loss is None else {"val_loss": val_loss}), "val": dict(val),
                 "lr": self.last_lr, "wall_time": time.perf_counter() - self._epoch_started,
                 "peak_mem_mb": peak_mem_mb(_CPU), "checkpoint": name,
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

    def goal_logged(self, val: Mapping[str, float], hint: str) -> None:
        """Warn once when an evaluation's values (`val`, by metric) hold no goal metric: the
        best checkpoint, the goal and the detectors that read it go without it (and inside an
        mlt run the baseline gate fails `val_metric_every_epoch`). `hint` says where the
        framework takes the name from."""
        if self.metric in val or self._goal_warned:
            return
        self._goal_warned = True
        warnings.warn(f"mlt: the evaluation logged no {self.metric!r} (the goal metric) but "
                      f"{sorted(val) or 'no metric'}; {hint}", RuntimeWarning, stacklevel=3)

    def end(self, reason: str | None = None,
            state_dict: Callable[[], Mapping[str, torch.Tensor]] | None = None) -> None:
        """Close the stream with the stop reason (a detector's, else `reason`, else
        "completed") and write `findings.json`; with `save_final`, the weights at the end go
        to `checkpoints/final.pt` (mlt's determinism check compares them). Safe to call twice."""
        if self.writer is None:
            return
        try:
            self._write_held()  # (an epoch's end that raised before its line)
            self.flush()
            self.judge()
            self._ckpts.wait()  # the last epoch's checkpoint is on disk (or its error raised)
            if self.save_final and state_dict is not None:
                weights = {k: v.detach().cpu() for k, v in state_dict().items()}
                write_atomic(self.run_dir / "checkpoints" / "final.pt", serialize(
                    {"format": CHECKPOINT_FORMAT, "model": weights, "step": self.last_step}))
        finally:
            why = self.stop_reason or reason or "completed"
            fields = {} if self.stop_step is None else {"stop_step": self.stop_step}
            # the end event reaches the detectors as in mlt's loop and `mlt diagnose` (a run
            # whose budget ran out is judged at its end: underfitting's end rule)
            self.detectors.on_event({"type": "end", "reason": why, "epoch": self.last_epoch,
                                     "step": self.last_step, **fields})
            self.writer.end(reason=why, epoch=self.last_epoch, step=self.last_step, **fields)
            self.writer.close()
            self.writer = None
            if self._sync is not None:
                self._sync_stop.set()
                self._sync.join()
                self._sync = None
            self._fsync_stream()
            os.close(self._stream_fd)
            self._stream_fd = -1
        atomic_write_text(self.run_dir / FINDINGS_FILE, json.dumps(encode_json({
            "stop_reason": self.stop_reason, "stop_step": self.stop_step,
            "last_step": self.last_step, "stop_lag": self.stop_lag,
            "findings": [f.to_dict() for f in self.findings]}), indent=2) + "\n")

    def _write_held(self) -> None:
        lines, self._held = self._held, []
        if lines and self.writer is not None:
            self.writer.write_lines(lines)

    def _emit(self, event: dict[str, Any]) -> str | None:
        """Write `event` (after the step lines `flush` held back: one write) and judge it, or
        queue it behind the events not judged yet."""
        assert self.writer is not None, "start() must come first"
        event["time"] = time.time()
        lines = self._held
        if lines:
            self._held = []
            lines.append(line_of(event))
            self.writer.write_lines(lines)
        else:
            self.writer.write(event)
        if self._unjudged:  # after the steps before it (MAX_UNJUDGED)
            self._unjudged.append((event, None))
            if any(_is_nonfinite(event.get(k)) for k in ("train_loss", "val_loss")):
                return self.judge()
            return None
        reason = self.detectors.on_event(event)
        if reason is not None and self.stop_reason is None:
            self.stop_reason, self.stop_step = reason, event.get("step")
            self._due_at = 0
        return reason

    # -- durability ---------------------------------------------------------------------------

    def _fsync_stream(self) -> None:
        if self._stream_fd >= 0:
            with contextlib.suppress(OSError):
                os.fsync(self._stream_fd)

    def _sync_later(self) -> None:
        """fsync the stream on a thread, within `SYNC_EVERY_S` of each epoch event (~0.1 ms of
        CPU and a few ms of I/O that would otherwise stall the loop): one thread for the run
        that wakes on its own clock and syncs when an epoch event was written since its last
        fsync. The loop only sets a flag (waking the thread at each epoch cost the loop ~8 us
        of CPU an epoch cold, ~1 us a step on the bench's 17-step epochs under load). The
        lines are already with the OS (a killed process loses none of them); this makes them
        survive a power loss. A daemon: a script that dies without `end` is not kept alive by
        it; `end` fsyncs the closed stream itself."""
        self._unsynced = True
        if self._sync is None:
            self._sync_stop.clear()
            self._sync = threading.Thread(target=self._sync_loop, name="mlt-stream-fsync",
                                          daemon=True)
            self._sync.start()

    def _sync_loop(self) -> None:
        while not self._sync_stop.wait(SYNC_EVERY_S):
            if self._unsynced:
                self._unsynced = False  # (an event written from here on: the next round)
                self._fsync_stream()


# -- several processes (torch.distributed) ------------------------------------------------------


def world_size() -> int:
    """The processes of the `torch.distributed` group, 1 when there is none."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_first_process() -> bool:
    """Process 0 of the `torch.distributed` group (the one that writes), or the only one."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def any_process(flag: bool, device: Any = None) -> bool:
    """`flag` or-ed over every process of the `torch.distributed` group (an all-reduce, MAX,
    of one number on `device`: the CPU for gloo, the process's GPU for NCCL): the way process
    0's stop reaches the others at the same step. Every process must call it at the same
    points; with one process it is `flag`, with no collective."""
    if world_size() <= 1:
        return flag
    tensor = torch.tensor([int(flag)], device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())


def _read(tensors: list[torch.Tensor]) -> list[float]:
    """The numbers of many 0-d tensors in one device read (one stack, one transfer); on the
    CPU, where there is nothing to wait for, each is read as it is (a stack of small tensors
    costs more than reading them); tensors on several devices or of odd shapes one by one."""
    if not tensors:
        return []
    if all(t.is_cpu for t in tensors):
        with contextlib.suppress(RuntimeError):  # one of odd shape: read below
            return [float(t.item()) for t in tensors]
    try:
        return torch.stack(tensors).float().tolist()
    except RuntimeError:
        return [float(t.detach().float().reshape(-1)[0]) for t in tensors]


def _is_nonfinite(value: Any) -> bool:
    return isinstance(value, float) and value - value != 0.0


def _all_finite(tensors: Iterable[torch.Tensor]) -> bool:
    floats = [t for t in tensors if t.is_floating_point()]
    return not floats or bool(torch.isfinite(torch.stack(
        torch._foreach_norm(floats, math.inf))).all())


def load_checkpoint_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The `state_dict` a callback saved (`checkpoints/best.pt`): for a `load_model`."""
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    return payload["model"]
