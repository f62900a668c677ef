"""What the held-out sets of `bench/detectors.py` share (`heldout.py` .. `heldout8.py` and their
`heldoutN_factories.py`); not shipped.

Scenario side: the allowed secondaries of each finding (the same in every set since the
first), the raw-target fragment, building a set's scenarios with its name prefix, and the
`--check` entry point. Config fragments (`fac_in`, `clf_in`, `reg_in`, `mlp`, `train`, `NO_ES`,
...) live in `scenarios.py`, beside the tuning scenarios that use them first.

Factory side: unit names, a spec's input/output widths, weights scaled and hidden biases set
at init, label noise, and the paths and readers of files that installed packages ship
(scikit-image, scikit-learn and matplotlib data, Pillow images, image patches).

Moving code here changed no earlier set's cases, configs, data or initial weights (checked
before the commit that added this module: the scenario lists of every set on two seeds, a hash
of every data source of v2-v7 and of every factory model's initial weights, identical).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scenarios import Scenario, _Builder
from torch import nn

# -- scenario side -----------------------------------------------------------------------------

# what a reasonable detector may also say about a run labelled with each finding
NAN_OK = {"exploding_gradients", "loss_oscillation", "dead_relu"}
EXPLODE_OK = {"nan_loss", "loss_oscillation", "dead_relu", "convergence_stall", "underfitting"}
VANISH_OK = {"convergence_stall", "underfitting"}
DEAD_OK = {"convergence_stall", "underfitting"}
OSC_OK = {"exploding_gradients", "dead_relu", "convergence_stall", "underfitting"}
STALL_OK = {"underfitting"}
UNDER_OK = {"convergence_stall"}

RAW = {"data": {"standardize_target": False}}  # the loss on raw-unit targets


def build_set(prefix: str, groups: Iterable[Callable[[_Builder], None]],
              repeats: int) -> list[Scenario]:
    """Each group's scenarios, each `repeats` times over seeds seed + 100 k, named
    `<prefix>-<name>-s<seed>`."""
    b = _Builder(repeats)
    for group in groups:
        group(b)
    return [replace(s, name=f"{prefix}-{s.name}") for s in b.scenarios]


def check_main(script: str, build: Callable[[int], list[Scenario]], repeats: int) -> int | str:
    """`python bench/<script> --check [REGEX]`: train the set's configs without detectors
    (`detectors.check_labels`) over `repeats` seeds."""
    if sys.argv[1:2] != ["--check"]:
        return f"usage: python bench/{script} --check [REGEX]"
    from detectors import check_labels

    return check_labels(build(repeats), sys.argv[2] if sys.argv[2:] else "")


# -- factory side: models ----------------------------------------------------------------------


# unit name -> torch module class, for every factory that takes `act`
ACTS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
    "elu": nn.ELU, "softsign": nn.Softsign, "mish": nn.Mish, "hardtanh": nn.Hardtanh,
    "logsigmoid": nn.LogSigmoid, "prelu": nn.PReLU, "softplus": nn.Softplus, "celu": nn.CELU,
    "hardsigmoid": nn.Hardsigmoid, "leaky": nn.LeakyReLU, "hardswish": nn.Hardswish,
    "relu6": nn.ReLU6, "selu": nn.SELU,
}


def in_out(input_spec: dict[str, Any], output_spec: dict[str, Any]) -> tuple[int, int]:
    """The factory's input width and output width."""
    return int(input_spec["n_features"]), int(output_spec["n_outputs"])


def scale(model: nn.Module, init_gain: float | None, bias_init: float | None,
          conv: bool = False) -> nn.Module:
    """Every Linear (and Conv2d if `conv`) weight times `init_gain`; every such hidden bias (all
    but the last layer, the head) set to `bias_init`; None leaves either alone. Returns the
    model."""
    kinds = (nn.Linear, nn.Conv2d) if conv else (nn.Linear,)
    layers = [m for m in model.modules() if isinstance(m, kinds)]
    with torch.no_grad():
        for layer in layers:
            if init_gain is not None:
                layer.weight.mul_(init_gain)
        for layer in layers[:-1]:
            if bias_init is not None and layer.bias is not None:
                layer.bias.fill_(bias_init)
    return model


def hidden_bias(model: nn.Module, bias_init: float | None) -> nn.Module:
    """Every Linear/Conv2d bias but the last set to `bias_init` (None: left alone), counting
    only layers that have a bias. Returns the model."""
    if bias_init is not None:
        layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))
                  and m.bias is not None]
        with torch.no_grad():
            for m in layers[:-1]:
                m.bias.fill_(bias_init)
    return model


# -- factory side: data ------------------------------------------------------------------------


def flip(y: np.ndarray, share: float, classes: int, seed: int) -> np.ndarray:
    """A copy of `y` with a `share` of its labels redrawn uniformly over `classes`."""
    rng = np.random.default_rng(seed)
    chosen = rng.random(len(y)) < share
    y = y.copy()
    y[chosen] = rng.integers(0, classes, int(chosen.sum()))
    return y


def site(package: str) -> Path:
    """The folder of an installed package."""
    return Path(importlib.import_module(package).__file__).parent  # type: ignore[arg-type]


def skimage_file(name: str) -> Path:
    return site("skimage") / "data" / name


def sklearn_image(name: str) -> Path:
    return site("sklearn") / "datasets" / "images" / name


def mpl_data(name: str) -> Path:
    """A file under matplotlib's mpl-data folder."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / name


def mpl_sample(name: str) -> Path:
    """A file under matplotlib's sample_data folder."""
    return mpl_data("sample_data") / name


def image(path: Path, grey: bool = False, scale_by: float = 1.0) -> np.ndarray:
    """An image file as float32 (RGB or grey), resized by `scale_by` (bilinear)."""
    from PIL import Image

    img = Image.open(path).convert("L" if grey else "RGB")
    if scale_by != 1.0:
        img = img.resize((max(1, round(img.width * scale_by)),
                          max(1, round(img.height * scale_by))), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.float32)


def patches(images: list[np.ndarray], size: int, per_image: int,
            seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`per_image` random size x size patches (flattened, all channels) of each image; the
    class is the image's index."""
    rng = np.random.default_rng(seed)
    X, y = [], []
    for label, img in enumerate(images):
        for _ in range(per_image):
            r = rng.integers(0, img.shape[0] - size)
            c = rng.integers(0, img.shape[1] - size)
            X.append(img[r:r + size, c:c + size].ravel())
            y.append(label)
    return np.stack(X).astype(np.float32), np.asarray(y, dtype=np.int64)
