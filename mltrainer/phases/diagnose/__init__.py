"""Phase 3, `mlt diagnose`: the body in `phase.py`, its typed outcome in `outcome.py`, its
gate's checks in `checks.py`."""

from __future__ import annotations

from mltrainer.phases.diagnose import checks
from mltrainer.phases.diagnose.outcome import DiagnoseOutcome
from mltrainer.phases.diagnose.phase import run

__all__ = ["DiagnoseOutcome", "checks", "run"]
