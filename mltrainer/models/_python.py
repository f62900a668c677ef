"""`python:<module>:<function>`: a factory in the user's project, imported with the project
root on `sys.path` and called as `fn(input_spec, output_spec, **model.params)`; it must return
an `nn.Module`."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

from torch import nn

from mltrainer.config import ModelConfig
from mltrainer.errors import ConfigError
from mltrainer.models._base import ModelKind, input_spec, output_spec, register_model_kind


@register_model_kind
class PythonKind(ModelKind):
    name = "python"
    modalities = ("table", "image", "text", "tensor")

    @classmethod
    def handles(cls, kind: str) -> bool:
        return kind.startswith("python:")

    def build(self, cfg: ModelConfig, spec: Any, root: Path) -> nn.Module:
        return build_factory_model(cfg, spec, root)


def build_factory_model(model_cfg: ModelConfig, spec: Any, root: Path) -> nn.Module:
    _, module_name, fn_name = model_cfg.kind.split(":")
    fn = import_factory(module_name, fn_name, root)
    try:
        model = fn(input_spec(spec), output_spec(spec), **model_cfg.params)
    except Exception as exc:  # the user's code: report it as a config problem, keep the cause
        raise ConfigError(
            f"model factory {model_cfg.kind} failed: {type(exc).__name__}: {exc}",
            hint="it is called as fn(input_spec: dict, output_spec: dict, **model.params); "
            "run with --debug for the traceback",
        ) from exc
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"model factory {model_cfg.kind} returned {type(model).__name__}, not a "
            "torch.nn.Module",
            hint="return the model instance from the factory function",
        )
    return model


def import_factory(module_name: str, fn_name: str, root: Path) -> Any:
    where = str(Path(root).resolve())
    added = where not in sys.path
    if added:
        sys.path.insert(0, where)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, but also a SyntaxError or NameError in the module
        raise ConfigError(
            f"model.kind: cannot import module {module_name!r} from {where}: "
            f"{type(exc).__name__}: {exc}",
            hint=f"put {module_name.replace('.', '/')}.py in the project root (next to mlt.yaml)"
            " and check that it imports",
        ) from exc
    finally:
        if added:
            sys.path.remove(where)
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        raise ConfigError(
            f"model.kind: module {module_name!r} has no function {fn_name!r}",
            hint=f"define def {fn_name}(input_spec, output_spec, **params) in {module_name}",
        )
    return fn


