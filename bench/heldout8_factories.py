"""Model factories and data sources of `bench/heldout8.py` (held-out v8; not shipped).

Written with heldout8.py, before any rule change of issue 11's eighth pass, and never used to
choose a rule or a threshold. Used through mlt.yaml's `python:heldout8_factories:<fn>` hooks
with `bench/` as the project root (see `bench_factories.py` for the calling convention).

Nothing here is read by the earlier sets (`scenarios.py`, `heldout.py` .. `heldout7.py`, all
tuning material now):

* data: Python's own Unicode database (`unicodedata`: a character's code point -> its general
  category), networkx's bundled graph atlas (`atlas.dat.gz`: all 1253 graphs of up to 7
  nodes; degree statistics -> bipartite or not, -> the number of triangles), matplotlib's
  colour-map tables (an RGB colour -> which map; -> its position along the map), scikit-image
  and matplotlib pictures no earlier set cut (motorcycle_right, logo, chessboard_RGB, matplotlib's
  Minduka present and logo2: a 6x6 patch -> which picture), matplotlib's `bivariate_normal.npy`
  grid (a coordinate -> the density); scikit-learn's bundled breast-cancer and wine tables
  read for a new task: a raw-unit regression of one column from others (mean cell area in
  square pixels; proline in mg/l); noisy copies for overfitting;
* regression targets in raw units: mean area (143-2501), proline (278-1680), a triangle count
  (0-35), a graph's spanning trees (0-16807, heavy-tailed), a colour's position along its map
  (0-255), a bivariate density (a difference of Gaussians, -1.7..1.4);
* model families: a ReZero residual net (residual branches scaled by a learned scalar from
  0), a Perceiver-style net (learned latents cross-attending to feature tokens), a
  spectral-normalised MLP, a grouped (ResNeXt-style) MLP, a cosine-similarity head (scaled,
  normalised logits), an Elman RNN reading the features as a sequence, a weight-standardised
  MLP, MLPs and deep stacks with RReLU/Tanhshrink/Softplus/SELU units.
"""

from __future__ import annotations

import gzip
import unicodedata
from functools import cache
from typing import Any

import numpy as np
import torch
from heldout_common import ACTS, flip, image, in_out, mpl_data, patches, scale, site, skimage_file
from torch import nn

_UNITS: dict[str, type[nn.Module]] = {**ACTS, "rrelu": nn.RReLU, "tanhshrink": nn.Tanhshrink}


# -- models ------------------------------------------------------------------------------------


class ReZeroBlock(nn.Module):
    def __init__(self, width: int, act: str) -> None:
        super().__init__()
        self.f = nn.Sequential(nn.Linear(width, width), _UNITS[act](), nn.Linear(width, width))
        self.alpha = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.alpha * self.f(x)


def rezero_net(input_spec: dict[str, Any], output_spec: dict[str, Any], *, width: int = 64,
               blocks: int = 3, act: str = "relu", init_gain: float | None = None,
               bias_init: float | None = None) -> nn.Module:
    """A residual net whose branches are scaled by a learned scalar starting at 0 (ReZero)."""
    n_in, n_out = in_out(input_spec, output_spec)
    model = nn.Sequential(nn.Linear(n_in, width), _UNITS[act](),
                          *[ReZeroBlock(width, act) for _ in range(blocks)],
                          nn.Linear(width, n_out))
    return scale(model, init_gain, bias_init)


class Perceiver(nn.Module):
    """Each feature a token (value x a learned embedding + a feature embedding); `latents`
    learned queries cross-attend to the tokens, a small MLP on the pooled latents."""

    def __init__(self, n_in: int, n_out: int, dim: int, latents: int, heads: int) -> None:
        super().__init__()
        self.value = nn.Parameter(torch.randn(n_in, dim) * 0.1)
        self.feature = nn.Parameter(torch.randn(n_in, dim) * 0.1)
        self.latents = nn.Parameter(torch.randn(latents, dim) * 0.1)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.unsqueeze(-1) * self.value + self.feature
        q = self.latents.expand(x.shape[0], -1, -1)
        out, _ = self.attn(q, tokens, tokens, need_weights=False)
        return self.head(self.norm(out + q).mean(dim=1))


