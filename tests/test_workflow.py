"""The phase graph: statuses, every transition, refused orders, the fast path, staleness."""

from __future__ import annotations

import pytest

from mltrainer.state import GateItem, GateResult, ProjectState
from mltrainer.workflow import (
    PHASE_NAMES,
    fingerprint_view,
    next_command,
    phase_views,
    satisfied_alternative,
    unmet_needs,
    upstream,
)

CFG = {"task": "classification", "seed": 1, "data": {}, "model": {}, "training": {},
       "goal": {}, "diagnose": {}, "optimize": {}, "finalize": {}}
FPS = fingerprint_view(CFG, "data-1", "code-1")


def make_state(**phases: str | tuple[str, dict]) -> ProjectState:
    state = ProjectState()
    for i, (name, spec) in enumerate(phases.items()):
        status, outcome = spec if isinstance(spec, tuple) else (spec, {})
        rec = state.phase(name)
        rec.status = status
        rec.outcome = outcome
        rec.finished_at = f"2026-01-01T00:00:{i:02d}"
        rec.fingerprints = dict(FPS[name])
        if status == "blocked":
            rec.gate = GateResult(phase=name, passed=False, items=[
                GateItem(id="beats_trivial_baseline", text="t", kind="auto", status="fail")])
    return state


def statuses(state: ProjectState, fps=FPS) -> dict[str, str]:
    return {v.name: v.status for v in phase_views(state, fps)}


GOAL = {"goal_met": True}
MISS = {"goal_met": False}


@pytest.mark.parametrize(
    ("phases", "expected", "next_cmd"),
    [
        ({}, ["ready", "locked", "locked", "locked", "locked"], "mlt plan"),
        ({"plan": "passed"}, ["passed", "ready", "locked", "locked", "locked"],
         "mlt train-baseline"),
        ({"plan": "blocked"}, ["blocked", "locked", "locked", "locked", "locked"], "mlt plan"),
        ({"plan": "passed", "baseline": ("passed", MISS)},
         ["passed", "passed", "ready", "locked", "locked"], "mlt diagnose"),
        # fast path: goal met opens finalize; diagnose stays optional
        ({"plan": "passed", "baseline": ("passed", GOAL)},
         ["passed", "passed", "ready", "locked", "ready"], "mlt finalize"),
        # a finalize that failed or was interrupted (or killed: "running") on the fast path
        # is run again, as its own error says; not sent around by diagnose
        ({"plan": "passed", "baseline": ("passed", GOAL), "finalize": "failed"},
         ["passed", "passed", "ready", "locked", "failed"], "mlt finalize"),
        ({"plan": "passed", "baseline": ("passed", GOAL), "finalize": "running"},
         ["passed", "passed", "ready", "locked", "running"], "mlt finalize"),
        ({"plan": "passed", "baseline": ("passed", MISS), "diagnose": "passed"},
         ["passed", "passed", "passed", "ready", "locked"], "mlt optimize"),
        ({"plan": "passed", "baseline": ("passed", MISS), "diagnose": "passed",
          "optimize": "passed"},
         ["passed", "passed", "passed", "passed", "ready"], "mlt finalize"),
        ({"plan": "passed", "baseline": ("passed", MISS), "diagnose": "passed",
          "optimize": "blocked"}, ["passed", "passed", "passed", "blocked", "locked"],
         "mlt optimize"),
        ({"plan": "passed", "baseline": ("passed", GOAL), "diagnose": "skipped",
          "optimize": "skipped", "finalize": ("passed", {"path": "fast"})},
         ["passed", "passed", "skipped", "skipped", "passed"], None),
        ({"plan": "passed", "baseline": "failed"},
         ["passed", "failed", "locked", "locked", "locked"], "mlt train-baseline"),
        # a baseline that ran but did not beat the trivial one is what diagnose explains
        ({"plan": "passed", "baseline": "blocked"},
         ["passed", "blocked", "ready", "locked", "locked"], "mlt diagnose"),
        ({"plan": "passed", "baseline": "blocked", "diagnose": "passed"},
         ["passed", "blocked", "passed", "ready", "locked"], "mlt optimize"),
        # finalize blocked on a measured item: re-running it would measure the same thing
        ({"plan": "passed", "baseline": ("passed", GOAL), "diagnose": "skipped",
          "optimize": "skipped", "finalize": "blocked"},
         ["passed", "passed", "skipped", "skipped", "blocked"], "mlt diagnose"),
        ({"plan": "passed", "baseline": ("passed", GOAL), "diagnose": "passed",
          "optimize": "skipped", "finalize": "blocked"},
         ["passed", "passed", "passed", "skipped", "blocked"], "mlt optimize"),
        ({"plan": "passed", "baseline": ("passed", GOAL), "finalize": "blocked",
          "diagnose": "passed", "optimize": "passed"},  # a newer search chose another model
         ["passed", "passed", "passed", "passed", "blocked"], "mlt finalize"),
        ({"plan": "passed", "baseline": ("passed", MISS), "diagnose": "passed",
          "optimize": "passed", "finalize": "blocked"},  # the searched model failed: people
         ["passed", "passed", "passed", "passed", "blocked"],
         "mlt waive finalize beats_trivial_baseline --reason TEXT"),
    ],
)
def test_status_and_next_for_every_transition(phases, expected, next_cmd) -> None:
    state = make_state(**phases)
    assert list(statuses(state).values()) == expected
    assert next_command(state, FPS) == next_cmd


