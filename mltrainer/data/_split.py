"""Row hashing, the split, and the evidence that no row crosses it.

Every row gets a sha256 of the canonical bytes of its feature values. Rows with the same
hash form a group, and whole groups are assigned to train, val or test, so a duplicated row
can never sit on both sides of a split: "no duplicate rows across splits" holds by
construction, and `duplicate_evidence` measures it independently. Groups are ordered by hash,
so the split depends on the rows' content and the seed, never on the order of the file.

Vectorised: the canonical bytes of all rows are one (N, width) array, hashed row by row in one
tight loop (sha256 has no vector form, and the per-row digest is the contract), and grouping,
ordering and set sizes work on the digests as four big-endian uint64 columns, whose
lexicographic order is the byte order `np.unique` gives 32-byte void values. Results are byte for
byte those of the row-at-a-time code this replaced (tests/test_data_pinned.py).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mltrainer.errors import DataError

DIGEST = 32  # bytes of a sha256 digest
_MISSING = b"\x00"  # tag byte of a missing text cell
_PRESENT = b"\x01"  # tag byte of a present text cell
SPLITS = ("train", "val", "test")
# the names a source's own split may go by (a DatasetDict's "validation", a dict of Datasets)
SPLIT_NAMES = {"train": ("train",), "val": ("validation", "val", "valid", "dev"),
               "test": ("test",)}
_SLAB_ROWS = 8192  # rows canonicalised at once by `_float_digests` (4 MiB at 64 features)


def column_bytes(col: pd.Series) -> np.ndarray:
    """(N, k) uint8: the canonical bytes of each cell of one column.

    Numbers become little-endian float64 (or int64 for integer columns) with one NaN bit
    pattern and -0.0 folded into 0.0, so equal values give equal bytes; text cells become a
    tag byte plus 16 bytes of the sha256 of their type and text, with missing cells tagged apart.
    """
    if pd.api.types.is_bool_dtype(col) and not col.isna().any():
        return col.to_numpy(dtype=np.int64).astype("<i8").view(np.uint8).reshape(len(col), 8)
    if pd.api.types.is_integer_dtype(col) and not col.isna().any():
        return col.to_numpy(dtype=np.int64).astype("<i8").view(np.uint8).reshape(len(col), 8)
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        values = col.to_numpy(dtype=np.float64, na_value=np.nan) + 0.0  # -0.0 + 0.0 == +0.0
        values[np.isnan(values)] = np.nan  # one NaN bit pattern
        return np.ascontiguousarray(values.astype("<f8")).view(np.uint8).reshape(len(col), 8)
    codes, uniques = pd.factorize(col, use_na_sentinel=True)
    table = np.empty((len(uniques) + 1, 17), dtype=np.uint8)
    for i, value in enumerate(uniques):
        tagged = f"{type(value).__name__}:{value}".encode()
        table[i] = np.frombuffer(_PRESENT + hashlib.sha256(tagged).digest()[:16], np.uint8)
    table[-1] = np.frombuffer(_MISSING * 17, np.uint8)  # code -1 (missing) indexes the last row
    return table[codes]


def row_digests(frame: pd.DataFrame) -> np.ndarray:
    """(N, 32) uint8: sha256 of each row's canonical bytes (columns in frame order)."""
    if frame.shape[1] == 0:
        raise ValueError("no columns to hash")
    if all(isinstance(dtype, np.dtype) and dtype.kind == "f" for dtype in frame.dtypes):
        return _float_digests(frame.to_numpy())  # all numpy floats: one matrix, same bytes
    blocks = [column_bytes(frame[c]) for c in frame.columns]
    canonical = np.empty((len(frame), sum(b.shape[1] for b in blocks)), dtype=np.uint8)
    at = 0
    for block in blocks:
        canonical[:, at:at + block.shape[1]] = block
        at += block.shape[1]
    return sha256_rows(canonical)


def _float_digests(values: np.ndarray) -> np.ndarray:
    """`row_digests` of an all-float matrix, canonicalised a slab of rows at a time: the
    float64 copy of a whole 200 000 x 64 table costs more than hashing it."""
    out = np.empty((len(values), DIGEST), dtype=np.uint8)
    for start in range(0, len(values), _SLAB_ROWS):
        slab = np.array(values[start:start + _SLAB_ROWS], dtype="<f8", order="C")
        slab += 0.0  # -0.0 + 0.0 == +0.0
        slab[np.isnan(slab)] = np.nan  # one NaN bit pattern
        out[start:start + len(slab)] = sha256_rows(slab.view(np.uint8))
    return out


