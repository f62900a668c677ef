"""The one table shape every source is turned into: a DataFrame of features plus a target.

Array sources get columns `x0..x{n-1}` (or the data set's own feature names), so CSV and
array sources share the split, hashing and preprocessing code. This module also owns the
checks on columns (target, drop, feature types) and the label encoding of the target.
"""

from __future__ import annotations

import difflib
from typing import Any

import numpy as np
import pandas as pd

from mltrainer.data._preprocess import stray_text
from mltrainer.errors import DataError

ARRAY_TARGET = "y"  # the target column's name for array sources (X, y)
_QUOTED_ROWS = 5  # row numbers quoted in a message about bad rows


def frame_from_arrays(
    X: Any, y: Any, where: str, names: list[str] | None = None
) -> tuple[pd.DataFrame, str, tuple[int, ...] | None]:
    """(frame with features and target, target column, image shape) from arrays X and y.

    X may be (N, F) or images (N, H, W) / (N, C, H, W); images are flattened row-major and
    their (C, H, W) is returned so a CNN can reshape.
    """
    X, y = np.asarray(X), np.asarray(y)
    if X.dtype.kind not in "biuf":
        raise DataError(f"{where}: X must be numeric but has dtype {X.dtype}")
    if X.ndim < 2 or X.ndim > 4:
        raise DataError(
            f"{where}: X must be (rows, features) or images (rows, [channels,] height, width) "
            f"but has shape {X.shape}"
        )
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.ravel()
    if y.ndim != 1:
        raise DataError(f"{where}: y must be one-dimensional (one target per row) but has shape "
                        f"{y.shape}")
    if len(X) != len(y):
        raise DataError(f"{where}: X has {len(X)} rows but y has {len(y)}")
    if len(X) == 0:
        raise DataError(f"{where}: no rows (X and y are empty)")
    image_shape: tuple[int, ...] | None = None
    if X.ndim > 2:
        image_shape = tuple(int(d) for d in X.shape[1:])
        if len(image_shape) == 2:
            image_shape = (1, *image_shape)
        X = X.reshape(len(X), -1)
    n = X.shape[1]
    if names is None or len(names) != n:
        names = [f"x{i}" for i in range(n)]
    target = _free_name(ARRAY_TARGET, names)
    # no copy: the frame is a view of X (a transposing copy of 200 000 x 64 costs ~0.4 s);
    # nothing downstream writes to the frame
    frame = pd.DataFrame(X, columns=names, copy=False)
    frame[target] = y
    return frame, target, image_shape


def frame_from_python_result(
    result: Any, target: str | None, where: str
) -> tuple[pd.DataFrame, str, tuple[int, ...] | None, bool]:
    """What a python: data function returned, as (frame, target, image shape, target_required)."""
    if isinstance(result, pd.DataFrame):
        frame = result.reset_index(drop=True).copy()
        frame.columns = [str(c) for c in frame.columns]
        return frame, target or "", None, True
    if isinstance(result, (tuple, list)) and len(result) == 2:
        X, y = result
        if isinstance(X, pd.DataFrame):
            frame = X.reset_index(drop=True).copy()
            frame.columns = [str(c) for c in frame.columns]
            name = _free_name(ARRAY_TARGET, list(frame.columns))
            y_arr = np.asarray(y).ravel()
            if len(y_arr) != len(frame):
                raise DataError(f"{where}: X has {len(frame)} rows but y has {len(y_arr)}")
            frame[name] = y_arr
            return frame, name, None, False
        frame, name, image_shape = frame_from_arrays(X, y, where)
        return frame, name, image_shape, False
    raise DataError(
        f"{where}: the function must return (X, y) arrays or a pandas DataFrame with the "
        f"target column, but returned {type(result).__name__}"
    )


