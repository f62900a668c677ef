"""Work handed to a child Python process while the command goes on.

A fresh `mlt` process pays imports (matplotlib for the report's figures, scikit-learn's forests
for fANOVA importances) that need nothing the command is computing. `Child.start(module)` starts
a child running `<module>.serve()` at once (the imports run on another core), `send` hands it
its one request (stdin, then closed), `receive` waits for its answer (stdout).

Two kinds of child. Before torch is loaded (`can_fork`: a phase command's start) it is a fork
of this process: it holds every module this one has and imports only what it exists for, so it
adds no work to the machine's, and it starts whatever the load. Later (torch may have started
threads: no process to copy) it is a fresh `python -c "from <module> import serve; serve()"`,
which pays its own interpreter, numpy and pydantic again: only when a core is spare
(`spare_core`: on a loaded machine that child would only add its own imports to the work).
`receive` returns None when the child could not start, died, failed or took too long: the
caller then does the work itself, in its own process, with the same result. The child ignores
the terminal's signals (its own session), ends when its stdin closes (this process exiting or
dying included), holds none of this process's other files, and never writes to the terminal.

`Forked.start(fn)` is the other kind: `fn()` computed in a forked copy of this process (same
modules, same memory, nothing imported twice), for work that needs what this process holds but
none of what it is about to import: `mlt plan` prepares its data there while it imports torch.
Its value comes back pickled; it is used only when computing it had no other effect (no
exception, no warning), otherwise `receive` computes it again here, with every effect as before.
"""

from __future__ import annotations

import contextlib
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


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def can_fork() -> bool:
    """A forked helper costs nothing a helper in this process would not: at least two usable
    CPUs, `os.fork`, and no torch loaded yet (a process whose torch may have started threads
    is no safe one to copy; and the point of a fork is to import torch here meanwhile)."""
    return hasattr(os, "fork") and "torch" not in sys.modules and usable_cpus() >= 2


def spare_core(waiting: int = 0) -> bool:
    """A core is free for a helper: at least two usable CPUs (this process has one), and the
    one-minute load average (a busy command counts about one) half a core below them.
    `waiting`: processes the load average counts that are now blocked on this one (the
    command that waits for its report's figures: its core is idle meanwhile)."""
    cpus = usable_cpus()
    try:
        load = os.getloadavg()[0]
    except OSError:
        return False
    return cpus >= 2 and load - waiting < cpus - 0.5


class Child:
    """One child process running `<module>.serve()`: see the module doc."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc: subprocess.Popen[bytes] | None = proc

    @classmethod
    def start(cls, module: str) -> Child | None:
        if can_fork():  # a copy of this process: it imports only what it exists for
            try:
                return cls(_ForkedServer(module))  # type: ignore[arg-type]
            except OSError:
                return None
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
        """None where this process should not fork (`can_fork`)."""
        if not can_fork():
            return None
        read, write = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # pragma: no cover (the child: coverage does not follow it)
            os.close(read)
            _answer_forked(fn, write)
        os.close(write)
        return cls(pid, read)

    def receive(self, otherwise: Callable[[], Any]) -> Any:
        """The child's value, or `otherwise()` computed here when it has none to give."""
        try:
            with os.fdopen(self._fd, "rb") as answer:
                ok, value = pickle.load(answer)
        except Exception:  # no answer, a cut one, one that does not load: do it here
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


def _isolate(stdin: int, stdout: int, keep: int = -1) -> None:  # pragma: no cover (child)
    """In a forked child: `stdin`/`stdout` on fds 0 and 1, stderr on /dev/null (never the
    terminal), and nothing else of the parent's open but `keep`: the project's lock (an
    flock lives while any copy of its fd does) and the parent's other pipes (a drawer must see
    the end of its stdin when the parent closes it) stay the parent's alone."""
    os.dup2(stdin, 0)
    os.dup2(stdout, 1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 2)
    top = os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 4096
    if keep >= 3:
        os.closerange(3, keep)
        os.closerange(keep + 1, top)
    else:
        os.closerange(3, top)


class _ForkedServer:
    """`<module>.serve()` in a forked child, with the part of `subprocess.Popen` that `Child`
    uses (its stdin and stdout pipes, `communicate`, `poll`, `kill`, `wait`)."""

    def __init__(self, module: str) -> None:
        in_read, in_write = os.pipe()
        out_read, out_write = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # pragma: no cover (the child)
            code = 1
            try:
                os.setsid()  # the terminal's Ctrl-C is the parent's to handle
                _isolate(in_read, out_write)
                sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
                sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
                import importlib

                importlib.import_module(module).serve()
                sys.stdout.flush()
                code = 0
            except BaseException:  # any failure: the parent does the work itself
                pass
            finally:
                os._exit(code)
        os.close(in_read)
        os.close(out_write)
        self.pid = pid
        self.returncode: int | None = None
        self.stdin: Any = os.fdopen(in_write, "wb")
        self.stdout: Any = os.fdopen(out_read, "rb")

    def communicate(self, timeout: float) -> tuple[bytes, None]:
        import selectors
        import time

        deadline = time.monotonic() + timeout
        chunks = []
        fd = self.stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise subprocess.TimeoutExpired("forked helper", timeout)
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
        self.wait()
        return b"".join(chunks), None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, 9)

    def wait(self) -> int:
        if self.returncode is None:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode


def _answer_forked(fn: Callable[[], Any], fd: int) -> None:  # pragma: no cover (in the child)
    code = 1
    try:
        _isolate(os.open(os.devnull, os.O_RDONLY), os.open(os.devnull, os.O_WRONLY), keep=fd)
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
