"""Checklist gates: the check contract, `checklists/<phase>.yaml`, every item judged with evidence.

A check is a small function, registered by id with `@check("<id>")` in its phase package's
`checks.py`, that receives the gate context (the phase's outcome, the config, the saved state)
and the checklist item (its `threshold` among others) and returns `CheckResult(passed,
evidence)`: never a bare bool. `mltrainer.phases` imports every phase's checks statically, so
the registry is complete wherever a phase can run.

Auto items run their registered check; manual items stay `pending` until `mlt signoff`; a waived
item counts as met and carries its reason into every later report. A check that raises is a
failed item whose evidence says why (never a crashed gate).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from mltrainer.config import MltConfig
from mltrainer.errors import BadInputError
from mltrainer.project import Project
from mltrainer.resources import load_checklist
from mltrainer.state import GateItem, GateResult, ProjectState

OutcomeT = TypeVar("OutcomeT", bound=BaseModel)


@dataclass(frozen=True)
class CheckResult:
    passed: bool
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass
class GateContext(Generic[OutcomeT]):
    phase: str
    cfg: MltConfig
    outcome: OutcomeT  # what the phase measured: its typed outcome (a `runner.Outcome`)
    state: ProjectState
    project: Project


CheckFn = Callable[[GateContext[Any], dict[str, Any]], CheckResult]
CHECKS: dict[str, CheckFn] = {}


def check(check_id: str) -> Callable[[CheckFn], CheckFn]:
    def register(fn: CheckFn) -> CheckFn:
        if check_id in CHECKS:
            raise ValueError(f"check id {check_id!r} registered twice")
        CHECKS[check_id] = fn
        return fn

    return register


def registry() -> dict[str, CheckFn]:
    """Every registered check (filled when `mltrainer.phases` imports the phases' checks)."""
    return CHECKS


def checklist_items(phase: str) -> list[dict[str, Any]]:
    items = load_checklist(phase)["items"]
    checks = registry()
    for item in items:
        if "id" not in item or "text" not in item:
            raise BadInputError(
                f"checklists/{phase}.yaml: every item needs 'id' and 'text': {item}")
        if "check" in item and item["check"] not in checks:
            raise BadInputError(
                f"checklists/{phase}.yaml: item {item['id']!r} names unknown check "
                f"{item['check']!r}",
                hint=f"known checks: {', '.join(sorted(checks))}",
            )
        if "check" not in item and not item.get("manual"):
            raise BadInputError(
                f"checklists/{phase}.yaml: item {item['id']!r} needs 'check: <id>' or "
                "'manual: true'"
            )
    return items


def item_ids(phase: str) -> list[str]:
    return [i["id"] for i in load_checklist(phase)["items"]]


def evaluate_gate(ctx: GateContext) -> GateResult:
    checks = registry()
    state: ProjectState = ctx.state
    results = []
    for item in checklist_items(ctx.phase):
        waiver = state.waivers.get(ctx.phase, {}).get(item["id"])
        signoff = state.signoffs.get(ctx.phase, {}).get(item["id"])
        required = bool(item.get("required", True))
        if "check" in item:
            kind = "auto"
            try:
                res = checks[item["check"]](ctx, item)
            except Exception as exc:  # a broken check fails its item, visibly, with the error
                res = CheckResult(False, {"error": f"{type(exc).__name__}: {exc}"})
            status = "pass" if res.passed else "fail"
            evidence = dict(res.evidence)
            if "threshold" in item:
                evidence.setdefault("threshold", item["threshold"])
        else:
            kind = "manual"
            valid = signoff is not None and _signoff_valid(signoff.artifact_hash, ctx.outcome)
            status = "pass" if valid else "pending"
            evidence = {"signed_off_by": signoff.by, "at": signoff.at} if valid else {}
            if signoff is not None and not valid:
                evidence["voided"] = (
                    "the sign-off names no artifact (it was given before one existed)"
                    if not signoff.artifact_hash else "the artifact changed after the sign-off")
        if waiver is not None and status in ("fail", "pending"):
            status = "waived"
        results.append(
            GateItem(
                id=item["id"], text=item["text"], kind=kind, status=status, required=required,
                evidence=evidence, waiver=waiver, signoff=signoff if kind == "manual" else None,
                fix=_fix(ctx.phase, item, kind) if status in ("fail", "pending") else None,
            )
        )
    passed = all(not r.required or r.status in ("pass", "waived") for r in results)
    return GateResult(phase=ctx.phase, passed=passed, items=results)


def _fix(phase: str, item: dict[str, Any], kind: str) -> str | None:
    """How to meet an unmet item: the checklist's `fix`, or for a manual item the sign-off."""
    if item.get("fix"):
        return str(item["fix"])
    if kind == "manual":
        return f"a person reviews it, then `mlt signoff {phase} {item['id']} --by NAME`"
    return None


def binds_artifact(outcome_type: type[BaseModel]) -> bool:
    """Whether a phase's sign-offs approve an artifact (its outcome records `artifact_hash`)."""
    return "artifact_hash" in getattr(outcome_type, "model_fields", {})


def _signoff_valid(signed_hash: str | None, outcome: BaseModel) -> bool:
    """A sign-off of a phase that ships an artifact approves that artifact: it is valid only
    for the exact hash it named (a missing hash on either side approves nothing)."""
    if not binds_artifact(type(outcome)):
        return True
    current = getattr(outcome, "artifact_hash", None)
    return bool(signed_hash) and bool(current) and signed_hash == current
