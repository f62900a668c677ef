"""Auto checks of the diagnose gate."""

from __future__ import annotations

from typing import Any

from mltrainer.config import config_field
from mltrainer.gates import CheckResult, GateContext, check
from mltrainer.phases.diagnose.outcome import DiagnoseOutcome

Ctx = GateContext[DiagnoseOutcome]  # what every check here reads


@check("stream_diagnosed")
def stream_diagnosed(ctx: Ctx, item: dict[str, Any]) -> CheckResult:
    """Whatever stream the run left is evidence: a run stopped by a detector within its first
    epoch left only steps, and that is exactly the run diagnose exists for."""
    events = ctx.outcome.events
    return CheckResult(events.get("epoch", 0) + events.get("step", 0) >= 1,
                       {"stream": ctx.outcome.stream, **events,
                        "findings": [f["id"] for f in ctx.outcome.findings]})


@check("findings_have_evidence")
def findings_have_evidence(ctx: Ctx, item: dict[str, Any]) -> CheckResult:
    findings = ctx.outcome.findings
    bare = [f["id"] for f in findings
            if not f.get("evidence")
            or not any(v is not None for v in f.get("onset", {}).values())]
    return CheckResult(not bare, {"findings": len(findings), "without_evidence_or_onset": bare})


@check("findings_have_playbooks")
def findings_have_playbooks(ctx: Ctx, item: dict[str, Any]) -> CheckResult:
    findings = ctx.outcome.findings
    missing = [f["id"] for f in findings if not f.get("playbook")]
    return CheckResult(not missing, {"playbooks": {f["id"]: f.get("playbook") for f in findings},
                                     "missing": missing})


@check("recommendations_actionable")
def recommendations_actionable(ctx: Ctx, item: dict[str, Any]) -> CheckResult:
    findings = ctx.outcome.findings
    without = [f["id"] for f in findings if not f.get("recommendations")]
    bad_paths = []
    for f in findings:
        for rec in f.get("recommendations", []):
            try:
                config_field(rec["path"])
            except KeyError:
                bad_paths.append(f"{f['id']}: {rec['path']}")
    return CheckResult(not without and not bad_paths, {
        "recommendations": len(ctx.outcome.recommendations),
        "findings_without_recommendation": without, "unknown_config_paths": bad_paths})
