"""The torch side of item data: preprocessing pipelines fitted on train, and the Dataset the
engine's DataLoader reads, which seeds each item's randomness from (epoch seed, index) so
augmentation is the same for any number of workers and after a resume.

Pipelines (one per modality) turn a raw item into model input and a list of inputs into a batch:

- `ImagePipeline`: torchvision transforms v2 — resize, centre crop (eval) or random crop and
  the other train-only augmentations, to float, normalise with mean/std given or measured on
  up to `STATS_ITEMS` train images.
- `TextPipeline`: the local tokenizer (`AutoTokenizer`, truncation to `model.max_length`),
  and `DataCollatorWithPadding` (each batch padded to its own longest text).
- `TensorPipeline`: the user's Dataset items as they are; the user's collate_fn if given.
"""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from mltrainer.config import MltConfig
from mltrainer.errors import ConfigError, DataError

STATS_ITEMS = 2000  # train images read to measure mean/std (spread evenly over the split)
ITEM_ERROR = "mlt-item-error"  # marks an item's one-line error inside a worker's traceback


class Pipeline:
    modality = "tensor"
    input_shape: tuple[int, ...] | None = None
    # `collate(a + b)` is `collate(a)` and `collate(b)` concatenated along the batch dimension,
    # bit for bit (items of one shape, stacked): evaluation may read a batch in parts, one per
    # loader worker (`engine.loading.forward_split`). Not for padding (text) or a user's collate.
    concatenates = False

    def load(self, raw: Any, train: bool) -> Any:
        return raw

    def collate(self, samples: list[tuple[Any, Any]]) -> tuple[Any, Any]:
        """(inputs, labels): labels as a numpy array, which a loader worker sends inline
        (every tensor it sends costs a shared-memory file and a socket handshake)."""
        return default_collate([x for x, _ in samples]), _labels(samples)

    def describe(self) -> dict[str, Any]:
        return {"modality": self.modality}


def _float32(x: Any) -> Any:
    if isinstance(x, torch.Tensor) and x.dtype != torch.float32 and (
            x.is_floating_point() or x.dtype == torch.uint8):
        return x.to(torch.float32)
    return x


def _labels(samples: list[tuple[Any, Any]]) -> np.ndarray:
    return np.asarray([y for _, y in samples])


class TensorPipeline(Pipeline):
    def __init__(self, collate_fn: Any, shape: tuple[int, ...] | None) -> None:
        self.collate_fn = collate_fn
        self.input_shape = shape

    def collate(self, samples: list[tuple[Any, Any]]) -> tuple[Any, Any]:
        """The user's collate_fn (or torch's), then the input as float32 when it is a tensor
        of another float dtype or uint8 (the item types `mlt plan` accepts): models are built
        in float32, and the exported graph takes "the Dataset's own items, as a float32
        batch", so a float64 or uint8 Dataset trains and predicts on the numbers it returns."""
        batch = (self.collate_fn or default_collate)(samples)
        if isinstance(batch, (tuple, list)) and len(batch) == 2:
            return _float32(batch[0]), batch[1]
        return batch

    def describe(self) -> dict[str, Any]:
        return {"modality": "tensor", "input_shape": list(self.input_shape or []),
                "collate_fn": getattr(self.collate_fn, "__name__", None)}


