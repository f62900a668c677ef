"""Model factories and data sources of `bench/heldout7.py` (held-out v7; not shipped).

Written with heldout7.py, before any rule change of issue 11's seventh pass, and never used to
choose a rule or a threshold. Used through mlt.yaml's `python:heldout7_factories:<fn>` hooks
with `bench/` as the project root (see `bench_factories.py` for the calling convention).

Nothing here is used by the earlier sets (`scenarios.py`, `heldout.py` .. `heldout6.py`, all
tuning material now):

* data: files that ship inside installed packages, read locally (no download), none of them
  read by v1-v6: the `names` package's US census first-name lists (male, female) and
  surname list; the `tzdata` package's zone table (`zone1970.tab`: each zone's coordinates,
  its UTC offset through `zoneinfo`); matplotlib's bundled fonts (DejaVu, STIX and Computer
  Modern TrueType files) rendered with Pillow; scikit-image's retina fundus photograph
  (`retina.jpg`, vessels by its Sato tubeness filter), cell, microaneurysms and clock
  photographs; matplotlib's Grace Hopper portrait; scikit-image's Shepp-Logan phantom;
  noisy copies of three of them for overfitting;
* regression targets in raw units: a grey level (0-255) at a pixel position, a zone's UTC
  offset in minutes (-600 .. 840), a surname's frequency per
  100 000 people (heavy-tailed: 0.03 to 880), the Sato tubeness of a fundus pixel
  (heavy-tailed);
* model families: soft oblivious decision trees (NODE-style), a Kolmogorov-Arnold network
  (Gaussian-RBF edges), a weight-tied looped residual block, a polynomial (Pi-) network, a
  depthwise-separable CNN with GroupNorm on images, a low-rank factorised MLP, a GroupSort
  MLP with orthogonal init, a residual net with SiLU and stochastic depth, MLPs with
  LeakyReLU/ELU/Hardswish/SiLU/ReLU6 units, deep hardtanh/logsigmoid/sigmoid/tanh stacks.
"""

from __future__ import annotations

import itertools
import math
from functools import cache
from typing import Any

import numpy as np
import torch
from heldout_common import (
    ACTS,
    flip,
    hidden_bias,
    image,
    in_out,
    mpl_data,
    scale,
    site,
    skimage_file,
)
from torch import nn

# -- models ------------------------------------------------------------------------------------


class SoftTrees(nn.Module):
    """NODE-style ensemble of `trees` soft oblivious decision trees of depth `depth`: each
    level a learned feature mix and threshold, a sigmoid split of temperature `temp`; the
    output the sum over trees of the leaf values weighted by the leaf probabilities. An
    optional Linear+ReLU feature layer in front."""

    def __init__(self, n_in: int, n_out: int, trees: int, depth: int, temp: float,
                 hidden: int) -> None:
        super().__init__()
        self.front = (nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU()) if hidden
                      else nn.Identity())
        width = hidden or n_in
        self.depth, self.trees, self.temp = depth, trees, temp
        self.split = nn.Linear(width, trees * depth)
        self.leaves = nn.Parameter(torch.randn(trees, 2 ** depth, n_out) * 0.1)
        codes = torch.tensor([[(i >> d) & 1 for d in range(depth)] for i in range(2 ** depth)],
                             dtype=torch.float32)
        self.register_buffer("codes", codes)  # (leaves, depth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.sigmoid(self.split(self.front(x)) / self.temp)
        s = s.view(len(x), self.trees, 1, self.depth)
        p = (s * self.codes + (1 - s) * (1 - self.codes)).prod(dim=-1)  # (b, trees, leaves)
        return torch.einsum("btl,tlo->bo", p, self.leaves)


def soft_trees(input_spec: dict[str, Any], output_spec: dict[str, Any], *, trees: int = 32,
               depth: int = 4, temp: float = 1.0, hidden: int = 64) -> nn.Module:
    n_in, n_out = in_out(input_spec, output_spec)
    return SoftTrees(n_in, n_out, trees, depth, temp, hidden)


