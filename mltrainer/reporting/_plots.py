"""The report's figures, drawn with matplotlib's Agg canvas into PNG bytes.

matplotlib is imported here only, and this module is imported only while a report renders, so
`mlt status` and `mlt --help` never pay for it. No pyplot: a `Figure` on a `FigureCanvasAgg`
touches no global backend state. The PNGs carry no timestamp or software tag, so the same
numbers give the same bytes.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from mltrainer.numbers import as_float
from mltrainer.reporting._curves import Marker, RunCurves

DPI = 110  # 9.6 in wide → ~1050 px: sharp at the report's 960 px column, small as base64
WIDE = (9.6, 3.5)  # inches
MAX_POINTS = 1500  # per-step series beyond this are reduced to a min/max envelope

COLORS = {
    "train": "#4C72B0", "val": "#DD8452", "metric": "#2A9D8F", "lr": "#8172B3",
    "grad": "#4C72B0", "step": "#9DB4D8", "goal": "#2E7D32", "trivial": "#888888",
    "clip": "#C0392B", "best": "#B8860B", "stop": "#555555",
    "critical": "#C0392B", "warning": "#E67E22", "info": "#2980B9",
}
_LINESTYLE = {"best": "--", "stop": ":", "critical": "-", "warning": "-", "info": "-"}
_RC: dict[str, Any] = {
    "font.family": "DejaVu Sans", "font.size": 10, "axes.titlesize": 11,
    "axes.titlelocation": "left", "axes.labelsize": 10, "axes.spines.top": False,
    "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.35, "grid.linewidth": 0.6,
    "legend.fontsize": 9, "legend.frameon": False, "lines.linewidth": 1.6,
    "lines.markersize": 4, "xtick.labelsize": 9, "ytick.labelsize": 9,
    "figure.facecolor": "white", "savefig.facecolor": "white", "path.simplify": True,
}
# Findings of the same severity share a colour; their lines differ by dash pattern.
_DASHES: tuple[Any, ...] = ("-", "-.", (0, (5, 1.5, 1, 1.5, 1, 1.5)), (0, (1.5, 1.2)))


def _figure(size: tuple[float, float] = WIDE) -> Figure:
    fig = Figure(figsize=size, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def _finite(values: Sequence[float]) -> list[float]:
    return [v for v in values if math.isfinite(v)]


def _envelope(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """At most ~MAX_POINTS points that keep every spike: the min and max of each bucket."""
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(xs) <= MAX_POINTS:
        return xs, ys
    out_x, out_y = [], []
    for bx, by in zip(np.array_split(xs, MAX_POINTS // 2), np.array_split(ys, MAX_POINTS // 2),
                      strict=True):
        ok = np.isfinite(by)
        if not ok.any():
            continue
        lo, hi = np.argmin(np.where(ok, by, np.inf)), np.argmax(np.where(ok, by, -np.inf))
        for i in sorted({int(lo), int(hi)}):
            out_x.append(bx[i])
            out_y.append(by[i])
    return np.asarray(out_x), np.asarray(out_y)


def _scale(ax: Any, main: Sequence[float], noisy: Sequence[float] = (), *, ratio: float = 50.0,
           keep_max: bool = False) -> None:
    """Log or linear y, with limits from the `main` series and the 10th-98th percentile of the
    `noisy` one, so that a few near-zero batches do not squash the curves (`keep_max`: spikes
    above stay in view, for gradient norms)."""
    values = _finite(main)
    extra = np.asarray(_finite(noisy), dtype=float)
    if extra.size:
        values += [float(np.percentile(extra, 10)),
                   float(extra.max() if keep_max else np.percentile(extra, 98))]
    if not values:
        return
    lo, hi = min(values), max(values)
    if lo > 0 and hi / lo > ratio:
        ax.set_yscale("log")
        ax.set_ylim(lo / 1.4, hi * 1.4)
    elif hi > lo:
        pad = 0.06 * (hi - lo)
        ax.set_ylim(max(lo - pad, 0.0) if lo >= 0 else lo - pad, hi + pad)


def _markers(ax: Any, markers: Sequence[Marker], labelled: bool) -> None:
    seen: dict[str, int] = {}
    for m in markers:
        style: Any = _LINESTYLE[m.kind]
        if m.kind in ("critical", "warning", "info"):
            style = _DASHES[seen.get(m.kind, 0) % len(_DASHES)]
            seen[m.kind] = seen.get(m.kind, 0) + 1
        ax.axvline(m.x, color=COLORS[m.kind], linestyle=style, linewidth=1.3,
                   alpha=0.9, label=m.label if labelled else None, zorder=1)


def _legend(fig: Figure, axes: Sequence[Any]) -> None:
    handles: dict[str, Any] = {}
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, h)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="outside lower center",
                   ncol=min(len(handles), 4))


def _epoch_axis(ax: Any, c: RunCurves) -> None:
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    right = max(c.epochs[-1] if c.epochs else 1.0, c.step_x[-1] if c.step_x else 0.0)
    ax.set_xlim(0.0 if c.step_x else 0.7, right + (0.15 if c.step_x else 0.3))


def training_curves(c: RunCurves) -> bytes:
    """Loss (train per step, train and val per epoch) and the val metric, with the run's markers:
    best epoch, where it stopped, each finding's onset."""
    metric_ok = bool(_finite(c.val_metric))
    with rc_context(_RC):
        fig = _figure()
        axes = fig.subplots(1, 2 if metric_ok else 1, squeeze=False)[0]
        loss = axes[0]
        if c.step_x:
            sx, sy = _envelope(c.step_x, c.step_loss)
            loss.plot(sx, sy, color=COLORS["step"], linewidth=0.8, alpha=0.7,
                      label="train loss (per step)")
        loss.plot(c.epochs, c.train_loss, "o-", color=COLORS["train"], label="train loss")
        loss.plot(c.epochs, c.val_loss, "o-", color=COLORS["val"], label="val loss")
        _scale(loss, [*c.train_loss, *c.val_loss], c.step_loss)
        loss.set_title(c.loss_title)
        _epoch_axis(loss, c)
        _markers(loss, c.markers, labelled=True)
        if metric_ok:
            _metric_panel(axes[1], c)
        _legend(fig, axes)
        return _png(fig)


