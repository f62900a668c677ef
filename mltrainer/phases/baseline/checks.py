"""Auto checks of the baseline gate."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from mltrainer.gates import CheckResult, GateContext, check
from mltrainer.phases.baseline.outcome import BaselineOutcome

Ctx = GateContext[BaselineOutcome]  # what every check here reads


def _run_dir(ctx: Ctx) -> Path:
    return ctx.project.root / ctx.outcome.run.dir


@check("all_losses_finite")
def all_losses_finite(ctx: Ctx, item: dict[str, Any]) -> CheckResult:
    from mltrainer.stream import iter_stream

    steps = bad = 0
    first_bad: dict[str, Any] | None = None
    for ev in iter_stream(_run_dir(ctx) / "metrics.jsonl"):
        values = []
        if ev["type"] == "step":
            steps += 1
            values = [ev.get("loss")]
        elif ev["type"] == "epoch":
            values = [ev.get("train_loss"), ev.get("val_loss")]
        if any(v is None or not math.isfinite(v) for v in values):
            bad += 1
            first_bad = first_bad or {"epoch": ev.get("epoch"), "step": ev.get("step")}
    # A detector stop (only nan_loss stops a run) is a diverged run even when every logged loss
    # is finite (the rule also reads the gradient norm): its config must not open the fast path.
    stopped = ctx.outcome.run.stopped_reason or ""
    return CheckResult(bad == 0 and steps > 0 and not stopped.startswith("detector:"),
                       {"steps": steps, "non_finite": bad, "first_non_finite": first_bad,
                        "stopped_reason": stopped or None})


@check("val_metric_every_epoch")
def val_metric_every_epoch(ctx: Ctx, item: dict[str, Any]) -> CheckResult:
    metric = ctx.cfg.goal.metric
    history = ctx.outcome.history
    missing = [h["epoch"] for h in history
               if not isinstance(h.get("val", {}).get(metric), (int, float))
               or not math.isfinite(h["val"][metric])]
    return CheckResult(bool(history) and not missing,
                       {"epochs": len(history), "metric": metric, "missing_epochs": missing})


@check("beats_trivial_baseline")
def beats_trivial_baseline(ctx: Ctx, item: dict[str, Any]) -> CheckResult:
    """Greater-is-better metrics: best − baseline ≥ margin. rmse/mae: relative reduction ≥
    margin."""
    metric, margin = ctx.cfg.goal.metric, float(item.get("threshold", 0.0))
    best = ctx.outcome.best_metric
    base = ctx.outcome.trivial_baseline.get(metric)
    if best is None or base is None or not math.isfinite(best):
        return CheckResult(False, {"metric": metric, "best": best, "trivial_baseline": base})
    if ctx.cfg.greater_is_better:
        gain, how = best - base, "absolute gain"
    else:
        gain, how = (base - best) / base if base else 0.0, "relative reduction"
    return CheckResult(gain >= margin, {"metric": metric, "best": best, "trivial_baseline": base,
                                        how.replace(" ", "_"): round(gain, 6), "margin": margin})


@check("checkpoint_reproduces")
def checkpoint_reproduces(ctx: Ctx, item: dict[str, Any]) -> CheckResult:
    reload = ctx.outcome.reload
    return CheckResult(bool(reload.get("identical")), dict(reload))


@check("run_recorded")
def run_recorded(ctx: Ctx, item: dict[str, Any]) -> CheckResult:
    run_dir = _run_dir(ctx)
    wanted = ["config.resolved.yaml", "env.json", "metrics.jsonl", "checkpoints/best.pt",
              "checkpoints/last.pt"]
    missing = [w for w in wanted if not (run_dir / w).is_file()]
    epochs = sorted(p.name for p in (run_dir / "checkpoints").glob("epoch-*.pt"))
    return CheckResult(not missing, {"run": ctx.outcome.run.dir, "missing": missing,
                                     "epoch_checkpoints": len(epochs)})


@check("goal_met")
def goal_met(ctx: Ctx, item: dict[str, Any]) -> CheckResult:
    return CheckResult(ctx.outcome.goal_met, {
        "metric": ctx.cfg.goal.metric, "best": ctx.outcome.best_metric,
        "target": ctx.cfg.goal.target,
        "path": "fast path to `mlt finalize` open" if ctx.outcome.goal_met
        else "goal not met: `mlt diagnose` is next"})
