"""Model factories and data sources of `bench/heldout5.py` (held-out v5; not shipped).

Written with heldout5.py, before any rule change of issue 11's fifth pass, and never used to
choose a rule or a threshold. Used through mlt.yaml's `python:heldout5_factories:<fn>` hooks
with `bench/` as the project root (see `bench_factories.py` for the calling convention).

Nothing here is used by the earlier sets (`scenarios.py`, `heldout.py` .. `heldout4.py`, all
tuning material now):

* data: real files that ship inside installed packages, read locally (no download), never
  generated: scikit-image's texture photographs (brick, grass, gravel) cut into patches, its
  LFW face/non-face subset, the horse silhouette sampled as points, pixel colours of three
  photographs (chelsea, coffee, astronaut); matplotlib's sample data: the Jacksboro fault
  elevation model and a topography/bathymetry grid (metres), an MRI slice's intensities, the
  monthly stock prices of `Stocks.csv`; scikit-learn's diabetes with its raw (unscaled)
  features and target; noisy-label copies of three of them for overfitting;
* model families: gated residual network blocks (GLU gate, LayerNorm), an RMSNorm + SiLU
  MLP, a weight-normalised MLP, a maxout net, a small conv net over the features laid out as
  a square image with GroupNorm, an EmbeddingBag over binned features, a wide-and-deep net,
  a factorisation machine beside an MLP; a deep saturating stack with LayerNorm-free
  hardtanh/logsigmoid units for vanishing gradients.
"""

from __future__ import annotations

import gzip
import math
from functools import cache
from typing import Any

import numpy as np
import torch
from heldout_common import ACTS, flip, in_out, mpl_sample, patches, scale, skimage_file
from torch import nn

# -- models ------------------------------------------------------------------------------------


class GatedResidual(nn.Module):
    """A gated residual network block (as in the Temporal Fusion Transformer): ELU dense, a
    dense into a GLU gate, added to the input, then LayerNorm."""

    def __init__(self, width: int, dropout: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, 2 * width)
        self.drop = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.drop(self.fc2(nn.functional.elu(self.fc1(x))))
        return self.norm(x + nn.functional.glu(h, dim=-1))


def grn_net(input_spec: dict[str, Any], output_spec: dict[str, Any], *, width: int = 64,
            blocks: int = 2, dropout: float = 0.0, init_gain: float | None = None,
            bias_init: float | None = None) -> nn.Module:
    n_in, n_out = in_out(input_spec, output_spec)
    model = nn.Sequential(nn.Linear(n_in, width),
                          *[GatedResidual(width, dropout) for _ in range(blocks)],
                          nn.Linear(width, n_out))
    return scale(model, init_gain, bias_init)


def rms_mlp(input_spec: dict[str, Any], output_spec: dict[str, Any], *, hidden: int = 128,
            depth: int = 3, init_gain: float | None = None,
            bias_init: float | None = None) -> nn.Module:
    """Linear -> RMSNorm -> SiLU, `depth` times, then a Linear head."""
    n_in, n_out = in_out(input_spec, output_spec)
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(n_in, hidden), nn.RMSNorm(hidden), nn.SiLU()]
        n_in = hidden
    return scale(nn.Sequential(*layers, nn.Linear(n_in, n_out)), init_gain, bias_init)


def wn_mlp(input_spec: dict[str, Any], output_spec: dict[str, Any], *, hidden: int = 128,
           depth: int = 2, act: str = "relu", bias_init: float | None = None) -> nn.Module:
    """A ReLU MLP whose Linear weights are weight-normalised (g * v / |v|)."""
    from torch.nn.utils.parametrizations import weight_norm

    n_in, n_out = in_out(input_spec, output_spec)
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(n_in, hidden), ACTS[act]()]
        n_in = hidden
    model = nn.Sequential(*layers, nn.Linear(n_in, n_out))
    scale(model, None, bias_init)
    for m in model:
        if isinstance(m, nn.Linear):
            weight_norm(m)
    return model


class Maxout(nn.Module):
    def __init__(self, n_in: int, width: int, pieces: int) -> None:
        super().__init__()
        self.width, self.pieces = width, pieces
        self.fc = nn.Linear(n_in, width * pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x).view(-1, self.width, self.pieces).amax(dim=-1)


def maxout_net(input_spec: dict[str, Any], output_spec: dict[str, Any], *, width: int = 64,
               pieces: int = 3, depth: int = 2, init_gain: float | None = None) -> nn.Module:
    n_in, n_out = in_out(input_spec, output_spec)
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers.append(Maxout(n_in, width, pieces))
        n_in = width
    return scale(nn.Sequential(*layers, nn.Linear(n_in, n_out)), init_gain, None)