class KANLayer(nn.Module):
    """A Kolmogorov-Arnold layer (FastKAN form): each input expanded on `grid` Gaussian radial
    basis functions over [-2, 2] after a LayerNorm, a Linear map of the expansion, plus a
    SiLU base branch."""

    def __init__(self, n_in: int, n_out: int, grid: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(n_in)
        self.register_buffer("centres", torch.linspace(-2, 2, grid))
        self.width = 4 / (grid - 1)
        self.spline = nn.Linear(n_in * grid, n_out)
        self.base = nn.Linear(n_in, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.norm(x)
        phi = torch.exp(-((z.unsqueeze(-1) - self.centres) / self.width) ** 2)
        return self.spline(phi.flatten(1)) + self.base(nn.functional.silu(x))


def kan(input_spec: dict[str, Any], output_spec: dict[str, Any], *,
        hidden: list[int] | None = None, grid: int = 8) -> nn.Module:
    n_in, n_out = in_out(input_spec, output_spec)
    widths = [n_in, *(hidden or [32]), n_out]
    return nn.Sequential(*[KANLayer(a, b, grid) for a, b in itertools.pairwise(widths)])


class Looped(nn.Module):
    """One block (Linear, `act`) applied `loops` times with tied weights (a residual
    connection unless `residual` is false), between an input Linear and a Linear head."""

    def __init__(self, n_in: int, n_out: int, width: int, loops: int, act: str,
                 residual: bool) -> None:
        super().__init__()
        self.inp = nn.Linear(n_in, width)
        self.block = nn.Linear(width, width)
        self.act = ACTS[act]()
        self.loops, self.residual = loops, residual
        self.head = nn.Linear(width, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.inp(x))
        for _ in range(self.loops):
            y = self.act(self.block(h))
            h = h + y / self.loops if self.residual else y
        return self.head(h)


def looped(input_spec: dict[str, Any], output_spec: dict[str, Any], *, width: int = 64,
           loops: int = 6, act: str = "tanh", residual: bool = True,
           init_gain: float | None = None, bias_init: float | None = None) -> nn.Module:
    n_in, n_out = in_out(input_spec, output_spec)
    model = Looped(n_in, n_out, width, loops, act, residual)
    scale(model, init_gain, None)
    return hidden_bias(model, bias_init)


class PiNet(nn.Module):
    """A polynomial network (Pi-net, CCP form): z_1 = U_1 x, z_{k+1} = (U_{k+1} x) * z_k + z_k;
    degree `degree` in the input, a Linear head. No activation function at all."""

    def __init__(self, n_in: int, n_out: int, width: int, degree: int) -> None:
        super().__init__()
        self.us = nn.ModuleList(nn.Linear(n_in, width) for _ in range(degree))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.us[0](x)
        for u in self.us[1:]:
            z = u(x) * z + z
        return self.head(self.norm(z))


def pinet(input_spec: dict[str, Any], output_spec: dict[str, Any], *, width: int = 48,
          degree: int = 3, init_gain: float | None = None) -> nn.Module:
    n_in, n_out = in_out(input_spec, output_spec)
    model = PiNet(n_in, n_out, width, degree)
    scale(model, init_gain, None)
    return model


class SepConvNet(nn.Module):
    """The features as a `channels` x side x side image; a 3x3 stem, `blocks` depthwise 3x3 +
    pointwise 1x1 conv blocks with GroupNorm and `act`, global average pooling, a Linear head."""

    def __init__(self, n_in: int, n_out: int, channels: int, width: int, blocks: int,
                 act: str) -> None:
        super().__init__()
        self.channels = channels
        self.side = round(math.sqrt(n_in / channels))
        if self.side * self.side * channels != n_in:
            raise ValueError(f"{n_in} features are not a {channels}-channel square image")
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, padding=1),
                                   nn.GroupNorm(4, width), ACTS[act]()]
        for _ in range(blocks):
            layers += [nn.Conv2d(width, width, 3, padding=1, groups=width),
                       nn.Conv2d(width, width, 1), nn.GroupNorm(4, width), ACTS[act]()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        img = x.view(len(x), self.side, self.side, self.channels).permute(0, 3, 1, 2)
        return self.head(self.body(img).mean(dim=(2, 3)))


def sepconv(input_spec: dict[str, Any], output_spec: dict[str, Any], *, channels: int = 1,
            width: int = 24, blocks: int = 2, act: str = "relu",
            bias_init: float | None = None) -> nn.Module:
    n_in, n_out = in_out(input_spec, output_spec)
    return hidden_bias(SepConvNet(n_in, n_out, channels, width, blocks, act), bias_init)


class LowRank(nn.Module):
    """A Linear map factorised as (n_out x rank) @ (rank x n_in)."""

    def __init__(self, n_in: int, n_out: int, rank: int) -> None:
        super().__init__()
        self.down = nn.Linear(n_in, rank, bias=False)
        self.up = nn.Linear(rank, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.down(x))


def lowrank_mlp(input_spec: dict[str, Any], output_spec: dict[str, Any], *,
                hidden: list[int] | None = None, rank: int = 8, act: str = "relu",
                dropout: float = 0.0, init_gain: float | None = None,
                bias_init: float | None = None) -> nn.Module:
    """An MLP whose hidden Linear layers are rank-`rank` factorisations."""
    n_in, n_out = in_out(input_spec, output_spec)
    layers: list[nn.Module] = []
    width = n_in
    for h in hidden or [128, 128]:
        layers += [LowRank(width, h, rank), ACTS[act](), nn.Dropout(dropout)]
        width = h
    model = nn.Sequential(*layers, nn.Linear(width, n_out))
    scale(model, init_gain, None)
    return hidden_bias(model, bias_init)


class GroupSort(nn.Module):
    """GroupSort with groups of 2 (MaxMin): each pair of units sorted; gradient-norm
    preserving."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pairs = x.view(*x.shape[:-1], -1, 2)
        return torch.cat([pairs.max(-1).values, pairs.min(-1).values], dim=-1)


def groupsort_mlp(input_spec: dict[str, Any], output_spec: dict[str, Any], *,
                  hidden: list[int] | None = None) -> nn.Module:
    """An MLP with MaxMin (GroupSort) units and orthogonal weight init."""
    n_in, n_out = in_out(input_spec, output_spec)
    layers: list[nn.Module] = []
    width = n_in
    for h in hidden or [64, 64]:
        lin = nn.Linear(width, h)
        nn.init.orthogonal_(lin.weight)
        layers += [lin, GroupSort()]
        width = h
    return nn.Sequential(*layers, nn.Linear(width, n_out))


class DropPathBlock(nn.Module):
    def __init__(self, width: int, drop: float) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, 2 * width), nn.SiLU(),
                                  nn.Linear(2 * width, width))
        self.drop = drop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        if self.training and self.drop > 0:
            keep = (torch.rand(len(x), 1, device=x.device) >= self.drop).to(x.dtype)
            y = y * keep / (1 - self.drop)
        return x + y


def droppath_resnet(input_spec: dict[str, Any], output_spec: dict[str, Any], *,
                    width: int = 64, blocks: int = 3, drop: float = 0.1) -> nn.Module:
    """A residual MLP: pre-norm SiLU blocks with stochastic depth (each block's branch dropped
    for a whole example with probability `drop` in training)."""
    n_in, n_out = in_out(input_spec, output_spec)
    return nn.Sequential(nn.Linear(n_in, width),
                         *[DropPathBlock(width, drop) for _ in range(blocks)],
                         nn.LayerNorm(width), nn.Linear(width, n_out))


def act_mlp7(input_spec: dict[str, Any], output_spec: dict[str, Any], *,
             hidden: list[int] | None = None, act: str = "leaky", dropout: float = 0.0,
             init_gain: float | None = None, bias_init: float | None = None) -> nn.Module:
    """An MLP with the unit `act` (LeakyReLU, ELU, Hardswish, SiLU, ReLU6, ...), weights times
    `init_gain`, hidden biases set to `bias_init`."""
    n_in, n_out = in_out(input_spec, output_spec)
    layers: list[nn.Module] = []
    width = n_in
    for h in hidden or [128, 64]:
        layers += [nn.Linear(width, h), ACTS[act](), nn.Dropout(dropout)]
        width = h
    model = nn.Sequential(*layers, nn.Linear(width, n_out))
    scale(model, init_gain, None)
    return hidden_bias(model, bias_init)


def stack7(input_spec: dict[str, Any], output_spec: dict[str, Any], *, act: str = "hardtanh",
           depth: int = 12, width: int = 32, init_gain: float | None = None) -> nn.Module:
    """`depth` Linear layers each followed by `act` (hardtanh, logsigmoid, sigmoid, tanh),
    weights times `init_gain`, a Linear head."""
    n_in, n_out = in_out(input_spec, output_spec)
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(n_in, width), ACTS[act]()]
        n_in = width
    model = nn.Sequential(*layers, nn.Linear(n_in, n_out))
    scale(model, init_gain, None)
    return model


# -- data: files shipped by installed packages -------------------------------------------------


def _letters(name: str) -> np.ndarray:
    """One-hot of the first letter, the last three letters (position from the end) and the
    length / 10: 26 * 4 + 1 = 105 features."""
    out = np.zeros(105, np.float32)
    out[ord(name[0]) - 65] = 1
    for k in range(1, 4):
        if len(name) >= k:
            out[26 * k + ord(name[-k]) - 65] = 1
    out[104] = len(name) / 10
    return out


def _census(file: str) -> list[tuple[str, float]]:
    rows = []
    for line in (site("names") / file).read_text().splitlines():
        parts = line.split()
        if parts and parts[0].isalpha():
            rows.append((parts[0], float(parts[1])))
    return rows


@cache
def _names() -> tuple[np.ndarray, np.ndarray]:
    male = dict(_census("dist.male.first"))
    female = dict(_census("dist.female.first"))
    rng = np.random.default_rng(71)
    m = [n for n in male if male[n] > female.get(n, 0.0)]
    f = [n for n in female if female[n] > male.get(n, 0.0)]
    f = list(rng.choice(f, size=len(m), replace=False))
    X = np.stack([_letters(n) for n in m + f])
    y = np.r_[np.zeros(len(m)), np.ones(len(f))].astype(np.int64)
    return X, y


def names() -> tuple[np.ndarray, np.ndarray]:
    """US census first names (the `names` package's lists): one-hot first and last three
    letters and the length (105 features) -> whether the name is more often a man's or a
    woman's (the female list subsampled to the male list's ~1200 names)."""
    return _names()


def names_noisy() -> tuple[np.ndarray, np.ndarray]:
    """names with 30 % of the labels replaced by a random class."""
    X, y = _names()
    return X, flip(y, 0.3, 2, 72)


_FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf",
          "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf",
          "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "STIXGeneral.ttf",
          "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf", "cmr10.ttf", "cmss10.ttf",
          "cmtt10.ttf", "cmb10.ttf", "cmti10.ttf")
_GLYPHS = "aegkmrsx"


def _render(char: str, font: str, size: int, angle: float, dx: int, dy: int) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

    face = ImageFont.truetype(str(mpl_data("fonts/ttf") / font), size * 2)
    img = Image.new("L", (48, 48), 0)
    ImageDraw.Draw(img).text((24 + dx, 24 + dy), char, fill=255, font=face, anchor="mm")
    img = img.rotate(angle, resample=Image.Resampling.BILINEAR)
    return np.asarray(img.resize((12, 12), Image.Resampling.BOX), dtype=np.float32).ravel()


@cache
def _glyphs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X, y = [], []
    for _ in range(n):
        k = int(rng.integers(len(_GLYPHS)))
        a = float(rng.uniform(-40, 40))
        X.append(_render(_GLYPHS[k], _FONTS[int(rng.integers(len(_FONTS)))],
                         int(rng.integers(13, 19)), a, int(rng.integers(-3, 4)),
                         int(rng.integers(-3, 4))))
        y.append(k)
    return np.stack(X), np.asarray(y, np.int64)


def glyphs() -> tuple[np.ndarray, np.ndarray]:
    """4000 renders of eight lower-case letters (a e g k m r s x) in 16 of matplotlib's bundled
    TrueType fonts (DejaVu, STIX, Computer Modern), 26-36 px, shifted and rotated up to 40
    degrees, box-downsampled to 12x12 grey (144 features, 0-255); the class is the letter."""
    return _glyphs(4000, 73)


def glyphs_noisy() -> tuple[np.ndarray, np.ndarray]:
    """glyphs with 30 % of the labels replaced by a random class."""
    X, y = _glyphs(4000, 73)
    return X, flip(y, 0.3, len(_GLYPHS), 74)


@cache
def _fundus() -> tuple[np.ndarray, np.ndarray]:
    from skimage.filters import sato

    img = image(skimage_file("retina.jpg"), scale_by=0.25)
    tube = sato(img[..., 1] / 255.0, sigmas=[1, 2], black_ridges=True).astype(np.float32)
    return img, tube


@cache
def _vessels() -> tuple[np.ndarray, np.ndarray]:
    img, tube = _fundus()
    inside = img[..., 0] > 20  # the fundus disc, not the black frame
    rng = np.random.default_rng(76)
    cut = np.quantile(tube[inside], 0.85)
    X, y = [], []
    while len(y) < 2400:
        r = int(rng.integers(2, img.shape[0] - 2))
        c = int(rng.integers(2, img.shape[1] - 2))
        if not inside[r, c]:
            continue
        label = int(tube[r, c] > cut)
        if label == 0 and sum(y) < len(y) / 2:  # near balanced
            continue
        X.append(img[r - 2:r + 3, c - 2:c + 3].ravel())
        y.append(label)
    return np.stack(X).astype(np.float32), np.asarray(y, np.int64)


def vessels() -> tuple[np.ndarray, np.ndarray]:
    """2400 pixels inside scikit-image's retina fundus photograph (retina.jpg at 1/4 size):
    the 5x5 RGB neighbourhood (75 features, 0-255) -> whether the pixel's Sato tubeness
    (`skimage.filters.sato` on the green channel, dark ridges) is in the disc's top 15 %
    (a vessel); classes near balanced."""
    return _vessels()


def vessels_noisy() -> tuple[np.ndarray, np.ndarray]:
    """vessels with 30 % of the labels replaced by a random class."""
    X, y = _vessels()
    return X, flip(y, 0.3, 2, 77)


def tubeness() -> tuple[np.ndarray, np.ndarray]:
    """2400 random pixels inside the fundus disc: the 5x5 green neighbourhood (25 features,
    0-255) -> the centre's Sato tubeness x 1000 (raw, heavy-tailed: most near 0)."""
    img, tube = _fundus()
    inside = img[..., 0] > 20
    rng = np.random.default_rng(78)
    X, y = [], []
    while len(y) < 2400:
        r = int(rng.integers(2, img.shape[0] - 2))
        c = int(rng.integers(2, img.shape[1] - 2))
        if inside[r, c]:
            X.append(img[r - 2:r + 3, c - 2:c + 3, 1].ravel())
            y.append(tube[r, c] * 1000)
    return np.stack(X).astype(np.float32), np.asarray(y, np.float32)


def micrographs() -> tuple[np.ndarray, np.ndarray]:
    """1600 6x6 grey patches (36 features, 0-255), 400 each from scikit-image's cell,
    microaneurysms and clock (motion-blurred) photographs and matplotlib's Grace Hopper
    portrait; the class is the photograph."""
    imgs = [image(skimage_file("cell.png"), grey=True),
            image(skimage_file("microaneurysms.png"), grey=True),
            image(skimage_file("clock_motion.png"), grey=True),
            image(mpl_data("sample_data/grace_hopper.jpg"), grey=True, scale_by=0.5)]
    rng = np.random.default_rng(79)
    X, y = [], []
    for label, img in enumerate(imgs):
        for _ in range(400):
            r = int(rng.integers(0, img.shape[0] - 6))
            c = int(rng.integers(0, img.shape[1] - 6))
            X.append(img[r:r + 6, c:c + 6].ravel())
            y.append(label)
    return np.stack(X).astype(np.float32), np.asarray(y, np.int64)


@cache
def _zones() -> list[tuple[str, float, float, float]]:
    """(region, latitude, longitude, January UTC offset in minutes) of every zone in tzdata's
    zone1970.tab."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    def degrees(text: str, width: int) -> float:
        sign = -1.0 if text[0] == "-" else 1.0
        d, m = int(text[1:1 + width]), int(text[1 + width:3 + width])
        s = int(text[3 + width:5 + width] or 0)
        return sign * (d + m / 60 + s / 3600)

    rows = []
    for line in (site("tzdata") / "zoneinfo" / "zone1970.tab").read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        _, coords, zone = line.split("\t")[:3]
        cut = max(coords.rfind("+"), coords.rfind("-"))
        lat, lon = coords[:cut], coords[cut:]
        offset = ZoneInfo(zone).utcoffset(datetime(2024, 1, 15))
        rows.append((zone.split("/")[0], degrees(lat, 2), degrees(lon, 3),
                     offset.total_seconds() / 60 if offset is not None else 0.0))
    return rows


def zones() -> tuple[np.ndarray, np.ndarray]:
    """tzdata's zone1970.tab: a zone's latitude and longitude (and their sines and cosines, 6
    features) -> its region (America, Europe, Asia, Africa, Australia, Pacific; other regions
    dropped)."""
    keep = ("America", "Europe", "Asia", "Africa", "Australia", "Pacific")
    rows = [r for r in _zones() if r[0] in keep]
    lat = np.radians([r[1] for r in rows])
    lon = np.radians([r[2] for r in rows])
    X = np.stack([lat, lon, np.sin(lat), np.cos(lat), np.sin(lon), np.cos(lon)], axis=1)
    return X.astype(np.float32), np.asarray([keep.index(r[0]) for r in rows], np.int64)


def tz_offset() -> tuple[np.ndarray, np.ndarray]:
    """tzdata's zone1970.tab (every zone): latitude and longitude in degrees -> the zone's
    UTC offset on 15 January 2024 in minutes (-600 .. 840)."""
    rows = _zones()
    X = np.asarray([[r[1], r[2]] for r in rows], np.float32)
    return X, np.asarray([r[3] for r in rows], np.float32)


def _coordinates(img: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, img.shape[0], n)
    cols = rng.integers(0, img.shape[1], n)
    return (np.stack([rows, cols], axis=1).astype(np.float32),
            img[rows, cols].astype(np.float32))


def hopper() -> tuple[np.ndarray, np.ndarray]:
    """matplotlib's Grace Hopper portrait at 1/16 size (about 38x32 grey): 2400 random pixel
    positions (row, col) -> the grey level (0-255)."""
    img = image(mpl_data("sample_data/grace_hopper.jpg"), grey=True, scale_by=1 / 16)
    return _coordinates(img, 2400, 80)


def phantom() -> tuple[np.ndarray, np.ndarray]:
    """scikit-image's Shepp-Logan phantom at 1/8 size (50x50 grey): 2400 random pixel
    positions (row, col) -> the grey level (0-255, piecewise constant)."""
    img = image(skimage_file("phantom.png"), grey=True, scale_by=1 / 8)
    return _coordinates(img, 2400, 81)


def phantom_noisy() -> tuple[np.ndarray, np.ndarray]:
    """phantom with Gaussian noise of one target std added to the target and six pure-noise
    features."""
    X, y = phantom()
    rng = np.random.default_rng(82)
    noise = rng.normal(0, 1, (len(y), 6)).astype(np.float32)
    return (np.concatenate([X, noise], axis=1),
            y + rng.normal(0, float(y.std()), len(y)).astype(np.float32))


def surnames() -> tuple[np.ndarray, np.ndarray]:
    """3000 of the `names` package's US census surnames (the 1500 most common and 1500 drawn
    from the rest): one-hot first and last three letters and the length (105 features) -> the
    name's frequency per 100 000 people (raw, heavy-tailed: about 0.03 to 880)."""
    rows = _census("dist.all.last")
    rng = np.random.default_rng(83)
    pick = list(range(1500)) + list(rng.choice(np.arange(1500, len(rows)), 1500,
                                               replace=False))
    X = np.stack([_letters(rows[i][0]) for i in pick])
    return X, np.asarray([rows[i][1] * 1000 for i in pick], np.float32)


def inpaint() -> tuple[np.ndarray, np.ndarray]:
    """2400 random 5x5 grey patches of scikit-image's cell photograph (cell.png): the 24
    pixels around the centre (0-255) -> the centre pixel's grey level (0-255)."""
    img = image(skimage_file("cell.png"), grey=True)
    rng = np.random.default_rng(84)
    rows = rng.integers(2, img.shape[0] - 2, 2400)
    cols = rng.integers(2, img.shape[1] - 2, 2400)
    patches = np.stack([img[r - 2:r + 3, c - 2:c + 3].ravel()
                        for r, c in zip(rows, cols, strict=True)])
    return np.delete(patches, 12, axis=1), patches[:, 12]
