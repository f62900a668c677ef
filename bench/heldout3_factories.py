"""Model factories and data sources of `bench/heldout3.py` (held-out v3; not shipped).

Written with heldout3.py, before any rule change of issue 11's third pass, and never used to
choose a rule or a threshold. Used through mlt.yaml's `python:heldout3_factories:<fn>` hooks
with `bench/` as the project root (see `bench_factories.py` for the calling convention).

Nothing here is used by the earlier sets (`scenarios.py`, `heldout.py`, `heldout2.py`): other
data (an 8-class and an imbalanced `make_classification`, two interleaved spirals, a 2-D
checkerboard, a 16-class grid of Gaussian clusters; regression on a generated housing-like
table with prices in units of 100 000, a sum of sines with 30 added, a skewed count-like
target, a multi-output-free product target in raw units) and other model families (a
LayerNorm MLP, a pre-norm residual MLP, a tiny Conv2d net over the features laid out as a
square image, a per-feature binned-embedding net, a GLU-gated MLP, a deep tanh stack with a
small init).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from heldout_common import ACTS, scale
from torch import nn

# -- models ------------------------------------------------------------------------------------


def ln_mlp(input_spec: dict[str, Any], output_spec: dict[str, Any], *,
           widths: list[int] | None = None, act: str = "relu", init_gain: float | None = None,
           bias_init: float | None = None) -> nn.Module:
    """Linear -> activation -> LayerNorm per width, then a Linear head (the norm after the
    activation, so a bias shift can still silence a ReLU)."""
    layers: list[nn.Module] = []
    n_in = input_spec["n_features"]
    for width in widths or [128, 128]:
        layers += [nn.Linear(n_in, width), ACTS[act](), nn.LayerNorm(width)]
        n_in = width
    model = nn.Sequential(*layers, nn.Linear(n_in, output_spec["n_outputs"]))
    scale(model, init_gain, bias_init, conv=True)
    return model


class _PreNormBlock(nn.Module):
    def __init__(self, width: int, act: str) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, 2 * width)
        self.act = ACTS[act]()
        self.fc2 = nn.Linear(2 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(self.act(self.fc1(self.norm(x))))


class PreNormResNet(nn.Module):
    """An input projection, `blocks` pre-LayerNorm residual blocks (width -> 2 width ->
    width), a final LayerNorm and a Linear head."""

    def __init__(self, n_in: int, n_out: int, width: int, blocks: int, act: str) -> None:
        super().__init__()
        self.inp = nn.Linear(n_in, width)
        self.blocks = nn.Sequential(*[_PreNormBlock(width, act) for _ in range(blocks)])
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.blocks(self.inp(x))))


def prenorm_resnet(input_spec: dict[str, Any], output_spec: dict[str, Any], *, width: int = 64,
                   blocks: int = 3, act: str = "gelu",
                   init_gain: float | None = None) -> nn.Module:
    model = PreNormResNet(input_spec["n_features"], output_spec["n_outputs"], width, blocks, act)
    scale(model, init_gain, None, conv=True)
    return model


class GridCNN(nn.Module):
    """The features zero-padded to a square and read as a 1-channel image: two 3x3 Conv2d
    layers (padding 1), a global average pool and a Linear head."""

    def __init__(self, n_in: int, n_out: int, channels: int, act: str) -> None:
        super().__init__()
        self.side = max(2, math.ceil(math.sqrt(n_in)))
        self.n_in = n_in
        self.conv = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1), ACTS[act](),
            nn.Conv2d(channels, 2 * channels, 3, padding=1), ACTS[act]())
        self.head = nn.Linear(2 * channels * self.side * self.side, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = self.side * self.side - self.n_in
        grid = nn.functional.pad(x, (0, pad)).view(-1, 1, self.side, self.side)
        return self.head(self.conv(grid).flatten(1))


def grid_cnn(input_spec: dict[str, Any], output_spec: dict[str, Any], *, channels: int = 8,
             act: str = "relu", init_gain: float | None = None,
             bias_init: float | None = None) -> nn.Module:
    model = GridCNN(input_spec["n_features"], output_spec["n_outputs"], channels, act)
    scale(model, init_gain, bias_init, conv=True)
    return model


class BinnedEmbedding(nn.Module):
    """Each (standardised) feature cut into `bins` buckets at fixed edges on [-3, 3], each
    bucket an `dim`-vector of its feature's own nn.Embedding; the vectors concatenated and fed
    to a ReLU MLP (one hidden layer of `hidden`)."""

    def __init__(self, n_in: int, n_out: int, bins: int, dim: int, hidden: int) -> None:
        super().__init__()
        self.register_buffer("edges", torch.linspace(-3.0, 3.0, bins - 1))
        self.bins = bins
        self.embed = nn.Embedding(n_in * bins, dim)
        self.register_buffer("offsets", torch.arange(n_in) * bins)
        self.mlp = nn.Sequential(nn.Linear(n_in * dim, hidden), nn.ReLU(),
                                 nn.Linear(hidden, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idx = torch.bucketize(x.contiguous(), self.edges) + self.offsets
        return self.mlp(self.embed(idx).flatten(1))


def binned_embedding(input_spec: dict[str, Any], output_spec: dict[str, Any], *,
                     bins: int = 16, dim: int = 8, hidden: int = 64) -> nn.Module:
    return BinnedEmbedding(input_spec["n_features"], output_spec["n_outputs"], bins, dim, hidden)


def glu_mlp(input_spec: dict[str, Any], output_spec: dict[str, Any], *,
            widths: list[int] | None = None, init_gain: float | None = None) -> nn.Module:
    """Per width: Linear to 2 x width, then a GLU (half the units gate the other half)."""
    layers: list[nn.Module] = []
    n_in = input_spec["n_features"]
    for width in widths or [64, 64]:
        layers += [nn.Linear(n_in, 2 * width), nn.GLU(dim=-1)]
        n_in = width
    model = nn.Sequential(*layers, nn.Linear(n_in, output_spec["n_outputs"]))
    scale(model, init_gain, None, conv=True)
    return model


def tanh_stack(input_spec: dict[str, Any], output_spec: dict[str, Any], *, depth: int = 4,
               width: int = 64, init_gain: float | None = None) -> nn.Module:
    """`depth` tanh layers of `width` (default init, each weight times `init_gain` if given:
    below 1 the backward signal shrinks geometrically with depth)."""
    layers: list[nn.Module] = []
    n_in = input_spec["n_features"]
    for _ in range(depth):
        layers += [nn.Linear(n_in, width), nn.Tanh()]
        n_in = width
    model = nn.Sequential(*layers, nn.Linear(n_in, output_spec["n_outputs"]))
    scale(model, init_gain, None, conv=True)
    return model


# -- data --------------------------------------------------------------------------------------


def manyclass() -> tuple[np.ndarray, np.ndarray]:
    """make_classification: 1200 rows, 20 features (12 informative), 8 classes."""
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=1200, n_features=20, n_informative=12,
                               n_redundant=4, n_classes=8, n_clusters_per_class=1,
                               class_sep=1.5, random_state=31)
    return X.astype(np.float32), y.astype(np.int64)


def imbalanced() -> tuple[np.ndarray, np.ndarray]:
    """make_classification: 1000 rows, 12 features, two classes at 85/15, 3 % labels flipped."""
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=1000, n_features=12, n_informative=6, n_redundant=2,
                               weights=[0.85, 0.15], flip_y=0.03, class_sep=1.0,
                               random_state=32)
    return X.astype(np.float32), y.astype(np.int64)


def imbalanced_noisy() -> tuple[np.ndarray, np.ndarray]:
    """The imbalanced table with 20 % of the labels replaced by a random class."""
    X, y = imbalanced()
    rng = np.random.default_rng(33)
    flip = rng.random(len(y)) < 0.2
    y = y.copy()
    y[flip] = rng.integers(0, 2, int(flip.sum()))
    return X, y


def spirals() -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spirals (900 points, 2 features, 1.5 turns each, noise 0.3)."""
    rng = np.random.default_rng(34)
    n = 450
    t = np.sqrt(rng.random(2 * n)) * 3 * np.pi
    sign = np.repeat([1.0, -1.0], n)
    X = np.stack([sign * t * np.cos(t), sign * t * np.sin(t)], axis=1)
    X += rng.normal(0.0, 0.3, X.shape)
    y = np.repeat([0, 1], n)
    return X.astype(np.float32), y.astype(np.int64)


