"""Persisted state: round trip, atomic writes, corruption, the lock and the audit log."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from mltrainer.errors import LockHeldError, StateCorruptError
from mltrainer.project import Project
from mltrainer.state import (
    SCHEMA_VERSION,
    GateItem,
    GateResult,
    ProjectState,
    Signoff,
    Waiver,
    audit,
    load_state,
    project_lock,
    read_audit,
    save_state,
)


def _full_state() -> ProjectState:
    state = ProjectState()
    rec = state.phase("plan")
    rec.status = "passed"
    rec.fingerprints = {"config": "a" * 64, "data": "b" * 64, "code": "c" * 64}
    rec.outcome = {"seed": 42, "nested": {"x": [1.5, None]}}
    rec.gate = GateResult(phase="plan", passed=True, items=[
        GateItem(id="seeds_fixed", text="t", kind="auto", status="pass", evidence={"seed": 42}),
        GateItem(id="m", text="t", kind="manual", status="waived",
                 waiver=Waiver(reason="because we must", by="ana")),
    ])
    state.waivers["plan"] = {"m": Waiver(reason="because we must", by="ana")}
    state.signoffs["finalize"] = {"fairness_review": Signoff(by="bo", artifact_hash="d" * 8)}
    return state


def test_everything_saved_round_trips(tmp_path: Path) -> None:
    project = Project.at(tmp_path)
    state = _full_state()
    save_state(project, state)
    assert load_state(project) == state
    assert json.loads(project.state_path.read_text())["schema_version"] == SCHEMA_VERSION


def test_missing_state_is_a_fresh_project(tmp_path: Path) -> None:
    assert load_state(Project.at(tmp_path)).phases == {}


def test_save_keeps_previous_state_as_backup_and_leaves_no_temp_files(tmp_path: Path) -> None:
    project = Project.at(tmp_path)
    save_state(project, ProjectState())
    first = project.state_path.read_text()
    save_state(project, _full_state())
    assert project.state_path.with_name("state.json.bak").read_text() == first
    assert not list(project.mlt_dir.glob("*.tmp"))


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "expected a JSON object"),
        ('{"phases": {}}', "schema_version"),
        (json.dumps({"schema_version": 99}), "newer mlt"),
        (json.dumps({"schema_version": 1, "phases": {"plan": {"status": "exploded"}}}),
         "phases.plan.status"),
        ("", "not valid JSON"),
    ],
)
def test_corrupted_state_is_a_clear_error(tmp_path: Path, content: str, expected: str) -> None:
    project = Project.at(tmp_path)
    project.mlt_dir.mkdir()
    project.state_path.write_text(content)
    with pytest.raises(StateCorruptError) as err:
        load_state(project)
    assert expected in err.value.message
    assert str(project.state_path) in err.value.message
    assert err.value.exit_code == 2


_HOLDER = """
import sys, time
from mltrainer.project import Project
from mltrainer.state import project_lock
with project_lock(Project.at(sys.argv[1]), "mlt train-baseline"):
    print("locked", flush=True)
    time.sleep(60)
"""


def _judged(tmp_path: Path, passed: bool) -> tuple[Project, ProjectState]:
    """A project whose plan gate mlt judged: saved, then its `gate` event audited."""
    project = Project(tmp_path)
    project.mlt_dir.mkdir(parents=True)
    state = ProjectState()
    rec = state.phase("plan")
    rec.status, rec.finished_at = ("passed" if passed else "blocked"), "2026-01-01T00:00:00"
    rec.gate = GateResult(phase="plan", passed=passed, items=[
        GateItem(id="goal_set", text="t", kind="auto", status="pass" if passed else "fail")])
    save_state(project, state)
    audit(project, "gate", phase="plan", passed=passed,
          items={"goal_set": "pass" if passed else "fail"})
    return project, state


@pytest.mark.parametrize(("edit", "says"), [
    (lambda rec: rec.update(status="passed"), "phase plan is 'passed' but its gate did not pass"),
    (lambda rec: (rec.update(status="passed"), rec["gate"].update(passed=True),
                  rec["gate"]["items"][0].update(status="pass")),
     "item goal_set is 'pass', the audit log recorded 'fail'"),
])
def test_a_gate_edited_by_hand_is_refused(tmp_path: Path, edit: Any, says: str) -> None:
    """A blocked gate turned into a passed one in state.json is not what mlt judged: every
    command refuses the file (exit 2) instead of letting the next phase run on it."""
    project, _ = _judged(tmp_path, passed=False)
    raw = json.loads(project.state_path.read_text())
    edit(raw["phases"]["plan"])
    project.state_path.write_text(json.dumps(raw))
    with pytest.raises(StateCorruptError, match="edited by hand") as err:
        load_state(project)
    assert says in err.value.message


def test_a_gate_mlt_judged_loads_as_saved_and_so_does_its_backup(tmp_path: Path) -> None:
    """The gate as judged, then after a sign-off or waiver (a later `gate` event), loads; so
    does state.json.bak restored by hand, the documented fix."""
    project, state = _judged(tmp_path, passed=False)
    assert load_state(project).phases["plan"].gate == state.phases["plan"].gate
    rec = state.phase("plan")
    rec.status = "passed"
    rec.gate = GateResult(phase="plan", passed=True, items=[
        GateItem(id="goal_set", text="t", kind="auto", status="waived")])
    save_state(project, state)
    audit(project, "gate", phase="plan", passed=True, items={"goal_set": "waived"},
          rejudged=True)
    assert load_state(project).phases["plan"].status == "passed"
    project.state_path.write_bytes(project.state_path.with_name("state.json.bak").read_bytes())
    assert load_state(project).phases["plan"].status == "blocked"


def test_second_command_is_told_who_holds_the_lock(tmp_path: Path) -> None:
    project = Project.at(tmp_path)
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(tmp_path)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(LockHeldError) as err, project_lock(project, "mlt plan"):
            pass
        assert "mlt train-baseline" in err.value.message
        assert f"pid {proc.pid}" in err.value.message
        assert err.value.exit_code == 3
    finally:
        proc.kill()
        proc.wait()
    # The kernel released the dead holder's lock: the next command gets it.
    with project_lock(project, "mlt plan"):
        pass


def test_lock_is_reentrant_across_sequential_commands(tmp_path: Path) -> None:
    project = Project.at(tmp_path)
    for _ in range(3):
        with project_lock(project, "mlt status"):
            pass


def test_audit_is_append_only_in_order(tmp_path: Path) -> None:
    project = Project.at(tmp_path)
    audit(project, "init")
    audit(project, "waiver", phase="plan", item="x", reason="r")
    before = project.audit_path.read_text()
    time.sleep(0.002)
    audit(project, "gate", phase="plan", passed=True)
    assert project.audit_path.read_text().startswith(before)
    assert [r["event"] for r in read_audit(project)] == ["init", "waiver", "gate"]
