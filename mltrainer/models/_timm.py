"""`timm:<name>`: a timm model (`timm.create_model(name, pretrained=False, num_classes=...,
in_chans=...)`); `model.params` go to `create_model` (e.g. `img_size` of a ViT)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from mltrainer.config import ModelConfig
from mltrainer.errors import ConfigError
from mltrainer.models._base import (
    ModelKind,
    build_with_params,
    load_weights,
    n_outputs,
    register_model_kind,
    unknown_name,
)
from mltrainer.models._vision import timm


@register_model_kind
class TimmKind(ModelKind):
    name = "timm"
    modalities = ("image", "tensor")
    loads_weights = True

    def build(self, cfg: ModelConfig, spec: Any, root: Path) -> nn.Module:
        lib = timm()
        name = cfg.kind.split(":", 1)[1]
        if name.startswith(("hf-hub:", "hf_hub:", "local-dir:")) or "/" in name:
            arch = name.rsplit("/", 1)[-1].split(".", 1)[0]
            raise ConfigError(
                f"model.kind timm:{name!r} names weights to fetch (from the Hugging Face Hub or "
                "a folder timm reads itself); mlt never downloads at run time",
                hint=f"use the architecture's name (e.g. timm:{arch}) and point model.weights "
                     "at a local .safetensors or .pt file of its weights")
        if not lib.is_model(name):
            raise unknown_name("timm", name, lib.list_models(),
                               hint="list the names with python -c \"import timm; "
                                    "print(timm.list_models('*resnet*'))\"")
        shape = getattr(spec, "image_shape", None) or (3,)
        model = build_with_params(lib.create_model, cfg.kind, cfg.params, model_name=name,
                                  pretrained=False, num_classes=n_outputs(spec),
                                  in_chans=int(shape[0]))
        if cfg.weights:
            load_weights(model, cfg, root)
        return model
