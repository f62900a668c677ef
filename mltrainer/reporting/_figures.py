"""Which figures a phase's report shows, drawn from what the phase recorded.

Every figure is optional: a phase whose outcome lacks the numbers simply gets no figure. The
run curves come from the run's metric stream (`outcome["run"]["dir"]/metrics.jsonl`, or the
stream diagnose read), falling back to the per-epoch history recorded in the outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mltrainer.project import Project
from mltrainer.reporting._curves import (
    RunCurves,
    add_finding_markers,
    add_run_markers,
    greater_is_better,
    load_curves,
    num,
)
from mltrainer.state import ProjectState


@dataclass(frozen=True)
class ReportFigure:
    phase: str
    name: str  # what templates place it by: figure("curves")
    title: str  # alt text and caption
    png: bytes  # empty when it could not be drawn
    error: str | None = None  # why it could not be drawn

    @property
    def filename(self) -> str:
        return f"{self.phase}-{self.name}.png"


Draw = Callable[[], "bytes | None"]


def phase_figures(project: Project, state: ProjectState, phase: str) -> list[ReportFigure]:
    rec = state.phases.get(phase)
    outcome: dict[str, Any] = dict(rec.outcome) if rec else {}
    sections: list[Callable[[], list[tuple[str, str, Draw]]]] = [
        lambda: _plan(outcome) if phase == "plan" else [],
        lambda: _run(project, state, phase, outcome),
        lambda: _search(state, outcome),
        lambda: _test(state, outcome),
    ]
    figures = []
    for section in sections:
        # A figure illustrates a gate that was already judged and saved: drawing it must never
        # fail the command. What went wrong is printed in the report in the figure's place.
        try:
            wanted = section()
        except Exception as exc:
            figures.append(ReportFigure(phase, f"section{len(figures)}",
                                        "this phase's figures", b"", _why(exc)))
            continue
        for name, title, draw in wanted:
            try:
                png = draw()
            except Exception as exc:
                figures.append(ReportFigure(phase, name, title, b"", _why(exc)))
                continue
            if png:
                figures.append(ReportFigure(phase, name, title, png))
    return figures


def _why(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


def _plan(outcome: dict[str, Any]) -> list[tuple[str, str, Draw]]:
    from mltrainer.reporting import _plots

    counts = ((outcome.get("data") or {}).get("split") or {}).get("class_counts")
    if not isinstance(counts, dict):
        return []
    return [("classes", "Share of each class in each split",
             lambda: _plots.class_balance(counts))]


def _run(project: Project, state: ProjectState, phase: str, outcome: dict[str, Any]
         ) -> list[tuple[str, str, Draw]]:
    """Learning curves and optimiser curves of the run this phase trained or diagnosed."""
    from mltrainer.reporting import _plots

    run = outcome.get("run") if isinstance(outcome.get("run"), dict) else {}
    baseline = _outcome(state, "baseline")
    metric = outcome.get("metric") or (outcome.get("goal") or {}).get("metric") \
        or baseline.get("metric")
    if phase == "diagnose" and outcome.get("stream"):
        stream = str(outcome["stream"])
        base_run = baseline.get("run") or {}
        same = base_run.get("dir") and stream == f"{base_run['dir']}/metrics.jsonl"
        run = base_run if same else {}
        history = baseline.get("history") if same else None
    elif run.get("dir"):
        stream, history = f"{run['dir']}/metrics.jsonl", outcome.get("history")
    else:
        return []
    curves = load_curves(project.root, stream, history, metric)
    if not curves.has_epochs and not curves.has_steps:
        return []
    _goal_lines(curves, outcome, baseline)
    add_run_markers(curves, run.get("best_epoch"), run.get("stopped_reason"))
    findings = outcome.get("findings") or outcome.get("online_findings") or []
    add_finding_markers(curves, [f for f in findings if isinstance(f, dict)])
    name = curves.metric or "metric"
    kinds = {m.kind for m in curves.markers}
    marked = [label for label, shown in (
        ("findings at their onset", kinds - {"best", "stop"}), ("the best epoch", "best" in kinds),
        ("where training stopped", "stop" in kinds)) if shown]
    note = f" ({', '.join(marked)} marked)" if marked else ""
    return [
        ("curves", f"Loss and val {name} per epoch{note}",
         lambda: _plots.training_curves(curves)),
        ("optimizer", "Learning rate and gradient norm (before clipping) per step",
         lambda: _plots.optimizer_curves(curves)),
    ]


def _goal_lines(curves: RunCurves, outcome: dict[str, Any], baseline: dict[str, Any]) -> None:
    goal = outcome.get("goal") or baseline.get("goal") or {}
    if isinstance(goal, dict) and goal.get("target") is not None:
        curves.goal = num(goal["target"])
    trivial = outcome.get("trivial_baseline") or baseline.get("trivial_baseline") or {}
    if curves.metric and isinstance(trivial, dict) and curves.metric in trivial:
        curves.trivial = num(trivial[curves.metric])


def _search(state: ProjectState, outcome: dict[str, Any]) -> list[tuple[str, str, Draw]]:
    """Optuna's trial history and parameter importances, when the outcome records them."""
    from mltrainer.reporting import _plots

    out: list[tuple[str, str, Draw]] = []
    trials = outcome.get("trials")
    if isinstance(trials, list) and trials:
        rows = [t for t in trials if isinstance(t, dict) and "number" in t]
        metric = outcome.get("metric") or _outcome(state, "baseline").get("metric") or "metric"
        gib = outcome.get("greater_is_better")
        gib = greater_is_better(metric) if gib is None else bool(gib)
        out.append(("trials", f"Optuna trial history (val {metric})",
                    lambda: _plots.trial_history(rows, gib, str(metric))))
    imp = outcome.get("importances") or outcome.get("param_importances")
    if isinstance(imp, dict) and imp:
        out.append(("importances", "Hyperparameter importances",
                    lambda: _plots.importances(imp)))
    return out


def _test(state: ProjectState, outcome: dict[str, Any]) -> list[tuple[str, str, Draw]]:
    from mltrainer.reporting import _plots

    test = outcome.get("test") if isinstance(outcome.get("test"), dict) else {}
    matrix = test.get("confusion_matrix")
    if not isinstance(matrix, list) or not matrix:
        return []
    labels = test.get("class_labels") or (
        ((_outcome(state, "plan").get("data") or {}).get("spec") or {}).get("class_labels"))
    return [("confusion", "Confusion matrix on the test split",
             lambda: _plots.confusion(matrix, labels if isinstance(labels, list) else None))]


def _outcome(state: ProjectState, phase: str) -> dict[str, Any]:
    rec = state.phases.get(phase)
    return rec.outcome if rec else {}
