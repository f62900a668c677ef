"""The test split's lock, one for every kind of bundle (`DataBundle` for tables, `ItemBundle`
for image folders, text and Datasets): released to `mlt finalize` only, while it runs, and
every request audited."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import Any

from mltrainer.errors import TestSplitLockedError

TEST_PHASE = "finalize"  # the one phase allowed to read the test split
AuditFn = Callable[[dict[str, Any]], None]

# The phase the runner is executing in this context (set by `running_phase`): the test split
# is released only while it is finalize, so a model factory inside train-baseline, or a
# library call outside any phase, that asks as finalize would gets nothing.
_RUNNING: ContextVar[str | None] = ContextVar("mlt_running_phase", default=None)


@contextmanager
def running_phase(name: str) -> Iterator[None]:
    """Mark `name` as the phase running in this context (the runner wraps every phase body)."""
    token = _RUNNING.set(name)
    try:
        yield
    finally:
        _RUNNING.reset(token)


def check_test_request(phase: str, audit: AuditFn | None) -> None:
    """The test split's lock, for every kind of bundle (tables, items): granted only to
    `phase == "finalize"` while finalize runs (`running_phase`), else TestSplitLockedError;
    every request is audited, granted or not."""
    running = _RUNNING.get()
    granted = phase == TEST_PHASE and running == TEST_PHASE
    if audit is not None:
        audit({"event": "test_split_released" if granted else "test_split_denied",
               "phase": phase, "running": running,
               "time": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    if granted:
        return
    where = "" if running == phase else f" while {running or 'no phase'} runs"
    raise TestSplitLockedError(
        f"the test split is locked until `mlt finalize` (requested by phase {phase!r}"
        f"{where})",
        hint="judge models on the validation split; `mlt finalize` evaluates the test "
             "split once",
        phase=phase,
    )
