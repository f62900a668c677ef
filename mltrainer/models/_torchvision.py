"""`torchvision:<name>`: a torchvision classification model (`torchvision.models.get_model`),
never with downloaded weights: `model.weights` names a local file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from mltrainer.config import ModelConfig
from mltrainer.models._base import (
    ModelKind,
    load_weights,
    n_outputs,
    register_model_kind,
    unknown_name,
)
from mltrainer.models._vision import torchvision


@register_model_kind
class TorchvisionKind(ModelKind):
    name = "torchvision"
    modalities = ("image", "tensor")

    def build(self, cfg: ModelConfig, spec: Any, root: Path) -> nn.Module:
        tv = torchvision()
        name = cfg.kind.split(":", 1)[1]
        known = tv.models.list_models(module=tv.models)  # classification models only
        if name not in known:
            raise unknown_name("torchvision", name, known,
                               hint="pick a classification model from "
                                    "torchvision.models.list_models()")
        model = tv.models.get_model(name, weights=None, num_classes=n_outputs(spec),
                                    **cfg.params)
        if cfg.weights:
            load_weights(model, cfg, root)
        return model
