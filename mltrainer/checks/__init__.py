"""Auto checks: small functions, registered by id, that judge one gate item with evidence.

A check receives the gate context (the phase's outcome, the config, the saved state) and the
checklist item (its `threshold` among others) and returns `CheckResult(passed, evidence)`: never
a bare bool. The checklists in `checklists/<phase>.yaml` name checks by id.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mltrainer.config import MltConfig
from mltrainer.project import Project
from mltrainer.state import ProjectState


@dataclass(frozen=True)
class CheckResult:
    passed: bool
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass
class GateContext:
    phase: str
    cfg: MltConfig
    outcome: dict[str, Any]  # what the phase measured, as it will be saved in the state
    state: ProjectState
    project: Project


CheckFn = Callable[[GateContext, dict[str, Any]], CheckResult]
CHECKS: dict[str, CheckFn] = {}


def check(check_id: str) -> Callable[[CheckFn], CheckFn]:
    def register(fn: CheckFn) -> CheckFn:
        if check_id in CHECKS:
            raise ValueError(f"check id {check_id!r} registered twice")
        CHECKS[check_id] = fn
        return fn

    return register


def registry() -> dict[str, CheckFn]:
    """Every check, after importing each module of this package (one per phase)."""
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"mltrainer.checks.{info.name}")
    return CHECKS
