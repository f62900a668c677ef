"""The tracker contract (`Tracker`) and what every backend shares: the params and metrics
it is sent, and the lazy import of its library (`require`)."""


from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import math
import warnings
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from mltrainer.errors import ConfigError
from mltrainer.numbers import number

if TYPE_CHECKING:
    from types import ModuleType

    from mltrainer.config import MltConfig

STEP_POINTS_PER_EPOCH = 50
Scalar = str | int | float | bool | None


def require(module: str, tracker: str) -> ModuleType:
    """Import a backend's library, or raise the ConfigError that names the extra to install."""
    top = module.split(".")[0]
    try:
        importlib.import_module(top)  # first: a submodule imported earlier would hide its loss
        return importlib.import_module(module)
    except ImportError as exc:
        install = f"pip install 'mltrainer[{tracker}]'"
        if isinstance(exc, ModuleNotFoundError) and (exc.name or top).split(".")[0] == top:
            raise ConfigError(
                f"tracking.report_to lists {tracker!r} but {top} is not installed: {install}",
                hint=f"{install}, or remove {tracker!r} from tracking.report_to in mlt.yaml",
            ) from None
        raise ConfigError(
            f"tracking.report_to lists {tracker!r} but {module} cannot be imported: {exc}",
            hint=f"reinstall it with {install}, or remove {tracker!r} from tracking.report_to",
        ) from exc


# -- what every backend receives ---------------------------------------------------------------


def _flatten(prefix: str, value: Any, out: dict[str, Scalar]) -> None:
    if isinstance(value, dict):
        for key, sub in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), sub, out)
    elif isinstance(value, (list, tuple)):
        out[prefix] = json.dumps(value, separators=(",", ":"), default=str)
    elif value is None or isinstance(value, (str, int, float, bool)):
        out[prefix] = value
    else:
        out[prefix] = str(value)


_START_PARAMS = ("run_id", "metric", "kind", "device", "greater_is_better", "steps_per_epoch",
                 "n_train", "n_val", "config_fingerprint")


def flatten_params(cfg: MltConfig, start: dict[str, Any] | None = None) -> dict[str, Scalar]:
    """The resolved config as dotted keys (lists as compact JSON text, empty mappings left
    out), plus the run's facts from the start event."""
    out: dict[str, Scalar] = {}
    _flatten("", cfg.model_dump(mode="json"), out)
    start = start or {}
    for key in _START_PARAMS:
        if key in start:
            out[key] = start[key]
    for key, value in (start.get("baseline") or {}).items():
        _flatten(f"baseline.{key}", value, out)
    return out


def step_stride(steps_per_epoch: Any) -> int:
    """Log every n-th step so that an epoch gives at most ~STEP_POINTS_PER_EPOCH points."""
    try:
        spe = int(steps_per_epoch)
    except (TypeError, ValueError):
        return 1
    return max(1, math.ceil(spe / STEP_POINTS_PER_EPOCH))


def step_metrics(event: dict[str, Any]) -> dict[str, float]:
    out = {f"step/{key}": number(event.get(key)) for key in ("loss", "lr", "grad_norm")}
    return {k: v for k, v in out.items() if v is not None}


def epoch_metrics(event: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float | None] = {
        "epoch": number(event.get("epoch")),
        "epoch/train_loss": number(event.get("train_loss")),
        "epoch/val_loss": number(event.get("val_loss")),
        "epoch/lr": number(event.get("lr")),
        "epoch/wall_time_s": number(event.get("wall_time")),
    }
    for split in ("val", "train"):
        for name, value in (event.get(split) or {}).items():
            out[f"{split}/{name}"] = number(value)
    return {k: v for k, v in out.items() if v is not None}


# -- the base class ------------------------------------------------------------------------------


class Tracker(ABC):
    """A subscriber that mirrors a run into one backend. Subclasses implement `start`, `log`,
    `finish` (and may `flush`); `on_event` turns the engine's events into those calls and
    always returns None, so a tracker can never stop training."""

    name: ClassVar[str]

    def __init__(self, cfg: MltConfig, run_dir: Path, root: Path) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.root = Path(root)
        self.stride = 1
        self.run_id = self.run_dir.name
        self._open = False
        self._off = False

    # backend hooks -------------------------------------------------------------------------

    @abstractmethod
    def start(self, params: dict[str, Scalar], event: dict[str, Any]) -> None:
        """Open the backend's run and record `params` (`event` is the start event; it has
        `resumed_from` when the run continues from a checkpoint)."""

    @abstractmethod
    def log(self, metrics: dict[str, float], step: int, wall_time: float | None) -> None:
        """Record `metrics` at global step `step` (`wall_time`: seconds since the epoch)."""

    def flush(self) -> None:
        """Make what was logged so far durable (called after every epoch)."""

    @abstractmethod
    def finish(self, reason: str) -> None:
        """Flush and close; `reason` is the end event's (completed, early_stopping,
        interrupted, detector:<id>, ... or aborted when the process exits first)."""

    # the subscriber ----------------------------------------------------------------------------

    def on_event(self, event: dict[str, Any]) -> str | None:
        """The Subscriber protocol; the answer is always None (never a stop reason)."""
        if self._off:
            return None
        try:
            self._dispatch(event)
        except Exception as exc:
            self._off = True
            warnings.warn(
                f"tracking: {self.name} failed on the {event.get('type')} event of run "
                f"{self.run_id} and is off for the rest of it ({type(exc).__name__}: {exc}); "
                f"runs/{self.run_id}/metrics.jsonl has everything",
                RuntimeWarning, stacklevel=2,
            )
            self._close("tracking_error")
        return None

    def _dispatch(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "start":
            if self._open:  # a second fit() on the same Trainer: close the first run
                self._close("restarted")
            self.run_id = str(event.get("run_id") or self.run_id)
            self.stride = step_stride(event.get("steps_per_epoch"))
            self._open = True  # so that a start that fails half-way is closed too
            atexit.register(self._close, "aborted")
            self.start(flatten_params(self.cfg, event), event)
        elif not self._open:
            return
        elif kind == "step":
            step = int(event["step"])
            loss = number(event.get("loss"))
            if step % self.stride == 0 or (loss is not None and not math.isfinite(loss)):
                self.log(step_metrics(event), step, event.get("time"))
        elif kind == "epoch":
            self.log(epoch_metrics(event), int(event["step"]), event.get("time"))
            self.flush()
        elif kind == "end":
            self._open = False
            atexit.unregister(self._close)
            self.finish(str(event.get("reason", "completed")))

    def _close(self, reason: str) -> None:
        if not self._open:
            return
        self._open = False
        atexit.unregister(self._close)
        with contextlib.suppress(Exception):  # after a failure, or at exit: best effort
            self.finish(reason)
