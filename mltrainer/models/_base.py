"""One base class and one registry for every `model.kind`.

A kind is a string in mlt.yaml: `mlp`, `cnn`, `python:<module>:<function>`,
`torchvision:<name>`, `timm:<name>`, `hf:<local dir>`. Each lives in one private module of
this package and registers a `ModelKind` subclass; `build_model` asks the registry.

Contract (tests/test_models.py runs it over every registered kind): `handles` is a pure test of
the string; `build` returns an `nn.Module` whose forward takes the batch the data layer makes
(a float tensor, or a dict of tensors for text) and returns logits `(N, n_outputs)`; a bad name,
a missing weights file or a model that cannot fit the data is a `ConfigError` naming
`model.kind` / `model.weights` and the fix.
"""

from __future__ import annotations

import difflib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from mltrainer.config import ModelConfig
from mltrainer.errors import ConfigError


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
            "image_shape": tuple(shape) if shape else None,
            "modality": getattr(spec, "modality", "table")}


def output_spec(spec: Any) -> dict[str, Any]:
    labels = getattr(spec, "class_labels", None)
    return {"task": spec.task, "n_outputs": n_outputs(spec),
            "class_labels": list(labels) if labels is not None else None}


class ModelKind(ABC):
    """One family of `model.kind` strings. Stateless: instances are made per call."""

    name: ClassVar[str]
    modalities: ClassVar[tuple[str, ...]] = ("table", "image", "tensor")  # data it can take
    # True when `build` loads `model.weights` itself (at the point its architecture needs,
    # e.g. before a grayscale input layer is folded); otherwise `build_model` loads them into
    # the built model, so the field is never ignored whatever the kind.
    loads_weights: ClassVar[bool] = False

    @classmethod
    def handles(cls, kind: str) -> bool:
        """True when this family builds `kind` (the `model.kind` string): the bare name
        (`mlp`) or the name as a prefix (`timm:<name>`)."""
        return kind == cls.name or kind.startswith(f"{cls.name}:")

    @abstractmethod
    def build(self, cfg: ModelConfig, spec: Any, root: Path) -> nn.Module:
        """The model for data described by `spec`, output size from the data."""


MODEL_KINDS: list[type[ModelKind]] = []


def register_model_kind(cls: type[ModelKind]) -> type[ModelKind]:
    MODEL_KINDS.append(cls)
    return cls


def kind_for(kind: str) -> ModelKind:
    for cls in MODEL_KINDS:
        if cls.handles(kind):
            return cls()
    raise ConfigError(
        f"model.kind has bad value {kind!r}: must be mlp, cnn, python:<module>:<function>, "
        "torchvision:<name>, timm:<name> or hf:<local dir>")


def unknown_name(kind: str, name: str, known: list[str], hint: str) -> ConfigError:
    """`model.kind: <family>:<name>` naming nothing the library has: suggest close names."""
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    tip = f"; did you mean {', '.join(repr(f'{kind}:{c}') for c in close)}?" if close else ""
    return ConfigError(f"model.kind {kind}:{name!r}: no such model in {kind}{tip}", hint=hint)


# model.params a zoo builder must not take from the user: mlt sets them from the data, and
# weights from a hub would be a download at run time
SET_BY_MLT = {
    "weights": "weights are never downloaded: set model.weights to a local file",
    "pretrained": "weights are never downloaded: set model.weights to a local file",
    "num_classes": "the number of outputs comes from the data's classes",
    "num_labels": "the number of outputs comes from the data's classes",
    "id2label": "the class names come from the data",
    "label2id": "the class names come from the data",
    "in_chans": "the input channels come from data.transforms.channels",
}


def refuse_set_by_mlt(kind: str, params: dict[str, Any], fixed: dict[str, Any]) -> None:
    for name in params:
        if name in fixed or name in SET_BY_MLT:
            raise ConfigError(f"model.params.{name} for {kind}: mlt sets it itself "
                              f"({SET_BY_MLT.get(name, 'from the data')})",
                              hint=f"remove {name} from model.params in mlt.yaml")


def build_with_params(build: Any, kind: str, params: dict[str, Any], **fixed: Any) -> Any:
    """`build(**fixed, **params)` for a zoo kind: a param mlt sets itself (`SET_BY_MLT`) or one
    the builder refuses (an unknown argument, a bad value) is a ConfigError naming
    `model.params` (it was an unexpected failure)."""
    refuse_set_by_mlt(kind, params, fixed)
    try:
        return build(**fixed, **params)
    except (TypeError, ValueError, AssertionError, KeyError) as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise ConfigError(f"model.params for {kind}: {type(exc).__name__}: {first}",
                          hint="pass only arguments the model's constructor takes, with "
                               "values it accepts") from None


def resolve_local(path: str, root: Path) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else Path(root) / p


