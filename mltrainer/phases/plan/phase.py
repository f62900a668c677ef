"""Phase 1, `mlt plan`: fix seeds and flags, capture the environment, load, fingerprint and split
the data, compute trivial baselines, prove the test split is locked, and verify determinism by
training a few steps twice through the engine's own step function."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from mltrainer.errors import TestSplitLockedError
from mltrainer.phases.plan.outcome import PlanData, PlanGoal, PlanOutcome
from mltrainer.runner import PhaseContext
from mltrainer.state import atomic_write_text

DETERMINISM_STEPS = 20  # optimisation steps per probe run: enough to touch every code path


def run(ctx: PhaseContext) -> PlanOutcome:
    from mltrainer.data import cache_prepared, prepare_data, trivial_baseline
    from mltrainer.engine import determinism_probe, seed_everything, set_deterministic
    from mltrainer.engine.launch import Launch
    from mltrainer.engine.probe import distributed_probe, probe_environment
    from mltrainer.env import capture_environment
    from mltrainer.fingerprints import probe_inputs

    cfg, project = ctx.cfg, ctx.project
    launch = Launch.from_options(ctx.options, cfg)  # bad --nproc for this project: exit 2 now
    # measured from the source, never read from the cache: this is the evidence the gate judges
    bundle = prepare_data(cfg, project.root, audit=ctx.audit, cache=False)  # bad data → exit 2
    seed_everything(cfg.seed)
    flags = set_deterministic()
    env = capture_environment(project.root)
    atomic_write_text(project.mlt_dir / "env.json", _json(env))

    try:
        bundle.test(phase="plan")
        lock = {"locked": False}
    except TestSplitLockedError as exc:
        lock = {"locked": True, "refusal": exc.message}

    baseline = trivial_baseline(bundle, cfg.goal.metric)
    probe = determinism_probe(cfg, bundle, steps=DETERMINISM_STEPS, root=project.root)
    probe["inputs"] = probe_inputs(cfg, bundle.fingerprints.get("train"), project.root,
                                   probe_environment(cfg))  # finalize may reuse it
    if launch.is_distributed:  # `mlt plan --nproc N`: the same probe under torchrun, twice
        with tempfile.TemporaryDirectory(prefix="probe-", dir=project.mlt_dir) as tmp:
            probe["distributed"] = distributed_probe(cfg, DETERMINISM_STEPS, project.root,
                                                     launch, Path(tmp), bundle.fingerprints)
        probe["identical"] = bool(probe["identical"] and probe["distributed"]["identical"])
    cache_prepared(cfg, project.root, bundle)  # the later commands load it (.mlt/cache/data/)
    return PlanOutcome(
        seed=cfg.seed,
        seeded=["python", "numpy", "torch"],
        deterministic_flags=flags,
        environment={
            "python": env["python"], "torch": env["torch"]["version"], "device": env["device"],
            "platform": env["platform"], "git": env.get("git"), "file": ".mlt/env.json",
        },
        data=PlanData(source=bundle.source, spec=bundle.spec.to_dict(),
                      fingerprints=bundle.fingerprints, split=bundle.split_info,
                      duplicates=bundle.duplicates),
        test_lock=lock,
        goal=PlanGoal(metric=cfg.goal.metric, target=cfg.goal.target,
                      greater_is_better=cfg.greater_is_better),
        trivial_baseline=baseline,
        determinism=probe,
    )


def _json(obj: Any) -> str:
    import json

    return json.dumps(obj, indent=2, default=str) + "\n"
