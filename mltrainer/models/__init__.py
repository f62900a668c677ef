"""Models: one plugin family behind one base (`_base.ModelKind`) and one registry.

    model = build_model(cfg.model, spec, root=project_root)

Kinds: `mlp`, `cnn` (`_builtin.py`), `python:<module>:<function>` (`_python.py`),
`torchvision:<name>` (`_torchvision.py`), `timm:<name>` (`_timm.py`), `hf:<local dir>`
(`_hf.py`). The heavy libraries load only when their kind is built. `model.freeze`
(parameter-name prefixes) and `model.head_lr` are applied here, the same for every kind.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from torch import nn

from mltrainer.config import ModelConfig
from mltrainer.errors import ConfigError
from mltrainer.models import _builtin, _hf, _python, _timm, _torchvision  # noqa: F401 (register)
from mltrainer.models._base import (
    MODEL_KINDS,
    ModelKind,
    check_fits_data,
    input_spec,
    kind_for,
    load_weights,
    n_outputs,
    output_spec,
    register_model_kind,
)
from mltrainer.models._builtin import ACTIVATIONS, MLP, SmallCNN
from mltrainer.models._python import build_factory_model, import_factory

__all__ = [
    "ACTIVATIONS",
    "MLP",
    "MODEL_KINDS",
    "ModelKind",
    "SmallCNN",
    "apply_freeze",
    "build_factory_model",
    "build_model",
    "freeze_record",
    "head_parameters",
    "import_factory",
    "input_spec",
    "kind_for",
    "n_outputs",
    "output_spec",
    "register_model_kind",
]


def build_model(model_cfg: ModelConfig, spec: Any, *, root: Path | None = None) -> nn.Module:
    """The configured model for data described by `spec` (a DataSpec or anything with its
    attributes), with `model.freeze` applied. `root`: the project root (default: the cwd)."""
    kind = kind_for(model_cfg.kind)
    modality = getattr(spec, "modality", "table")
    if modality not in kind.modalities and modality != "table":
        raise ConfigError(
            f"model.kind {model_cfg.kind!r} cannot take {modality} data",
            hint={"text": "use model.kind: hf:<local dir> (a transformers model folder)",
                  "image": "use cnn, torchvision:<name>, timm:<name> or hf:<local dir>"}
            .get(modality, "use mlp"))
    root = Path(root) if root is not None else Path.cwd()
    model = kind.build(model_cfg, spec, root)
    if model_cfg.weights and not kind.loads_weights:
        load_weights(model, model_cfg, root)  # mlp, cnn, a python: factory's model
    check_fits_data(model, spec, model_cfg.kind)
    apply_freeze(model, model_cfg.freeze)
    return model


def apply_freeze(model: nn.Module, prefixes: list[str]) -> dict[str, Any]:
    """Turn off gradients of parameters whose name starts with one of `prefixes`; each prefix
    must match something (a typo would otherwise train everything silently)."""
    names = [n for n, _ in model.named_parameters()]
    for prefix in prefixes:
        if not any(n.startswith(prefix) for n in names):
            tops = sorted({n.split(".")[0] for n in names})
            close = difflib.get_close_matches(prefix, tops + names, n=3, cutoff=0.5)
            tip = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise ConfigError(f"model.freeze: no parameter name starts with {prefix!r}{tip}",
                              hint=f"top-level names: {', '.join(tops[:12])}")
    for name, param in model.named_parameters():
        if any(name.startswith(p) for p in prefixes):
            param.requires_grad_(False)
    return freeze_record(model, prefixes)


def freeze_record(model: nn.Module, prefixes: list[str]) -> dict[str, Any]:
    """What is trained and what is frozen, for the run's record."""
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"prefixes": list(prefixes), "frozen_tensors": len(frozen),
            "frozen_names": frozen[:50], "parameters": total, "trainable": trainable}


def head_parameters(model: nn.Module, spec: Any) -> list[str]:
    """Names of the output layer's parameters: the last Linear (or 1x1 conv) that produces
    the model's `n_outputs` values."""
    n = n_outputs(spec)
    head = None
    for name, module in model.named_modules():
        if ((isinstance(module, nn.Linear) and module.out_features == n)
                or (isinstance(module, nn.Conv2d) and module.out_channels == n)):
            head = name
    if head is None:
        return []
    return [f"{head}.{p}" if head else p for p, _ in
            dict(model.named_modules())[head].named_parameters()]
