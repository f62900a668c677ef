"""Phase 2, `mlt train-baseline`: the body in `phase.py`, its typed outcome in `outcome.py`, its
gate's checks in `checks.py`."""

from __future__ import annotations

from mltrainer.phases.baseline import checks
from mltrainer.phases.baseline.outcome import BaselineOutcome
from mltrainer.phases.baseline.phase import run

__all__ = ["BaselineOutcome", "checks", "run"]
