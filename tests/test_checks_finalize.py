"""The finalize gate's checks that judge the outcome alone, as a table (evidence in →
pass/fail and evidence out). Checks that read the artifact folder are exercised end to end in
tests/test_finalize.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import judge, recorded_outcome

REPLAY = {"dir": "runs/r", "metric": "accuracy", "val": 0.72, "source_val": 0.72,
          "source_run": "runs/s", "wall_time_s": 1.5,
          "lr": {"steps_compared": 24, "replay_steps": 24, "max_abs_diff": 0.0,
                 "max_rel_diff": 0.0}}

CASES = [
    ("schema_every_split", {}, None, True, {"problems": {}, "missing_splits": []}),
    ("schema_every_split", {"data.schema.test.passed": False,
                            "data.schema.test.problems": ["column x: text in a number"]}, None,
     False, {"problems": {"test": ["column x: text in a number"]}}),
    ("no_rows_shared_across_splits", {}, 0, True, {"shared": 0}),
    ("no_rows_shared_across_splits", {"data.shared_encoded_rows.train_test": 3}, 0, False,
     {"shared": 3}),
    ("beats_trivial_baseline_on_test", {}, 0.0, True, {"metric": "accuracy"}),
    ("beats_trivial_baseline_on_test",
     {"test.baseline_diff.accuracy.improvement_ci95": [-0.1, 0.3]}, 0.0, False, {}),
    ("test_goal_met_with_confidence", {}, None, False, {"bound_used": "lower", "bound": 0.6}),
    ("test_goal_met_with_confidence", {"goal.target": 0.5}, None, True, {"target": 0.5}),
    ("finite_weights_and_outputs", {}, None, True, {"non_finite_weights": 0}),
    ("finite_weights_and_outputs", {"finite.weights.non_finite": 4}, None, False,
     {"non_finite_weights": 4}),
    ("finite_weights_and_outputs", {"finite.test_outputs_non_finite": 1}, None, False, {}),
    ("seed_reproduces_weights", {}, None, True, {"identical": True}),
    ("seed_reproduces_weights", {"determinism.identical": False}, None, False, {}),
    # the shipped recipe against the validated one (a replay on train alone)
    ("shipped_recipe_reproduces_validation", {"run.retrained": False}, 0.01, True,
     {"retrained": False}),
    ("shipped_recipe_reproduces_validation", {}, 0.01, False, {"replay_val": None}),
    ("shipped_recipe_reproduces_validation", {"run.replay": REPLAY}, 0.01, True,
     {"gap": 0.0, "lr_matches": True, "cost_s": 1.5}),
    ("shipped_recipe_reproduces_validation", {"run.replay": {**REPLAY, "val": 0.70}}, 0.01,
     False, {"gap_kind": "absolute", "lr_matches": True}),
    ("shipped_recipe_reproduces_validation", {"run.replay": {**REPLAY, "val": 0.715}}, 0.01,
     True, {}),
    ("shipped_recipe_reproduces_validation",  # a compressed schedule: another lr at some step
     {"run.replay": {**REPLAY, "lr": {**REPLAY["lr"], "max_rel_diff": 0.37}}}, 0.01, False,
     {"lr_matches": False, "gap": 0.0}),
    ("shipped_recipe_reproduces_validation",  # the source stream ended before the replay's
     {"run.replay": {**REPLAY, "lr": {**REPLAY["lr"], "steps_compared": 10}}}, 0.01, False,
     {"lr_matches": False}),
]


@pytest.mark.parametrize(("check", "changes", "threshold", "passes", "evidence"), CASES)
def test_finalize_check(check: str, changes: dict, threshold: object, passes: bool,
                        evidence: dict, tmp_path: Path) -> None:
    result = judge("finalize", check, recorded_outcome("finalize", **changes), tmp_path,
                   threshold)
    assert result.passed is passes, result.evidence
    assert evidence.items() <= result.evidence.items()


def test_lower_is_better_goal_uses_the_upper_bound(tmp_path: Path) -> None:
    outcome = recorded_outcome("finalize", **{
        "goal": {"metric": "rmse", "target": 1.0, "greater_is_better": False},
        "test.metrics": {"rmse": 0.8}, "test.ci95": {"rmse": [0.7, 1.2]}})
    result = judge("finalize", "test_goal_met_with_confidence", outcome, tmp_path)
    assert not result.passed and result.evidence["bound_used"] == "upper"
    assert result.evidence["bound"] == 1.2


def test_recipe_gap_is_relative_for_rmse(tmp_path: Path) -> None:
    replay = {**REPLAY, "metric": "rmse", "val": 10.5, "source_val": 10.0}
    result = judge("finalize", "shipped_recipe_reproduces_validation",
                   recorded_outcome("finalize", **{"run.replay": replay}), tmp_path, 0.01)
    assert not result.passed and result.evidence["gap"] == pytest.approx(0.05)
    assert result.evidence["gap_kind"] == "relative"
