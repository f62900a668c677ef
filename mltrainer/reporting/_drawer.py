"""A child process that imports matplotlib while a phase works, then draws its report's figures.

matplotlib's import costs a fresh `mlt` process about 0.8 s, paid at the very end of a phase
command, when the report is written. A phase command started in a fresh process therefore
starts `FigureDrawer` as its phase begins: the child imports `_plots` on another core while the
phase trains; when the state is saved it receives that state (the JSON `save_state` writes) and
returns `phase_figures(...)` of it. The figures are the same bytes as drawn in this process
(the same code and rc settings; the state as saved, which is what `mlt report` draws from), and
the report is written, complete, before the command returns. A process that runs many
phases (a test session, a notebook) starts one child, for its first phase only.

Anything unusual (the child cannot start, dies, answers garbage or takes too long) returns None:
the caller then draws in its own process, as it always did. A process that has imported
matplotlib already (a test session, a notebook) starts no child. The child ignores the
terminal's signals (its own session) and ends when this process closes the pipe, dies included.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from mltrainer.project import Project
from mltrainer.reporting._figures import ReportFigure
from mltrainer.state import ProjectState

TIMEOUT_S = 120.0  # then the figures are drawn here: a report never waits on a stuck child

_CHILD = """\
import sys
sys.path.insert(0, sys.argv[1])
from mltrainer.reporting._drawer import serve
serve()
"""


_STARTED = False  # a child was started in this process (a fresh `mlt` runs one phase)


class FigureDrawer:
    """`figures(project, state, phase)` from the child, or None (draw them here)."""

    def __init__(self, *, once: bool = False) -> None:
        """`once`: only for the first phase this process runs (a test session or a notebook
        that runs many pays matplotlib's import once, in-process, instead of once a phase)."""
        global _STARTED
        self._proc: subprocess.Popen[bytes] | None = None
        if "matplotlib" in sys.modules or (once and _STARTED):  # nothing to gain
            return
        _STARTED = True
        package_parent = str(Path(__file__).resolve().parents[2])
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", _CHILD, package_parent], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
                cwd=package_parent)  # not the user's folder: no module of theirs shadows ours
        except OSError:
            self._proc = None

    @property
    def started(self) -> bool:
        return self._proc is not None

    def figures(self, project: Project, state: ProjectState, phase: str
                ) -> list[ReportFigure] | None:
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        request = json.dumps({"root": str(project.root), "phase": phase,
                              "state": state.model_dump_json()})
        try:
            out, _ = proc.communicate(request.encode("utf-8"), timeout=TIMEOUT_S)
            if proc.returncode != 0:
                return None
            return [ReportFigure(f["phase"], f["name"], f["title"],
                                 base64.b64decode(f["png"]), f["error"])
                    for f in json.loads(out)]
        except (OSError, ValueError, KeyError, TypeError, subprocess.TimeoutExpired):
            _end(proc)
            return None

    def close(self) -> None:
        """End the child if its figures were never asked for (the phase failed)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            _end(proc)

    @contextlib.contextmanager
    def closed_on_error(self) -> Iterator[None]:
        """Around the phase: a phase that fails will ask for no figures."""
        try:
            yield
        except BaseException:
            self.close()
            raise

    def __del__(self) -> None:
        self.close()


def _end(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            stream.close()


def serve() -> None:
    """The child: import the plotting code, read one request, answer with the figures."""
    import mltrainer.reporting._plots  # noqa: F401  (the import this process exists for)
    from mltrainer.reporting._figures import phase_figures

    raw = sys.stdin.buffer.read()
    if not raw:  # the parent went away without asking
        return
    request = json.loads(raw)
    state = ProjectState.model_validate_json(request["state"])
    figures = phase_figures(Project.at(request["root"]), state, request["phase"])
    answer = [{"phase": f.phase, "name": f.name, "title": f.title,
               "png": base64.b64encode(f.png).decode("ascii"), "error": f.error}
              for f in figures]
    sys.stdout.buffer.write(json.dumps(answer).encode("utf-8"))
    sys.stdout.buffer.flush()
    os._exit(0)  # nothing to tear down; skip interpreter shutdown
