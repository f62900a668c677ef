"""The module that ships: in-graph preprocessing in front of the trained model.

The encoded feature matrix (numeric columns raw with NaN, categoricals already one-hot) is the
contract at the model's door; imputation and standardisation live inside the graph so a runtime
that loads `model.onnx` needs nothing else but the one-hot encoding spec.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from mltrainer.errors import BadInputError

TASKS = ("classification", "regression")


class ScaleModule(nn.Module):
    """Fill NaN with `fill`, then standardise: `(x - mean) / std`, per encoded column."""

    fill: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, fill: Sequence[float], mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        # Buffers, not parameters: they travel with state_dict and every export, never train.
        self.register_buffer("fill", torch.tensor(list(fill), dtype=torch.float32))
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32))

    @property
    def n_features(self) -> int:
        return int(self.mean.shape[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.where(torch.isnan(x), self.fill, x)
        return (x - self.mean) / self.std


class TargetUnscale(nn.Module):
    """`y * std + mean`: a regression model trained on standardised targets (`DataSpec.
    target_scale`), back in the target's units - the last layer of the graph that ships."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: float, std: float) -> None:
        super().__init__()
        for name, value in (("mean", mean), ("std", std)):
            if not math.isfinite(float(value)) or (name == "std" and float(value) <= 0.0):
                raise BadInputError(f"target_scale.{name} must be finite"
                                    f"{' and > 0' if name == 'std' else ''} but got {value}")
        self.register_buffer("mean", torch.tensor(float(mean), dtype=torch.float32))
        self.register_buffer("std", torch.tensor(float(std), dtype=torch.float32))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.std + self.mean


def with_target_unscale(model: nn.Module, target_scale: Any) -> nn.Module:
    """`model` followed by `TargetUnscale` when there is a target scale, else `model`."""
    if target_scale is None:
        return model
    return nn.Sequential(model, TargetUnscale(target_scale.mean, target_scale.std))


class DeployableModel(nn.Module):
    """`scale` then `model`; returns what the model returns (logits (N, C), or (N,) / (N, 1)),
    regression values in the target's units (`model` ends with `TargetUnscale` when the
    targets were standardised)."""

    def __init__(self, scale: ScaleModule, model: nn.Module, task: str) -> None:
        super().__init__()
        if task not in TASKS:
            raise BadInputError(f"task must be one of {list(TASKS)} but got {task!r}")
        self.scale = scale
        self.model = model
        self.task = task

    @property
    def n_features(self) -> int:
        return self.scale.n_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.scale(x))


def _check_scale_params(scale_params: Mapping[str, Sequence[float]]) -> None:
    missing = [key for key in ("fill", "mean", "std") if key not in scale_params]
    if missing:
        raise BadInputError(
            f"scale_params is missing {missing}; it has {sorted(scale_params)}",
            hint="pass the preprocessor's scale_params: {'fill': [...], 'mean': [...], "
            "'std': [...]}",
        )
    lengths = {key: len(scale_params[key]) for key in ("fill", "mean", "std")}
    if len(set(lengths.values())) != 1:
        raise BadInputError(f"scale_params lengths differ: {lengths}")
    for key in ("fill", "mean", "std"):
        for i, value in enumerate(scale_params[key]):
            if not math.isfinite(float(value)):
                raise BadInputError(f"scale_params.{key}[{i}] must be finite but got {value}")
    for i, value in enumerate(scale_params["std"]):
        # A constant column must come with std 1 from the data layer: 0 would make inf in-graph.
        if float(value) <= 0.0:
            raise BadInputError(f"scale_params.std[{i}] must be > 0 but got {value}")


def build_deployable(
    model: nn.Module, scale_params: Mapping[str, Sequence[float]], task: str, *,
    target_scale: Any = None,
) -> DeployableModel:
    """A CPU, float32, eval-mode DeployableModel around a copy of `model`, ending with the
    inverse of `target_scale` (`DataSpec.target_scale`: regression targets standardised on
    train) so the graph's outputs are in the target's units.

    The copy keeps the caller's model (possibly on a GPU, possibly in train mode) untouched.
    """
    _check_scale_params(scale_params)
    scale = ScaleModule(scale_params["fill"], scale_params["mean"], scale_params["std"])
    inner = copy.deepcopy(model).to(device="cpu", dtype=torch.float32)
    return DeployableModel(scale, with_target_unscale(inner, target_scale), task).eval()
