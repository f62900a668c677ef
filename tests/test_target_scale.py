"""Regression targets standardised on train (`data/_target.py`): the model learns
(y - mean) / std; metrics, the trivial baseline's metrics, reloads, the test evaluation and
every export are in the target's units; the losses the detectors read are standardised."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import recorded_outcome

from mltrainer.config import parse_config
from mltrainer.data import DataSpec, prepare_data, running_phase, trivial_baseline
from mltrainer.data._target import TargetScale, standardises_target
from mltrainer.detectors import DetectorContext
from mltrainer.engine import Trainer, compute_metrics, load_model_from_checkpoint, predict
from mltrainer.stream import read_stream


def regression_cfg(**data: Any) -> Any:
    return parse_config({"name": "t", "task": "regression", "seed": 0,
                         "data": {"source": "sklearn:diabetes", **data},
                         "model": {"kind": "mlp", "hidden": [16], "dropout": 0.0},
                         "training": {"epochs": 2, "batch_size": 64, "lr": 0.01},
                         "goal": {"metric": "rmse", "target": 60.0}})


@pytest.mark.parametrize(("task", "switch", "entrypoint", "applies"), [
    ("regression", "default", None, True),
    ("regression", True, None, True),
    ("regression", False, None, False),
    ("regression", None, None, False),  # null = off, as everywhere in the schema
    ("regression", True, "train.py", False),  # the project's own loop gets raw targets
    ("classification", "default", None, False),
])
def test_when_targets_are_standardised(task: str, switch: Any, entrypoint: str | None,
                                       applies: bool) -> None:
    data: dict[str, Any] = {"source": "sklearn:diabetes"}
    if switch != "default":
        data["standardize_target"] = switch
    cfg = parse_config({"name": "t", "task": task, "data": data,
                        "training": {"entrypoint": entrypoint},
                        "goal": {"metric": "rmse" if task == "regression" else "accuracy",
                                 "target": 0.5}})
    assert standardises_target(cfg) is applies


def test_spec_records_the_train_scale_and_old_records_load_as_identity() -> None:
    bundle = prepare_data(regression_cfg(), Path("."))
    scale = bundle.spec.target_scale
    y = bundle.train.y.astype(np.float64)
    assert (scale.mean, scale.std) == pytest.approx((y.mean(), y.std()), rel=1e-6)
    assert np.float32(scale.mean) == scale.mean and np.float32(scale.std) == scale.std
    record = json.loads(json.dumps(bundle.spec.to_dict()))
    assert DataSpec.from_dict(record) == bundle.spec
    del record["target_scale"]  # a spec recorded before targets were standardised
    assert DataSpec.from_dict(record).target_scale is None
    assert TargetScale.from_dict(None) is None
    # a state file written before the field existed loads, its spec without a scale
    old = recorded_outcome("plan")
    assert "target_scale" not in old.data.spec
    assert DataSpec.from_dict(old.data.spec).target_scale is None


@pytest.mark.parametrize(("baseline", "untrained"), [
    ({"loss": 4.0, "predicts": 10.0}, 104.0),  # raw units: + the mean's square
    ({"loss": 1.0, "predicts": 10.0, "target_scale": {"mean": 10.0, "std": 2.0}}, 1.0),
    ({"loss": 1.0, "predicts": 12.0, "target_scale": {"mean": 10.0, "std": 2.0}}, 2.0),
])
def test_untrained_loss_is_in_the_losses_units(baseline: dict[str, Any],
                                               untrained: float) -> None:
    ctx = DetectorContext(task="regression", baseline=baseline)
    assert ctx.untrained_loss == pytest.approx(untrained)


@pytest.mark.parametrize("standardize", [True, False])
def test_training_loss_is_standardised_and_metrics_stay_raw(tmp_path: Path,
                                                            standardize: bool) -> None:
    cfg = regression_cfg(standardize_target=standardize)
    bundle = prepare_data(cfg, tmp_path)
    scale = bundle.spec.target_scale
    baseline = trivial_baseline(bundle, "rmse")
    result = Trainer(cfg, bundle, tmp_path / "run", baseline=baseline).fit()
    events = list(read_stream(tmp_path / "run" / "metrics.jsonl"))
    start = events[0]
    epoch = next(e for e in events if e["type"] == "epoch")
    std = scale.std if standardize else 1.0
    # the stream's losses and the baseline's loss share one scale, the one the stream names
    assert start.get("target_scale") == (scale.to_dict() if standardize else None)
    assert start["baseline"]["loss"] == pytest.approx(baseline["rmse"] ** 2 / std**2)
    assert epoch["val_loss"] == pytest.approx((epoch["val"]["rmse"] / std) ** 2, rel=1e-4)
    assert (epoch["train_loss"] < 10.0) is standardize  # diabetes: raw MSE in the thousands
    # the best checkpoint reloads to the recorded val metrics, in the target's units
    model = load_model_from_checkpoint(Path(result.checkpoints["best"]), cfg, bundle.spec)
    outputs = predict(model, bundle.val.X, target_scale=scale)
    assert compute_metrics("regression", bundle.val.y, outputs) == result.val
    assert abs(outputs.mean() - bundle.train.y.mean()) < (80.0 if standardize else 200.0)


def test_deployable_ends_with_the_inverse(tmp_path: Path) -> None:
    import torch

    from mltrainer.exporting import build_deployable
    from mltrainer.models import build_model

    cfg = regression_cfg()
    bundle = prepare_data(cfg, tmp_path)
    scale = bundle.spec.target_scale
    model = build_model(cfg.model, bundle.spec).eval()
    deployable = build_deployable(model, bundle.preprocessor.scale_params, "regression",
                                  target_scale=scale)
    with torch.inference_mode():
        shipped = deployable(torch.from_numpy(bundle.val.encoded)).numpy().reshape(-1)
    eager = predict(model, bundle.val.X, target_scale=scale)
    np.testing.assert_allclose(shipped, eager, rtol=1e-5, atol=1e-4)
    raw = build_deployable(model, bundle.preprocessor.scale_params, "regression")
    with torch.inference_mode():
        unscaled = raw(torch.from_numpy(bundle.val.encoded)).numpy().reshape(-1)
    np.testing.assert_allclose(shipped, unscaled * scale.std + scale.mean, rtol=1e-5,
                               atol=1e-3)


def test_finalize_ships_raw_units_equal_to_the_onnx_outputs(tmp_path: Path) -> None:
    """Through the CLI: diabetes (target mean ~152) trained on standardised targets; the test
    metrics finalize records are what the shipped ONNX model's raw outputs score, parity holds,
    preprocess.json states the inverse, and `mlt predict` writes values in the target's units."""
    import onnxruntime as ort
    from test_finalize import build_project, mlt

    root = tmp_path / "proj"
    result = build_project(root, "diabetes", model={"hidden": [16]},
                           training={"epochs": 6, "lr": 0.01}, goal={"target": 0.1},
                           finalize={"bootstrap": 100})
    items = {i["id"]: i for i in result["gate"]["items"]}
    failing = {k: v["evidence"] for k, v in items.items()
               if v["kind"] == "auto" and v["status"] != "pass"}
    assert not failing
    assert all(e["passed"] for e in result["exports"]), result["exports"]
    folder = root / "artifacts" / result["artifact_hash"][:12]
    doc = json.loads((folder / "preprocess.json").read_text())
    cfg = parse_config(__import__("yaml").safe_load((root / "mlt.yaml").read_text()))
    bundle = prepare_data(cfg, root, audit=lambda record: None)
    assert doc["output"]["target_scale"] == bundle.spec.target_scale.to_dict()
    assert "standardised on the train split" in (folder / "model_card.md").read_text()
    with running_phase("finalize"):
        test = bundle.test("finalize")
    session = ort.InferenceSession(str(folder / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    raw = session.run(None, {session.get_inputs()[0].name: test.encoded})[0].reshape(-1)
    assert abs(raw.mean() - test.y.mean()) < 0.5 * test.y.std()  # raw units, not ~0
    by_hand = compute_metrics("regression", test.y, raw)
    for name, value in result["test"]["metrics"].items():
        assert value == pytest.approx(by_hand[name], rel=1e-4), name
    # mlt predict: raw rows in, values in the target's units out
    import pandas as pd

    rows = pd.DataFrame(test.encoded[:5], columns=bundle.spec.feature_names)
    rows.to_csv(tmp_path / "rows.csv", index=False)
    code, _, err = mlt("predict", "-C", str(root), str(tmp_path / "rows.csv"),
                       "--out", str(tmp_path / "pred.csv"))
    assert code == 0, err
    written = pd.read_csv(tmp_path / "pred.csv")["prediction"].to_numpy()
    np.testing.assert_allclose(written, raw[:5], rtol=1e-5)


def test_item_data_regression_trains_standardised_and_ships_raw_units(tmp_path: Path) -> None:
    """A `python:` torch Dataset with an offset target: the same scale, fitted on the train
    items, through the DataLoader path, the reload and the item deployable."""
    import torch

    from mltrainer.exporting import build_item_deployable

    (tmp_path / "offsetds.py").write_text(
        "import torch\n"
        "from torch.utils.data import TensorDataset\n"
        "def load():\n"
        "    g = torch.Generator().manual_seed(0)\n"
        "    X = torch.randn(120, 4, generator=g)\n"
        "    return TensorDataset(X, 100.0 + 3.0 * X[:, 0] - X[:, 1])\n")
    cfg = parse_config({"name": "t", "task": "regression", "seed": 0,
                        "data": {"source": "python:offsetds:load"},
                        "model": {"kind": "mlp", "hidden": [8], "dropout": 0.0},
                        "training": {"epochs": 2, "batch_size": 32, "lr": 0.01},
                        "goal": {"metric": "rmse", "target": 1.0}})
    bundle = prepare_data(cfg, tmp_path)
    scale = bundle.spec.target_scale
    assert scale is not None and scale.mean == pytest.approx(bundle.train.y.mean(), rel=1e-5)
    result = Trainer(cfg, bundle, tmp_path / "run", root=tmp_path).fit()
    model = load_model_from_checkpoint(Path(result.checkpoints["best"]), cfg, bundle.spec,
                                       root=tmp_path)
    outputs = predict(model, bundle.val.X, target_scale=scale)
    assert compute_metrics("regression", bundle.val.y, outputs) == result.val
    deployable = build_item_deployable(model, bundle.pipeline, target_scale=scale)
    X = torch.stack([bundle.val.items.dataset[int(i)][0] for i in bundle.val.indices])
    with torch.inference_mode():
        shipped = deployable(X).numpy().reshape(-1)
    np.testing.assert_allclose(shipped, outputs, rtol=1e-5, atol=1e-4)
