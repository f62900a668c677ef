"""The one optimisation step, and the one way its parts are built.

`build_training()` seeds and builds model, optimiser, schedule, scaler and batches; `TrainStep`
runs one step. `Trainer.fit()` and `determinism_probe()` both use exactly these two, so the
probe verifies the code path training runs, not a copy of it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mltrainer.config import MltConfig, TrainingConfig
from mltrainer.engine.batching import InMemoryBatches
from mltrainer.engine.devices import choose_device, resolve_device
from mltrainer.engine.loading import LoaderBatches
from mltrainer.engine.precision import autocast_for, make_scaler
from mltrainer.engine.schedule import LrSchedule, build_optimizer
from mltrainer.engine.seeding import seed_everything
from mltrainer.errors import ConfigError, DataError
from mltrainer.models import build_model, n_outputs

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def loss_function(task: str, target_scale: Any = None) -> LossFn:
    """Cross-entropy on class indices, or MSE on raw targets `y`; with a `target_scale`
    (`DataSpec.target_scale`) the MSE compares the output with the standardised targets, so
    the model learns (y - mean) / std and the loss is in standardised units."""
    if task == "classification":
        return lambda out, y: F.cross_entropy(out.float(), y)
    # regression: the model returns (N, 1) (or (N,)); the loss compares (N,) with (N,)
    if target_scale is not None:
        return lambda out, y: F.mse_loss(out.float().reshape(-1), target_scale.standardise(y))
    return lambda out, y: F.mse_loss(out.float().reshape(-1), y)


def target_scale_of(bundle: Any) -> Any:
    """The data's regression target scale (`DataSpec.target_scale`), or None: raw targets
    (also for a hand-made bundle whose spec has no such field)."""
    return getattr(bundle.spec, "target_scale", None)


def check_bundle(bundle: Any) -> None:
    """The data fits the spec: 2-D float features of spec.n_features columns, labels in range."""
    spec = bundle.spec
    if getattr(bundle, "is_lazy", False):  # item data: checked item by item as it is read
        return
    for name in ("train", "val"):
        split = getattr(bundle, name)
        X, y = np.asarray(split.X), np.asarray(split.y)
        if X.ndim != 2 or X.shape[1] != spec.n_features:
            raise DataError(f"{name}.X has shape {X.shape} but the spec says "
                            f"{spec.n_features} features")
        if len(X) != len(y) or len(X) == 0:
            raise DataError(f"{name} split has {len(X)} rows of X and {len(y)} of y")
        if spec.task == "classification" and (y.min() < 0 or y.max() >= n_outputs(spec)):
            raise DataError(f"{name}.y holds class indices outside 0..{n_outputs(spec) - 1}")


@dataclass
class StepOutput:
    loss: torch.Tensor  # 0-d, detached
    grad_norm: torch.Tensor  # 0-d, global L2 norm before clipping
    lr: float
    layer_stats: torch.Tensor | None  # (n_params_with_grad, 2): grad L2 norm, share of zeros
    layer_names: list[str] | None


class TrainStep:
    """One optimisation step: lr from the schedule; forward (autocast) and backward (scaled
    for fp16) over each micro-batch of `batch_size` rows; per-layer statistics when asked,
    global norm, clipping, optimiser step.

    With several micro-batches (grad_accum_steps), micro-batch j of the step's n rows adds
    `len_j / n` of its mean loss's gradient, so the sum is the gradient of the mean over all n
    rows: the same step as one batch of n rows (dropout masks and batch-norm statistics aside,
    which are drawn per forward pass). Under DDP the gradients are synchronised on the last
    micro-batch only (`no_sync` before), and DDP's average over processes completes the mean.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer,
                 schedule: LrSchedule, loss_fn: LossFn, cfg: TrainingConfig,
                 device: torch.device, scaler: torch.amp.GradScaler | None,
                 forward: nn.Module | None = None) -> None:
        self.model = model
        self.forward = forward if forward is not None else model  # DDP / compiled wrapper
        self.optimizer = optimizer
        self.schedule = schedule
        self.loss_fn = loss_fn
        self.grad_clip = cfg.grad_clip
        self.micro_rows = cfg.batch_size
        self.scaler = scaler
        self.named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.autocast: Callable[[], Any] = autocast_for(cfg.precision, device)

    def _backward(self, loss: torch.Tensor) -> None:
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
        else:
            loss.backward()

    def _accumulate(self, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        """Forward and backward over the micro-batches; the mean loss over all rows."""
        n = len(yb)  # rows (text inputs are a dict of tensors)
        if n <= self.micro_rows:  # one pass: exactly the arithmetic of an unaccumulated step
            with self.autocast():
                loss = self.loss_fn(self.forward(xb), yb)
            self._backward(loss)
            return loss.detach()
        starts = range(0, n, self.micro_rows)
        no_sync = getattr(self.forward, "no_sync", contextlib.nullcontext)
        total = torch.zeros((), device=yb.device)
        for j, start in enumerate(starts):
            stop = start + self.micro_rows
            xj = ({k: v[start:stop] for k, v in xb.items()} if isinstance(xb, dict)
                  else xb[start:stop])
            yj = yb[start:stop]
            weight = len(xj) / n
            with no_sync() if j < len(starts) - 1 else contextlib.nullcontext():
                with self.autocast():
                    loss = self.loss_fn(self.forward(xj), yj)
                self._backward(loss * weight)
            total += loss.detach().float() * weight
        return total

    def __call__(self, step: int, xb: torch.Tensor, yb: torch.Tensor, *,
                 layer_stats: bool = False) -> StepOutput:
        lr = self.schedule.apply(self.optimizer, step)
        self.optimizer.zero_grad(set_to_none=True)
        loss = self._accumulate(xb, yb)
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)  # norms and clipping see true gradients
        named = [(n, p.grad) for n, p in self.named if p.grad is not None]
        grads = [g for _, g in named]
        # the same arithmetic whether or not statistics are taken: watching never changes
        # the trajectory, not even in the last bit
        norms = per_tensor_norms(grads, loss.device)
        norm = torch.linalg.vector_norm(norms)
        stats = layer_statistics(grads, norms) if layer_stats and grads else None
        if self.grad_clip is not None and grads:
            # clip with the norm computed above (one pass over the gradients, not two); the
            # same arithmetic as torch.nn.utils.clip_grad_norm_
            coef = torch.clamp(self.grad_clip / (norm + 1e-6), max=1.0)
            torch._foreach_mul_(grads, coef.to(grads[0].device))
        if self.scaler is not None:
            self.scaler.step(self.optimizer)  # skips the update when gradients are not finite
            self.scaler.update()
        else:
            self.optimizer.step()
        return StepOutput(loss, norm, lr, stats,
                          [n for n, _ in named] if stats is not None else None)


