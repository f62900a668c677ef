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

`Forked.start(fn)` is the other kind: `fn()` computed in a forked copy of this process (same
modules, same memory, nothing imported twice), for work that needs what this process holds but
none of what it is about to import: `mlt plan` prepares its data there while it imports torch.
Its value comes back pickled; it is used only when computing it had no other effect (no
exception, no warning), otherwise `receive` computes it again here, with every effect as before.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


class Forked:
    """`fn()` in a forked child: see the module doc."""

    def __init__(self, pid: int, fd: int) -> None:
        self._pid, self._fd = pid, fd

    @classmethod
    def start(cls, fn: Callable[[], Any]) -> Forked | None:
        """None where this process should not fork: no `os.fork`, or torch already loaded (the
        reason to fork is to import it meanwhile, and a process whose torch may have started
        threads is no safe one to copy)."""
        if not hasattr(os, "fork") or "torch" in sys.modules:
            return None
        read, write = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # pragma: no cover (the child: coverage does not follow it)
            os.close(read)
            _serve_forked(fn, write)
        os.close(write)
        return cls(pid, read)

    def receive(self, otherwise: Callable[[], Any]) -> Any:
        """The child's value, or `otherwise()` computed here when it has none to give."""
        try:
            with os.fdopen(self._fd, "rb") as answer:
                ok, value = pickle.load(answer)
        except (EOFError, OSError, pickle.UnpicklingError, ValueError, TypeError,
                AttributeError, ImportError):
            ok, value = False, None
        finally:
            self._fd = -1
            self.close()
        return value if ok else otherwise()

    def close(self) -> None:
        """End the child (at once when it is still working) and reap it."""
        pid, self._pid = self._pid, 0
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if pid:
            try:
                if os.waitpid(pid, os.WNOHANG) == (0, 0):
                    os.kill(pid, 9)
                    os.waitpid(pid, 0)
            except ChildProcessError:
                pass

    def __enter__(self) -> Forked:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


def _serve_forked(fn: Callable[[], Any], fd: int) -> None:  # pragma: no cover (in the child)
    code = 1
    try:
        devnull = os.open(os.devnull, os.O_RDWR)
        for std in (0, 1, 2):  # never the terminal
            os.dup2(devnull, std)
        # nothing of the parent's stays open here but the answer's pipe: a child pipe of the
        # parent (the report drawer's stdin) must see its end when the parent closes it
        os.closerange(3, fd)
        os.closerange(fd + 1, os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 4096)
        with warnings.catch_warnings(record=True) as caught:  # the filters as they are
            value = fn()
        answer = (not caught, value if not caught else None)
        with os.fdopen(fd, "wb") as out:
            pickle.dump(answer, out, protocol=pickle.HIGHEST_PROTOCOL)
        code = 0
    except BaseException:  # any failure: the parent does the work itself
        pass
    finally:
        os._exit(code)
