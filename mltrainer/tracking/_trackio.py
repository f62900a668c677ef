"""Trackio: its local SQLite store (TRACKIO_DIR, default ~/.cache/huggingface/trackio).

Project = the config's `name`, run name = the run id, config = the params; a resumed run
continues its Trackio run (`resume="allow"`). mlt passes no Space, server or bucket and turns
trackio's CPU/GPU auto-logging off; trackio's own TRACKIO_SPACE_ID / TRACKIO_SERVER_URL
environment variables would send the run elsewhere, so leave them unset for local-only runs.
Trackio's console chatter is kept off stdout (mlt's core never prints).

    trackio show --project NAME
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrainer.errors import ConfigError
from mltrainer.tracking._base import Scalar, Tracker, require

if TYPE_CHECKING:
    from mltrainer.config import MltConfig


class TrackioTracker(Tracker):
    name = "trackio"

    def __init__(self, cfg: MltConfig, run_dir: Path, root: Path) -> None:
        super().__init__(cfg, run_dir, root)
        self._trackio = require("trackio", self.name)
        storage = getattr(self._trackio, "SQLiteStorage", None)
        validate = getattr(storage, "validate_project_name", None)
        if validate is not None:
            try:
                validate(cfg.name)
            except ValueError as exc:
                raise ConfigError(
                    f"field 'name' has value {cfg.name!r}, which Trackio cannot use as a "
                    f"project: {exc}",
                    hint="rename the project in mlt.yaml, or remove 'trackio' from "
                    "tracking.report_to",
                ) from None
        self._run: Any = None

    def start(self, params: dict[str, Scalar], event: dict[str, Any]) -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            self._run = self._trackio.init(
                project=self.cfg.name, name=self.run_id, config=dict(params),
                resume="allow", embed=False, auto_log_cpu=False, auto_log_gpu=False,
            )

    def log(self, metrics: dict[str, float], step: int, wall_time: float | None) -> None:
        self._run.log(dict(metrics), step=step)

    def finish(self, reason: str) -> None:
        run, self._run = self._run, None
        if run is None:
            return
        with contextlib.redirect_stdout(io.StringIO()):
            current = getattr(getattr(self._trackio, "context_vars", None), "current_run", None)
            if current is not None and current.get() is run:
                self._trackio.finish()  # also clears trackio's current run (no finish at exit)
            else:
                run.finish()
