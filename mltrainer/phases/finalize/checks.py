"""Auto checks of the finalize gate. Each judges the finalize outcome (and, where the claim is
about files or the audit log, reads them again), and returns its evidence.

Checks that read the disk run again whenever the gate is judged (a sign-off, a waiver): an
artifact folder changed by hand after finalize fails its items at the next judgement.
"""

from __future__ import annotations

import math
from typing import Any

from mltrainer.gates import CheckResult, GateContext, check
from mltrainer.numbers import finite as finite_number
from mltrainer.phases.finalize.outcome import FinalizeOutcome
from mltrainer.phases.plan.outcome import PlanOutcome

Ctx = GateContext[FinalizeOutcome]  # what every check here reads


def _export(ctx: Ctx, fmt: str) -> dict[str, Any] | None:
    return next((e for e in ctx.outcome.exports if e.get("format") == fmt), None)


@check("schema_every_split")
def schema_every_split(ctx: Ctx, item: dict[str, Any]) -> CheckResult:
    per = ctx.outcome.data["schema"]
    splits = ("train", "val", "test")
    failing = {s: per[s]["problems"] for s in splits if s in per and not per[s]["passed"]}
    missing = [s for s in splits if s not in per]
    return CheckResult(not failing and not missing, {
        "rows": {s: per[s]["rows"] for s in splits if s in per},
        "n_features": per.get("train", {}).get("n_features"), "problems": failing,
        "missing_splits": missing})


@check("no_rows_shared_across_splits")
def no_rows_shared_across_splits(ctx: Ctx, item: dict[str, Any]) -> CheckResult:
    data = ctx.outcome.data
    dup = data["duplicates"]
    layer = {k: dup.get(k, 0) for k in ("train_val", "train_test", "val_test")}
    encoded = data["shared_encoded_rows"]
    shared = sum(layer.values()) + sum(encoded.values())
    return CheckResult(shared <= int(item.get("threshold", 0)),
                       {"data_layer": layer, "encoded_rows": encoded, "shared": shared})


@check("test_evaluated_once")
def test_evaluated_once(ctx: Ctx, item: dict[str, Any]) -> CheckResult:
    """Once for this config and data, and once in the project: a second config evaluated
    (`--reevaluate-test`) fails it, with every earlier result, until waived."""
    from mltrainer.phases.finalize.evaluation import audited_evaluations, load_evaluations

    ev = ctx.outcome.evaluation
    plan_lock = PlanOutcome.of(ctx.state).data.fingerprints["test"]
    recorded = load_evaluations(ctx.project).get(ev["key"])
    audited = audited_evaluations(ctx.project, ev["key"])
    in_project = len(audited_evaluations(ctx.project))
    hashes_match = ev["test_hash"] == ev["lock_hash"] == plan_lock
    ok = recorded is not None and len(audited) == 1 and in_project == 1 and hashes_match
    others = [{k: e.get(k) for k in ("number", "evaluated_at", "config_fingerprint", "metrics",
                                     "reason")}
              for e in ctx.outcome.test_evaluations if not e.get("current")]
    this = next((e for e in ctx.outcome.test_evaluations if e.get("current")), {})
    return CheckResult(ok, {
        "evaluations_of_this_config_and_data": len(audited),
        "evaluations_in_project": in_project,
        "evaluated_at": ev["evaluated_at"], "reused": ctx.outcome.reused_test_result,
        "other_evaluations": others, "reevaluation_reason": this.get("reason"),
        "test_hash": ev["test_hash"][:16], "plan_lock_hash": plan_lock[:16],
        "hash_matches_lock": hashes_match, "recorded_in": ev["file"]})


@check("tuning_used_validation_only")
def tuning_used_validation_only(ctx: Ctx, item: dict[str, Any]) -> CheckResult:
    from mltrainer.phases.finalize.evaluation import test_access_outside_finalize

    scan = test_access_outside_finalize(ctx.project)
    return CheckResult(not scan["violations"], scan)


