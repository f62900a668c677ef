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


def model_device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def predict(model: nn.Module, X: np.ndarray, batch_size: int = PREDICT_BATCH) -> np.ndarray:
    """Raw outputs for rows `X` (eval mode, no grad): logits (N, C) for classification,
    (N,) for a single-output (regression) model."""
    tensor = torch.as_tensor(np.ascontiguousarray(X, dtype=np.float32),
                             device=model_device(model))
    out = forward_batches(model, tensor, batch_size).cpu().numpy()
    return out.reshape(len(out)) if out.ndim == 2 and out.shape[1] == 1 else out


def evaluate(model: nn.Module, X: torch.Tensor, y: torch.Tensor, loss_fn: LossFn, task: str,
             y_numpy: np.ndarray) -> tuple[float, dict[str, float]]:
    """(loss, every metric of the task) of `model` on one split held as tensors on the device."""
    outputs = forward_batches(model, X)
    loss = float(loss_fn(outputs, y))
    out = outputs.cpu().numpy()
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
