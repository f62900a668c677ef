"""Model factories and data sources of `bench/heldout6.py` (held-out v6; not shipped).

Written with heldout6.py, before any rule change of issue 11's sixth pass, and never used to
choose a rule or a threshold. Used through mlt.yaml's `python:heldout6_factories:<fn>` hooks
with `bench/` as the project root (see `bench_factories.py` for the calling convention).

Nothing here is used by the earlier sets (`scenarios.py`, `heldout.py` .. `heldout5.py`, all
tuning material now):

* data: files that ship inside installed packages, read locally (no download), none of them
  read by v1-v5: scikit-image's camera, coins, moon, page and text photographs (grey patches),
  its immunohistochemistry slide (`ihc.png`, stain by colour deconvolution), the Hubble deep
  field, the motorcycle stereo pair's disparity map; scikit-learn's two sample photographs
  (`china.jpg`, `flower.jpg`) beside scikit-image's `rocket.jpg`; matplotlib's Google daily
  prices (`goog.npz`), its EEG recording (`eeg.dat`) and membrane-potential trace
  (`membrane.dat`); noisy copies of three of them for overfitting;
* regression targets in raw units: dollars (Google's next close), shares traded (a day's
  volume, ~1e7), EEG and membrane values, disparity in pixels, a pixel's red level (0-255);
* model families: a tabular transformer (each feature a token, `nn.TransformerEncoder`), an
  MLP-Mixer over feature groups, a deep & cross network, an LSTM reading the features as a
  sequence, a SIREN (sine units with its own init), an MLP with PReLU/Softplus/Mish/CELU units
  and spectral normalisation, a bilinear-interaction net, a dilated temporal conv net (TCN).
"""

from __future__ import annotations

import math
from functools import cache
from typing import Any

import numpy as np
import torch
from heldout_common import (
    ACTS,
    flip,
    image,
    in_out,
    mpl_sample,
    patches,
    scale,
    skimage_file,
    sklearn_image,
)
from torch import nn

# -- models ------------------------------------------------------------------------------------


class TabTransformer(nn.Module):
    """Each feature a token (value x a learned vector + a learned feature embedding), a CLS
    token, `depth` pre-norm transformer encoder layers, a Linear head on the CLS token."""

    def __init__(self, n_in: int, n_out: int, dim: int, depth: int, heads: int,
                 dropout: float) -> None:
        super().__init__()
        self.value = nn.Parameter(torch.randn(n_in, dim) * 0.1)
        self.feature = nn.Parameter(torch.randn(n_in, dim) * 0.1)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout, batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.unsqueeze(-1) * self.value + self.feature
        tokens = torch.cat([self.cls.expand(len(x), -1, -1), tokens], dim=1)
        return self.head(self.norm(self.encoder(tokens)[:, 0]))


def tab_transformer(input_spec: dict[str, Any], output_spec: dict[str, Any], *, dim: int = 32,
                    depth: int = 2, heads: int = 4, dropout: float = 0.0) -> nn.Module:
    n_in, n_out = in_out(input_spec, output_spec)
    return TabTransformer(n_in, n_out, dim, depth, heads, dropout)