def _improvement(ctx: GateContext) -> tuple[str, dict[str, Any]]:
    metric = ctx.cfg.goal.metric
    return metric, ctx.outcome.test["baseline_diff"][metric]


@check("beats_trivial_baseline_on_test")
def beats_trivial_baseline_on_test(ctx: Ctx, item: dict[str, Any]) -> CheckResult:
    metric, diff = _improvement(ctx)
    lo = diff["improvement_ci95"][0]
    return CheckResult(lo > float(item.get("threshold", 0.0)), {
        "metric": metric, "test": ctx.outcome.test["metrics"][metric],
        "trivial_baseline": diff["baseline"], "improvement": diff["improvement"],
        "improvement_ci95": diff["improvement_ci95"]})


@check("test_goal_met_with_confidence")
def test_goal_met_with_confidence(ctx: Ctx, item: dict[str, Any]) -> CheckResult:
    goal = ctx.outcome.goal
    metric, target = goal["metric"], float(goal["target"])
    lo, hi = ctx.outcome.test["ci95"][metric]
    bound, ok = (lo, lo >= target) if goal["greater_is_better"] else (hi, hi <= target)
    return CheckResult(bool(ok), {
        "metric": metric, "test": ctx.outcome.test["metrics"][metric], "ci95": [lo, hi],
        "bound_used": "lower" if goal["greater_is_better"] else "upper", "bound": bound,
        "target": target})


@check("finite_weights_and_outputs")
def finite_weights_and_outputs(ctx: Ctx, item: dict[str, Any]) -> CheckResult:
    fin = ctx.outcome.finite
    exports = {e["format"]: int(e.get("nonfinite_mismatch") or 0)
               for e in ctx.outcome.exports}
    bad = (fin["weights"]["non_finite"] + fin["val_outputs_non_finite"]
           + (fin["test_outputs_non_finite"] or 0))
    not_finite_exports = [e["format"] for e in ctx.outcome.exports
                          if e.get("max_abs_diff") is not None
                          and not math.isfinite(e["max_abs_diff"])]
    return CheckResult(bad == 0 and not not_finite_exports and not any(exports.values()), {
        "weights": fin["weights"]["values"], "non_finite_weights": fin["weights"]["non_finite"],
        "non_finite_val_outputs": fin["val_outputs_non_finite"],
        "non_finite_test_outputs": fin["test_outputs_non_finite"],
        "exports_with_non_finite_diff": not_finite_exports,
        "export_outputs_non_finite_where_torch_is_not": exports})


@check("seed_reproduces_weights")
def seed_reproduces_weights(ctx: Ctx, item: dict[str, Any]) -> CheckResult:
    probe = ctx.outcome.determinism
    return CheckResult(bool(probe.get("identical")), dict(probe))


@check("production_training_recorded")
def production_training_recorded(ctx: Ctx, item: dict[str, Any]) -> CheckResult:
    run = ctx.outcome.run
    root = ctx.project.root
    ckpt = root / str(run.get("checkpoint") or "")
    wanted = ["config.resolved.yaml", "env.json", "metrics.jsonl"]
    missing = [w for w in wanted if not (root / str(run.get("dir") or "") / w).is_file()]
    if not ckpt.is_file():
        missing.append(str(run.get("checkpoint")))
    epochs_ok = not run.get("retrained") or run.get("epochs_run") == run.get("epochs")
    return CheckResult(not missing and epochs_ok and bool(run.get("weights_sha256")), {
        "run": run.get("dir"), "retrained": run.get("retrained"),
        "trained_on": run.get("trained_on"), "rows": run.get("train_rows"),
        "epochs": run.get("epochs"), "epochs_run": run.get("epochs_run"),
        "best_epoch_of_source_run": run.get("best_epoch"), "missing": missing,
        "weights_sha256": str(run.get("weights_sha256"))[:16]})


