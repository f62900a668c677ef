"""Finalize for item data (image folders, text, torch Datasets): the parts that differ from a
table's. The phase calls these where a table's bundle has arrays; everything else (production
training, the one test evaluation, export, fresh-process parity, latency, the artifact, the
gate) is the same code.

- the production data: train+val as one lazily read split;
- the schema of a split (labels in range, sizes) and items shared across splits (by content);
- preprocess.json: what a deployment does before the graph (image resize/crop/scale; text: the
  tokenizer copied into the artifact, truncation, padding) and what comes out;
- parity and example inputs: val items through the same steps `mlt predict` takes.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

PARITY_MAX_ITEMS = 256  # val items compared per export (images are large; text is padded)
EXAMPLES = 3  # example inputs shipped with the artifact (copied val images / val texts)


def is_items(bundle: Any) -> bool:
    return bool(getattr(bundle, "is_lazy", False))


@dataclass
class ItemTrainVal:
    """A bundle whose train split is train+val (one lazily read split); val stays val."""

    spec: Any
    train: Any
    val: Any
    pipeline: Any
    fingerprints: dict[str, str]
    source: str
    is_lazy: bool = True

    @property
    def preprocessor(self) -> Any:
        return self.pipeline


def train_plus_val(bundle: Any) -> ItemTrainVal:
    from dataclasses import replace

    tr, va = bundle.train, bundle.val
    joined = replace(tr, indices=np.concatenate([tr.indices, va.indices]),
                     y=np.concatenate([tr.y, va.y]))
    return ItemTrainVal(bundle.spec, joined, va, bundle.pipeline, bundle.fingerprints,
                        bundle.source)


def split_schema(name: str, split: Any, spec: Any) -> dict[str, Any]:
    problems: list[str] = []
    y = np.asarray(split.y)
    n = len(y)
    if n == 0:
        problems.append("no items")
    if len(split.indices) != n:
        problems.append(f"{len(split.indices)} items but {n} labels")
    problems.extend(label_problems(y, spec))
    shape = getattr(split.pipeline, "input_shape", None)
    return {"split": name, "rows": int(n), "n_features": int(np.prod(shape)) if shape else None,
            "modality": spec.modality, "problems": problems, "n_problems": len(problems),
            "passed": not problems}


def shared_items(splits: dict[str, Any]) -> dict[str, int]:
    """Items whose content (sha256 of the file / text / tensor) occurs in two splits."""
    from mltrainer.data._items import content_keys

    keys = {n: np.unique(content_keys(s.items.digests[s.indices])) for n, s in splits.items()}
    return {"train_val": len(np.intersect1d(keys["train"], keys["val"])),
            "train_test": len(np.intersect1d(keys["train"], keys["test"])),
            "val_test": len(np.intersect1d(keys["val"], keys["test"]))}


def input_document(bundle: Any) -> dict[str, Any]:
    """preprocess.json's "input": the steps before the graph, and the graph's inputs."""
    pipe, spec = bundle.pipeline, bundle.spec
    if spec.modality == "image":
        return {"kind": "image", "name": "features", "dtype": "float32",
                "shape": ["batch", *spec.image_shape], "mode": pipe.mode,
                "resize": pipe.cfg.size, "crop": pipe.cfg.crop,
                "steps": "open with PIL; convert to mode; resize the shorter side to `resize` "
                         "(bilinear); centre-crop `crop` x `crop`; x * float32(1/255); "
                         "channels first",
                "in_graph": "(x - mean) / std per channel",
                "mean": pipe.mean, "std": pipe.std}
    if spec.modality == "text":
        tok = pipe.tokenizer
        return {"kind": "text", "names": ["input_ids", "attention_mask"], "dtype": "int64",
                "shape": ["batch", "sequence"], "tokenizer": "tokenizer",
                "tokenizer_class": type(tok).__name__, "max_length": pipe.max_length,
                "pad_id": int(tok.pad_token_id), "pad_token": tok.pad_token,
                "padding_side": tok.padding_side,
                "steps": "tokenizer/tokenizer.json (the tokenizers library), truncation to "
                         "max_length, padding to the longest text of the batch"}
    return {"kind": "tensor", "name": "features", "dtype": "float32",
            "shape": ["batch", *(pipe.input_shape or [])],
            "steps": "the Dataset's own items, as a float32 batch"}


def preprocess_document(bundle: Any, output_shape: list[Any]) -> dict[str, Any]:
    from mltrainer.phases.finalize.artifacts import PREPROCESS_FORMAT, target_output

    spec = bundle.spec
    return {
        "format": PREPROCESS_FORMAT, "version": 1, "preprocessor": bundle.pipeline.describe(),
        "input": input_document(bundle),
        "output": {
            "name": "outputs", "task": spec.task, "shape": ["batch", *output_shape],
            "kind": "logits (softmax gives class probabilities)"
                    if spec.task == "classification" else "predicted value",
            "class_labels": list(spec.class_labels) if spec.class_labels is not None else None,
            "target": spec.target, **target_output(spec),
        },
    }


def write_extra_files(bundle: Any, folder: Path) -> None:
    """What ships beside the graph: the tokenizer (fast, so tokenizer.json is there)."""
    if bundle.spec.modality == "text":
        bundle.pipeline.tokenizer.save_pretrained(str(folder / "tokenizer"))


def model_inputs(bundle: Any, n: int) -> Any:
    """Up to `n` val items as the deployment builds them (runtime.items), for parity."""
    from mltrainer.exporting import model_inputs as inputs_of

    return inputs_of(bundle.val, min(n, len(bundle.val)))


def example_rows(bundle: Any, folder: Path) -> list[Any]:
    """A few val items shipped as examples: image files copied into `examples/`, texts, or a
    Dataset's items as nested lists."""
    split = bundle.val
    raws = [split.items.dataset[int(i)][0] for i in split.indices[:EXAMPLES]]
    if bundle.spec.modality == "image":
        out = folder / "examples"
        out.mkdir(exist_ok=True)
        rows = []
        for k, path in enumerate(raws):
            name = f"examples/{k}{Path(path).suffix.lower()}"
            if not (folder / name).exists():
                shutil.copyfile(path, folder / name)
            rows.append(name)
        return rows
    if bundle.spec.modality == "tensor":  # the Dataset's items, as JSON (nested lists)
        return [np.asarray(r, dtype=np.float32).tolist() for r in raws]
    return [str(r) for r in raws]


