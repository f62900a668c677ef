"""Model factories and data sources of `bench/heldout10.py` (held-out v10; not shipped).

Written with heldout10.py, before any rule change of the tenth pass, and never used to choose a
rule or a threshold. Used through mlt.yaml's `python:heldout10_factories:<fn>` hooks with
`bench/` as the project root (see `bench_factories.py` for the calling convention).

Nothing here is read by the earlier sets (`scenarios.py`, `heldout.py` .. `heldout9.py`, all
tuning material now):

* data the code writes from fixed seeds, each with a target of a shape the earlier sets hardly
  had: `lognorm` (a smooth function of 8 features, exponentiated: a log-normal, right-skewed
  raw target, 0.05-60), `spiky` (a smooth target with 2% of the rows gross outliers, +-4-8
  standard deviations), `counts` (Poisson counts whose log-rate is a smooth function:
  0-200, skewed), `tailnoise` (a smooth target plus Student-t noise with 2 degrees of freedom:
  heavy-tailed residuals no model can remove); classification on `hues` (random RGB colours
  -> which of six hue sectors, `colorsys`), `glyphs` (ten letters rendered with Pillow's
  built-in bitmap font at random offsets, with pixel noise, 12x12) and `tmix` (a mixture of
  five Gaussian-copula classes with Student-t (df 3) features: outliers in the inputs);
* data from installed packages: `pysizes`, every .py file of NumPy, SciPy and scikit-learn
  (counts of `def`, `class`, `import`, comments, docstrings, `self`, calls, blank lines ->
  the file's size in kilobytes, raw, heavy-tailed: 0-400+);
* noisy copies for overfitting;
* model families: a highway MLP (gated carry), a maxout MLP, a pre-norm residual MLP with
  RMSNorm, a bilinear net (`nn.Bilinear` on two projections), and `mlp10` (any unit, weights
  times a gain, hidden biases set).
"""

from __future__ import annotations

import colorsys
import re
import sys
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from heldout_common import ACTS, flip, in_out, scale, site
from torch import nn

# -- models ------------------------------------------------------------------------------------


class Highway(nn.Module):
    """y = t * act(W x) + (1 - t) * x, t = sigmoid(V x) (a highway layer; width kept)."""

    def __init__(self, width: int, act: str) -> None:
        super().__init__()
        self.h, self.t = nn.Linear(width, width), nn.Linear(width, width)
        self.act = ACTS[act]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = torch.sigmoid(self.t(x))
        return t * self.act(self.h(x)) + (1 - t) * x


def highway_mlp(input_spec: dict[str, Any], output_spec: dict[str, Any], *, width: int = 64,
                depth: int = 3, act: str = "relu", init_gain: float | None = None,
                bias_init: float | None = None) -> nn.Module:
    n_in, n_out = in_out(input_spec, output_spec)
    model = nn.Sequential(nn.Linear(n_in, width), ACTS[act](),
                          *[Highway(width, act) for _ in range(depth)], nn.Linear(width, n_out))
    return scale(model, init_gain, bias_init)


class Maxout(nn.Module):
    def __init__(self, n_in: int, width: int, pieces: int) -> None:
        super().__init__()
        self.lin, self.pieces = nn.Linear(n_in, width * pieces), pieces

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.lin(x)
        return z.view(*z.shape[:-1], -1, self.pieces).amax(dim=-1)


def maxout_mlp(input_spec: dict[str, Any], output_spec: dict[str, Any], *,
               hidden: list[int] | None = None, pieces: int = 3,
               init_gain: float | None = None) -> nn.Module:
    n_in, n_out = in_out(input_spec, output_spec)
    layers: list[nn.Module] = []
    for h in hidden or [64, 64]:
        layers.append(Maxout(n_in, h, pieces))
        n_in = h
    return scale(nn.Sequential(*layers, nn.Linear(n_in, n_out)), init_gain, None)


class PreNormBlock(nn.Module):
    def __init__(self, width: int, act: str) -> None:
        super().__init__()
        self.norm = nn.RMSNorm(width)
        self.fc1, self.fc2 = nn.Linear(width, 2 * width), nn.Linear(2 * width, width)
        self.act = ACTS[act]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(self.act(self.fc1(self.norm(x))))


