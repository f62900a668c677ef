"""Production training: which config ships, and the model that does.

The fast path ships the baseline's `mlt.yaml`; the typical path ships what optimize chose
(`mlt.optimized.yaml` when it chose "optimized"). With `finalize.retrain: true` the chosen config
is trained again on train+val, replaying the validated recipe: the same config and seed, early
stopping off (the epoch count is already decided, and val is no longer held out), stopped at the
source run's best epoch, with the lr schedule spanning the source run's configured epochs (so
cosine, step and warmup give the lr the source run had at the same point; train+val has more
steps per epoch, which stretches the schedule by the ratio of the row counts). The same recipe
is also replayed on train alone and scored on val (`replay_on_train`): the evidence that what
ships reproduces what was validated. `finalize.retrain: false` ships the best checkpoint of
the source run as it is. Preprocessing stays fitted on train alone: the scaling the model was
tuned with is the scaling it ships with.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mltrainer.config import MltConfig
from mltrainer.errors import CheckpointError, ConfigError, RefusedError
from mltrainer.runner import PhaseContext, ProgressForwarder, load_project_config

RUN_KIND = "final"  # runs/<time>-final-<hex>
REPLAY_KIND = "replay"  # runs/<time>-replay-<hex>: the production recipe on train alone
PROBE_STEPS = 10  # optimisation steps trained twice to prove the seed reproduces the weights
# How far the production model's score on the val rows (which it trained on) may fall short of
# the validated run's score on them unseen before finalize refuses to open the test split for
# it: absolute (relative for rmse/mae), and for a classification metric at least one val row's
# worth. bench/retrain.py, 30 healthy (data set, seed) pairs: short by +0.012 at most (one row
# of 86), by -0.02 on average (trained on val, the production model scores higher on it).
IN_SAMPLE_TOLERANCE = 0.02


@dataclass(frozen=True)
class ChosenConfig:
    """The config that ships, where it came from, and the run that chose its epoch count."""

    cfg: MltConfig
    source: str  # "baseline" | "optimized"
    config_path: str  # relative to the project root
    run: dict[str, Any]  # the source run as its phase recorded it: id, dir, best_epoch, ...

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "config_path": self.config_path,
                "config_fingerprint": self.cfg.fingerprint(),
                "source_run": {k: self.run.get(k) for k in ("id", "dir", "best_epoch", "val")}}


def choose_config(ctx: PhaseContext) -> ChosenConfig:
    """Fast path: the baseline's config and run. Typical path: optimize's choice."""
    from mltrainer.phases.baseline.outcome import BaselineOutcome
    from mltrainer.phases.optimize.outcome import OptimizeOutcome

    base_run = BaselineOutcome.of(ctx.state).run.model_dump(mode="json")
    opt = None if ctx.path == "fast" else OptimizeOutcome.recorded(ctx.state)
    if opt is None or opt.chosen != "optimized":
        return ChosenConfig(ctx.cfg, "baseline", ctx.project.relative(ctx.project.config_path),
                            base_run)
    rel = opt.config_path or ctx.project.relative(ctx.project.optimized_config_path)
    path = ctx.project.root / rel
    if not path.is_file():
        raise ConfigError(
            f"{rel}: optimize chose the optimized config but the file is missing",
            hint="re-run `mlt optimize` (it writes mlt.optimized.yaml)",
        )
    return ChosenConfig(load_project_config(path), "optimized", ctx.project.relative(path),
                        dict(opt.run or {}))


def production_config(cfg: MltConfig, epochs: int) -> MltConfig:
    """`cfg` trained for exactly `epochs` epochs: early stopping off (patience 0). Train it with
    `schedule_epochs=cfg.training.epochs` (the schedule's horizon stays the source run's)."""
    data = cfg.model_dump(mode="json")
    data["training"]["epochs"] = int(epochs)
    data["training"]["early_stopping"]["patience"] = 0
    return MltConfig.model_validate(data)


@dataclass
class TrainValBundle:
    """A bundle whose train split is train+val (rows in that order); val stays val, for the
    engine's per-epoch evaluation (now in-sample) and as parity inputs."""

    spec: Any
    train: Any
    val: Any
    preprocessor: Any
    fingerprints: dict[str, str]
    source: str


