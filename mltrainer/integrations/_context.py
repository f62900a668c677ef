"""The run context an entrypoint receives from `mlt train-baseline` (and plan, optimize).

mlt's engine (`mltrainer.engine.entrypoint`) starts the user's entrypoint in a subprocess with
these environment variables:

    MLT_RUN_DIR     the run folder (runs/<id>): the callbacks write metrics.jsonl and
                    checkpoints/ there
    MLT_SEED        the seed (int); mlt has already seeded Python, NumPy and torch with it
    MLT_CONFIG      config.resolved.yaml of the run (mlt.yaml with any overrides applied)
    MLT_DATA        an .npz with X_train, y_train, X_val, y_val (preprocessed float32 rows;
                    y class indices or float targets, raw: `data.standardize_target` is mlt's
                    own loop's, so your loss and your `load_model`'s outputs are in the
                    target's units) - never the test split
    MLT_MAX_STEPS   optional: stop after this many optimisation steps (plan's determinism check)
    MLT_BASELINE    optional: JSON of the trivial baseline's val values, for the detectors
    MLT_SPEC        JSON of the data spec: task, n_features, n_classes, feature_names, ...
    MLT_SCHEDULE_EPOCHS  optional: the lr schedule's horizon in epochs when it is longer than
                    training.epochs (finalize's retrain replays the source run's schedule and
                    stops at its best epoch): `context().schedule_epochs` is the horizon to
                    give a schedule of your own (cosine's T_max, ...), always set

    MLT_PARENT_PID  the mlt process: the script is stopped when it is gone
                    (`mltrainer.engine.entrypoint.stop_when_orphaned`)

`context()` reads them into a `RunContext`; the callbacks and `MltMonitor` read it when given no
arguments.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from mltrainer.config import MltConfig, parse_config
from mltrainer.engine.entrypoint import (
    ENV_BASELINE,
    ENV_CONFIG,
    ENV_DATA,
    ENV_MAX_STEPS,
    ENV_RUN_DIR,
    ENV_SCHEDULE_EPOCHS,
    ENV_SEED,
    ENV_SPEC,
)


@dataclass(frozen=True)
class Split:
    X: np.ndarray  # float32 (N, F), preprocessed as mlt's own models see it
    y: np.ndarray  # int64 class indices (classification) or float32 targets

    def __len__(self) -> int:
        return len(self.y)

    def tensors(self) -> Any:
        """A `torch.utils.data.TensorDataset` of (X, y)."""
        import torch
        from torch.utils.data import TensorDataset

        return TensorDataset(torch.as_tensor(self.X), torch.as_tensor(self.y))


@dataclass(frozen=True)
class RunContext:
    """What an entrypoint may use: where to write, which seed, the config, train and val."""

    run_dir: Path
    seed: int
    config: MltConfig
    train: Split
    val: Split
    spec: Any  # mltrainer.data.DataSpec: n_features, n_classes, feature_names, ...
    max_steps: int | None = None
    baseline: dict[str, float] | None = None
    horizon: int | None = None  # MLT_SCHEDULE_EPOCHS: see schedule_epochs

    @property
    def schedule_epochs(self) -> int:
        """The epochs an lr schedule of the script's own should span: `training.epochs`,
        except in finalize's retrain, which runs fewer epochs (the source run's best) on the
        source run's schedule: a cosine's T_max, a linear decay's length in epochs."""
        return self.horizon if self.horizon is not None else self.config.training.epochs

    @property
    def task(self) -> str:
        return self.config.task

    @property
    def metric(self) -> str:
        return self.config.goal.metric

    @property
    def n_features(self) -> int:
        return int(self.spec.n_features)

    @property
    def n_outputs(self) -> int:
        """Classes (classification), 1 (regression: one output)."""
        return int(self.spec.n_classes or 1) if self.task == "classification" else 1

    def compute_metrics(self, outputs: Any, y: Any = None) -> dict[str, float]:
        """Every metric of the task on raw outputs (logits, or one value per row), by mlt's
        own formulas; `y` defaults to the val targets."""
        from mltrainer.engine.metrics import compute_metrics

        out = outputs.detach().float().cpu().numpy() if hasattr(outputs, "detach") else outputs
        out = np.asarray(out)
        if out.ndim == 2 and out.shape[1] == 1:
            out = out.reshape(len(out))
        return compute_metrics(self.task, self.val.y if y is None else np.asarray(y), out)


