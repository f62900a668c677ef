"""Model factories and data sources of `bench/heldout9.py` (held-out v9; not shipped).

Written with heldout9.py, before any rule change of issue 11's ninth pass, and never used to
choose a rule or a threshold. Used through mlt.yaml's `python:heldout9_factories:<fn>` hooks
with `bench/` as the project root (see `bench_factories.py` for the calling convention).

Nothing here is read by the earlier sets (`scenarios.py`, `heldout.py` .. `heldout8.py`, all
tuning material now):

* data: Pygments' builtin-name tables of six languages (PHP, Cocoa, OpenEdge ABL, LilyPond,
  Csound, MQL: a name -> its language), Python's own
  documentation topics (`pydoc_data.topics`: a 12-word window of a topic's text -> which of
  six topics), Python's standard-library source tokenised (`tokenize`: a token's text ->
  keyword, name, number, string, operator), scikit-image's `color.png` and
  its gray chessboard and its animated GIF's frames, and matplotlib's toolbar
  icons (a 5x5 patch -> which picture); regression on reference tables that SciPy ships for
  its own tests (Boost's non-central beta and non-central chi-square CDF tables, its
  incomplete beta for integer parameters) and on the standard library's functions (`ast`: a
  function's statement counts -> its length in lines, heavy-tailed); noisy copies for
  overfitting;
* regression targets in raw units: CDFs and an incomplete beta (0-1), a line count (1-249);
* model families: a FiLM net (half the features modulate the other half's hidden units), a
  squeeze-and-excitation MLP, a stack of WaveNet-style gated tanh units, a weight-normalised
  MLP through `parametrizations.weight_norm`, a U-shaped MLP (an hourglass with skip
  connections), a multi-head ensemble MLP (heads averaged), MLPs and deep stacks with CELU/
  Hardswish/Mish/ReLU6/Softsign/LogSigmoid/Hardsigmoid units.
"""

from __future__ import annotations

import ast
import importlib
import io
import itertools
import re
import sys
import sysconfig
import tokenize
import zlib
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from heldout_common import ACTS, flip, image, in_out, mpl_data, patches, scale, site, skimage_file
from torch import nn

_UNITS: dict[str, type[nn.Module]] = dict(ACTS)


# -- models ------------------------------------------------------------------------------------


