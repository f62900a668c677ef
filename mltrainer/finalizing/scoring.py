"""Scoring the test split: every metric with a bootstrap interval, the paired difference against
the trivial baseline, and for classification the confusion matrix and per-class metrics.

The bootstrap calls a metric a few thousand times, so the metrics here are numpy versions of
the engine's (`mltrainer.engine.metrics`), with the same edge cases (f1 over the labels that
occur, zero division → 0; one-vs-rest macro AUC over the classes present, 0.5 below two
classes; r2 of a constant target 1.0 when exact, else 0.0). `test_finalize` checks that their
point values equal the engine's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from mltrainer.engine.metrics import AUC_FALLBACK, metric_names, softmax
from mltrainer.stats import bootstrap_ci

MetricFn = Callable[[np.ndarray, np.ndarray], float]
LEVEL = 0.95


def _labels_of(scores: np.ndarray) -> np.ndarray:
    return np.asarray(scores).argmax(axis=1)


def accuracy(y: np.ndarray, scores: np.ndarray) -> float:
    return float(np.mean(_labels_of(scores) == y))


def f1_macro(y: np.ndarray, scores: np.ndarray) -> float:
    pred = _labels_of(scores)
    n = int(max(y.max(initial=0), pred.max(initial=0))) + 1
    tp = np.bincount(y[pred == y], minlength=n).astype(float)
    fp = np.bincount(pred, minlength=n) - tp
    fn = np.bincount(y, minlength=n) - tp
    present = np.union1d(np.unique(y), np.unique(pred))
    denom = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denom, out=np.zeros(n), where=denom > 0)
    return float(f1[present].mean())


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their average rank (scipy's rankdata, whose import alone
    costs seconds)."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    first = np.r_[True, xs[1:] != xs[:-1]]
    starts = np.flatnonzero(first)
    counts = np.diff(np.r_[starts, len(x)])
    ranks = np.empty(len(x))
    ranks[order] = (starts + (counts + 1) / 2.0)[np.cumsum(first) - 1]
    return ranks


def _auc(positive: np.ndarray, score: np.ndarray) -> float:
    # Mann-Whitney U with average ranks for ties: exactly sklearn's roc_auc_score.
    ranks = _average_ranks(score)
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_auc(y: np.ndarray, scores: np.ndarray) -> float:
    probs = softmax(np.asarray(scores, dtype=np.float64))
    present = np.unique(y)
    if len(present) < 2:
        return AUC_FALLBACK
    if probs.shape[1] == 2:
        return _auc(y == 1, probs[:, 1])
    return float(np.mean([_auc(y == c, probs[:, c]) for c in present]))


def rmse(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.sqrt(np.mean((y - pred) ** 2)))


def mae(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean(np.abs(y - pred)))


def r2(y: np.ndarray, pred: np.ndarray) -> float:
    ss_res = float(np.sum((y - pred) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    if ss_tot == 0.0:
        return 1.0 if ss_res == 0.0 else 0.0
    return 1.0 - ss_res / ss_tot


METRICS: dict[str, MetricFn] = {
    "accuracy": accuracy, "f1_macro": f1_macro, "roc_auc": roc_auc,
    "rmse": rmse, "mae": mae, "r2": r2,
}
LOWER_IS_BETTER = frozenset({"rmse", "mae"})


def as_scores(task: str, outputs: np.ndarray) -> np.ndarray:
    """float64 scores: logits (N, C) for classification, values (N,) for regression."""
    out = np.asarray(outputs, dtype=np.float64)
    return out.reshape(len(out)) if task == "regression" else out


def trivial_scores(task: str, baseline: dict[str, Any], n_rows: int,
                   class_labels: list[Any] | None) -> np.ndarray:
    """The plan's trivial predictor on `n_rows` rows, as scores the metrics above accept: a
    one-hot of the majority class (constant, so its AUC is 0.5), or the train mean."""
    if task == "regression":
        return np.full(n_rows, float(baseline["predicts"]))
    labels = list(class_labels or [])
    index = labels.index(baseline["predicts"]) if baseline.get("predicts") in labels else 0
    scores = np.zeros((n_rows, max(len(labels), 2)))
    scores[:, index] = 1.0
    return scores


def score_with_intervals(task: str, y: np.ndarray, outputs: np.ndarray, baseline_scores: np.ndarray,
                         *, n_resamples: int, seed: int) -> dict[str, Any]:
    """Point value, 95 % percentile-bootstrap interval, and the paired difference against the
    trivial baseline (`improvement` is signed so that > 0 always means better than it)."""
    scores = as_scores(task, outputs)
    y = np.asarray(y)
    out: dict[str, Any] = {"ci95": {}, "baseline_diff": {}, "bootstrap": {}}
    for name in metric_names(task):
        res = bootstrap_ci(METRICS[name], y, scores, n_resamples=n_resamples, seed=seed,
                           level=LEVEL, baseline_score=baseline_scores)
        sign = -1.0 if name in LOWER_IS_BETTER else 1.0
        lo, hi = (sign * d for d in res["diff_ci"])
        out["ci95"][name] = [float(v) for v in res["ci"]]
        out["baseline_diff"][name] = {
            "baseline": res["baseline"], "diff": res["diff"], "diff_ci95": res["diff_ci"],
            "improvement": sign * res["diff"], "improvement_ci95": [min(lo, hi), max(lo, hi)],
        }
        out["bootstrap"][name] = {"n_resamples": res["n_resamples"],
                                  "used_resamples": res["used_resamples"], "seed": res["seed"]}
    return out


def confusion_and_per_class(y: np.ndarray, outputs: np.ndarray, class_labels: list[Any]
                            ) -> dict[str, Any]:
    """The confusion matrix (rows: true class, columns: predicted, in `class_labels` order) and
    precision, recall, f1 and support per class."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    pred = _labels_of(outputs)
    idx = list(range(len(class_labels)))
    matrix = confusion_matrix(y, pred, labels=idx)
    precision, recall, f1, support = precision_recall_fscore_support(
        y, pred, labels=idx, zero_division=0)
    return {
        "class_labels": [str(c) for c in class_labels],
        "confusion_matrix": matrix.astype(int).tolist(),  # [true][predicted]
        "per_class": [
            {"label": str(label), "precision": float(p), "recall": float(r), "f1": float(f),
             "support": int(s)}
            for label, p, r, f, s in zip(class_labels, precision, recall, f1, support)
        ],
    }


def residual_summary(y: np.ndarray, outputs: np.ndarray) -> dict[str, Any]:
    err = as_scores("regression", outputs) - np.asarray(y, dtype=np.float64)
    q = np.quantile(np.abs(err), [0.5, 0.9, 0.99])
    return {"mean_error": float(err.mean()), "abs_error_p50": float(q[0]),
            "abs_error_p90": float(q[1]), "abs_error_p99": float(q[2])}