LR_REL_TOLERANCE = 1e-9  # the same float arithmetic on both sides: equal up to rounding


@check("shipped_recipe_reproduces_validation")
def shipped_recipe_reproduces_validation(ctx: Ctx, item: dict[str, Any]) -> CheckResult:
    """The production recipe, replayed on train alone, gave the source run's lr at every step
    and its val metric within the threshold (absolute; relative for rmse/mae)."""
    run = ctx.outcome.run
    if not run.get("retrained"):
        return CheckResult(True, {"retrained": False, "checkpoint": run.get("checkpoint"),
                                  "note": "ships the validated run's best checkpoint itself"})
    replay = run.get("replay") or {}
    tolerance = float(item.get("threshold", 0.01))
    metric, val, source = replay.get("metric"), replay.get("val"), replay.get("source_val")
    lr = replay.get("lr") or {}
    evidence = {"replay_run": replay.get("dir"), "source_run": replay.get("source_run"),
                "metric": metric, "source_val": source, "replay_val": val,
                "tolerance": tolerance, "schedule_epochs": run.get("schedule_epochs"),
                "epochs": run.get("epochs"), "steps_per_epoch": run.get("steps_per_epoch"),
                "lr_steps_compared": lr.get("steps_compared"),
                "lr_max_rel_diff": lr.get("max_rel_diff"),
                "cost_s": replay.get("wall_time_s"),
                # the production model on the val rows it trained on, against the validated
                # run on them unseen (finalize refused to open the test split if short)
                "production_in_sample": run.get("in_sample_check")}
    if not replay or finite_number(val) is None or finite_number(source) is None:
        return CheckResult(False, {**evidence, "error": "no replay of the production recipe on "
                                   "train with a finite val metric to compare"})
    gap = abs(val - source)
    relative = metric in ("rmse", "mae")
    if relative:
        gap = gap / abs(source) if source else math.inf
    lr_ok = (lr.get("steps_compared") == lr.get("replay_steps") and bool(lr.get("replay_steps"))
             and lr.get("max_rel_diff") is not None
             and lr["max_rel_diff"] <= LR_REL_TOLERANCE)
    return CheckResult(gap <= tolerance and lr_ok, {
        **evidence, "gap": gap, "gap_kind": "relative" if relative else "absolute",
        "lr_matches": lr_ok})


@check("onnx_checker")
def onnx_checker(ctx: Ctx, item: dict[str, Any]) -> CheckResult:
    onnx = _export(ctx, "onnx")
    checker = (onnx or {}).get("checker") or {}
    return CheckResult(bool(onnx and onnx["ok"] and checker.get("passed")), {
        "path": (onnx or {}).get("path"), "full_check": checker.get("full_check"),
        "error": checker.get("error") or (onnx or {}).get("error"),
        "opset": (onnx or {}).get("opset")})


@check("export_parity")
def export_parity(ctx: Ctx, item: dict[str, Any]) -> CheckResult:
    fmt = item.get("format")
    exp = _export(ctx, str(fmt))
    if exp is None:
        return CheckResult(False, {"format": fmt, "error": "no such export in the outcome"})
    return CheckResult(bool(exp["ok"] and exp["passed"]), {
        "format": fmt, "max_abs_diff": exp["max_abs_diff"],
        "label_agreement": exp["label_agreement"], "tolerance": exp["tolerance"],
        "rows": exp["parity_rows"], "batch_sizes": exp["batch_sizes"], "reason": exp["reason"],
        **({"error": exp.get("parity_error") or exp.get("error")}
           if not exp["passed"] else {})})


@check("exports_reload_in_fresh_process")
def exports_reload_in_fresh_process(ctx: Ctx, item: dict[str, Any]) -> CheckResult:
    exports = ctx.outcome.exports
    per = {e["format"]: {"reloaded": e["reloaded_in_fresh_process"],
                         "pid": (e.get("worker") or {}).get("pid"),
                         "torch_imported": (e.get("worker") or {}).get("torch_imported")}
           for e in exports}
    onnx_torch_free = per.get("onnx", {}).get("torch_imported") is False
    ok = bool(exports) and all(v["reloaded"] for v in per.values()) and onnx_torch_free
    return CheckResult(ok, {"exports": per, "onnx_without_torch": onnx_torch_free})


