"""Trivial baselines on the validation split: the score a model must beat to have learned
anything. Majority class (classification) or the train mean (regression), fitted on train.

The predictor is a constant, so each metric has a closed form, written here in NumPy with
scikit-learn's definitions (`accuracy_score`, `f1_score(average="macro", zero_division=0)`,
`log_loss`, `mean_squared_error`, `mean_absolute_error`, `r2_score`): importing scikit-learn
would cost `mlt plan` about 2 s. tests/test_data.py checks them against scikit-learn.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mltrainer.config import CLASSIFICATION_METRICS, REGRESSION_METRICS
from mltrainer.errors import DataError

CONSTANT_ROC_AUC = 0.5  # a constant score ranks no positive above any negative


def trivial_baseline(bundle: Any, metric: str) -> dict[str, Any]:
    """The trivial predictor's val metrics, its val loss (`loss`) and what it predicted.

    `loss` is on the scale of the training loss: cross-entropy of predicting the train class
    frequencies (classification) or MSE of predicting the train mean (regression), so the
    detectors can tell "no learning" from learning.
    """
    task = bundle.spec.task
    allowed = CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
    if metric not in allowed:
        raise DataError(f"goal.metric {metric!r} does not fit task {task!r}; use one of "
                        f"{', '.join(allowed)}")
    if task == "classification":
        return _majority(bundle)
    return _mean(bundle)


def _majority(bundle: Any) -> dict[str, Any]:
    n_classes = int(bundle.spec.n_classes)
    y_train, y_val = bundle.train.y, bundle.val.y
    counts = np.bincount(y_train, minlength=n_classes)
    majority = int(np.argmax(counts))  # ties: the smallest class index
    freqs = counts / counts.sum()
    labels = bundle.spec.class_labels or list(range(n_classes))
    hits = int(np.sum(y_val == majority))
    # F1 is 0 for every class but the predicted one; the macro mean runs over the classes
    # present in y_val or predicted
    averaged = len(np.union1d(np.unique(y_val), [majority]))
    eps = np.finfo(np.float64).eps  # log_loss clips probabilities to [eps, 1 - eps]
    return {
        "predictor": "majority_class",
        "predicts": labels[majority],
        "split": "val",
        "accuracy": hits / len(y_val),
        "f1_macro": 2.0 * hits / (hits + len(y_val)) / averaged if hits else 0.0,
        "roc_auc": CONSTANT_ROC_AUC,
        "loss": float(-np.log(np.clip(freqs, eps, 1 - eps))[y_val].mean()),
    }


def _mean(bundle: Any) -> dict[str, Any]:
    y_train = bundle.train.y.astype(np.float64)
    y_val = bundle.val.y.astype(np.float64)
    mean = float(y_train.mean())
    err = y_val - mean
    mse = float(np.mean(err**2))
    ss_res = float(np.sum(err**2))
    ss_tot = float(np.sum((y_val - y_val.mean()) ** 2))
    if ss_tot == 0.0:  # constant targets: scikit-learn's force_finite convention
        r2 = 1.0 if ss_res == 0.0 else 0.0
    else:
        r2 = 1.0 - ss_res / ss_tot
    return {
        "predictor": "train_mean",
        "predicts": mean,
        "split": "val",
        "rmse": float(np.sqrt(mse)),
        "mae": float(np.mean(np.abs(err))),
        "r2": r2,
        "loss": mse,
    }
