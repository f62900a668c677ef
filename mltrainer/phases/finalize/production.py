"""Production training: which config ships, and the model that does.

The fast path ships the baseline's `mlt.yaml`; the typical path ships what optimize chose
(`mlt.optimized.yaml` when it chose "optimized"). By default the chosen config is trained again
on train+val for the number of epochs its best run chose, with early stopping off (the epoch
count is already decided, and val is no longer held out); `finalize.retrain: false` ships the
best checkpoint of that run as it is. Preprocessing stays fitted on train alone: the scaling the
model was tuned with is the scaling it ships with.
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
from mltrainer.errors import CheckpointError, ConfigError
from mltrainer.runner import PhaseContext, ProgressForwarder, load_project_config

RUN_KIND = "final"  # runs/<time>-final-<hex>
PROBE_STEPS = 10  # optimisation steps trained twice to prove the seed reproduces the weights


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
    """`cfg` trained for exactly `epochs` epochs: early stopping off (patience 0)."""
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


def train_plus_val(bundle: Any) -> TrainValBundle:
    from mltrainer.data import Split

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

    prod_cfg = production_config(chosen.cfg, epochs)
    data = train_plus_val(bundle)
    run_dir = ctx.project.new_run_dir(RUN_KIND)
    launch = Launch.from_options(ctx.options)
    if launch.is_distributed:  # `mlt finalize --nproc N`: the same run under torchrun + DDP
        result = train_processes(prod_cfg, run_dir, root, launch, kind=RUN_KIND, rows=data,
                                 on_event=ProgressForwarder(ctx.progress).on_event)
    else:
        result = Trainer(prod_cfg, data, run_dir, subscribers=[ProgressForwarder(ctx.progress)],
                         kind=RUN_KIND, root=root).fit()
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
           "epochs": epochs, "epochs_run": result.epochs_run,
           "best_epoch": chosen.run.get("best_epoch"), "source_run": chosen.run.get("id"),
           "checkpoint": ctx.project.relative(Path(last)), "train_rows": len(data.train),
           "trained_on": ["train", "val"], "early_stopping": "off",
           "stopped_reason": result.stopped_reason, "wall_time_s": result.wall_time_s,
           "device": result.device, "world_size": result.world_size,
           "in_sample_val": {k: v for k, v in last_val.items()
                             if isinstance(v, float) and math.isfinite(v)}}
    return model, run, prod_cfg, data


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


def probe_determinism(cfg: MltConfig, bundle: Any, root: Path) -> dict[str, Any]:
    """Train PROBE_STEPS steps twice from the seed through the engine's own step: identical?"""
    from mltrainer.engine import determinism_probe

    return determinism_probe(cfg, bundle, steps=PROBE_STEPS, root=root)
