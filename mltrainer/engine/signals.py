"""SIGINT / SIGTERM during `fit`: ask the loop to stop at the next step boundary.

`catch_interrupts()` installs the handlers for the duration of a block only and restores the
previous ones after. The first signal sets a flag (the loop finishes its step, writes
`interrupt.pt` and returns); a second one raises KeyboardInterrupt at once, for a person who
really means it. Outside the main thread signals cannot be handled, so there the flag simply
never rises.

Outside `fit` a stop signal raises KeyboardInterrupt (`raise_interrupt`, which the CLI installs
for the whole command). Python can lose that exception: a signal that lands while a weakref
callback or `__del__` runs (importlib's module locks use one) has its exception printed as
"Exception ignored" and dropped. So the handler also records that the signal arrived, and the
phase runner calls `raise_if_stop_arrived()` before it records an outcome: a phase a person
asked to stop is never recorded as passed.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

HANDLED = (signal.SIGINT, signal.SIGTERM)
_ARRIVED: list[str] = []  # stop signals raised as KeyboardInterrupt in this command


def raise_interrupt(signum: int, frame: FrameType | None) -> None:
    """A stop signal outside `fit`: Ctrl-C's KeyboardInterrupt, recorded in case it is lost."""
    _ARRIVED.append(signal.Signals(signum).name)
    raise KeyboardInterrupt


def raise_if_stop_arrived() -> None:
    """Raise the KeyboardInterrupt a stop signal raised, in case it was lost on the way."""
    if _ARRIVED:
        raise KeyboardInterrupt


def forget_stops() -> None:
    """A new command starts: no stop signal has arrived for it yet."""
    _ARRIVED.clear()


class InterruptFlag:
    def __init__(self) -> None:
        self.signal_name: str | None = None  # e.g. "SIGINT" once one arrived
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signal_name is not None

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signal_name is not None:  # the second signal: stop now
            self.restore()
            raise_interrupt(signum, frame)
        self.signal_name = signal.Signals(signum).name

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for sig in HANDLED:
                self._previous[sig] = signal.signal(sig, self.handle)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


@contextlib.contextmanager
def catch_interrupts() -> Iterator[InterruptFlag]:
    flag = InterruptFlag()
    flag.install()
    try:
        yield flag
    finally:
        flag.restore()
