"""Importing torchvision (and timm, which imports it) safely on a CPU-only torch.

PyPI's Linux torchvision wheels are built against CUDA torch: on a CPU torch their compiled
ops (`torchvision::nms`, ...) cannot load, and `import torchvision` then fails while it
registers fake kernels for `nms`/`qnms`. Classification models and transforms v2 need none of
those ops, so when they are missing the two schemas are defined first (no kernels: calling
`torchvision.ops.nms` still raises) and the import succeeds. With a matching torchvision
nothing is defined.
"""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def torchvision() -> Any:
    import torch

    try:
        import torchvision as tv

        return tv
    except RuntimeError as exc:
        if "torchvision::nms" not in str(exc):
            raise
    import sys

    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _KEEP.append(lib)
    import torchvision as tv

    return tv


_KEEP: list[Any] = []


def transforms_v2() -> Any:
    torchvision()
    from torchvision.transforms import v2

    return v2


def timm() -> Any:
    torchvision()
    import timm as timm_module

    return timm_module