def load_weights(model: nn.Module, cfg: ModelConfig, root: Path,
                 adapt: Any = None) -> dict[str, Any]:
    """`model.weights` (a local .pt/.pth/.safetensors file): load every tensor whose name and
    shape fit, skipping the head when its size differs (a new number of classes). `adapt`,
    when given, maps the file's tensors first (a kind fitting them to the data's channels)."""
    import torch

    path = resolve_local(str(cfg.weights), root)
    if not path.is_file():
        raise ConfigError(
            f"model.weights {cfg.weights!r}: no such file ({path})",
            hint="point model.weights at a local .pt, .pth or .safetensors file "
                 "(weights are never downloaded at run time)")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0].split(". ")[0]
        raise ConfigError(
            f"model.weights {cfg.weights!r}: not a weights file mlt can read "
            f"({type(exc).__name__}: {first})",
            hint="save it with torch.save(model.state_dict(), path) or as .safetensors (mlt "
                 "loads tensors only, weights_only=True: it never unpickles code)") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]  # an mlt checkpoint
    if adapt is not None:
        state = adapt(dict(state))
    own = model.state_dict()
    fit = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    if not fit:
        raise ConfigError(f"model.weights {cfg.weights!r}: none of its tensors fit "
                          f"{cfg.kind} (names or shapes differ)",
                          hint="use weights saved from the same architecture")
    model.load_state_dict(fit, strict=False)
    skipped = sorted(k for k in own if k not in fit)
    return {"file": str(cfg.weights), "loaded": len(fit), "skipped": skipped[:20],
            "n_skipped": len(skipped)}


def input_shape(spec: Any) -> tuple[int, ...] | None:
    """The shape of one input row as the model receives it: (C, H, W) for image and tensor
    items, (n_features,) for tables (the built-in cnn reshapes them itself); None for text
    (token ids, whose length the tokenizer decides)."""
    modality = getattr(spec, "modality", "table")
    shape = getattr(spec, "image_shape", None)
    if modality in ("image", "tensor") and shape:
        return tuple(int(d) for d in shape)
    if modality == "table":
        return (int(spec.n_features),)
    return None


def check_fits_data(model: nn.Module, spec: Any, kind: str) -> None:
    """The built model must take the data's inputs and return n_outputs values per row
    (n_classes logits, or one value for regression) as a tensor, in eval mode and in training
    mode: checked with a forward pass in each on two zero rows (text: two rows of token id 0),
    without gradients, the random numbers and buffers (batch-norm statistics) as they were
    before. So a ViT built for 224 px given 32 px images, a 7-logit model for 2 classes (text
    included), or a model returning a tuple or an output object in training (googlenet's aux
    logits, a transformers model given as it is) is a config error at build time, not a crash
    inside training or a model shipped wrong."""
    shape = input_shape(spec)
    param = next(iter(model.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    if shape is not None:
        x: Any = torch.zeros(2, *shape, device=device)
    elif getattr(spec, "modality", "table") == "text":
        # the largest id the tokenizer hands out: a model whose embeddings are fewer fails here
        top = max(0, int(getattr(spec, "vocab_size", None) or 1) - 1)
        x = {"input_ids": torch.tensor([[0, top, 0], [top, 0, 0]], device=device),
             "attention_mask": torch.ones(2, 3, dtype=torch.long, device=device)}
    else:
        return
    was_training = model.training
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    try:
        for training in (False, True):
            model.train(training)
            try:
                with torch.no_grad(), torch.random.fork_rng(
                        devices=[device] if device.type == "cuda" else []):
                    out = model(x)
            except Exception as exc:
                if "deterministic" in str(exc):  # a non-deterministic op: training reports it
                    return
                first = (str(exc).strip().splitlines() or [""])[0][:200]
                vocab = getattr(spec, "vocab_size", None)
                what = (f"the data's inputs of shape {shape}" if shape is not None else
                        "a batch of texts (one dict of input_ids and attention_mask tensors"
                        + (f", ids up to {vocab - 1}: the tokenizer has {vocab} tokens)"
                           if vocab else ")"))
                raise ConfigError(
                    f"model.kind {kind!r} cannot take {what}"
                    f"{' in training mode' if training else ''}: {type(exc).__name__}: {first}",
                    hint="pick a model for inputs of this shape (channels, height, width), "
                         "change data.transforms.channels/size/crop, or pass the input shape "
                         "to the model (timm ViTs: model.params.img_size; hf: "
                         "model.params.image_size, num_channels)" if shape is not None else
                         "forward(batch) gets that dict (a transformers model inside: return "
                         "model(**batch).logits); its embeddings must hold every token id "
                         "(an hf config.json: vocab_size at least the tokenizer's tokens)",
                ) from None
            _check_output(out, spec, kind, training)
    finally:
        model.train(was_training)
        own = dict(model.named_buffers())
        with torch.no_grad():
            for name, saved in buffers.items():
                own[name].copy_(saved)


def _check_output(out: Any, spec: Any, kind: str, training: bool) -> None:
    want = n_outputs(spec)
    mode = "in training mode " if training else ""
    if not isinstance(out, torch.Tensor):
        raise ConfigError(
            f"model {kind} returns a {type(out).__name__} {mode}but mlt's loop takes a tensor "
            f"of {'one value per row' if spec.task == 'regression' else 'class logits'}",
            hint="return the logits tensor from forward (a transformers model: its .logits; "
                 "torchvision googlenet/inception_v3: model.params.aux_logits: false)")
    got_shape = tuple(out.shape)
    ok = got_shape[:1] == (2,) and (got_shape[1:] == (want,) or (want == 1
                                                                 and got_shape[1:] == ()))
    if not ok:
        raise ConfigError(
            f"model {kind} returns output of shape {got_shape} for 2 rows {mode}but the data "
            f"needs (2, {want}) "
            f"({'one value per row' if spec.task == 'regression' else f'{want} class logits'})",
            hint="end the model in output_spec['n_outputs'] units "
            f"(here {want}); output_spec['class_labels'] lists the classes",
        )