def train_plus_val(bundle: Any) -> Any:
    from mltrainer.data import Split
    from mltrainer.phases.finalize import items

    if items.is_items(bundle):  # image folders, text, Datasets: one lazily read split
        return items.train_plus_val(bundle)

    tr, va = bundle.train, bundle.val
    joined = Split(X=np.concatenate([tr.X, va.X]), y=np.concatenate([tr.y, va.y]),
                   raw_index=np.concatenate([tr.raw_index, va.raw_index]),
                   encoded=np.concatenate([tr.encoded, va.encoded]))
    return TrainValBundle(bundle.spec, joined, va, bundle.preprocessor, bundle.fingerprints,
                          bundle.source)


def weights_sha256(model: nn.Module) -> str:
    """sha256 over every tensor of the state dict (names, dtypes and bytes), on the CPU."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        if t.numel():
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def non_finite_weights(model: nn.Module) -> dict[str, Any]:
    bad = {name: int((~torch.isfinite(t)).sum()) for name, t in model.state_dict().items()
           if t.is_floating_point() and not bool(torch.isfinite(t).all())}
    n = sum(int(t.numel()) for t in model.state_dict().values())
    return {"values": n, "non_finite": sum(bad.values()), "tensors_with_non_finite": bad}


def source_epochs(chosen: ChosenConfig) -> int:
    best = chosen.run.get("best_epoch")
    return int(best) if isinstance(best, int) and best >= 1 else chosen.cfg.training.epochs


def produce_model(ctx: PhaseContext, chosen: ChosenConfig, bundle: Any
                  ) -> tuple[nn.Module, dict[str, Any], MltConfig, Any]:
    """(model, run record, the config it was trained with, the bundle it was trained on)."""
    from mltrainer.engine import Trainer, load_model_from_checkpoint
    from mltrainer.engine.entrypoint import run_dir_kept_on_script_failure
    from mltrainer.engine.launch import Launch, train_processes

    root = ctx.project.root
    epochs = source_epochs(chosen)
    if not ctx.cfg.finalize.retrain:
        ckpt = root / str(chosen.run.get("dir") or "") / "checkpoints" / "best.pt"
        if not chosen.run.get("dir") or not ckpt.is_file():
            raise CheckpointError(
                f"finalize.retrain is false but the {chosen.source} run's best checkpoint is "
                f"missing ({ctx.project.relative(ckpt)})",
                hint="restore the run folder, or set finalize.retrain: true in mlt.yaml",
            )
        model = load_model_from_checkpoint(ckpt, chosen.cfg, bundle.spec, root=root)
        run = {"id": chosen.run.get("id"), "dir": chosen.run.get("dir"), "retrained": False,
               "epochs": epochs, "best_epoch": chosen.run.get("best_epoch"),
               "checkpoint": ctx.project.relative(ckpt), "train_rows": len(bundle.train),
               "trained_on": ["train"], "early_stopping": "as configured",
               "val": chosen.run.get("val")}
        return model, run, chosen.cfg, bundle

    source_ckpt = root / str(chosen.run.get("dir") or "") / "checkpoints" / "best.pt"
    if chosen.cfg.training.entrypoint and chosen.run.get("dir") and source_ckpt.is_file():
        # the project's load_model on the source run's checkpoint first: one that raises or
        # returns no module is refused (exit 2) before two training runs, not after them
        load_model_from_checkpoint(source_ckpt, chosen.cfg, bundle.spec, root=root)
    prod_cfg = production_config(chosen.cfg, epochs)
    horizon = chosen.cfg.training.epochs  # the source run's schedule, replayed up to `epochs`
    replay = replay_on_train(ctx, chosen, bundle, prod_cfg)
    data = train_plus_val(bundle)
    launch = Launch.from_options(ctx.options)
    # gone again if refused (kept with the log of a script that failed)
    with run_dir_kept_on_script_failure(ctx.project, RUN_KIND) as run_dir:
        if launch.is_distributed:  # `mlt finalize --nproc N`: the same run under torchrun + DDP
            result = train_processes(prod_cfg, run_dir, root, launch, kind=RUN_KIND,
                                     rows=data, on_event=ProgressForwarder(ctx.progress).on_event,
                                     schedule_epochs=horizon)
        else:
            result = Trainer(prod_cfg, data, run_dir,
                             subscribers=[ProgressForwarder(ctx.progress)], kind=RUN_KIND,
                             root=root, schedule_epochs=horizon).fit()
    result.raise_if_interrupted(
        f"finalize interrupted during production training (run {run_dir.name}); the test "
        "split was not evaluated", hint=_RERUN)
    last = result.checkpoints.get("last")
    if not last:
        raise CheckpointError(
            f"production training wrote no checkpoint in {ctx.project.relative(run_dir)} "
            f"(stopped: {result.stopped_reason}); its weights were not finite",
            hint="the chosen config diverged on train+val: lower training.lr, or set "
                 "finalize.retrain: false to ship the best checkpoint as it is",
        )
    # The last epoch, not "best": val is inside the training rows now, so "best" means nothing.
    model = load_model_from_checkpoint(Path(last), prod_cfg, data.spec, root=root)
    last_val = result.history[-1]["val"] if result.history else {}
    run = {"id": result.run_id, "dir": ctx.project.relative(run_dir), "retrained": True,
           "epochs": epochs, "epochs_run": result.epochs_run, "schedule_epochs": horizon,
           "steps_per_epoch": {
               "source": steps_per_epoch(root / str(chosen.run.get("dir") or "") /
                                         "metrics.jsonl"),
               "production": steps_per_epoch(run_dir / "metrics.jsonl")},
           "replay": replay,
           "best_epoch": chosen.run.get("best_epoch"), "source_run": chosen.run.get("id"),
           "checkpoint": ctx.project.relative(Path(last)), "train_rows": len(data.train),
           "trained_on": ["train", "val"], "early_stopping": "off",
           "stopped_reason": result.stopped_reason, "wall_time_s": result.wall_time_s,
           "device": result.device, "world_size": result.world_size,
           "in_sample_val": {k: v for k, v in last_val.items()
                             if isinstance(v, float) and math.isfinite(v)}}
    refuse_if_short_of_validated(chosen, run, len(bundle.val))
    return model, run, prod_cfg, data


def refuse_if_short_of_validated(chosen: ChosenConfig, run: dict[str, Any], val_rows: int
                                 ) -> None:
    """The production model trained on the val rows; scored on them it must reach what the
    validated run scored on them unseen (within IN_SAMPLE_TOLERANCE). Falling short means the
    retrained model learned less than the one validated (a run that learned late, a recipe on
    the edge of diverging): the test split is not spent on it. Records the comparison."""
    metric = chosen.cfg.goal.metric
    source = (chosen.run.get("val") or {}).get(metric)
    mine = (run.get("in_sample_val") or {}).get(metric)
    if not (isinstance(source, float) and isinstance(mine, float)
            and math.isfinite(source) and math.isfinite(mine)):
        run["in_sample_check"] = {"metric": metric, "compared": False}
        return
    relative = metric in ("rmse", "mae")
    short = (mine - source) if not chosen.cfg.greater_is_better else (source - mine)
    if relative:
        short = short / abs(source) if source else (math.inf if short > 0 else 0.0)
    tolerance = IN_SAMPLE_TOLERANCE
    if chosen.cfg.task == "classification" and val_rows > 0:  # one row flips by 1/rows
        tolerance = max(tolerance, 1.0 / val_rows + 1e-9)
    run["in_sample_check"] = {"metric": metric, "compared": True, "production": mine,
                              "validated": source, "short_by": short,
                              "kind": "relative" if relative else "absolute",
                              "tolerance": tolerance, "val_rows": val_rows}
    if short > tolerance:
        raise RefusedError(
            f"the retrained model learned less than the validated one: on the val rows it "
            f"trained on it scored {metric} {mine:.4g}, the validated {chosen.source} run "
            f"{source:.4g} on them unseen (short by {short:.3g}, tolerance {tolerance:.3g}"
            f"{', relative' if relative else ''}); the test split was not opened "
            f"(production run {run.get('dir')})",
            hint="set finalize.retrain: false in mlt.yaml to ship the validated checkpoint, or "
                 "make the recipe robust (more epochs, a steadier lr) and validate it again",
        )


_RERUN = "run `mlt finalize` again: it trains the replay and the production run afresh"


def replay_on_train(ctx: PhaseContext, chosen: ChosenConfig, bundle: Any, prod_cfg: MltConfig
                    ) -> dict[str, Any]:
    """The production recipe (`prod_cfg`, the source run's schedule horizon) trained on train
    alone and scored on val, next to what the source run recorded at its best epoch: same
    rows, same steps, so its lr stream and val metric must match the source run's. Costs one
    training of `best_epoch` epochs on train (at most the source run's own time), with the
    same launch as production (`--nproc N`: the same processes, so the same steps an epoch)."""
    from mltrainer.engine import Trainer
    from mltrainer.engine.entrypoint import run_dir_kept_on_script_failure
    from mltrainer.engine.launch import Launch, train_processes

    metric = prod_cfg.goal.metric
    horizon = chosen.cfg.training.epochs
    launch = Launch.from_options(ctx.options)
    # gone again if refused (kept with the log of a script that failed)
    with run_dir_kept_on_script_failure(ctx.project, REPLAY_KIND) as run_dir:
        if launch.is_distributed:
            result = train_processes(prod_cfg, run_dir, ctx.project.root, launch,
                                     kind=REPLAY_KIND, rows=bundle,
                                     on_event=ProgressForwarder(ctx.progress).on_event,
                                     schedule_epochs=horizon)
        else:
            result = Trainer(prod_cfg, bundle, run_dir,
                             subscribers=[ProgressForwarder(ctx.progress)], kind=REPLAY_KIND,
                             root=ctx.project.root, schedule_epochs=horizon).fit()
    result.raise_if_interrupted(
        f"finalize interrupted during the replay on train (run {run_dir.name}); the test split "
        "was not evaluated", hint=_RERUN)
    last = result.history[-1]["val"].get(metric) if result.history else None
    source_dir = chosen.run.get("dir")
    lrs = compare_lr_streams(ctx.project.root / str(source_dir or "") / "metrics.jsonl",
                             run_dir / "metrics.jsonl")
    return {"dir": ctx.project.relative(run_dir), "epochs_run": result.epochs_run,
            "stopped_reason": result.stopped_reason, "metric": metric,
            "val": last if isinstance(last, float) and math.isfinite(last) else None,
            "source_val": (chosen.run.get("val") or {}).get(metric),
            "source_best_epoch": chosen.run.get("best_epoch"), "source_run": source_dir,
            "lr": lrs, "wall_time_s": round(result.wall_time_s, 3)}


def steps_per_epoch(path: Path) -> int | None:
    """What a run's start event recorded (None when its stream is missing)."""
    from mltrainer.stream import iter_stream

    if not path.is_file():
        return None
    start = next((e for e in iter_stream(path) if e["type"] == "start"), {})
    return start.get("steps_per_epoch")


def step_lrs(path: Path) -> list[float]:
    """The lr of every step event of a stream, in order (empty when the file is missing)."""
    from mltrainer.stream import iter_stream

    if not path.is_file():
        return []
    return [float(e["lr"]) for e in iter_stream(path) if e["type"] == "step"]


def compare_lr_streams(source: Path, replay: Path) -> dict[str, Any]:
    """Step-by-step lr of the replay against the source run's, over the steps both have."""
    a, b = step_lrs(source), step_lrs(replay)
    n = min(len(a), len(b))
    diff = max((abs(x - y) for x, y in zip(a[:n], b[:n], strict=True)), default=None)
    peak = max((abs(x) for x in a[:n]), default=0.0)
    return {"steps_compared": n, "replay_steps": len(b), "max_abs_diff": diff,
            "max_rel_diff": None if diff is None or not peak else diff / peak}


def reload_recorded_model(ctx: PhaseContext, record: dict[str, Any], cfg: MltConfig, spec: Any
                          ) -> nn.Module | None:
    """The model a recorded test evaluation judged, when its checkpoint is still there and
    still holds the same weights; None otherwise."""
    from mltrainer.engine import load_model_from_checkpoint

    ckpt = record.get("run", {}).get("checkpoint")
    path = ctx.project.root / str(ckpt or "")
    if not ckpt or not path.is_file():
        return None
    try:
        model = load_model_from_checkpoint(path, cfg, spec, root=ctx.project.root)
    except CheckpointError:
        return None
    return model if weights_sha256(model) == record["run"].get("weights_sha256") else None


def _plan_probe_with_same_inputs(ctx: PhaseContext, cfg: MltConfig, bundle: Any
                                 ) -> dict[str, Any] | None:
    """Plan's probe record when it was the same experiment (`fingerprints.probe_inputs`: the
    config, rows, code and environment are equal; the production model was not retrained on
    other rows or for other epochs) over at least PROBE_STEPS steps and passed: running it
    again would prove nothing new (for a training.entrypoint, two more subprocesses)."""
    from mltrainer.engine.probe import probe_environment
    from mltrainer.fingerprints import probe_inputs
    from mltrainer.phases.plan.outcome import PlanOutcome

    plan = PlanOutcome.recorded(ctx.state)
    probe = dict(plan.determinism) if plan is not None else {}
    if not (probe.get("inputs") and probe.get("identical") and probe.get("verified", True)
            and int(probe.get("steps") or 0) >= PROBE_STEPS):
        return None
    fingerprints = getattr(bundle, "fingerprints", None) or {}
    if probe["inputs"] != probe_inputs(cfg, fingerprints.get("train"), ctx.project.root,
                                       probe_environment(cfg)):
        return None
    return {**probe, "reused_from": "plan",
            "note": "plan's probe trained the same config on the same rows with the same code "
                    "and environment; its result stands for this model"}


def probe_determinism(ctx: PhaseContext, cfg: MltConfig, bundle: Any, *,
                      retrained: bool = True) -> dict[str, Any]:
    """Train PROBE_STEPS steps twice from the seed through the engine's own step: identical?
    Under `mlt finalize --nproc N` also twice in N processes on the same rows, as production
    trained (as `mlt plan --nproc N` probes). A model that was not retrained (`finalize.retrain:
    false`) reuses plan's probe when that was the same experiment (see
    `_plan_probe_with_same_inputs`)."""
    import tempfile

    from mltrainer.engine import determinism_probe
    from mltrainer.engine.launch import Launch
    from mltrainer.engine.probe import distributed_probe
    from mltrainer.phases.finalize import items

    root = ctx.project.root
    launch = Launch.from_options(ctx.options)
    earlier = None if retrained else _plan_probe_with_same_inputs(ctx, cfg, bundle)
    if earlier is not None and not launch.is_distributed:
        return earlier
    probe = determinism_probe(cfg, bundle, steps=PROBE_STEPS, root=root)
    if launch.is_distributed and not items.is_items(bundle):
        with tempfile.TemporaryDirectory(prefix="probe-", dir=ctx.project.mlt_dir) as tmp:
            probe["distributed"] = distributed_probe(cfg, PROBE_STEPS, root, launch, Path(tmp),
                                                     rows=bundle)
        probe["identical"] = bool(probe["identical"] and probe["distributed"]["identical"])
    return probe
