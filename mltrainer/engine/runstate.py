"""What a checkpoint holds beyond the model: the run's progress, and how it is captured and
restored. Everything here must load with `torch.load(..., weights_only=True)`: tensors, plain
numbers, strings, lists and dicts (subscriber states travel as one JSON string).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from mltrainer import __version__
from mltrainer.engine.checkpoint import FORMAT_VERSION
from mltrainer.engine.seeding import capture_rng_state, restore_rng_state
from mltrainer.engine.step import TrainingParts
from mltrainer.engine.stopping import EarlyStopping


@dataclass
class Progress:
    """Where the run stands; all of it goes into every checkpoint."""

    epoch: int = 0  # epochs finished
    step: int = 0  # optimisation steps taken
    position: int = 0  # batches done in the epoch in progress (0 at an epoch boundary)
    order: torch.Tensor | None = None  # the permutation of the epoch in progress
    loss_sum: float = 0.0  # sum of step losses in the epoch in progress
    loss_count: int = 0
    epoch_elapsed: float = 0.0  # seconds spent in the epoch in progress before a resume
    last_lr: float | None = None
    best_metric: float | None = None
    best_epoch: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    wall_time_s: float = 0.0  # training seconds of earlier fit() calls of this run


def best_val_loss(p: Progress) -> float | None:
    """The val loss of the best epoch so far (breaks a tie of the goal metric), from the
    history the checkpoint carries (so a resumed run judges as the uninterrupted one)."""
    return next((h["val_loss"] for h in p.history if h["epoch"] == p.best_epoch), None)


def training_payload(parts: TrainingParts, p: Progress, stopper: EarlyStopping,
                     subscribers: Sequence[Any], *, meta: dict[str, Any],
                     wall_time_s: float, dist: Any = None) -> dict[str, Any]:
    """The whole training state; `meta` adds config_fingerprint, run_id, kind, task, ...

    Under several processes (`dist`), every process calls this at the same point (gathering
    the RNG states is a collective): process 0's RNGs are `rng`, all of them `rng_ranks`."""
    rng = capture_rng_state(parts.batches.generator)
    world = dist.world_size if dist is not None else 1
    ranks = dist.gather_rng(rng) if dist is not None and world > 1 else None
    return {
        "format": FORMAT_VERSION, "mltrainer_version": __version__, **meta,
        "model": parts.model.state_dict(), "optimizer": parts.optimizer.state_dict(),
        "schedule": parts.schedule.state_dict(),
        "scaler": parts.scaler.state_dict() if parts.scaler is not None else None,
        "rng": rng, "world_size": world, "rng_ranks": ranks,
        "epoch": p.epoch, "step": p.step, "position": p.position,
        "order": p.order.cpu() if p.position and p.order is not None else None,
        "epoch_loss_sum": p.loss_sum, "epoch_loss_count": p.loss_count,
        "epoch_elapsed": p.epoch_elapsed, "last_lr": p.last_lr,
        "best_metric": p.best_metric, "best_epoch": p.best_epoch,
        "early_stopping": stopper.state_dict(), "history": p.history,
        "wall_time_s": wall_time_s, "subscribers": subscriber_states(subscribers),
    }


def restore_training(ckpt: dict[str, Any], parts: TrainingParts, stopper: EarlyStopping,
                     subscribers: Sequence[Any], rank: int = 0) -> Progress:
    """Put a checkpoint's state back into freshly built parts; the RNGs last, since building
    the parts drew from them."""
    parts.model.load_state_dict(ckpt["model"])
    parts.optimizer.load_state_dict(ckpt["optimizer"])
    parts.schedule.load_state_dict(ckpt["schedule"])
    if parts.scaler is not None and ckpt.get("scaler"):
        parts.scaler.load_state_dict(ckpt["scaler"])
    stopper.load_state_dict(ckpt["early_stopping"])
    restore_subscribers(subscribers, ckpt.get("subscribers"))
    position = int(ckpt["position"])
    order = ckpt["order"].to(parts.device) if position else None
    ranks = ckpt.get("rng_ranks")
    restore_rng_state(ranks[rank] if ranks else ckpt["rng"], parts.batches.generator)
    return Progress(
        epoch=int(ckpt["epoch"]), step=int(ckpt["step"]), position=position, order=order,
        loss_sum=float(ckpt["epoch_loss_sum"]), loss_count=int(ckpt["epoch_loss_count"]),
        epoch_elapsed=float(ckpt["epoch_elapsed"]), last_lr=ckpt["last_lr"],
        best_metric=ckpt["best_metric"], best_epoch=ckpt["best_epoch"],
        history=list(ckpt["history"]), wall_time_s=float(ckpt["wall_time_s"]),
    )


def subscriber_states(subscribers: Sequence[Any]) -> str:
    """JSON text: [{"type", "state"}] per subscriber, state None when it keeps none."""
    return json.dumps([
        {"type": _type_name(sub),
         "state": sub.state_dict() if callable(getattr(sub, "state_dict", None)) else None}
        for sub in subscribers
    ])


def restore_subscribers(subscribers: Sequence[Any], saved_json: str | None) -> None:
    """Each subscriber with `load_state_dict` gets the first saved state of its class; one
    with no saved state (added since) starts fresh."""
    saved = json.loads(saved_json) if saved_json else []
    for sub in subscribers:
        if not callable(getattr(sub, "load_state_dict", None)):
            continue
        match = next((entry for entry in saved if entry["type"] == _type_name(sub)
                      and entry["state"] is not None), None)
        if match is not None:
            saved.remove(match)
            sub.load_state_dict(match["state"])


def _type_name(obj: object) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"