def _metric_panel(ax: Any, c: RunCurves) -> None:
    name = c.metric or "metric"
    if _finite(c.train_metric):
        ax.plot(c.epochs, c.train_metric, "o-", color=COLORS["train"], alpha=0.6,
                label=f"train {name}")
    ax.plot(c.epochs, c.val_metric, "o-", color=COLORS["metric"], label=f"val {name}")
    best = next((m for m in c.markers if m.kind == "best"), None)
    if best is not None and best.x in c.epochs:
        v = c.val_metric[c.epochs.index(best.x)]
        ax.plot([best.x], [v], marker="*", markersize=13, color=COLORS["best"],
                markeredgecolor="white", zorder=5, linestyle="none")
    shown = _finite(c.val_metric) + _finite(c.train_metric)
    lo, hi = min(shown), max(shown)
    if c.goal is not None and math.isfinite(c.goal):
        ax.axhline(c.goal, color=COLORS["goal"], linestyle="--", linewidth=1.1,
                   label=f"goal {c.goal:g}")
        lo, hi = min(lo, c.goal), max(hi, c.goal)
    span = max(hi - lo, 1e-9)
    if c.trivial is not None and lo - span <= c.trivial <= hi + span:
        ax.axhline(c.trivial, color=COLORS["trivial"], linestyle=":", linewidth=1.1,
                   label=f"trivial baseline {c.trivial:.3g}")
    split = "train and val" if _finite(c.train_metric) else "val"
    ax.set_title(f"{split} {name} ({'higher' if c.greater_is_better else 'lower'} is better)")
    _epoch_axis(ax, c)
    _markers(ax, c.markers, labelled=False)


