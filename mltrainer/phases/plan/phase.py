"""Phase 1, `mlt plan`: fix seeds and flags, capture the environment, load, fingerprint and split
the data, compute trivial baselines, prove the test split is locked, and verify determinism by
training a few steps twice through the engine's own step function."""

from __future__ import annotations

import contextlib
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

from mltrainer.config import MltConfig
from mltrainer.errors import TestSplitLockedError
from mltrainer.phases.plan.outcome import PlanData, PlanGoal, PlanOutcome
from mltrainer.runner import PhaseContext
from mltrainer.state import atomic_write_text

DETERMINISM_STEPS = 20  # optimisation steps per probe run: enough to touch every code path


def run(ctx: PhaseContext) -> PlanOutcome:
    from mltrainer.background import Forked
    from mltrainer.data import cache_prepared, prepare_data
    from mltrainer.engine.launch import Launch
    from mltrainer.env import capture_environment
    from mltrainer.fingerprints import probe_inputs

    cfg, project = ctx.cfg, ctx.project
    launch = Launch.from_options(ctx.options, cfg)  # bad --nproc for this project: exit 2 now
    # A table's preparation (pandas, scikit-learn, hashing, the split, the trivial baseline)
    # needs no torch, and torch's import needs no data: a forked child prepares while this
    # process imports torch, on two cores at once. The same function on the same inputs
    # gives the same bundle (its arrays come back pickled, bit for bit); a child with no
    # answer (it failed, or warned) means the data is prepared here, errors included.
    forked = Forked.start(partial(_prepared, cfg, project.root)) if _table(cfg) else None
    with forked or contextlib.nullcontext():
        from mltrainer.engine import determinism_probe, seed_everything, set_deterministic
        from mltrainer.engine.probe import distributed_probe, probe_environment

        if forked is not None:
            _warm_optimizer()  # its imports (~1 CPU s) run while the child still works
        bundle, baseline = (forked.receive(otherwise=lambda: (None, None)) if forked
                            else (None, None))
    if bundle is None:
        # measured from the source, never read from the cache: the evidence the gate judges
        bundle = prepare_data(cfg, project.root, audit=ctx.audit, cache=False)  # bad: exit 2
    else:
        bundle.audited_by(ctx.audit)
    seed_everything(cfg.seed)
    flags = set_deterministic()
    env = capture_environment(project.root)
    atomic_write_text(project.mlt_dir / "env.json", _json(env))

    try:
        bundle.test(phase="plan")
        lock = {"locked": False}
    except TestSplitLockedError as exc:
        lock = {"locked": True, "refusal": exc.message}

    if baseline is None:
        from mltrainer.data import trivial_baseline

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


def _table(cfg: MltConfig) -> bool:
    """A source whose preparation is a table's (csv, npz, a bundled scikit-learn set): no
    project code runs and nothing but numpy arrays comes back."""
    from mltrainer.data._cache import CACHEABLE
    from mltrainer.data._sources import source_for
    from mltrainer.errors import MltError

    try:
        return source_for(cfg.data.source).name in CACHEABLE
    except MltError:  # prepare_data says what is wrong, here
        return False


def _warm_optimizer() -> None:
    """Pay now, while the forked child prepares the data, what the determinism probe's first
    optimiser costs whatever it trains: a torch optimiser's construction imports
    `torch._dynamo` (about a second of CPU), once per process. The throwaway optimiser touches
    no RNG and no global state the probe reads: only the import stays."""
    import torch

    torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)


def _prepared(cfg: MltConfig, root: Path) -> tuple[Any, dict[str, Any]]:
    """In the forked child: the bundle (its audit is this process's, attached on receipt) and
    the trivial baseline."""
    from mltrainer.data import prepare_data, trivial_baseline

    bundle = prepare_data(cfg, root, audit=_unaudited, cache=False)
    return bundle, trivial_baseline(bundle, cfg.goal.metric)


def _unaudited(record: dict[str, Any]) -> None:
    raise AssertionError("preparing a table audits nothing")  # the child answers nothing


def _json(obj: Any) -> str:
    import json

    return json.dumps(obj, indent=2, default=str) + "\n"
