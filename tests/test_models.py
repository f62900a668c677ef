"""Built-in models and user factories: shapes, refusals, and the factory contract."""

from __future__ import annotations

import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from mltrainer.config import ModelConfig
from mltrainer.errors import ConfigError
from mltrainer.models import MLP, SmallCNN, build_model


def _spec(task: str = "classification", n_features: int = 64, n_classes: int | None = 10,
          image_shape: tuple[int, ...] | None = (1, 8, 8)) -> SimpleNamespace:
    return SimpleNamespace(
        task=task, n_features=n_features, n_classes=n_classes,
        feature_names=[f"f{i}" for i in range(n_features)], image_shape=image_shape,
        class_labels=list(range(n_classes)) if n_classes else None,
    )


@pytest.mark.parametrize(
    ("kind", "spec", "extra", "expected"),
    [
        ("mlp", _spec(), {}, (5, 10)),
        ("mlp", _spec(n_classes=2, n_features=30, image_shape=None), {}, (5, 2)),
        ("mlp", _spec("regression", 10, None, None), {}, (5, 1)),
        ("mlp", _spec(), {"norm": "batch", "activation": "gelu"}, (5, 10)),
        ("mlp", _spec(), {"norm": "layer", "activation": "tanh", "hidden": []}, (5, 10)),
        ("cnn", _spec(), {}, (5, 10)),
        ("cnn", _spec(), {"norm": "batch", "channels": [8, 8, 8]}, (5, 10)),
        ("cnn", _spec(), {"norm": "layer", "activation": "leaky_relu"}, (5, 10)),
        ("cnn", _spec("regression", 3 * 5 * 7, None, (3, 5, 7)), {}, (5, 1)),
    ],
)
def test_builtin_output_shapes(kind: str, spec: Any, extra: dict, expected: tuple) -> None:
    model = build_model(ModelConfig(kind=kind, **extra), spec)
    model.train()
    out = model(torch.randn(5, spec.n_features))
    assert tuple(out.shape) == expected
    assert isinstance(model, MLP if kind == "mlp" else SmallCNN)


def test_cnn_is_refused_without_image_shape() -> None:
    with pytest.raises(ConfigError, match="image_shape"):
        build_model(ModelConfig(kind="cnn"), _spec(image_shape=None))


def test_cnn_is_refused_when_image_shape_does_not_fit_features() -> None:
    with pytest.raises(ConfigError, match=r"C\*H\*W"):
        build_model(ModelConfig(kind="cnn"), _spec(n_features=60))


def test_classification_needs_two_classes() -> None:
    with pytest.raises(ConfigError, match="at least 2 classes"):
        build_model(ModelConfig(), _spec(n_classes=1))


def _factory_module(tmp_path: Path, body: str) -> str:
    name = f"user_model_{uuid.uuid4().hex[:8]}"  # unique: sys.modules caches by name
    (tmp_path / f"{name}.py").write_text(body)
    return name


FACTORY = '''
import torch.nn as nn
SEEN = {}

def make(input_spec, output_spec, width=8):
    SEEN.update(input_spec=input_spec, output_spec=output_spec, width=width)
    return nn.Sequential(nn.Linear(input_spec["n_features"], width), nn.ReLU(),
                         nn.Linear(width, output_spec["n_outputs"]))

def not_a_module(input_spec, output_spec):
    return "a string"

def boom(input_spec, output_spec):
    raise ValueError("bad width")
'''


def test_factory_is_called_with_specs_and_params(tmp_path: Path) -> None:
    name = _factory_module(tmp_path, FACTORY)
    cfg = ModelConfig(kind=f"python:{name}:make", params={"width": 12})
    model = build_model(cfg, _spec(), root=tmp_path)
    assert tuple(model(torch.randn(3, 64)).shape) == (3, 10)
    seen = __import__(name).SEEN
    assert seen["width"] == 12
    assert seen["input_spec"] == {"n_features": 64, "feature_names": [f"f{i}" for i in range(64)],
                                  "image_shape": (1, 8, 8), "modality": "table"}
    assert seen["output_spec"] == {"task": "classification", "n_outputs": 10,
                                   "class_labels": list(range(10))}


@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("not_a_module", "returned str, not a torch.nn.Module"),
        ("boom", "ValueError: bad width"),
        ("missing", "has no function 'missing'"),
    ],
)
def test_factory_errors_name_the_factory(tmp_path: Path, function: str, message: str) -> None:
    name = _factory_module(tmp_path, FACTORY)
    with pytest.raises(ConfigError, match=message) as info:
        build_model(ModelConfig(kind=f"python:{name}:{function}"), _spec(), root=tmp_path)
    assert name in info.value.message


def test_factory_import_error_names_the_module(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot import module 'no_such_module_xyz'"):
        build_model(ModelConfig(kind="python:no_such_module_xyz:make"), _spec(), root=tmp_path)


def test_factory_syntax_error_is_a_config_error(tmp_path: Path) -> None:
    name = _factory_module(tmp_path, "def make(:\n")
    with pytest.raises(ConfigError, match=f"cannot import module '{name}'.*SyntaxError"):
        build_model(ModelConfig(kind=f"python:{name}:make"), _spec(), root=tmp_path)
