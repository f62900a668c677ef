"""The bad-input suite: every case of `cases.CASES` on a copy of one prepared project (iris
from a CSV through plan and train-baseline) must exit as the contract says, print one line
and a fix (one JSON object under --json), never a traceback, and leave the project
byte-for-byte as it was where the contract says so. `bench/adversarial.py` prints the counts."""

from __future__ import annotations

from pathlib import Path

import pytest
from cases import CASES
from harness import prepare_fixture, run_case


@pytest.fixture(scope="session")
def adversarial_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare_fixture(tmp_path_factory.mktemp("adversarial") / "p")


def test_the_table_is_large_and_covers_every_group() -> None:
    assert len(CASES) >= 120
    assert len({c.id for c in CASES}) == len(CASES)
    assert {c.group for c in CASES} == {"config", "data", "state", "checkpoints", "predict",
                                        "cli", "kills", "disk"}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: object, adversarial_project: Path) -> None:
    verdict = run_case(case, adversarial_project)  # type: ignore[arg-type]
    assert verdict.clean, verdict.explain()
