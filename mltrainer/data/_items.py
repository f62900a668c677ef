"""Item data sets (image folders, text, the user's torch Datasets): read lazily, per item,
through a DataLoader, never as one in-memory table.

A source hands over `ItemData` (a map-style dataset of raw items, their labels and a content
digest per item); `prepare_items` splits it by index (identical items kept together, stratified
by label), fingerprints each split from the digests, fits the preprocessing on train (image
mean/std, the tokenizer) and returns an `ItemBundle`: the same surface as the table
`DataBundle` (spec, train, val, test(phase), fingerprints, split_info, duplicates), with splits
that hold indices instead of arrays.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mltrainer.config import MltConfig
from mltrainer.data._split import (
    SPLITS,
    SplitPlan,
    grouped_split,
    sequence_fingerprint,
    set_fingerprint,
    split_info,
)
from mltrainer.data._testlock import check_test_request
from mltrainer.errors import DataError


def content_keys(digests: np.ndarray) -> np.ndarray:
    """(N,) one hashable value per item's 32-byte digest (for set operations)."""
    return np.ascontiguousarray(digests, dtype=np.uint8).view(np.dtype((np.void, 32))).ravel()

AuditFn = Callable[[dict[str, Any]], None]


@dataclass
class ItemData:
    """What an item source hands over. `dataset[i]` is (raw input, label index) — an image
    path, a text, or whatever the user's Dataset returns; `digests` (N, 32) uint8 hash each
    item's content (equal content, equal digest)."""

    dataset: Any
    labels: np.ndarray  # int64 class indices (classification) or float32 targets
    class_labels: list[Any] | None
    digests: np.ndarray
    data_hash: str
    modality: str  # "image" | "text" | "tensor"
    describe: Callable[[int], str]  # item i, for messages (a file path, a row number)
    given_splits: dict[str, np.ndarray] | None = None  # the user's own split, by index
    collate_fn: Any = None
    # with a collate_fn: the distinct shapes (the first two) of one row of the input it makes
    # of each item alone; two mean batches whose shape depends on the batch
    batch_shapes: list[tuple[int, ...]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # source facts for the record


@dataclass(frozen=True)
class ItemSplit:
    """One split of an item data set: indices into `items.dataset`, and their labels.

    `X` is the split itself (its inputs, loaded lazily): the engine's `predict(model, split.X)`
    runs it through a DataLoader with the evaluation preprocessing."""

    items: ItemData
    indices: np.ndarray
    y: np.ndarray
    pipeline: Any  # the fitted preprocessing (mltrainer.data._itemsets.Pipeline)
    loader: Any  # LoaderConfig

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def X(self) -> ItemSplit:
        return self

    @property
    def is_lazy(self) -> bool:
        return True


class ItemBundle:
    """The prepared item data; `test(phase)` releases the test split to finalize only."""

    def __init__(self, *, spec: Any, splits: dict[str, ItemSplit], fingerprints: dict[str, str],
                 split_info: dict[str, Any], duplicates: dict[str, int], pipeline: Any,
                 source: str, audit: AuditFn | None) -> None:
        self.spec = spec
        self.train = splits["train"]
        self.val = splits["val"]
        self._test = splits["test"]
        self.fingerprints = fingerprints
        self.split_info = split_info
        self.duplicates = duplicates
        self.pipeline = pipeline
        self.preprocessor = pipeline
        self.source = source
        self._audit = audit

    is_lazy = True

    def test(self, phase: str) -> ItemSplit:
        """The test items, under the same lock as a table's test rows (`check_test_request`:
        finalize only, while it runs; every request audited)."""
        check_test_request(phase, self._audit)
        return self._test

    def for_config(self, cfg: MltConfig) -> ItemBundle:
        """This data with `cfg`'s train-only augmentation (`data.transforms.augment`, which an
        optimize trial may search): the same splits, items and fitted mean/std; only the train
        split's pipeline differs, so val and test (and the evaluation inputs the loop keeps)
        are untouched. `self` when the augmentation is already cfg's, or the data has none."""
        pipe = self.pipeline
        augment = cfg.data.transforms.augment
        if self.spec.modality != "image" or augment == pipe.cfg.augment:
            return self
        from dataclasses import replace

        from mltrainer.data._itemsets import ImagePipeline

        tcfg = pipe.cfg.model_copy(update={"augment": augment})
        train = replace(self.train, pipeline=ImagePipeline(tcfg, pipe.mean, pipe.std,
                                                           pipe.input_shape))
        other = copy.copy(self)
        other.train = train
        return other

    def __repr__(self) -> str:
        return (f"ItemBundle(source={self.source!r}, modality={self.spec.modality!r}, "
                f"sizes={self.split_info.get('sizes', {})})")


def prepare_items(cfg: MltConfig, root: Path, items: ItemData, *,
                  audit: AuditFn | None = None) -> ItemBundle:
    from mltrainer.data._itemsets import fit_pipeline
    from mltrainer.data._spec import DataSpec
    from mltrainer.data._target import fit_target_scale

    where = cfg.data.source
    labels = items.labels
    if items.batch_shapes and len(items.batch_shapes) > 1 and not cfg.model.kind.startswith(
            "python:"):
        a, b = items.batch_shapes[:2]
        raise DataError(f"{where}: the collate_fn makes inputs of shape {a} for some items and "
                        f"{b} for others, but model.kind {cfg.model.kind} takes one shape",
                        hint="pad or crop to one length in the collate_fn, or build a model "
                             "that takes variable inputs (model.kind: python:<module>:<fn>)")
    label_digests = _with_labels(items.digests, labels)
    if items.given_splits is not None:
        plan = _given_plan(items.given_splits, len(labels), where)
    else:
        stratify = cfg.task == "classification" and cfg.data.split.stratify
        plan = grouped_split(items.digests, labels if stratify else None, seed=cfg.seed,
                             val=cfg.data.split.val, test=cfg.data.split.test, where=where)
    schema = {"source_kind": items.modality, "target": cfg.data.target}
    fingerprints = {"data": items.data_hash or sequence_fingerprint(label_digests, schema)}
    fingerprints.update({name: set_fingerprint(label_digests[idx], schema)
                         for name, idx in plan.indices().items()})
    pipeline = fit_pipeline(cfg, root, items, plan.train)
    splits = {name: ItemSplit(items, idx.astype(np.int64), labels[idx], pipeline,
                              cfg.data.loader)
              for name, idx in plan.indices().items()}
    n_classes = len(items.class_labels) if items.class_labels is not None else None
    shape = pipeline.input_shape
    # a Dataset's (C, H, W) items are images to the image models (cnn, torchvision, timm: the
    # channels they take), as PyTorch's convention has it; other shapes are plain tensors
    pictures = items.modality == "image" or (items.modality == "tensor" and shape is not None
                                             and len(shape) == 3)
    spec = DataSpec(
        task=cfg.task, n_features=int(np.prod(shape)) if shape else 0, n_classes=n_classes,
        feature_names=[], image_shape=tuple(shape) if pictures else None,
        class_labels=items.class_labels, target=cfg.data.target, modality=items.modality,
        target_scale=fit_target_scale(cfg, splits["train"].y),
        vocab_size=len(pipeline.tokenizer) if items.modality == "text" else None,
        pad_token_id=pipeline.tokenizer.pad_token_id if items.modality == "text" else None,
    )
    info = split_info(cfg, plan, labels, items.class_labels, len(labels),
                      "items with identical content (sha256) are kept together in one split")
    info["preprocessing"] = pipeline.describe()
    info.update(items.extra)
    return ItemBundle(spec=spec, splits=splits, fingerprints=fingerprints, split_info=info,
                      duplicates=_overlap(items.digests, label_digests, plan),
                      pipeline=pipeline,
                      source=where, audit=audit)


def _with_labels(digests: np.ndarray, labels: np.ndarray) -> np.ndarray:
    import hashlib

    out = np.empty_like(digests)
    lab = np.ascontiguousarray(labels.astype("<f8")).view(np.uint8).reshape(len(labels), 8)
    for i in range(len(digests)):
        out[i] = np.frombuffer(hashlib.sha256(digests[i].tobytes() + lab[i].tobytes()).digest(),
                               np.uint8)
    return out


def _given_plan(given: dict[str, np.ndarray], n: int, where: str) -> SplitPlan:
    missing = [s for s in SPLITS if s not in given or len(given[s]) == 0]
    if missing:
        raise DataError(f"{where}: the given split has no {' or '.join(missing)} items",
                        hint="return a dict with non-empty 'train', 'val' and 'test' Datasets")
    return SplitPlan(np.asarray(given["train"]), np.asarray(given["val"]),
                     np.asarray(given["test"]), stratified=False,
                     groups={s: len(given[s]) for s in SPLITS},
                     note="the split was given by the source")


def _overlap(digests: np.ndarray, label_digests: np.ndarray, plan: SplitPlan
             ) -> dict[str, int]:
    """Items whose content appears in two splits (0 for a split mlt made; for a given split,
    the overlap the user's split has, found by content); `conflicting_labels` as a table
    counts them: (content, label) pairs beyond one per distinct content (the same image in
    two class folders, the same text under two labels)."""
    sets = {name: np.unique(content_keys(digests[idx])) for name, idx in plan.indices().items()}
    all_rows = content_keys(digests)
    n_distinct = len(np.unique(all_rows))
    return {
        "train_val": len(np.intersect1d(sets["train"], sets["val"])),
        "train_test": len(np.intersect1d(sets["train"], sets["test"])),
        "val_test": len(np.intersect1d(sets["val"], sets["test"])),
        "within_data": int(len(all_rows) - n_distinct),
        "conflicting_labels": int(len(np.unique(content_keys(label_digests))) - n_distinct),
    }


