"""Raw items → an exported item model's inputs, without torch (what `mlt predict` and the
DEPLOYMENT.md snippet do): the preprocessing `preprocess.json` states, reproduced exactly.

- Images: open with PIL (16-bit ones scaled to 8 bits), convert to the mode, resize the
  shorter side (bilinear, PIL — what torchvision's Resize calls for PIL images), centre-crop,
  scale to [0, 1] in float32 as torchvision's ToDtype does (x * float32(1/255)); the graph
  normalises.
- Text: the tokenizer copied into the artifact (`tokenizer/tokenizer.json`, the `tokenizers`
  library), truncation to max_length, padding to the longest text of the batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mltrainer.runtime import IMAGE_SUFFIXES, walk


def image_files(paths: list[Path]) -> list[Path]:
    """Files as given; folders expanded to the image files under them, sorted, links to
    folders followed as training follows them (`walk`: a linked folder's images were left out
    without a word, Path.rglob does not follow links)."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(path / rel / name for rel, _, names in walk(path)
                              for name in names if Path(name).suffix.lower() in IMAGE_SUFFIXES))
        else:
            out.append(path)
    return out


# PIL modes of integer images wider than 8 bits (a 16-bit grey PNG opens as I;16 or I)
WIDE_INTEGER_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def open_image(path: str | Path, mode: str) -> Any:
    """The image at `path` converted to `mode` (L or RGB), as training and deployment read it.
    PIL's convert clips wider integers at 255, so a 16-bit photo came out white: they are
    scaled to 8 bits first (value / 257, rounded: 65535 -> 255), as image tools reduce depth.
    A 32-bit float image (mode F) is read as values in [0, 1], torchvision's convention for
    float images (x 255, rounded; convert made [0, 1] black): `FLOAT_RANGE`, which plan
    checks every image against (`image_range_problem`)."""
    from PIL import Image

    with Image.open(path) as img:
        if img.mode == "F":  # 32-bit float: [0, 1] is black to white (plan refuses others)
            wide = np.asarray(img, dtype=np.float64)
            return Image.fromarray(np.clip(np.rint(wide * 255.0), 0, 255).astype(np.uint8),
                                   "L").convert(mode)
        if img.mode in WIDE_INTEGER_MODES:
            wide = np.asarray(img, dtype=np.float64)
            return Image.fromarray(np.clip(np.rint(wide / 257.0), 0, 255).astype(np.uint8),
                                   "L").convert(mode)
        return img.convert(mode)


FLOAT_RANGE = (0.0, 1.0)  # a float (mode F) image's black and white
WIDE_RANGE = (0, 65535)  # a wide integer image's (16 bits; a 32-bit mode I image beyond: refused)


def image_range_problem(img: Any) -> str | None:
    """Why a decoded image's values cannot be read as a picture by `open_image`, or None: a
    float image with values outside [0, 1] (or not finite), an integer image beyond 16 bits."""
    if img.mode != "F" and img.mode not in WIDE_INTEGER_MODES:
        return None
    values = np.asarray(img, dtype=np.float64)
    if values.size == 0:
        return None
    low, high = (FLOAT_RANGE if img.mode == "F" else WIDE_RANGE)
    if not np.isfinite(values).all():
        return f"a {img.mode}-mode image holding non-finite values"
    if values.min() < low or values.max() > high:
        kind = "32-bit float" if img.mode == "F" else "wide integer"
        return (f"a {kind} image (mode {img.mode}) with values {values.min():g} to "
                f"{values.max():g}, outside the {low:g} to {high:g} mlt reads as black to white")
    return None


def image_array(path: Path, pre: dict[str, Any]) -> np.ndarray:
    """(C, H, W) float32 in [0, 1], as the training pipeline made it before normalising."""
    from PIL import Image

    img = open_image(path, pre["mode"])
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
