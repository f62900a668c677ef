"""Raw items → an exported item model's inputs, without torch (what `mlt predict` and the
DEPLOYMENT.md snippet do): the preprocessing `preprocess.json` states, reproduced exactly.

- Images: open with PIL, convert to the mode, resize the shorter side (bilinear, PIL — what
  torchvision's Resize calls for PIL images), centre-crop, scale to [0, 1] in float32 as
  torchvision's ToDtype does (x * float32(1/255)); the graph normalises.
- Text: the tokenizer copied into the artifact (`tokenizer/tokenizer.json`, the `tokenizers`
  library), truncation to max_length, padding to the longest text of the batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mltrainer.runtime import IMAGE_SUFFIXES


def image_files(paths: list[Path]) -> list[Path]:
    """Files as given; folders expanded to the image files under them, sorted."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES))
        else:
            out.append(path)
    return out


def image_array(path: Path, pre: dict[str, Any]) -> np.ndarray:
    """(C, H, W) float32 in [0, 1], as the training pipeline made it before normalising."""
    from PIL import Image

    with Image.open(path) as img:
        img = img.convert(pre["mode"])
    size, crop = pre.get("resize"), pre.get("crop")
    if size:
        w, h = img.size
        short, long = (w, h) if w <= h else (h, w)
        new_long = int(size * long / short)
        img = img.resize((size, new_long) if w <= h else (new_long, size), Image.BILINEAR)
    if crop:
        w, h = img.size
        top, left = round((h - crop) / 2.0), round((w - crop) / 2.0)
        img = img.crop((left, top, left + crop, top + crop))
    x = np.asarray(img, dtype=np.float32) * np.float32(1 / 255)
    return x[None] if x.ndim == 2 else np.ascontiguousarray(x.transpose(2, 0, 1))


def image_batch(paths: list[Path], pre: dict[str, Any]) -> np.ndarray:
    return np.ascontiguousarray(np.stack([image_array(p, pre) for p in paths]))


def text_batch(texts: list[str], folder: Path, pre: dict[str, Any]) -> dict[str, np.ndarray]:
    """{"input_ids", "attention_mask"} int64 (N, L), L the longest text after truncation."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(folder) / pre["tokenizer"] / "tokenizer.json"))
    tok.enable_truncation(max_length=int(pre["max_length"]))
    tok.enable_padding(pad_id=int(pre["pad_id"]), pad_token=pre["pad_token"],
                       direction=pre.get("padding_side", "right"))
    encoded = tok.encode_batch([str(t) for t in texts])
    return {"input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64)}