def extend_digests(digests: np.ndarray, col: pd.Series) -> np.ndarray:
    """(N, 32): sha256 of each row digest followed by one more column's bytes (the target)."""
    extra = column_bytes(col)
    joined = np.empty((len(digests), DIGEST + extra.shape[1]), dtype=np.uint8)
    joined[:, :DIGEST] = digests
    joined[:, DIGEST:] = extra
    return sha256_rows(joined)


def sha256_rows(block: np.ndarray) -> np.ndarray:
    """(N, 32) uint8: the sha256 of each row of a (N, width) uint8 array."""
    block = np.ascontiguousarray(block, dtype=np.uint8)
    n, width = block.shape
    flat = memoryview(block).cast("B")
    sha = hashlib.sha256
    joined = b"".join([sha(flat[i:i + width]).digest() for i in range(0, n * width, width)])
    return np.frombuffer(joined, dtype=np.uint8).reshape(n, DIGEST)


def _keys(digests: np.ndarray) -> np.ndarray:
    """(N, 4) big-endian uint64 views of the digests: sorting them row-lexicographically orders
    the digests bytewise, as `np.unique` orders 32-byte void values."""
    return np.ascontiguousarray(digests, dtype=np.uint8).view(">u8").reshape(len(digests), 4)


def _byte_order(keys: np.ndarray) -> np.ndarray:
    """The stable order that sorts the digests bytewise."""
    order = np.argsort(keys[:, 0], kind="stable")
    first = keys[order, 0]
    if len(first) > 1 and (first[1:] == first[:-1]).any():  # equal leading 8 bytes: all keys
        order = np.lexsort(keys.T[::-1])  # the last key is the primary one
    return order


def _distinct_starts(sorted_keys: np.ndarray) -> np.ndarray:
    """Boolean (N,): True where a sorted row differs from the one before it (first is True)."""
    new = np.ones(len(sorted_keys), dtype=bool)
    if len(sorted_keys) > 1:
        new[1:] = (sorted_keys[1:] != sorted_keys[:-1]).any(axis=1)
    return new


