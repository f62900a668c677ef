"""The diagnose gate's checks as a table (evidence in → pass/fail and evidence out)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import judge, recorded_outcome

BARE = {"id": "overfitting", "severity": "warning", "onset": {"epoch": None, "step": None},
        "evidence": {}, "playbook": None, "recommendations": []}
ODD = {**BARE, "evidence": {"x": 1}, "onset": {"epoch": 2, "step": None},
       "playbook": "diagnostics/overfitting.md",
       "recommendations": [{"kind": "set", "path": "training.no_such_field", "value": 1}]}

CASES = [
    ("stream_diagnosed", {}, True, {"epoch": 4, "step": 24}),
    # a baseline stopped within its first epoch left steps only: that is evidence enough
    ("stream_diagnosed", {"events": {"step": 3, "epoch": 0}}, True, {"epoch": 0, "step": 3}),
    ("stream_diagnosed", {"events": {"step": 0, "epoch": 0}}, False, {"epoch": 0}),
    ("findings_have_evidence", {}, True, {"findings": 2, "without_evidence_or_onset": []}),
    ("findings_have_evidence", {"findings": [BARE]}, False,
     {"without_evidence_or_onset": ["overfitting"]}),
    ("findings_have_playbooks", {}, True, {"missing": []}),
    ("findings_have_playbooks", {"findings": [BARE]}, False, {"missing": ["overfitting"]}),
    ("recommendations_actionable", {}, True, {"unknown_config_paths": []}),
    ("recommendations_actionable", {"findings": [BARE]}, False,
     {"findings_without_recommendation": ["overfitting"]}),
    ("recommendations_actionable", {"findings": [ODD]}, False,
     {"unknown_config_paths": ["overfitting: training.no_such_field"]}),
    ("findings_have_evidence", {"findings": []}, True, {"findings": 0}),
]


@pytest.mark.parametrize(("check", "changes", "passes", "evidence"), CASES)
def test_diagnose_check(check: str, changes: dict, passes: bool, evidence: dict,
                        tmp_path: Path) -> None:
    result = judge("diagnose", check, recorded_outcome("diagnose", **changes), tmp_path)
    assert result.passed is passes, result.evidence
    assert evidence.items() <= result.evidence.items()