def prenorm_mlp(input_spec: dict[str, Any], output_spec: dict[str, Any], *, width: int = 64,
                blocks: int = 2, act: str = "gelu") -> nn.Module:
    """A residual MLP whose blocks read their input through RMSNorm (pre-norm)."""
    n_in, n_out = in_out(input_spec, output_spec)
    return nn.Sequential(nn.Linear(n_in, width), *[PreNormBlock(width, act)
                                                   for _ in range(blocks)],
                         nn.RMSNorm(width), nn.Linear(width, n_out))


class BilinearNet(nn.Module):
    """Two projections of the input, combined by nn.Bilinear, then a small head."""

    def __init__(self, n_in: int, n_out: int, width: int, act: str) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(n_in, width), nn.Linear(n_in, width)
        self.bil = nn.Bilinear(width, width, width)
        self.act = ACTS[act]()
        self.head = nn.Linear(width, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.act(self.bil(self.act(self.a(x)), self.act(self.b(x)))))


def bilinear_net(input_spec: dict[str, Any], output_spec: dict[str, Any], *, width: int = 32,
                 act: str = "tanh") -> nn.Module:
    n_in, n_out = in_out(input_spec, output_spec)
    return BilinearNet(n_in, n_out, width, act)


def mlp10(input_spec: dict[str, Any], output_spec: dict[str, Any], *,
          hidden: list[int] | None = None, act: str = "relu", dropout: float = 0.0,
          init_gain: float | None = None, bias_init: float | None = None) -> nn.Module:
    """An MLP with the unit `act`, weights times `init_gain`, hidden biases `bias_init`."""
    n_in, n_out = in_out(input_spec, output_spec)
    layers: list[nn.Module] = []
    for h in hidden or [128, 64]:
        layers += [nn.Linear(n_in, h), ACTS[act](), nn.Dropout(dropout)]
        n_in = h
    return scale(nn.Sequential(*layers, nn.Linear(n_in, n_out)), init_gain, bias_init)


# -- data the code writes ----------------------------------------------------------------------


def _smooth(X: np.ndarray) -> np.ndarray:
    """A smooth, nonlinear function of the first six features (about -2..2)."""
    return (np.sin(2.0 * X[:, 0]) + 0.8 * X[:, 1] * X[:, 2] + 0.5 * np.cos(3.0 * X[:, 3])
            + 0.6 * X[:, 4] ** 2 - 0.4 * X[:, 5])


def _features(seed: int, n: int = 2400, d: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1.5, 1.5, (n, d)).astype(np.float32)


def lognorm() -> tuple[np.ndarray, np.ndarray]:
    """y = exp(0.9 f(X) + N(0, 0.15)): log-normal, right-skewed."""
    X = _features(1001)
    rng = np.random.default_rng(1002)
    y = np.exp(0.9 * _smooth(X) + rng.normal(0, 0.15, len(X)))
    return X, y.astype(np.float32)


def spiky() -> tuple[np.ndarray, np.ndarray]:
    """y = 3 f(X) + N(0, 0.2), then 2% of the rows moved by +-4-8 standard deviations."""
    X = _features(1003)
    rng = np.random.default_rng(1004)
    y = 3.0 * _smooth(X) + rng.normal(0, 0.2, len(X))
    out = rng.random(len(X)) < 0.02
    y[out] += rng.choice([-1.0, 1.0], out.sum()) * rng.uniform(4, 8, out.sum()) * y.std()
    return X, y.astype(np.float32)


def counts() -> tuple[np.ndarray, np.ndarray]:
    """Poisson counts with log-rate 1.2 f(X) + 1.5 (0 to about 200)."""
    X = _features(1005)
    rng = np.random.default_rng(1006)
    return X, rng.poisson(np.exp(1.2 * _smooth(X) + 1.5)).astype(np.float32)


def tailnoise() -> tuple[np.ndarray, np.ndarray]:
    """y = 2 f(X) + 0.3 t(2): heavy-tailed noise."""
    X = _features(1007)
    rng = np.random.default_rng(1008)
    return X, (2.0 * _smooth(X) + 0.3 * rng.standard_t(2, len(X))).astype(np.float32)


