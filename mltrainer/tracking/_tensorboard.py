"""TensorBoard: event files in `runs/<id>/tensorboard/`, read with `tensorboard --logdir runs`.

Params go in as the HParams plugin's session (one row per run in the HPARAMS tab, with the
goal metric's `val/<metric>` and `epoch/val_loss` as its metric columns); every metric is a
scalar at the global step. A resumed run appends a new event file to the same folder and
purges what the first one logged past the checkpoint it resumes from.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrainer.tracking._base import Scalar, Tracker, require

if TYPE_CHECKING:
    from mltrainer.config import MltConfig


class TensorBoardTracker(Tracker):
    name = "tensorboard"

    def __init__(self, cfg: MltConfig, run_dir: Path, root: Path) -> None:
        super().__init__(cfg, run_dir, root)
        require("tensorboard", self.name)  # torch.utils.tensorboard needs the package
        self._tb = require("torch.utils.tensorboard", self.name)
        self._summary = require("torch.utils.tensorboard.summary", self.name)
        self._writer: Any = None

    @property
    def log_dir(self) -> Path:
        return self.run_dir / "tensorboard"

    def start(self, params: dict[str, Scalar], event: dict[str, Any]) -> None:
        resumed = event.get("resumed_from")
        purge = int(resumed["step"]) + 1 if resumed else None
        self._writer = self._tb.SummaryWriter(log_dir=str(self.log_dir), purge_step=purge,
                                              flush_secs=30)
        if resumed:
            return  # the first event file holds the session's params already
        hparams = {k: ("null" if v is None else v) for k, v in params.items()}
        metrics = {f"val/{event.get('metric', self.cfg.goal.metric)}": 0.0,
                   "epoch/val_loss": 0.0}  # names only: the values come from the scalars
        file_writer = self._writer._get_file_writer()
        for summary in self._summary.hparams(hparams, metrics):
            file_writer.add_summary(summary)

    def log(self, metrics: dict[str, float], step: int, wall_time: float | None) -> None:
        for tag, value in metrics.items():
            self._writer.add_scalar(tag, value, global_step=step, walltime=wall_time)

    def flush(self) -> None:
        self._writer.flush()

    def finish(self, reason: str) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
