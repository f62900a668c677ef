"""The training loop: `Trainer(cfg, bundle, run_dir, ...).fit(resume=None) -> RunResult`.

Per step: one `TrainStep` (shared with `determinism_probe`) and one step event, handled in
blocks of steps (`_flush_steps`: the block's lines in one write, `stream.block_lines`, the
per-step writer's bytes; the subscribers with `on_steps`, the detectors, given the block as
one `StepBlock`). Per epoch: val loss and metrics, the same on a fixed subset of the
training rows (`train_subset`), best/early-stopping bookkeeping, one checkpoint, one epoch
event. A subscriber's non-None return stops the loop right there with
that reason; so does SIGINT/SIGTERM (reason "interrupted", after writing `interrupt.pt`).

Step blocks: a block is handled when it holds `STEP_BLOCK` steps or its first is
`STEP_BLOCK_S` old, at the epoch's last step, and at once on a step whose loss or gradient norm
is not finite (what `nan_loss`, the one detector that stops training, fires on: it stops
training at that very step, as event by event), on a Ctrl-C/SIGTERM and on a per-step
subscriber's stop (a subscriber without `on_steps` gets each step event as the step ends,
before its line is written). Every stop, checkpoint and epoch event comes after the steps
before it are written and judged, so checkpoints hold the subscribers' state of every step
before them (exact resume); an exception writes the pending lines before its end event. A
process killed outright (kill -9, the OOM killer, a power loss) loses the lines of the block
in progress: at most `STEP_BLOCK` finished steps and at most `STEP_BLOCK_S` plus one step of
them (one line a step before: none), all after the last checkpoint (a resume re-runs them).
The other detectors' findings come at the block's end, carrying the step they refer to.

Resuming restores model, optimiser, schedule, scaler, early stopping, history, every RNG (last,
after everything that draws from them was built) and the position inside the epoch, so on the
CPU a resumed run ends with parameters bitwise equal to an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from mltrainer.config import MltConfig
from mltrainer.detectors import StepBlock, step_event
from mltrainer.engine.checkpoint import (
    CheckpointWriter,
    epoch_name,
    load_checkpoint,
    remove_stale_temporaries,
)
from mltrainer.engine.devices import choose_device, peak_mem_mb, reset_peak_memory
from mltrainer.engine.distributed import DistContext, check_world_size
from mltrainer.engine.inference import evaluate, evaluation_data
from mltrainer.engine.metrics import improves
from mltrainer.engine.precision import is_out_of_memory, out_of_memory_error
from mltrainer.engine.result import RunResult
from mltrainer.engine.runfolder import (
    infer_root,
    refuse_reusing,
    refuse_rewriting_history,
    set_aside_lost_events,
    write_run_files,
)
from mltrainer.engine.runstate import (
    Progress,
    best_val_loss,
    restore_training,
    training_payload,
)
from mltrainer.engine.seeding import deterministic_mode, nondeterministic_op_error
from mltrainer.engine.signals import InterruptFlag, catch_interrupts
from mltrainer.engine.step import (
    TrainingParts,
    build_training,
    check_bundle,
    parameters_finite,
    target_scale_of,
)
from mltrainer.engine.stopping import EarlyStopping
from mltrainer.errors import CheckpointError, ConfigError
from mltrainer.stream import BLOCK_DELAY_S, BLOCK_STEPS, MetricWriter, block_lines
from mltrainer.tracking import trackers_for


class Subscriber(Protocol):
    """Receives every event. A subscriber may also have `state_dict() -> dict` (strict JSON)
    and `load_state_dict(state)`: then its state goes into every checkpoint and is restored on
    resume (matched by class), so a resumed run's detectors see what an uninterrupted one's do.
    """

    def on_event(self, event: dict[str, Any]) -> str | None:
        """Called with every event, in order; a non-None return stops training with it as
        the stop reason (e.g. "detector:nan_loss"). The return value for "end" is ignored.

        A subscriber with `on_steps(block) -> (index, reason) | None` gets the step events
        in blocks instead (a `StepBlock`, after their lines are written; see the module doc),
        every other event here; a stop it returns (the index of the step in the block, the
        reason) stops training at once, at the block's last step."""


