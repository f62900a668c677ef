"""The baseline gate's checks as a table (evidence in → pass/fail and evidence out)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import judge, recorded_outcome

HIST = [{"epoch": 1, "val": {"accuracy": 0.5}}, {"epoch": 2, "val": {"accuracy": float("nan")}}]

CASES = [
    ("val_metric_every_epoch", {}, None, True, {"epochs": 4, "missing_epochs": []}),
    ("val_metric_every_epoch", {"history": HIST}, None, False, {"missing_epochs": [2]}),
    ("val_metric_every_epoch", {"history": []}, None, False, {"epochs": 0}),
    ("beats_trivial_baseline", {}, 0.05, False, {"absolute_gain": 0.0}),
    ("beats_trivial_baseline", {"best_metric": 0.9}, 0.05, True, {"best": 0.9}),
    ("beats_trivial_baseline", {"best_metric": 0.35}, 0.05, False, {}),
    ("beats_trivial_baseline", {"best_metric": None}, 0.05, False, {"best": None}),
    ("checkpoint_reproduces", {}, None, True, {"identical": True}),
    ("checkpoint_reproduces", {"reload.identical": False}, None, False, {"identical": False}),
    ("goal_met", {}, None, False, {"target": 0.99}),
    ("goal_met", {"goal_met": True, "best_metric": 0.995}, None, True, {"best": 0.995}),
]


@pytest.mark.parametrize(("check", "changes", "threshold", "passes", "evidence"), CASES)
def test_baseline_check(check: str, changes: dict, threshold: object, passes: bool,
                        evidence: dict, tmp_path: Path) -> None:
    result = judge("baseline", check, recorded_outcome("baseline", **changes), tmp_path,
                   threshold)
    assert result.passed is passes, result.evidence
    assert evidence.items() <= result.evidence.items()


def test_lower_is_better_metrics_judge_the_relative_reduction(tmp_path: Path) -> None:
    outcome = recorded_outcome("baseline", best_metric=0.8,
                               trivial_baseline={"rmse": 1.0}, metric="rmse")
    result = judge("baseline", "beats_trivial_baseline", outcome, tmp_path, 0.1,
                   task="regression", goal__metric="rmse", goal__target=0.5)
    assert result.passed and result.evidence["relative_reduction"] == pytest.approx(0.2)


def test_missing_run_folder_fails_run_recorded(tmp_path: Path) -> None:
    result = judge("baseline", "run_recorded", recorded_outcome("baseline"), tmp_path)
    assert not result.passed and "metrics.jsonl" in result.evidence["missing"]


@pytest.mark.parametrize(("stopped", "passes"), [("completed", True),
                                                 ("detector:nan_loss", False)])
def test_a_detector_stop_fails_all_losses_finite_even_with_finite_losses(
        stopped: str, passes: bool, tmp_path: Path) -> None:
    """nan_loss also stops on a non-finite gradient norm: every logged loss may be finite, and
    the run still diverged; its config must not open the fast path."""
    from mltrainer.stream import MetricWriter

    outcome = recorded_outcome("baseline", **{"run.stopped_reason": stopped})
    run_dir = tmp_path / outcome.run.dir
    run_dir.mkdir(parents=True)
    with MetricWriter(run_dir / "metrics.jsonl", run_id="r", task="classification",
                      metric="accuracy") as writer:
        writer.write({"type": "step", "epoch": 1, "step": 1, "loss": 0.7, "lr": 0.1,
                      "grad_norm": float("inf")})
    result = judge("baseline", "all_losses_finite", outcome, tmp_path)
    assert result.passed is passes, result.evidence
    assert result.evidence["non_finite"] == 0
