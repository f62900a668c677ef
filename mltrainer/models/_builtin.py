"""The built-in models, `mlp` and `cnn`.

Every model takes a float batch `(N, n_features)` (or `(N, C, H, W)` images, flattened by the
mlp) and returns logits `(N, n_classes)` for classification or `(N, 1)` for regression (the
engine squeezes regression outputs to `(N,)` in its loss and in `predict`).

- `mlp`: Linear → [norm] → activation → dropout per hidden width, then a Linear head.
- `cnn`: reshapes the flat input to `spec.image_shape` (C, H, W) inside `forward`, then per
  entry of `channels` a 3x3 conv → [norm] → activation → 2x2 max-pool (while both sides are
  at least 2), flattens, and ends in an mlp head of the `hidden` widths.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mltrainer.config import ModelConfig
from mltrainer.errors import ConfigError
from mltrainer.models._base import ModelKind, n_outputs, register_model_kind

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
    "leaky_relu": nn.LeakyReLU,
}


def _norm(kind: str, width: int, conv: bool) -> nn.Module | None:
    if kind == "batch":
        return nn.BatchNorm2d(width) if conv else nn.BatchNorm1d(width)
    if kind == "layer":
        # GroupNorm with one group normalises over (C, H, W): layer norm for feature maps
        return nn.GroupNorm(1, width) if conv else nn.LayerNorm(width)
    return None


def _dense_stack(width_in: int, hidden: Sequence[int], dropout: float, activation: str,
                 norm: str) -> tuple[list[nn.Module], int]:
    layers: list[nn.Module] = []
    for width in hidden:
        layers.append(nn.Linear(width_in, width))
        if (n := _norm(norm, width, conv=False)) is not None:
            layers.append(n)
        layers.append(ACTIVATIONS[activation]())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width_in = width
    return layers, width_in


class MLP(nn.Module):
    def __init__(self, n_features: int, n_out: int, hidden: Sequence[int], dropout: float,
                 activation: str = "relu", norm: str = "none") -> None:
        super().__init__()
        layers, width = _dense_stack(n_features, hidden, dropout, activation, norm)
        self.net = nn.Sequential(*layers, nn.Linear(width, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))


class SmallCNN(nn.Module):
    def __init__(self, image_shape: tuple[int, ...], n_features: int, n_out: int,
                 channels: Sequence[int], hidden: Sequence[int], dropout: float,
                 activation: str = "relu", norm: str = "none") -> None:
        super().__init__()
        if len(image_shape) != 3 or math.prod(image_shape) != n_features:
            raise ConfigError(
                f"model.kind 'cnn': image_shape {tuple(image_shape)} must be (C, H, W) with "
                f"C*H*W equal to the {n_features} features"
            )
        self.image_shape = tuple(int(s) for s in image_shape)
        c, h, w = self.image_shape
        blocks: list[nn.Module] = []
        for width in channels:
            blocks.append(nn.Conv2d(c, width, kernel_size=3, padding=1))
            if (n := _norm(norm, width, conv=True)) is not None:
                blocks.append(n)
            blocks.append(ACTIVATIONS[activation]())
            if h >= 2 and w >= 2:
                blocks.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            c = width
        self.features = nn.Sequential(*blocks)
        head, width = _dense_stack(c * h * w, hidden, dropout, activation, norm)
        self.head = nn.Sequential(nn.Flatten(), *head, nn.Linear(width, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x.reshape(x.shape[0], *self.image_shape)))


@register_model_kind
class MlpKind(ModelKind):
    name = "mlp"

    def build(self, cfg: ModelConfig, spec: Any, root: Path) -> nn.Module:
        check_training_memory(cfg, spec)  # a model too large is refused before it exists
        return MLP(spec.n_features, n_outputs(spec), cfg.hidden, cfg.dropout, cfg.activation,
                   cfg.norm)



@register_model_kind
class CnnKind(ModelKind):
    name = "cnn"

    def build(self, cfg: ModelConfig, spec: Any, root: Path) -> nn.Module:
        shape = getattr(spec, "image_shape", None)
        if not shape:
            raise ConfigError(
                "model.kind 'cnn' needs image data but the data has no image_shape",
                hint="use model.kind: mlp for tabular data, or a source with images "
                "(e.g. sklearn:digits or imagefolder:<dir>)",
            )
        check_training_memory(cfg, spec)
        return SmallCNN(tuple(shape), spec.n_features, n_outputs(spec), cfg.channels,
                        cfg.hidden, cfg.dropout, cfg.activation, cfg.norm)


BYTES_PER_PARAMETER = 16  # fp32 weight, its gradient and the two Adam moments


def check_training_memory(model_cfg: ModelConfig, spec: Any) -> None:
    """Refuse (exit 2) a built-in model whose parameters alone would not fit in memory to
    train: counted on the meta device (nothing allocated), at 16 bytes a parameter."""
    with torch.device("meta"):
        if model_cfg.kind == "mlp":
            meta: nn.Module = MLP(spec.n_features, n_outputs(spec), model_cfg.hidden, 0.0)
        else:
            shape = getattr(spec, "image_shape", None)
            if not shape or len(shape) != 3:
                return  # build_model refuses it with its own message
            meta = SmallCNN(tuple(shape), spec.n_features, n_outputs(spec), model_cfg.channels,
                            model_cfg.hidden, 0.0)
    count = sum(p.numel() for p in meta.parameters())
    need = count * BYTES_PER_PARAMETER
    have = memory_available()
    if have is not None and need > have:
        raise ConfigError(
            f"model.{'hidden' if model_cfg.kind == 'mlp' else 'channels/hidden'} makes a "
            f"{model_cfg.kind} of {count:.3g} parameters: about {_gib(need)} to train "
            f"(weights, gradients, optimiser state), more than the {_gib(have)} of memory here",
            hint="make the model smaller (fewer or narrower layers in model.hidden / "
            "model.channels)",
            parameters=count, bytes_needed=need, bytes_available=have,
        )


def memory_available() -> int | None:
    """The memory this process may use: physical memory, capped by RLIMIT_AS and a cgroup
    limit when one is set (None when unknown)."""
    import os
    import resource

    limits: list[int] = []
    with contextlib.suppress(ValueError, OSError, AttributeError):
        limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft not in (resource.RLIM_INFINITY, -1) and soft > 0:
        limits.append(int(soft))
    try:
        text = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if text.isdigit():
            limits.append(int(text))
    except OSError:
        pass
    return min(limits) if limits else None


def _gib(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB"
