"""Schema checks on every split, and rows shared across splits, as the model will see them.

The data layer validates the source when it loads it; these checks look again, at the arrays
the model trained and is tested on (ML Test Score, Data 1: feature expectations are captured in
a schema and checked): widths, dtypes, finite scaled features, one-hot blocks that are one-hot,
labels in range. The overlap check hashes the encoded rows of each split independently of the
data layer's own split hashes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_QUOTED = 5  # problems quoted per split


def split_schema(name: str, split: Any, spec: Any, preprocessor: Any) -> dict[str, Any]:
    """{"split", "rows", "n_features", "problems": [...], "passed"} for one split."""
    from mltrainer.phases.finalize import items

    if items.is_items(split):
        return items.split_schema(name, split, spec)
    problems: list[str] = []
    X, y, enc = np.asarray(split.X), np.asarray(split.y), np.asarray(split.encoded)
    n = len(y)
    if n == 0:
        problems.append("no rows")
    if X.ndim != 2 or X.shape != (n, spec.n_features):
        problems.append(f"X has shape {X.shape}, expected ({n}, {spec.n_features})")
    if X.dtype != np.float32:
        problems.append(f"X has dtype {X.dtype}, expected float32")
    elif X.size and not np.isfinite(X).all():
        problems.append(f"X (scaled) has {int((~np.isfinite(X)).sum())} non-finite values")
    if enc.shape != X.shape:
        problems.append(f"encoded has shape {enc.shape}, expected {X.shape}")
    else:
        problems.extend(_encoded_problems(enc, preprocessor))
    if list(preprocessor.feature_names) != list(spec.feature_names):
        problems.append("feature names differ between the preprocessing and the data spec")
    problems.extend(items.label_problems(y, spec))
    return {"split": name, "rows": int(n), "n_features": int(X.shape[1]) if X.ndim == 2 else None,
            "problems": problems[:_QUOTED], "n_problems": len(problems),
            "passed": not problems}


def _encoded_problems(enc: np.ndarray, preprocessor: Any) -> list[str]:
    problems: list[str] = []
    j = 0
    for col in preprocessor.columns:
        if col.kind == "numeric":
            values = enc[:, j]
            if np.isinf(values).any():
                problems.append(f"column {col.name!r} holds infinite values")
            j += 1
            continue
        width = len(col.categories)
        block = enc[:, j:j + width]
        if width and (np.isnan(block).any() or not np.isin(block, (0.0, 1.0)).all()
                      or (block.sum(axis=1) > 1).any()):
            problems.append(f"category column {col.name!r} is not a one-hot block")
        j += width
    return problems


def _row_keys(encoded: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(np.asarray(encoded, dtype=np.float32))
    x = np.where(np.isnan(x), np.float32(np.nan), x)  # one NaN bit pattern for every NaN
    x = np.where(x == 0, np.float32(0.0), x)  # -0.0 and 0.0 are the same input
    x = np.ascontiguousarray(x)
    return x.view(np.dtype((np.void, x.dtype.itemsize * x.shape[1]))).ravel()


def shared_rows(splits: dict[str, Any]) -> dict[str, int]:
    """Encoded rows that occur in two splits, per pair: {"train_val", "train_test", "val_test"}."""
    from mltrainer.phases.finalize import items

    if items.is_items(splits["train"]):
        return items.shared_items(splits)
    keys = {name: np.unique(_row_keys(s.encoded)) for name, s in splits.items()}
    names = list(keys)
    return {f"{a}_{b}": len(np.intersect1d(keys[a], keys[b]))
            for i, a in enumerate(names) for b in names[i + 1:]}
