"""`hf:<local dir>`: a Hugging Face transformers model from a folder `save_pretrained` wrote
(config.json, and weights when it has them), never from the hub. Text data gets
`AutoModelForSequenceClassification`, image data `AutoModelForImageClassification`; the
classifier is sized from the data (a differently sized saved head is re-initialised)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mltrainer.config import ModelConfig
from mltrainer.errors import ConfigError
from mltrainer.models._base import (
    ModelKind,
    load_weights,
    n_outputs,
    refuse_set_by_mlt,
    register_model_kind,
    resolve_local,
)

_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")


class HFClassifier(nn.Module):
    """A transformers classifier as an mlt model: `forward(input_ids, attention_mask)` for
    text (or one dict batch), `forward(pixel_values)` for images; returns the logits."""

    def __init__(self, model: nn.Module, modality: str) -> None:
        super().__init__()
        self.model = model
        self.modality = modality

    def forward(self, x: Any, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        if isinstance(x, dict):
            keep = {k: v for k, v in x.items() if k in ("input_ids", "attention_mask",
                                                         "pixel_values")}
            return self.model(**keep).logits
        if self.modality == "text":
            return self.model(input_ids=x, attention_mask=attention_mask).logits
        return self.model(pixel_values=x).logits


@register_model_kind
class HFKind(ModelKind):
    name = "hf"
    modalities = ("text", "image")
    loads_weights = True

    def folder(self, cfg: ModelConfig, root: Path) -> Path:
        rel = cfg.kind.split(":", 1)[1]
        path = resolve_local(rel, root)
        if not (path / "config.json").is_file():
            what = "no such folder" if not path.is_dir() else "it has no config.json"
            raise ConfigError(
                f"model.kind {cfg.kind!r}: not a Hugging Face model folder ({what}: {path})",
                hint="point hf: at a folder written by save_pretrained (models are never "
                     "downloaded at run time)")
        return path

    def build(self, cfg: ModelConfig, spec: Any, root: Path) -> nn.Module:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from mltrainer.models._vision import torchvision

        torchvision()  # transformers/datasets import it: make that import work
        import transformers

        transformers.logging.set_verbosity_error()
        path = self.folder(cfg, root)
        modality = getattr(spec, "modality", "table")
        if modality not in ("text", "image"):
            raise ConfigError(f"model.kind {cfg.kind!r} needs text or image data but the data "
                              f"is a {modality}", hint="use mlp for tables")
        auto = (transformers.AutoModelForSequenceClassification if modality == "text"
                else transformers.AutoModelForImageClassification)
        n = n_outputs(spec)
        labels = [str(c) for c in (getattr(spec, "class_labels", None) or range(n))]
        refuse_set_by_mlt(cfg.kind, cfg.params, {})
        extra = {"num_labels": n, "id2label": dict(enumerate(labels)),
                 "label2id": {v: i for i, v in enumerate(labels)},
                 "attn_implementation": "eager", **cfg.params}
        pad = getattr(spec, "pad_token_id", None)
        if modality == "text" and pad is not None and _config_value(path, "pad_token_id") is None:
            # a config without one (GPT-2's): the id mlt pads batches with, which a decoder's
            # classifier needs to find each text's last token (it refused a batch of 2)
            extra.setdefault("pad_token_id", int(pad))
        try:
            if any((path / f).is_file() for f in _WEIGHT_FILES):
                model = auto.from_pretrained(str(path), ignore_mismatched_sizes=True,
                                             local_files_only=True, **extra)
            else:
                config = transformers.AutoConfig.from_pretrained(str(path),
                                                                 local_files_only=True, **extra)
                model = auto.from_config(config)
        except (OSError, ValueError, KeyError) as exc:
            first = str(exc).strip().splitlines()[0]
            raise ConfigError(f"model.kind {cfg.kind!r}: transformers cannot build a "
                              f"classifier from {path}: {first}") from None
        positions = getattr(model.config, "max_position_embeddings", None)
        if modality == "text" and positions and cfg.max_length > positions:
            raise ConfigError(
                f"model.max_length {cfg.max_length} is longer than the {cfg.kind!r} model can "
                f"take (max_position_embeddings {positions} in {path / 'config.json'})",
                hint=f"set model.max_length: {positions} or less in mlt.yaml")
        wrapped = HFClassifier(model, modality)
        if cfg.weights:  # e.g. an mlt checkpoint of this model, on top of the folder's weights
            load_weights(wrapped, cfg, root)
        return wrapped


def _config_value(folder: Path, key: str) -> Any:
    import json

    try:
        return json.loads((folder / "config.json").read_text(encoding="utf-8")).get(key)
    except (OSError, ValueError, AttributeError):
        return None  # transformers says what is wrong with the file
