"""mlt.yaml as pydantic models: every field validated and described (with its unit).

`load_config` is the one way to read a config file; its errors name the file, the field path,
the bad value and the fix, and an unknown key gets a "did you mean".
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import re
import typing
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from mltrainer.errors import ConfigError

CLASSIFICATION_METRICS = ("accuracy", "f1_macro", "roc_auc")
REGRESSION_METRICS = ("rmse", "mae", "r2")
LOWER_IS_BETTER = frozenset({"rmse", "mae"})
MAX_NODES = 10_000  # values a config document may expand to (aliases counted each time used)
MAX_DEPTH = 50  # nesting levels a config document may have
ECHO_LIMIT = 80  # characters of a bad value an error message repeats
MAX_SEED = 2**31 - 1  # seed + k (optimize, the seed comparison, shuffling) stays under 2**32


class _Strict(BaseModel):
    """Unknown keys are refused. A field named in `_off` is a feature that can be switched off:
    null or false in mlt.yaml mean "off" and become the value listed there (the one meaning of
    off everywhere: `early_stopping: null`, `grad_clip: false`, `scheduler: null`, ...)."""

    # inf and nan are refused in every float field: `lr: .inf` is a typo, never a setting
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)
    _off: ClassVar[dict[str, Any]] = {}

    @model_validator(mode="before")
    @classmethod
    def _null_or_false_is_off(cls, data: Any) -> Any:
        if not cls._off or not isinstance(data, dict):
            return data
        return {k: (copy_off(cls._off[k]) if k in cls._off and (v is None or v is False) else v)
                for k, v in data.items()}

    @field_validator("*", mode="before")
    @classmethod
    def _true_is_no_number(cls, value: Any, info: ValidationInfo) -> Any:
        """`batch_size: true` is a slip, not 1 (pydantic reads a bool as 0/1 for a number)."""
        if isinstance(value, bool) and info.field_name is not None:
            kinds = typing.get_args(cls.model_fields[info.field_name].annotation) or (
                cls.model_fields[info.field_name].annotation,)
            if bool not in kinds and any(k in (int, float) for k in kinds):
                raise ValueError("a number is needed, not true/false")
        return value


def copy_off(value: Any) -> Any:
    """A fresh copy of an "off" value (a dict or list must not be shared between configs)."""
    return json.loads(json.dumps(value))


class SplitConfig(_Strict):
    val: float = Field(0.15, gt=0.0, lt=1.0, description="Share of rows for validation (0–1).")
    test: float = Field(
        0.15, gt=0.0, lt=1.0, description="Share of rows for the locked test split (0–1)."
    )
    stratify: bool = Field(
        True, description="Keep class proportions equal across splits (classification only)."
    )

    @model_validator(mode="after")
    def _leaves_training_rows(self) -> SplitConfig:
        if self.val + self.test >= 0.9:
            raise ValueError(
                f"val + test must leave at least 10% of rows for training but is "
                f"{self.val + self.test:.2f}"
            )
        return self


class LoaderConfig(_Strict):
    num_workers: int = Field(0, ge=0, le=64, description="DataLoader worker processes (0 = "
                             "load in the training process). Results do not depend on it.")
    pin_memory: bool = Field(False, description="Page-locked batches (faster copies to a GPU).")
    persistent_workers: bool = Field(
        False, description="Keep workers alive between epochs (num_workers > 0 only).")
    prefetch_factor: int | None = Field(
        None, ge=1, description="Batches each worker loads ahead; null = torch's default (2).")


class AugmentConfig(_Strict):
    hflip: float = Field(0.0, ge=0.0, le=1.0, description="Probability of a horizontal flip.")
    random_crop: bool = Field(
        False, description="Random crop of `crop` pixels (padded by `crop_padding`) on train "
        "instead of the centre crop.")
    crop_padding: int = Field(0, ge=0, description="Pixels of padding before the random crop.")
    rotation: float = Field(0.0, ge=0.0, le=180.0, description="Largest random rotation (deg).")
    color_jitter: float = Field(
        0.0, ge=0.0, le=1.0, description="Brightness/contrast/saturation jitter strength (0-1).")


class TransformsConfig(_Strict):
    size: int | None = Field(None, ge=1, description="Resize the shorter side to this many "
                             "pixels (null: keep the images' size; they must then all agree).")
    crop: int | None = Field(None, ge=1, description="Centre crop (eval) / crop (train) to "
                             "crop x crop pixels; null = no crop.")
    channels: Literal[1, 3] = Field(3, description="1 = grayscale, 3 = RGB.")
    mean: list[float] | None = Field(None, description="Per-channel mean for normalisation; "
                                     "null = measured on the train split.")
    std: list[float] | None = Field(None, description="Per-channel std; null = measured on train.")
    augment: AugmentConfig = Field(default_factory=AugmentConfig,
                                   description="Train-only augmentation.")

    @field_validator("std")
    @classmethod
    def _positive_std(cls, v: list[float] | None) -> list[float] | None:
        # normalising divides by it: torchvision refused zero on every image, read as a bad file
        if v is not None and not all(s > 0 for s in v):
            raise ValueError(f"every std must be above 0 (it divides the pixels), got {v}")
        return v

    @model_validator(mode="after")
    def _crop_within_the_resized_image(self) -> TransformsConfig:
        # the eval crop would be mostly zero padding, and the train crop raises on every item
        if self.size is not None and self.crop is not None and self.crop > self.size:
            raise ValueError(f"crop {self.crop} is larger than size {self.size} (the shorter "
                             "side after resizing); set crop to size or less")
        return self


class DataConfig(_Strict):
    _off: ClassVar[dict[str, Any]] = {"standardize_target": False}

    source: str = Field(
        ...,
        description="Where the data comes from: sklearn:<name> (digits, breast_cancer, wine, "
        "iris, diabetes), a path to a .csv or .npz file, or a .parquet/.jsonl table (a file with "
        "no text column), relative to mlt.yaml; "
        "imagefolder:<dir> (one sub-folder of image files per class), text data "
        "(a datasets folder from save_to_disk, or .csv/.jsonl/.parquet files with "
        "data.text_column set), or python:<module>:<function> returning (X, y), a DataFrame "
        "with the target column, a torch Dataset or a dict of train/val/test Datasets.",
    )
    target: str | None = Field(
        None, description="The target column (CSV, DataFrame and text sources; text default: "
        "label). Ignored otherwise."
    )
    text_column: str | None = Field(
        None, description="The text column of text data (set it to read a .csv as text).")
    loader: LoaderConfig = Field(default_factory=LoaderConfig,
                                 description="DataLoader settings (image, text, Dataset sources).")
    transforms: TransformsConfig = Field(default_factory=TransformsConfig,
                                         description="Image preprocessing and augmentation.")
    drop: list[str] = Field(
        default_factory=list, description="Columns to drop before training (ids, leaks)."
    )
    split: SplitConfig = Field(default_factory=SplitConfig, description="How rows are split.")
    standardize_target: bool = Field(
        True, description="Regression: train on (y - mean) / std, mean and std fitted on the "
        "train split; metrics, predictions and exported models stay in the target's units "
        "(the inverse is the exported graph's last layer). Not applied with "
        "training.entrypoint (your loop gets raw targets); null/false = off (raw targets).")

    @field_validator("source")
    @classmethod
    def _known_scheme(cls, v: str) -> str:
        if v.startswith(("sklearn:", "python:", "imagefolder:", "text:")) or v.endswith(
                (".csv", ".npz", ".jsonl", ".json", ".parquet")):
            return v
        raise ValueError(
            "must be sklearn:<name>, python:<module>:<function>, imagefolder:<dir>, "
            "text:<datasets folder or file>, or a path ending in .csv, .npz, .jsonl or .parquet"
        )


class ModelConfig(_Strict):
    _off: ClassVar[dict[str, Any]] = {"dropout": 0.0, "norm": "none"}

    kind: str = Field(
        "mlp", description="mlp | cnn | torchvision:<name> | timm:<name> | hf:<local dir> "
        "| python:<module>:<function> (a factory returning an nn.Module)."
    )
    weights: str | None = Field(
        None, description="Initial weights: a local .pt/.pth/.safetensors file (never a hub); "
        "tensors whose shape differs (a new head) keep their fresh init.")
    freeze: list[str] = Field(
        default_factory=list, description="Parameter-name prefixes to freeze (no gradients).")
    head_lr: float | None = Field(
        None, gt=0.0, description="Peak learning rate of the output layer (null = training.lr).")
    tokenizer: str | None = Field(
        None, description="Text: a local tokenizer folder (as save_pretrained writes it); "
        "null = the hf: model folder.")
    max_length: int = Field(128, ge=2, le=8192, description="Text: tokens per text at most "
                            "(longer texts are truncated; batches are padded to their longest).")
    hidden: list[int] = Field(
        default_factory=lambda: [256, 128],
        description="Hidden layer widths (units) of the mlp; for the cnn, the width of its head.",
    )
    channels: list[int] = Field(
        default_factory=lambda: [16, 32], description="Convolution channels per block (cnn only)."
    )
    dropout: float = Field(
        0.1, ge=0.0, lt=1.0, description="Dropout probability (0–1); null/false = 0 (off)."
    )
    activation: Literal["relu", "gelu", "tanh", "sigmoid", "leaky_relu"] = Field(
        "relu", description="Hidden activation of the built-in models."
    )
    norm: Literal["none", "batch", "layer"] = Field(
        "none", description="Normalisation after each hidden layer of the built-in models; "
        "null/false = none."
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="Extra keyword arguments passed to a python: factory."
    )

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, v: str) -> str:
        if v in ("mlp", "cnn") or (v.startswith("python:") and v.count(":") == 2):
            return v
        family, _, name = v.partition(":")
        if family in ("torchvision", "timm", "hf") and name:
            return v
        raise ValueError("must be mlp, cnn, torchvision:<name>, timm:<name>, hf:<local dir> "
                         "or python:<module>:<function>")

    @field_validator("hidden", "channels")
    @classmethod
    def _positive_widths(cls, v: list[int]) -> list[int]:
        bad = [w for w in v if w < 1]
        if bad:
            raise ValueError(f"widths must be at least 1 but got {bad[0]}")
        return v


class EarlyStoppingConfig(_Strict):
    _off: ClassVar[dict[str, Any]] = {"patience": 0}

    patience: int = Field(
        5, ge=0, description="Epochs without improvement before stopping; 0, null or false = off."
    )
    min_delta: float = Field(
        0.0, ge=0.0, description="Smallest change of the goal metric that counts."
    )


class TrainingConfig(_Strict):
    _off: ClassVar[dict[str, Any]] = {
        "weight_decay": 0.0, "scheduler": "none", "warmup_epochs": 0, "grad_clip": None,
        "grad_stats_every": 0, "early_stopping": {"patience": 0},
    }

    epochs: int = Field(30, ge=1, le=100_000, description="Maximum number of epochs.")
    batch_size: int = Field(
        64, ge=1, description="Rows per forward pass, per process (an optimisation step takes "
        "batch_size x grad_accum_steps x processes rows)."
    )
    optimizer: Literal["adamw", "adam", "sgd"] = Field("adamw", description="Optimiser.")
    lr: float = Field(1e-3, gt=0.0, description="Peak learning rate.")
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="Momentum (sgd only).")
    weight_decay: float = Field(
        1e-4, ge=0.0, description="Weight decay (L2 for adam/sgd); null/false = 0 (off)."
    )
    scheduler: Literal["none", "cosine", "step", "plateau"] = Field(
        "cosine", description="Learning-rate schedule after warmup; null/false = none (constant)."
    )
    warmup_epochs: int = Field(
        0, ge=0, description="Epochs of linear lr warmup; 0, null or false = none."
    )
    step_size: int = Field(10, ge=1, description="Epochs between lr drops (step scheduler).")
    gamma: float = Field(
        0.1, gt=0.0, le=1.0, description="lr factor at each drop (step, plateau)."
    )
    plateau_patience: int = Field(
        2, ge=0, description="Epochs without improvement of the goal metric on val before the "
        "plateau scheduler multiplies lr by gamma (plateau only)."
    )
    grad_clip: float | None = Field(
        1.0, gt=0.0,
        description="Clip the global gradient norm to this value; null/false = no clipping.",
    )
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="Numeric precision of the forward pass: fp32; bf16 autocast (CPU and "
        "GPU, no scaler); fp16 autocast with a gradient scaler whose state is checkpointed (GPU "
        "only)."
    )
    device: str = Field(
        "auto", description="auto | cpu | cuda | cuda:N | mps. auto takes the GPU when there is "
        "one and says loudly when it falls back to the CPU; asking for a GPU that is not there "
        "is refused before any work. Under --nproc each process takes cuda:<local rank>."
    )
    grad_accum_steps: int = Field(
        1, ge=1, le=4096, description="Micro-batches of batch_size rows whose gradients add up "
        "to one optimisation step (effective batch = batch_size x grad_accum_steps x processes)."
    )
    compile: bool = Field(
        False, description="Run the forward pass through torch.compile (off by default; "
        "recorded in the run record)."
    )
    keep_checkpoints: int | None = Field(
        None, ge=0, description="Epoch checkpoints (epoch-NNN.pt) to keep besides best.pt and "
        "last.pt: the N newest; null keeps all. optimize's trials and seed runs keep only best "
        "and last unless this is set."
    )
    grad_stats_every: int = Field(
        10, ge=0,
        description="Steps between per-layer gradient statistics; 0, null or false = off.",
    )
    early_stopping: EarlyStoppingConfig = Field(
        default_factory=EarlyStoppingConfig,
        description="Stop when the goal metric on val has not improved for `patience` epochs; "
        "null/false = off (the same as patience: 0).",
    )
    entrypoint: str | None = Field(
        None, description="Train with your own script instead of mlt's loop: "
        "python:<module>:<function> (relative to mlt.yaml's folder) or a path to a .py script, "
        "run in a subprocess that reads mltrainer.integrations.context() and trains with an "
        "MltCallback (Lightning or Hugging Face) or MltMonitor (a plain PyTorch loop). null = "
        "mlt's own loop."
    )
    load_model: str | None = Field(
        None, description="python:<module>:<function> called as f(checkpoint_path, config, "
        "spec) -> nn.Module mapping (N, features) float32 rows to logits (or one value per "
        "row): how the gates and finalize reload an entrypoint's checkpoint. null = the "
        "entrypoint's module's (or script's) load_model."
    )

    @field_validator("entrypoint", "load_model")
    @classmethod
    def _python_or_script(cls, v: str | None) -> str | None:
        if v is None or (v.startswith("python:") and v.count(":") == 2
                         and all(v.split(":")[1:])) or (v.endswith(".py") and ":" not in v):
            return v
        raise ValueError("must be python:<module>:<function> or a path to a .py script")

    @field_validator("device")
    @classmethod
    def _known_device(cls, v: str) -> str:
        if re.fullmatch(r"auto|cpu|cuda|cuda:\d+|mps", v):
            return v
        raise ValueError("must be auto, cpu, cuda, cuda:N (N a device index) or mps")


# The values each goal metric can take: a goal outside them can never be met.
METRIC_RANGES: dict[str, tuple[float, float]] = {
    "accuracy": (0.0, 1.0), "f1_macro": (0.0, 1.0), "roc_auc": (0.0, 1.0),
    "r2": (-math.inf, 1.0), "rmse": (0.0, math.inf), "mae": (0.0, math.inf)}


class GoalConfig(_Strict):
    metric: Literal["accuracy", "f1_macro", "roc_auc", "rmse", "mae", "r2"] = Field(
        "accuracy", description="The metric every gate judges by (on validation, test at the end)."
    )
    target: float = Field(..., description="The value of the metric that counts as done.")

    @model_validator(mode="after")
    def _target_in_reach(self) -> GoalConfig:
        """A goal the metric cannot reach (accuracy 2, rmse -1) would block finalize forever."""
        low, high = METRIC_RANGES[self.metric]
        if not (low <= self.target <= high):
            bounds = (f"lies in [{low:g}, {high:g}]" if math.isfinite(low) and math.isfinite(high)
                      else f"is at most {high:g}" if math.isfinite(high)
                      else f"is at least {low:g}")
            raise ValueError(f"goal.target {self.target:g} is out of reach: {self.metric} "
                             f"{bounds}")
        return self


class DiagnoseConfig(_Strict):
    thresholds: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="Per-detector threshold overrides: thresholds.<finding_id>.<name>; the "
        "defaults are documented in each playbook (diagnostics/<id>.md).",
    )


class OptimizeConfig(_Strict):
    _off: ClassVar[dict[str, Any]] = {"timeout": None, "storage": None}

    trials: int = Field(20, ge=1, description="Trials per optimize iteration.")
    timeout: float | None = Field(
        None, gt=0, description="Seconds per iteration; null/false = no limit."
    )
    seeds: int = Field(5, ge=2, description="Seeds to compare best trial and baseline over.")
    max_iterations: int = Field(
        3, ge=1, le=10, description="Optimize iterations allowed in total."
    )
    space: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Extra search ranges: '<field.path>': {type: float|int|categorical, low, "
        "high, log, choices}.",
    )
    storage: str | None = Field(
        None, description="Optuna storage URL; null/false = a journal file in .mlt/."
    )

    @field_validator("storage")
    @classmethod
    def _a_url_or_a_journal(cls, value: str | None) -> str | None:
        """The shape only (a database is reached when `mlt optimize` opens it)."""
        if value is not None and "://" not in value and not value.endswith(".journal"):
            raise ValueError("must be a database URL (postgresql://user:password@host/db, "
                             "sqlite:///optuna.db) or a path ending in .journal")
        return value


class FinalizeConfig(_Strict):
    retrain: bool = Field(
        True, description="Retrain on train+val with the validated recipe (the source run's "
        "lr schedule, stopped at its best epoch); false ships the source run's best checkpoint. "
        "Default measured in bench/retrain.py.")
    bootstrap: int = Field(1000, ge=100, description="Bootstrap resamples for test intervals.")


class TrackingConfig(_Strict):
    _off: ClassVar[dict[str, Any]] = {"report_to": []}

    report_to: list[Literal["tensorboard", "mlflow", "trackio"]] = Field(
        default_factory=list, description="Trackers that receive params and metrics as well; "
        "null/false = none."
    )


class MltConfig(_Strict):
    name: str = Field(..., min_length=1, description="Project name (used in reports).")
    task: Literal["classification", "regression"] = Field(..., description="What is predicted.")
    seed: int = Field(42, ge=0, le=MAX_SEED,
                      description="The seed every random number derives from (at most "
                                  "2**31 - 1: the seeds derived from it, seed + k, stay within "
                                  "what NumPy and scikit-learn take, 2**32 - 1).")
    data: DataConfig
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    goal: GoalConfig
    diagnose: DiagnoseConfig = Field(default_factory=DiagnoseConfig)
    optimize: OptimizeConfig = Field(default_factory=OptimizeConfig)
    finalize: FinalizeConfig = Field(default_factory=FinalizeConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)

    @model_validator(mode="after")
    def _metric_fits_task(self) -> MltConfig:
        allowed = CLASSIFICATION_METRICS if self.task == "classification" else REGRESSION_METRICS
        if self.goal.metric not in allowed:
            raise ValueError(
                f"goal.metric {self.goal.metric!r} does not fit task {self.task!r}; "
                f"use one of {', '.join(allowed)}"
            )
        return self

    @property
    def greater_is_better(self) -> bool:
        return self.goal.metric not in LOWER_IS_BETTER

    def fingerprint(self) -> str:
        """sha256 of the canonical JSON of the config, less `tracking` and
        `training.keep_checkpoints` (where metrics are also sent and how many epoch files stay
        on disk change nothing a run computes, so they must not block a resume)."""
        return sha256_json(self.model_dump(
            mode="json", exclude={"tracking": True, "training": {"keep_checkpoints"}}))


def config_field(path: str) -> Any:
    """The pydantic FieldInfo at a dotted path such as `training.lr`; KeyError when none. A key
    of `model.params` (`model.params.width`: the keyword arguments of a `python:` factory, and
    what a `training.entrypoint` script reads from its config) is that field's."""
    model: Any = MltConfig
    field = None
    parts = path.split(".")
    for i, part in enumerate(parts):
        fields = getattr(model, "model_fields", None)
        if not fields and field is not None and path.startswith("model.params.") and (
                i == len(parts) - 1 and part):
            return field  # one key of the free mapping
        if not fields or part not in fields:
            raise KeyError(path)
        field = fields[part]
        model = field.annotation
    return field


