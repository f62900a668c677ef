"""Model factories and data sources of `bench/heldout4.py` (held-out v4; not shipped).

Written with heldout4.py, before any rule change of issue 11's fourth pass, and never used to
choose a rule or a threshold. Used through mlt.yaml's `python:heldout4_factories:<fn>` hooks
with `bench/` as the project root (see `bench_factories.py` for the calling convention).

Nothing here is used by the earlier sets (`scenarios.py`, `heldout.py`, `heldout2.py`,
`heldout3.py`), all of which are tuning material now:

* data, generated here with numpy (no scikit-learn generator any earlier set used): a noisy
  3-bit parity (XOR) with noise features, five concentric rings, bag-of-words topic counts
  (4 topics, 60 words), a sine-wave class boundary, a 3-class imbalanced (70/22/8) mixture
  of correlated Gaussians, a wide (80-feature) sparse rule with an interaction; regression: an
  exponential-decay law, a piecewise-constant (step) target, a low-rank correlated linear
  target with heteroscedastic noise, the 2-D Ackley function, a target with Student-t noise, a
  seasonal sales series; noisy copies of three of them for overfitting;
* model families: a DenseNet-style MLP (each layer sees every earlier layer's output), a soft
  mixture of experts, random Fourier features under an MLP, an RBF network with learned
  centres, a highway network, a self-normalising SELU net, a GRU reading the features as a
  sequence, and a deep stack of a saturating activation (softsign/sigmoid/tanh) for
  vanishing gradients.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from heldout_common import ACTS, flip, scale
from torch import nn

# -- models ------------------------------------------------------------------------------------


class DenseMLP(nn.Module):
    """DenseNet-style MLP: layer i sees the input concatenated with every earlier layer's
    output (`growth` units each); a Linear head over all of them."""

    def __init__(self, n_in: int, n_out: int, layers: int, growth: int, act: str) -> None:
        super().__init__()
        self.layers = nn.ModuleList()
        width = n_in
        for _ in range(layers):
            self.layers.append(nn.Sequential(nn.Linear(width, growth), ACTS[act]()))
            width += growth
        self.head = nn.Linear(width, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for layer in self.layers:
            feats.append(layer(torch.cat(feats, dim=1)))
        return self.head(torch.cat(feats, dim=1))


def dense_mlp(input_spec: dict[str, Any], output_spec: dict[str, Any], *, layers: int = 4,
              growth: int = 32, act: str = "relu", init_gain: float | None = None,
              bias_init: float | None = None) -> nn.Module:
    model = DenseMLP(input_spec["n_features"], output_spec["n_outputs"], layers, growth, act)
    scale(model, init_gain, bias_init)
    return model


class MixtureOfExperts(nn.Module):
    """A softmax gate over `experts` small ReLU MLPs (one hidden layer of `width`), their
    outputs mixed by the gate's weights."""

    def __init__(self, n_in: int, n_out: int, experts: int, width: int, act: str) -> None:
        super().__init__()
        self.gate = nn.Linear(n_in, experts)
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Linear(n_in, width), ACTS[act](), nn.Linear(width, n_out))
            for _ in range(experts))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(self.gate(x), dim=1)  # (batch, experts)
        outs = torch.stack([e(x) for e in self.experts], dim=1)  # (batch, experts, out)
        return (weights.unsqueeze(-1) * outs).sum(dim=1)


def moe_mlp(input_spec: dict[str, Any], output_spec: dict[str, Any], *, experts: int = 4,
            width: int = 32, act: str = "relu", init_gain: float | None = None) -> nn.Module:
    model = MixtureOfExperts(input_spec["n_features"], output_spec["n_outputs"], experts,
                             width, act)
    scale(model, init_gain, None)
    return model


