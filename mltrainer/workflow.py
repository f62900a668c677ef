"""The phase graph as data; what may run now and, when not, why; staleness.

    plan ─▶ baseline ─▶ diagnose ─▶ optimize ─▶ finalize
                 └──────── goal met (fast path) ────────▶

Each phase lists `needs`: alternatives (any one suffices), each a set of conditions (all must
hold). A condition is a phase name (that phase passed and is not stale), `ran:<phase>` (its
gate was judged, passed or blocked, and it is not stale: diagnose exists to explain a baseline
that failed), or a flag that a phase recorded in its outcome (`goal_met`). Nothing here
imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from mltrainer.project import Project
from mltrainer.state import PhaseRecord, ProjectState, lock_held_elsewhere


@dataclass(frozen=True)
class PhaseDef:
    name: str
    command: str
    title: str
    guide: str  # phases/<guide>/workflow.md
    needs: tuple[tuple[str, ...], ...]
    config_sections: tuple[str, ...]  # the parts of mlt.yaml whose change makes it stale
    # the files its recorded outcome stands on: (a dotted key of the outcome naming a
    # project-relative path, a file inside it or ""); one moved, deleted or changed makes it stale
    evidence: tuple[tuple[str, str], ...] = ()


_CORE = ("task", "seed", "data", "model", "training", "goal")

_RUN = (("run.dir", "metrics.jsonl"), ("run.dir", "checkpoints/best.pt"))

PHASES: tuple[PhaseDef, ...] = (
    PhaseDef("plan", "mlt plan", "Plan", "1_plan", (), _CORE),
    PhaseDef("baseline", "mlt train-baseline", "Baseline", "2_baseline", (("plan",),),
             (*_CORE, "diagnose"), _RUN),
    PhaseDef("diagnose", "mlt diagnose", "Diagnose", "3_diagnose", (("ran:baseline",),),
             (*_CORE, "diagnose"), (("stream", ""),)),
    PhaseDef("optimize", "mlt optimize", "Optimize", "4_optimize", (("diagnose",),),
             (*_CORE, "diagnose", "optimize"), (("config_path", ""), *_RUN)),
    PhaseDef("finalize", "mlt finalize", "Finalize", "5_finalize",
             (("baseline", "goal_met"), ("optimize",)),  # fast path | typical path
             (*_CORE, "diagnose", "optimize", "finalize"),
             (("run.checkpoint", ""), ("artifact.manifest", ""), ("artifact.dir", "model.onnx"))),
)
PHASE_NAMES = tuple(p.name for p in PHASES)
FLAGS = {"goal_met": "baseline"}  # flag -> the phase whose outcome records it


def _phase_of(cond: str) -> str:
    """The phase a condition is about."""
    return FLAGS.get(cond) or cond.removeprefix("ran:")


def phase_def(name: str) -> PhaseDef:
    for p in PHASES:
        if p.name == name:
            return p
    raise KeyError(name)


def upstream(name: str) -> list[str]:
    """Every phase `name` can depend on, transitively."""
    seen: list[str] = []
    for alt in phase_def(name).needs:
        for cond in alt:
            dep = _phase_of(cond)
            if dep not in seen:
                seen.append(dep)
                seen.extend(d for d in upstream(dep) if d not in seen)
    return seen


@dataclass(frozen=True)
class PhaseView:
    name: str
    status: str
    reason: str


# how a stale reason names a fingerprint: "code" covers the model's own files too
_KIND_NAMES = {"code": "code or model files"}


def stale_reasons(
    name: str, state: ProjectState, current: dict[str, dict[str, str]]
) -> list[str]:
    """Why a passed phase no longer holds: a fingerprint it judged changed, or a phase it
    depends on was re-run after it or is stale itself."""
    rec = state.phases.get(name)
    if rec is None or rec.status not in ("passed", "blocked"):
        return []
    reasons = [
        evidence_change(value, current[name][kind]) if kind == EVIDENCE else
        f"{_KIND_NAMES.get(kind, kind)} changed since it passed"
        for kind, value in rec.fingerprints.items()
        if kind in current.get(name, {}) and current[name][kind] != value
    ]
    for dep in _direct_deps(name, state):
        dep_rec = state.phases.get(dep)
        if dep_rec is None:
            continue
        if dep_rec.finished_at and rec.finished_at and dep_rec.finished_at > rec.finished_at:
            reasons.append(f"{dep} was re-run after it")
        elif stale_reasons(dep, state, current):
            reasons.append(f"{dep} is stale")
    return reasons


EVIDENCE = "evidence"  # the fingerprint kind of a phase's files: {path: "size[:sha256]"|"gone"}


def evidence_paths(name: str, outcome: dict[str, Any]) -> list[str]:
    """The project-relative files a phase's recorded outcome stands on (its run's stream and
    checkpoint, mlt.optimized.yaml, the shipped artifact), from `PhaseDef.evidence`."""
    paths = []
    for key, inside in phase_def(name).evidence:
        value: Any = outcome
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, str) and value:
            paths.append(f"{value.rstrip('/')}/{inside}" if inside else value)
    return paths


def evidence_change(recorded: str, current: str) -> str:
    """The stale reason of a changed evidence fingerprint: the files gone or changed (a whole
    run or artifact folder gone is named once)."""
    import json
    import os

    try:
        before, now_ = json.loads(recorded), json.loads(current)
    except ValueError:
        return "the files it stands on changed since it passed"
    gone = [p for p, was in before.items() if now_.get(p, "gone") == "gone" != was]
    changed = [p for p, was in before.items() if p not in gone and now_.get(p) != was]
    if gone:
        where = os.path.commonpath(gone) if len(gone) > 1 else gone[0]
        return f"{where} was moved or deleted since it passed (put it back to keep this result)"
    if changed:
        return f"{changed[0]} changed since it passed"
    return "the files it stands on changed since it passed"


def _direct_deps(name: str, state: ProjectState) -> list[str]:
    """The phases this one actually stood on: the alternative that was satisfied when it ran."""
    alts = phase_def(name).needs
    used = state.phases.get(name)
    path = used.outcome.get("path") if used else None
    for alt in alts:
        deps = [_phase_of(c) for c in alt]
        if path is None or (path == "fast") == ("goal_met" in alt):
            return list(dict.fromkeys(deps))
    return []


def _condition_holds(cond: str, state: ProjectState, current: dict[str, dict[str, str]]) -> bool:
    if cond.startswith("ran:"):
        rec = state.phases.get(_phase_of(cond))
        judged = rec is not None and (rec.status == "passed"
                                      or (rec.status == "blocked" and rec.gate is not None))
        return judged and not stale_reasons(_phase_of(cond), state, current)
    if cond in FLAGS:
        rec = state.phases.get(FLAGS[cond])
        return bool(rec and rec.outcome.get(cond))
    rec = state.phases.get(cond)
    return bool(rec and rec.status == "passed" and not stale_reasons(cond, state, current))


def satisfied_alternative(
    name: str, state: ProjectState, current: dict[str, dict[str, str]]
) -> tuple[str, ...] | None:
    """The alternative that lets `name` run; when several hold, the one that stands on the
    furthest phase (finalize after a passed optimize ships optimize's choice, not the baseline)."""
    held = [alt for alt in phase_def(name).needs or ((),)
            if all(_condition_holds(c, state, current) for c in alt)]
    return max(held, key=_reach, default=None)


def _reach(alt: tuple[str, ...]) -> int:
    return max((PHASE_NAMES.index(_phase_of(c)) for c in alt), default=-1)


def phase_views(state: ProjectState, current: dict[str, dict[str, str]]) -> list[PhaseView]:
    views = []
    for p in PHASES:
        rec: PhaseRecord | None = state.phases.get(p.name)
        stale = stale_reasons(p.name, state, current)
        if stale:
            views.append(PhaseView(p.name, "stale", "; ".join(stale) + f": re-run `{p.command}`"))
        elif rec and rec.status in ("passed", "skipped", "running", "failed", "blocked"):
            views.append(PhaseView(p.name, rec.status, _recorded_reason(p, rec)))
        elif satisfied_alternative(p.name, state, current) is not None:
            views.append(PhaseView(p.name, "ready", f"run `{p.command}`"))
        else:
            views.append(PhaseView(p.name, "locked",
                                   "; ".join(unmet_needs(p.name, state, current))))
    return views


def live_phase_views(project: Project, state: ProjectState, current: dict[str, dict[str, str]]
                     ) -> list[PhaseView]:
    """`phase_views` as they are now: a phase the state records as running while no other
    mlt command holds the project lock was stopped without finishing (kill -9, a crash, a
    full disk that kept it from recording how it ended), so it is shown as failed, saying so,
    not as running (nobody should wait for it). `mlt status`, the reports and their index
    read these."""
    views = phase_views(state, current)
    if not any(v.status == "running" for v in views) or lock_held_elsewhere(project):
        return views
    return [replace(v, status="failed", reason=(
        "stopped without finishing: no mlt command is running it (killed, crashed, or the "
        f"machine stopped); run `{phase_def(v.name).command}` again"))
        if v.status == "running" else v for v in views]


def _recorded_reason(p: PhaseDef, rec: PhaseRecord) -> str:
    if rec.status == "blocked" and rec.gate:
        ids = ", ".join(i.id for i in rec.gate.unmet())
        return f"gate items not met: {ids}"
    if rec.status == "failed":
        return rec.error or "failed"
    if rec.status == "running":
        return rec.note or "running (or stopped without finishing)"
    if rec.status == "skipped":
        return rec.note or "skipped on the fast path"
    return "gate passed"


def unmet_needs(
    name: str, state: ProjectState, current: dict[str, dict[str, str]]
) -> list[str]:
    """One line per unmet condition of the closest alternative, each naming its fix."""
    best: list[str] | None = None
    for alt in phase_def(name).needs:
        lines = []
        for cond in alt:
            if _condition_holds(cond, state, current):
                continue
            lines.append(_describe_unmet(cond, state, current))
        if best is None or len(lines) < len(best):
            best = lines
    return best or []


def _describe_unmet(cond: str, state: ProjectState, current: dict[str, dict[str, str]]) -> str:
    if cond == "goal_met":  # the typical path's next step, not the one already taken
        closed = "the baseline did not meet the goal (fast path closed)"
        if not _condition_holds("diagnose", state, current):
            return f"{closed}: run `mlt diagnose`"
        searched = state.phases.get("optimize")
        if searched is not None and searched.status not in ("ready", "locked"):
            # the search ran and did not pass: what holds it is the fix, not "run it"
            return f"{closed}, and {_describe_unmet('optimize', state, current)}"
        return f"{closed}: run `mlt optimize`"
    ran_only, cond = cond.startswith("ran:"), _phase_of(cond)
    p = phase_def(cond)
    rec = state.phases.get(cond)
    if rec is None or rec.status in ("ready", "locked"):
        return f"{cond} has {'not run' if ran_only else 'not passed'}: run `{p.command}`"
    stale = stale_reasons(cond, state, current)
    if stale:
        return f"{cond} is stale ({'; '.join(stale)}): re-run `{p.command}`"
    if rec.status == "blocked" and rec.gate:
        items = ", ".join(f"{i.id} ({i.status})" for i in rec.gate.unmet())
        return (
            f"{cond} gate blocked on {items}: fix and re-run `{p.command}`, or "
            f"`mlt signoff {cond} ITEM --by NAME` / `mlt waive {cond} ITEM --reason TEXT`"
        )
    if rec.status == "running":  # (or killed mid-phase: the state alone cannot tell)
        return (f"{cond} has not finished (running, or stopped without finishing: `mlt "
                f"status` says which): once it is not running, run `{p.command}`")
    return f"{cond} is {rec.status}: run `{p.command}`"


def next_command(state: ProjectState, current: dict[str, dict[str, str]]) -> str | None:
    """The command a user should run next, or None when everything passed."""
    views = {v.name: v for v in phase_views(state, current)}
    for p in PHASES:
        v = views[p.name]
        if v.status == "blocked":
            rec = state.phases[p.name]
            unmet = rec.gate.unmet() if rec.gate else []
            if unmet and all(i.kind == "manual" for i in unmet):
                return f"mlt signoff {p.name} {unmet[0].id} --by NAME"  # only people are missing
            if any(views[d.name].status in ("ready", "passed") for d in PHASES
                   if _stands_on(d, p.name)):
                continue  # a blocked baseline is what diagnose explains: go there next
            if p.name == "finalize":
                return _after_blocked_finalize(state, views, unmet)
            return p.command
        if v.status in ("stale", "failed", "running"):
            return p.command
        if v.status == "ready":
            if p.name in ("diagnose", "optimize") and views["finalize"].status in _RUNNABLE:
                # fast path open: diagnose is optional; a finalize that failed or was
                # interrupted on it is run again, as its own message says
                return "mlt finalize"
            return p.command
    return None


_RUNNABLE = ("ready", "failed", "running")  # a phase whose needs hold and that did not finish


def _after_blocked_finalize(state: ProjectState, views: dict[str, PhaseView],
                            unmet: list[Any]) -> str:
    """Finalize measured the shipped model and an automatic item failed (the goal on test,
    say). Re-running it on the same ground measures the same thing, so `next` moves on: to
    diagnose and optimize when the fast path went around them, to finalize again when a newer
    search chose another model (its test evaluation then needs `--reevaluate-test --reason`),
    and otherwise to the people: the search did not make the model hold, which is theirs to
    decide (a bigger search, another goal or data, or a waiver with a reason)."""
    auto = [i for i in unmet if i.kind != "manual"]
    for name in ("diagnose", "optimize"):
        if views[name].status != "passed":
            return phase_def(name).command
    searched = state.phases["optimize"].finished_at or ""
    judged = state.phases["finalize"].finished_at or ""
    if searched > judged:
        return "mlt finalize"
    return f"mlt waive finalize {auto[0].id} --reason TEXT"


def _stands_on(phase: PhaseDef, name: str) -> bool:
    return any(f"ran:{name}" in alt for alt in phase.needs)


def current_phase(state: ProjectState, current: dict[str, dict[str, str]]) -> str | None:
    cmd = next_command(state, current)
    for p in PHASES:
        if cmd is not None and (cmd == p.command or cmd.startswith(f"mlt signoff {p.name} ")):
            return p.name
    return None


def fingerprint_view(cfg_json: dict[str, Any], data_fp: str, code_fp: str
                     ) -> dict[str, dict[str, str]]:
    """Current fingerprints per phase: each phase judges only the config sections it uses."""
    from mltrainer.config import sha256_json

    return {
        p.name: {
            "config": sha256_json({k: cfg_json.get(k) for k in p.config_sections}),
            "data": data_fp,
            "code": code_fp,
        }
        for p in PHASES
    }
