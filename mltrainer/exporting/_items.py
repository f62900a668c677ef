"""Export and parity for item models (images, text): ONNX with a dynamic batch dimension (and a
dynamic sequence length for text), checked against PyTorch eager with onnxruntime.

- Images: the graph takes `input`, float32 (N, C, H, W) pixels in [0, 1] after the resize and
  crop that `preprocess.json` states; the normalisation (mean/std measured on train) is inside
  the graph, so a runtime only resizes, crops and scales to [0, 1].
- Text: the graph takes `input_ids` and `attention_mask`, int64 (N, L), as the tokenizer
  copied into the artifact writes them; L may differ from call to call.

The verdict per batch is `compare_outputs` (the table exporter's): ≤ atol 1e-5 or allclose
with rtol 1e-4, and identical labels.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mltrainer.exporting._parity import DEFAULT_TOLERANCE, compare_outputs

TEXT_INPUTS = ("input_ids", "attention_mask")


class ImageDeployable(nn.Module):
    """(x - mean) / std per channel, then the model: pixels in [0, 1] → logits."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, model: nn.Module, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).reshape(-1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).reshape(-1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)


class TextDeployable(nn.Module):
    """(input_ids, attention_mask) → logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model({"input_ids": input_ids, "attention_mask": attention_mask})


def build_item_deployable(model: nn.Module, pipeline: Any) -> nn.Module:
    """A CPU, float32, eval-mode copy of `model` with the in-graph part of `pipeline`."""
    inner = copy.deepcopy(model).to(device="cpu", dtype=torch.float32).eval()
    if pipeline.modality == "image":
        return ImageDeployable(inner, pipeline.mean, pipeline.std).eval()
    if pipeline.modality == "text":
        return TextDeployable(inner).eval()
    return inner


def input_names(modality: str) -> list[str]:
    return list(TEXT_INPUTS) if modality == "text" else ["input"]


def export_onnx(deployable: nn.Module, example: tuple[torch.Tensor, ...], path: Path,
                modality: str) -> dict[str, Any]:
    """Write `path` (self-contained ONNX); batch (and text's sequence) dims are symbolic."""
    import onnx

    batch = torch.export.Dim("batch")
    if modality == "text":
        seq = torch.export.Dim("sequence")
        shapes: tuple[Any, ...] = ({0: batch, 1: seq}, {0: batch, 1: seq})
    else:
        shapes = ({0: batch},)
    path.unlink(missing_ok=True)
    with torch.no_grad():
        torch.onnx.export(deployable, example, str(path), dynamo=True, external_data=False,
                          input_names=input_names(modality), output_names=["output"],
                          dynamic_shapes=shapes, verbose=False)
    proto = onnx.load(str(path))
    onnx.checker.check_model(str(path), full_check=True)
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]
            for i in proto.graph.input}
    return {"format": "onnx", "path": str(path), "inputs": dims,
            "dynamic_batch": all(isinstance(d[0], str) for d in dims.values()),
            "dynamic_sequence": modality != "text" or all(isinstance(d[1], str)
                                                          for d in dims.values()),
            "opset": next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")),
                          None),
            "size_bytes": path.stat().st_size}


def item_parity(path: Path, deployable: nn.Module, batches: list[tuple[np.ndarray, ...]],
                modality: str, task: str = "classification") -> dict[str, Any]:
    """onnxruntime vs eager on each batch (sizes and, for text, lengths differ): the worst
    figures and each batch's verdict."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = input_names(modality)
    rows = []
    for arrays in batches:
        got = session.run(None, dict(zip(names, arrays, strict=True)))[0]
        with torch.inference_mode():
            want = deployable(*(torch.from_numpy(a) for a in arrays)).numpy()
        row = compare_outputs(got, want, task, DEFAULT_TOLERANCE)
        row["batch"] = list(arrays[0].shape)
        rows.append(row)
    worst = {k: max((r[k] for r in rows if r[k] is not None), default=None)
             for k in ("max_abs_diff", "max_rel_diff")}
    agreement = [r["label_agreement"] for r in rows if r["label_agreement"] is not None]
    return {"passed": all(r["passed"] for r in rows), **worst,
            "label_agreement": min(agreement) if agreement else None,
            "batches": rows, "tolerance": dict(DEFAULT_TOLERANCE)}


def split_batches(split: Any, sizes: tuple[int, ...] = (1, 2, 7, 32)) -> list[tuple[Any, ...]]:
    """Model-input batches of a lazily read split (eval preprocessing, no in-graph part):
    images as [0, 1] pixels, text as (input_ids, attention_mask) padded per batch."""
    pipeline = split.pipeline
    out = []
    start = 0
    for size in sizes:
        idx = [int(i) for i in split.indices[start:start + size]]
        if len(idx) < size:
            break
        start += size
        raws = [split.items.dataset[i][0] for i in idx]
        if pipeline.modality == "image":
            pixels = torch.stack([pipeline.unnormalised(pipeline.open(r)) for r in raws])
            out.append((pixels.numpy(),))
        elif pipeline.modality == "text":
            inputs, _ = pipeline.collate([(pipeline.load(r, False), 0) for r in raws])
            out.append((inputs["input_ids"].numpy(), inputs["attention_mask"].numpy()))
        else:
            out.append((torch.stack([torch.as_tensor(r) for r in raws]).float().numpy(),))
    return out
