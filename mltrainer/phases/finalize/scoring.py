"""Scoring the test split: every metric with a bootstrap interval, the paired difference against
the trivial baseline, and for classification the confusion matrix and per-class metrics.

The metric formulas are the engine's (`mltrainer.engine.metrics`, numpy, checked against
scikit-learn there); this module only gives each one the (y, scores) shape the bootstrap calls.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from mltrainer.engine.metrics import f1_macro as _f1_macro
from mltrainer.engine.metrics import metric_names, regression_metrics, softmax
from mltrainer.engine.metrics import roc_auc as _roc_auc
from mltrainer.stats import bootstrap_ci

MetricFn = Callable[[np.ndarray, np.ndarray], float]
LEVEL = 0.95


def _labels_of(scores: np.ndarray) -> np.ndarray:
    return np.asarray(scores).argmax(axis=1)


# Per-metric views of the engine's metric formulas (one implementation, numpy-fast enough to be
# called a few thousand times by the bootstrap): scores are logits (N, C) or values (N,).
def accuracy(y: np.ndarray, scores: np.ndarray) -> float:
    return float(np.mean(_labels_of(scores) == y))


def f1_macro(y: np.ndarray, scores: np.ndarray) -> float:
    return _f1_macro(y, _labels_of(scores), np.asarray(scores).shape[1])


def roc_auc(y: np.ndarray, scores: np.ndarray) -> float:
    return _roc_auc(y, softmax(np.asarray(scores, dtype=np.float64)))


def rmse(y: np.ndarray, pred: np.ndarray) -> float:
    return regression_metrics(y, pred)["rmse"]


def mae(y: np.ndarray, pred: np.ndarray) -> float:
    return regression_metrics(y, pred)["mae"]


def r2(y: np.ndarray, pred: np.ndarray) -> float:
    return regression_metrics(y, pred)["r2"]


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


def score_with_intervals(task: str, y: np.ndarray, outputs: np.ndarray,
                         baseline_scores: np.ndarray,
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
