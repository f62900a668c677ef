"""A phase's report figures, drawn in a child process that imported matplotlib meanwhile.

matplotlib's import costs a fresh `mlt` process about 0.8 s, paid at the very end of a phase
command, when the report is written. A phase command therefore starts a `FigureDrawer` as its
phase begins (`background.Child`: a fork of this process, or a fresh interpreter when a core
is spare): the child imports `_plots` on another core while the phase trains; once the state
is saved it receives that state (the JSON `save_state` writes) and returns `phase_figures(...)`
of it, every second figure drawn in a fork of the child when a core is spare (the command
waits for the figures with its own core idle: two figures take the time of the larger). The
figures are the same bytes as drawn in this process (the same code and rc settings; the state
as saved, which is what `mlt report` draws from), and the report is written, complete, before
the command returns.

Without an answer (no child started, or it died, failed or took too long) `figures` returns
None and the caller draws in its own process, as always. A process that has imported
matplotlib already starts no child, and one that runs many phases (a test session, a notebook)
starts one, for its first phase only (`once`).
"""

from __future__ import annotations

import base64
import contextlib
import json
import sys
from collections.abc import Iterator

from mltrainer.background import Child, spare_core
from mltrainer.project import Project
from mltrainer.reporting._figures import ReportFigure
from mltrainer.state import ProjectState

TIMEOUT_S = 120.0  # then the figures are drawn here: a report never waits on a stuck child
_STARTED = False  # a child was started in this process (a fresh `mlt` runs one phase)


class FigureDrawer:
    """`figures(project, state, phase)` from the child, or None (draw them here)."""

    def __init__(self, *, once: bool = False) -> None:
        global _STARTED
        self._child: Child | None = None
        if "matplotlib" in sys.modules or (once and _STARTED):  # nothing to gain
            return
        self._child = Child.start(__name__)
        _STARTED = _STARTED or self._child is not None

    @property
    def started(self) -> bool:
        return self._child is not None

    def figures(self, project: Project, state: ProjectState, phase: str
                ) -> list[ReportFigure] | None:
        child, self._child = self._child, None
        if child is None:
            return None
        child.send(json.dumps({"root": str(project.root), "phase": phase,
                               "state": state.model_dump_json()}).encode("utf-8"))
        out = child.receive(TIMEOUT_S)
        try:
            return None if out is None else [
                ReportFigure(f["phase"], f["name"], f["title"], base64.b64decode(f["png"]),
                             f["error"]) for f in json.loads(out)]
        except (ValueError, KeyError, TypeError):
            return None

    @contextlib.contextmanager
    def closed_on_error(self) -> Iterator[None]:
        """Around the phase: a phase that fails will ask for no figures."""
        try:
            yield
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        child, self._child = self._child, None
        if child is not None:
            child.close()


def serve() -> None:
    """The child: import the plotting code, read one request, answer with the figures."""
    import mltrainer.reporting._plots  # noqa: F401  (the import this process exists for)
    from mltrainer.reporting._figures import phase_figures

    raw = sys.stdin.buffer.read()
    if not raw:  # the parent went away without asking
        return
    request = json.loads(raw)
    state = ProjectState.model_validate_json(request["state"])
    # this process has no torch and no threads: its figures are drawn on two cores when one
    # is spare, not counting the command, which the load average counts as busy but which
    # now waits for them with its own core idle (on a busy machine a second drawing process
    # only adds its fork: measured ~0.1 s slower at load 2.7 on 2 cores)
    figures = phase_figures(Project.at(request["root"]), state, request["phase"],
                            parallel=spare_core(waiting=1))
    answer = [{"phase": f.phase, "name": f.name, "title": f.title,
               "png": base64.b64encode(f.png).decode("ascii"), "error": f.error}
              for f in figures]
    sys.stdout.buffer.write(json.dumps(answer).encode("utf-8"))
    sys.stdout.buffer.flush()