def perceiver(input_spec: dict[str, Any], output_spec: dict[str, Any], *, dim: int = 32,
              latents: int = 4, heads: int = 4) -> nn.Module:
    n_in, n_out = in_out(input_spec, output_spec)
    return Perceiver(n_in, n_out, dim, latents, heads)


def specnorm_mlp(input_spec: dict[str, Any], output_spec: dict[str, Any], *,
                 hidden: list[int] | None = None, act: str = "relu") -> nn.Module:
    """An MLP whose hidden Linear layers are spectral-normalised (power iteration)."""
    from torch.nn.utils.parametrizations import spectral_norm

    n_in, n_out = in_out(input_spec, output_spec)
    layers: list[nn.Module] = []
    for h in hidden or [128, 64]:
        layers += [spectral_norm(nn.Linear(n_in, h)), _UNITS[act]()]
        n_in = h
    return nn.Sequential(*layers, nn.Linear(n_in, n_out))


class Grouped(nn.Module):
    """A Linear split into `groups` independent blocks (a grouped 1x1 convolution)."""

    def __init__(self, width: int, groups: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(width, width, 1, groups=groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x.unsqueeze(-1)).squeeze(-1)


def grouped_mlp(input_spec: dict[str, Any], output_spec: dict[str, Any], *, width: int = 128,
                groups: int = 8, blocks: int = 2, act: str = "relu") -> nn.Module:
    """ResNeXt-style: Linear to `width`, then `blocks` residual grouped layers, a head."""
    n_in, n_out = in_out(input_spec, output_spec)

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.f = nn.Sequential(Grouped(width, groups), _UNITS[act](),
                                   nn.Linear(width, width))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.f(x)

    return nn.Sequential(nn.Linear(n_in, width), _UNITS[act](),
                         *[Block() for _ in range(blocks)], nn.LayerNorm(width),
                         nn.Linear(width, n_out))


class CosineHead(nn.Module):
    """An MLP body; logits = s x cos(embedding, class weight) (NormFace)."""

    def __init__(self, n_in: int, n_out: int, hidden: int, s: float) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                                  nn.ReLU())
        self.weight = nn.Parameter(torch.randn(n_out, hidden) * 0.1)
        self.s = s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = nn.functional.normalize(self.body(x), dim=-1)
        return self.s * e @ nn.functional.normalize(self.weight, dim=-1).T


def cosine_head(input_spec: dict[str, Any], output_spec: dict[str, Any], *, hidden: int = 64,
                s: float = 10.0) -> nn.Module:
    n_in, n_out = in_out(input_spec, output_spec)
    return CosineHead(n_in, n_out, hidden, s)


