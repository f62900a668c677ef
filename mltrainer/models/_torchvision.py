"""`torchvision:<name>`: a torchvision classification model (`torchvision.models.get_model`),
never with downloaded weights: `model.weights` names a local file. torchvision's models take
3-channel images; for data of another channel count (grayscale, say) the model's input
convolution is rebuilt for it, its (loaded) weights folded over the channels as timm does."""

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
from mltrainer.models._vision import torchvision


@register_model_kind
class TorchvisionKind(ModelKind):
    name = "torchvision"
    modalities = ("image", "tensor")
    loads_weights = True

    def build(self, cfg: ModelConfig, spec: Any, root: Path) -> nn.Module:
        tv = torchvision()
        name = cfg.kind.split(":", 1)[1]
        known = tv.models.list_models(module=tv.models)  # classification models only
        if name not in known:
            raise unknown_name("torchvision", name, known,
                               hint="pick a classification model from "
                                    "torchvision.models.list_models()")
        model = build_with_params(tv.models.get_model, cfg.kind, cfg.params, name=name,
                                  weights=None, num_classes=n_outputs(spec))
        if cfg.weights:
            load_weights(model, cfg, root)
        shape = getattr(spec, "image_shape", None)
        if shape and len(shape) == 3 and int(shape[0]) != 3:
            adapt_input_conv(model, int(shape[0]), cfg.kind)
        return model


def adapt_input_conv(model: nn.Module, channels: int, kind: str) -> None:
    """Replace the first 3-channel Conv2d (the input convolution in every torchvision
    classification model) with one taking `channels`: 1 channel gets the sum of the 3 kernels,
    others the 3 kernels repeated and scaled by 3/channels, so loaded weights keep their
    response to a grey image."""
    import torch

    for parent in model.modules():
        for child_name, conv in parent.named_children():
            if isinstance(conv, nn.Conv2d) and conv.in_channels == 3:
                new = nn.Conv2d(channels, conv.out_channels, conv.kernel_size, conv.stride,
                                conv.padding, conv.dilation, conv.groups,
                                conv.bias is not None, conv.padding_mode)
                with torch.no_grad():
                    w = conv.weight
                    if channels == 1:
                        new.weight.copy_(w.sum(dim=1, keepdim=True))
                    else:
                        reps = -(-channels // 3)
                        new.weight.copy_(w.repeat(1, reps, 1, 1)[:, :channels] * (3 / channels))
                    if conv.bias is not None:
                        new.bias.copy_(conv.bias)
                setattr(parent, child_name, new)
                return
    raise ConfigError(f"model.kind {kind!r} has no 3-channel input convolution to fit to "
                      f"{channels}-channel images",
                      hint="set data.transforms.channels: 3, or pick another model")