class PatchConv(nn.Module):
    """The feature vector zero-padded to a side x side image, two 3x3 convs with GroupNorm and
    `act`, a global average pool and a Linear head."""

    def __init__(self, n_in: int, n_out: int, channels: int, act: str) -> None:
        super().__init__()
        self.side = math.ceil(math.sqrt(n_in))
        self.pad = self.side * self.side - n_in
        self.body = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1), nn.GroupNorm(4, channels), ACTS[act](),
            nn.Conv2d(channels, 2 * channels, 3, padding=1), nn.GroupNorm(4, 2 * channels),
            ACTS[act](), nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.head = nn.Linear(8 * channels, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.pad(x, (0, self.pad)).view(-1, 1, self.side, self.side)
        return self.head(self.body(x))


def patch_conv(input_spec: dict[str, Any], output_spec: dict[str, Any], *, channels: int = 16,
               act: str = "relu") -> nn.Module:
    n_in, n_out = in_out(input_spec, output_spec)
    return PatchConv(n_in, n_out, channels, act)


class BinBag(nn.Module):
    """Each (standardised) feature cut into `bins` equal bins over [-3, 3]; an EmbeddingBag
    sums one learned vector per (feature, bin); an MLP over the sum."""

    def __init__(self, n_in: int, n_out: int, bins: int, dim: int, hidden: int) -> None:
        super().__init__()
        self.bins = bins
        self.register_buffer("offsets", torch.arange(n_in) * bins, persistent=False)
        self.bag = nn.EmbeddingBag(n_in * bins, dim, mode="sum")
        self.mlp = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.ReLU(),
                                 nn.Linear(hidden, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idx = ((x.clamp(-3, 2.999) + 3) / 6 * self.bins).long() + self.offsets
        return self.mlp(self.bag(idx))


def embag_net(input_spec: dict[str, Any], output_spec: dict[str, Any], *, bins: int = 16,
              dim: int = 32, hidden: int = 64) -> nn.Module:
    n_in, n_out = in_out(input_spec, output_spec)
    return BinBag(n_in, n_out, bins, dim, hidden)


class WideDeep(nn.Module):
    """A linear model plus an MLP, summed."""

    def __init__(self, n_in: int, n_out: int, hidden: list[int], act: str) -> None:
        super().__init__()
        self.wide = nn.Linear(n_in, n_out)
        layers: list[nn.Module] = []
        width = n_in
        for h in hidden:
            layers += [nn.Linear(width, h), ACTS[act]()]
            width = h
        self.deep = nn.Sequential(*layers, nn.Linear(width, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.wide(x) + self.deep(x)


def wide_deep(input_spec: dict[str, Any], output_spec: dict[str, Any], *,
              hidden: list[int] | None = None, act: str = "relu",
              init_gain: float | None = None, bias_init: float | None = None) -> nn.Module:
    n_in, n_out = in_out(input_spec, output_spec)
    model = WideDeep(n_in, n_out, hidden or [64, 64], act)
    scale(model.deep, init_gain, bias_init)  # the deep part's hidden biases, not the output's
    scale(model.wide, init_gain, None)
    return model


class FactorisationMachine(nn.Module):
    """A factorisation machine's pairwise term (rank `rank`) beside a one-layer MLP."""

    def __init__(self, n_in: int, n_out: int, rank: int, hidden: int) -> None:
        super().__init__()
        self.v = nn.Parameter(torch.randn(n_in, rank) * 0.05)
        self.mlp = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU())
        self.head = nn.Linear(hidden + rank, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xv = x @ self.v
        pair = 0.5 * (xv * xv - (x * x) @ (self.v * self.v))
        return self.head(torch.cat([self.mlp(x), pair], dim=1))


def fm_net(input_spec: dict[str, Any], output_spec: dict[str, Any], *, rank: int = 8,
           hidden: int = 64) -> nn.Module:
    n_in, n_out = in_out(input_spec, output_spec)
    return FactorisationMachine(n_in, n_out, rank, hidden)


def saturating_deep(input_spec: dict[str, Any], output_spec: dict[str, Any], *,
                    act: str = "hardtanh", depth: int = 12, width: int = 32,
                    init_gain: float | None = None) -> nn.Module:
    """`depth` Linear layers each followed by `act`, weights times `init_gain`."""
    n_in, n_out = in_out(input_spec, output_spec)
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(n_in, width), ACTS[act]()]
        n_in = width
    return scale(nn.Sequential(*layers, nn.Linear(n_in, n_out)), init_gain, None)


# -- data: files shipped by installed packages -------------------------------------------------


def _skimage(name: str) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(skimage_file(name)))


def _points(values: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` random cells of a 2-D grid: (row, col) as features, the cell's value as target."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, values.shape[0], n)
    cols = rng.integers(0, values.shape[1], n)
    X = np.stack([rows, cols], axis=1).astype(np.float32)
    return X, values[rows, cols]


def _patches(names: tuple[str, ...], size: int, per_image: int,
             seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`per_image` random size x size patches (flattened, all channels) of each scikit-image
    photograph in `names`; the class is the photograph's index."""
    return patches([_skimage(n).astype(np.float32) for n in names], size, per_image, seed)


@cache
def _texture() -> tuple[np.ndarray, np.ndarray]:
    return _patches(("brick.png", "grass.png", "gravel.png"), 10, 350, 51)


def texture() -> tuple[np.ndarray, np.ndarray]:
    """1050 10x10 grey patches (100 raw pixel features), 350 each from scikit-image's brick,
    grass and gravel photographs; the class is the photograph."""
    return _texture()


def texture_noisy() -> tuple[np.ndarray, np.ndarray]:
    """texture with 30 % of the labels replaced by a random class."""
    X, y = _texture()
    return X, flip(y, 0.3, 3, 52)


def faces() -> tuple[np.ndarray, np.ndarray]:
    """scikit-image's LFW subset: 200 25x25 grey images, 100 faces then 100 non-faces,
    downsampled 2x to 13x13 (169 features); the class is face or not."""
    imgs = np.load(skimage_file("lfw_subset.npy"))
    small = imgs[:, ::2, ::2].reshape(len(imgs), -1).astype(np.float32)
    y = np.r_[np.ones(100), np.zeros(100)].astype(np.int64)
    return small, y


@cache
def _horse() -> tuple[np.ndarray, np.ndarray]:
    img = _skimage("horse.png")
    inside = (img[..., 3] > 0) & (img[..., 0] < 128)  # the silhouette is dark and opaque
    X, y = _points(inside, 2400, 53)
    noise = np.random.default_rng(54).normal(0, 1, (len(y), 2)).astype(np.float32)
    return np.concatenate([X, noise], axis=1), y.astype(np.int64)


def horse() -> tuple[np.ndarray, np.ndarray]:
    """2400 random pixels of scikit-image's horse silhouette: (row, col) in pixels and two
    noise features; the class is inside the silhouette or not."""
    return _horse()


def horse_noisy() -> tuple[np.ndarray, np.ndarray]:
    """horse with 30 % of the labels replaced by a random class."""
    X, y = _horse()
    return X, flip(y, 0.3, 2, 55)


def colours() -> tuple[np.ndarray, np.ndarray]:
    """3x3 RGB neighbourhoods (27 features, 0-255) of 600 random pixels from each of
    scikit-image's chelsea, coffee and astronaut photographs; the class is the photograph."""
    return _patches(("chelsea.png", "coffee.png", "astronaut.png"), 3, 600, 56)


# -- data: regression in raw units -------------------------------------------------------------


@cache
def _dem() -> tuple[np.ndarray, np.ndarray]:
    with np.load(mpl_sample("jacksboro_fault_dem.npz")) as d:
        elevation = d["elevation"].astype(np.float32)
    return _points(elevation, 2400, 57)


def dem() -> tuple[np.ndarray, np.ndarray]:
    """2400 random cells of matplotlib's Jacksboro fault elevation model: (row, col) -> the
    elevation in metres (236-1076)."""
    return _dem()


def dem_noisy() -> tuple[np.ndarray, np.ndarray]:
    """dem with Gaussian noise of 150 m on the target (its std is about 170 m) and four
    pure-noise features."""
    X, y = _dem()
    rng = np.random.default_rng(58)
    noise = rng.normal(0, 1, (len(y), 4)).astype(np.float32)
    return (np.concatenate([X, noise], axis=1),
            y + rng.normal(0, 150, len(y)).astype(np.float32))


def topo() -> tuple[np.ndarray, np.ndarray]:
    """2400 random cells of matplotlib's topography/bathymetry grid: (latitude, longitude)
    -> height in metres (-1437 to 2205)."""
    with np.load(mpl_sample("topobathy.npz")) as d:
        topo_, lat, lon = d["topo"].astype(np.float32), d["latitude"], d["longitude"]
    rng = np.random.default_rng(59)
    rows, cols = rng.integers(0, topo_.shape[0], 2400), rng.integers(0, topo_.shape[1], 2400)
    X = np.stack([lat[rows], lon[cols]], axis=1).astype(np.float32)
    return X, topo_[rows, cols]


def mri() -> tuple[np.ndarray, np.ndarray]:
    """2400 random pixels of matplotlib's 256x256 MRI slice (s1045.ima): (row, col) -> the raw
    intensity (big-endian 16-bit, 0-215)."""
    with gzip.open(mpl_sample("s1045.ima.gz")) as f:
        raw = f.read()
    img = np.frombuffer(raw, ">u2").astype(np.float32).reshape(256, 256)
    return _points(img, 2400, 60)


def stocks() -> tuple[np.ndarray, np.ndarray]:
    """matplotlib's Stocks.csv, the months where every column is known: the monthly closes of
    IBM, AAPL, MSFT, XRX, ADBE and the NASDAQ index (dollars, points; 391 months) -> the
    S&P 500 index level."""
    import pandas as pd

    columns = ["IBM", "AAPL", "MSFT", "XRX", "ADBE", "^IXIC", "^GSPC"]
    frame = pd.read_csv(mpl_sample("Stocks.csv"), comment="#")[columns].dropna()
    X = frame[columns[:-1]]
    return X.to_numpy(np.float32), frame["^GSPC"].to_numpy(np.float32)


def diabetes_raw() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's diabetes with its raw features (age in years, sex 1/2, BMI, blood
    pressure, six serum measurements) and raw target (disease progression, 25-346)."""
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True, scaled=False)
    return X.astype(np.float32), y.astype(np.float32)