def select_columns(
    frame: pd.DataFrame, target: str, *, drop: list[str], target_required: bool, where: str
) -> tuple[pd.DataFrame, pd.Series]:
    """(features, target) after dropping `data.drop`; DataError with a "did you mean" otherwise."""
    columns = [str(c) for c in frame.columns]
    if target_required:
        if not target:
            raise DataError(
                f"{where}: data.target is not set; columns are: {_listing(columns)}",
                hint="set data.target in mlt.yaml to the column to predict",
            )
        if target not in columns:
            raise DataError(
                f"{where}: target column {target!r} not found{_did_you_mean(target, columns)} "
                f"(columns: {_listing(columns)})",
                hint="set data.target in mlt.yaml to one of the columns",
            )
    unknown = [c for c in drop if c not in columns]
    if unknown:
        raise DataError(
            f"{where}: data.drop names column {unknown[0]!r}, which is not in the data"
            f"{_did_you_mean(unknown[0], columns)} (columns: {_listing(columns)})",
            hint="fix data.drop in mlt.yaml",
        )
    if target in drop:
        raise DataError(f"{where}: data.drop lists the target column {target!r}",
                        hint="remove it from data.drop")
    features = frame.drop(columns=[*drop, target])
    if features.shape[1] == 0:
        raise DataError(f"{where}: no feature columns left after removing the target and "
                        f"data.drop", hint="keep at least one feature column")
    return features.reset_index(drop=True), frame[target].reset_index(drop=True)


FLOAT32_MAX = float(np.finfo(np.float32).max)


