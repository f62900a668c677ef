"""Running a shipped model without torch: a runner per export format (`runners`) and the
fresh-process parity worker (`python -m mltrainer.runtime.worker REQUEST.json`).

Deliberately light: an ONNX check must run in a process that never imported torch, which is
what a deployment without torch looks like; `mlt predict` runs the ONNX model the same way.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

# The files an image folder holds: torchvision's ImageFolder's IMG_EXTENSIONS (a test keeps
# them equal). Here, in a module that imports nothing, for the data layer (which `mlt status`
# imports to fingerprint a folder: no numpy there) and for predict's runtime alike.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def walk(folder: Path) -> Iterator[tuple[Path, list[str], list[str]]]:
    """`os.walk(folder)` as torchvision's ImageFolder walks it: symbolic links to folders are
    followed (a class folder may be a link to where the images live), each real folder once,
    so a link back to a folder above ends nothing and lists nothing twice. Yields (the folder
    relative to `folder`, its sub-folders, its files), both sorted; a caller may prune the
    sub-folders in place. (Here, stdlib only: for the data layer and predict's runtime alike.)"""
    seen = {os.path.realpath(folder)}
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        kept = []
        for d in sorted(dirnames):
            real = os.path.realpath(os.path.join(dirpath, d))
            if real not in seen:
                seen.add(real)
                kept.append(d)
        dirnames[:] = kept
        yield Path(dirpath).relative_to(folder), dirnames, sorted(filenames)