class RNNReader(nn.Module):
    """An Elman RNN (tanh) reading the features `chunk` at a time; a Linear on the last state."""

    def __init__(self, n_in: int, n_out: int, chunk: int, hidden: int, layers: int,
                 init_gain: float | None) -> None:
        super().__init__()
        self.chunk = chunk
        self.steps = -(-n_in // chunk)
        self.pad = self.steps * chunk - n_in
        self.rnn = nn.RNN(chunk, hidden, num_layers=layers, batch_first=True)
        if init_gain is not None:
            with torch.no_grad():
                for name, p in self.rnn.named_parameters():
                    if name.startswith("weight"):
                        p.mul_(init_gain)
        self.head = nn.Linear(hidden, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.pad(x, (0, self.pad)).view(x.shape[0], self.steps, self.chunk)
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def rnn_reader(input_spec: dict[str, Any], output_spec: dict[str, Any], *, chunk: int = 3,
               hidden: int = 64, layers: int = 1, init_gain: float | None = None) -> nn.Module:
    n_in, n_out = in_out(input_spec, output_spec)
    return RNNReader(n_in, n_out, chunk, hidden, layers, init_gain)


class WSLinear(nn.Linear):
    """A Linear whose weight is standardised per output unit at every forward pass."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        w = (w - w.mean(dim=1, keepdim=True)) / (w.std(dim=1, keepdim=True) + 1e-5)
        return nn.functional.linear(x, w / w.shape[1] ** 0.5, self.bias)


def ws_mlp(input_spec: dict[str, Any], output_spec: dict[str, Any], *,
           hidden: list[int] | None = None, act: str = "silu") -> nn.Module:
    n_in, n_out = in_out(input_spec, output_spec)
    layers: list[nn.Module] = []
    for h in hidden or [128, 64]:
        layers += [WSLinear(n_in, h), _UNITS[act]()]
        n_in = h
    return nn.Sequential(*layers, nn.Linear(n_in, n_out))


def mlp8(input_spec: dict[str, Any], output_spec: dict[str, Any], *,
         hidden: list[int] | None = None, act: str = "rrelu", dropout: float = 0.0,
         init_gain: float | None = None, bias_init: float | None = None) -> nn.Module:
    """An MLP with the unit `act` (RReLU, Tanhshrink, Softplus, SELU, ...), weights times
    `init_gain`, hidden biases set to `bias_init`; `depth` equal widths via `hidden`."""
    n_in, n_out = in_out(input_spec, output_spec)
    layers: list[nn.Module] = []
    for h in hidden or [128, 64]:
        layers += [nn.Linear(n_in, h), _UNITS[act](), nn.Dropout(dropout)]
        n_in = h
    return scale(nn.Sequential(*layers, nn.Linear(n_in, n_out)), init_gain, bias_init)


# -- data: what installed packages ship --------------------------------------------------------


@cache
def _unicode() -> tuple[np.ndarray, np.ndarray]:
    """3000 assigned characters of the Basic Multilingual Plane below U+3000 (seeded draw):
    the 14 bits of the code point and its block (code point >> 7, scaled) -> the major
    general category (L upper, L lower, L other, M, N, P, S: 7 classes)."""
    rng = np.random.default_rng(81)
    majors = {"Lu": 0, "Ll": 1, "Lo": 2, "Lm": 2, "Lt": 2, "Mn": 3, "Mc": 3, "Me": 3,
              "Nd": 4, "Nl": 4, "No": 4, "Pc": 5, "Pd": 5, "Ps": 5, "Pe": 5, "Pi": 5,
              "Pf": 5, "Po": 5, "Sm": 6, "Sc": 6, "Sk": 6, "So": 6}
    cps = [c for c in range(0x20, 0x3000) if unicodedata.category(chr(c)) in majors]
    pick = rng.choice(cps, 3000, replace=False)
    bits = ((pick[:, None] >> np.arange(14)) & 1).astype(np.float32)
    block = (pick >> 7).astype(np.float32)[:, None] / 96.0
    X = np.concatenate([bits, block], axis=1)
    y = np.asarray([majors[unicodedata.category(chr(int(c)))] for c in pick], dtype=np.int64)
    return X, y


def unicat() -> tuple[np.ndarray, np.ndarray]:
    return _unicode()


@cache
def _atlas() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """networkx's graph atlas (every graph of 0-7 nodes, read from the shipped
    `atlas.dat.gz`); features: node and edge counts, the sorted degree sequence padded to 7,
    the number of degree-1 nodes, the sum of squared degrees; -> bipartite (0/1), triangles,
    spanning trees (Kirchhoff: 0 for a disconnected graph, up to 7^5 = 16807 for K7)."""
    import networkx as nx

    path = site("networkx") / "generators" / "atlas.dat.gz"
    with gzip.open(path, "rb") as fh:
        graphs = _read_atlas(fh)
    rows, bip, tri, trees = [], [], [], []
    for g in graphs:
        n, m = g.number_of_nodes(), g.number_of_edges()
        if n < 3:
            continue
        deg = sorted((d for _, d in g.degree()), reverse=True)
        rows.append([n, m, *(deg + [0] * (7 - len(deg))), sum(d == 1 for d in deg),
                     sum(d * d for d in deg)])
        bip.append(int(nx.is_bipartite(g)))
        tri.append(sum(nx.triangles(g).values()) // 3)
        lap = nx.laplacian_matrix(g, nodelist=sorted(g)).toarray().astype(np.float64)
        trees.append(round(float(np.linalg.det(lap[1:, 1:]))))  # Kirchhoff's theorem
    return (np.asarray(rows, dtype=np.float32), np.asarray(bip, dtype=np.int64),
            np.asarray(tri, dtype=np.float32), np.asarray(trees, dtype=np.float32))


def _read_atlas(fh: Any) -> list[Any]:
    """The atlas file's format (networkx.generators.atlas): 'GRAPH k', 'NODES n', then edges."""
    import networkx as nx

    graphs, g = [], None
    for raw in fh:
        line = raw.decode().strip()
        if line.startswith("GRAPH"):
            if g is not None:
                graphs.append(g)
            g = nx.Graph()
        elif line.startswith("NODES"):
            assert g is not None
            g.add_nodes_from(range(int(line.split()[1])))
        elif line:
            assert g is not None
            u, v = map(int, line.split())
            g.add_edge(u, v)
    if g is not None:
        graphs.append(g)
    return graphs


def atlas_bip() -> tuple[np.ndarray, np.ndarray]:
    X, y, _, _ = _atlas()
    return X, y


def atlas_bip_noisy() -> tuple[np.ndarray, np.ndarray]:
    X, y = atlas_bip()
    return X, flip(y, 0.3, 2, 82)


def atlas_tri() -> tuple[np.ndarray, np.ndarray]:
    X, _, t, _ = _atlas()
    return X, t


def atlas_trees() -> tuple[np.ndarray, np.ndarray]:
    """The number of spanning trees (raw, heavy-tailed: median ~60, max 16807)."""
    X, _, _, n = _atlas()
    return X, n


def atlas_trees_noisy() -> tuple[np.ndarray, np.ndarray]:
    """atlas_trees with eight pure-noise columns and the count times log-normal noise
    (sigma 0.5): a heavy-tailed target with heavy-tailed noise."""
    X, n = atlas_trees()
    rng = np.random.default_rng(91)
    noise = rng.normal(0, 1, (len(n), 8)).astype(np.float32)
    return (np.concatenate([X, noise], axis=1),
            (n * rng.lognormal(0, 0.5, len(n))).astype(np.float32))


_MAPS = ("viridis", "plasma", "inferno", "magma", "cividis", "twilight", "turbo")


@cache
def _colours() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each listed colour map's 256 RGB entries (matplotlib's own tables), jittered by
    N(0, 0.01) (seeded), two copies each: RGB -> the map, -> the position (0-255)."""
    import matplotlib

    rng = np.random.default_rng(83)
    X, y, pos = [], [], []
    for label, name in enumerate(_MAPS):
        rgb = np.asarray(matplotlib.colormaps[name].colors, dtype=np.float32)[:, :3]
        for _ in range(2):
            X.append(rgb + rng.normal(0, 0.01, rgb.shape).astype(np.float32))
            y.append(np.full(len(rgb), label))
            pos.append(np.arange(len(rgb), dtype=np.float32))
    return np.concatenate(X), np.concatenate(y).astype(np.int64), np.concatenate(pos)


def cmaps() -> tuple[np.ndarray, np.ndarray]:
    X, y, _ = _colours()
    return X, y


def cmaps_noisy() -> tuple[np.ndarray, np.ndarray]:
    X, y = cmaps()
    return X, flip(y, 0.3, len(_MAPS), 84)


def cmap_pos() -> tuple[np.ndarray, np.ndarray]:
    """The four perceptually uniform sequential maps only (each a monotone path): RGB and the
    map's one-hot -> the position along the map (0-255, raw units)."""
    X, y, pos = _colours()
    keep = y < 4
    onehot = np.eye(4, dtype=np.float32)[y[keep]]
    return np.concatenate([X[keep], onehot], axis=1), pos[keep]