@pytest.mark.parametrize(
    ("phases", "target", "fragment"),
    [
        ({}, "baseline", "plan has not passed: run `mlt plan`"),
        ({}, "finalize", "run `mlt"),
        ({"plan": "blocked"}, "baseline", "beats_trivial_baseline"),
        ({"plan": "passed", "baseline": ("passed", MISS)}, "finalize",
         "did not meet the goal (fast path closed): run `mlt diagnose`"),
        # after diagnose, the refusal names optimize (it named diagnose again: a loop)
        ({"plan": "passed", "baseline": ("passed", MISS), "diagnose": "passed"}, "finalize",
         "did not meet the goal (fast path closed): run `mlt optimize`"),
        # after a search that did not pass, what holds it (it said "run `mlt optimize`" as if
        # the search had not run)
        ({"plan": "passed", "baseline": ("passed", MISS), "diagnose": "passed",
          "optimize": "blocked"}, "finalize",
         "did not meet the goal (fast path closed), and optimize gate blocked on "),
        ({"plan": "passed"}, "optimize", "diagnose has not passed"),
        ({"plan": "passed"}, "diagnose", "baseline has not run: run `mlt train-baseline`"),
    ],
)
def test_out_of_order_is_refused_with_the_fix(phases, target, fragment) -> None:
    state = make_state(**phases)
    assert satisfied_alternative(target, state, FPS) is None
    assert any(fragment in line for line in unmet_needs(target, state, FPS))


@pytest.mark.parametrize("kind", ["config", "data", "code"])
def test_changed_fingerprint_makes_phase_and_dependents_stale(kind: str) -> None:
    state = make_state(plan="passed", baseline=("passed", MISS), diagnose="passed")
    changed = fingerprint_view(
        {**CFG, "seed": 2} if kind == "config" else CFG,
        "data-2" if kind == "data" else "data-1",
        "code-2" if kind == "code" else "code-1",
    )
    assert statuses(state, changed) == {"plan": "stale", "baseline": "stale",
                                        "diagnose": "stale", "optimize": "locked",
                                        "finalize": "locked"}
    assert satisfied_alternative("baseline", state, changed) is None
    assert any("stale" in line for line in unmet_needs("baseline", state, changed))
    assert next_command(state, changed) == "mlt plan"


def test_config_sections_a_phase_does_not_use_do_not_stale_it() -> None:
    state = make_state(plan="passed", baseline=("passed", MISS), diagnose="passed")
    changed = fingerprint_view({**CFG, "finalize": {"retrain": False}}, "data-1", "code-1")
    assert statuses(state, changed)["diagnose"] == "passed"


def test_rerun_upstream_makes_downstream_stale() -> None:
    state = make_state(plan="passed", baseline=("passed", MISS))
    state.phases["plan"].finished_at = "2026-01-02T00:00:00"  # plan re-ran after baseline
    views = {v.name: v for v in phase_views(state, FPS)}
    assert views["baseline"].status == "stale"
    assert "plan was re-run after it" in views["baseline"].reason
    assert views["plan"].status == "passed"


def test_upstream_is_transitive() -> None:
    assert upstream("optimize") == ["diagnose", "baseline", "plan"]
    assert set(upstream("finalize")) == set(PHASE_NAMES) - {"finalize"}


@pytest.mark.parametrize(("recorded", "current", "reason"), [
    ({"runs/r1/metrics.jsonl": "900", "runs/r1/checkpoints/best.pt": "50"},
     {"runs/r1/metrics.jsonl": "gone", "runs/r1/checkpoints/best.pt": "gone"},
     "runs/r1 was moved or deleted since it passed"),
    ({"runs/r1/metrics.jsonl": "900", "runs/r1/checkpoints/best.pt": "50"},
     {"runs/r1/metrics.jsonl": "900", "runs/r1/checkpoints/best.pt": "gone"},
     "runs/r1/checkpoints/best.pt was moved or deleted since it passed"),
    ({"mlt.optimized.yaml": "40:aa"}, {"mlt.optimized.yaml": "40:bb"},
     "mlt.optimized.yaml changed since it passed"),
])
def test_evidence_change_names_the_folder_or_file(recorded: dict[str, str],
                                                  current: dict[str, str], reason: str) -> None:
    import json

    from mltrainer.workflow import evidence_change

    assert evidence_change(json.dumps(recorded), json.dumps(current)).startswith(reason)