def per_tensor_norms(grads: list[torch.Tensor], device: torch.device) -> torch.Tensor:
    """(n,) float32: the L2 norm of each gradient, in one fused pass; (0,) when none."""
    if not grads:
        return torch.zeros(0, device=device)
    return torch.stack(torch._foreach_norm(grads)).float()


def nonzero_counts(grads: list[torch.Tensor]) -> list[torch.Tensor]:
    """The count of non-zero entries of each tensor (NaN counts), as 0-d tensors on its device,
    not read (no sync). On a GPU one fused pass (`_foreach_norm(grads, 0)`, the L0 "norm");
    on the CPU each tensor's `bool().sum()`: torch's CPU L0 norm is ~2x slower on a small
    MLP's gradients (66-91 us against 38-40) and ~10x on large ones (20.5 ms against 1.8-2.2
    for four 1024x1024 tensors; one thread, side by side)."""
    if grads and grads[0].is_cpu:
        return [g.bool().sum() for g in grads]
    return list(torch._foreach_norm(grads, 0))


def layer_statistics(grads: list[torch.Tensor], norms: torch.Tensor) -> torch.Tensor:
    """(n, 2): per-tensor L2 norm and share of exact zeros. One more pass (`nonzero_counts`)
    and no sync (the caller reads it with one .tolist() when it writes the event)."""
    nonzero = torch.stack(nonzero_counts(grads)).float()
    sizes = torch.tensor([g.numel() for g in grads], dtype=torch.float32, device=norms.device)
    return torch.stack([norms, 1.0 - nonzero / sizes], dim=1)


def parameters_finite(model: nn.Module) -> bool:
    """All parameters and buffers finite: one fused max-abs pass (which, unlike an L2 norm,
    cannot overflow for huge finite values) and one sync."""
    tensors = [t for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()]
    if not tensors:
        return True
    return bool(torch.isfinite(torch.stack(torch._foreach_norm(tensors, math.inf))).all())