def _too_large(values: np.ndarray) -> np.ndarray:
    """Finite numbers that the float32 the model computes in cannot hold (|x| > 3.4e38): the
    cast makes them infinite, and a prediction or a loss NaN."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(values) & (np.abs(values) > FLOAT32_MAX)


def check_features(features: pd.DataFrame, where: str, lines: list[int] | None = None) -> None:
    """Feature columns must be numbers, booleans or text categories, with finite numbers that
    float32 can hold."""
    if all(isinstance(t, np.dtype) and t.kind == "f" for t in features.dtypes):
        matrix = features.to_numpy()
        if not np.isinf(matrix).any() and not _too_large(matrix).any():
            return  # all numpy floats, all finite (or missing): one pass over the matrix
    for name in features.columns:
        col = features[name]
        if pd.api.types.is_bool_dtype(col):
            continue
        if pd.api.types.is_datetime64_any_dtype(col) or pd.api.types.is_timedelta64_dtype(col):
            raise DataError(f"{where}: column {name!r} holds dates or durations",
                            hint="turn it into numbers (e.g. days since a date) or add it to "
                                 "data.drop")
        if pd.api.types.is_complex_dtype(col):
            raise DataError(f"{where}: column {name!r} holds complex numbers")
        if pd.api.types.is_numeric_dtype(col):
            values = col.to_numpy(dtype=np.float64, na_value=np.nan)
            bad = np.isinf(values)
            if bad.any():
                raise DataError(
                    f"{where}: column {name!r} has {int(bad.sum())} infinite values "
                    f"({_rows(bad, lines)})",
                    hint="replace them with a number or leave the cells empty (missing)",
                )
            big = _too_large(values)
            if big.any():
                raise DataError(
                    f"{where}: column {name!r} has {int(big.sum())} values beyond float32's "
                    f"range, |x| > 3.4e38 ({_rows(big, lines)}), which the model would read "
                    "as infinite",
                    hint="rescale the column (e.g. its logarithm) or leave those cells empty "
                         "(missing)",
                )
            continue
        stray = stray_text(col)
        if stray.any():  # numbers read as text because of a few cells: those cells
            shown = ", ".join(repr(v) for v in sorted(set(col[stray].astype(str)))[:3])
            raise DataError(
                f"{where}: column {name!r} holds numbers, but {int(stray.sum())} cell(s) are "
                f"not numbers ({_rows(stray, lines)}): {shown}",
                hint="fix or empty those cells (a decimal point, not a comma: 1.5), or add "
                     f"{name!r} to data.drop in mlt.yaml",
            )


def encode_target(
    target: pd.Series, task: str, where: str, lines: list[int] | None = None
) -> tuple[np.ndarray, list[Any] | None]:
    """(y, class labels): class indices (int64) into sorted labels, or float32 values."""
    name = str(target.name)
    missing = target.isna().to_numpy()
    if missing.any():
        raise DataError(
            f"{where}: target column {name!r} is missing in {int(missing.sum())} of "
            f"{len(target)} rows ({_rows(missing, lines)})",
            hint="fill in the target or remove those rows; rows without a target cannot train",
        )
    if task == "regression":
        if pd.api.types.is_bool_dtype(target) or not pd.api.types.is_numeric_dtype(target):
            example = target.iloc[0]
            raise DataError(
                f"{where}: task is regression but target column {name!r} is not numeric "
                f"(e.g. {example!r})",
                hint="set task: classification, or point data.target at a numeric column",
            )
        y = target.to_numpy(dtype=np.float64)
        if not np.isfinite(y).all():
            raise DataError(f"{where}: target column {name!r} has infinite values")
        if _too_large(y).any():
            raise DataError(f"{where}: target column {name!r} has values beyond float32's "
                            "range (|x| > 3.4e38)", hint="rescale the target (e.g. its "
                            "logarithm)")
        return y.astype(np.float32), None
    values = target.to_numpy()
    if values.dtype.kind == "f" and not np.all(np.mod(values, 1) == 0):
        raise DataError(
            f"{where}: task is classification but target column {name!r} holds fractional "
            f"numbers (e.g. {values[np.mod(values, 1) != 0][0]!r})",
            hint="set task: regression in mlt.yaml, or use a column of class labels",
        )
    codes, uniques = pd.factorize(target)
    safe = [_json_safe(v) for v in uniques]
    labels = sorted(set(safe), key=_label_key)
    if len(labels) < 2:
        raise DataError(f"{where}: target column {name!r} has a single class {labels[0]!r}; "
                        f"classification needs at least two")
    index = {label: i for i, label in enumerate(labels)}
    y = np.array([index[s] for s in safe], dtype=np.int64)[codes]
    return y, labels


def _json_safe(value: Any) -> Any:
    """A label as a plain python value that JSON can hold (numpy scalars unwrapped)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _label_key(label: Any) -> tuple[int, Any]:
    # numbers sort numerically, before any text; mixed columns still get one total order
    if isinstance(label, (bool, int, float)):
        return (0, label)
    return (1, str(label))


def _rows(mask: np.ndarray, lines: list[int] | None) -> str:
    """Where the flagged rows are: file lines when known, else 1-based row numbers."""
    where = np.flatnonzero(mask)[:_QUOTED_ROWS]
    if lines is not None and len(lines) == len(mask):
        shown = ", ".join(str(lines[i]) for i in where)
        label = "line" if mask.sum() == 1 else "lines"
    else:
        shown = ", ".join(str(i + 1) for i in where)
        label = "row" if mask.sum() == 1 else "rows"
    more = ", ..." if mask.sum() > _QUOTED_ROWS else ""
    return f"{label} {shown}{more}"


def _did_you_mean(name: str, options: list[str]) -> str:
    guess = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    if not guess:
        lowered = {o.lower(): o for o in options}
        guess = [lowered[name.lower()]] if name.lower() in lowered else []
    return f"; did you mean {guess[0]!r}?" if guess else ""


def _listing(columns: list[str], limit: int = 30) -> str:
    shown = ", ".join(columns[:limit])
    return shown + (f", ... ({len(columns)} in all)" if len(columns) > limit else "")


def _free_name(preferred: str, taken: list[str]) -> str:
    name, i = preferred, 0
    while name in taken:
        i += 1
        name = f"{preferred}_{i}"
    return name
