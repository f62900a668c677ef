"""Phase 1, `mlt plan`: the body in `phase.py`, its gate's checks in `checks.py`."""

from __future__ import annotations

from mltrainer.phases.plan import checks
from mltrainer.phases.plan.phase import run

__all__ = ["checks", "run"]
