"""Preprocessing fitted on the train split only, in two halves that live in different places.

`encode` (outside the model graph): text categories one-hot, numbers passed raw with NaN kept.
`scale` (inside the exported graph, built by the export code from `scale_params`): NaN → the
train median, then (x - mean) / std. Keeping the NaN fill and the scaling in the graph means a
deployed model takes the same encoded rows the training code saw, missing values included.

Arithmetic is float32 with float32 parameters, exactly what a torch module holding the same
parameters computes, so the exported graph reproduces training inputs bitwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mltrainer.errors import DataError, StateCorruptError

if TYPE_CHECKING:  # pandas loads where frames are handled: a record loads without it
    import pandas as pd

FORMAT_VERSION = 1
MAX_CATEGORIES = 1000  # distinct values of one text column: more would explode the one-hot width
_ID_LIKE_MIN = 50  # distinct values from which a mostly-unique text column counts as an id
_ID_LIKE_SHARE = 0.5  # share of distinct values among non-missing cells that looks like an id
_NUMBERS_SHARE = 0.9  # a many-valued text column this share numbers is numbers with typos
_F32_EPS = float(np.finfo(np.float32).eps)


@dataclass(frozen=True)
class ColumnSpec:
    """One input column: `numeric` (one feature) or `category` (one feature per category)."""

    name: str
    kind: str  # "numeric" | "category"
    categories: tuple[str, ...] = field(default=())

    def feature_names(self) -> list[str]:
        if self.kind == "numeric":
            return [self.name]
        return [f"{self.name}={c}" for c in self.categories]


class Preprocessor:
    """Fit on train, then `encode` / `scale` / `transform` any frame with the same columns.

    A category not seen in training, or a missing category, encodes as all zeros in that
    column's one-hot block (there is no "other" column: unseen means "none of the known").
    """

    def __init__(self) -> None:
        self.columns: list[ColumnSpec] = []
        self._fill: np.ndarray | None = None
        self._mean: np.ndarray | None = None
        self._std: np.ndarray | None = None

    @property
    def is_fitted(self) -> bool:
        return self._fill is not None

    def fit(self, frame: pd.DataFrame) -> Preprocessor:
        """Learn columns, categories and scale parameters from `frame` (the train split)."""
        if len(frame) == 0:
            raise DataError("cannot fit preprocessing on an empty train split")
        self.columns = [_column_spec(str(name), frame[name]) for name in frame.columns]
        encoded = self.encode(frame)
        fill = np.zeros(encoded.shape[1])
        mean = np.zeros(encoded.shape[1])
        std = np.ones(encoded.shape[1])
        numeric = np.flatnonzero(self._numeric_mask())
        # one numeric column per contiguous float64 row: each reduction below runs over a row
        # as it would over the 1-D column, so the parameters are bit for bit the per-column ones
        block = encoded if len(numeric) == encoded.shape[1] else encoded[:, numeric]
        cols = np.ascontiguousarray(block.T, dtype=np.float64)
        gaps = np.isnan(cols)
        has_gaps = gaps.any(axis=1)
        for k in np.flatnonzero(has_gaps):  # columns with missing values: median of the rest
            seen = cols[k][~gaps[k]]
            fill[numeric[k]] = float(np.median(seen)) if len(seen) else 0.0
            cols[k][gaps[k]] = fill[numeric[k]]
        mean[numeric] = cols.mean(axis=1)
        spread = cols.std(axis=1)
        # numerically constant (at float32 precision) → 1, so the column maps to ~0
        constant = spread <= _F32_EPS * np.maximum(1.0, np.abs(mean[numeric]))
        std[numeric] = np.where(constant, 1.0, spread)
        if len(cols) and not has_gaps.all():  # last: the in-place median reorders the rows
            medians = np.median(cols, axis=1, overwrite_input=True)
            fill[numeric[~has_gaps]] = medians[~has_gaps]
        self._fill, self._mean, self._std = (
            a.astype(np.float32) for a in (fill, mean, std)
        )
        return self

    @property
    def feature_names(self) -> list[str]:
        return [n for c in self.columns for n in c.feature_names()]

    @property
    def n_features(self) -> int:
        return sum(1 if c.kind == "numeric" else len(c.categories) for c in self.columns)

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        """(N, F) float32: one-hot categories (unseen/missing → zeros), raw numbers, NaN kept."""
        missing = [c.name for c in self.columns if c.name not in frame.columns]
        if missing:
            raise DataError(
                f"the frame lacks column(s) {', '.join(map(repr, missing))} the preprocessing "
                f"was fitted with"
            )
        names = [c.name for c in self.columns]
        if all(c.kind == "numeric" for c in self.columns) and all(
                isinstance(frame[name].dtype, np.dtype) and frame[name].dtype.kind in "biuf"
                for name in names):  # numpy dtypes only: pandas' nullable ones hold pd.NA
            # numbers only: one conversion of the whole block (float32 columns straight, others
            # through float64 as the per-column path does, so int64 rounds once, the same way)
            block = frame if list(frame.columns) == names else frame[names]
            if all(block[name].dtype == np.float32 for name in names):
                return block.to_numpy(dtype=np.float32, copy=True)
            return block.to_numpy(dtype=np.float64).astype(np.float32)
        out = np.zeros((len(frame), self.n_features), dtype=np.float32)
        j = 0
        for spec in self.columns:
            col = frame[spec.name]
            if spec.kind == "numeric":
                out[:, j] = _as_float(col, spec.name)
                j += 1
                continue
            width = len(spec.categories)
            if width:
                import pandas as pd

                codes = pd.Index(spec.categories).get_indexer(col.astype(str))
                codes[col.isna().to_numpy()] = -1
                rows = np.flatnonzero(codes >= 0)
                out[rows, j + codes[rows]] = 1.0
            j += width
        return out

    @property
    def scale_params(self) -> dict[str, list[float]]:
        """{"fill", "mean", "std"} over the encoded columns, each exactly float32-representable."""
        self._require_fitted()
        return {k: [float(v) for v in a] for k, a in
                (("fill", self._fill), ("mean", self._mean), ("std", self._std))}

    def scale(self, encoded: np.ndarray) -> np.ndarray:
        """((NaN → fill) - mean) / std in float32: what the exported graph computes."""
        self._require_fitted()
        x = np.asarray(encoded, dtype=np.float32)
        missing = np.isnan(x)
        if missing.any():
            x = np.where(missing, self._fill, x)
        out = np.subtract(x, self._mean)  # one new array, divided in place: the same bits
        out /= self._std
        return out

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        return self.scale(self.encode(frame))

    def unscale(self, scaled: np.ndarray) -> np.ndarray:
        """Approximate inverse of `scale` (NaN fills stay filled): encoded-space inputs for
        checking an exported graph that contains the scaling."""
        self._require_fitted()
        x = np.asarray(scaled, dtype=np.float32)
        return (x * self._std + self._mean).astype(np.float32, copy=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: saved as runs/<id>/preprocess.json and read back with `from_dict`."""
        self._require_fitted()
        return {
            "format": "mltrainer.preprocessor",
            "version": FORMAT_VERSION,
            "columns": [
                {"name": c.name, "kind": c.kind, **(
                    {"categories": list(c.categories)} if c.kind == "category" else {})}
                for c in self.columns
            ],
            "unknown_category": "zeros",
            "missing_category": "zeros",
            "missing_numeric": "fill",
            "feature_names": self.feature_names,
            **self.scale_params,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessor:
        try:
            if data.get("version") != FORMAT_VERSION:
                raise ValueError(f"unsupported version {data.get('version')!r}")
            pre = cls()
            pre.columns = [
                ColumnSpec(str(c["name"]), _kind(c["kind"]),
                           tuple(str(v) for v in c.get("categories", ())))
                for c in data["columns"]
            ]
            arrays = [np.asarray(data[k], dtype=np.float32) for k in ("fill", "mean", "std")]
            if any(a.shape != (pre.n_features,) for a in arrays):
                raise ValueError(f"fill/mean/std must each hold {pre.n_features} values")
            if list(data.get("feature_names", pre.feature_names)) != pre.feature_names:
                raise ValueError("feature_names do not match the columns")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StateCorruptError(f"not a valid preprocessor record: {exc}",
                                    hint="re-run the phase that wrote it") from None
        pre._fill, pre._mean, pre._std = arrays
        return pre

    def _numeric_mask(self) -> np.ndarray:
        return np.array([c.kind == "numeric" for c in self.columns for _ in c.feature_names()],
                        dtype=bool)

    def _require_fitted(self) -> None:
        if not self.is_fitted:
            raise RuntimeError("Preprocessor used before fit() or from_dict()")


def _kind(value: Any) -> str:
    if value not in ("numeric", "category"):
        raise ValueError(f"unknown column kind {value!r}")
    return str(value)


def _column_spec(name: str, col: pd.Series) -> ColumnSpec:
    if _is_numeric(col):
        return ColumnSpec(name, "numeric")
    present = col.dropna()
    categories = sorted(set(present.astype(str)))
    if not_a_category(len(categories), len(present)):
        raise DataError(
            f"text column {name!r} has {len(categories)} distinct values in {len(present)} "
            f"train rows: it looks like an identifier or free text, not a category",
            hint=f"add {name!r} to data.drop in mlt.yaml (or, if it is text to learn from, "
                 f"set data.text_column: {name} and a model.tokenizer)",
        )
    return ColumnSpec(name, "category", tuple(categories))


def unseen_categories(pre: Preprocessor, frame: pd.DataFrame) -> dict[str, pd.Series]:
    """{column: the rows' mask} for each category column where some row of `frame` holds a
    value the preprocessing was not fitted with (encoded as none of the known ones; a missing
    value is not counted). Plan counts them per split, predict per column of its input."""
    out: dict[str, pd.Series] = {}
    for spec in pre.columns:
        if spec.kind == "category":
            col = frame[spec.name]
            new = col.notna() & ~col.astype(str).isin(spec.categories)
            if new.any():
                out[spec.name] = new
    return out


def _is_numeric(col: pd.Series) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_bool_dtype(col) or (
        pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_complex_dtype(col)))


