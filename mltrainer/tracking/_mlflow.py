"""MLflow: a local SQLite store at `<project>/.mlt/mlflow.db`, never a server.

The tracking URI is set explicitly on an `MlflowClient` (no global `mlflow.set_tracking_uri`,
no fluent active run, MLFLOW_TRACKING_URI ignored), and MLflow's usage telemetry is switched
off before mlflow is imported unless MLFLOW_DISABLE_TELEMETRY says otherwise. Experiment = the
config's `name`, run name = the run id (also the tag `mlt.run_id`, by which a resumed run finds
and continues its MLflow run). Artifacts (mlt logs none) would go to `.mlt/mlflow-artifacts/`.

    mlflow ui --backend-store-uri sqlite:///.mlt/mlflow.db      # from the project root

Step metrics are buffered and written in one batch per epoch (and at the end).
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrainer.tracking._base import Scalar, Tracker, require

if TYPE_CHECKING:
    from mltrainer.config import MltConfig

DB_NAME = "mlflow.db"
ARTIFACTS_NAME = "mlflow-artifacts"
MAX_PARAM_VALUE = 6000   # MLflow's limits
MAX_KEY = 250
PARAMS_PER_BATCH = 100
METRICS_PER_BATCH = 1000

# the tag mlt.stopped_reason has the exact reason; anything else (detector:<id>, a subscriber's
# own stop, tracking_error) -> FAILED
_STATUS = {"completed": "FINISHED", "early_stopping": "FINISHED", "pruned": "FINISHED",
           "interrupted": "KILLED", "aborted": "KILLED"}


def tracking_uri(root: Path) -> str:
    return "sqlite:///" + str((Path(root) / ".mlt" / DB_NAME).resolve())


def _key(key: str) -> str:
    return re.sub(r"[^\w\-. /:]", "_", key)[:MAX_KEY]


def _value(value: Scalar) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= MAX_PARAM_VALUE else text[: MAX_PARAM_VALUE - 1] + "…"


class MlflowTracker(Tracker):
    name = "mlflow"

    def __init__(self, cfg: MltConfig, run_dir: Path, root: Path) -> None:
        super().__init__(cfg, run_dir, root)
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # local only, no network
        self._tracking = require("mlflow.tracking", self.name)
        self._entities = require("mlflow.entities", self.name)
        self.tracking_uri = tracking_uri(root)
        self._client: Any = None
        self._mlflow_run_id: str | None = None
        self._pending: list[Any] = []

    def start(self, params: dict[str, Scalar], event: dict[str, Any]) -> None:
        (self.root / ".mlt").mkdir(parents=True, exist_ok=True)
        client = self._tracking.MlflowClient(tracking_uri=self.tracking_uri)
        experiment_id = self._experiment(client)
        tags = {"mlt.run_id": self.run_id, "mlt.kind": str(event.get("kind", "")),
                "mlt.config_fingerprint": str(event.get("config_fingerprint", ""))}
        existing = None
        if event.get("resumed_from"):
            found = client.search_runs(
                [experiment_id], filter_string=f"tags.`mlt.run_id` = '{self.run_id}'",
                max_results=1)
            existing = found[0] if found else None
        if existing is not None:  # continue the MLflow run the interrupted one started
            self._mlflow_run_id = existing.info.run_id
            client.update_run(self._mlflow_run_id, status="RUNNING")
        else:
            run = client.create_run(experiment_id, run_name=self.run_id, tags=tags)
            self._mlflow_run_id = run.info.run_id
            Param = self._entities.Param
            items = [Param(_key(k), _value(v)) for k, v in params.items()]
            for i in range(0, len(items), PARAMS_PER_BATCH):
                client.log_batch(self._mlflow_run_id, params=items[i:i + PARAMS_PER_BATCH])
        self._client = client

    def _experiment(self, client: Any) -> str:
        name = self.cfg.name
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            artifacts = (self.root / ".mlt" / ARTIFACTS_NAME).resolve().as_uri()
            try:
                return client.create_experiment(name, artifact_location=artifacts)
            except Exception:  # another process created it meanwhile
                experiment = client.get_experiment_by_name(name)
                if experiment is None:
                    raise
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id

    def log(self, metrics: dict[str, float], step: int, wall_time: float | None) -> None:
        ms = int((wall_time if wall_time is not None else time.time()) * 1000)
        Metric = self._entities.Metric
        self._pending.extend(Metric(_key(k), v, ms, step) for k, v in metrics.items())

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        for i in range(0, len(pending), METRICS_PER_BATCH):
            self._client.log_batch(self._mlflow_run_id, metrics=pending[i:i + METRICS_PER_BATCH])

    def finish(self, reason: str) -> None:
        if self._client is None or self._mlflow_run_id is None:
            return
        try:
            self.flush()
            self._client.set_tag(self._mlflow_run_id, "mlt.stopped_reason", reason)
        finally:
            self._client.set_terminated(self._mlflow_run_id, status=_STATUS.get(reason, "FAILED"))
            self._client = None