class ImagePipeline(Pipeline):
    modality = "image"
    concatenates = True  # default_collate stacks images of one shape (`input_shape`)

    def __init__(self, tcfg: Any, mean: list[float], std: list[float],
                 shape: tuple[int, int, int]) -> None:
        from mltrainer.models._vision import transforms_v2

        v2 = transforms_v2()
        self.cfg = tcfg
        self.mean, self.std = [float(m) for m in mean], [float(s) for s in std]
        self.input_shape = shape
        self.mode = "L" if tcfg.channels == 1 else "RGB"
        # Resize and crop act on the PIL image (torchvision calls PIL's own resize for PIL
        # input), so a deployment reproduces them exactly with PIL alone (preprocess.json).
        base: list[Any] = []
        if tcfg.size:
            base.append(v2.Resize(tcfg.size, interpolation=v2.InterpolationMode.BILINEAR))
        aug = tcfg.augment
        train = list(base)
        if tcfg.crop:
            train.append(v2.RandomCrop(tcfg.crop, padding=aug.crop_padding or None)
                         if aug.random_crop else v2.CenterCrop(tcfg.crop))
            base.append(v2.CenterCrop(tcfg.crop))
        if aug.hflip:
            train.append(v2.RandomHorizontalFlip(aug.hflip))
        if aug.rotation:
            train.append(v2.RandomRotation(aug.rotation))
        if aug.color_jitter:
            j = aug.color_jitter
            train.append(v2.ColorJitter(brightness=j, contrast=j,
                                        saturation=j if tcfg.channels == 3 else 0))
        to_float = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]
        norm = v2.Normalize(self.mean, self.std)
        self.unnormalised = v2.Compose([*base, *to_float])
        self.eval_tf = v2.Compose([*base, *to_float, norm])
        self.train_tf = v2.Compose([*train, *to_float, norm])

    def open(self, path: str) -> Any:
        from mltrainer.runtime.items import open_image

        return open_image(path, self.mode)

    def load(self, raw: Any, train: bool) -> torch.Tensor:
        return (self.train_tf if train else self.eval_tf)(self.open(raw))

    def load_twice(self, raw: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """(training input, evaluation input) of one item from one decode: what `load(raw,
        True)` and `load(raw, False)` return, bit for bit. The training transforms run first,
        with the item's seeded randomness as in `load`; the evaluation ones draw no random
        numbers, and no transform changes the decoded image (each returns a new one). What
        the training loader's workers return for the train-metrics subset in epoch 1
        (`engine.loading.LoaderBatches.evaluate_too`), so it is not decoded twice."""
        img = self.open(raw)
        return self.train_tf(img), self.eval_tf(img)

    def describe(self) -> dict[str, Any]:
        return {"modality": "image", "mode": self.mode, "resize": self.cfg.size,
                "resize_interpolation": "bilinear (PIL, shorter side)",
                "crop": self.cfg.crop, "mean": self.mean, "std": self.std,
                "input_shape": list(self.input_shape),
                "augment": self.cfg.augment.model_dump(mode="json"),
                "library": "torchvision.transforms.v2"}


class TextPipeline(Pipeline):
    modality = "text"

    def __init__(self, tokenizer: Any, folder: str, max_length: int) -> None:
        from transformers import DataCollatorWithPadding  # imported after _text_pipeline's shim

        self.tokenizer = tokenizer
        self.folder = folder
        self.max_length = max_length
        self.input_shape = None
        self.pad = DataCollatorWithPadding(tokenizer, return_tensors="pt")

    def load(self, raw: Any, train: bool) -> dict[str, list[int]]:
        enc = self.tokenizer(str(raw), truncation=True, max_length=self.max_length)
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    def collate(self, samples: list[tuple[Any, Any]]) -> tuple[Any, Any]:
        batch = self.pad([x for x, _ in samples])
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        return inputs, _labels(samples)

    def describe(self) -> dict[str, Any]:
        return {"modality": "text", "tokenizer": self.folder,
                "tokenizer_class": type(self.tokenizer).__name__,
                "max_length": self.max_length, "padding": "dynamic (longest in batch)",
                "vocab_size": len(self.tokenizer)}


class SeededItems(Dataset):
    """`dataset[(index, seed)]` → (input, label): the item, preprocessed, with python, numpy
    and torch (CPU) randomness seeded from `seed` for that item alone (see `seed_item`).
    In the training process (no loader workers) the RNG states are put back afterwards, once
    per batch (`__getitems__`, which the DataLoader calls), so loading never shifts training's
    own random numbers; a worker process has nothing else drawing from them."""

    def __init__(self, items: Any, pipeline: Pipeline, train: bool) -> None:
        self.items = items
        self.pipeline = pipeline
        self.train = train

    def __len__(self) -> int:
        return len(self.items.labels)

    def __getitem__(self, key: tuple[int, ...]) -> tuple[Any, ...]:
        with rng_states_kept():
            return self._load(key)

    def __getitems__(self, keys: list[tuple[int, ...]]) -> list[tuple[Any, ...]]:
        with rng_states_kept():  # saving numpy's state costs ~0.3 ms: once a batch, not an item
            return [self._load(key) for key in keys]

    def _load(self, key: tuple[int, ...]) -> tuple[Any, ...]:
        """(input, label). The training reader's keys may also ask for evaluation inputs
        (`engine.loading.LoaderBatches.evaluate_too`): (index, seed, True), a training item's
        from the same decode: (input, label, (index, eval input)); (index, 0, False), an item
        it does not train on (val's), its evaluation input alone, read as an evaluation
        reader reads it (seed 0, `load(raw, False)`): ((index, eval input),)."""
        index, seed = key[0], key[1]
        try:
            seed_item(seed)
            raw, label = self.items.dataset[index]
            if len(key) > 2 and key[2]:
                x, evaluated = self.pipeline.load_twice(raw)
                return x, label, (index, evaluated)
            if len(key) > 2:
                return ((index, self.pipeline.load(raw, False)),)
            return self.pipeline.load(raw, self.train), label
        except DataError as exc:
            raise RuntimeError(f"{ITEM_ERROR}[{exc.message}]") from None
        except Exception as exc:
            what = self.items.describe(index)
            first = (str(exc).strip().splitlines() or [""])[0]
            raise RuntimeError(f"{ITEM_ERROR}[{what}: cannot load it "
                               f"({type(exc).__name__}: {first})]") from None


def seed_item(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.default_generator.manual_seed(seed)


class rng_states_kept:
    """In the training process (no loader workers): python's, numpy's and torch's (CPU) RNG
    states as they were before, afterwards."""

    def __init__(self) -> None:
        self.state: tuple[Any, ...] | None = None

    def __enter__(self) -> None:
        from torch.utils.data import get_worker_info

        if get_worker_info() is None:
            self.state = (random.getstate(), np.random.get_state(), torch.get_rng_state())

    def __exit__(self, *exc: Any) -> None:
        if self.state is not None:
            random.setstate(self.state[0])
            np.random.set_state(self.state[1])
            torch.set_rng_state(self.state[2])


def item_seed(epoch_seed: int, index: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{epoch_seed}:{index}".encode()).digest()[:8],
                          "little") >> 1


def fit_pipeline(cfg: MltConfig, root: Path, items: Any, train_idx: np.ndarray) -> Pipeline:
    if items.modality == "image":
        return _fit_image(cfg, items, train_idx)
    if items.modality == "text":
        return _text_pipeline(cfg, root)
    if items.batch_shapes:  # the collate_fn's rows (padded, cropped), not the raw items
        return TensorPipeline(items.collate_fn, items.batch_shapes[0])
    with rng_states_kept():  # a Dataset drawing random numbers does not shift the caller's
        first = items.dataset[int(train_idx[0])][0] if len(train_idx) else None
    shape = tuple(int(d) for d in np.shape(first)) if first is not None else None
    return TensorPipeline(items.collate_fn, shape)


def _fit_image(cfg: MltConfig, items: Any, train_idx: np.ndarray) -> ImagePipeline:
    tcfg = cfg.data.transforms
    n_ch = tcfg.channels
    probe = ImagePipeline(tcfg, [0.0] * n_ch, [1.0] * n_ch, (n_ch, 1, 1))
    step = max(1, len(train_idx) // STATS_ITEMS)
    chosen = np.sort(train_idx)[::step][:STATS_ITEMS]
    total = torch.zeros(n_ch, dtype=torch.float64)
    sq = torch.zeros(n_ch, dtype=torch.float64)
    count = 0
    shapes = set()
    for i in chosen:
        path, _ = items.dataset[int(i)]
        img = probe.unnormalised(probe.open(path)).double()
        shapes.add(tuple(img.shape))
        total += img.sum(dim=(1, 2))
        sq += (img * img).sum(dim=(1, 2))
        count += img.shape[1] * img.shape[2]
    if len(shapes) > 1:
        raise DataError(
            f"{cfg.data.source}: the images have different sizes after preprocessing "
            f"({', '.join('x'.join(map(str, s[1:])) for s in sorted(shapes)[:3])}, ...)",
            hint="set data.transforms.size (and crop) in mlt.yaml so every image becomes "
                 "one size")
    (shape,) = shapes
    mean = (total / count).tolist()
    std = torch.sqrt(torch.clamp(sq / count - (total / count) ** 2, min=1e-12)).tolist()
    if tcfg.mean is not None or tcfg.std is not None:
        for name, given in (("mean", tcfg.mean), ("std", tcfg.std)):
            if given is not None and len(given) != n_ch:
                raise ConfigError(f"data.transforms.{name} has {len(given)} values but the "
                                  f"images have {n_ch} channels")
        mean = list(tcfg.mean) if tcfg.mean is not None else mean
        std = list(tcfg.std) if tcfg.std is not None else std
    return ImagePipeline(tcfg, mean, std, tuple(int(d) for d in shape))


def tokenizer_folder(cfg: MltConfig, root: Path) -> tuple[Path, str]:
    if cfg.model.tokenizer:
        rel, field = cfg.model.tokenizer, "model.tokenizer"
    elif cfg.model.kind.startswith("hf:"):
        rel, field = cfg.model.kind.split(":", 1)[1], "model.kind"
    else:
        raise ConfigError("text data needs a tokenizer: set model.tokenizer to a local "
                          "tokenizer folder", hint="or use model.kind: hf:<folder with one>")
    path = Path(rel).expanduser()
    return (path if path.is_absolute() else Path(root) / path), field


def _text_pipeline(cfg: MltConfig, root: Path) -> TextPipeline:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from mltrainer.models._vision import torchvision

    torchvision()  # transformers/datasets import it: make that import work
    import transformers

    transformers.logging.set_verbosity_error()
    folder, field = tokenizer_folder(cfg, root)
    try:
        if not folder.is_dir():
            raise OSError("no such folder")
        tok = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        raise ConfigError(
            f"{field}: {folder} is not a tokenizer folder ({type(exc).__name__}: {first})",
            hint="point it at a folder written by tokenizer.save_pretrained() (tokenizer.json "
                 "or vocab files, tokenizer_config.json)") from None
    if tok.pad_token is None:
        raise ConfigError(f"{field}: the tokenizer in {folder} has no padding token",
                          hint="set tokenizer.pad_token before save_pretrained()")
    # recorded as configured (relative to the project): the artifact must not depend on where
    # the project lives
    shown = folder.relative_to(root) if folder.is_relative_to(Path(root)) else folder
    return TextPipeline(tok, shown.as_posix(), cfg.model.max_length)
