"""Phase 2, `mlt train-baseline`: train the configured model with the plan's seed, with the
detectors watching, and judge it against the trivial baseline and the goal."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from mltrainer.errors import CheckpointError, DataError, InterruptedRunError
from mltrainer.numbers import same_value
from mltrainer.phases.baseline.outcome import BaselineOutcome, RunSummary
from mltrainer.phases.plan.outcome import PlanOutcome
from mltrainer.runner import PhaseContext, ProgressForwarder

RUN_KIND = "baseline"


def latest_run_dir(runs_dir: Path, kind: str) -> Path | None:
    runs = sorted(p for p in runs_dir.glob(f"*-{kind}-*") if p.is_dir()) if runs_dir.is_dir() else []
    return runs[-1] if runs else None


def run(ctx: PhaseContext) -> BaselineOutcome:
    from mltrainer.data import prepare_data
    from mltrainer.engine import Trainer, find_resume_checkpoint

    cfg, project = ctx.cfg, ctx.project
    plan = PlanOutcome.of(ctx.state)
    bundle = prepare_data(cfg, project.root, audit=ctx.audit)
    if bundle.fingerprints != plan.data.fingerprints:
        raise DataError(
            "the data no longer matches what `mlt plan` recorded (split hashes differ)",
            hint="re-run `mlt plan`",
        )
    resume = None
    if ctx.options.get("resume"):
        run_dir = latest_run_dir(project.runs_dir, RUN_KIND)
        if run_dir is None:
            raise CheckpointError(
                f"nothing to resume: no {RUN_KIND} run under {project.runs_dir}",
                hint="run `mlt train-baseline` without --resume to start one",
            )
        resume = find_resume_checkpoint(run_dir)
    else:
        run_dir = project.new_run_dir(RUN_KIND)

    detectors = _online_detectors(ctx, plan)
    subscribers = [s for s in (detectors, ProgressForwarder(ctx.progress)) if s is not None]
    result = Trainer(cfg, bundle, run_dir, subscribers=subscribers,
                     baseline=plan.trivial_baseline, kind=RUN_KIND,
                     root=project.root).fit(resume=resume)
    if result.stopped_reason == "interrupted":
        raise InterruptedRunError(
            f"training interrupted at epoch {result.final_epoch} (step {result.final_step}); "
            f"checkpoint saved in {project.relative(run_dir)}/checkpoints",
            hint="continue with `mlt train-baseline --resume`",
        )
    return summarize_run(ctx, result, bundle, detectors)


def _online_detectors(ctx: PhaseContext, plan: PlanOutcome) -> Any:
    from mltrainer.detectors import DetectorContext, DetectorSubscriber, build_detectors

    dctx = DetectorContext(
        task=ctx.cfg.task, metric=ctx.cfg.goal.metric, greater_is_better=ctx.cfg.greater_is_better,
        steps_per_epoch=None, baseline=plan.trivial_baseline,
    )
    return DetectorSubscriber(build_detectors(dctx, ctx.cfg.diagnose.thresholds))


def summarize_run(ctx: PhaseContext, result: Any, bundle: Any, detectors: Any
                  ) -> BaselineOutcome:
    """The outcome the gate judges: the run, its curves, the reload check, the goal."""
    from mltrainer.engine import compute_metrics, load_model_from_checkpoint, predict

    cfg, metric = ctx.cfg, ctx.cfg.goal.metric
    best = result.best_metric
    reload: dict[str, Any] = {"checkpoint": None}
    best_ckpt = result.checkpoints.get("best")
    if best_ckpt:
        model = load_model_from_checkpoint(Path(best_ckpt), cfg, bundle.spec,
                                           root=ctx.project.root)
        outputs = predict(model, bundle.val.X)
        again = compute_metrics(cfg.task, bundle.val.y, outputs)
        reload = {"checkpoint": ctx.project.relative(Path(best_ckpt)),
                  "recorded": result.val, "reloaded": again,
                  "identical": all(same_value(again.get(k), v) for k, v in result.val.items())}
    goal_met = best is not None and math.isfinite(best) and (
        best >= cfg.goal.target if cfg.greater_is_better else best <= cfg.goal.target)
    findings = [f.to_dict() for f in getattr(detectors, "findings", [])]
    return BaselineOutcome(
        run=RunSummary(id=result.run_id, best_epoch=result.best_epoch, val=result.val,
                       stopped_reason=result.stopped_reason, epochs_run=result.epochs_run,
                       wall_time_s=result.wall_time_s, device=result.device,
                       dir=ctx.project.relative(Path(result.run_dir))),
        history=result.history,
        metric=metric,
        best_metric=best,
        trivial_baseline=PlanOutcome.of(ctx.state).trivial_baseline,
        goal={"metric": metric, "target": cfg.goal.target},
        goal_met=bool(goal_met),
        reload=reload,
        online_findings=findings,
        detector_stop=result.stopped_reason.startswith("detector:"),
    )
