"""The plan gate's checks as a table: evidence in (a recorded outcome, changed) → pass/fail and
the evidence out."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import judge, recorded_outcome

CASES = [
    # check id, outcome changes, threshold, passes, evidence that must be in the result
    ("seeds_fixed", {}, None, True, {"seed": 7}),
    ("seeds_fixed", {"seed": 8}, None, False, {"seed": 8}),
    ("seeds_fixed", {"seeded": ["python", "numpy"]}, None, False, {}),
    ("deterministic_flags", {}, None, True, {"use_deterministic_algorithms": True}),
    ("deterministic_flags", {"deterministic_flags.use_deterministic_algorithms": False}, None,
     False, {}),
    ("environment_captured", {}, None, True, {"missing": []}),
    ("environment_captured", {"environment.torch": None}, None, False, {"missing": ["torch"]}),
    ("data_fingerprinted", {"data.fingerprints.data": ""}, None, False, {"sha256": ""}),
    ("split_recorded", {}, 10, True, {"stratified": True}),
    ("split_recorded", {}, 1000, False, {}),
    ("split_recorded", {"data.fingerprints.test": ""}, 10, False, {}),
    ("no_duplicate_rows_across_splits", {}, 0, True, {"across_splits": 0}),
    ("no_duplicate_rows_across_splits", {"data.duplicates.train_test": 2}, 0, False,
     {"across_splits": 2}),
    ("no_duplicate_rows_across_splits", {"data.duplicates.train_test": 2}, 5, True, {}),
    ("classes_in_every_split", {"data.split.class_counts.test.2": 0}, None, False,
     {"missing": {"test": ["2"]}}),
    ("test_split_locked", {}, None, True, {"locked": True}),
    ("test_split_locked", {"test_lock": {"locked": False}}, None, False, {"locked": False}),
    ("trivial_baseline", {"trivial_baseline": {}}, None, False, {}),
    ("goal_set", {}, None, True, {"target": 0.99}),
    ("determinism_verified", {}, None, True, {"identical": True}),
    ("determinism_verified", {"determinism.identical": False}, None, False, {}),
    # identical NaNs reproduce nothing (issue 12)
    ("determinism_verified", {"determinism.non_finite_params": 12}, None, False,
     {"identical": True, "non_finite_params": 12}),
]


@pytest.mark.parametrize(("check", "changes", "threshold", "passes", "evidence"), CASES)
def test_plan_check(check: str, changes: dict, threshold: object, passes: bool, evidence: dict,
                    tmp_path: Path) -> None:
    result = judge("plan", check, recorded_outcome("plan", **changes), tmp_path, threshold)
    assert result.passed is passes, result.evidence
    assert evidence.items() <= result.evidence.items()


def test_goal_below_the_trivial_baseline_is_not_a_goal(tmp_path: Path) -> None:
    result = judge("plan", "goal_set", recorded_outcome("plan"), tmp_path, goal__target=0.2)
    assert not result.passed and result.evidence["trivial_baseline"] > 0.2


def test_classes_check_does_not_apply_to_regression(tmp_path: Path) -> None:
    result = judge("plan", "classes_in_every_split", recorded_outcome("plan"), tmp_path,
                   task="regression", goal__metric="rmse", goal__target=0.1)
    assert result.passed and result.evidence["applies"] is False