def digest_groups(digests: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(inverse, counts) as `np.unique(digests as void, return_inverse, return_counts)`: each
    row's group number (groups in byte order of their digest) and each group's size."""
    keys = _keys(digests)
    order = _byte_order(keys)
    new = _distinct_starts(keys[order])
    inverse = np.empty(len(digests), dtype=np.int64)
    inverse[order] = np.cumsum(new) - 1
    counts = np.diff(np.append(np.flatnonzero(new), len(digests)))
    return inverse, counts


def n_distinct(digests: np.ndarray) -> int:
    """How many different digests there are."""
    keys = _keys(digests)
    return int(_distinct_starts(keys[_byte_order(keys)]).sum()) if len(digests) else 0


def set_fingerprint(digests: np.ndarray, schema: dict[str, Any]) -> str:
    """sha256 over the schema and the sorted row digests: independent of row order."""
    h = hashlib.sha256(json.dumps(schema, sort_keys=True).encode())
    h.update(np.ascontiguousarray(digests[_byte_order(_keys(digests))]).tobytes())
    return h.hexdigest()


def sequence_fingerprint(digests: np.ndarray, schema: dict[str, Any]) -> str:
    """sha256 over the schema and the row digests in source order (the whole data set)."""
    h = hashlib.sha256(json.dumps(schema, sort_keys=True).encode())
    h.update(np.ascontiguousarray(digests).tobytes())
    return h.hexdigest()


@dataclass
class SplitPlan:
    """Row indices of each split (ascending) and how they were chosen."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    stratified: bool
    groups: dict[str, int] = field(default_factory=dict)  # distinct feature rows per split
    note: str | None = None  # why stratification was not used, when it was asked for

    def indices(self) -> dict[str, np.ndarray]:
        return {"train": self.train, "val": self.val, "test": self.test}


def grouped_split(
    digests: np.ndarray,
    labels: np.ndarray | None,
    *,
    seed: int,
    val: float,
    test: float,
    where: str,
    groups: tuple[np.ndarray, np.ndarray] | None = None,
) -> SplitPlan:
    """Split whole groups of identical feature rows; stratified by each group's majority label
    when `labels` (class indices) are given, unstratified with a recorded reason if impossible.
    `groups` is `digest_groups(digests)` when the caller has it already."""
    inverse, counts = groups if groups is not None else digest_groups(digests)
    n_groups = len(counts)
    if n_groups < 3:
        raise DataError(f"{where}: {n_groups} distinct feature rows; a train/val/test split "
                        f"needs at least 3")
    strat = _majority_label(inverse, labels, n_groups) if labels is not None else None
    note = None
    try:
        parts = _split_groups(n_groups, strat, seed, val, test)
    except ValueError as exc:
        if strat is None:
            raise DataError(
                f"{where}: cannot split {n_groups} distinct rows into train/val/test with "
                f"val={val}, test={test}: {exc}"
            ) from None
        note = f"stratification impossible ({exc}); split without it"
        strat = None
        try:
            parts = _split_groups(n_groups, None, seed, val, test)
        except ValueError as exc2:
            raise DataError(f"{where}: cannot split {n_groups} distinct rows: {exc2}") from None
    rows = {}
    for name, groups in zip(SPLITS, parts):
        member = np.zeros(n_groups, dtype=bool)
        member[groups] = True
        rows[name] = np.flatnonzero(member[inverse])
    return SplitPlan(
        rows["train"], rows["val"], rows["test"], stratified=strat is not None,
        groups={name: len(g) for name, g in zip(SPLITS, parts)}, note=note,
    )


def _split_groups(
    n_groups: int, strat: np.ndarray | None, seed: int, val: float, test: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split  # imported only when a split is made

    ids = np.arange(n_groups)
    rest, test_ids = train_test_split(ids, test_size=test, random_state=seed, stratify=strat)
    rest_strat = strat[rest] if strat is not None else None
    train_ids, val_ids = train_test_split(
        rest, test_size=val / (1.0 - test), random_state=seed, stratify=rest_strat
    )
    if min(len(train_ids), len(val_ids), len(test_ids)) == 0:
        raise ValueError("a split would be empty")
    return train_ids, val_ids, test_ids


def _majority_label(inverse: np.ndarray, labels: np.ndarray, n_groups: int) -> np.ndarray:
    """Each group's most frequent class index (ties: the smallest index)."""
    labels = labels.astype(np.int64)
    width = int(labels.max()) + 1 if len(labels) else 1
    # (group, label) pairs as one int64: sorting it sorts the pairs row-lexicographically
    codes, counts = np.unique(inverse * width + labels, return_counts=True)
    uniq = np.stack([codes // width, codes % width], axis=1)
    order = np.lexsort((uniq[:, 1], -counts, uniq[:, 0]))  # by group, then count desc, label asc
    ranked = uniq[order]
    first = np.ones(len(ranked), dtype=bool)
    first[1:] = ranked[1:, 0] != ranked[:-1, 0]
    out = np.empty(n_groups, dtype=np.int64)
    out[ranked[first, 0]] = ranked[first, 1]
    return out


def duplicate_evidence(
    digests: np.ndarray, plan: SplitPlan, target_digests: np.ndarray,
    groups: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, int]:
    """Feature-row hashes shared by two splits (0 by construction), and duplicates overall.

    Measured from the rows each split holds, not from how the split was made: a hash counts
    for every split that holds a row with it. `within_data`: rows that repeat an earlier row's
    features; `conflicting_labels`: distinct (features, target) pairs beyond one per distinct
    feature row, i.e. identical inputs seen with different targets (label noise, or a feature
    that was dropped).
    """
    inverse, counts = groups if groups is not None else digest_groups(digests)
    held = {}
    for name, idx in plan.indices().items():
        member = np.zeros(len(counts), dtype=bool)
        member[inverse[idx]] = True
        held[name] = member
    n_distinct_rows = len(counts)
    return {
        "train_val": int((held["train"] & held["val"]).sum()),
        "train_test": int((held["train"] & held["test"]).sum()),
        "val_test": int((held["val"] & held["test"]).sum()),
        "within_data": int(len(digests) - n_distinct_rows),
        "conflicting_labels": int(n_distinct(target_digests) - n_distinct_rows),
    }


def split_info(cfg: Any, plan: Any, y: np.ndarray, class_labels: list[Any] | None,
               n_rows: int, method: str) -> dict[str, Any]:
    """The split record plan's gate shows: sizes, fractions, seed, stratification, class
    counts per split; `method` says how identical content was kept together."""
    idx = plan.indices()
    info: dict[str, Any] = {
        "sizes": {name: len(idx[name]) for name in SPLITS},
        "fractions": {name: round(len(idx[name]) / n_rows, 4) for name in SPLITS},
        "requested": {"val": cfg.data.split.val, "test": cfg.data.split.test},
        "distinct_rows": dict(plan.groups),
        "seed": cfg.seed,
        "stratified": plan.stratified,
        "method": method,
    }
    if plan.note:
        info["stratify_note"] = plan.note
    if class_labels is not None:
        info["class_counts"] = {
            name: {str(label): int(count) for label, count in
                   zip(class_labels, np.bincount(y[idx[name]].astype(np.int64),
                                                 minlength=len(class_labels)))}
            for name in SPLITS
        }
    return info
