"""mlt.yaml validation: the errors a user sees name the file, field, value and fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mltrainer.config import config_field, json_schema, load_config, parse_config
from mltrainer.errors import ConfigError
from mltrainer.resources import example_config


def _example() -> dict:
    return yaml.safe_load(example_config("digits"))


def _write(tmp_path: Path, data: dict | str) -> Path:
    path = tmp_path / "mlt.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("name", ["digits", "breast_cancer", "diabetes"])
def test_examples_validate(name: str) -> None:
    cfg = parse_config(yaml.safe_load(example_config(name)))
    assert cfg.name and cfg.goal.metric


def test_example_carries_the_design_contract_values() -> None:
    cfg = parse_config(_example())
    assert cfg.data.source == "sklearn:digits" and cfg.goal.target == 0.97
    assert cfg.model.kind == "cnn" and cfg.training.early_stopping.patience == 10
    assert cfg.data.split.stratify is True


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda c: c["training"].__setitem__("lrr", 0.1), "did you mean 'training.lr'"),
        (lambda c: c.__setitem__("modle", {}), "did you mean 'model'"),
        (lambda c: c["training"].__setitem__("lr", -1), "training.lr"),
        (lambda c: c["training"].__setitem__("optimizer", "adamx"), "'adamx'"),
        (lambda c: c["goal"].__setitem__("metric", "rmse"), "does not fit task"),
        (lambda c: c["data"].__setitem__("source", "digits"), "sklearn:<name>"),
        (lambda c: c["data"]["split"].__setitem__("val", 0.8), "at least 10% of rows"),
        (lambda c: c["model"].__setitem__("hidden", [64, 0]), "model.hidden"),
        (lambda c: c.pop("goal"), "'goal' is required"),
        (lambda c: c["training"].__setitem__("epochs", "many"), "'many'"),
        # a goal the metric cannot reach would block finalize forever
        (lambda c: c["goal"].__setitem__("target", 2), "accuracy lies in [0, 1]"),
        (lambda c: c["goal"].update(metric="roc_auc", target=-0.1), "out of reach"),
        # true/false for a number was read as 1/0 (batch_size: true trained on batches of 1)
        (lambda c: c["training"].__setitem__("batch_size", True),
         "'training.batch_size' has bad value True: a number is needed, not true/false"),
        (lambda c: c["training"].__setitem__("lr", True), "a number is needed"),
        # a seed past 2**31 - 1 failed in scikit-learn's split as bad data (seed + k overflows)
        (lambda c: c.__setitem__("seed", 2**31), "field 'seed' has bad value 2147483648"),
        # a storage that is neither a URL nor a journal failed only when optimize opened it
        (lambda c: c.__setitem__("optimize", {"storage": "optuna.db"}),
         "field 'optimize.storage' has bad value 'optuna.db': must be a database URL"),
        # the train crop failed on every image, read as 'fix or remove that item'
        (lambda c: c["data"].__setitem__("transforms", {"size": 16, "crop": 32}),
         "crop 32 is larger than size 16 (the shorter side after resizing)"),
        (lambda c: c["data"].__setitem__("transforms", {"std": [0.0], "channels": 1}),
         "every std must be above 0 (it divides the pixels), got [0.0]"),
    ],
)
def test_bad_config_names_field_value_and_fix(tmp_path: Path, mutate, expected: str) -> None:
    data = _example()
    mutate(data)
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in err.value.message
    assert expected in err.value.message
    assert err.value.exit_code == 2
    assert "mlt config validate" in (err.value.hint or "")


@pytest.mark.parametrize(("task", "metric", "target", "ok"), [
    ("regression", "r2", 1.0, True), ("regression", "r2", -5.0, True),
    ("regression", "r2", 1.1, False), ("regression", "rmse", 0.0, True),
    ("regression", "rmse", -1.0, False), ("regression", "mae", 1e9, True),
    ("classification", "f1_macro", 1.0, True), ("classification", "f1_macro", 1.01, False),
])
def test_goal_target_must_be_reachable(task: str, metric: str, target: float, ok: bool
                                       ) -> None:
    raw = _example() | {"task": task, "goal": {"metric": metric, "target": target}}
    if ok:
        assert parse_config(raw).goal.target == target
    else:
        with pytest.raises(ConfigError, match="is out of reach"):
            parse_config(raw)


def test_a_check_across_fields_says_its_message_not_the_whole_config(tmp_path: Path) -> None:
    data = _example()
    data["goal"]["metric"] = "rmse"
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, data))
    assert "(top level)" not in err.value.message and "'data'" not in err.value.message


def test_invalid_yaml_gives_line_number(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: x\ntask: [classification\n")
    with pytest.raises(ConfigError, match="line"):
        load_config(path)


def test_missing_file_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "mlt.yaml")


def test_fingerprint_changes_with_content_not_formatting(tmp_path: Path) -> None:
    data = _example()
    a = parse_config(data).fingerprint()
    flow = yaml.safe_load(yaml.safe_dump(data, default_flow_style=True))
    assert parse_config(flow).fingerprint() == a
    data["training"]["lr"] = 0.002
    assert parse_config(data).fingerprint() != a


def test_schema_documents_every_field() -> None:
    schema = json_schema()
    training = schema["$defs"]["TrainingConfig"]["properties"]
    assert training["lr"]["default"] == 1e-3
    undocumented = [
        f"{name}.{field}"
        for name, model in schema["$defs"].items()
        for field, prop in model.get("properties", {}).items()
        if not prop.get("description") and "$ref" not in prop and "allOf" not in prop
    ]
    assert undocumented == []


@pytest.mark.parametrize(
    ("thresholds", "expected"),
    [
        ({"overfiting": {"patience": 3}}, "did you mean 'overfitting'"),
        ({"overfitting": {"patiense": 3}}, "did you mean 'patience'"),
        ({"overfitting": {"patience": -1}}, "-1"),
    ],
)
def test_bad_detector_threshold_fails_at_load(tmp_path: Path, thresholds, expected) -> None:
    data = _example()
    data["diagnose"] = {"thresholds": thresholds}
    path = _write(tmp_path, data)
    from mltrainer.runner import load_project_config

    with pytest.raises(ConfigError) as err:
        load_project_config(path)
    assert str(path) in err.value.message and expected in err.value.message


def test_detector_threshold_override_loads(tmp_path: Path) -> None:
    data = _example()
    data["diagnose"] = {"thresholds": {"overfitting": {"patience": 4}}}
    assert load_config(_write(tmp_path, data)).diagnose.thresholds["overfitting"]["patience"] == 4


@pytest.mark.parametrize("off", [None, False])
@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("training.early_stopping", {"patience": 0, "min_delta": 0.0}),
        ("training.early_stopping.patience", 0),
        ("training.grad_clip", None),
        ("training.scheduler", "none"),
        ("training.warmup_epochs", 0),
        ("training.weight_decay", 0.0),
        ("training.grad_stats_every", 0),
        ("model.dropout", 0.0),
        ("model.norm", "none"),
        ("optimize.timeout", None),
        ("optimize.storage", None),
        ("tracking.report_to", []),
    ],
)
def test_null_and_false_mean_off(off: Any, path: str, expected: Any) -> None:
    """Every feature that can be off takes null or false for "off", with one meaning: the
    same config (and fingerprint) as spelling the off value out."""
    def with_value(value: Any) -> dict[str, Any]:
        raw: dict[str, Any] = {"name": "x", "task": "classification",
                               "data": {"source": "sklearn:iris"}, "goal": {"target": 0.9}}
        *parents, leaf = path.split(".")
        node = raw
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
        return raw

    cfg = parse_config(with_value(off))
    value: Any = cfg
    for part in path.split("."):
        value = getattr(value, part)
    dumped = value.model_dump() if hasattr(value, "model_dump") else value
    assert dumped == expected
    assert cfg.fingerprint() == parse_config(with_value(expected)).fingerprint()
    assert "null" in str(config_field(path).description)  # the schema documents it
