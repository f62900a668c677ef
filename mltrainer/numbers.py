"""Numbers as mlt records them: the one place that says what counts as a finite number, and the
one JSON encoding of non-finite floats (the strings "nan", "inf", "-inf", so that every file mlt
writes — the metric stream, the state, findings, run results — stays strict JSON).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from typing import Any

_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def number(value: Any) -> float | None:
    """`value` as a float when it is a real number (NaN and ±inf included); None for None,
    bools, text and anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def finite(value: Any) -> float | None:
    """`value` as a float when it is a finite number; None for None, NaN, ±inf, bools, text."""
    if type(value) is float:  # the common case (every metric event), without the checks
        return value if math.isfinite(value) else None
    if value is None:  # the next commonest (a step without a sampled gradient norm)
        return None
    v = number(value)
    return v if v is not None and math.isfinite(v) else None


def is_nonfinite(value: Any) -> bool:
    """True for a number that is NaN or ±inf (a missing value is not non-finite)."""
    if type(value) is float:  # the common case, without the checks
        return not math.isfinite(value)
    if value is None:
        return False
    v = number(value)
    return v is not None and not math.isfinite(v)


def as_float(value: Any) -> float:
    """A float from a recorded value, for plotting and arithmetic: numbers (bools as 0/1) and
    the encoded non-finite strings become floats; None and anything else become NaN."""
    if isinstance(value, (bool, int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return math.nan
    return math.nan


def same_value(a: Any, b: Any) -> bool:
    """Equal, with NaN equal to NaN (a reloaded NaN metric reproduces a recorded NaN)."""
    if a == b:
        return True
    fa, fb = number(a), number(b)
    return fa is not None and fb is not None and math.isnan(fa) and math.isnan(fb)


def encode_json(value: Any) -> Any:
    """Non-finite floats as the strings "nan", "inf", "-inf"; tuples, deques and other
    sequences as lists; mapping keys as strings. The result is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, Mapping):
        return {str(k): encode_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, deque)):
        return [encode_json(v) for v in value]
    return value


def decode_json(value: Any) -> Any:
    """The inverse of `encode_json` for the non-finite floats."""
    if isinstance(value, str) and value in _NONFINITE:
        return _NONFINITE[value]
    if isinstance(value, dict):
        return {k: decode_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_json(v) for v in value]
    return value
