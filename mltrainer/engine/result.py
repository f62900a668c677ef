"""What a run returns: `RunResult`, JSON-safe through `to_dict()`."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

STOP_REASONS = ("completed", "early_stopping", "interrupted")  # or "detector:<id>", any string


@dataclass
class RunResult:
    run_id: str
    run_dir: str
    best_epoch: int | None  # None when no epoch finished with a finite goal metric
    best_metric: float | None
    val: dict[str, float]  # every val metric at the best epoch
    epochs_run: int  # epochs finished, over the whole run (resumes included)
    final_epoch: int  # the epoch the last step belonged to (unfinished when interrupted)
    final_step: int  # optimisation steps taken, over the whole run
    stopped_reason: str  # completed | early_stopping | interrupted | <subscriber's reason>
    device: str
    checkpoints: dict[str, str | None]  # best, last (and interrupt when written): paths
    wall_time_s: float  # training time over the whole run, resumes included (seconds)
    history: list[dict[str, Any]] = field(default_factory=list)  # one entry per finished epoch
    kind: str = "baseline"
    metric: str = ""
    deterministic: dict[str, Any] = field(default_factory=dict)  # set_deterministic()'s flags

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types; non-finite floats as "nan"/"inf"/"-inf", as in the metric stream."""
        return _json_safe(asdict(self))


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value
