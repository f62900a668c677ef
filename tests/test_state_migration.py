"""State files written by an earlier mlt keep loading: the schema migration and the typed
outcomes read what mlt 0.1.0 (state schema v1, before typed outcomes) saved.

The fixtures are real: `tests/data/state_v1_typical.json` is the state a v1 mlt wrote after
plan → train-baseline → diagnose → optimize → optimize --stop → finalize on
`state_v1.mlt.yaml`; `state_v1_fast.json` is the same with diagnose and optimize skipped the
way v1's fast path recorded them (the note inside the outcome).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mltrainer.phases import PHASES
from mltrainer.project import Project
from mltrainer.state import SCHEMA_VERSION, load_state, save_state

DATA = Path(__file__).parent / "data"


def _project(tmp_path: Path, fixture: str) -> Project:
    (tmp_path / ".mlt").mkdir()
    shutil.copy(DATA / fixture, tmp_path / ".mlt" / "state.json")
    shutil.copy(DATA / "state_v1.mlt.yaml", tmp_path / "mlt.yaml")
    return Project.at(tmp_path)


@pytest.mark.parametrize("fixture", ["state_v1_typical.json", "state_v1_fast.json"])
def test_v1_state_loads_and_every_outcome_is_typed(tmp_path: Path, fixture: str) -> None:
    project = _project(tmp_path, fixture)
    state = load_state(project)
    assert state.schema_version == SCHEMA_VERSION
    typed = {name: spec.outcome.recorded(state) for name, spec in PHASES.items()}
    assert typed["plan"].data.fingerprints["test"]
    assert typed["baseline"].run.dir.startswith("runs/")
    assert typed["finalize"].artifact_hash == typed["finalize"].artifact["hash"]
    if fixture == "state_v1_fast.json":
        for name in ("diagnose", "optimize"):
            rec = state.phases[name]
            assert rec.status == "skipped" and rec.outcome == {} and typed[name] is None
            assert rec.note == "skipped: finalize took the fast path"
    else:
        assert typed["optimize"].decision == "stop" and typed["diagnose"].findings


def test_migrated_state_round_trips(tmp_path: Path) -> None:
    project = _project(tmp_path, "state_v1_fast.json")
    state = load_state(project)
    save_state(project, state)
    again = load_state(project)
    assert again.model_dump() == state.model_dump()
    saved = json.loads(project.state_path.read_text())
    assert saved["schema_version"] == SCHEMA_VERSION
    assert saved["phases"]["diagnose"]["note"].startswith("skipped")


def test_status_reads_a_v1_project(tmp_path: Path) -> None:
    _project(tmp_path, "state_v1_fast.json")
    from click.testing import CliRunner

    from mltrainer.cli import cli

    res = CliRunner().invoke(cli, ["status", "-C", str(tmp_path), "--json"])
    assert res.exit_code == 0, res.output
    phases = {p["name"]: p for p in json.loads(res.stdout)["phases"]}
    assert phases["diagnose"]["status"] == "skipped"
    assert phases["diagnose"]["reason"] == "skipped: finalize took the fast path"
