"""Phase 1, `mlt plan`: the body in `phase.py`, its typed outcome in `outcome.py`, its
gate's checks in `checks.py`."""

from __future__ import annotations

from mltrainer.phases.plan import checks
from mltrainer.phases.plan.outcome import PlanOutcome
from mltrainer.phases.plan.phase import run

__all__ = ["PlanOutcome", "checks", "run"]