def optimizer_curves(c: RunCurves) -> bytes | None:
    """Learning rate, and the gradient norm before clipping against the clipping threshold."""
    lr_x, lr_y = (c.step_x, c.step_lr) if _finite(c.step_lr) else (c.epochs, c.epoch_lr)
    has_lr, has_grad = bool(_finite(lr_y)), bool(_finite(c.step_grad))
    if not (has_lr or has_grad):
        return None
    with rc_context(_RC):
        fig = _figure()
        axes = list(fig.subplots(1, int(has_lr) + int(has_grad), squeeze=False)[0])
        if has_lr:
            ax = axes[0]
            ax.plot(*_envelope(lr_x, lr_y), color=COLORS["lr"], label="learning rate")
            finite = _finite(lr_y)
            if max(finite) == min(finite):
                ax.set_ylim(0.0, 1.5 * max(finite) or 1.0)
                ax.set_title(f"Learning rate (constant {finite[0]:.3g})")
            else:
                _scale(ax, lr_y, ratio=1000.0)
                ax.set_title("Learning rate")
            _epoch_axis(ax, c)
            _markers(ax, c.markers, labelled=True)
        if has_grad:
            _grad_panel(axes[-1], c, labelled=not has_lr)
        _legend(fig, axes)
        return _png(fig)


def _grad_panel(ax: Any, c: RunCurves, labelled: bool) -> None:
    # steps without a measured norm (NaN: a sampled stream, see mltrainer.stream) are left
    # out, or the line would break at every gap and nothing be drawn between samples
    kept = [(x, y) for x, y in zip(c.step_x, c.step_grad, strict=True) if not math.isnan(y)]
    gx, gy = _envelope([x for x, _ in kept], [y for _, y in kept])
    ax.plot(gx, gy, color=COLORS["grad"], linewidth=0.9, label="gradient norm (before clipping)")
    _scale(ax, [c.grad_clip] if c.grad_clip else [], c.step_grad, ratio=30.0, keep_max=True)
    title = "Gradient norm per step"
    if c.grad_clip is not None:
        ax.axhline(c.grad_clip, color=COLORS["clip"], linestyle="--", linewidth=1.1,
                   label=f"clipping threshold {c.grad_clip:g}")
        finite = _finite(c.step_grad)
        clipped = sum(v > c.grad_clip for v in finite) / max(len(finite), 1)
        title += f" ({clipped:.0%} of steps clipped)"
    ax.set_title(title)
    _epoch_axis(ax, c)
    _markers(ax, c.markers, labelled=labelled)


def class_balance(counts: dict[str, dict[str, int]], max_classes: int = 30) -> bytes | None:
    """Each class's share of each split: stratification and imbalance at a glance."""
    splits = [s for s in ("train", "val", "test") if counts.get(s)]
    classes = sorted({k for s in splits for k in counts[s]}, key=_natural)
    if not splits or not 1 < len(classes) <= max_classes:
        return None
    with rc_context(_RC):
        fig = _figure((9.6, 3.0))
        ax = fig.subplots()
        width = 0.8 / len(splits)
        x = np.arange(len(classes))
        colors = {"train": COLORS["train"], "val": COLORS["val"], "test": COLORS["metric"]}
        for i, s in enumerate(splits):
            total = sum(counts[s].values()) or 1
            shares = [100.0 * counts[s].get(k, 0) / total for k in classes]
            ax.bar(x + (i - (len(splits) - 1) / 2) * width, shares, width, color=colors[s],
                   label=f"{s} ({total} rows)")
        ax.set_xticks(x, [_short(k) for k in classes])
        ax.set_ylabel("% of split")
        ax.set_xlabel("class")
        ax.set_title("Class balance per split")
        fig.legend(loc="outside lower center", ncol=len(splits))
        return _png(fig)