def runtime_inputs(rows: list[Any], folder: Path, doc: dict[str, Any]) -> Any:
    from mltrainer.runtime.items import image_batch, text_batch

    pre = doc["input"]
    if pre["kind"] == "image":
        return image_batch([folder / r for r in rows], pre)
    if pre["kind"] == "tensor":
        return {pre["name"]: np.ascontiguousarray(np.asarray(rows, dtype=np.float32))}
    return text_batch(rows, folder, pre)


def expected_predictions(deployable: Any, spec: Any, rows: list[Any], folder: Path,
                         doc: dict[str, Any]) -> list[dict[str, Any]]:
    """What the snippet must print for the example items, from PyTorch eager on the inputs
    the runtime builds from them."""
    from mltrainer.engine.metrics import softmax
    from mltrainer.runtime.runners import torch_runner

    out = torch_runner(deployable)(runtime_inputs(rows, folder, doc)).astype(np.float64)
    if spec.task == "regression":
        return [{"value": float(v)} for v in out.reshape(len(rows))]
    labels = list(spec.class_labels)
    return [{"label": labels[int(p.argmax())],
             "probabilities": {str(lab): float(q) for lab, q in zip(labels, p, strict=True)}}
            for p in softmax(out)]


def label_problems(y: np.ndarray, spec: Any) -> list[str]:
    """What is wrong with a split's targets for the task: class indices outside the classes
    (classification), non-finite values (regression)."""
    n = len(y)
    if spec.task == "classification":
        k = int(spec.n_classes or 0)
        if y.dtype.kind not in "iu":
            return [f"y has dtype {y.dtype}, expected class indices (int)"]
        if n and (y.min() < 0 or y.max() >= k):
            return [f"y holds class indices outside 0..{k - 1}"]
    elif n and not np.isfinite(y.astype(np.float64)).all():
        return ["y holds non-finite targets"]
    return []
