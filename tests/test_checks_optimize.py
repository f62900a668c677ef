"""The optimize gate's checks as a table (evidence in → pass/fail and evidence out)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import judge, recorded_outcome

SEARCHED = {"decision": None, "decided_at": None}
COUNTS = "study.counts"

CASES = [
    ("requested_trials_done", SEARCHED, True, {"requested": 2, "complete": 2}),
    ("requested_trials_done", {**SEARCHED, "requested_trials": 5}, False, {"requested": 5}),
    ("requested_trials_done", {**SEARCHED, COUNTS: {"complete": 0, "pruned": 2}}, False, {}),
    ("requested_trials_done", {**SEARCHED, "requested_trials": 5, "study.stopped": "timeout"},
     True, {"stopped": "timeout"}),
    ("requested_trials_done", {"requested_trials": 5, "chosen": "baseline"}, True,
     {"decision": "stop: the baseline is kept, nothing from the search is used"}),
    ("seeds_compared", SEARCHED, True, {"n_optimized": 2, "n_baseline": 2}),
    ("seeds_compared", {**SEARCHED, "comparison": None}, False,
     {"why": "no completed trial to compare with the baseline"}),
    ("improvement_or_decision", SEARCHED, False, {"improvement": 0.5, "chosen": "optimized"}),
    ("improvement_or_decision", {**SEARCHED, "comparison.significant": True}, True,
     {"why": "the improvement's 95% CI lies above 0"}),
    ("improvement_or_decision", {**SEARCHED, "goal.met_by_chosen": True}, True,
     {"why": "the chosen config meets the goal"}),
    ("improvement_or_decision", {}, True,
     {"why": "decision recorded: finalize with the optimized config"}),
    ("search_space_traced", {}, True, {"untraced": [], "recommended_not_searched": []}),
    ("search_space_traced", {"space.params.0.sources": []}, False,
     {"untraced": ["training.lr"]}),
]


@pytest.mark.parametrize(("check", "changes", "passes", "evidence"), CASES)
def test_optimize_check(check: str, changes: dict, passes: bool, evidence: dict,
                        tmp_path: Path) -> None:
    result = judge("optimize", check, recorded_outcome("optimize", **changes), tmp_path)
    assert result.passed is passes, result.evidence
    assert evidence.items() <= result.evidence.items()
