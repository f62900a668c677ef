"""What a run returns: `RunResult`, JSON-safe through `to_dict()`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from mltrainer.errors import InterruptedRunError
from mltrainer.numbers import encode_json

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
    device_notice: str | None = None  # set when training.device auto fell back to the CPU
    world_size: int = 1  # processes that trained it (torchrun / DDP)

    def raise_if_interrupted(self, message: str, hint: str) -> None:
        """Ctrl-C or SIGTERM stopped this run (its checkpoint saved): the command that ran it
        ends there, exit 130, and never goes on with a part-trained model as if it had
        finished. Every caller of `Trainer.fit` calls this before it uses the result."""
        if self.stopped_reason == "interrupted":
            raise InterruptedRunError(message, hint=hint)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types; non-finite floats as "nan"/"inf"/"-inf", as in the metric stream."""
        return encode_json(asdict(self))
