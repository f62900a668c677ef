"""Row hashing, the split, and the evidence that no row crosses it.

Every row gets a sha256 of the canonical bytes of its feature values. Rows with the same
hash form a group, and whole groups are assigned to train, val or test, so a duplicated row
can never sit on both sides of a split: "no duplicate rows across splits" holds by
construction, and `duplicate_evidence` measures it independently. Groups are ordered by hash,
so the split depends on the rows' content and the seed, never on the order of the file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from mltrainer.errors import DataError

DIGEST = 32  # bytes of a sha256 digest
_MISSING = b"\x00"  # tag byte of a missing text cell
_PRESENT = b"\x01"  # tag byte of a present text cell
SPLITS = ("train", "val", "test")


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
    blocks = np.ascontiguousarray(np.hstack([column_bytes(frame[c]) for c in frame.columns]))
    out = np.empty((len(frame), DIGEST), dtype=np.uint8)
    for i, row in enumerate(blocks):
        out[i] = np.frombuffer(hashlib.sha256(row).digest(), np.uint8)
    return out


def extend_digests(digests: np.ndarray, col: pd.Series) -> np.ndarray:
    """(N, 32): sha256 of each row digest followed by one more column's bytes (the target)."""
    extra = column_bytes(col)
    joined = np.ascontiguousarray(np.hstack([digests, extra]))
    out = np.empty_like(digests)
    for i, row in enumerate(joined):
        out[i] = np.frombuffer(hashlib.sha256(row).digest(), np.uint8)
    return out


def _void(digests: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(digests).view(np.dtype((np.void, DIGEST))).ravel()


def set_fingerprint(digests: np.ndarray, schema: dict[str, Any]) -> str:
    """sha256 over the schema and the sorted row digests: independent of row order."""
    h = hashlib.sha256(json.dumps(schema, sort_keys=True).encode())
    h.update(np.ascontiguousarray(np.sort(_void(digests))).tobytes())
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
) -> SplitPlan:
    """Split whole groups of identical feature rows; stratified by each group's majority label
    when `labels` (class indices) are given, unstratified with a recorded reason if impossible."""
    _, inverse, counts = np.unique(_void(digests), return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
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
    pairs = np.stack([inverse, labels.astype(np.int64)], axis=1)
    uniq, counts = np.unique(pairs, axis=0, return_counts=True)
    order = np.lexsort((uniq[:, 1], -counts, uniq[:, 0]))  # by group, then count desc, label asc
    ranked = uniq[order]
    first = np.ones(len(ranked), dtype=bool)
    first[1:] = ranked[1:, 0] != ranked[:-1, 0]
    out = np.empty(n_groups, dtype=np.int64)
    out[ranked[first, 0]] = ranked[first, 1]
    return out


def duplicate_evidence(
    digests: np.ndarray, plan: SplitPlan, target_digests: np.ndarray
) -> dict[str, int]:
    """Feature-row hashes shared by two splits (0 by construction), and duplicates overall.

    `within_data`: rows that repeat an earlier row's features; `conflicting_labels`: distinct
    (features, target) pairs beyond one per distinct feature row, i.e. identical inputs seen with
    different targets (label noise, or a feature that was dropped).
    """
    sets = {name: np.unique(_void(digests[idx])) for name, idx in plan.indices().items()}
    all_rows = _void(digests)
    n_distinct = len(np.unique(all_rows))
    n_distinct_with_target = len(np.unique(_void(target_digests)))
    return {
        "train_val": len(np.intersect1d(sets["train"], sets["val"])),
        "train_test": len(np.intersect1d(sets["train"], sets["test"])),
        "val_test": len(np.intersect1d(sets["val"], sets["test"])),
        "within_data": int(len(all_rows) - n_distinct),
        "conflicting_labels": int(n_distinct_with_target - n_distinct),
    }