@cache
def _pictures() -> tuple[np.ndarray, np.ndarray]:
    imgs = [image(skimage_file("motorcycle_right.png")), image(skimage_file("logo.png")),
            image(skimage_file("chessboard_RGB.png")),
            image(mpl_data("sample_data/Minduka_Present_Blue_Pack.png")),
            image(mpl_data("sample_data/logo2.png"))]
    return patches(imgs, 6, 500, 85)


def pictures() -> tuple[np.ndarray, np.ndarray]:
    return _pictures()


def pictures_noisy() -> tuple[np.ndarray, np.ndarray]:
    X, y = _pictures()
    rng = np.random.default_rng(86)
    keep = rng.choice(len(y), 800, replace=False)
    return X[keep], flip(y[keep], 0.3, 5, 87)


def _cancer_table() -> tuple[np.ndarray, list[str]]:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    return data.data.astype(np.float32), list(data.feature_names)


def cancer_area() -> tuple[np.ndarray, np.ndarray]:
    """Mean cell area (square pixels, raw) from the 21 columns that are not a radius, a
    perimeter or an area."""
    X, names = _cancer_table()
    target = names.index("mean area")
    keep = [i for i, n in enumerate(names) if not any(k in n for k in ("radius", "perimeter",
                                                                      "area"))]
    return X[:, keep], X[:, target]