def trial_history(trials: Sequence[dict[str, Any]], greater_is_better: bool, metric: str
                  ) -> bytes | None:
    """Every Optuna trial's value, the best so far, and where trials were pruned or failed."""
    done = [(int(t["number"]), num) for t in trials
            if str(t.get("state", "")).upper() == "COMPLETE"
            and math.isfinite(num := as_float(t.get("value")))]
    if not done:
        return None
    with rc_context(_RC):
        fig = _figure((9.6, 3.4))
        ax = fig.subplots()
        xs, ys = zip(*sorted(done))
        ax.plot(xs, ys, "o", color=COLORS["metric"], label="complete trial")
        best, running = [], None
        for y in ys:
            better = running is None or (y > running if greater_is_better else y < running)
            running = y if better else running
            best.append(running)
        ax.step(xs, best, where="post", color=COLORS["best"], linewidth=1.4, label="best so far")
        floor = min(ys)
        for state, marker, color in (("PRUNED", "v", COLORS["trivial"]),
                                     ("FAIL", "x", COLORS["critical"])):
            # A pruned trial shows its last reported value; a failed one sits on the floor.
            rows = [(int(t["number"]), as_float(t.get("value"))) for t in trials
                    if str(t.get("state", "")).upper() == state]
            if rows:
                ax.plot([n for n, _ in rows], [v if math.isfinite(v) else floor for _, v in rows],
                        marker, color=color, linestyle="none",
                        label=f"{state.lower()} ({len(rows)})")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("trial")
        ax.set_title(f"Optuna trials: val {metric} "
                     f"({'higher' if greater_is_better else 'lower'} is better)")
        fig.legend(loc="outside lower center", ncol=4)
        return _png(fig)


def importances(values: dict[str, Any]) -> bytes | None:
    """Hyperparameter importances as horizontal bars, most important on top."""
    items = sorted(((k, as_float(v)) for k, v in values.items()), key=lambda kv: kv[1])
    items = [(k, v) for k, v in items if math.isfinite(v)]
    if not items:
        return None
    with rc_context(_RC):
        fig = _figure((9.6, 0.9 + 0.32 * len(items)))
        ax = fig.subplots()
        ax.barh([_short(k, 40) for k, _ in items], [v for _, v in items], color=COLORS["lr"])
        for i, (_, v) in enumerate(items):
            ax.text(v, i, f" {v:.2f}", va="center", fontsize=8)
        ax.set_xlabel("importance")
        ax.set_title("Hyperparameter importance")
        ax.grid(axis="y", visible=False)
        return _png(fig)


def confusion(matrix: Sequence[Sequence[Any]], labels: Sequence[Any] | None) -> bytes | None:
    """Counts per (true, predicted) class; colour is the share of each true class's rows."""
    m = np.asarray([[as_float(v) for v in row] for row in matrix], dtype=float)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] < 2:
        return None
    n = m.shape[0]
    names = [_short(v, 12) for v in labels] if labels and len(labels) == n else [
        str(i) for i in range(n)]
    share = m / np.maximum(m.sum(axis=1, keepdims=True), 1.0)
    side = min(7.0, 2.4 + 0.3 * n)  # inches: 5.4 for 10 classes
    with rc_context({**_RC, "axes.grid": False}):
        fig = _figure((side + 1.2, side))
        ax = fig.subplots()
        image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
        if n <= 20:
            for i in range(n):
                for j in range(n):
                    ax.text(j, i, f"{m[i, j]:.0f}", ha="center", va="center", fontsize=8,
                            color="white" if share[i, j] > 0.6 else "#222222")
        ax.set_xticks(range(n), names, rotation=45 if n > 8 else 0)
        ax.set_yticks(range(n), names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title("Confusion matrix (test)")
        fig.colorbar(image, ax=ax, shrink=0.8, label="share of true class")
        return _png(fig)


def _natural(key: str) -> tuple[int, float, str]:
    try:
        return (0, float(key), key)
    except ValueError:
        return (1, 0.0, key)


def _short(value: Any, limit: int = 12) -> str:
    """A label drawn in a figure: shortened, and `$` escaped so it is never read as TeX."""
    text = str(value)
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return text.replace("$", r"\$")
