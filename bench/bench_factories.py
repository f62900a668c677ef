"""Model factories and data sources for `bench/detectors.py` (fault injection; not shipped).

Used through mlt.yaml's `python:<module>:<function>` hooks, with `bench/` as the project root:

    model:  {kind: "python:bench_factories:sigmoid_stack", params: {depth: 8, width: 32}}
    data:   {source: "python:bench_factories:digits_small"}

Models are called as `fn(input_spec, output_spec, **params)` (see `mltrainer.models`); data
functions take no arguments and return `(X, y)`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

# -- models ------------------------------------------------------------------------------------


class Stack(nn.Module):
    """A plain MLP: Linear -> activation per hidden width, then a Linear head."""

    def __init__(self, n_in: int, n_out: int, widths: list[int], activation: type[nn.Module]
                 ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for width in widths:
            layers += [nn.Linear(n_in, width), activation()]
            n_in = width
        self.net = nn.Sequential(*layers, nn.Linear(n_in, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def hidden_linears(self) -> list[nn.Linear]:
        linears = [m for m in self.net if isinstance(m, nn.Linear)]
        return linears[:-1]


def sigmoid_stack(input_spec: dict[str, Any], output_spec: dict[str, Any], *, depth: int = 8,
                  width: int = 32, init_std: float | None = None) -> nn.Module:
    """`depth` sigmoid layers of `width` units: each layer scales the backward signal by at most
    0.25 x |W|, so the first layer's gradient vanishes. `init_std` (optional) draws every
    weight from N(0, init_std) instead of PyTorch's default."""
    model = Stack(input_spec["n_features"], output_spec["n_outputs"], [width] * depth,
                  nn.Sigmoid)
    if init_std is not None:
        for lin in [m for m in model.net if isinstance(m, nn.Linear)]:
            nn.init.normal_(lin.weight, 0.0, init_std)
            nn.init.zeros_(lin.bias)
    return model


def relu_mlp(input_spec: dict[str, Any], output_spec: dict[str, Any], *,
             hidden: list[int] | None = None, bias_init: float | None = None,
             init_gain: float | None = None) -> nn.Module:
    """A ReLU MLP with a configurable (bad) initialisation: `bias_init` sets every hidden bias
    to a constant (very negative: units that never fire, i.e. dead ReLUs from the start);
    `init_gain` multiplies every weight after PyTorch's default init (large: activations and
    gradients that grow layer by layer)."""
    model = Stack(input_spec["n_features"], output_spec["n_outputs"], list(hidden or [128, 64]),
                  nn.ReLU)
    with torch.no_grad():
        for lin in model.hidden_linears():
            if bias_init is not None:
                lin.bias.fill_(bias_init)
        if init_gain is not None:
            for lin in [m for m in model.net if isinstance(m, nn.Linear)]:
                lin.weight.mul_(init_gain)
    return model


class Bottleneck(nn.Module):
    """Under capacity: the input squeezed through `width` units of a saturating tanh whose
    pre-activation is scaled by `scale` (tiny: the code the head sees carries almost nothing)."""

    def __init__(self, n_in: int, n_out: int, width: int, scale: float) -> None:
        super().__init__()
        self.encode = nn.Linear(n_in, width)
        self.head = nn.Linear(width, n_out)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.scale * self.encode(x)))


def bottleneck(input_spec: dict[str, Any], output_spec: dict[str, Any], *, width: int = 1,
               scale: float = 1.0) -> nn.Module:
    return Bottleneck(input_spec["n_features"], output_spec["n_outputs"], width, scale)


# -- data --------------------------------------------------------------------------------------


def _slice(name: str, rows: int, label_noise: float = 0.0, noise_features: int = 0,
           seed: int = 0, image: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The first `rows` rows of a shuffled sklearn data set (a fixed shuffle), with
    `label_noise` of the labels replaced by a random class and `noise_features` columns of
    pure noise appended; `image` returns digits as (N, 8, 8) images (for the cnn)."""
    from sklearn import datasets

    X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(y))[:rows]
    X, y = X[order].astype(np.float32), y[order].astype(np.int64)
    if label_noise > 0:
        rng = np.random.default_rng(seed + 1)
        flip = rng.random(len(y)) < label_noise
        y = y.copy()
        y[flip] = rng.integers(0, int(y.max()) + 1, int(flip.sum()))
    if noise_features:
        rng = np.random.default_rng(seed + 2)
        noise = rng.standard_normal((len(y), noise_features)).astype(np.float32)
        X = np.concatenate([X, noise], axis=1)
    if image:
        X = X.reshape(len(X), 8, 8)
    return X, y


# Small slices with noisy labels: trained with `split: {val: 0.4, test: 0.1}`, half of the rows
# are left to train on (a tiny training set); a wide unregularised model memorises their wrong
# labels after a few epochs, and val loss and accuracy get worse from there.


def digits_small_noisy() -> tuple[np.ndarray, np.ndarray]:
    """300 digits (150 to train on), 30% of the labels replaced by a random class."""
    return _slice("digits", 300, label_noise=0.3)


def digits_small_noisy_images() -> tuple[np.ndarray, np.ndarray]:
    """The same rows as (N, 8, 8) images, for the cnn."""
    return _slice("digits", 300, label_noise=0.3, image=True)


def breast_cancer_small_noisy() -> tuple[np.ndarray, np.ndarray]:
    """200 rows (100 to train on), 20% of the labels replaced by a random class."""
    return _slice("breast_cancer", 200, label_noise=0.2)


def wine_noisy() -> tuple[np.ndarray, np.ndarray]:
    """All 178 rows (89 to train on), 30% of the labels replaced by a random class."""
    return _slice("wine", 178, label_noise=0.3)


def friedman2() -> tuple[np.ndarray, np.ndarray]:
    """Friedman #2 regression in raw units (600 rows, 4 features, y mean ~400, spread ~350)."""
    from sklearn.datasets import make_friedman2

    X, y = make_friedman2(n_samples=600, noise=20.0, random_state=1)
    return X.astype(np.float32), y.astype(np.float32)


def friedman3() -> tuple[np.ndarray, np.ndarray]:
    """Friedman #3 regression in small raw units (600 rows, 4 features, y ~1.3 +- 0.3)."""
    from sklearn.datasets import make_friedman3

    X, y = make_friedman3(n_samples=600, noise=0.05, random_state=2)
    return X.astype(np.float32), y.astype(np.float32)


def friedman3_offset() -> tuple[np.ndarray, np.ndarray]:
    """Friedman #3 with 5 added to the target (y ~6.3 +- 0.27): an offset 20x the spread, where
    an untrained model's loss is ~500x the trivial baseline's (tuning set, issue 11's second
    pass). (With 50 added, no lr learns both the mean and the spread in 60 epochs of adamw: an
    lr that reaches the mean, 0.01, moves the output by about the spread every step.)"""
    X, y = friedman3()
    return X, (y + 5.0).astype(np.float32)


# -- held-out families (bench/heldout.py only; never used to tune a threshold) -----------------


class ResidualMLP(nn.Module):
    """A stem Linear, `blocks` pre-norm residual blocks (LayerNorm -> Linear -> act -> Linear,
    added to the input), a LayerNorm and a Linear head: the shape of a modern tabular MLP."""

    def __init__(self, n_in: int, n_out: int, width: int, blocks: int, act: str) -> None:
        super().__init__()
        acts = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU}
        self.stem = nn.Linear(n_in, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(width), nn.Linear(width, 2 * width), acts[act](),
                          nn.Linear(2 * width, width)) for _ in range(blocks))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        for block in self.blocks:
            h = h + block(h)
        return self.head(self.norm(h))


