"""Auto checks of the plan gate. Each reads the plan outcome (`ctx.outcome`, a PlanOutcome) and
returns its evidence."""

from __future__ import annotations

from typing import Any

from mltrainer.gates import CheckResult, GateContext, check
from mltrainer.phases.plan.outcome import PlanOutcome

Ctx = GateContext[PlanOutcome]  # what every check here reads


@check("seeds_fixed")
def seeds_fixed(ctx: Ctx, item: dict[str, Any]) -> CheckResult:
    seeded = ctx.outcome.seeded
    ok = ctx.outcome.seed == ctx.cfg.seed and {"python", "numpy", "torch"} <= set(seeded)
    return CheckResult(ok, {"seed": ctx.outcome.seed, "seeded": seeded})


@check("deterministic_flags")
def deterministic_flags(ctx: Ctx, item: dict[str, Any]) -> CheckResult:
    flags = ctx.outcome.deterministic_flags
    ok = bool(flags.get("use_deterministic_algorithms"))
    return CheckResult(ok, dict(flags))


@check("environment_captured")
def environment_captured(ctx: Ctx, item: dict[str, Any]) -> CheckResult:
    env = ctx.outcome.environment
    missing = [k for k in ("python", "torch", "platform", "device") if not env.get(k)]
    return CheckResult(not missing, {**env, "missing": missing})


@check("data_fingerprinted")
def data_fingerprinted(ctx: Ctx, item: dict[str, Any]) -> CheckResult:
    fp = ctx.outcome.data.fingerprints
    return CheckResult(bool(fp.get("data")), {"source": ctx.outcome.data.source,
                                              "sha256": fp.get("data")})


@check("split_recorded")
def split_recorded(ctx: Ctx, item: dict[str, Any]) -> CheckResult:
    fps, split = ctx.outcome.data.fingerprints, ctx.outcome.data.split
    sizes = split.get("sizes", {})
    smallest = min(sizes.values()) if sizes else 0
    ok = all(fps.get(s) for s in ("train", "val", "test")) and smallest >= item.get("threshold", 1)
    hashes = {s: fps.get(s) for s in ("train", "val", "test")}
    return CheckResult(ok, {"sizes": sizes, "hashes": hashes,
                            "seed": split.get("seed"), "stratified": split.get("stratified")})


@check("no_duplicate_rows_across_splits")
def no_duplicate_rows(ctx: Ctx, item: dict[str, Any]) -> CheckResult:
    dup = ctx.outcome.data.duplicates
    across = sum(v for k, v in dup.items() if k in ("train_val", "train_test", "val_test"))
    return CheckResult(across <= item.get("threshold", 0), {**dup, "across_splits": across})


@check("classes_in_every_split")
def classes_in_every_split(ctx: Ctx, item: dict[str, Any]) -> CheckResult:
    if ctx.cfg.task != "classification":
        return CheckResult(True, {"applies": False, "why": "regression task"})
    counts = ctx.outcome.data.split.get("class_counts", {})
    labels = ctx.outcome.data.spec.get("class_labels") or []
    missing = {
        split: [str(lab) for lab in labels if not per.get(str(lab))]
        for split, per in counts.items()
    }
    missing = {k: v for k, v in missing.items() if v}
    return CheckResult(bool(counts) and not missing, {"class_counts": counts, "missing": missing})


@check("test_split_locked")
def test_split_locked(ctx: Ctx, item: dict[str, Any]) -> CheckResult:
    lock = ctx.outcome.test_lock
    return CheckResult(bool(lock.get("locked")), dict(lock))


@check("trivial_baseline")
def trivial_baseline(ctx: Ctx, item: dict[str, Any]) -> CheckResult:
    base = ctx.outcome.trivial_baseline
    metric = ctx.cfg.goal.metric
    return CheckResult(base.get(metric) is not None, dict(base))


@check("goal_set")
def goal_set(ctx: Ctx, item: dict[str, Any]) -> CheckResult:
    metric, target = ctx.cfg.goal.metric, ctx.cfg.goal.target
    base = ctx.outcome.trivial_baseline.get(metric)
    if base is None:
        return CheckResult(False, {"metric": metric, "target": target, "error": "no baseline"})
    above = target > base if ctx.cfg.greater_is_better else target < base
    return CheckResult(above, {"metric": metric, "target": target, "trivial_baseline": base,
                               "greater_is_better": ctx.cfg.greater_is_better})


@check("determinism_verified")
def determinism_verified(ctx: Ctx, item: dict[str, Any]) -> CheckResult:
    probe = ctx.outcome.determinism
    # bitwise-identical weights that are NaN or inf reproduce nothing (older records lack
    # `reproduced`: their non_finite_params count decides)
    finite = not probe.get("non_finite_params")
    return CheckResult(bool(probe.get("identical")) and finite, dict(probe))