# A block of steps is handled once it holds this many or its first is this old (the module
# doc): `stream.BLOCK_STEPS` and `BLOCK_DELAY_S`, the callbacks' bounds too, for the same
# reason. Right after a training step every object the event touches is a cache miss: one
# step's line cost ~17 us to format and ~20 us to write there, its dispatch and detectors
# ~0.1 ms (issue 16's 5 ms steps); a block pays those misses once.
STEP_BLOCK = BLOCK_STEPS
STEP_BLOCK_S = BLOCK_DELAY_S


# Rows of the training split re-evaluated at every epoch's end for the train metrics
# (`train_subset`): at least this many (or all of train), and beyond it at most one
# TRAIN_EVAL_SHARE-th of train.
TRAIN_EVAL_MIN_ROWS = 2048
TRAIN_EVAL_SHARE = 32


def train_subset(n_train: int, n_val: int, seed: int, *, items: bool = False) -> np.ndarray:
    """The training rows whose loss and metrics every epoch event reports under `train`.

    Why a fixed subset evaluated at the epoch's end, and not the metrics accumulated over the
    epoch's batches: accumulated numbers mix the model of every step (the untrained start of
    epoch 1 included) and are taken in train mode (dropout on, batch statistics), so a train
    vs val gap measured from them is biased low exactly when it matters. The same rows, in eval
    mode, at the same moment as val, compare like with like.

    Size: as many rows as val (the two metrics then carry the same sampling noise), bounded
    by its cost: at most one TRAIN_EVAL_SHARE-th (1/32) of train, whose forward pass (about a
    third of a training step per row) then costs about 1 % of an epoch whatever the data's size
    (as many as val, with a 15 % val split, cost ~6 %: the per-epoch overhead of issue 16).
    Never fewer than TRAIN_EVAL_MIN_ROWS (or all of train): below that the train metric's own
    sampling error (0.011 for an accuracy near 0.5) would hide the gaps the overfitting rule
    looks for. The detectors weigh the subset's sampling error by its size (the start event's
    `n_train_eval`), so a smaller subset on large data makes a gap's bar higher by the noise
    it adds (at 2048 rows at most 2 x 0.011), not a false finding. Small data is unchanged:
    all of train up to 2048 rows, and as many rows as val while val is under 2048 rows or
    under a 32nd of train.

    Item data (`items`: images, text, a Dataset) gets no more rows than val, not even the
    floor: each row is a forward pass of a real model (and a decode in epoch 1), and the floor
    would add up to a third of an epoch on a small data set to cut the gap's noise by at most
    a factor sqrt(2) (val's noise stays). Drawn from its own generator, so the global RNG (and
    with it the training trajectory) is untouched.
    """
    share = -(-n_train // TRAIN_EVAL_SHARE)
    rows = min(n_train, max(TRAIN_EVAL_MIN_ROWS, min(n_val, share)))
    if items:
        rows = min(rows, n_val)
    if rows == n_train:
        return np.arange(n_train)
    return np.sort(np.random.default_rng(seed).choice(n_train, size=rows, replace=False))


class Trainer:
    """One training run into `run_dir` (usually `Project.new_run_dir(kind)`).

    `bundle` is the data layer's DataBundle or anything with its shape: `.spec`, `.train.X/.y`,
    `.val.X/.y` (X float32 (N, F), preprocessed; y class indices or float targets). The test
    split is never touched. `subscribers` receive every event (see `Subscriber`); `baseline`
    (the trivial baseline's val metrics) goes into the start event for the detectors. `root`
    is the project root for `python:` model factories and env.json (default: the parent of
    `runs/`). Configuration problems (fp16 on a CPU, a device that is not there, data that does
    not fit the spec) are refused here, before any work. `schedule_epochs` stretches the lr
    schedule over more epochs than the run trains (`LrSchedule`'s horizon; finalize's replay).

    `dist` (several processes under torchrun, `engine.distributed`) shards the batches, wraps
    the model in DDP and makes process 0 the only writer. `keep_checkpoints` overrides
    `training.keep_checkpoints` (optimize's trials keep only best and last).
    """

    def __init__(self, cfg: MltConfig, bundle: Any, run_dir: Path, *,
                 subscribers: Sequence[Subscriber] = (), baseline: dict[str, Any] | None = None,
                 kind: str = "baseline", root: Path | None = None,
                 background_checkpoints: bool = True, dist: DistContext | None = None,
                 keep_checkpoints: int | None = None, schedule_epochs: int | None = None
                 ) -> None:
        self.cfg = cfg
        self.schedule_epochs = schedule_epochs
        # item data: train augmentation as this run's config says (an optimize trial's)
        self.bundle = bundle.for_config(cfg) if hasattr(bundle, "for_config") else bundle
        self.run_dir = Path(run_dir)
        self.subscribers = list(subscribers)
        self.baseline = baseline
        self.kind = kind
        self.root = Path(root) if root is not None else infer_root(self.run_dir)
        self.dist = dist or DistContext()
        # refuse a missing GPU, fp16 on a CPU etc. before any work
        self.device_choice = choose_device(
            cfg.training, self.dist.local_rank if self.dist.active else None)
        self.device = self.device_choice.device
        check_bundle(bundle)
        if self.dist.is_main:  # tracking.report_to: trackers are subscribers too
            self.subscribers += trackers_for(cfg, self.run_dir, self.root)
        else:  # only process 0 watches and writes; the others follow its decisions
            self.subscribers = []
        self.keep_checkpoints = (keep_checkpoints if keep_checkpoints is not None
                                 else cfg.training.keep_checkpoints)
        self.fingerprint = cfg.fingerprint()
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.metric = cfg.goal.metric
        self._background = background_checkpoints
        self._writer: MetricWriter | None = None
        self._stream_fd = -1
        self._pending: list[tuple[Any, ...]] = []  # the steps not handled yet (_flush_steps)
        self._interrupt_written = False

    # -- the public entry point ---------------------------------------------------------------

    def fit(self, resume: Path | None = None) -> RunResult:
        """Train from scratch, or continue from the checkpoint `resume`; see the module doc.
        Returns with `stopped_reason` "interrupted" after SIGINT/SIGTERM (never raises for it).
        """
        if self.cfg.training.entrypoint:  # the project's own script trains (entrypoint.py)
            return self._fit_entrypoint(resume)
        started = time.perf_counter()
        self._interrupt_written = False
        ckpt = None
        if resume is not None:
            if self.dist.is_main:  # the other processes (maybe on other machines) get a copy
                ckpt = load_checkpoint(resume, expected_fingerprint=self.fingerprint)
                check_world_size(ckpt, self.dist.world_size, resume)
                refuse_rewriting_history(self.run_dir, Path(resume), ckpt)
                set_aside_lost_events(self.run_dir, ckpt)
            ckpt = self.dist.broadcast(ckpt)
        elif self.dist.is_main:
            refuse_reusing(self.run_dir)
        if self.dist.is_main:
            write_run_files(self.run_dir, self.cfg, self.root, str(self.device),
                            self._run_record())
            remove_stale_temporaries(self.ckpt_dir)
        with deterministic_mode() as flags:
            parts = build_training(self.cfg, self.bundle, self.root, self.device,
                                   dist=self.dist if self.dist.active else None,
                                   schedule_epochs=self.schedule_epochs)
            es = self.cfg.training.early_stopping
            stopper = EarlyStopping(es.patience, es.min_delta, self.cfg.greater_is_better)
            progress = (restore_training(ckpt, parts, stopper, self.subscribers,
                                         rank=self.dist.rank)
                        if ckpt is not None else Progress())
            try:
                reason = self._run(parts, progress, stopper, resume, ckpt, started)
            except RuntimeError as exc:
                if is_out_of_memory(exc):
                    raise self._out_of_memory() from None
                error = nondeterministic_op_error(exc)
                if error is None:
                    raise
                raise error from exc
        return self._result(progress, reason, flags, started)

    def _run_record(self) -> dict[str, Any]:
        """How this run trains, beyond the config: for env.json, the start event, the result."""
        tcfg = self.cfg.training
        return {
            "device": str(self.device), "device_requested": self.device_choice.requested,
            "device_notice": self.device_choice.notice, "precision": tcfg.precision,
            "compile": tcfg.compile, "grad_accum_steps": tcfg.grad_accum_steps,
            "world_size": self.dist.world_size, "backend": self.dist.backend,
            "effective_batch_size": tcfg.batch_size * tcfg.grad_accum_steps
            * self.dist.world_size,
        }

    def _out_of_memory(self) -> Exception:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        last = self.ckpt_dir / "last.pt"
        kept = str(last) if last.is_file() else None
        return out_of_memory_error(self.cfg.training, self.device, self.dist.world_size, kept)

    def _fit_entrypoint(self, resume: Path | None) -> RunResult:
        from mltrainer.engine.entrypoint import run_entrypoint

        if resume is not None:
            raise CheckpointError(
                f"{resume}: a training.entrypoint run cannot be resumed (its loop is the "
                "script's own)", hint="start a fresh run (without --resume)")
        if self.dist.active:
            raise ConfigError(
                "training.entrypoint runs the script once, as one process; --nproc/--nnodes "
                "start several copies of mlt's own loop",
                hint="drop --nproc (start several processes inside the script: Lightning's "
                "devices=, accelerate launch)")
        return run_entrypoint(self.cfg, self.bundle, self.run_dir, self.root,
                              subscribers=self.subscribers, baseline=self.baseline,
                              kind=self.kind, schedule_epochs=self.schedule_epochs)

    def _run(self, parts: TrainingParts, progress: Progress, stopper: EarlyStopping,
             resume: Path | None, ckpt: dict[str, Any] | None, started: float) -> str:
        """Open the stream and the checkpoint writer, run the loop, always end the stream."""
        val = evaluation_data(self.bundle.val, None, self.device, self.cfg.task)
        rows = train_subset(len(self.bundle.train.y), len(self.bundle.val.y), self.cfg.seed,
                            items=getattr(self.bundle.train, "is_lazy", False))
        train = evaluation_data(self.bundle.train, rows, self.device, self.cfg.task)
        if hasattr(parts.batches, "evaluate_too"):  # item data: the first epoch's training
            for part in (val[0], train[0]):  # workers read the evaluation inputs too
                parts.batches.evaluate_too(part)
        ckpts = CheckpointWriter(self.ckpt_dir, background=self._background,
                                 keep=self.keep_checkpoints, enabled=self.dist.is_main)
        # The stream is fsynced by the checkpoint writer's thread after each epoch's checkpoint
        # (an fsync costs ~1-2 ms here, a tenth of a digits epoch) and once at the end; every
        # line is flushed to the OS as it is written, so a kill -9 loses none of them.
        if self.dist.is_main:
            self._writer = MetricWriter(self.run_dir / "metrics.jsonl", write_start=False,
                                        fsync_every_epoch=False)
            self._stream_fd = os.open(self.run_dir / "metrics.jsonl", os.O_RDONLY)
        try:
            with catch_interrupts() as interrupt:
                start = self._start_event(parts, resume, ckpt, len(rows))
                reason = self._decide(self._emit(start), interrupt)
                if reason is None:
                    reason = self._loop(parts, progress, stopper, ckpts, interrupt,
                                        (val, train), started)
            ckpts.wait()
            epoch = progress.epoch + (1 if progress.position else 0)
            self._emit({"type": "end", "reason": reason, "epoch": epoch, "step": progress.step})
            self._fsync_stream()
            return reason
        except BaseException as exc:
            with contextlib.suppress(Exception):  # finished steps' lines before the end event
                self._flush_steps(judge=False)
            with contextlib.suppress(BaseException):
                ckpts.wait()
            with contextlib.suppress(Exception):
                why = "aborted" if isinstance(exc, KeyboardInterrupt) else (
                    f"error:{type(exc).__name__}")
                if self._writer is not None:
                    self._writer.end(reason=why, epoch=progress.epoch, step=progress.step)
            raise
        finally:
            if self._writer is not None:
                self._writer.close()
                os.close(self._stream_fd)

    # -- the loop -----------------------------------------------------------------------------

    def _loop(self, parts: TrainingParts, p: Progress, stopper: EarlyStopping,
              ckpts: CheckpointWriter, interrupt: InterruptFlag,
              splits: tuple[tuple[Any, ...], tuple[Any, ...]], started: float) -> str:
        tcfg = self.cfg.training
        spe = parts.batches.steps_per_epoch
        every = tcfg.grad_stats_every
        main = self._writer is not None  # process 0: it writes and watches the steps
        lockstep = self.dist.active  # every process decides at every step (one collective)
        step_subs = [s for s in self.subscribers if not hasattr(s, "on_steps")]
        pending = self._pending
        pending.clear()
        flush_by = 0.0
        while p.epoch < tcfg.epochs:
            epoch_no = p.epoch + 1
            if p.position == 0:
                p.order = parts.batches.new_order()
                p.loss_sum, p.loss_count, p.epoch_elapsed = 0.0, 0, 0.0
            epoch_start = time.perf_counter() - p.epoch_elapsed
            reset_peak_memory(self.device)
            reason: str | None = None
            for index in range(p.position, spe):
                xb, yb = parts.batches.batch(p.order, index)
                stats = parts.wants_layer_stats(p.step, every)
                out = parts.step(p.step, xb, yb, layer_stats=stats)
                loss, grad_norm = self._step_numbers(out)
                p.step, p.position, p.last_lr = p.step + 1, index + 1, out.lr
                p.loss_sum += loss
                p.loss_count += 1
                if main:
                    layers = None
                    if out.layer_stats is not None and out.layer_names is not None:
                        layers = {
                            name: {"grad_norm": norm, "zero_frac": zeros}
                            for name, (norm, zeros) in zip(
                                out.layer_names, out.layer_stats.tolist(), strict=True)
                        }
                    now = time.time()
                    row = (epoch_no, p.step, loss, out.lr, grad_norm, layers, now)
                    pending.append(row)
                    if len(pending) == 1:
                        flush_by = now + STEP_BLOCK_S
                    if step_subs:
                        reason = self._step_event(step_subs, row)
                    if (reason is not None or index == spe - 1 or len(pending) >= STEP_BLOCK
                            or now >= flush_by or loss - loss + grad_norm - grad_norm != 0.0
                            or interrupt.requested):  # the last: not finite (inf - inf: NaN)
                        reason = self._flush_steps() or reason
                if reason is None and not lockstep and not interrupt.requested:
                    continue
                reason = self._decide(reason, interrupt)
                if reason is not None:
                    if pending:  # another process's Ctrl-C: this one's steps before the stop
                        self._flush_steps()
                    p.epoch_elapsed = time.perf_counter() - epoch_start
                    self._save_midway(parts, p, stopper, ckpts, reason, started)
                    return reason

            scale = target_scale_of(self.bundle)
            val_loss, val_metrics = evaluate(parts.model, *splits[0][:2], parts.loss_fn,
                                             self.cfg.task, splits[0][2], scale)
            train_eval_loss, train_metrics = evaluate(parts.model, *splits[1][:2], parts.loss_fn,
                                                      self.cfg.task, splits[1][2], scale)
            value = val_metrics[self.metric]
            finite = parameters_finite(parts.model)
            improved = finite and improves(value, val_loss, p.best_metric, best_val_loss(p),
                                           self.cfg.greater_is_better)
            if improved:
                p.best_metric, p.best_epoch = value, epoch_no
            decision = stopper.update(value, val_loss)
            parts.schedule.on_epoch_end(value)
            train_loss = p.loss_sum / max(1, p.loss_count)
            p.epoch, p.position, p.order = epoch_no, 0, None
            p.history.append({"epoch": epoch_no, "train_loss": train_loss, "val_loss": val_loss,
                              "val": val_metrics, "train": train_metrics, "lr": p.last_lr})
            name = None
            if finite:  # never a checkpoint with non-finite weights: best/last stay as they were
                name = epoch_name(epoch_no)
                links = ["last.pt", "best.pt"] if improved else ["last.pt"]
                ckpts.save(self._payload(parts, p, stopper, started), name, exclusive=True,
                           links=links, after=self._fsync_stream)
            reason = self._decide(self._emit({
                "type": "epoch", "epoch": epoch_no, "step": p.step, "train_loss": train_loss,
                "val_loss": val_loss, "val": val_metrics, "train": train_metrics,
                "train_eval_loss": train_eval_loss, "lr": p.last_lr,
                "wall_time": time.perf_counter() - epoch_start,
                "peak_mem_mb": peak_mem_mb(self.device), "checkpoint": name,
                "best_epoch": p.best_epoch,
            }), interrupt)
            if reason is None and decision.should_stop:
                reason = "early_stopping"
            elif reason == "interrupted":
                self._save_midway(parts, p, stopper, ckpts, reason, started)
            if reason is not None:
                return reason
        return "completed"

    def _step_numbers(self, out: Any) -> tuple[float, float]:
        """The step event's loss (averaged over the processes: their gradients were averaged
        too) and gradient norm, as Python floats. On an accelerator one device sync for both
        (one stacked copy); on the CPU there is nothing to wait for and two reads cost a fifth
        of stacking them. The same float32 values either way."""
        loss = self.dist.mean_loss(out.loss).float()
        if loss.device.type == "cpu" and out.grad_norm.device.type == "cpu":
            return loss.item(), out.grad_norm.float().item()
        both = torch.stack([loss, out.grad_norm.float()]).tolist()
        return both[0], both[1]

    def _save_midway(self, parts: TrainingParts, p: Progress, stopper: EarlyStopping,
                     ckpts: CheckpointWriter, reason: str, started: float) -> None:
        """At an interrupt or a subscriber's stop: the exact position, if the weights are
        finite (a stop for a non-finite loss keeps the last finite checkpoints instead)."""
        if not parameters_finite(parts.model):
            return
        payload = self._payload(parts, p, stopper, started)
        if reason == "interrupted":
            ckpts.save(payload, "interrupt.pt", links=["last.pt"])
            self._interrupt_written = True
        else:
            ckpts.save(payload, "last.pt")

    # -- events -------------------------------------------------------------------------------

    def _fsync_stream(self) -> None:
        if self._stream_fd < 0:  # not process 0: no stream here
            return
        with contextlib.suppress(OSError):
            os.fsync(self._stream_fd)

    def _decide(self, reason: str | None, interrupt: InterruptFlag) -> str | None:
        """The stop reason every process agrees on (one collective under DDP): process 0's
        subscribers and any process's Ctrl-C/SIGTERM, ranked by `_with_interrupt`."""
        stop, interrupted = self.dist.agree(reason, interrupt.requested)
        if not stop:
            return None
        # a process other than 0 has no subscribers and never reports its reason
        return _with_interrupt(reason, interrupted) or "stopped_by_rank0"

    def _step_event(self, subscribers: list[Any], row: tuple[Any, ...]) -> str | None:
        """The step event of `row` to the subscribers without `on_steps`, as it ends."""
        event = step_event(*row)
        reason = None
        for sub in subscribers:
            answer = sub.on_event(event)
            if answer is not None and reason is None:
                reason = str(answer)
        return reason

    def _flush_steps(self, judge: bool = True) -> str | None:
        """Handle the pending steps as one `StepBlock`: their lines in one write and one flush
        (`stream.block_lines`: the bytes of one `MetricWriter.write` a step), then, with
        `judge`, the block to every subscriber with `on_steps`. Returns the first stop
        reason."""
        pending = self._pending
        if not pending or self._writer is None:
            return None
        block = StepBlock(*map(list, zip(*pending, strict=True)))
        pending.clear()
        self._writer.write_lines(block_lines(block))
        if not judge:
            return None
        reason = None
        for sub in self.subscribers:
            on_steps = getattr(sub, "on_steps", None)
            if on_steps is not None:
                hit = on_steps(block)
                if hit is not None and reason is None:
                    reason = str(hit[1])
        return reason

    def _emit(self, event: dict[str, Any]) -> str | None:
        event["time"] = time.time()
        if self._writer is None:  # not process 0: nothing is written or watched here
            return None
        self._writer.write(event)
        reason = None
        for sub in self.subscribers:
            answer = sub.on_event(event)
            if answer is not None and reason is None and event["type"] != "end":
                reason = str(answer)
        return reason

    def _start_event(self, parts: TrainingParts, resume: Path | None,
                     ckpt: dict[str, Any] | None, n_train_eval: int) -> dict[str, Any]:
        event: dict[str, Any] = {
            "type": "start", "run_id": self.run_dir.name, "task": self.cfg.task,
            "metric": self.metric, "greater_is_better": self.cfg.greater_is_better,
            "steps_per_epoch": parts.batches.steps_per_epoch, "epochs": self.cfg.training.epochs,
            "kind": self.kind, "device": str(self.device), "seed": self.cfg.seed,
            "n_train": len(self.bundle.train.y), "n_val": len(self.bundle.val.y),
            "n_train_eval": n_train_eval,  # the rows `train` and `train_eval_loss` are over
            "goal_target": self.cfg.goal.target, "config_fingerprint": self.fingerprint,
            **self._run_record(),
        }
        if self.schedule_epochs is not None:
            event["schedule_epochs"] = self.schedule_epochs
        if parts.scaler is not None:  # fp16: nan_loss bears the scaler's skipped overflows
            event["grad_scale"] = float(parts.scaler.get_scale())
        if parts.model_record is not None:
            event["model"] = parts.model_record
        if self.baseline is not None:
            event["baseline"] = self.baseline
        if target_scale_of(self.bundle) is not None:  # the losses' units: standardised
            event["target_scale"] = target_scale_of(self.bundle).to_dict()
        if ckpt is not None and resume is not None:
            event["resumed_from"] = {"checkpoint": str(resume), "epoch": int(ckpt["epoch"]),
                                     "step": int(ckpt["step"])}
        return event

    def _payload(self, parts: TrainingParts, p: Progress, stopper: EarlyStopping,
                 started: float) -> dict[str, Any]:
        meta = {"config_fingerprint": self.fingerprint, "run_id": self.run_dir.name,
                "kind": self.kind, "task": self.cfg.task, "model_kind": self.cfg.model.kind}
        return training_payload(parts, p, stopper, self.subscribers, meta=meta,
                                wall_time_s=p.wall_time_s + time.perf_counter() - started,
                                dist=self.dist)

    def _result(self, p: Progress, reason: str, flags: dict[str, Any], started: float
                ) -> RunResult:
        best = self.ckpt_dir / "best.pt"
        last = self.ckpt_dir / "last.pt"
        checkpoints: dict[str, str | None] = {
            "best": str(best) if best.is_file() else None,
            "last": str(last) if last.is_file() else None,
        }
        if self._interrupt_written:
            checkpoints["interrupt"] = str(self.ckpt_dir / "interrupt.pt")
        val = p.history[p.best_epoch - 1]["val"] if p.best_epoch else {}
        return RunResult(
            run_id=self.run_dir.name, run_dir=str(self.run_dir), best_epoch=p.best_epoch,
            best_metric=p.best_metric, val=dict(val), epochs_run=p.epoch,
            final_epoch=p.epoch + (1 if p.position else 0), final_step=p.step,
            stopped_reason=reason, device=str(self.device), checkpoints=checkpoints,
            wall_time_s=p.wall_time_s + time.perf_counter() - started,
            history=[dict(h) for h in p.history], kind=self.kind, metric=self.metric,
            deterministic=flags, device_notice=self.device_choice.notice,
            world_size=self.dist.world_size,
        )


def _with_interrupt(reason: str | None, interrupted: Any) -> str | None:
    """A Ctrl-C/SIGTERM outranks a subscriber's ordinary stop (an optimize trial's "pruned"),
    so the user's interrupt is never swallowed; a detector's stop (the weights may be bad)
    still outranks it. `interrupted`: a bool, or an InterruptFlag."""
    requested = getattr(interrupted, "requested", interrupted)
    if requested and (reason is None or not reason.startswith("detector:")):
        return "interrupted"
    return reason