class FiLM(nn.Module):
    """The first half of the features pass through an MLP whose hidden units are scaled and
    shifted (gamma, beta) by a net reading the second half (feature-wise linear modulation)."""

    def __init__(self, n_in: int, n_out: int, width: int, act: str) -> None:
        super().__init__()
        self.split = max(1, n_in // 2)
        self.body1 = nn.Linear(self.split, width)
        self.cond = nn.Sequential(nn.Linear(n_in - self.split, width), _UNITS[act](),
                                  nn.Linear(width, 2 * width))
        self.body2 = nn.Linear(width, width)
        self.act = _UNITS[act]()
        self.head = nn.Linear(width, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x[:, :self.split], x[:, self.split:]
        gamma, beta = self.cond(b).chunk(2, dim=-1)
        h = self.act(self.body1(a) * (1 + gamma) + beta)
        return self.head(self.act(self.body2(h)))


def film_net(input_spec: dict[str, Any], output_spec: dict[str, Any], *, width: int = 64,
             act: str = "relu", init_gain: float | None = None,
             bias_init: float | None = None) -> nn.Module:
    n_in, n_out = in_out(input_spec, output_spec)
    return scale(FiLM(n_in, n_out, width, act), init_gain, bias_init)


class SEBlock(nn.Module):
    """A Linear layer whose units are gated by a squeeze-and-excitation bottleneck."""

    def __init__(self, n_in: int, width: int, act: str, reduction: int) -> None:
        super().__init__()
        self.fc = nn.Linear(n_in, width)
        self.act = _UNITS[act]()
        self.gate = nn.Sequential(nn.Linear(width, max(2, width // reduction)), nn.ReLU(),
                                  nn.Linear(max(2, width // reduction), width), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.fc(x))
        return h * self.gate(h)


def se_mlp(input_spec: dict[str, Any], output_spec: dict[str, Any], *,
           hidden: list[int] | None = None, act: str = "relu", reduction: int = 8,
           bias_init: float | None = None) -> nn.Module:
    n_in, n_out = in_out(input_spec, output_spec)
    layers: list[nn.Module] = []
    for h in hidden or [128, 64]:
        layers.append(SEBlock(n_in, h, act, reduction))
        n_in = h
    model = nn.Sequential(*layers, nn.Linear(n_in, n_out))
    if bias_init is not None:
        with torch.no_grad():
            for block in layers:
                block.fc.bias.fill_(bias_init)  # type: ignore[union-attr]
    return model


class GatedTanh(nn.Module):
    """A WaveNet-style gated unit: tanh(W x) * sigmoid(V x)."""

    def __init__(self, n_in: int, width: int) -> None:
        super().__init__()
        self.value, self.gate = nn.Linear(n_in, width), nn.Linear(n_in, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.value(x)) * torch.sigmoid(self.gate(x))


def gated_mlp(input_spec: dict[str, Any], output_spec: dict[str, Any], *,
              hidden: list[int] | None = None, init_gain: float | None = None) -> nn.Module:
    """A stack of gated tanh units (WaveNet's gated activation) and a Linear head."""
    n_in, n_out = in_out(input_spec, output_spec)
    layers: list[nn.Module] = []
    for h in hidden or [128, 64]:
        layers.append(GatedTanh(n_in, h))
        n_in = h
    return scale(nn.Sequential(*layers, nn.Linear(n_in, n_out)), init_gain, None)


def wn_mlp(input_spec: dict[str, Any], output_spec: dict[str, Any], *,
           hidden: list[int] | None = None, act: str = "mish",
           init_gain: float | None = None) -> nn.Module:
    """An MLP whose hidden Linear weights are weight-normalised (parametrizations.weight_norm:
    a magnitude and a direction per unit); `init_gain` scales the magnitudes."""
    from torch.nn.utils.parametrizations import weight_norm

    n_in, n_out = in_out(input_spec, output_spec)
    layers: list[nn.Module] = []
    for h in hidden or [128, 64]:
        lin = weight_norm(nn.Linear(n_in, h))
        if init_gain is not None:
            with torch.no_grad():
                lin.parametrizations.weight.original0.mul_(init_gain)
        layers += [lin, _UNITS[act]()]
        n_in = h
    return nn.Sequential(*layers, nn.Linear(n_in, n_out))


class UMLP(nn.Module):
    """An hourglass MLP (width, width/2, width/4, width/2, width) whose expanding layers add
    the matching contracting layer's output (U-Net skips)."""

    def __init__(self, n_in: int, n_out: int, width: int, act: str) -> None:
        super().__init__()
        w = [width, width // 2, width // 4]
        self.inp = nn.Linear(n_in, w[0])
        self.down1, self.down2 = nn.Linear(w[0], w[1]), nn.Linear(w[1], w[2])
        self.up2, self.up1 = nn.Linear(w[2], w[1]), nn.Linear(w[1], w[0])
        self.act = _UNITS[act]()
        self.head = nn.Linear(w[0], n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h0 = self.act(self.inp(x))
        h1 = self.act(self.down1(h0))
        h2 = self.act(self.down2(h1))
        u1 = self.act(self.up2(h2)) + h1
        u0 = self.act(self.up1(u1)) + h0
        return self.head(u0)


def u_mlp(input_spec: dict[str, Any], output_spec: dict[str, Any], *, width: int = 128,
          act: str = "celu") -> nn.Module:
    n_in, n_out = in_out(input_spec, output_spec)
    return UMLP(n_in, n_out, width, act)


class Ensemble(nn.Module):
    """A shared trunk, `heads` small heads, their outputs averaged."""

    def __init__(self, n_in: int, n_out: int, width: int, heads: int, act: str) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(n_in, width), _UNITS[act]())
        self.heads = nn.ModuleList(nn.Sequential(nn.Linear(width, width // 2), _UNITS[act](),
                                                 nn.Linear(width // 2, n_out))
                                   for _ in range(heads))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.trunk(x)
        return torch.stack([head(h) for head in self.heads]).mean(dim=0)


def ensemble_mlp(input_spec: dict[str, Any], output_spec: dict[str, Any], *, width: int = 96,
                 heads: int = 4, act: str = "hardswish") -> nn.Module:
    n_in, n_out = in_out(input_spec, output_spec)
    return Ensemble(n_in, n_out, width, heads, act)


def mlp9(input_spec: dict[str, Any], output_spec: dict[str, Any], *,
         hidden: list[int] | None = None, act: str = "celu", dropout: float = 0.0,
         init_gain: float | None = None, bias_init: float | None = None) -> nn.Module:
    """An MLP with the unit `act`, weights times `init_gain`, hidden biases `bias_init`."""
    n_in, n_out = in_out(input_spec, output_spec)
    layers: list[nn.Module] = []
    for h in hidden or [128, 64]:
        layers += [nn.Linear(n_in, h), _UNITS[act](), nn.Dropout(dropout)]
        n_in = h
    return scale(nn.Sequential(*layers, nn.Linear(n_in, n_out)), init_gain, bias_init)


# -- data: what installed packages ship --------------------------------------------------------

_LANGS = ("php", "cocoa", "openedge", "lilypond", "csound", "mql")


def _strings(value: Any) -> list[str]:
    """Every string in a (nested) builtins table of Pygments."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _strings(k) + _strings(v)]
    if isinstance(value, (list, tuple, set, frozenset)):
        return [s for v in value for s in _strings(v)]
    return []


def _name_features(name: str, bigrams: bool = True) -> list[float]:
    """A name's letters (26 frequencies), its length, shares of digits, underscores, upper
    case, dots/colons/other, first and last character classes, and (`bigrams`) 24 hashed
    bigrams."""
    low = name.lower()
    n = max(1, len(name))
    letters = [low.count(chr(97 + i)) / n for i in range(26)]
    kinds = [sum(c.isdigit() for c in name) / n, name.count("_") / n,
             sum(c.isupper() for c in name) / n, sum(c in ".:" for c in name) / n,
             sum(not c.isalnum() and c not in "_.:" for c in name) / n,
             float(name[:1].isupper()), float(name[:1] == "_"), float(name[-1:].isdigit())]
    pairs = [0.0] * 24
    for a, b in itertools.pairwise(low):
        pairs[zlib.crc32((a + b).encode()) % 24] += 1.0 / n
    return [*letters, min(len(name), 40) / 20.0, *kinds, *(pairs if bigrams else [])]


@cache
def _langs() -> tuple[np.ndarray, np.ndarray]:
    """700 distinct builtin names (seeded draw) of each of six languages from Pygments' lexer
    tables (PHP, Cocoa, OpenEdge ABL, LilyPond, Csound, MQL) -> the language; the name's
    letters and character classes, no bigrams (35 features)."""
    rng = np.random.default_rng(91)
    seen: set[str] = set()
    X, y = [], []
    for label, lang in enumerate(_LANGS):
        mod = importlib.import_module(f"pygments.lexers._{lang}_builtins")
        names = sorted({s for k, v in vars(mod).items() if not k.startswith("_")
                        for s in _strings(v) if 2 <= len(s) <= 40 and " " not in s} - seen)
        seen.update(names)
        for i in rng.permutation(len(names))[:700]:
            X.append(_name_features(names[i], bigrams=False))
            y.append(label)
    return np.asarray(X, dtype=np.float32), np.asarray(y, dtype=np.int64)


def langs() -> tuple[np.ndarray, np.ndarray]:
    return _langs()


def langs_noisy() -> tuple[np.ndarray, np.ndarray]:
    X, y = _langs()
    rng = np.random.default_rng(92)
    keep = rng.choice(len(y), 1000, replace=False)
    return X[keep], flip(y[keep], 0.3, len(_LANGS), 93)


_TOPICS = ("compound", "specialnames", "types", "string-methods", "debugger", "formatstrings")


@cache
def _pydoc() -> tuple[np.ndarray, np.ndarray]:
    """Python's documentation topics (`pydoc_data.topics`): 12-word windows (stride 6) of six
    topics, as 96 hashed word counts plus 16 hashed word-suffix counts -> the topic (up to 400
    windows a topic, seeded)."""
    from pydoc_data.topics import topics

    rng = np.random.default_rng(94)
    X, y = [], []
    for label, name in enumerate(_TOPICS):
        words = re.findall(r"[a-z_]+", topics[name].lower())
        starts = list(range(0, max(1, len(words) - 12), 6))
        for s in rng.permutation(starts)[:400]:
            row = np.zeros(112, dtype=np.float32)
            for w in words[s:s + 12]:
                row[zlib.crc32(w.encode()) % 96] += 1.0
                row[96 + zlib.crc32(w[-3:].encode()) % 16] += 1.0
            X.append(row)
            y.append(label)
    return np.stack(X), np.asarray(y, dtype=np.int64)


def pydoc() -> tuple[np.ndarray, np.ndarray]:
    return _pydoc()


def pydoc_noisy() -> tuple[np.ndarray, np.ndarray]:
    X, y = _pydoc()
    rng = np.random.default_rng(95)
    keep = rng.choice(len(y), 700, replace=False)
    return X[keep], flip(y[keep], 0.3, len(_TOPICS), 96)


def _stdlib_files() -> list[Path]:
    lib = Path(sysconfig.get_paths()["stdlib"])
    names = ("json", "email", "http", "logging", "unittest", "xml", "asyncio", "importlib")
    files = [p for n in names for p in sorted((lib / n).rglob("*.py")) if "test" not in p.name]
    return files + [lib / f for f in ("argparse.py", "textwrap.py", "difflib.py",
                                      "calendar.py", "statistics.py", "fractions.py")]


@cache
def _tokens() -> tuple[np.ndarray, np.ndarray]:
    """Distinct tokens of Python's standard library (tokenize) -> keyword (0), other name
    (1), number (2), string (3), operator (4); 500 of each kind (seeded), the string's text
    cut to 24 characters."""
    import keyword

    rng = np.random.default_rng(97)
    found: list[set[str]] = [set() for _ in range(5)]
    for path in _stdlib_files():
        try:
            toks = list(tokenize.generate_tokens(io.StringIO(path.read_text()).readline))
        except (SyntaxError, tokenize.TokenError, UnicodeDecodeError):
            continue
        for t in toks:
            text = t.string[:24]
            if t.type == tokenize.NAME:
                found[0 if keyword.iskeyword(text) or keyword.issoftkeyword(text) else 1].add(text)
            elif t.type == tokenize.NUMBER:
                found[2].add(text)
            elif t.type == tokenize.STRING:
                found[3].add(text)
            elif t.type == tokenize.OP:
                found[4].add(text)
    X, y = [], []
    for label, texts in enumerate(found):
        ordered = sorted(texts)
        pick = rng.permutation(len(ordered))[:500]
        for i in pick:
            X.append(_name_features(ordered[i]))
            y.append(label)
    return np.asarray(X, dtype=np.float32), np.asarray(y, dtype=np.int64)


def tokens() -> tuple[np.ndarray, np.ndarray]:
    return _tokens()


@cache
def _pics() -> tuple[np.ndarray, np.ndarray]:
    """5x5 patches of four pictures no earlier set cut: scikit-image's color.png (halved),
    chessboard_GRAY.png (as RGB), the 24 frames of no_time_for_that_tiny.gif side by side,
    and matplotlib's toolbar icons (its *_large.png icons side by side) -> which picture."""
    from PIL import Image, ImageSequence

    with Image.open(skimage_file("no_time_for_that_tiny.gif")) as gif:
        frames = np.concatenate([np.asarray(f.convert("RGB"), dtype=np.float32)
                                 for f in ImageSequence.Iterator(gif)], axis=1)
    icons = sorted((mpl_data("images")).glob("*_large.png"))
    sheet = np.concatenate([image(p) for p in icons], axis=1)
    imgs = [image(skimage_file("color.png"), scale_by=0.5),
            image(skimage_file("chessboard_GRAY.png")), frames, sheet]
    return patches(imgs, 5, 550, 98)


def pics() -> tuple[np.ndarray, np.ndarray]:
    return _pics()


def pics_noisy() -> tuple[np.ndarray, np.ndarray]:
    X, y = _pics()
    rng = np.random.default_rng(99)
    keep = rng.choice(len(y), 700, replace=False)
    return X[keep], flip(y[keep], 0.3, 4, 100)


def _boost(key: str) -> np.ndarray:
    return np.load(site("scipy") / "special" / "tests" / "data" / "boost.npz")[key]


@cache
def _ncbeta() -> tuple[np.ndarray, np.ndarray]:
    """Boost's non-central beta table (SciPy's test data): log a, log b, log(1 + lambda), x ->
    the CDF (0-1, raw); 3000 rows."""
    t = _boost("ncbeta_ipp-ncbeta").astype(np.float64)
    X = np.stack([np.log(t[:, 0]), np.log(t[:, 1]), np.log1p(t[:, 2]), t[:, 3]], axis=1)
    return X.astype(np.float32), t[:, 4].astype(np.float32)


def ncbeta() -> tuple[np.ndarray, np.ndarray]:
    return _ncbeta()


def ncbeta_noisy() -> tuple[np.ndarray, np.ndarray]:
    """ncbeta's 300 first rows of a seeded draw, six noise features, the CDF with noise of
    half its spread."""
    X, y = _ncbeta()
    rng = np.random.default_rng(101)
    keep = rng.choice(len(y), 300, replace=False)
    X, y = X[keep], y[keep]
    return (np.concatenate([X, rng.normal(0, 1, (300, 6)).astype(np.float32)], axis=1),
            (y + rng.normal(0, 0.5 * y.std(), 300)).astype(np.float32))


@cache
def _nccs() -> tuple[np.ndarray, np.ndarray]:
    """Boost's non-central chi-square table: log k, log(1 + lambda), log(1 + x) -> the CDF
    (0-1, raw); 3200 rows."""
    t = _boost("nccs_ipp-nccs").astype(np.float64)
    X = np.stack([np.log(t[:, 0]), np.log1p(t[:, 1]), np.log1p(t[:, 2])], axis=1)
    return X.astype(np.float32), t[:, 3].astype(np.float32)


def nccs() -> tuple[np.ndarray, np.ndarray]:
    return _nccs()


@cache
def _ibeta() -> tuple[np.ndarray, np.ndarray]:
    """Boost's incomplete-beta table for integer parameters (SciPy's test data): log a, log b,
    x -> the regularised incomplete beta I_x(a, b) (0-1, raw); 1000 rows."""
    t = _boost("ibeta_int_data_ipp-ibeta_int_data").astype(np.float64)
    X = np.stack([np.log(t[:, 0]), np.log(t[:, 1]), t[:, 2]], axis=1)
    return X.astype(np.float32), t[:, 5].astype(np.float32)


def ibeta() -> tuple[np.ndarray, np.ndarray]:
    return _ibeta()


@cache
def _funcs() -> tuple[np.ndarray, np.ndarray]:
    """Every function of the standard-library files `_stdlib_files` (ast): counts of its
    statements by kind (12), of calls, names, attributes, constants, arguments, its nesting
    depth, docstring or not -> its length in lines (raw, heavy-tailed)."""
    kinds = (ast.Assign, ast.AugAssign, ast.Return, ast.If, ast.For, ast.While, ast.Try,
             ast.With, ast.Raise, ast.Expr, ast.FunctionDef, ast.Yield)
    X, y = [], []
    for path in _stdlib_files():
        try:
            tree = ast.parse(path.read_text())
        except (SyntaxError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            inner = list(ast.walk(node))[1:]
            counts = [sum(isinstance(n, k) for n in inner) for k in kinds]
            depth = max((getattr(n, "col_offset", 0) for n in inner), default=0) / 4.0
            X.append([*counts, sum(isinstance(n, ast.Call) for n in inner),
                      sum(isinstance(n, ast.Name) for n in inner),
                      sum(isinstance(n, ast.Attribute) for n in inner),
                      sum(isinstance(n, ast.Constant) for n in inner),
                      len(node.args.args), depth, float(ast.get_docstring(node) is not None)])
            y.append((node.end_lineno or node.lineno) - node.lineno + 1)
    return np.asarray(X, dtype=np.float32), np.asarray(y, dtype=np.float32)


def funcs() -> tuple[np.ndarray, np.ndarray]:
    X, y = _funcs()
    rng = np.random.default_rng(102)
    keep = rng.permutation(len(y))[:2500]
    return np.log1p(X[keep]), y[keep]


def funcs_noisy() -> tuple[np.ndarray, np.ndarray]:
    """300 functions, eight noise features, the line count times log-normal noise (0.5)."""
    X, y = funcs()
    rng = np.random.default_rng(103)
    X, y = X[:300], y[:300]
    return (np.concatenate([X, rng.normal(0, 1, (300, 8)).astype(np.float32)], axis=1),
            (y * rng.lognormal(0, 0.5, 300)).astype(np.float32))


if __name__ == "__main__":  # the sizes and target ranges, for the docstrings
    for fn in (langs, pydoc, tokens, pics, ncbeta, nccs, ibeta, funcs, langs_noisy,
               pydoc_noisy, pics_noisy, ncbeta_noisy, funcs_noisy):
        Xs, ys = fn()
        print(fn.__name__, Xs.shape, ys.dtype, float(ys.min()), float(ys.max()),
              np.bincount(ys).tolist() if ys.dtype == np.int64 else round(float(ys.std()), 4),
              file=sys.stdout)
