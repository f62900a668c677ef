"""Confidence intervals: Student-t over seeds, and (paired) bootstrap over test rows.

Every interval a report prints comes from here, with the numbers it was computed from.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def t_quantile(q: float, df: float) -> float:
    """Student-t quantile: `scipy.stats.t.ppf(q, df)`, which is `scipy.special.stdtrit(df, q)`
    (the distribution's `_ppf`), called directly: importing scipy.stats costs ~1 s a command."""
    from scipy.special import stdtrit

    return float(stdtrit(df, q))


def mean_ci(values: Sequence[float], level: float = 0.95) -> dict[str, Any]:
    """Mean, sample standard deviation and the Student-t interval of the mean."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n == 0:
        raise ValueError("mean_ci needs at least one value but got none")
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if n > 1 else 0.0
    if n < 2:
        return {"n": n, "mean": mean, "std": std, "ci": [mean, mean], "level": level}
    half = t_quantile(0.5 + level / 2, n - 1) * std / math.sqrt(n)
    return {"n": n, "mean": mean, "std": std, "ci": [mean - half, mean + half], "level": level}


def diff_ci(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> dict[str, Any]:
    """Interval of mean(a) − mean(b) for independent samples (Welch's t)."""
    xa, xb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(xa) < 2 or len(xb) < 2:
        raise ValueError(
            f"diff_ci needs at least 2 values per side but got {len(xa)} and {len(xb)}")
    va, vb = xa.var(ddof=1) / len(xa), xb.var(ddof=1) / len(xb)
    diff = float(xa.mean() - xb.mean())
    se = math.sqrt(va + vb)
    if se == 0.0:
        return {"diff": diff, "ci": [diff, diff], "level": level, "df": None, "se": 0.0}
    df = (va + vb) ** 2 / (va**2 / (len(xa) - 1) + vb**2 / (len(xb) - 1))
    half = t_quantile(0.5 + level / 2, df) * se
    return {"diff": diff, "ci": [diff - half, diff + half], "level": level, "df": float(df),
            "se": se}


def bootstrap_ci(
    metric: Callable[[np.ndarray, np.ndarray], float],
    y_true: np.ndarray,
    y_score: np.ndarray,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    baseline_score: np.ndarray | None = None,
) -> dict[str, Any]:
    """Percentile bootstrap of a metric over rows. With `baseline_score`, also the paired
    bootstrap of metric(model) − metric(baseline) on the same resampled rows."""
    rng = np.random.default_rng(seed)
    n = len(y_true)
    point = float(metric(y_true, y_score))
    samples, diffs = [], []
    base_point = float(metric(y_true, baseline_score)) if baseline_score is not None else None
    for _ in range(n_resamples):
        idx = rng.integers(0, n, n)
        value = metric(y_true[idx], y_score[idx])
        if not math.isfinite(value):
            continue  # e.g. roc_auc on a resample with one class: skip, and count it
        samples.append(value)
        if baseline_score is not None:
            diffs.append(value - metric(y_true[idx], baseline_score[idx]))
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    out: dict[str, Any] = {
        "value": point,
        "ci": [float(np.percentile(samples, lo)), float(np.percentile(samples, hi))],
        "level": level, "n_resamples": n_resamples, "used_resamples": len(samples), "seed": seed,
    }
    if baseline_score is not None:
        out["baseline"] = base_point
        out["diff"] = point - base_point
        out["diff_ci"] = [float(np.percentile(diffs, lo)), float(np.percentile(diffs, hi))]
    return out
