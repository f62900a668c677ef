"""`imagefolder:<dir>`: one sub-folder per class, image files inside (torchvision's
ImageFolder layout). Files are listed, hashed (cached manifest) and fully decoded once per
file version to catch unreadable or truncated images at `mlt plan`; training reads them lazily.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrainer.data._manifest import Manifest, list_files
from mltrainer.data._sources import DataSource, register_source, resolve_path
from mltrainer.errors import DataError
from mltrainer.runtime import IMAGE_SUFFIXES, walk

if TYPE_CHECKING:
    from mltrainer.config import MltConfig


class ImageFiles:
    """`files[i]` → (absolute path, class index)."""

    def __init__(self, folder: Path, rel: list[str], labels: list[int]) -> None:
        self.folder = str(folder)
        self.rel = rel
        self.labels = labels

    def __len__(self) -> int:
        return len(self.rel)

    def __getitem__(self, i: int) -> tuple[str, int]:
        return f"{self.folder}/{self.rel[i]}", self.labels[i]


@register_source
class ImageFolderSource(DataSource):
    name = "imagefolder"

    @classmethod
    def handles(cls, source: str) -> bool:
        return source.startswith("imagefolder:")

    def folder(self, cfg: MltConfig, root: Path) -> Path:
        rel = cfg.data.source.split(":", 1)[1]
        path = resolve_path(rel, root)
        if not path.is_dir():
            raise DataError(f"data.source {cfg.data.source!r}: no such folder ({path})",
                            hint="point imagefolder: at a folder with one sub-folder per class")
        return path

    def classes(self, cfg: MltConfig, folder: Path) -> tuple[list[str], list[str]]:
        classes = sorted(d.name for d in folder.iterdir()
                         if d.is_dir() and not d.name.startswith("."))
        if len(classes) < 2:
            raise DataError(f"{cfg.data.source}: {len(classes)} class folder(s) in {folder}; "
                            "a classifier needs at least 2",
                            hint="put each class's images in its own sub-folder")
        files = list_files(folder, IMAGE_SUFFIXES)
        by_class = {c: 0 for c in classes}
        for rel in files:
            top = rel.split("/", 1)[0]
            if top in by_class and "/" in rel:
                by_class[top] += 1
        empty = [c for c, n in by_class.items() if n == 0]
        real = {}  # two class folders that are one real folder (a link): the walk reads it once
        for c in classes:
            same = real.setdefault(os.path.realpath(folder / c), c)
            if same != c:
                raise DataError(
                    f"{cfg.data.source}: class folders {same!r} and {c!r} are the same folder "
                    f"({os.path.realpath(folder / c)}): its images cannot be in two classes",
                    hint="remove the link, or give each class its own folder of images")
        if empty:
            raise DataError(
                f"{cfg.data.source}: class folder {str(folder / empty[0])!r} has no images "
                f"({', '.join(s.lstrip('.') for s in IMAGE_SUFFIXES)})",
                hint="add images to it or remove the folder")
        return classes, [f for f in files if "/" in f and f.split("/", 1)[0] in by_class]

    def fingerprint(self, cfg: MltConfig, root: Path) -> str:
        folder = self.folder(cfg, root)
        _, files = self.classes(cfg, folder)
        manifest = Manifest(root, folder)
        manifest.refresh(files)
        manifest.save()
        return manifest.digest()

    def load(self, cfg: MltConfig, root: Path) -> Any:
        import numpy as np

        from mltrainer.data._items import ItemData

        if cfg.task != "classification":
            raise DataError(f"{cfg.data.source}: an image folder's labels are classes",
                            hint="set task: classification")
        folder = self.folder(cfg, root)
        classes, files = self.classes(cfg, folder)
        manifest = Manifest(root, folder)
        entries = manifest.refresh(files)
        with manifest.progress_kept():  # a bad file or a Ctrl-C keeps the checks finished
            for rel in files:
                if "image" not in entries[rel]:
                    manifest.note(rel, image=_check_image(folder / rel, cfg.data.source))
        manifest.save()
        index = {c: i for i, c in enumerate(classes)}
        labels = [index[f.split("/", 1)[0]] for f in files]
        digests = np.stack([np.frombuffer(bytes.fromhex(entries[f]["sha256"]), np.uint8)
                            for f in files])
        sizes = {tuple(entries[f]["image"][:2]) for f in files}
        _check_crop_fits(cfg, folder, files, entries)
        return ItemData(
            dataset=ImageFiles(folder, files, labels),
            labels=np.asarray(labels, dtype=np.int64), class_labels=classes, digests=digests,
            data_hash=manifest.digest(), modality="image",
            describe=lambda i: str(folder / files[i]),
            extra={"files": len(files), "skipped_files": skipped_files(folder, files),
                   "image_sizes": sorted(list(s) for s in sizes)[:5],
                   "manifest": str(manifest.path.relative_to(root))
                   if manifest.path.is_relative_to(root) else str(manifest.path)},
        )


SHOWN = 5  # skipped files named in the record (the rest are counted)


def skipped_files(folder: Path, used: list[str]) -> dict[str, Any]:
    """What the folder holds that training does not read, by reason, so nothing is left out
    silently: hidden files and folders (`.DS_Store`, `.git`), files without an image suffix
    (`notes.txt`, `Thumbs.db`, a `.gif` or `.heic` picture), and files outside a class
    folder (a README at the top). `{"count", "by_reason": {reason: n}, "examples": [...]}`."""
    taken = set(used)
    by_reason: dict[str, int] = {}
    examples: list[str] = []
    for rel_dir, _, filenames in walk(folder):
        hidden_dir = any(part.startswith(".") for part in rel_dir.parts)
        for name in filenames:
            rel = (rel_dir / name).as_posix()
            if rel in taken:
                continue
            reason = ("hidden" if hidden_dir or name.startswith(".") else
                      "not an image" if not name.lower().endswith(IMAGE_SUFFIXES) else
                      "outside a class folder")
            by_reason[reason] = by_reason.get(reason, 0) + 1
            if len(examples) < SHOWN:
                examples.append(rel)
    return {"count": sum(by_reason.values()), "by_reason": by_reason, "examples": examples}


def _check_crop_fits(cfg: MltConfig, folder: Path, files: list[str],
                     entries: dict[str, dict[str, Any]]) -> None:
    """Without a resize, `data.transforms.crop` must fit the smallest image (from the checks'
    recorded sizes): a larger one pads that image with zeros at evaluation and fails the random
    crop of training on it, which read as a bad file."""
    crop = cfg.data.transforms.crop
    if crop is None or cfg.data.transforms.size is not None:
        return
    small = min(files, key=lambda f: min(entries[f]["image"][:2]))
    w, h = entries[small]["image"][:2]
    if min(w, h) < crop:
        raise DataError(f"{cfg.data.source}: data.transforms.crop {crop} is larger than "
                        f"{folder / small} ({w}x{h} pixels, the smallest image)",
                        hint=f"set data.transforms.size: {crop} (resize the shorter side first) "
                             "or a crop that fits every image")


def _check_image(path: Path, where: str) -> list[Any]:
    """Decode the whole file once (a truncated JPEG fails only when its pixels are read)."""
    from PIL import Image

    from mltrainer.runtime.items import image_range_problem

    try:
        with Image.open(path) as img:
            img.load()
            problem = image_range_problem(img)
            found = [img.width, img.height, img.mode]
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise DataError(f"{where}: {path} is not a readable image ({type(exc).__name__}: "
                        f"{first})", hint="replace or delete the file, then re-run") from None
    if problem is not None:
        raise DataError(f"{where}: {path} is {problem}",
                        hint="save it as an 8- or 16-bit image, or scale a float image to "
                             "[0, 1], then re-run")
    return found