def in_mlt_run() -> bool:
    """True inside an entrypoint that mlt started."""
    return bool(os.environ.get(ENV_RUN_DIR))


@cache
def context() -> RunContext:
    """The run context of this process (see the module docstring); a ValueError outside one."""
    if not in_mlt_run():
        raise ValueError(f"no mlt run context: {ENV_RUN_DIR} is not set (run the script through "
                         "`mlt train-baseline` with training.entrypoint in mlt.yaml, or pass "
                         "run_dir, task and metric to the callback)")
    import yaml

    from mltrainer.data import DataSpec

    config_path = Path(os.environ[ENV_CONFIG])
    cfg = parse_config(yaml.safe_load(config_path.read_text(encoding="utf-8")),
                       source=str(config_path))
    with np.load(os.environ[ENV_DATA]) as data:
        train = Split(data["X_train"], data["y_train"])
        val = Split(data["X_val"], data["y_val"])
    steps = os.environ.get(ENV_MAX_STEPS)
    baseline = os.environ.get(ENV_BASELINE)
    horizon = os.environ.get(ENV_SCHEDULE_EPOCHS)
    return RunContext(run_dir=Path(os.environ[ENV_RUN_DIR]), seed=int(os.environ[ENV_SEED]),
                      config=cfg, train=train, val=val,
                      spec=DataSpec.from_dict(json.loads(os.environ[ENV_SPEC])),
                      max_steps=int(steps) if steps else None,
                      baseline=json.loads(baseline) if baseline else None,
                      horizon=int(horizon) if horizon else None)


def monitor_settings(run_dir: str | Path | None, *, task: str | None, metric: str | None,
                     baseline: dict[str, float] | None,
                     thresholds: dict[str, dict[str, float]] | None,
                     grad_stats_every: int | None, checkpoints: bool | None,
                     framework: str, goal_target: float | None = None,
                     n_val: int | None = None, train_rows: Any = "auto",
                     who: str = "MltCallback") -> dict[str, Any]:
    """RunMonitor's arguments: what the caller gave, the rest from the run context (when
    there is one) or the defaults. Checkpoints default to on inside an mlt run only;
    `train_rows="auto"` is the engine's own fixed training subset inside an mlt run
    (`train_rows_of`) and none outside one; None turns the train metrics off. `who` names
    the caller in the error for missing settings."""
    ctx = context() if in_mlt_run() else None
    if ctx is None and (run_dir is None or task is None or metric is None):
        raise ValueError(f"{who} needs run_dir, task and metric outside an mlt run "
                         f"(got run_dir={run_dir!r}, task={task!r}, metric={metric!r})")
    return {
        "run_dir": run_dir if run_dir is not None else ctx.run_dir,  # type: ignore[union-attr]
        "task": task or ctx.task,  # type: ignore[union-attr]
        "metric": metric or ctx.metric,  # type: ignore[union-attr]
        "baseline": baseline if baseline is not None else (ctx.baseline if ctx else None),
        "thresholds": thresholds if thresholds is not None else (
            ctx.config.diagnose.thresholds if ctx else None),
        "grad_stats_every": grad_stats_every if grad_stats_every is not None else (
            ctx.config.training.grad_stats_every if ctx else 10),
        "goal_target": goal_target if goal_target is not None else (
            ctx.config.goal.target if ctx else None),
        "n_val": n_val if n_val is not None else (len(ctx.val) if ctx else None),
        "checkpoints": checkpoints if checkpoints is not None else ctx is not None,
        "save_final": ctx is not None and ctx.max_steps is not None,
        "framework": framework,
        "train_rows": (train_rows_of(ctx) if ctx is not None else None) if (
            isinstance(train_rows, str) and train_rows == "auto") else train_rows,
    }


def train_rows_of(ctx: RunContext) -> tuple[np.ndarray, np.ndarray]:
    """The training rows mlt's engine reports under `train` for this run (`train_subset`:
    as many as val, at most a 32nd of train, at least 2048 or all of train; from the seed)."""
    from mltrainer.engine.loop import train_subset

    rows = train_subset(len(ctx.train), len(ctx.val), ctx.seed)
    return ctx.train.X[rows], ctx.train.y[rows]
