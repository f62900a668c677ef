"""Importing torchvision (and timm, which imports it) safely on a CPU-only torch.

PyPI's Linux torchvision wheels are built against CUDA torch: on a CPU torch their compiled
ops (`torchvision::nms`, ...) cannot load, and `import torchvision` then fails while it
registers fake kernels for `nms`/`qnms`. Classification models and transforms v2 need none of
those ops, so when they are missing the two schemas are defined first (no kernels: calling
`torchvision.ops.nms` still raises) and the import succeeds. With a matching torchvision
nothing is defined.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.abc
import importlib.util
import sys
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
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _KEEP.append(lib)
    import torchvision as tv

    return tv


_KEEP: list[Any] = []


class _Loaded(importlib.abc.Loader):
    """Hands the import system the module `torchvision()` already imported."""

    def __init__(self, module: Any) -> None:
        self.module = module

    def create_module(self, spec: Any) -> Any:
        return self.module

    def exec_module(self, module: Any) -> None:
        pass


class _ImportsTorchvisionSafely(importlib.abc.MetaPathFinder):
    """The first `import torchvision` anywhere (the user's Dataset module, a model factory,
    timm or transformers inside them) goes through `torchvision()`: with PyPI's CUDA-built
    wheel on a CPU torch, a project's own `from torchvision import datasets` failed with
    'operator torchvision::nms does not exist' unless mlt happened to import it first."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "torchvision":
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)
        try:
            module = torchvision()
        except ImportError:
            return None  # not installed: the other finders say so
        return importlib.util.spec_from_loader(name, _Loaded(module))


def import_torchvision_safely() -> None:
    """Before running a project's code: its first `import torchvision` imports it as
    `torchvision()` does. Costs nothing until then (a finder on `sys.meta_path`)."""
    if "torchvision" in sys.modules or any(
            isinstance(f, _ImportsTorchvisionSafely) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _ImportsTorchvisionSafely())


def transforms_v2() -> Any:
    torchvision()
    from torchvision.transforms import v2

    return v2


def timm() -> Any:
    torchvision()
    import timm as timm_module

    return timm_module