def checker() -> tuple[np.ndarray, np.ndarray]:
    """1000 uniform points on [0, 3)^2, labelled by a 3x3 checkerboard (2 classes)."""
    rng = np.random.default_rng(35)
    X = rng.random((1000, 2)) * 3.0
    y = (np.floor(X[:, 0]) + np.floor(X[:, 1])) % 2
    return X.astype(np.float32), y.astype(np.int64)


def grid16() -> tuple[np.ndarray, np.ndarray]:
    """16 Gaussian clusters on a 4x4 grid in the first two of 6 features (4 pure-noise
    features), one class per cluster: 1280 rows."""
    rng = np.random.default_rng(36)
    centers = np.array([(i, j) for i in range(4) for j in range(4)], dtype=float) * 2.0
    y = np.repeat(np.arange(16), 80)
    X = np.concatenate([centers[y] + rng.normal(0, 0.45, (len(y), 2)),
                        rng.normal(0, 1.0, (len(y), 4))], axis=1)
    return X.astype(np.float32), y.astype(np.int64)


def grid16_noisy() -> tuple[np.ndarray, np.ndarray]:
    """grid16 with 30 % of the labels replaced by a random class."""
    X, y = grid16()
    rng = np.random.default_rng(37)
    flip = rng.random(len(y)) < 0.3
    y = y.copy()
    y[flip] = rng.integers(0, 16, int(flip.sum()))
    return X, y


