"""The check contract, over every registered check: each returns a CheckResult whose evidence
is a JSON-serialisable dict, and a check that raises fails its item (with the error as its
evidence) instead of crashing the gate."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import recorded_outcome

from mltrainer.config import parse_config
from mltrainer.gates import CheckResult, GateContext, checklist_items, evaluate_gate, registry
from mltrainer.phases import PHASES
from mltrainer.project import Project
from mltrainer.state import load_state

DATA = Path(__file__).parent / "data"


def _ctx(phase: str, tmp_path: Path) -> GateContext:
    import yaml

    (tmp_path / ".mlt").mkdir(exist_ok=True)
    shutil.copy(DATA / "state_v1_typical.json", tmp_path / ".mlt" / "state.json")
    cfg = parse_config(yaml.safe_load((DATA / "state_v1.mlt.yaml").read_text()))
    project = Project.at(tmp_path)
    return GateContext(phase, cfg, recorded_outcome(phase), load_state(project), project)


def test_every_checklist_check_is_registered_once() -> None:
    named = {i["check"] for p in PHASES for i in checklist_items(p) if "check" in i}
    assert named <= set(registry())
    assert len(registry()) == len(set(registry()))


@pytest.mark.parametrize("phase", list(PHASES))
def test_every_item_a_gate_can_fail_says_how_to_meet_it(phase: str, tmp_path: Path) -> None:
    """An assistant driving mlt reads the `fix:` line of a failed item; 21 of 51 automatic items
    had none (checkpoint_reproduces, improvement_or_decision, the parity items, ...). Each
    automatic item has one now, in the checklist (data), and a failing item carries it."""
    items = checklist_items(phase)
    assert all(i.get("fix") for i in items if not i.get("manual")), [
        i["id"] for i in items if not i.get("fix") and not i.get("manual")]
    ctx = _ctx(phase, tmp_path)
    result = evaluate_gate(ctx)
    for item in result.items:
        assert (item.fix is not None) == (item.status in ("fail", "pending")), item


@pytest.mark.parametrize("phase", list(PHASES))
def test_every_check_returns_evidence(phase: str, tmp_path: Path) -> None:
    ctx = _ctx(phase, tmp_path)
    for item in checklist_items(phase):
        if "check" not in item:
            continue
        try:
            result = registry()[item["check"]](ctx, item)
        except Exception:  # allowed: the gate turns it into a failed item (next test)
            continue
        assert isinstance(result, CheckResult), item["id"]
        assert isinstance(result.passed, bool) and isinstance(result.evidence, dict), item["id"]
        json.dumps(result.evidence, default=str)


@pytest.mark.parametrize("phase", list(PHASES))
def test_a_check_that_raises_fails_its_item(phase: str, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = _ctx(phase, tmp_path)
    first = next(i for i in checklist_items(phase) if "check" in i)

    def broken(ctx: GateContext, item: dict) -> CheckResult:
        raise KeyError("a field the check expected")

    monkeypatch.setitem(registry(), first["check"], broken)
    gate = evaluate_gate(ctx)
    items = {i.id: i for i in gate.items}
    assert items[first["id"]].status == "fail"
    assert "KeyError" in items[first["id"]].evidence["error"]
    assert len(gate.items) == len(checklist_items(phase))  # every other item still judged