def sha256_json(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def json_schema() -> dict[str, Any]:
    schema = MltConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "mlt.yaml"
    return schema


def load_config(path: Path) -> MltConfig:
    """Read and validate a config file, or raise ConfigError naming file, field, value and fix."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"{path}: no such config file",
            hint="run `mlt init` to create a project, or pass -C DIR to point at one",
        )
    try:
        raw = safe_load_bounded(path.read_text(encoding="utf-8"), str(path))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}",
                          hint="fix the syntax there (indent with spaces, close every bracket "
                          "and quote), then run `mlt config validate`") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file",
                          hint="save mlt.yaml as UTF-8 text") from None
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path}: expected a mapping of fields (name, task, data, ...) but got "
            f"{type(raw).__name__}",
            hint="see `mlt config schema` for the fields",
        )
    return parse_config(raw, source=str(path))


def parse_config(raw: dict[str, Any], source: str = "mlt.yaml") -> MltConfig:
    bad = _non_finite(raw)
    if bad is not None:
        raise ConfigError(
            f"{source}: field '{bad[0]}' has bad value {bad[1]}: numbers must be finite",
            hint="write a finite number (inf and nan are never a setting)",
        )
    try:
        return MltConfig.model_validate(raw)
    except ValidationError as exc:
        lines = [_describe_error(err, raw) for err in exc.errors()]
        first = lines[0]
        more = "" if len(lines) == 1 else "; also: " + "; ".join(lines[1:3])
        if len(lines) > 3:
            more += f" (and {len(lines) - 3} more)"
        raise ConfigError(
            f"{source}: {first}{more}",
            hint="fix the field in the file, then check it with `mlt config validate`",
            errors=lines,
        ) from None


def _describe_error(err: dict[str, Any], raw: dict[str, Any]) -> str:
    loc = [str(p) for p in err["loc"]]
    path = ".".join(loc) or "(top level)"
    if err["type"] == "extra_forbidden":
        known = _fields_at(loc[:-1])
        guess = difflib.get_close_matches(loc[-1], known, n=1, cutoff=0.5)
        tip = f"; did you mean '{'.'.join(loc[:-1] + guess)}'?" if guess else ""
        return f"unknown field '{path}'{tip} (known here: {', '.join(sorted(known))})"
    if err["type"] == "missing":
        return f"field '{path}' is required but missing"
    msg = err["msg"].removeprefix("Value error, ")
    if not loc:  # a check across fields: its message names them
        return msg
    value = _value_at(raw, err["loc"])
    return f"field '{path}' has bad value {echo(value)}: {msg}"


def echo(value: Any, limit: int = ECHO_LIMIT) -> str:
    """`repr(value)` for a message, cut to `limit` characters (a config value can be huge)."""
    text = reprlib_repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def reprlib_repr(value: Any) -> str:
    import reprlib

    r = reprlib.Repr()
    r.maxstring, r.maxother, r.maxlist, r.maxdict, r.maxlevel = ECHO_LIMIT, ECHO_LIMIT, 6, 6, 3
    return r.repr(value)


def _non_finite(node: Any, path: str = "") -> tuple[str, str] | None:
    """The first inf/nan number anywhere in the raw config (model.params included)."""
    if isinstance(node, float) and not math.isfinite(node):
        return path or "(top level)", repr(node)
    items = node.items() if isinstance(node, dict) else (
        enumerate(node) if isinstance(node, list) else ())
    for key, child in items:
        found = _non_finite(child, f"{path}.{key}" if path else str(key))
        if found is not None:
            return found
    return None


# ---------------------------------------------------------------- bounded YAML
# mlt.yaml is small. Anchors and aliases are allowed, but the document they expand to is
# bounded (an alias bomb of nine nested levels expands to billions of nodes); duplicate keys
# are refused (YAML says they are an error, PyYAML keeps the last one silently), and so is
# nesting deeper than any config needs (PyYAML would hit Python's recursion limit).


class _BoundedLoader(yaml.SafeLoader):
    pass


def safe_load_bounded(text: str, source: str = "mlt.yaml") -> Any:
    """`yaml.safe_load` with the bounds above; ConfigError (exit 2) naming the place."""
    loader = _BoundedLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise ConfigError(f"{source}: nested more than {MAX_DEPTH} levels deep",
                              hint="flatten the structure; no mlt.yaml field nests that deep"
                              ) from None
        if node is None:
            return None
        _check_tree(node, source)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _check_tree(root: yaml.Node, source: str) -> None:
    """Count the nodes the document expands to (aliases counted every time they are used),
    refuse duplicate keys and deep nesting; stops as soon as a bound is passed."""
    count = 0
    stack: list[tuple[yaml.Node, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise ConfigError(
                f"{source}: the document expands to more than {MAX_NODES} values "
                "(anchors and aliases nested into each other?)",
                hint="write the values out instead of aliasing aliases; mlt.yaml is small",
            )
        if depth > MAX_DEPTH:
            raise ConfigError(f"{source}: nested more than {MAX_DEPTH} levels deep at line "
                              f"{node.start_mark.line + 1}",
                              hint="flatten the structure; no mlt.yaml field nests that deep")
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    k = (key.tag, key.value)
                    if k in seen:
                        raise ConfigError(
                            f"{source}: duplicate key {echo(key.value)} at line "
                            f"{key.start_mark.line + 1} (first at line {seen[k]})",
                            hint="keep one of them: YAML keys must be unique in a mapping",
                        )
                    seen[k] = key.start_mark.line + 1
                stack.append((key, depth + 1))
                stack.append((value, depth + 1))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((child, depth + 1) for child in node.value)


def _fields_at(loc: list[str]) -> list[str]:
    model: Any = MltConfig
    for part in loc:
        field = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if field is None:
            return []
        model = field.annotation
    return list(getattr(model, "model_fields", {}).keys())


def _value_at(raw: Any, loc: tuple[Any, ...]) -> Any:
    cur = raw
    for part in loc:
        in_dict = isinstance(cur, dict) and part in cur
        in_list = isinstance(cur, list) and isinstance(part, int) and part < len(cur)
        if in_dict or in_list:
            cur = cur[part]
        else:
            return None
    return cur
