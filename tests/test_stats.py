"""Intervals: coverage-style sanity on known distributions, and the paired bootstrap."""

from __future__ import annotations

import numpy as np
import pytest

from mltrainer.stats import bootstrap_ci, diff_ci, mean_ci, t_quantile


def test_mean_ci_matches_textbook_t_interval() -> None:
    r = mean_ci([1.0, 2.0, 3.0, 4.0, 5.0])
    # mean 3, s = 1.5811, t(0.975, 4) = 2.7764 → half-width 1.9632
    assert r["mean"] == 3.0
    assert r["ci"] == pytest.approx([3 - 1.96324, 3 + 1.96324], abs=1e-4)


def test_t_interval_covers_the_true_mean_about_95_percent() -> None:
    rng = np.random.default_rng(0)
    hits = sum(lo <= 1.0 <= hi for lo, hi in
               (mean_ci(rng.normal(1.0, 2.0, 5))["ci"] for _ in range(2000)))
    assert 0.93 < hits / 2000 < 0.97


def test_diff_ci_excludes_zero_only_for_a_real_difference() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(0.90, 0.005, 5)
    assert diff_ci(a + 0.02, a)["ci"][0] > 0
    assert diff_ci(rng.normal(0.9, 0.01, 5), rng.normal(0.9, 0.01, 5))["ci"][0] < 0


def test_paired_bootstrap_against_a_trivial_baseline() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 300)
    good = np.where(rng.random(300) < 0.9, y, 1 - y)  # 90 % accurate
    majority = np.full(300, np.bincount(y).argmax())
    acc = lambda t, p: float((t == p).mean())
    r = bootstrap_ci(acc, y, good, n_resamples=500, seed=3, baseline_score=majority)
    assert r["ci"][0] < r["value"] < r["ci"][1]
    assert r["diff_ci"][0] > 0.2  # far better than majority on every resample
    assert r == bootstrap_ci(acc, y, good, n_resamples=500, seed=3, baseline_score=majority)


@pytest.mark.parametrize("df", [1, 2, 3, 4, 7, 19, 2.5, 17.3, 1e6])
@pytest.mark.parametrize("q", [0.6, 0.95, 0.975, 0.995])
def test_t_quantile_is_scipy_stats_t_ppf_bit_for_bit(q: float, df: float) -> None:
    from scipy import stats

    assert t_quantile(q, df) == float(stats.t.ppf(q, df))
