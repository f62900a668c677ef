"""Model factories and data sources of `bench/heldout2.py` (held-out v2; not shipped).

Written with heldout2.py, before any rule change of issue 11's second pass, and never used to
choose a rule or a threshold. Used through mlt.yaml's `python:heldout2_factories:<fn>` hooks
with `bench/` as the project root (see `bench_factories.py` for the calling convention).

Nothing here is used by the tuning set (`scenarios.py`) or the old held-out set
(`heldout.py`): other scikit-learn generators (circles, blobs, Gaussian quantiles, Hastie
10.2, sparse-uncorrelated with a large offset, swiss roll and S-curve as regressions) and other
model families (a Linear-BatchNorm-ReLU stack, an hourglass with a narrow middle, a wide
shallow net, a tiny transformer over the features as tokens).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from heldout_common import ACTS, scale
from torch import nn

# -- models ------------------------------------------------------------------------------------


def bn_mlp(input_spec: dict[str, Any], output_spec: dict[str, Any], *,
           widths: list[int] | None = None, act: str = "relu") -> nn.Module:
    """Linear -> BatchNorm1d -> activation per width, then a Linear head."""
    layers: list[nn.Module] = []
    n_in = input_spec["n_features"]
    for width in widths or [128, 64]:
        layers += [nn.Linear(n_in, width), nn.BatchNorm1d(width), ACTS[act]()]
        n_in = width
    return nn.Sequential(*layers, nn.Linear(n_in, output_spec["n_outputs"]))


def hourglass(input_spec: dict[str, Any], output_spec: dict[str, Any], *,
              widths: list[int] | None = None, act: str = "silu",
              init_gain: float | None = None, bias_init: float | None = None) -> nn.Module:
    """A stack that narrows and widens again (default 128-32-8-32-128): `act` after every
    hidden Linear. `init_gain` multiplies every weight after the default init; `bias_init`
    sets every hidden bias."""
    layers: list[nn.Module] = []
    n_in = input_spec["n_features"]
    for width in widths or [128, 32, 8, 32, 128]:
        layers += [nn.Linear(n_in, width), ACTS[act]()]
        n_in = width
    model = nn.Sequential(*layers, nn.Linear(n_in, output_spec["n_outputs"]))
    scale(model, init_gain, bias_init)
    return model


def wide_shallow(input_spec: dict[str, Any], output_spec: dict[str, Any], *,
                 width: int = 1024, act: str = "relu", init_gain: float | None = None,
                 bias_init: float | None = None) -> nn.Module:
    """One very wide hidden layer."""
    model = nn.Sequential(nn.Linear(input_spec["n_features"], width), ACTS[act](),
                          nn.Linear(width, output_spec["n_outputs"]))
    scale(model, init_gain, bias_init)
    return model


def deep_sigmoid(input_spec: dict[str, Any], output_spec: dict[str, Any], *, depth: int = 10,
                 width: int = 12) -> nn.Module:
    """`depth` narrow sigmoid layers (default init): each scales the backward signal by at
    most 0.25 x |W|."""
    layers: list[nn.Module] = []
    n_in = input_spec["n_features"]
    for _ in range(depth):
        layers += [nn.Linear(n_in, width), nn.Sigmoid()]
        n_in = width
    return nn.Sequential(*layers, nn.Linear(n_in, output_spec["n_outputs"]))


class FeatureTokens(nn.Module):
    """A tiny transformer over the features: each feature is a token (its value times a learnt
    vector plus a learnt feature embedding), `layers` encoder layers (pre-norm, GELU), a mean
    pool and a Linear head."""

    def __init__(self, n_in: int, n_out: int, dim: int, heads: int, layers: int) -> None:
        super().__init__()
        self.value = nn.Parameter(torch.randn(n_in, dim) * 0.5)
        self.feature = nn.Parameter(torch.randn(n_in, dim) * 0.1)
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=2 * dim, dropout=0.0,
                                           activation="gelu", batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.unsqueeze(-1) * self.value + self.feature
        return self.head(self.norm(self.encoder(tokens).mean(dim=1)))


def feature_transformer(input_spec: dict[str, Any], output_spec: dict[str, Any], *,
                        dim: int = 16, heads: int = 2, layers: int = 1) -> nn.Module:
    return FeatureTokens(input_spec["n_features"], output_spec["n_outputs"], dim, heads, layers)


# -- data --------------------------------------------------------------------------------------


def circles() -> tuple[np.ndarray, np.ndarray]:
    """800 points on two noisy concentric circles (2 features, 2 classes)."""
    from sklearn.datasets import make_circles

    X, y = make_circles(n_samples=800, noise=0.1, factor=0.5, random_state=3)
    return X.astype(np.float32), y.astype(np.int64)


def circles_noisy() -> tuple[np.ndarray, np.ndarray]:
    """800 points on two heavily overlapping circles (noise 0.3): no model gets them all."""
    from sklearn.datasets import make_circles

    X, y = make_circles(n_samples=800, noise=0.3, factor=0.5, random_state=4)
    return X.astype(np.float32), y.astype(np.int64)


def blobs() -> tuple[np.ndarray, np.ndarray]:
    """900 rows, 10 features, 5 Gaussian blobs of spread 3 (they overlap some)."""
    from sklearn.datasets import make_blobs

    X, y = make_blobs(n_samples=900, n_features=10, centers=5, cluster_std=3.0,
                      random_state=5)
    return X.astype(np.float32), y.astype(np.int64)


def blobs_noisy_labels() -> tuple[np.ndarray, np.ndarray]:
    """The blobs with 25% of the labels replaced by a random class."""
    X, y = blobs()
    rng = np.random.default_rng(6)
    flip = rng.random(len(y)) < 0.25
    y = y.copy()
    y[flip] = rng.integers(0, 5, int(flip.sum()))
    return X, y


def quantiles() -> tuple[np.ndarray, np.ndarray]:
    """900 rows, 4 features, 3 classes as nested shells of a Gaussian (not linearly
    separable)."""
    from sklearn.datasets import make_gaussian_quantiles

    X, y = make_gaussian_quantiles(n_samples=900, n_features=4, n_classes=3, random_state=7)
    return X.astype(np.float32), y.astype(np.int64)


def hastie() -> tuple[np.ndarray, np.ndarray]:
    """Hastie et al. 10.2: 1000 rows, 10 Gaussian features, y = sum(x^2) > 9.34 (binary)."""
    from sklearn.datasets import make_hastie_10_2

    X, y = make_hastie_10_2(n_samples=1000, random_state=8)
    return X.astype(np.float32), (y > 0).astype(np.int64)


def sparse_offset() -> tuple[np.ndarray, np.ndarray]:
    """make_sparse_uncorrelated (800 rows, 10 features, 4 informative, noise sd 1) with 100
    added to the target: raw units with a large offset (mean 100, spread ~3.5: the trivial
    baseline's loss is ~1/800 of an untrained model's)."""
    from sklearn.datasets import make_sparse_uncorrelated

    X, y = make_sparse_uncorrelated(n_samples=800, n_features=10, random_state=9)
    return X.astype(np.float32), (y + 100.0).astype(np.float32)


def swissroll() -> tuple[np.ndarray, np.ndarray]:
    """The swiss roll as a regression: 800 points in 3-D, the target their position t along
    the roll (raw units, ~4.7-14.1)."""
    from sklearn.datasets import make_swiss_roll

    X, t = make_swiss_roll(n_samples=800, noise=0.3, random_state=10)
    return X.astype(np.float32), t.astype(np.float32)


def swissroll_noisy() -> tuple[np.ndarray, np.ndarray]:
    """The swiss roll with noise 2.0 on the points (the target is partly unpredictable)."""
    from sklearn.datasets import make_swiss_roll

    X, t = make_swiss_roll(n_samples=800, noise=2.0, random_state=11)
    return X.astype(np.float32), t.astype(np.float32)


def scurve() -> tuple[np.ndarray, np.ndarray]:
    """The S-curve as a regression: 800 points in 3-D, the target their position t along the
    curve (raw units, ~-4.7-4.7)."""
    from sklearn.datasets import make_s_curve

    X, t = make_s_curve(n_samples=800, noise=0.1, random_state=12)
    return X.astype(np.float32), t.astype(np.float32)
