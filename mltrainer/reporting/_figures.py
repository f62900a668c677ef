"""Which figures a phase's report shows, drawn from what the phase recorded.

Every figure is optional: a phase whose outcome lacks the numbers simply gets no figure. The
run curves come from the run's metric stream (`outcome["run"]["dir"]/metrics.jsonl`, or the
stream diagnose read), falling back to the per-epoch history recorded in the outcome.
"""

from __future__ import annotations

import contextlib
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


def phase_figures(project: Project, state: ProjectState, phase: str, *,
                  parallel: bool = False) -> list[ReportFigure]:
    """The phase's figures, in order. `parallel` (the report drawer's child, a process with no
    threads and no torch): every second figure is drawn in a forked copy of it, on another
    core, the same bytes (the same code and state); anything that copy does not answer is
    drawn here."""
    rec = state.phases.get(phase)
    outcome: dict[str, Any] = dict(rec.outcome) if rec else {}
    sections: list[Callable[[], list[tuple[str, str, Draw]]]] = [
        lambda: _plan(outcome) if phase == "plan" else [],
        lambda: _run(project, state, phase, outcome),
        lambda: _search(state, outcome),
        lambda: _test(state, outcome),
    ]
    # A figure illustrates a gate that was already judged and saved: drawing it must never
    # fail the command. What went wrong is printed in the report in the figure's place.
    wanted: list[list[tuple[str, str, Draw]] | str] = []  # a section's figures, or its error
    for section in sections:
        try:
            wanted.append(section())
        except Exception as exc:
            wanted.append(_why(exc))
    draws = [draw for w in wanted if not isinstance(w, str) for _, _, draw in w]
    drawn = iter(_draw_all(draws, parallel=parallel))
    figures = []
    for w in wanted:
        if isinstance(w, str):
            figures.append(ReportFigure(phase, f"section{len(figures)}",
                                        "this phase's figures", b"", w))
            continue
        for name, title, _ in w:
            png, error = next(drawn)
            if error is not None:
                figures.append(ReportFigure(phase, name, title, b"", error))
            elif png:
                figures.append(ReportFigure(phase, name, title, png))
    return figures


Drawn = tuple["bytes | None", "str | None"]  # (png, why it could not be drawn)


def _attempt(draw: Draw) -> Drawn:
    try:
        return draw(), None
    except Exception as exc:
        return None, _why(exc)


def _draw_all(draws: list[Draw], *, parallel: bool) -> list[Drawn]:
    """Each draw's (png, error), in order; with `parallel`, the odd ones in a forked child
    while this process draws the even ones."""
    import os

    child = None
    if parallel and len(draws) > 1 and hasattr(os, "fork"):
        child = _ForkedDraws({i: draws[i] for i in range(1, len(draws), 2)})
    mine = {i: _attempt(d) for i, d in enumerate(draws) if child is None or i % 2 == 0}
    theirs = child.answer() if child is not None else {}
    return [mine[i] if i in mine else theirs[i] if i in theirs else _attempt(draws[i])
            for i in range(len(draws))]


class _ForkedDraws:
    """`_attempt` of some draws in a forked child; `answer()` is {} when it gives none (those
    figures are then drawn in this process)."""

    def __init__(self, draws: dict[int, Draw]) -> None:
        import os
        import pickle

        self._pid, self._fd = 0, -1
        try:
            read, write = os.pipe()
        except OSError:
            return
        try:
            pid = os.fork()
        except OSError:
            os.close(read)
            os.close(write)
            return
        if pid == 0:  # pragma: no cover (the child: coverage does not follow it)
            code = 1
            try:
                os.close(read)
                null = os.open(os.devnull, os.O_RDWR)  # not the command's pipes: its answer
                os.dup2(null, 0)  # is read to their end, which must not wait on this copy
                os.dup2(null, 1)
                answer = pickle.dumps({i: _attempt(d) for i, d in draws.items()})
                with os.fdopen(write, "wb") as out:
                    out.write(answer)
                code = 0
            finally:
                os._exit(code)
        os.close(write)
        self._pid, self._fd = pid, read

    def answer(self) -> dict[int, Drawn]:
        import os
        import pickle

        if self._fd < 0:
            return {}
        got: Any = None
        try:
            with os.fdopen(self._fd, "rb") as answer:
                got = pickle.loads(answer.read())
        except Exception:  # a cut or unreadable answer: none
            got = None
        finally:
            self._fd = -1
            with contextlib.suppress(ChildProcessError):
                _, status = os.waitpid(self._pid, 0)
                if status != 0:
                    got = None
        return got if isinstance(got, dict) else {}


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
