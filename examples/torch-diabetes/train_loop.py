"""A plain PyTorch training loop, run by mlt (training.entrypoint) or on its own.

Under mlt, `context()` hands it the run folder, seed, resolved config (with any `mlt optimize`
trial's overrides) and the train and val rows; `MltMonitor` writes the metric stream, runs
mlt's detectors, keeps the checkpoints `load_model` reads back and says when to stop (a
non-finite loss, `ctx.max_steps` for plan's determinism check). The targets are raw (mlt
standardises them only for its own loop), so the model ends in a fixed rescaling by the train
targets' mean and standard deviation: it learns on a unit scale while its outputs, the loss
and every metric are in the target's units.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader

from mltrainer.integrations import EarlyStopping, context, load_checkpoint_weights
from mltrainer.integrations.loop import MltMonitor


class Rescaled(nn.Module):
    """`net`'s outputs times `std` plus `mean` (buffers: saved with the weights)."""

    def __init__(self, net: nn.Module, mean: float, std: float) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) * self.std + self.mean  # (N, 1), in the target's units


def build_model(config, spec, mean: float = 0.0, std: float = 1.0) -> nn.Module:
    layers: list[nn.Module] = []
    width = spec.n_features
    for hidden in config.model.hidden:
        layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(config.model.dropout)]
        width = hidden
    layers.append(nn.Linear(width, 1))
    return Rescaled(nn.Sequential(*layers), mean, std)


def main() -> None:
    ctx = context()
    cfg = ctx.config.training
    y = torch.as_tensor(ctx.train.y)
    model = build_model(ctx.config, ctx.spec, y.mean().item(), y.std().item())
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    train = DataLoader(ctx.train.tensors(), batch_size=cfg.batch_size, shuffle=True,
                       generator=torch.Generator().manual_seed(ctx.seed))
    # the schedule spans ctx.schedule_epochs, not cfg.epochs: finalize's retrain runs the
    # source run's best epoch count on the source run's schedule (the same lr step by step)
    schedule = (torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=ctx.schedule_epochs * len(train)) if cfg.scheduler == "cosine" else None)
    X_val, y_val = (torch.as_tensor(a) for a in (ctx.val.X, ctx.val.y))
    stopper = EarlyStopping(cfg.early_stopping.patience, cfg.early_stopping.min_delta,
                            ctx.config.greater_is_better)
    with MltMonitor(model, steps_per_epoch=len(train), epochs=cfg.epochs) as mlt:
        for _ in range(cfg.epochs):
            model.train()
            for x, target in train:
                optimizer.zero_grad()
                loss = nn.functional.mse_loss(model(x).reshape(-1), target)
                loss.backward()
                mlt.step(loss, optimizer)  # before clipping: the stream's norms are unclipped
                if cfg.grad_clip:
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
                if schedule is not None:
                    schedule.step()
                if mlt.should_stop:  # a non-finite loss, or ctx.max_steps reached
                    break
            if mlt.should_stop:
                break
            model.eval()
            with torch.no_grad():
                outputs = model(X_val).reshape(-1)
            metrics = ctx.compute_metrics(outputs)
            val_loss = nn.functional.mse_loss(outputs, y_val).item()
            if mlt.epoch(val_loss, metrics):
                break
            if stopper.update(metrics[ctx.metric], val_loss).should_stop:
                mlt.stop("early_stopping")
                break


def load_model(checkpoint, config, spec) -> nn.Module:
    """The best checkpoint back as a module mapping feature rows to predictions (the target's
    units; the rescaling's mean and std come back with the weights)."""
    model = build_model(config, spec)
    model.load_state_dict(load_checkpoint_weights(checkpoint))
    return model
