"""Work handed to a child Python process while the command goes on, when a core is spare.

A fresh `mlt` process pays imports (matplotlib for the report's figures, scikit-learn's forests
for fANOVA importances) that need nothing the command is computing. `Child.start(module)` starts
`python -c "from <module> import serve; serve()"` at once (the imports run on another core),
`send` hands it its one request (stdin, then closed), `receive` waits for its answer (stdout).

Only when it can help: `Child.start` returns None when no core is spare (`spare_core`: on a
loaded machine a child would only add its own imports to the work), and `receive` returns None
when the child could not start, died, failed or took too long: the caller then does the work
itself, in its own process, with the same result. The child ignores the terminal's signals (its
own session), ends when its stdin closes (this process exiting or dying included) and never
writes to the terminal.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

_PACKAGE_PARENT = str(Path(__file__).resolve().parents[1])
_SCRIPT = "import sys; sys.path.insert(0, sys.argv[1]); from {module} import serve; serve()"


def spare_core() -> bool:
    """A core is free for a helper: at least two usable CPUs (this process has one), and the
    one-minute load average (a busy command counts about one) half a core below them."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:
        return False
    return cpus >= 2 and load < cpus - 0.5


class Child:
    """One child process running `<module>.serve()`: see the module doc."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc: subprocess.Popen[bytes] | None = proc

    @classmethod
    def start(cls, module: str) -> Child | None:
        if not spare_core():
            return None
        try:
            proc = subprocess.Popen(
                [sys.executable, "-c", _SCRIPT.format(module=module), _PACKAGE_PARENT],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                start_new_session=True,
                cwd=_PACKAGE_PARENT)  # not the user's folder: no module of theirs shadows ours
        except OSError:
            return None
        return cls(proc)

    def send(self, request: bytes) -> None:
        """Its request; it starts on it once its imports are done."""
        proc = self._proc
        if proc is None or proc.stdin is None:
            return
        stdin, proc.stdin = proc.stdin, None  # closed here: `receive` has nothing to send
        try:
            stdin.write(request)
            stdin.close()
        except (OSError, ValueError):
            self.close()

    def receive(self, timeout_s: float) -> bytes | None:
        """Its answer, or None (do the work in this process)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        try:
            out, _ = proc.communicate(timeout=timeout_s)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            _end(proc)
            return None
        return out if proc.returncode == 0 else None

    def close(self) -> None:
        """End it unasked (the work is not needed any more)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            _end(proc)

    def __del__(self) -> None:
        self.close()


def _end(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            stream.close()
