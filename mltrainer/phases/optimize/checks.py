"""Auto checks of the optimize gate.

Under `mlt optimize --stop` with the baseline chosen, the search's own shortfalls (too few
trials, no comparison) no longer matter to what finalize trains, so those items pass on the
recorded decision, and say so in their evidence.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from mltrainer.config import config_field
from mltrainer.gates import CheckResult, GateContext, check
from mltrainer.phases.diagnose.outcome import DiagnoseOutcome
from mltrainer.phases.optimize.outcome import OptimizeOutcome

Ctx = GateContext[OptimizeOutcome]  # what every check here reads


def _stopped_on_baseline(outcome: OptimizeOutcome) -> bool:
    return outcome.decision == "stop" and outcome.chosen == "baseline"


@check("search_space_traced")
def search_space_traced(ctx: Ctx, item: dict[str, Any]) -> CheckResult:
    """Every searched field names its finding (or user/default space), and every searchable
    `kind: search` recommendation of diagnose is in the space."""
    space = ctx.outcome.space
    params = space.get("params", [])
    diagnose = DiagnoseOutcome.recorded(ctx.state)
    recommended = set()
    for f in diagnose.findings if diagnose else []:
        for rec in f.get("recommendations") or []:
            if rec.get("kind") == "search" and _searchable(str(rec.get("path"))):
                recommended.add(rec["path"])
    searched = {p["path"] for p in params}
    untraced = [p["name"] for p in params if not p.get("sources")]
    missing = sorted(recommended - searched)
    return CheckResult(bool(params) and not untraced and not missing, {
        "origin": space.get("origin"), "params": {p["name"]: p.get("sources") for p in params},
        "untraced": untraced, "recommended_not_searched": missing,
        "notes": space.get("notes", [])})


def _searchable(path: str) -> bool:
    try:
        config_field(path)
    except KeyError:
        return False
    return path.startswith(("model.", "training."))


@check("requested_trials_done")
def requested_trials_done(ctx: Ctx, item: dict[str, Any]) -> CheckResult:
    """COMPLETE + PRUNED trials reach the requested number (or the configured timeout ended the
    search), with at least one COMPLETE trial to pick from."""
    study = ctx.outcome.study
    n = study.get("counts") or {}
    requested = ctx.outcome.requested_trials
    finished = n.get("complete", 0) + n.get("pruned", 0)
    met = n.get("complete", 0) >= 1 and (
        (requested is not None and finished >= requested) or study.get("stopped") == "timeout")
    evidence = {"requested": requested, "complete": n.get("complete", 0),
                "pruned": n.get("pruned", 0), "failed": n.get("fail", 0),
                "running": n.get("running", 0), "stopped": study.get("stopped"),
                "study": study.get("name")}
    if not met and _stopped_on_baseline(ctx.outcome):
        evidence["decision"] = "stop: the baseline is kept, nothing from the search is used"
        met = True
    return CheckResult(bool(met), evidence)


@check("trials_val_only")
def trials_val_only(ctx: Ctx, item: dict[str, Any]) -> CheckResult:
    """No request for the test split during the search (the data layer audits every one)."""
    from mltrainer.state import read_audit

    since = _time(ctx.outcome.started_at)
    if since is not None:  # the data layer stamps its events to the second: compare at that
        since = since.replace(microsecond=0)
    events = [e for e in read_audit(ctx.project)
              if e.get("phase") == "optimize" and "test" in str(e.get("event", ""))
              and (since is None or (_time(e.get("time")) or since) >= since)]
    data = ctx.outcome.data
    used = data.get("splits_used", [])
    return CheckResult(not events and set(used) <= {"train", "val"}, {
        "splits_used": used, "test_split_requests": len(events),
        "events": [{k: e.get(k) for k in ("time", "event", "phase")} for e in events[:3]],
        "since": ctx.outcome.started_at,
        "val_fingerprint": (data.get("fingerprints") or {}).get("val")})


def _time(value: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None


@check("seeds_compared")
def seeds_compared(ctx: Ctx, item: dict[str, Any]) -> CheckResult:
    """Best trial and baseline each trained with every comparison seed."""
    comp = ctx.outcome.comparison or {}
    seeds = comp.get("seeds") or []
    n_opt = (comp.get("optimized") or {}).get("n", 0)
    n_base = (comp.get("baseline") or {}).get("n", 0)
    met = len(seeds) >= 2 and n_opt == n_base == len(seeds)
    evidence = {"seeds": seeds, "configured": ctx.cfg.optimize.seeds, "n_optimized": n_opt,
                "n_baseline": n_base, "diverged": comp.get("diverged", [])}
    if not comp:
        evidence["why"] = "no completed trial to compare with the baseline"
    if not met and _stopped_on_baseline(ctx.outcome):
        evidence["decision"] = "stop: the baseline is kept"
        met = True
    return CheckResult(met, evidence)


@check("improvement_or_decision")
def improvement_or_decision(ctx: Ctx, item: dict[str, Any]) -> CheckResult:
    """The improvement's CI lies above 0, or the chosen config meets the goal, or the user
    recorded `mlt optimize --stop`."""
    out = ctx.outcome
    comp = out.comparison or {}
    imp = comp.get("improvement") or {}
    goal = out.goal
    iteration, cap = out.iteration, out.max_iterations
    evidence: dict[str, Any] = {
        "improvement": imp.get("diff"), "ci95": imp.get("ci"),
        "orientation": imp.get("orientation"),
        "goal_met_by_chosen": goal.get("met_by_chosen"), "chosen": out.chosen,
        "decision": out.decision, "iteration": iteration, "max_iterations": cap}
    if out.decision == "stop":
        evidence["why"] = f"decision recorded: finalize with the {out.chosen} config"
        return CheckResult(True, evidence)
    if comp.get("significant"):
        evidence["why"] = "the improvement's 95% CI lies above 0"
        return CheckResult(True, evidence)
    if goal.get("met_by_chosen"):
        evidence["why"] = "the chosen config meets the goal"
        return CheckResult(True, evidence)
    if iteration is not None and cap is not None and iteration >= cap:
        evidence["why"] = (f"no significant improvement and the iteration cap is reached "
                           f"({iteration} of {cap}): run `mlt optimize --stop`")
    else:
        evidence["why"] = (f"no significant improvement: run `mlt optimize` again (iteration "
                           f"{(iteration or 0) + 1} of {cap}) or `mlt optimize --stop`")
    return CheckResult(False, evidence)
