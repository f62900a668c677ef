"""Trivial baselines on the validation split: the score a model must beat to have learned
anything. Majority class (classification) or the train mean (regression), fitted on train."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
)

from mltrainer.config import CLASSIFICATION_METRICS, REGRESSION_METRICS
from mltrainer.errors import DataError

CONSTANT_ROC_AUC = 0.5  # a constant score ranks no positive above any negative


def trivial_baseline(bundle: Any, metric: str) -> dict[str, Any]:
    """The trivial predictor's val metrics, its val loss (`loss`) and what it predicted.

    `loss` is on the scale of the training loss: cross-entropy of predicting the train class
    frequencies (classification) or MSE of predicting the train mean (regression), so the
    detectors can tell "no learning" from learning. With regression targets standardised on
    train (`spec.target_scale`) the training loss is in standardised units: `loss` is the MSE
    divided by std**2 and the record carries `target_scale`; the metrics and `predicts` stay
    in the target's units.
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
    pred = np.full(len(y_val), majority, dtype=np.int64)
    freqs = counts / counts.sum()
    labels = bundle.spec.class_labels or list(range(n_classes))
    return {
        "predictor": "majority_class",
        "predicts": labels[majority],
        "split": "val",
        "accuracy": float(accuracy_score(y_val, pred)),
        "f1_macro": float(f1_score(y_val, pred, average="macro", zero_division=0)),
        "roc_auc": CONSTANT_ROC_AUC,
        "loss": float(log_loss(y_val, np.tile(freqs, (len(y_val), 1)),
                               labels=list(range(n_classes)))),
    }


def _mean(bundle: Any) -> dict[str, Any]:
    y_train = bundle.train.y.astype(np.float64)
    y_val = bundle.val.y.astype(np.float64)
    mean = float(y_train.mean())
    pred = np.full(len(y_val), mean)
    mse = float(mean_squared_error(y_val, pred))
    scale = bundle.spec.target_scale
    record = {
        "predictor": "train_mean",
        "predicts": mean,
        "split": "val",
        "rmse": float(np.sqrt(mse)),
        "mae": float(mean_absolute_error(y_val, pred)),
        "r2": float(r2_score(y_val, pred)),
        "loss": mse if scale is None else mse / scale.std**2,
    }
    if scale is not None:
        record["target_scale"] = scale.to_dict()
    return record
