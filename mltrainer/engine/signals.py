"""SIGINT / SIGTERM during `fit`: ask the loop to stop at the next step boundary.

`catch_interrupts()` installs the handlers for the duration of a block only and restores the
previous ones after. The first signal sets a flag (the loop finishes its step, writes
`interrupt.pt` and returns); a second one raises KeyboardInterrupt at once, for a person who
really means it. Outside the main thread signals cannot be handled, so there the flag simply
never rises.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

HANDLED = (signal.SIGINT, signal.SIGTERM)


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
            raise KeyboardInterrupt
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