def refused_as_category(col: pd.Series) -> bool:
    """Would `_column_spec` refuse this column (a text column of mostly distinct values)?"""
    if _is_numeric(col):
        return False
    present = col.dropna()
    return not_a_category(present.astype(str).nunique(), len(present)) and not (
        stray_text(col).any())


def stray_text(col: pd.Series) -> np.ndarray:
    """The cells of a many-valued text column that are not numbers when nearly all of its
    values (`_NUMBERS_SHARE`) are: a column of numbers with a typo or a decimal comma ("1,5"),
    which pandas reads as text (and a category would be refused as an identifier). All False
    for a column of numbers, of categories or of text."""
    import pandas as pd

    stray = np.zeros(len(col), dtype=bool)
    if _is_numeric(col):
        return stray
    present = col.notna().to_numpy()
    text = col[present].astype(str)
    if not not_a_category(text.nunique(), len(text)):
        return stray
    wrong = pd.to_numeric(text, errors="coerce").isna().to_numpy()
    if wrong.mean() <= 1 - _NUMBERS_SHARE:
        stray[np.flatnonzero(present)[wrong]] = True
    return stray


def not_a_category(distinct: int, present: int) -> bool:
    """A text column with `distinct` values in `present` non-missing cells is an identifier or
    free text, not a category (plan refuses it as a feature; `mlt init --data` drops it)."""
    return distinct > MAX_CATEGORIES or (distinct >= _ID_LIKE_MIN
                                         and distinct > _ID_LIKE_SHARE * present)


def _as_float(col: pd.Series, name: str) -> np.ndarray:
    try:
        return col.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):
        bad = next((v for v in col if not _is_number(v)), None)
        raise DataError(f"column {name!r} must be numeric but holds {bad!r}") from None


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return value is None
    return True
