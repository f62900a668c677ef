"""Outputs of a trained model: `predict`, the val evaluation the loop runs, and reloading.

Validation during training and `predict` on a reloaded checkpoint go through the same
`forward_batches` with the same batch size and always in fp32 (no autocast), so a reloaded
best checkpoint reproduces the recorded val metrics exactly on the same device.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mltrainer.config import MltConfig
from mltrainer.engine.checkpoint import load_checkpoint
from mltrainer.engine.devices import resolve_device
from mltrainer.engine.loading import forward_split, model_device
from mltrainer.engine.metrics import compute_metrics
from mltrainer.engine.step import LossFn
from mltrainer.errors import CheckpointError
from mltrainer.models import build_model

PREDICT_BATCH = 4096  # rows per forward pass: bounds memory, not results (eval mode)


@torch.no_grad()
def forward_batches(model: nn.Module, X: torch.Tensor, batch_size: int = PREDICT_BATCH
                    ) -> torch.Tensor:
    was_training = model.training
    model.eval()
    try:
        outs = [model(X[i:i + batch_size]).float() for i in range(0, len(X), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(outs) if outs else torch.empty(0)


def predict(model: nn.Module, X: Any, batch_size: int = PREDICT_BATCH, *,
            target_scale: Any = None) -> np.ndarray:
    """Raw outputs for rows `X` (eval mode, no grad): logits (N, C) for classification,
    (N,) for a single-output (regression) model, in the target's units: pass the data's
    `spec.target_scale` for a model trained on standardised targets (its outputs are
    inverted as the exported graph inverts them). `X` is an array of rows, or a lazily read
    split (`split.X` of image, text and Dataset sources), read through a DataLoader."""
    if getattr(X, "is_lazy", False):
        outputs = forward_split(model, X)
    else:
        tensor = torch.as_tensor(np.ascontiguousarray(X, dtype=np.float32),
                                 device=model_device(model))
        outputs = forward_batches(model, tensor, batch_size)
    out = in_target_units(outputs, target_scale).cpu().numpy()
    return out.reshape(len(out)) if out.ndim == 2 and out.shape[1] == 1 else out


def in_target_units(outputs: torch.Tensor, target_scale: Any) -> torch.Tensor:
    """A regression model's outputs in the target's units: `target_scale.invert` in float32,
    the arithmetic of the exported graph's last layer (`exporting.TargetUnscale`)."""
    return outputs if target_scale is None else target_scale.invert(outputs.float())


def evaluation_data(split: Any, rows: np.ndarray | None, device: torch.device, task: str
                    ) -> tuple[Any, torch.Tensor, np.ndarray]:
    """(inputs, targets on the device, targets) of `split` (its `rows` only, when given) for
    `evaluate`: tensors on the device, or the lazily read split itself (item data: its inputs
    are read per epoch through a DataLoader)."""
    from dataclasses import replace

    from mltrainer.engine.batching import to_tensor

    y = np.asarray(split.y) if rows is None else np.asarray(split.y)[rows]
    y_tensor = to_tensor(y, device, torch.float32 if task == "regression" else torch.int64)
    if getattr(split, "is_lazy", False):
        part = split if rows is None else replace(split, indices=split.indices[rows], y=y)
        return part, y_tensor, y
    X = np.asarray(split.X) if rows is None else np.asarray(split.X)[rows]
    return to_tensor(X, device, torch.float32), y_tensor, y


def evaluate(model: nn.Module, X: Any, y: torch.Tensor, loss_fn: LossFn, task: str,
             y_numpy: np.ndarray, target_scale: Any = None) -> tuple[float, dict[str, float]]:
    """(loss, every metric of the task) of `model` on one split held as tensors on the device
    (or a lazily read split, see `validation_data`). The loss is the training loss's (in
    standardised units with a `target_scale`); the metrics are in the target's units."""
    if getattr(X, "is_lazy", False):  # the same items every epoch: their inputs are kept
        outputs = forward_split(model, X, keep=True)
    else:
        outputs = forward_batches(model, X)
    loss = float(loss_fn(outputs, y))
    out = in_target_units(outputs, target_scale).cpu().numpy()
    if out.ndim == 2 and out.shape[1] == 1:
        out = out.reshape(len(out))
    return loss, compute_metrics(task, y_numpy, out)


def load_model_from_checkpoint(path: str | os.PathLike[str], cfg: MltConfig, spec: Any, *,
                               root: Path | None = None,
                               device: str | torch.device | None = None) -> nn.Module:
    """The configured model with a checkpoint's weights, in eval mode, on `device` (default:
    the device training would pick). Building it does not disturb the global RNG."""
    if cfg.training.entrypoint:  # the project's own load_model (entrypoint.py)
        from mltrainer.engine.entrypoint import load_entrypoint_model

        return load_entrypoint_model(path, cfg, spec, root)
    target = torch.device(device) if device is not None else resolve_device(cfg.training)
    ckpt = load_checkpoint(path, map_location=target)
    with torch.random.fork_rng(devices=[]):
        model = build_model(cfg.model, spec, root=root)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(
            f"{path}: its weights do not fit the configured model ({first})",
            hint="load it with the config of the run that wrote it (its config.resolved.yaml)",
        ) from None
    return model.to(target).eval()