def _noisy_reg(X: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """300 rows, eight noise features, the target plus noise of its own spread."""
    rng = np.random.default_rng(seed)
    X, y = X[:300], y[:300]
    return (np.concatenate([X, rng.normal(0, 1, (300, 8)).astype(np.float32)], axis=1),
            (y + rng.normal(0, y.std(), 300)).astype(np.float32))


def lognorm_noisy() -> tuple[np.ndarray, np.ndarray]:
    return _noisy_reg(*lognorm(), 1009)


def counts_noisy() -> tuple[np.ndarray, np.ndarray]:
    return _noisy_reg(*counts(), 1010)


def hues() -> tuple[np.ndarray, np.ndarray]:
    """2400 random RGB colours (saturation at least 0.25) -> their hue sector (six)."""
    rng = np.random.default_rng(1011)
    X, y = [], []
    while len(y) < 2400:
        r, g, b = rng.random(3)
        h, s, v = colorsys.rgb_to_hsv(r, g, b)
        if s < 0.25 or v < 0.2:
            continue
        X.append([r, g, b])
        y.append(int(h * 6) % 6)
    return np.asarray(X, dtype=np.float32), np.asarray(y, dtype=np.int64)


def hues_noisy() -> tuple[np.ndarray, np.ndarray]:
    """500 colours, four noise features, 30% of the labels redrawn."""
    X, y = hues()
    rng = np.random.default_rng(1012)
    X = np.concatenate([X[:500], rng.random((500, 4)).astype(np.float32)], axis=1)
    return X, flip(y[:500], 0.3, 6, 1013)


_LETTERS = "AEHKMNRSWX"


@cache
def _glyphs() -> tuple[np.ndarray, np.ndarray]:
    """Ten letters drawn with Pillow's built-in bitmap font at random offsets in a 12x12
    picture, pixel noise added (flattened, 0-1)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    rng = np.random.default_rng(1014)
    X, y = [], []
    for _ in range(240):
        for label, ch in enumerate(_LETTERS):
            img = Image.new("L", (12, 12), 0)
            ImageDraw.Draw(img).text((int(rng.integers(0, 5)), int(rng.integers(-2, 2))), ch,
                                     fill=255, font=font)
            a = np.asarray(img, dtype=np.float32) / 255.0
            X.append((a + rng.normal(0, 0.2, a.shape)).ravel())
            y.append(label)
    return np.asarray(X, dtype=np.float32), np.asarray(y, dtype=np.int64)


def glyphs() -> tuple[np.ndarray, np.ndarray]:
    return _glyphs()


def glyphs_noisy() -> tuple[np.ndarray, np.ndarray]:
    """400 glyphs, 30% of the labels redrawn."""
    X, y = _glyphs()
    keep = np.random.default_rng(1015).permutation(len(y))[:400]
    return X[keep], flip(y[keep], 0.3, 10, 1016)


def tmix() -> tuple[np.ndarray, np.ndarray]:
    """Five classes, 12 features: class means on a random simplex, Student-t (df 3) noise."""
    rng = np.random.default_rng(1017)
    means = rng.normal(0, 1.2, (5, 12))
    y = rng.integers(0, 5, 2400)
    X = means[y] + rng.standard_t(3, (2400, 12))
    return X.astype(np.float32), y.astype(np.int64)


# -- data from installed packages --------------------------------------------------------------

_PATTERNS = (r"^\s*def ", r"^\s*class ", r"^\s*(import|from) ", r"^\s*#", r'"""', r"\bself\b",
             r"\w\(", r"^\s*$", r"\braise\b", r"\breturn\b", r"\bassert\b", r"@")


@cache
def _pysizes() -> tuple[np.ndarray, np.ndarray]:
    files: list[Path] = []
    for package in ("numpy", "scipy", "sklearn"):
        files += sorted(site(package).rglob("*.py"))
    X, y = [], []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if not text.strip():
            continue
        X.append([np.log1p(len(re.findall(p, text, flags=re.M))) for p in _PATTERNS])
        y.append(len(text.encode()) / 1024.0)
    return np.asarray(X, dtype=np.float32), np.asarray(y, dtype=np.float32)


def pysizes() -> tuple[np.ndarray, np.ndarray]:
    """.py files of NumPy, SciPy, scikit-learn: 12 log pattern counts -> size in KB (raw)."""
    X, y = _pysizes()
    keep = np.random.default_rng(1018).permutation(len(y))[:2400]
    return X[keep], y[keep]


if __name__ == "__main__":  # the sizes and target ranges, for the docstrings
    for fn in (lognorm, spiky, counts, tailnoise, pysizes, hues, glyphs, tmix, lognorm_noisy,
               counts_noisy, hues_noisy, glyphs_noisy):
        Xs, ys = fn()
        print(fn.__name__, Xs.shape, ys.dtype, float(ys.min()), float(ys.max()),
              np.bincount(ys).tolist() if ys.dtype == np.int64 else
              (round(float(ys.std()), 3), round(float(np.percentile(ys, 99) / np.median(ys)),
                                                1)), file=sys.stdout)