def housing() -> tuple[np.ndarray, np.ndarray]:
    """A housing-like table (1000 rows, 8 features: income, age, rooms, bedrooms, population,
    occupancy, latitude, longitude); the target a price in units of 100 000 (mean ~2, skewed,
    capped at 5), like the California housing target. Raw units."""
    rng = np.random.default_rng(38)
    n = 1000
    income = rng.lognormal(1.2, 0.45, n)
    age = rng.integers(1, 52, n).astype(float)
    rooms = rng.normal(5.4, 1.2, n).clip(2, 10)
    bedrooms = rooms * rng.normal(0.2, 0.03, n).clip(0.1, 0.4)
    population = rng.lognormal(7.0, 0.7, n)
    occupancy = rng.lognormal(1.0, 0.25, n)
    lat = rng.uniform(32.5, 42.0, n)
    lon = -124.0 + (42.0 - lat) * 0.8 + rng.normal(0, 0.8, n)
    coast = np.exp(-np.abs(lon + 122.0 - (42.0 - lat) * 0.6) / 1.5)
    price = (0.45 * income + 0.9 * coast + 0.006 * age - 0.12 * occupancy
             + 0.05 * (rooms - 5.4) + rng.normal(0, 0.35, n))
    price = np.clip(price, 0.15, 5.0)
    X = np.stack([income, age, rooms, bedrooms, population, occupancy, lat, lon], axis=1)
    return X.astype(np.float32), price.astype(np.float32)


def housing_noisy() -> tuple[np.ndarray, np.ndarray]:
    """The housing table with noise of sd 0.8 added to the price (partly unpredictable)."""
    X, y = housing()
    rng = np.random.default_rng(39)
    return X, (y + rng.normal(0, 0.8, len(y))).astype(np.float32)


def sines() -> tuple[np.ndarray, np.ndarray]:
    """900 rows, 6 uniform features on [-3, 3]: y = 30 + 3 sin(x0) + 2 cos(1.5 x1) + x2 x3
    + noise 0.3 (raw units, an offset of 30 over a spread of ~4)."""
    rng = np.random.default_rng(40)
    X = rng.uniform(-3.0, 3.0, (900, 6))
    y = (30.0 + 3.0 * np.sin(X[:, 0]) + 2.0 * np.cos(1.5 * X[:, 1]) + X[:, 2] * X[:, 3]
         + rng.normal(0, 0.3, 900))
    return X.astype(np.float32), y.astype(np.float32)


def counts() -> tuple[np.ndarray, np.ndarray]:
    """A skewed count-like target: 1000 rows, 8 Gaussian features, y = exp(0.4 X w + 1.5)
    with Poisson-like noise (mean ~6, long right tail). Raw units."""
    rng = np.random.default_rng(41)
    X = rng.normal(0, 1, (1000, 8))
    w = np.array([1.0, -0.8, 0.6, 0.5, 0.0, 0.0, 0.3, -0.3])
    mean = np.exp(0.4 * X @ w + 1.5)
    y = mean + rng.normal(0, 1, 1000) * np.sqrt(mean)
    return X.astype(np.float32), y.astype(np.float32)


def product() -> tuple[np.ndarray, np.ndarray]:
    """y = 10 x0 x1 - 5 x2^2 + 4 x3 + noise 0.5 on 5 uniform features in [0, 2] (one unused):
    raw units, mean ~-1, spread ~8."""
    rng = np.random.default_rng(42)
    X = rng.uniform(0.0, 2.0, (900, 5))
    y = 10 * X[:, 0] * X[:, 1] - 5 * X[:, 2] ** 2 + 4 * X[:, 3] + rng.normal(0, 0.5, 900)
    return X.astype(np.float32), y.astype(np.float32)