class MixerBlock(nn.Module):
    def __init__(self, tokens: int, dim: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.token_mlp = nn.Sequential(nn.Linear(tokens, 2 * tokens), nn.GELU(),
                                       nn.Linear(2 * tokens, tokens))
        self.channel_mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(),
                                         nn.Linear(2 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.token_mlp(self.norm1(x).transpose(1, 2)).transpose(1, 2)
        return x + self.channel_mlp(self.norm2(x))


class Mixer(nn.Module):
    """MLP-Mixer: the features zero-padded and cut into `tokens` groups, each group embedded,
    `depth` mixer blocks (token mixing, channel mixing), mean over tokens, a Linear head."""

    def __init__(self, n_in: int, n_out: int, tokens: int, dim: int, depth: int) -> None:
        super().__init__()
        self.tokens = tokens
        self.group = math.ceil(n_in / tokens)
        self.pad = self.group * tokens - n_in
        self.embed = nn.Linear(self.group, dim)
        self.blocks = nn.Sequential(*[MixerBlock(tokens, dim) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.pad(x, (0, self.pad)).view(len(x), self.tokens, self.group)
        return self.head(self.norm(self.blocks(self.embed(x))).mean(dim=1))


def mixer(input_spec: dict[str, Any], output_spec: dict[str, Any], *, tokens: int = 4,
          dim: int = 32, depth: int = 2) -> nn.Module:
    n_in, n_out = in_out(input_spec, output_spec)
    return Mixer(n_in, n_out, tokens, dim, depth)


class CrossNet(nn.Module):
    """Deep & Cross Network (DCN-v2 style): `crosses` cross layers x0 * (W x + b) + x beside
    an MLP, concatenated into a Linear head."""

    def __init__(self, n_in: int, n_out: int, crosses: int, hidden: list[int],
                 act: str) -> None:
        super().__init__()
        self.crosses = nn.ModuleList(nn.Linear(n_in, n_in) for _ in range(crosses))
        layers: list[nn.Module] = []
        width = n_in
        for h in hidden:
            layers += [nn.Linear(width, h), ACTS[act]()]
            width = h
        self.deep = nn.Sequential(*layers)
        self.head = nn.Linear(n_in + width, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x
        for layer in self.crosses:
            c = x * layer(c) + c
        return self.head(torch.cat([c, self.deep(x)], dim=1))


def cross_net(input_spec: dict[str, Any], output_spec: dict[str, Any], *, crosses: int = 2,
              hidden: list[int] | None = None, act: str = "relu",
              init_gain: float | None = None, bias_init: float | None = None) -> nn.Module:
    n_in, n_out = in_out(input_spec, output_spec)
    model = CrossNet(n_in, n_out, crosses, hidden or [64, 64], act)
    scale(model.deep, init_gain, None)
    if bias_init is not None:
        with torch.no_grad():
            for m in model.deep:
                if isinstance(m, nn.Linear):
                    m.bias.fill_(bias_init)
    return model


class LSTMReader(nn.Module):
    """The features read as a sequence of `chunk`-wide steps by an LSTM; a Linear head on the
    last hidden state."""

    def __init__(self, n_in: int, n_out: int, chunk: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.chunk = chunk
        self.pad = (-n_in) % chunk
        self.lstm = nn.LSTM(chunk, hidden, layers, batch_first=True)
        self.head = nn.Linear(hidden, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = nn.functional.pad(x, (0, self.pad)).view(len(x), -1, self.chunk)
        out, _ = self.lstm(seq)
        return self.head(out[:, -1])


def lstm_reader(input_spec: dict[str, Any], output_spec: dict[str, Any], *, chunk: int = 4,
                hidden: int = 48, layers: int = 1) -> nn.Module:
    n_in, n_out = in_out(input_spec, output_spec)
    return LSTMReader(n_in, n_out, chunk, hidden, layers)


class Sine(nn.Module):
    def __init__(self, omega: float) -> None:
        super().__init__()
        self.omega = omega

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.omega * x)


def siren(input_spec: dict[str, Any], output_spec: dict[str, Any], *, hidden: int = 64,
          depth: int = 3, omega: float = 3.0) -> nn.Module:
    """SIREN: Linear + sin(omega x) layers with Sitzmann et al.'s init (first layer
    U(-1/n, 1/n), later U(-sqrt(6/n)/omega, +)), a Linear head."""
    n_in, n_out = in_out(input_spec, output_spec)
    layers: list[nn.Module] = []
    width = n_in
    for i in range(depth):
        lin = nn.Linear(width, hidden)
        bound = 1 / width if i == 0 else math.sqrt(6 / width) / omega
        with torch.no_grad():
            lin.weight.uniform_(-bound, bound)
        layers += [lin, Sine(omega)]
        width = hidden
    return nn.Sequential(*layers, nn.Linear(width, n_out))


def act_mlp(input_spec: dict[str, Any], output_spec: dict[str, Any], *,
            hidden: list[int] | None = None, act: str = "prelu", spectral: bool = False,
            dropout: float = 0.0, init_gain: float | None = None,
            bias_init: float | None = None) -> nn.Module:
    """An MLP with the unit `act` (PReLU, Softplus, Mish, CELU, ...), optionally spectrally
    normalised Linear layers (`torch.nn.utils.parametrizations.spectral_norm`)."""
    from torch.nn.utils.parametrizations import spectral_norm

    n_in, n_out = in_out(input_spec, output_spec)
    layers: list[nn.Module] = []
    width = n_in
    for h in hidden or [128, 64]:
        layers += [nn.Linear(width, h), ACTS[act](), nn.Dropout(dropout)]
        width = h
    model = nn.Sequential(*layers, nn.Linear(width, n_out))
    scale(model, init_gain, bias_init)
    if spectral:
        for m in model:
            if isinstance(m, nn.Linear):
                spectral_norm(m)
    return model


class BilinearNet(nn.Module):
    """A projection of the input, an `nn.Bilinear` of the projection with itself (pairwise
    interactions), a ReLU layer and a Linear head."""

    def __init__(self, n_in: int, n_out: int, dim: int, hidden: int) -> None:
        super().__init__()
        self.proj = nn.Linear(n_in, dim)
        self.bilinear = nn.Bilinear(dim, dim, hidden)
        self.body = nn.Sequential(nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.proj(x)
        return self.head(self.body(self.bilinear(p, p)))


def bilinear_net(input_spec: dict[str, Any], output_spec: dict[str, Any], *, dim: int = 16,
                 hidden: int = 64) -> nn.Module:
    n_in, n_out = in_out(input_spec, output_spec)
    return BilinearNet(n_in, n_out, dim, hidden)


class TCN(nn.Module):
    """The features as a 1-channel sequence; `levels` residual blocks of two dilated causal
    1-D convs (dilation 1, 2, 4, ...) with ReLU; the last position into a Linear head."""

    def __init__(self, n_in: int, n_out: int, channels: int, levels: int, kernel: int) -> None:
        super().__init__()
        self.kernel = kernel
        self.inp = nn.Conv1d(1, channels, 1)
        self.convs = nn.ModuleList()
        for i in range(levels):
            d = 2 ** i
            self.convs.append(nn.ModuleList([
                nn.Conv1d(channels, channels, kernel, dilation=d),
                nn.Conv1d(channels, channels, kernel, dilation=d)]))
        self.head = nn.Linear(channels, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x.unsqueeze(1))
        for i, (c1, c2) in enumerate(self.convs):
            pad = (self.kernel - 1) * 2 ** i
            y = torch.relu(c1(nn.functional.pad(h, (pad, 0))))
            y = torch.relu(c2(nn.functional.pad(y, (pad, 0))))
            h = h + y
        return self.head(h[:, :, -1])


def tcn(input_spec: dict[str, Any], output_spec: dict[str, Any], *, channels: int = 16,
        levels: int = 3, kernel: int = 3) -> nn.Module:
    n_in, n_out = in_out(input_spec, output_spec)
    return TCN(n_in, n_out, channels, levels, kernel)


def deep_stack(input_spec: dict[str, Any], output_spec: dict[str, Any], *, act: str = "sigmoid",
               depth: int = 12, width: int = 32, init_gain: float | None = None) -> nn.Module:
    """`depth` Linear layers each followed by `act` (softsign, hardsigmoid, sigmoid, tanh),
    weights times `init_gain`, a Linear head."""
    n_in, n_out = in_out(input_spec, output_spec)
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(n_in, width), ACTS[act]()]
        n_in = width
    return scale(nn.Sequential(*layers, nn.Linear(n_in, n_out)), init_gain, None)


# -- data: files shipped by installed packages -------------------------------------------------


@cache
def _scenes() -> tuple[np.ndarray, np.ndarray]:
    names = ("camera.png", "coins.png", "moon.png", "page.png", "text.png")
    return patches([image(skimage_file(n), grey=True) for n in names], 8, 300, 61)


def scenes() -> tuple[np.ndarray, np.ndarray]:
    """1500 8x8 grey patches (64 raw pixel features), 300 each from scikit-image's camera,
    coins, moon, page and text photographs; the class is the photograph."""
    return _scenes()


def scenes_noisy() -> tuple[np.ndarray, np.ndarray]:
    """scenes with 30 % of the labels replaced by a random class."""
    X, y = _scenes()
    return X, flip(y, 0.3, 5, 62)


def photos() -> tuple[np.ndarray, np.ndarray]:
    """1500 4x4 RGB patches (48 features, 0-255), 500 each from scikit-learn's china.jpg and
    flower.jpg and scikit-image's rocket.jpg; the class is the photograph."""
    imgs = [image(sklearn_image("china.jpg")), image(sklearn_image("flower.jpg")),
            image(skimage_file("rocket.jpg"))]
    return patches(imgs, 4, 500, 63)


@cache
def _stain() -> tuple[np.ndarray, np.ndarray]:
    from skimage.color import rgb2hed

    img = image(skimage_file("ihc.png"))
    dab = rgb2hed(img / 255.0)[..., 2]
    rng = np.random.default_rng(64)
    rows = rng.integers(1, img.shape[0] - 1, 2400)
    cols = rng.integers(1, img.shape[1] - 1, 2400)
    X = np.stack([img[r - 1:r + 2, c - 1:c + 2].ravel() for r, c in zip(rows, cols,
                                                                      strict=True)])
    y = (dab[rows, cols] > np.quantile(dab, 0.7)).astype(np.int64)
    return X.astype(np.float32), y


def stain() -> tuple[np.ndarray, np.ndarray]:
    """2400 random pixels of scikit-image's immunohistochemistry slide (ihc.png): the 3x3 RGB
    neighbourhood (27 features, 0-255); the class is whether the centre pixel's DAB stain (by
    colour deconvolution, `skimage.color.rgb2hed`) is in the slide's top 30 %."""
    return _stain()


def stain_noisy() -> tuple[np.ndarray, np.ndarray]:
    """stain with 30 % of the labels replaced by a random class."""
    X, y = _stain()
    return X, flip(y, 0.3, 2, 65)


def hubble() -> tuple[np.ndarray, np.ndarray]:
    """2000 random 7x7 grey patches (49 features) of scikit-image's Hubble deep field; the
    class is whether the patch's 3x3 centre holds a pixel in the image's brightest 2 %."""
    img = image(skimage_file("hubble_deep_field.jpg"), grey=True)
    bright = np.quantile(img, 0.98)
    rng = np.random.default_rng(66)
    X, y = [], []
    while len(y) < 2000:
        r = int(rng.integers(3, img.shape[0] - 3))
        c = int(rng.integers(3, img.shape[1] - 3))
        label = int(img[r - 1:r + 2, c - 1:c + 2].max() > bright)
        if label == 0 and sum(y) < len(y) / 2:  # keep the classes near balanced
            continue
        X.append(img[r - 3:r + 4, c - 3:c + 4].ravel())
        y.append(label)
    return np.stack(X).astype(np.float32), np.asarray(y, dtype=np.int64)


# -- data: regression in raw units -------------------------------------------------------------


@cache
def _goog() -> np.ndarray:
    with np.load(mpl_sample("goog.npz")) as d:
        return d["price_data"]


def goog_next() -> tuple[np.ndarray, np.ndarray]:
    """matplotlib's goog.npz (1047 trading days): the last 10 closes and the day's open, high,
    low (dollars) -> the next day's close in dollars (about 100-750)."""
    p = _goog()
    close = p["close"].astype(np.float32)
    rows, target = [], []
    for t in range(10, len(p) - 1):
        rows.append(np.r_[close[t - 10:t], p["open"][t], p["high"][t], p["low"][t]])
        target.append(close[t + 1])
    return np.asarray(rows, np.float32), np.asarray(target, np.float32)


def goog_volume() -> tuple[np.ndarray, np.ndarray]:
    """goog.npz: the day's range (high - low), |close - open|, the close, the previous 3 days'
    volumes (millions) -> the day's volume in shares (about 1e6 to 4e7)."""
    p = _goog()
    vol = p["volume"].astype(np.float64)
    rows, target = [], []
    for t in range(3, len(p)):
        rows.append(np.r_[p["high"][t] - p["low"][t], abs(p["close"][t] - p["open"][t]),
                          p["close"][t], vol[t - 3:t] / 1e6])
        target.append(vol[t])
    return np.asarray(rows, np.float32), np.asarray(target, np.float32)


@cache
def _eeg() -> np.ndarray:
    return np.fromfile(mpl_sample("eeg.dat"), dtype=np.float64).reshape(800, 4)


def eeg() -> tuple[np.ndarray, np.ndarray]:
    """matplotlib's eeg.dat (800 samples of 4 channels): channels 1-3 at samples t-4..t (15
    features) -> channel 4 at t, in the recording's own units."""
    e = _eeg()
    X = np.stack([e[t - 4:t + 1, :3].ravel() for t in range(4, len(e))])
    return X.astype(np.float32), e[4:, 3].astype(np.float32)


@cache
def _membrane() -> tuple[np.ndarray, np.ndarray]:
    trace = np.fromfile(mpl_sample("membrane.dat"), dtype=np.float32)
    rng = np.random.default_rng(67)
    starts = rng.integers(0, len(trace) - 24, 2400)
    X = np.stack([trace[s:s + 16] for s in starts])
    return X, trace[starts + 16 + 7]


def membrane() -> tuple[np.ndarray, np.ndarray]:
    """matplotlib's membrane.dat (a membrane-potential trace, 12000 samples): 16 consecutive
    samples -> the sample 8 steps after the last, in the trace's own units."""
    return _membrane()


def membrane_noisy() -> tuple[np.ndarray, np.ndarray]:
    """membrane with Gaussian noise of one target std added to the target and eight pure-noise
    features."""
    X, y = _membrane()
    rng = np.random.default_rng(68)
    noise = rng.normal(0, 1, (len(y), 8)).astype(np.float32)
    return (np.concatenate([X, noise], axis=1),
            y + rng.normal(0, float(y.std()), len(y)).astype(np.float32))


@cache
def _disparity() -> tuple[np.ndarray, np.ndarray]:
    with np.load(skimage_file("motorcycle_disp.npz")) as d:
        disp = d["arr_0"].astype(np.float32)
    left = image(skimage_file("motorcycle_left.png"), grey=True)
    rng = np.random.default_rng(69)
    rows = rng.integers(1, disp.shape[0] - 1, 2400)
    cols = rng.integers(1, disp.shape[1] - 1, 2400)
    keep = np.isfinite(disp[rows, cols])
    rows, cols = rows[keep], cols[keep]
    X = np.stack([np.r_[r, c, left[r - 1:r + 2, c - 1:c + 2].ravel()]
                  for r, c in zip(rows, cols, strict=True)])
    return X.astype(np.float32), disp[rows, cols]


def disparity() -> tuple[np.ndarray, np.ndarray]:
    """2400 random pixels of scikit-image's motorcycle stereo pair: (row, col) and the left
    image's 3x3 grey neighbourhood (11 features) -> the ground-truth disparity in pixels."""
    return _disparity()


def china_red() -> tuple[np.ndarray, np.ndarray]:
    """2400 random pixels of scikit-learn's china.jpg: the 3x3 neighbourhood's green and blue
    levels (18 features, 0-255) -> the centre pixel's red level (0-255)."""
    img = image(sklearn_image("china.jpg"))
    rng = np.random.default_rng(70)
    rows = rng.integers(1, img.shape[0] - 1, 2400)
    cols = rng.integers(1, img.shape[1] - 1, 2400)
    X = np.stack([img[r - 1:r + 2, c - 1:c + 2, 1:].ravel() for r, c in zip(rows, cols,
                                                                          strict=True)])
    return X.astype(np.float32), img[rows, cols, 0]
