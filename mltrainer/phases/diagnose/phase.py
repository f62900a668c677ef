"""Phase 3, `mlt diagnose`: run the detectors over the baseline run's metric stream (or any
stream given with `--metrics FILE`), attach each finding's playbook and turn its structured
recommendations into concrete config changes and search ranges for `mlt optimize`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mltrainer.errors import BadInputError, StateCorruptError
from mltrainer.phases.baseline.outcome import BaselineOutcome
from mltrainer.phases.diagnose.outcome import DiagnoseOutcome
from mltrainer.phases.plan.outcome import PlanOutcome
from mltrainer.runner import PhaseContext


def diagnose_stream(path: Path, thresholds: dict[str, dict[str, float]],
                    overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Findings (with evidence and playbook) of one metrics.jsonl; no project needed."""
    from mltrainer.detectors import DetectorContext, run_detectors
    from mltrainer.stream import read_stream

    events = read_stream(path)
    if not any(e["type"] in ("step", "epoch") for e in events):
        raise BadInputError(f"{path}: holds no step or epoch events to diagnose",
                            hint="point --metrics at a stream a training run wrote")
    start = next((e for e in events if e["type"] == "start"), None)
    context = DetectorContext.from_start_event(start or {"type": "start"}, overrides or {})
    findings = run_detectors(events, thresholds, context)
    return {
        "stream": str(path),
        "events": {k: sum(1 for e in events if e["type"] == k) for k in ("step", "epoch")},
        "findings": [with_playbook(f.to_dict()) for f in findings],
        "unjudged": unjudged(events, context.metric),
    }


def unjudged(events: list[dict[str, Any]], metric: str | None) -> list[str]:
    """What the detectors could not judge in a stream, each a sentence: "no finding" from a
    stream without epochs, without val losses or without the goal metric is not "healthy"."""
    epochs = [e for e in events if e["type"] == "epoch"]
    out = []
    if not any(e["type"] == "step" for e in events):
        out.append("no step events: the step rules (nan_loss on steps, exploding and "
                   "vanishing gradients, dead_relu, loss_oscillation) had nothing to judge")
    if not epochs:
        out.append("no epoch events: overfitting, underfitting and convergence_stall judge "
                   "epochs and had none")
        return out
    if not any(e.get("val_loss") is not None for e in epochs):
        out.append("no epoch event has a val_loss: the rules on it (overfitting's, "
                   "underfitting's) had nothing to judge")
    names = sorted({k for e in epochs for k in (e.get("val") or {})})
    if metric is None:
        out.append(f"no goal metric: the stream's start event names none and its val values "
                   f"({', '.join(names) or 'none'}) hold no metric mlt knows, so the rules "
                   "on the metric had nothing to judge")
    elif not any(metric in (e.get("val") or {}) for e in epochs):
        out.append(f"the goal metric {metric!r} is in no epoch event's val (they hold: "
                   f"{', '.join(names) or 'nothing'}): the rules on the metric had nothing to "
                   f"judge; log it under that name")
    return out


def with_playbook(finding: dict[str, Any]) -> dict[str, Any]:
    from mltrainer.resources import load_playbook

    try:
        pb = load_playbook(finding["id"])
    except BadInputError:
        return {**finding, "playbook": None, "recommendations": []}
    return {**finding, "playbook": pb.path, "title": pb.meta.get("title", finding["id"]),
            "recommendations": list(pb.meta.get("recommendations") or [])}


def run(ctx: PhaseContext) -> DiagnoseOutcome:
    cfg, project = ctx.cfg, ctx.project
    metrics = ctx.options.get("metrics")
    baseline = BaselineOutcome.of(ctx.state)
    if metrics:
        path = Path(metrics)
        path = path if path.is_absolute() else Path.cwd() / path
    else:
        path = project.root / baseline.run.dir / "metrics.jsonl"
        if not path.is_file():  # the evidence the baseline gate judged was moved or deleted
            raise StateCorruptError(
                f"the baseline run's stream {project.relative(path)} is gone",
                hint=f"restore {baseline.run.dir}/ (mlt keeps every run folder), or re-run "
                     "`mlt train-baseline`")
    overrides = {"task": cfg.task, "metric": cfg.goal.metric,
                 "greater_is_better": cfg.greater_is_better,
                 "baseline": PlanOutcome.of(ctx.state).trivial_baseline}
    result = diagnose_stream(path, cfg.diagnose.thresholds, overrides)
    return DiagnoseOutcome(stream=project.relative(path), events=result["events"],
                           findings=result["findings"],
                           recommendations=merge_recommendations(result["findings"]))


def merge_recommendations(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per (config path, kind), listing every finding that asked for it, severest
    first; a `set` and a `search` on the same field both stay."""
    order = {"critical": 0, "warning": 1, "info": 2}
    merged: dict[str, dict[str, Any]] = {}
    for f in sorted(findings, key=lambda f: order.get(f.get("severity", "info"), 3)):
        for rec in f.get("recommendations", []):
            entry = merged.setdefault(f"{rec['path']}|{rec.get('kind')}", {**rec, "findings": []})
            entry["findings"].append(f["id"])
    return list(merged.values())