@dataclass
class TrainingParts:
    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: LrSchedule
    scaler: torch.amp.GradScaler | None
    batches: InMemoryBatches | LoaderBatches
    step: TrainStep
    loss_fn: LossFn
    device: torch.device
    forward: nn.Module | None = None  # what the step calls: the model, DDP- or compile-wrapped
    model_record: dict[str, Any] | None = None  # kind, parameters, what is frozen, head lr

    def wants_layer_stats(self, step_index: int, every: int) -> bool:
        """Per-layer statistics on every `every`-th step (1-based), never when every is 0."""
        return every > 0 and (step_index + 1) % every == 0


def build_training(cfg: MltConfig, bundle: Any, root: Path | None = None,
                   device: torch.device | None = None, dist: Any = None,
                   schedule_epochs: int | None = None) -> TrainingParts:
    """Seed, then build everything a run needs, in an order that never changes (the model's
    init draws from the seeded global RNG; the shuffle has its own generator). `dist` (an
    `engine.distributed.DistContext`) shards the batches and wraps the model in DDP.
    `schedule_epochs`: the lr schedule's horizon when it is longer than the run (`LrSchedule`)."""
    check_bundle(bundle)
    tcfg = cfg.training
    if device is None:
        device = (choose_device(tcfg, dist.local_rank).device if dist is not None
                  else resolve_device(tcfg))
    rank, world = (dist.rank, dist.world_size) if dist is not None else (0, 1)
    seed_everything(cfg.seed)
    model = build_model(cfg.model, bundle.spec, root=root).to(device)
    model.train()
    optimizer = build_optimizer(param_groups(model, cfg, bundle.spec), tcfg)
    batches = make_batches(cfg, bundle, device, rank=rank, world=world)
    schedule = LrSchedule(tcfg, batches.steps_per_epoch, cfg.greater_is_better,
                          horizon_epochs=schedule_epochs)
    scaler = make_scaler(tcfg.precision, device)
    loss_fn = loss_function(cfg.task, target_scale_of(bundle))
    forward: nn.Module = dist.wrap(model) if dist is not None and world > 1 else model
    if tcfg.compile:
        forward = torch.compile(forward)  # type: ignore[assignment]
    if rank:  # every process its own dropout masks; process 0 draws as a single process would
        torch.manual_seed(cfg.seed + rank)
    step = TrainStep(model, optimizer, schedule, loss_fn, tcfg, device, scaler, forward)
    from mltrainer.models import freeze_record

    record = {"kind": cfg.model.kind, **freeze_record(model, cfg.model.freeze),
              "head_lr": cfg.model.head_lr, "weights": cfg.model.weights}
    return TrainingParts(model, optimizer, schedule, scaler, batches, step, loss_fn, device,
                         forward, model_record=record)



def make_batches(cfg: MltConfig, bundle: Any, device: torch.device, *, rank: int = 0,
                 world: int = 1) -> InMemoryBatches | LoaderBatches:
    """In-memory batches for tables; a seeded DataLoader for item data (images, text, ...)."""
    regression = cfg.task == "regression"
    tcfg = cfg.training
    if getattr(bundle, "is_lazy", False):
        return LoaderBatches(bundle.train, tcfg.batch_size, device, cfg.seed, cfg.data.loader,
                             regression, accum=tcfg.grad_accum_steps, rank=rank, world=world)
    return InMemoryBatches(bundle.train.X, bundle.train.y, tcfg.batch_size, device, cfg.seed,
                           regression=regression, accum=tcfg.grad_accum_steps, rank=rank,
                           world=world)


def param_groups(model: nn.Module, cfg: MltConfig, spec: Any) -> list[dict[str, Any]]:
    """The trainable parameters; with `model.head_lr`, the output layer in a group of its own
    whose lr follows the schedule scaled by head_lr / training.lr."""
    from mltrainer.models import head_parameters

    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ConfigError("model.freeze froze every parameter: nothing would train",
                          hint="freeze fewer prefixes")
    if cfg.model.head_lr is None:
        return [{"params": [p for _, p in named]}]
    head = set(head_parameters(model, spec))
    if not head:
        raise ConfigError(f"model.head_lr: no output layer found in {cfg.model.kind}",
                          hint="remove model.head_lr")
    body = [p for n, p in named if n not in head]
    top = [p for n, p in named if n in head]
    groups = [{"params": top, "lr_scale": cfg.model.head_lr / cfg.training.lr}]
    return ([{"params": body}] if body else []) + groups
