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
            load_weights(model, cfg, root, adapt=lambda state: _fit_channels(
                lib, model, state, int(shape[0])))
        return model


def _fit_channels(lib: Any, model: nn.Module, state: dict[str, Any], channels: int
                  ) -> dict[str, Any]:
    """Weights saved from a 3-channel model, on data of another channel count: the input
    convolution's kernels folded over the channels as timm folds its own pretrained weights
    (`timm.models.adapt_input_conv`: summed for grey), so they keep their response to a grey
    image instead of being left at their fresh init."""
    first = model.pretrained_cfg.get("first_conv") if hasattr(model, "pretrained_cfg") else None
    for name in [first] if isinstance(first, str) else list(first or []):
        key = f"{name}.weight"
        weight = state.get(key)
        if weight is not None and weight.ndim == 4 and weight.shape[1] != channels:
            state[key] = lib.models.adapt_input_conv(channels, weight)
    return state
