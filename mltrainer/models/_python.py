"""`python:<module>:<function>`: a factory in the user's project, imported with the project
root on `sys.path` and called as `fn(input_spec, output_spec, **model.params)`; it must return
an `nn.Module`."""

from __future__ import annotations

import contextlib
import importlib
import sys
from pathlib import Path
from typing import Any

from torch import nn

from mltrainer.config import ModelConfig
from mltrainer.errors import ConfigError, UserCodeExitError
from mltrainer.models._base import (
    ModelKind,
    input_spec,
    output_spec,
    register_model_kind,
)
from mltrainer.models._vision import import_torchvision_safely


@register_model_kind
class PythonKind(ModelKind):
    name = "python"
    modalities = ("table", "image", "text", "tensor")

    def build(self, cfg: ModelConfig, spec: Any, root: Path) -> nn.Module:
        return build_factory_model(cfg, spec, root)


def build_factory_model(model_cfg: ModelConfig, spec: Any, root: Path) -> nn.Module:
    _, module_name, fn_name = model_cfg.kind.split(":")
    fn = import_factory(module_name, fn_name, root)
    try:
        model = fn(input_spec(spec), output_spec(spec), **model_cfg.params)
    except (SystemExit, MemoryError) as exc:  # exiting, or out of memory: the phase fails
        what = (f"called sys.exit({exc.code!r})" if isinstance(exc, SystemExit)
                else "ran out of memory")
        raise UserCodeExitError(
            f"model factory {model_cfg.kind} {what} while building the model",
            hint="return an nn.Module from the factory (raise an exception to refuse); "
            "for memory, make the model smaller (model.params)",
        ) from None
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
    import_torchvision_safely()  # the factory may build a torchvision or timm model
    where = str(Path(root).resolve())
    added = where not in sys.path
    if added:
        sys.path.insert(0, where)
    _forget_if_elsewhere(module_name, Path(where))
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
    with contextlib.suppress(AttributeError, OSError, TypeError):
        module.__mlt_mtime_ns__ = Path(module.__file__).stat().st_mtime_ns  # type: ignore
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        raise ConfigError(
            f"model.kind: module {module_name!r} has no function {fn_name!r}",
            hint=f"define def {fn_name}(input_spec, output_spec, **params) in {module_name}",
        )
    return fn


def _forget_if_elsewhere(module_name: str, root: Path) -> None:
    """Drop a cached import of the factory's module (and its package) when the project at
    `root` has another file under that name, or the file changed since: one process can
    build models of several projects (tests, a notebook), each from its own source."""
    from mltrainer.project import find_module_file

    cached = sys.modules.get(module_name)
    if cached is None:
        return
    found = find_module_file(module_name, root)
    origin = getattr(cached, "__file__", None)
    if found is None or origin is None:
        return
    same = Path(origin).resolve() == found.resolve() and \
        getattr(cached, "__mlt_mtime_ns__", None) in (None, found.stat().st_mtime_ns)
    if same:
        return
    top = module_name.split(".")[0]
    for name in [n for n in sys.modules if n == top or n.startswith(top + ".")]:
        del sys.modules[name]
    importlib.invalidate_caches()
