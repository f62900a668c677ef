"""Phase 2, `mlt train-baseline`: train the configured model with the plan's seed, with the
detectors watching, and judge it against the trivial baseline and the goal."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from mltrainer.errors import CheckpointError, DataError
from mltrainer.numbers import number, same_value
from mltrainer.phases.baseline.outcome import BaselineOutcome, RunSummary
from mltrainer.phases.plan.outcome import PlanOutcome
from mltrainer.runner import PhaseContext, ProgressForwarder

RUN_KIND = "baseline"
ENTRYPOINT_TOLERANCE = 1e-6  # relative: float32 rounding of a logged value, never a lost row


def run(ctx: PhaseContext) -> BaselineOutcome:
    from mltrainer.data import prepare_data
    from mltrainer.engine import Trainer, find_resume_checkpoint
    from mltrainer.engine.entrypoint import run_dir_kept_on_script_failure
    from mltrainer.engine.launch import Launch
    from mltrainer.engine.runfolder import (
        latest_resumable,
        unfinished_run,
    )

    cfg, project = ctx.cfg, ctx.project
    launch = Launch.from_options(ctx.options, cfg)  # bad --nproc for this project: exit 2 now
    plan = PlanOutcome.of(ctx.state)
    bundle = prepare_data(cfg, project.root, audit=ctx.audit)
    if bundle.fingerprints != plan.data.fingerprints:
        raise DataError(
            "the data no longer matches what `mlt plan` recorded (split hashes differ)",
            hint="re-run `mlt plan`",
        )
    if cfg.training.entrypoint:  # load_model that cannot be imported: exit 2 before training
        from mltrainer.engine.entrypoint import entrypoint_loader

        entrypoint_loader(cfg, project.root)
    detectors = _online_detectors(ctx, plan)

    def train(run_dir: Path, resume: Path | None) -> Any:
        if launch.is_distributed:
            return train_distributed(ctx, cfg, run_dir, resume, launch, kind=RUN_KIND,
                                     baseline=plan.trivial_baseline, detectors=detectors,
                                     expected=plan.data.fingerprints)
        subscribers = [s for s in (detectors, ProgressForwarder(ctx.progress)) if s is not None]
        if cfg.training.entrypoint and ctx.progress is not None:
            subscribers.append(_EpochsNote(ctx.progress, cfg.training.epochs))
        return Trainer(cfg, bundle, run_dir, subscribers=subscribers,
                       baseline=plan.trivial_baseline, kind=RUN_KIND,
                       root=project.root).fit(resume=resume)

    if ctx.options.get("resume"):
        run_dir = latest_resumable(project.runs_dir, RUN_KIND)  # newest with a checkpoint
        if run_dir is None:
            raise CheckpointError(
                f"nothing to resume: no {RUN_KIND} run under {project.runs_dir}",
                hint="run `mlt train-baseline` without --resume to start one",
            )
        result = train(run_dir, find_resume_checkpoint(run_dir))
    else:
        stopped = None if cfg.training.entrypoint else unfinished_run(project.runs_dir, RUN_KIND)
        if stopped is not None and ctx.progress is not None:  # its epochs are not lost: said
            ctx.progress({"type": "note", "text": (
                f"{project.relative(stopped)} stopped without finishing (its checkpoints are "
                "kept); this starts a new run instead of continuing it "
                f"(`mlt train-baseline --resume{launch.flags()}` continues a stopped run)")})
        # gone again if refused (kept with the log of a script that failed)
        with run_dir_kept_on_script_failure(project, RUN_KIND) as run_dir:
            result = train(run_dir, None)
    where = f"training interrupted at epoch {result.final_epoch} (step {result.final_step})"
    if cfg.training.entrypoint:  # the script's own loop: it cannot be continued
        result.raise_if_interrupted(
            f"{where}; the run so far is kept in {project.relative(run_dir)}",
            hint="run `mlt train-baseline` again: a training.entrypoint run starts afresh "
            "(--resume continues mlt's own loop only)")
    result.raise_if_interrupted(
        f"{where}; checkpoint saved in {project.relative(run_dir)}/checkpoints",
        hint=f"continue with `mlt train-baseline --resume{launch.flags()}`")
    return summarize_run(ctx, result, bundle, detectors)


class _EpochsNote:
    """A note, as an entrypoint's run starts, when the script runs another number of epochs
    than `training.epochs` (its start event's `epochs`: hard-coded, or a `max_steps`):
    finalize retrains through the script for the best run's epoch count by setting
    `training.epochs`, and its gate finds a script that ignores it only then."""

    def __init__(self, progress: Any, epochs: int) -> None:
        self.progress, self.epochs = progress, epochs

    def on_event(self, event: dict[str, Any]) -> None:
        runs = event.get("epochs") if event.get("type") == "start" else None
        if isinstance(runs, int) and runs != self.epochs:
            self.progress({"type": "note", "text": (
                f"the script runs {runs} epochs but training.epochs is {self.epochs}: take "
                "the epoch count from context().config.training.epochs (no max_steps of its "
                "own), since finalize retrains through the script for the best run's epoch "
                "count by setting it, and mlt optimize's trials set it too")})


def _online_detectors(ctx: PhaseContext, plan: PlanOutcome) -> Any:
    from mltrainer.engine.worker import online_detectors

    return online_detectors(ctx.cfg, plan.trivial_baseline, ctx.cfg.diagnose.thresholds)


def train_distributed(ctx: PhaseContext, cfg: Any, run_dir: Path, resume: Path | None,
                      launch: Any, *, kind: str, baseline: dict[str, Any] | None = None,
                      detectors: Any = None, expected: dict[str, str] | None = None) -> Any:
    """Train under torchrun (process 0 writes `run_dir`), following the stream for progress;
    the detectors here see the finished stream (process 0's online ones stopped the run)."""
    from mltrainer.engine.launch import train_processes
    from mltrainer.stream import read_stream

    result = train_processes(
        cfg, run_dir, ctx.project.root, launch, kind=kind, resume=resume, baseline=baseline,
        detectors=cfg.diagnose.thresholds if detectors is not None else None,
        expected_fingerprints=expected, on_event=ProgressForwarder(ctx.progress).on_event)
    if detectors is not None:
        for event in read_stream(run_dir / "metrics.jsonl"):
            detectors.on_event(event)
    return result


def summarize_run(ctx: PhaseContext, result: Any, bundle: Any, detectors: Any
                  ) -> BaselineOutcome:
    """The outcome the gate judges: the run, its curves, the reload check, the goal."""
    from mltrainer.engine import compute_metrics, load_model_from_checkpoint, predict

    cfg, metric = ctx.cfg, ctx.cfg.goal.metric
    best = result.best_metric
    reload: dict[str, Any] = {"checkpoint": None}
    best_ckpt = result.checkpoints.get("best")
    if not best_ckpt and cfg.training.entrypoint:  # nothing to reload: say why, not a mismatch
        reload["missing"] = ("the script saved no checkpoints/best.pt: MltCallback() and "
                             "MltMonitor keep it inside an mlt run (not with "
                             "save_checkpoints=False), at an epoch event with finite weights")
    if best_ckpt:
        model = load_model_from_checkpoint(Path(best_ckpt), cfg, bundle.spec,
                                           root=ctx.project.root)
        outputs = predict(model, bundle.val.X, target_scale=bundle.spec.target_scale)
        again = compute_metrics(cfg.task, bundle.val.y, outputs)
        # an entrypoint's framework may log its values in float32 (Lightning's self.log does)
        tol = ENTRYPOINT_TOLERANCE if cfg.training.entrypoint else 0.0
        reload = {"checkpoint": ctx.project.relative(Path(best_ckpt)),
                  "recorded": result.val, "reloaded": again,
                  "identical": all(_same(again.get(k), v, tol) for k, v in result.val.items())}
        if tol:
            reload["relative_tolerance"] = tol
    goal_met = best is not None and math.isfinite(best) and (
        best >= cfg.goal.target if cfg.greater_is_better else best <= cfg.goal.target)
    findings = [f.to_dict() for f in getattr(detectors, "findings", [])]
    peaks, train_eval_rows = stream_facts(Path(result.run_dir) / "metrics.jsonl")
    return BaselineOutcome(
        run=RunSummary(id=result.run_id, best_epoch=result.best_epoch, val=result.val,
                       stopped_reason=result.stopped_reason, epochs_run=result.epochs_run,
                       wall_time_s=result.wall_time_s, device=result.device,
                       device_notice=result.device_notice, world_size=result.world_size,
                       precision=cfg.training.precision,
                       grad_accum_steps=cfg.training.grad_accum_steps,
                       train_eval_rows=train_eval_rows,
                       dir=ctx.project.relative(Path(result.run_dir))),
        history=[{**h, "peak_mem_mb": peaks.get(h["epoch"])} for h in result.history],
        metric=metric,
        best_metric=best,
        trivial_baseline=PlanOutcome.of(ctx.state).trivial_baseline,
        goal={"metric": metric, "target": cfg.goal.target},
        goal_met=bool(goal_met),
        reload=reload,
        online_findings=findings,
        detector_stop=result.stopped_reason.startswith("detector:"),
    )


def stream_facts(stream: Path) -> tuple[dict[int, Any], int | None]:
    """From the run's metric stream, in one pass: each epoch's peak device memory (MiB; a
    measurement, so it is kept out of the run's history, which a resume reproduces exactly)
    and the number of training rows the train metrics were measured on (the start event's
    `n_train_eval`; None when the run measured none)."""
    from mltrainer.stream import read_stream

    peaks: dict[int, Any] = {}
    train_eval_rows = None
    for e in read_stream(stream) if stream.is_file() else ():
        if e["type"] == "epoch":
            peaks[e["epoch"]] = e.get("peak_mem_mb")
        elif e["type"] == "start" and e.get("n_train_eval") is not None:
            train_eval_rows = int(e["n_train_eval"])
    return peaks, train_eval_rows


def _nan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)


def _same(again: Any, recorded: Any, tol: float) -> bool:
    """Equal (NaN equal to NaN), or within a relative `tol` when one is given."""
    if same_value(again, recorded):
        return True
    a, b = number(again), number(recorded)
    return tol > 0 and a is not None and b is not None and math.isclose(a, b, rel_tol=tol,
                                                                        abs_tol=tol)
