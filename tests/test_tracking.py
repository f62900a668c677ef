"""tracking.report_to: tiny real runs (breast_cancer, mlp [8], 3 epochs) mirrored into each
backend, read back through the backend's own reader; missing extras; trackers never stop a run.
"""

from __future__ import annotations

import math
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

from mltrainer.config import MltConfig, parse_config
from mltrainer.engine import Trainer
from mltrainer.errors import ConfigError
from mltrainer.stream import read_stream
from mltrainer.tracking import (
    Tracker,
    epoch_metrics,
    flatten_params,
    step_stride,
    trackers_for,
)

EPOCHS = 3
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:mlflow.*")


def make_config(report_to: list[str], **training: Any) -> MltConfig:
    return parse_config({
        "name": "bc-tracking", "task": "classification", "seed": 7,
        "data": {"source": "sklearn:breast_cancer"},
        "model": {"kind": "mlp", "hidden": [8], "dropout": 0.0},
        "training": {"epochs": EPOCHS, "batch_size": 64, "lr": 0.01, "device": "cpu",
                     "grad_stats_every": 0, "early_stopping": {"patience": 0}, **training},
        "goal": {"metric": "accuracy", "target": 0.9},
        "tracking": {"report_to": report_to},
    })


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One project root for the module: runs/ and .mlt/ (the MLflow store) live in it."""
    return tmp_path_factory.mktemp("project")


@pytest.fixture(scope="module")
def bundle(project: Path) -> Any:
    from mltrainer.data import prepare_data

    return prepare_data(make_config([]), project)


def train(cfg: MltConfig, bundle: Any, project: Path, name: str, **kw: Any) -> tuple[Any, Path]:
    run_dir = project / "runs" / name
    result = Trainer(cfg, bundle, run_dir, background_checkpoints=False,
                     subscribers=kw.pop("subscribers", ()), baseline=kw.pop("baseline", None),
                     ).fit(**kw)
    return result, run_dir


def stream(run_dir: Path, kind: str) -> list[dict[str, Any]]:
    return [e for e in read_stream(run_dir / "metrics.jsonl") if e["type"] == kind]


def assert_points(got: list[tuple[int, float]], want: list[tuple[int, float]]) -> None:
    """Same steps, same values (float32 in TensorBoard, so approximately)."""
    assert [s for s, _ in got] == [s for s, _ in want]
    assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-6)


def epoch_points(run_dir: Path) -> list[tuple[int, float]]:
    """(global step, val accuracy) of every epoch event: what each backend must hold."""
    return [(e["step"], e["val"]["accuracy"]) for e in stream(run_dir, "epoch")]


# -- TensorBoard ---------------------------------------------------------------------------------


def test_tensorboard_receives_params_and_metrics(project: Path, bundle: Any) -> None:
    pytest.importorskip("tensorboard", reason="the tensorboard extra (CI installs it: [test])")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    result, run_dir = train(make_config(["tensorboard"]), bundle, project, "tb-1",
                            baseline={"accuracy": 0.63, "loss": 0.66})
    assert result.stopped_reason == "completed" and result.epochs_run == EPOCHS

    acc = EventAccumulator(str(run_dir / "tensorboard"))
    acc.Reload()
    scalars = set(acc.Tags()["scalars"])
    assert {"step/loss", "step/lr", "step/grad_norm", "epoch/train_loss", "epoch/val_loss",
            "epoch/lr", "epoch", "val/accuracy", "val/f1_macro"} <= scalars
    assert_points([(e.step, e.value) for e in acc.Scalars("val/accuracy")],
                  epoch_points(run_dir))
    assert_points([(e.step, e.value) for e in acc.Scalars("step/loss")],  # every step here
                  [(e["step"], e["loss"]) for e in stream(run_dir, "step")])

    content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    assert hparams["training.lr"].number_value == pytest.approx(0.01)
    assert hparams["model.hidden"].string_value == "[8]"
    assert hparams["run_id"].string_value == "tb-1"
    assert hparams["task"].string_value == "classification"
    assert hparams["metric"].string_value == "accuracy"
    assert hparams["baseline.accuracy"].number_value == pytest.approx(0.63)
    assert hparams["training.grad_clip"].number_value == 1.0


# -- MLflow --------------------------------------------------------------------------------------


def _mlflow_run(project: Path, run_id: str) -> tuple[Any, Any]:
    from mlflow.tracking import MlflowClient

    from mltrainer.tracking._mlflow import tracking_uri

    uri = tracking_uri(project)
    assert uri == f"sqlite:///{(project / '.mlt' / 'mlflow.db').resolve()}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("bc-tracking")
    runs = client.search_runs([experiment.experiment_id],
                              filter_string=f"attributes.run_name = '{run_id}'")
    assert len(runs) == 1, runs
    return client, client.get_run(runs[0].info.run_id)


def test_mlflow_receives_params_and_metrics(project: Path, bundle: Any) -> None:
    pytest.importorskip("mlflow", reason="the mlflow extra (CI installs it: [test])")
    result, run_dir = train(make_config(["mlflow"]), bundle, project, "mlflow-1")
    assert result.stopped_reason == "completed" and result.epochs_run == EPOCHS
    assert not (project / "mlruns").exists()  # never MLflow's default location

    client, run = _mlflow_run(project, "mlflow-1")
    params = run.data.params
    assert params["training.lr"] == "0.01" and params["model.hidden"] == "[8]"
    assert params["run_id"] == "mlflow-1" and params["task"] == "classification"
    assert params["metric"] == "accuracy" and params["training.grad_clip"] == "1.0"
    assert params["tracking.report_to"] == '["mlflow"]'
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlt.stopped_reason"] == "completed"
    assert run.data.tags["mlt.run_id"] == "mlflow-1"

    history = client.get_metric_history(run.info.run_id, "val/accuracy")
    assert_points([(m.step, m.value) for m in history], epoch_points(run_dir))
    losses = client.get_metric_history(run.info.run_id, "epoch/train_loss")
    assert [m.value for m in losses] == pytest.approx([h["train_loss"] for h in result.history])
    steps = client.get_metric_history(run.info.run_id, "step/loss")
    assert_points([(m.step, m.value) for m in steps],
                  [(e["step"], e["loss"]) for e in stream(run_dir, "step")])


class StopAtEpoch:
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_event(self, event: dict[str, Any]) -> str | None:
        return "test:stop" if event["type"] == "epoch" and event["epoch"] == self.epoch else None


def test_mlflow_stopped_run_is_closed_and_resume_continues_it(project: Path,
                                                              bundle: Any) -> None:
    pytest.importorskip("mlflow", reason="the mlflow extra (CI installs it: [test])")
    cfg = make_config(["mlflow"])
    first, run_dir = train(cfg, bundle, project, "mlflow-2", subscribers=[StopAtEpoch(2)])
    assert first.stopped_reason == "test:stop"
    client, run = _mlflow_run(project, "mlflow-2")
    assert run.info.status == "FAILED"  # a subscriber's stop is not a finished run
    assert run.data.tags["mlt.stopped_reason"] == "test:stop"
    assert len(client.get_metric_history(run.info.run_id, "val/accuracy")) == 2

    second, _ = train(cfg, bundle, project, "mlflow-2",
                      resume=run_dir / "checkpoints" / "epoch-002.pt")
    assert second.stopped_reason == "completed"
    client, again = _mlflow_run(project, "mlflow-2")  # the same MLflow run, continued
    assert again.info.run_id == run.info.run_id and again.info.status == "FINISHED"
    history = client.get_metric_history(run.info.run_id, "val/accuracy")
    assert_points([(m.step, m.value) for m in history], epoch_points(run_dir))


# -- Trackio -------------------------------------------------------------------------------------


@pytest.fixture
def trackio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """trackio with its local store in tmp_path (TRACKIO_DIR is read when trackio imports)."""
    monkeypatch.setenv("TRACKIO_DIR", str(tmp_path / "trackio"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for var in ("TRACKIO_SPACE_ID", "TRACKIO_SERVER_URL"):
        monkeypatch.delenv(var, raising=False)
    module = pytest.importorskip(
        "trackio", reason="the trackio extra: pip install 'mltrainer[trackio]'")
    import trackio.sqlite_storage
    import trackio.utils

    for mod in (trackio.utils, trackio.sqlite_storage):  # when imported earlier in the session
        monkeypatch.setattr(mod, "TRACKIO_DIR", tmp_path / "trackio")
    return module


def test_trackio_receives_params_and_metrics(project: Path, bundle: Any, trackio: Any,
                                             capfd: pytest.CaptureFixture[str]) -> None:
    from trackio.sqlite_storage import SQLiteStorage

    result, run_dir = train(make_config(["trackio"]), bundle, project, "trackio-1")
    assert result.stopped_reason == "completed" and result.epochs_run == EPOCHS
    assert "Trackio" not in capfd.readouterr().out  # mlt's core does not print

    runs = [r for r in trackio.Api().runs("bc-tracking") if r.name == "trackio-1"]
    assert len(runs) == 1
    config = runs[0].config
    assert config["training.lr"] == 0.01 and config["model.hidden"] == "[8]"
    assert config["run_id"] == "trackio-1" and config["task"] == "classification"
    assert config["metric"] == "accuracy"

    logs = SQLiteStorage.get_logs("bc-tracking", "trackio-1")
    got = [(row["step"], row["val/accuracy"]) for row in logs if "val/accuracy" in row]
    assert_points(got, epoch_points(run_dir))
    step_losses = [(row["step"], row["step/loss"]) for row in logs if "step/loss" in row]
    assert_points(step_losses, [(e["step"], e["loss"]) for e in stream(run_dir, "step")])
    assert trackio.context_vars.current_run.get() is None  # finished: nothing left at exit


# -- a missing extra -----------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["tensorboard", "mlflow", "trackio"])
def test_missing_backend_is_a_config_error_naming_the_extra(
        project: Path, bundle: Any, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, backend, None)  # `import <backend>` now fails
    run_dir = project / "runs" / f"missing-{backend}"
    with pytest.raises(ConfigError) as caught:
        Trainer(make_config([backend]), bundle, run_dir)
    assert caught.value.message == (
        f"tracking.report_to lists '{backend}' but {backend} is not installed: "
        f"pip install 'mltrainer[{backend}]'")
    assert "report_to" in (caught.value.hint or "")
    assert not run_dir.exists()  # refused before any work


# -- trackers never stop training ----------------------------------------------------------------


class Recording(Tracker):
    name = "recording"

    def __init__(self, *args: Any, fail_on: str | None = None) -> None:
        super().__init__(*args)
        self.fail_on = fail_on
        self.calls: list[tuple[str, Any]] = []
        self.answers: list[Any] = []

    def on_event(self, event: dict[str, Any]) -> str | None:
        answer = super().on_event(event)
        self.answers.append(answer)
        return answer

    def start(self, params: dict[str, Any], event: dict[str, Any]) -> None:
        self.calls.append(("start", params))

    def log(self, metrics: dict[str, float], step: int, wall_time: float | None) -> None:
        if self.fail_on is not None and self.fail_on in metrics:
            raise OSError("disk full")
        self.calls.append(("log", (step, metrics)))

    def finish(self, reason: str) -> None:
        self.calls.append(("finish", reason))


def test_trackers_never_stop_training(project: Path, bundle: Any) -> None:
    cfg = make_config([])
    ok = Recording(cfg, project / "runs" / "never-stop", project)
    failing = Recording(cfg, project / "runs" / "never-stop", project, fail_on="epoch")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result, _ = train(cfg, bundle, project, "never-stop", subscribers=[failing, ok])
    assert result.stopped_reason == "completed" and result.epochs_run == EPOCHS
    assert set(ok.answers) == {None} and set(failing.answers) == {None}
    assert len(ok.answers) == len(failing.answers) == len(read_stream(
        project / "runs" / "never-stop" / "metrics.jsonl"))

    # the healthy one saw everything, in order, and was closed with the end event's reason
    kinds = [kind for kind, _ in ok.calls]
    assert kinds[0] == "start" and kinds[-1] == "finish" and ok.calls[-1][1] == "completed"
    assert sum(1 for _, (s, m) in [c for c in ok.calls if c[0] == "log"] if "epoch" in m) == EPOCHS
    # the failing one warned once, was closed, and got nothing more
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len([m for m in messages if "tracking: recording failed" in m]) == 1
    assert failing.calls[-1] == ("finish", "tracking_error")
    assert [k for k, _ in failing.calls].count("finish") == 1


def test_params_metrics_and_stride() -> None:
    cfg = make_config(["mlflow"], grad_clip=None)
    params = flatten_params(cfg, {"type": "start", "run_id": "r", "metric": "accuracy",
                                  "kind": "baseline", "baseline": {"accuracy": 0.5}})
    assert params["training.lr"] == 0.01 and params["training.grad_clip"] is None
    assert params["model.hidden"] == "[8]" and params["name"] == "bc-tracking"
    assert params["training.early_stopping.patience"] == 0
    assert params["run_id"] == "r" and params["baseline.accuracy"] == 0.5
    assert "model.params" not in params  # an empty mapping says nothing
    assert step_stride(5) == 1 and step_stride(50) == 1 and step_stride(1000) == 20
    assert epoch_metrics({"type": "epoch", "epoch": 2, "step": 10, "train_loss": 0.5,
                          "val_loss": math.nan, "val": {"accuracy": 0.9}, "lr": 1e-3,
                          "wall_time": 0.1}) == pytest.approx({
        "epoch": 2.0, "epoch/train_loss": 0.5, "epoch/val_loss": math.nan, "epoch/lr": 1e-3,
        "epoch/wall_time_s": 0.1, "val/accuracy": 0.9}, nan_ok=True)
    assert trackers_for(make_config([]), Path("runs/x"), Path(".")) == []