class FourierMLP(nn.Module):
    """Fixed random Fourier features (cos and sin of x B, B ~ N(0, sigma^2), a buffer seeded
    by the run's torch seed) under a ReLU MLP."""

    def __init__(self, n_in: int, n_out: int, features: int, sigma: float,
                 hidden: list[int]) -> None:
        super().__init__()
        self.register_buffer("proj", torch.randn(n_in, features) * sigma)
        layers: list[nn.Module] = []
        width = 2 * features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.mlp = nn.Sequential(*layers, nn.Linear(width, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x @ self.proj
        return self.mlp(torch.cat([torch.cos(z), torch.sin(z)], dim=1))


def fourier_mlp(input_spec: dict[str, Any], output_spec: dict[str, Any], *, features: int = 64,
                sigma: float = 1.0, hidden: list[int] | None = None,
                bias_init: float | None = None) -> nn.Module:
    model = FourierMLP(input_spec["n_features"], output_spec["n_outputs"], features, sigma,
                       hidden or [64])
    scale(model, None, bias_init)
    return model


class RBFNet(nn.Module):
    """Gaussian radial basis units with learned centres and log-widths, then a Linear head."""

    def __init__(self, n_in: int, n_out: int, centres: int) -> None:
        super().__init__()
        self.centres = nn.Parameter(torch.randn(centres, n_in))
        self.log_width = nn.Parameter(torch.zeros(centres))
        self.head = nn.Linear(centres, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d2 = torch.cdist(x, self.centres).pow(2)
        return self.head(torch.exp(-d2 * torch.exp(-2 * self.log_width) / 2))


def rbf_net(input_spec: dict[str, Any], output_spec: dict[str, Any], *,
            centres: int = 64) -> nn.Module:
    return RBFNet(input_spec["n_features"], output_spec["n_outputs"], centres)


class Highway(nn.Module):
    """An input projection, `layers` highway layers (y = T * H(x) + (1 - T) * x, the gate T
    a sigmoid with its bias at `carry_bias`), a Linear head."""

    def __init__(self, n_in: int, n_out: int, width: int, layers: int, act: str,
                 carry_bias: float) -> None:
        super().__init__()
        self.inp = nn.Linear(n_in, width)
        self.h = nn.ModuleList(nn.Linear(width, width) for _ in range(layers))
        self.t = nn.ModuleList(nn.Linear(width, width) for _ in range(layers))
        with torch.no_grad():
            for t in self.t:
                t.bias.fill_(carry_bias)
        self.act = ACTS[act]()
        self.head = nn.Linear(width, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.inp(x))
        for h, t in zip(self.h, self.t, strict=True):
            gate = torch.sigmoid(t(x))
            x = gate * self.act(h(x)) + (1 - gate) * x
        return self.head(x)


def highway(input_spec: dict[str, Any], output_spec: dict[str, Any], *, width: int = 64,
            layers: int = 4, act: str = "relu", carry_bias: float = -1.0,
            init_gain: float | None = None) -> nn.Module:
    model = Highway(input_spec["n_features"], output_spec["n_outputs"], width, layers, act,
                    carry_bias)
    scale(model, init_gain, None)
    return model


def selu_net(input_spec: dict[str, Any], output_spec: dict[str, Any], *, depth: int = 4,
             width: int = 64, alpha_dropout: float = 0.0,
             init_gain: float | None = None, bias_init: float | None = None) -> nn.Module:
    """A self-normalising net: Linear (LeCun normal init) -> SELU [-> AlphaDropout] per layer."""
    layers: list[nn.Module] = []
    n_in = input_spec["n_features"]
    for _ in range(depth):
        linear = nn.Linear(n_in, width)
        nn.init.normal_(linear.weight, 0.0, 1.0 / math.sqrt(n_in))
        nn.init.zeros_(linear.bias)
        layers += [linear, nn.SELU()]
        if alpha_dropout:
            layers.append(nn.AlphaDropout(alpha_dropout))
        n_in = width
    model = nn.Sequential(*layers, nn.Linear(n_in, output_spec["n_outputs"]))
    scale(model, init_gain, bias_init)
    return model


class GRUReader(nn.Module):
    """The features read one at a time as a sequence (each a 1-D input, plus a learned
    position embedding) by a GRU; its last hidden state through a Linear head."""

    def __init__(self, n_in: int, n_out: int, hidden: int) -> None:
        super().__init__()
        self.pos = nn.Parameter(torch.zeros(n_in, 4))
        self.gru = nn.GRU(5, hidden, batch_first=True)
        self.head = nn.Linear(hidden, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = torch.cat([x.unsqueeze(-1), self.pos.expand(x.shape[0], -1, -1)], dim=-1)
        _, last = self.gru(seq)
        return self.head(last[-1])


def gru_reader(input_spec: dict[str, Any], output_spec: dict[str, Any], *,
               hidden: int = 32) -> nn.Module:
    return GRUReader(input_spec["n_features"], output_spec["n_outputs"], hidden)


def saturating_stack(input_spec: dict[str, Any], output_spec: dict[str, Any], *,
                     act: str = "softsign", depth: int = 10, width: int = 32,
                     init_gain: float | None = None) -> nn.Module:
    """`depth` layers of a saturating activation (softsign, sigmoid, tanh), each weight
    times `init_gain` when given."""
    layers: list[nn.Module] = []
    n_in = input_spec["n_features"]
    for _ in range(depth):
        layers += [nn.Linear(n_in, width), ACTS[act]()]
        n_in = width
    model = nn.Sequential(*layers, nn.Linear(n_in, output_spec["n_outputs"]))
    scale(model, init_gain, None)
    return model


# -- data: classification ----------------------------------------------------------------------


def parity() -> tuple[np.ndarray, np.ndarray]:
    """3-bit parity: 1200 rows, 8 features; the first three are +-1 plus noise 0.35, the label
    the parity of their signs (XOR of three bits); five pure-noise features."""
    rng = np.random.default_rng(61)
    n = 1200
    bits = rng.integers(0, 2, (n, 3))
    X = np.concatenate([(2 * bits - 1) + rng.normal(0, 0.35, (n, 3)),
                        rng.normal(0, 1, (n, 5))], axis=1)
    y = bits.sum(axis=1) % 2
    return X.astype(np.float32), y.astype(np.int64)


def parity_noisy() -> tuple[np.ndarray, np.ndarray]:
    """parity with 25 % of the labels replaced by a random class."""
    X, y = parity()
    return X, flip(y, 0.25, 2, 62)


def rings() -> tuple[np.ndarray, np.ndarray]:
    """Five concentric rings (radii 1..5, noise 0.25) in 2-D, two noise features: 1250 rows,
    one class per ring."""
    rng = np.random.default_rng(63)
    y = np.repeat(np.arange(5), 250)
    r = (y + 1.0) + rng.normal(0, 0.25, len(y))
    angle = rng.uniform(0, 2 * np.pi, len(y))
    X = np.stack([r * np.cos(angle), r * np.sin(angle),
                  rng.normal(0, 1, len(y)), rng.normal(0, 1, len(y))], axis=1)
    return X.astype(np.float32), y.astype(np.int64)


def rings_noisy() -> tuple[np.ndarray, np.ndarray]:
    """rings with 30 % of the labels replaced by a random class."""
    X, y = rings()
    return X, flip(y, 0.3, 5, 64)


def topics() -> tuple[np.ndarray, np.ndarray]:
    """Bag-of-words counts: 1000 documents of 15-40 words over a 60-word vocabulary, each from
    one of 4 topics (a Dirichlet word distribution per topic, mixed 25/75 with a shared
    background); the label is the topic."""
    rng = np.random.default_rng(65)
    vocab, k, n = 60, 4, 1000
    topic_words = rng.dirichlet(np.full(vocab, 0.3), k)
    background = rng.dirichlet(np.full(vocab, 1.0))
    y = rng.integers(0, k, n)
    lengths = rng.integers(15, 41, n)
    X = np.stack([rng.multinomial(lengths[i], 0.25 * topic_words[y[i]] + 0.75 * background)
                  for i in range(n)])
    return X.astype(np.float32), y.astype(np.int64)


def topics_noisy() -> tuple[np.ndarray, np.ndarray]:
    """topics with 30 % of the labels replaced by a random class."""
    X, y = topics()
    return X, flip(y, 0.3, 4, 66)


def wave() -> tuple[np.ndarray, np.ndarray]:
    """1000 rows: x0 on [-3, 3], x1 on [-2, 2], three noise features; class 1 above the curve
    x1 = 1.2 sin(2 x0), 4 % of the labels flipped."""
    rng = np.random.default_rng(67)
    n = 1000
    x0 = rng.uniform(-3, 3, n)
    x1 = rng.uniform(-2, 2, n)
    y = (x1 > 1.2 * np.sin(2 * x0)).astype(np.int64)
    y = np.where(rng.random(n) < 0.04, 1 - y, y)
    X = np.concatenate([np.stack([x0, x1], axis=1), rng.normal(0, 1, (n, 3))], axis=1)
    return X.astype(np.float32), y


def skewed3() -> tuple[np.ndarray, np.ndarray]:
    """Three classes at 70/22/8 % (1200 rows), each a Gaussian with its own full covariance in
    10 dimensions, means 1.6 apart."""
    rng = np.random.default_rng(68)
    sizes = [840, 264, 96]
    parts, labels = [], []
    for c, size in enumerate(sizes):
        mean = rng.normal(0, 1, 10)
        mean *= 1.6 / np.linalg.norm(mean) * (c + 1) * 0.7
        a = rng.normal(0, 0.45, (10, 10))
        parts.append(rng.multivariate_normal(mean, a @ a.T + 0.3 * np.eye(10), size))
        labels.append(np.full(size, c))
    X, y = np.concatenate(parts), np.concatenate(labels)
    order = rng.permutation(len(y))
    return X[order].astype(np.float32), y[order].astype(np.int64)


def wide() -> tuple[np.ndarray, np.ndarray]:
    """1000 rows, 80 Gaussian features; class 1 where x.w + 0.8 x0 x1 > 0 for a sparse w (6
    non-zero weights), 5 % of the labels flipped."""
    rng = np.random.default_rng(69)
    n = 1000
    X = rng.normal(0, 1, (n, 80))
    w = np.zeros(80)
    w[[0, 1, 5, 17, 40, 63]] = [1.0, -0.8, 0.7, 0.6, -0.5, 0.5]
    y = (X @ w + 0.8 * X[:, 0] * X[:, 1] > 0).astype(np.int64)
    y = np.where(rng.random(n) < 0.05, 1 - y, y)
    return X.astype(np.float32), y


# -- data: regression --------------------------------------------------------------------------


def decay() -> tuple[np.ndarray, np.ndarray]:
    """An exponential-decay law: 1000 rows of amplitude A on [1, 10], rate k on [0.1, 1], time
    t on [0, 5], offset c on [0, 2] and two noise features; y = A exp(-k t) + c + noise 0.2."""
    rng = np.random.default_rng(70)
    n = 1000
    a, k = rng.uniform(1, 10, n), rng.uniform(0.1, 1.0, n)
    t, c = rng.uniform(0, 5, n), rng.uniform(0, 2, n)
    y = a * np.exp(-k * t) + c + rng.normal(0, 0.2, n)
    X = np.stack([a, k, t, c, rng.normal(0, 1, n), rng.normal(0, 1, n)], axis=1)
    return X.astype(np.float32), y.astype(np.float32)


def steps() -> tuple[np.ndarray, np.ndarray]:
    """A piecewise-constant target: 1000 rows, 6 uniform features on [0, 1]; y = floor(4 x0)
    + 1.5 [x1 > 0.5] - [x2 > 0.7] + noise 0.15."""
    rng = np.random.default_rng(71)
    X = rng.uniform(0, 1, (1000, 6))
    y = (np.floor(4 * X[:, 0]) + 1.5 * (X[:, 1] > 0.5) - (X[:, 2] > 0.7)
         + rng.normal(0, 0.15, 1000))
    return X.astype(np.float32), y.astype(np.float32)


def steps_noisy() -> tuple[np.ndarray, np.ndarray]:
    """steps with noise of sd 1.2 added to the target."""
    X, y = steps()
    rng = np.random.default_rng(72)
    return X, (y + rng.normal(0, 1.2, len(y))).astype(np.float32)


def lowrank() -> tuple[np.ndarray, np.ndarray]:
    """30 correlated features of rank ~5 (plus noise 0.1), 1000 rows; a linear target with
    heteroscedastic noise (sd growing with |x0|) and a mean of 50."""
    rng = np.random.default_rng(73)
    n = 1000
    X = rng.normal(0, 1, (n, 5)) @ rng.normal(0, 1, (5, 30)) + rng.normal(0, 0.1, (n, 30))
    w = rng.normal(0, 1, 30)
    signal = X @ w
    y = 50 + signal + rng.normal(0, 1, n) * (0.2 + 0.15 * np.abs(X[:, 0])) * signal.std() / 5
    return X.astype(np.float32), y.astype(np.float32)


def ackley() -> tuple[np.ndarray, np.ndarray]:
    """The 2-D Ackley function on [-2, 2]^2 (a bowl covered in ripples) + noise 0.1, two noise
    features: 1200 rows."""
    rng = np.random.default_rng(74)
    n = 1200
    x = rng.uniform(-2, 2, (n, 2))
    r = np.sqrt(0.5 * (x ** 2).sum(axis=1))
    c = 0.5 * np.cos(2 * np.pi * x).sum(axis=1)
    y = -20 * np.exp(-0.2 * r) - np.exp(c) + 20 + np.e + rng.normal(0, 0.1, n)
    X = np.concatenate([x, rng.normal(0, 1, (n, 2))], axis=1)
    return X.astype(np.float32), y.astype(np.float32)


def heavytail() -> tuple[np.ndarray, np.ndarray]:
    """1000 rows, 5 Gaussian features; y = 2 x0 + x1^2 - x2 x3 + Student-t noise (3 degrees of
    freedom, scale 0.5): occasional large residuals."""
    rng = np.random.default_rng(75)
    X = rng.normal(0, 1, (1000, 5))
    y = 2 * X[:, 0] + X[:, 1] ** 2 - X[:, 2] * X[:, 3] + 0.5 * rng.standard_t(3, 1000)
    return X.astype(np.float32), y.astype(np.float32)


def seasonal() -> tuple[np.ndarray, np.ndarray]:
    """Daily sales over two years (730 rows): day index, weekday, promotion flag, price,
    temperature; y = 200 + 0.1 day + 40 sin(2 pi day / 365) + 25 promo - 8 price + a weekend
    bump + noise 6."""
    rng = np.random.default_rng(76)
    day = np.arange(730, dtype=float)
    weekday = day % 7
    promo = (rng.random(730) < 0.2).astype(float)
    price = rng.uniform(5, 15, 730)
    temp = 15 + 10 * np.sin(2 * np.pi * (day - 100) / 365) + rng.normal(0, 3, 730)
    y = (200 + 0.1 * day + 40 * np.sin(2 * np.pi * day / 365) + 25 * promo - 8 * price
         + 15 * (weekday >= 5) + rng.normal(0, 6, 730))
    X = np.stack([day, weekday, promo, price, temp], axis=1)
    return X.astype(np.float32), y.astype(np.float32)