@check("latency_and_size_recorded")
def latency_and_size_recorded(ctx: Ctx, item: dict[str, Any]) -> CheckResult:
    exports = ctx.outcome.exports
    table = {e["format"]: {"size_bytes": e.get("size_bytes"),
                           "p50_ms": (e.get("latency_ms") or {}).get("p50"),
                           "p95_ms": (e.get("latency_ms") or {}).get("p95")}
             for e in exports}
    missing = [f for f, v in table.items() if any(x is None for x in v.values())]
    limit = item.get("threshold")  # optional: a p95 budget in ms at batch 1
    slow = [f for f, v in table.items()
            if limit is not None and v["p95_ms"] is not None and v["p95_ms"] > float(limit)]
    return CheckResult(bool(exports) and not missing and not slow,
                       {"exports": table, "missing": missing, "over_budget": slow})


@check("deployment_snippet_runs")
def deployment_snippet_runs(ctx: Ctx, item: dict[str, Any]) -> CheckResult:
    dep = ctx.outcome.deployment
    snip = dep["snippet"]
    return CheckResult(bool(snip.get("ran") and snip.get("matches")),
                       {"notes": dep["path"], **snip})


@check("manifest_recorded")
def manifest_recorded(ctx: Ctx, item: dict[str, Any]) -> CheckResult:
    from mltrainer.phases.finalize.artifacts import read_manifest, verify_folder

    folder = ctx.project.root / ctx.outcome.artifact["dir"]
    manifest = read_manifest(folder) or {}
    verified = verify_folder(folder)
    env = manifest.get("environment", {})
    have = {
        "config_hash": bool(manifest.get("config", {}).get("config_fingerprint")),
        "data_hashes": bool(manifest.get("data", {}).get("fingerprints", {}).get("data")),
        "package_versions": bool(env.get("packages", {}).get("torch")),
        "git": "git" in env,
    }
    same = manifest.get("artifact_hash") == ctx.outcome.artifact_hash
    return CheckResult(all(have.values()) and verified["intact"] and same, {
        "manifest": ctx.outcome.artifact["manifest"], **have,
        "git_commit": (env.get("git") or {}).get("commit"),
        "git_note": (env.get("git") or {}).get("why"),
        "files_intact": verified["intact"], "mismatched": verified.get("mismatched"),
        "missing": verified.get("missing"), "matches_outcome_hash": same})


@check("model_card_complete")
def model_card_complete(ctx: Ctx, item: dict[str, Any]) -> CheckResult:
    from mltrainer.phases.finalize.card import card_completeness

    path = ctx.project.root / ctx.outcome.model_card["path"]
    if not path.is_file():
        return CheckResult(False, {"path": ctx.outcome.model_card["path"], "missing": True})
    found = card_completeness(path.read_text(encoding="utf-8"))
    return CheckResult(found["complete"], {"path": ctx.outcome.model_card["path"], **found})


@check("previous_artifact_kept")
def previous_artifact_kept(ctx: Ctx, item: dict[str, Any]) -> CheckResult:
    from mltrainer.phases.finalize.artifacts import previous_artifacts, read_latest

    previous = previous_artifacts(ctx.project, ctx.outcome.artifact_hash)
    lost = [p["dir"] for p in previous if not p["intact"]]
    latest = read_latest(ctx.project) or {}
    return CheckResult(not lost, {
        "current": ctx.outcome.artifact["dir"], "latest": latest.get("dir"),
        "previous": [p["dir"] for p in previous], "lost_or_changed": lost,
        "note": "no earlier artifact: this is the first" if not previous else None})