def residual_mlp(input_spec: dict[str, Any], output_spec: dict[str, Any], *, width: int = 64,
                 blocks: int = 2, act: str = "gelu", init_gain: float | None = None
                 ) -> nn.Module:
    """A residual MLP; `init_gain` multiplies every Linear weight after the default init."""
    model = ResidualMLP(input_spec["n_features"], output_spec["n_outputs"], width, blocks, act)
    if init_gain is not None:
        with torch.no_grad():
            for lin in [m for m in model.modules() if isinstance(m, nn.Linear)]:
                lin.weight.mul_(init_gain)
    return model


class Conv1dNet(nn.Module):
    """Features read as a 1-D sequence: Conv1d -> ReLU per channel count, global average pool,
    a Linear head. `bias_init` sets every conv bias (very negative: dead from the start)."""

    def __init__(self, n_in: int, n_out: int, channels: list[int], kernel: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 1
        for c in channels:
            layers += [nn.Conv1d(c_in, c, kernel, padding=kernel // 2), nn.ReLU()]
            c_in = c
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x.unsqueeze(1))
        return self.head(h.mean(dim=2))


def conv1d_net(input_spec: dict[str, Any], output_spec: dict[str, Any], *,
               channels: list[int] | None = None, kernel: int = 3,
               bias_init: float | None = None) -> nn.Module:
    model = Conv1dNet(input_spec["n_features"], output_spec["n_outputs"],
                      list(channels or [16, 32]), kernel)
    if bias_init is not None:
        with torch.no_grad():
            for conv in [m for m in model.modules() if isinstance(m, nn.Conv1d)]:
                conv.bias.fill_(bias_init)
    return model


def deep_tanh(input_spec: dict[str, Any], output_spec: dict[str, Any], *, depth: int = 8,
              width: int = 32, init_std: float = 0.05) -> nn.Module:
    """`depth` tanh layers with weights drawn from N(0, init_std) (far below Xavier's
    1/sqrt(width)): each layer shrinks the backward signal, the first layers get almost none."""
    model = Stack(input_spec["n_features"], output_spec["n_outputs"], [width] * depth, nn.Tanh)
    with torch.no_grad():
        for lin in [m for m in model.net if isinstance(m, nn.Linear)]:
            nn.init.normal_(lin.weight, 0.0, init_std)
            nn.init.zeros_(lin.bias)
    return model


def moons() -> tuple[np.ndarray, np.ndarray]:
    """600 two-moons points with noise 0.25 (2 features, 2 classes)."""
    from sklearn.datasets import make_moons

    X, y = make_moons(n_samples=600, noise=0.25, random_state=0)
    return X.astype(np.float32), y.astype(np.int64)


def clf4() -> tuple[np.ndarray, np.ndarray]:
    """800 rows, 20 features (8 informative), 4 classes."""
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=800, n_features=20, n_informative=8, n_redundant=4,
                               n_classes=4, class_sep=1.5, random_state=0)
    return X.astype(np.float32), y.astype(np.int64)


def friedman1() -> tuple[np.ndarray, np.ndarray]:
    """Friedman #1 regression in raw units (800 rows, 10 features, y roughly 0-30, mean ~14)."""
    from sklearn.datasets import make_friedman1

    X, y = make_friedman1(n_samples=800, n_features=10, noise=1.0, random_state=0)
    return X.astype(np.float32), y.astype(np.float32)


def regression_raw() -> tuple[np.ndarray, np.ndarray]:
    """A linear-plus-noise regression in raw units: 600 rows, 12 features (8 informative),
    targets with mean ~50 and a spread of ~100."""
    from sklearn.datasets import make_regression

    X, y = make_regression(n_samples=600, n_features=12, n_informative=8, noise=15.0,
                           bias=50.0, random_state=0)
    return X.astype(np.float32), y.astype(np.float32)

