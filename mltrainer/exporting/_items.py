"""The deployable module of an item model (images, text) and its inputs; `export_all`,
`check_parity` and `measure_latency` then treat it as they treat a table model.

- Images: the graph takes `features`, float32 (N, C, H, W) pixels in [0, 1] after the resize
  and crop that `preprocess.json` states; the normalisation (mean/std measured on train) is
  inside the graph, so a runtime only resizes, crops and scales to [0, 1].
- Text: the graph takes `input_ids` and `attention_mask`, int64 (N, L), as the tokenizer
  copied into the artifact writes them; both N and L are symbolic (`dynamic_dims`).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from mltrainer.exporting._deployable import with_target_unscale

TEXT_INPUTS = ("input_ids", "attention_mask")


class ImageDeployable(nn.Module):
    """(x - mean) / std per channel, then the model: pixels in [0, 1] → logits."""

    input_names = ("features",)
    dynamic_dims = ({0: "batch"},)
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, model: nn.Module, mean: list[float], std: list[float],
                 target_scale: Any = None) -> None:
        super().__init__()
        self.model = with_target_unscale(model, target_scale)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).reshape(-1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).reshape(-1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)


class TextDeployable(nn.Module):
    """(input_ids, attention_mask) → logits."""

    input_names = TEXT_INPUTS

    def __init__(self, model: nn.Module, max_length: int, target_scale: Any = None) -> None:
        super().__init__()
        self.model = with_target_unscale(model, target_scale)
        # the sequence is free up to the longest the tokenizer emits (and positions allow)
        positions = getattr(getattr(getattr(model, "model", None), "config", None),
                            "max_position_embeddings", None)
        top = min(max_length, positions) if positions else max_length
        seq = ("sequence", int(top))
        self.dynamic_dims = ({0: "batch", 1: seq}, {0: "batch", 1: seq})

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model({"input_ids": input_ids, "attention_mask": attention_mask})


def build_item_deployable(model: nn.Module, pipeline: Any, *, target_scale: Any = None
                          ) -> nn.Module:
    """A CPU, float32, eval-mode copy of `model` with the in-graph part of `pipeline`, and
    the inverse of `target_scale` (standardised regression targets) as its last layer."""
    inner = copy.deepcopy(model).to(device="cpu", dtype=torch.float32).eval()
    if pipeline.modality == "image":
        return ImageDeployable(inner, pipeline.mean, pipeline.std, target_scale).eval()
    if pipeline.modality == "text":
        return TextDeployable(inner, pipeline.max_length, target_scale).eval()
    return with_target_unscale(inner, target_scale).eval()


def model_inputs(split: Any, n: int, start: int = 0) -> Any:
    """The model inputs of up to `n` items of a lazily read split (eval preprocessing, before
    the in-graph part): images as [0, 1] pixels (N, C, H, W); text as {"input_ids",
    "attention_mask"} padded to the longest of these items."""
    pipeline = split.pipeline
    idx = [int(i) for i in split.indices[start:start + n]]
    raws = [split.items.dataset[i][0] for i in idx]
    if pipeline.modality == "image":
        return torch.stack([pipeline.unnormalised(pipeline.open(r)) for r in raws]).numpy()
    if pipeline.modality == "text":
        inputs, _ = pipeline.collate([(pipeline.load(r, False), 0) for r in raws])
        return {k: inputs[k].numpy() for k in TEXT_INPUTS}
    return torch.stack([torch.as_tensor(r) for r in raws]).float().numpy()
