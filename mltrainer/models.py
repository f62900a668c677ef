"""Built-in models and the import of user model factories.

Every model takes a float batch `(N, n_features)` and returns logits `(N, n_classes)` for
classification or `(N, 1)` for regression (the engine squeezes regression outputs to `(N,)` in
its loss and in `predict`).

- `mlp`: Linear → [norm] → activation → dropout per hidden width, then a Linear head.
- `cnn`: reshapes the flat input to `spec.image_shape` (C, H, W) inside `forward`, then per
  entry of `channels` a 3x3 conv → [norm] → activation → 2x2 max-pool (while both sides are
  at least 2), flattens, and ends in an mlp head of the `hidden` widths.
- `python:<module>:<function>`: imported with the project root on `sys.path` and called as
  `fn(input_spec, output_spec, **model.params)`; it must return an `nn.Module`.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mltrainer.config import ModelConfig
from mltrainer.errors import ConfigError, UserCodeExitError

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
    "leaky_relu": nn.LeakyReLU,
}


def n_outputs(spec: Any) -> int:
    if spec.task == "classification":
        if not spec.n_classes or spec.n_classes < 2:
            raise ConfigError(f"classification needs at least 2 classes but the data has "
                              f"{spec.n_classes}")
        return int(spec.n_classes)
    return 1


def input_spec(spec: Any) -> dict[str, Any]:
    shape = getattr(spec, "image_shape", None)
    return {"n_features": int(spec.n_features), "feature_names": list(spec.feature_names or []),
            "image_shape": tuple(shape) if shape else None}


def output_spec(spec: Any) -> dict[str, Any]:
    labels = getattr(spec, "class_labels", None)
    return {"task": spec.task, "n_outputs": n_outputs(spec),
            "class_labels": list(labels) if labels is not None else None}


def build_model(model_cfg: ModelConfig, spec: Any, *, root: Path | None = None) -> nn.Module:
    """The configured model for data described by `spec` (a DataSpec or anything with its
    attributes). `root` is the project root for `python:` factories (default: the cwd)."""
    if model_cfg.kind in ("mlp", "cnn"):
        check_training_memory(model_cfg, spec)  # a model too large is refused before it exists
    if model_cfg.kind == "mlp":
        return MLP(spec.n_features, n_outputs(spec), model_cfg.hidden, model_cfg.dropout,
                   model_cfg.activation, model_cfg.norm)
    if model_cfg.kind == "cnn":
        shape = getattr(spec, "image_shape", None)
        if not shape:
            raise ConfigError(
                "model.kind 'cnn' needs image data but the data has no image_shape",
                hint="use model.kind: mlp for tabular data, or a source with images "
                "(e.g. sklearn:digits)",
            )
        return SmallCNN(tuple(shape), spec.n_features, n_outputs(spec), model_cfg.channels,
                        model_cfg.hidden, model_cfg.dropout, model_cfg.activation,
                        model_cfg.norm)
    if model_cfg.kind.startswith("python:"):
        return build_factory_model(model_cfg, spec, root or Path.cwd())
    raise ConfigError(f"model.kind has bad value {model_cfg.kind!r}: must be mlp, cnn or "
                      "python:<module>:<function>")


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
    check_output_size(model, spec, model_cfg.kind)
    return model


def check_output_size(model: nn.Module, spec: Any, kind: str) -> None:
    """A factory's model must return n_outputs values per row (n_classes logits, or one value
    for regression): checked with one forward pass on two zero rows, in eval mode (no state
    changes), so a 7-logit model for 2 classes is refused at build time, not shipped."""
    want = n_outputs(spec)
    param = next(iter(model.parameters()), None)
    x = torch.zeros(2, int(spec.n_features),
                    device=param.device if param is not None else "cpu")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(x)
    except Exception:  # the forward's own failure is training's to report
        return  # (with its own message: a non-deterministic op, a wrong input shape, ...)
    finally:
        model.train(was_training)
    shape = tuple(out.shape) if isinstance(out, torch.Tensor) else None
    ok = shape is not None and shape[:1] == (2,) and (
        shape[1:] == (want,) or (want == 1 and shape[1:] == ()))
    if not ok:
        got = f"output of shape {shape}" if shape is not None else type(out).__name__
        raise ConfigError(
            f"model factory {kind} returns {got} for 2 rows but the data needs (2, {want}) "
            f"({'one value per row' if spec.task == 'regression' else f'{want} class logits'})",
            hint="end the model in output_spec['n_outputs'] units "
            f"(here {want}); output_spec['class_labels'] lists the classes",
        )


BYTES_PER_PARAMETER = 16  # fp32 weight, its gradient and the two Adam moments


def check_training_memory(model_cfg: ModelConfig, spec: Any) -> None:
    """Refuse (exit 2) a built-in model whose parameters alone would not fit in memory to
    train: counted on the meta device (nothing allocated), at 16 bytes a parameter."""
    with torch.device("meta"):
        if model_cfg.kind == "mlp":
            meta: nn.Module = MLP(spec.n_features, n_outputs(spec), model_cfg.hidden, 0.0)
        else:
            shape = getattr(spec, "image_shape", None)
            if not shape or len(shape) != 3:
                return  # build_model refuses it with its own message
            meta = SmallCNN(tuple(shape), spec.n_features, n_outputs(spec), model_cfg.channels,
                            model_cfg.hidden, 0.0)
    count = sum(p.numel() for p in meta.parameters())
    need = count * BYTES_PER_PARAMETER
    have = memory_available()
    if have is not None and need > have:
        raise ConfigError(
            f"model.{'hidden' if model_cfg.kind == 'mlp' else 'channels/hidden'} makes a "
            f"{model_cfg.kind} of {count:.3g} parameters: about {_gib(need)} to train "
            f"(weights, gradients, optimiser state), more than the {_gib(have)} of memory here",
            hint="make the model smaller (fewer or narrower layers in model.hidden / "
            "model.channels)",
            parameters=count, bytes_needed=need, bytes_available=have,
        )


def memory_available() -> int | None:
    """The memory this process may use: physical memory, capped by RLIMIT_AS and a cgroup
    limit when one is set (None when unknown)."""
    import os
    import resource

    limits: list[int] = []
    with contextlib.suppress(ValueError, OSError, AttributeError):
        limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft not in (resource.RLIM_INFINITY, -1) and soft > 0:
        limits.append(int(soft))
    try:
        text = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if text.isdigit():
            limits.append(int(text))
    except OSError:
        pass
    return min(limits) if limits else None


def _gib(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB"


def import_factory(module_name: str, fn_name: str, root: Path) -> Any:
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
    from mltrainer.data import find_module_file

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


def _norm(kind: str, width: int, conv: bool) -> nn.Module | None:
    if kind == "batch":
        return nn.BatchNorm2d(width) if conv else nn.BatchNorm1d(width)
    if kind == "layer":
        # GroupNorm with one group normalises over (C, H, W): layer norm for feature maps
        return nn.GroupNorm(1, width) if conv else nn.LayerNorm(width)
    return None


def _dense_stack(width_in: int, hidden: Sequence[int], dropout: float, activation: str,
                 norm: str) -> tuple[list[nn.Module], int]:
    layers: list[nn.Module] = []
    for width in hidden:
        layers.append(nn.Linear(width_in, width))
        if (n := _norm(norm, width, conv=False)) is not None:
            layers.append(n)
        layers.append(ACTIVATIONS[activation]())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width_in = width
    return layers, width_in


class MLP(nn.Module):
    def __init__(self, n_features: int, n_out: int, hidden: Sequence[int], dropout: float,
                 activation: str = "relu", norm: str = "none") -> None:
        super().__init__()
        layers, width = _dense_stack(n_features, hidden, dropout, activation, norm)
        self.net = nn.Sequential(*layers, nn.Linear(width, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SmallCNN(nn.Module):
    def __init__(self, image_shape: tuple[int, ...], n_features: int, n_out: int,
                 channels: Sequence[int], hidden: Sequence[int], dropout: float,
                 activation: str = "relu", norm: str = "none") -> None:
        super().__init__()
        if len(image_shape) != 3 or math.prod(image_shape) != n_features:
            raise ConfigError(
                f"model.kind 'cnn': image_shape {tuple(image_shape)} must be (C, H, W) with "
                f"C*H*W equal to the {n_features} features"
            )
        self.image_shape = tuple(int(s) for s in image_shape)
        c, h, w = self.image_shape
        blocks: list[nn.Module] = []
        for width in channels:
            blocks.append(nn.Conv2d(c, width, kernel_size=3, padding=1))
            if (n := _norm(norm, width, conv=True)) is not None:
                blocks.append(n)
            blocks.append(ACTIVATIONS[activation]())
            if h >= 2 and w >= 2:
                blocks.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            c = width
        self.features = nn.Sequential(*blocks)
        head, width = _dense_stack(c * h * w, hidden, dropout, activation, norm)
        self.head = nn.Sequential(nn.Flatten(), *head, nn.Linear(width, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x.reshape(x.shape[0], *self.image_shape)))