def cancer_area_noisy() -> tuple[np.ndarray, np.ndarray]:
    """cancer_area's first 300 rows, 20 pure-noise columns added, the target with noise of
    half its spread."""
    X, y = cancer_area()
    rng = np.random.default_rng(88)
    X, y = X[:300], y[:300]
    noise = rng.normal(0, 1, (len(y), 20)).astype(np.float32)
    return (np.concatenate([X, noise], axis=1),
            (y + rng.normal(0, 0.5 * y.std(), len(y))).astype(np.float32))


def wine_proline() -> tuple[np.ndarray, np.ndarray]:
    """Proline (mg/l, raw) from wine's 12 other measurements (178 rows)."""
    from sklearn.datasets import load_wine

    data = load_wine()
    names = list(data.feature_names)
    target = names.index("proline")
    keep = [i for i in range(len(names)) if i != target]
    return data.data[:, keep].astype(np.float32), data.data[:, target].astype(np.float32)


@cache
def _bivariate() -> np.ndarray:
    return np.load(mpl_data("sample_data/axes_grid/bivariate_normal.npy")).astype(np.float32)


def bivariate() -> tuple[np.ndarray, np.ndarray]:
    """2000 random cells of matplotlib's bivariate-normal grid: (row, col) -> the density."""
    grid = _bivariate()
    rng = np.random.default_rng(89)
    rows = rng.integers(0, grid.shape[0], 2000)
    cols = rng.integers(0, grid.shape[1], 2000)
    return np.stack([rows, cols], axis=1).astype(np.float32), grid[rows, cols]


def bivariate_noisy() -> tuple[np.ndarray, np.ndarray]:
    """300 cells, the density with noise of its spread, four noise features."""
    X, y = bivariate()
    rng = np.random.default_rng(90)
    X, y = X[:300], y[:300]
    return (np.concatenate([X, rng.normal(0, 1, (300, 4)).astype(np.float32)], axis=1),
            (y + rng.normal(0, y.std(), 300)).astype(np.float32))
