"""`data._split.shuffle_split` is scikit-learn's `train_test_split`, draw for draw.

The data layer writes the split out (importing scikit-learn costs `mlt plan` about 2 s); this
table holds the two equal on sizes, fractions, seeds and class layouts, the errors included, so
a project split before the change splits the same after it.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from mltrainer.data._split import shuffle_split


def _layout(kind: str, n: int) -> np.ndarray | None:
    i = np.arange(n)
    return {
        "none": None,
        "two balanced": i % 2,
        "three skewed": np.where(i % 10 == 0, 2, np.where(i % 3 == 0, 1, 0)),
        "many tied": (i * 7) % 9,  # nine classes of near-equal size: remainders tie
        "labels not 0..k": np.where(i % 4 == 0, 50, -3),
        "one singleton": np.where(i == n - 1, 5, i % 2),  # a class of one member: refused
        "more classes than test rows": i % max(2, n // 3),
    }[kind]


LAYOUTS = ["none", "two balanced", "three skewed", "many tied", "labels not 0..k",
           "one singleton", "more classes than test rows"]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("n", [3, 7, 40, 301, 1000])
@pytest.mark.parametrize("test_size", [0.1, 0.15, 0.3, 0.5])
@pytest.mark.parametrize("seed", [0, 42, 2**31 + 5])
def test_shuffle_split_is_train_test_split(layout: str, n: int, test_size: float,
                                           seed: int) -> None:
    ids = np.arange(100, 100 + n)  # not 0..n-1: the ids are indexed, not returned as positions
    strat = _layout(layout, n)
    try:
        want = train_test_split(ids, test_size=test_size, random_state=seed, stratify=strat)
    except ValueError as exc:
        with pytest.raises(ValueError) as got:
            shuffle_split(ids, test_size, seed, strat)
        assert str(got.value) == str(exc)
        return
    train, test = shuffle_split(ids, test_size, seed, strat)
    assert train.tolist() == want[0].tolist() and test.tolist() == want[1].tolist()
