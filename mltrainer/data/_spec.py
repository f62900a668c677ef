"""`DataSpec`: what a model needs to know about the data (shapes, labels, names, modality)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mltrainer.data._target import TargetScale


@dataclass(frozen=True)
class DataSpec:
    """What a model needs to know about the data: shapes, labels, names."""

    task: str
    n_features: int
    n_classes: int | None
    feature_names: list[str]
    image_shape: tuple[int, ...] | None = None
    class_labels: list[Any] | None = None
    target: str | None = None
    modality: str = "table"  # table | image | text | tensor (what one input is)
    # regression targets standardised on train (`_target.py`); None: trained on raw targets
    target_scale: TargetScale | None = None
    # text: the tokenizer's number of tokens (ids 0..vocab_size-1 reach the model); else None
    vocab_size: int | None = None
    pad_token_id: int | None = None  # text: the id batches are padded with

    def to_dict(self) -> dict[str, Any]:
        extra = {k: v for k, v in (("vocab_size", self.vocab_size),
                                   ("pad_token_id", self.pad_token_id)) if v is not None}
        return {**extra,
            "task": self.task,
            "n_features": self.n_features,
            "n_classes": self.n_classes,
            "feature_names": list(self.feature_names),
            "image_shape": list(self.image_shape) if self.image_shape is not None else None,
            "class_labels": list(self.class_labels) if self.class_labels is not None else None,
            "target": self.target,
            "modality": self.modality,
            "target_scale": self.target_scale.to_dict() if self.target_scale else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataSpec:
        shape = data.get("image_shape")
        labels = data.get("class_labels")
        n_classes = data.get("n_classes")
        return cls(
            task=str(data["task"]),
            n_features=int(data["n_features"]),
            n_classes=int(n_classes) if n_classes is not None else None,
            feature_names=[str(n) for n in data.get("feature_names", [])],
            image_shape=tuple(int(d) for d in shape) if shape is not None else None,
            class_labels=list(labels) if labels is not None else None,
            target=data.get("target"),
            modality=str(data.get("modality", "table")),
            target_scale=TargetScale.from_dict(data.get("target_scale")),
            vocab_size=int(data["vocab_size"]) if data.get("vocab_size") is not None else None,
            pad_token_id=(int(data["pad_token_id"]) if data.get("pad_token_id") is not None
                          else None),
        )
