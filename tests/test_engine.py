"""The training engine: real training on small sklearn data sets, kept short.

Until the data layer lands, `digits_bundle()` and friends stand in for `prepare_data`: a
stratified 70/15/15 split (the test part is dropped, never used), standardised with train
statistics, as the duck type the engine codes against (`spec`, `train.X/y`, `val.X/y`).
"""

from __future__ import annotations

import copy
import functools
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from mltrainer.config import MltConfig, parse_config
from mltrainer.engine import (
    EarlyStopping,
    Trainer,
    compute_metrics,
    determinism_probe,
    find_resume_checkpoint,
    load_checkpoint,
    load_model_from_checkpoint,
    predict,
    seed_everything,
    set_deterministic,
)
from mltrainer.engine.metrics import softmax
from mltrainer.engine.schedule import LrSchedule
from mltrainer.errors import CheckpointError, ConfigError
from mltrainer.stream import read_stream

REPO = Path(__file__).resolve().parents[1]

# -- stand-in data bundles ------------------------------------------------------------------


def _bundle(X: np.ndarray, y: np.ndarray, task: str, image_shape: tuple[int, ...] | None
            ) -> SimpleNamespace:
    from sklearn.model_selection import train_test_split

    strat = y if task == "classification" else None
    X_tr, X_rest, y_tr, y_rest = train_test_split(X, y, test_size=0.3, random_state=42,
                                                  stratify=strat)
    X_va, _X_te, y_va, _y_te = train_test_split(  # the test half is dropped here, unused
        X_rest, y_rest, test_size=0.5, random_state=42,
        stratify=y_rest if task == "classification" else None)
    mean, std = X_tr.mean(0), X_tr.std(0)
    std[std == 0] = 1.0
    def scale(a: np.ndarray) -> np.ndarray:
        return ((a - mean) / std).astype(np.float32)

    ydt = np.int64 if task == "classification" else np.float32
    n_classes = int(y.max()) + 1 if task == "classification" else None
    spec = SimpleNamespace(
        task=task, n_features=X.shape[1], n_classes=n_classes,
        feature_names=[f"f{i}" for i in range(X.shape[1])], image_shape=image_shape,
        class_labels=list(range(n_classes)) if n_classes else None,
    )
    return SimpleNamespace(
        spec=spec, train=SimpleNamespace(X=scale(X_tr), y=y_tr.astype(ydt)),
        val=SimpleNamespace(X=scale(X_va), y=y_va.astype(ydt)),
        fingerprints={"train": "stand-in", "val": "stand-in"},
    )


@functools.cache
def digits_bundle() -> SimpleNamespace:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return _bundle(X, y, "classification", (1, 8, 8))


@functools.cache
def breast_cancer_bundle() -> SimpleNamespace:
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    return _bundle(X, y, "classification", None)


@functools.cache
def diabetes_bundle() -> SimpleNamespace:
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)  # targets left unscaled (25..346)
    return _bundle(X, y, "regression", None)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and key in out else value
    return out


def make_config(**over: Any) -> MltConfig:
    """The digits example config (mlp [256,128], adamw 1e-3, cosine, 30 epochs, batch 64,
    patience 5) with nested overrides."""
    base = {
        "name": "digits-test", "task": "classification", "seed": 42,
        "data": {"source": "sklearn:digits"},
        "model": {"kind": "mlp", "hidden": [256, 128], "dropout": 0.1},
        "training": {"epochs": 30, "batch_size": 64, "optimizer": "adamw", "lr": 1e-3,
                     "weight_decay": 1e-4, "scheduler": "cosine", "grad_clip": 1.0,
                     "early_stopping": {"patience": 5, "min_delta": 0.0}},
        "goal": {"metric": "accuracy", "target": 0.97},
    }
    return parse_config(_merge(base, over))


def _params(model_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model_state.items()}


def _assert_bitwise_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    unequal = [k for k in a if not torch.equal(a[k], b[k])]
    assert unequal == [], f"parameters differ: {unequal}"


class StopAt:
    """A subscriber that stops the run at one event."""

    def __init__(self, kind: str, number: int, reason: str = "test:stop") -> None:
        self.kind, self.number, self.reason = kind, number, reason
        self.seen: list[dict[str, Any]] = []

    def on_event(self, event: dict[str, Any]) -> str | None:
        self.seen.append(event)
        key = "step" if self.kind == "step" else "epoch"
        if event["type"] == self.kind and event[key] == self.number:
            return self.reason
        return None


# -- the headline: the shipped example configs on the real data layer -------------------------


def _example(name: str) -> tuple[MltConfig, Any]:
    """An example config and its data as `mlt train-baseline` prepares it (the real split)."""
    from mltrainer.data import prepare_data
    from mltrainer.resources import example_config

    cfg = parse_config(yaml.safe_load(example_config(name)))
    return cfg, prepare_data(cfg, REPO)


def test_digits_default_config_reaches_097(tmp_path: Path) -> None:
    cfg, bundle = _example("digits")  # mlp [256,128], adamw 1e-3, cosine, 30 epochs, patience 5
    start = time.perf_counter()
    result = Trainer(cfg, bundle, tmp_path / "runs" / "digits").fit()
    seconds = time.perf_counter() - start
    print(f"\ndigits mlp: val accuracy {result.best_metric:.4f} at epoch {result.best_epoch} "
          f"of {result.epochs_run} ({result.stopped_reason}) in {seconds:.2f} s")
    assert result.best_metric >= 0.97
    assert result.stopped_reason in ("completed", "early_stopping")
    assert set(result.val) == {"accuracy", "f1_macro", "roc_auc"}
    assert len(result.history) == result.epochs_run
    json.dumps(result.to_dict(), allow_nan=False)  # JSON-safe


def test_breast_cancer_example_config(tmp_path: Path) -> None:
    cfg, bundle = _example("breast_cancer")  # mlp [64,32], batch 32, 40 epochs, patience 8
    start = time.perf_counter()
    result = Trainer(cfg, bundle, tmp_path / "bc").fit()
    seconds = time.perf_counter() - start
    print(f"\nbreast_cancer mlp: val accuracy {result.best_metric:.4f} (roc_auc "
          f"{result.val['roc_auc']:.4f}) at epoch {result.best_epoch} of {result.epochs_run} "
          f"in {seconds:.2f} s")
    assert result.best_metric >= 0.95


# -- resume ----------------------------------------------------------------------------------

RESUME_CASES = {
    "adamw-cosine-dropout": {},
    "sgd-step-warmup-batchnorm": {"model": {"norm": "batch"},
                                  "training": {"optimizer": "sgd", "lr": 0.05,
                                               "scheduler": "step", "step_size": 2,
                                               "warmup_epochs": 1}},
    "adam-plateau-layernorm-bf16": {"model": {"norm": "layer"},
                                    "training": {"optimizer": "adam", "scheduler": "plateau",
                                                 "plateau_patience": 0, "precision": "bf16",
                                                 "grad_stats_every": 3}},
}


@pytest.mark.parametrize("case", list(RESUME_CASES))
@pytest.mark.parametrize("stop", [("epoch", 2), ("step", 27)])
def test_resume_is_bitwise_equal_to_uninterrupted(tmp_path: Path, case: str,
                                                  stop: tuple[str, int]) -> None:
    cfg = make_config(**_merge({"training": {"epochs": 4}}, RESUME_CASES[case]))
    bundle = digits_bundle()
    whole = Trainer(cfg, bundle, tmp_path / "whole").fit()
    assert whole.epochs_run == 4

    run_dir = tmp_path / "split"
    first = Trainer(cfg, bundle, run_dir, subscribers=[StopAt(*stop)]).fit()
    assert first.stopped_reason == "test:stop"
    if stop[0] == "epoch":
        resume = run_dir / "checkpoints" / f"epoch-{stop[1]:03d}.pt"
    else:
        resume = find_resume_checkpoint(run_dir)  # last.pt, written mid-epoch at the stop
        assert load_checkpoint(resume)["position"] == stop[1] - 20  # 20 steps per epoch
    second = Trainer(cfg, bundle, run_dir).fit(resume=resume)  # a NEW trainer

    assert second.stopped_reason == "completed" and second.final_step == whole.final_step
    a = load_checkpoint(Path(whole.checkpoints["last"]))["model"]
    b = load_checkpoint(Path(second.checkpoints["last"]))["model"]
    _assert_bitwise_equal(a, b)
    assert second.history == whole.history  # same losses and metrics, epoch by epoch
    events = read_stream(run_dir / "metrics.jsonl")  # appended, not replaced
    assert [e["type"] for e in events].count("start") == 2
    assert events[-1] == {**events[-1], "type": "end", "reason": "completed"}
    resumed = [e for e in events if e["type"] == "start"][1]["resumed_from"]
    assert resumed["step"] == (stop[1] * 20 if stop[0] == "epoch" else stop[1])


class CountingSubscriber:
    """A stateful subscriber (like the detectors): its state must survive a resume."""

    def __init__(self) -> None:
        self.steps = 0
        self.loss_sum = 0.0

    def on_event(self, event: dict[str, Any]) -> str | None:
        if event["type"] == "step":
            self.steps += 1
            self.loss_sum += event["loss"]
        return None

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "loss_sum": self.loss_sum}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps, self.loss_sum = state["steps"], state["loss_sum"]


def test_subscriber_state_is_checkpointed_and_restored(tmp_path: Path) -> None:
    cfg = make_config(training={"epochs": 3})
    whole = CountingSubscriber()
    Trainer(cfg, digits_bundle(), tmp_path / "whole", subscribers=[whole]).fit()
    first = CountingSubscriber()
    Trainer(cfg, digits_bundle(), tmp_path / "split",
            subscribers=[first, StopAt("step", 33)]).fit()
    assert first.steps == 33
    second = CountingSubscriber()
    Trainer(cfg, digits_bundle(), tmp_path / "split", subscribers=[second]).fit(
        resume=find_resume_checkpoint(tmp_path / "split"))
    assert (second.steps, second.loss_sum) == (whole.steps, whole.loss_sum) == (60,
                                                                                whole.loss_sum)


def test_watching_gradients_does_not_change_the_trajectory(tmp_path: Path) -> None:
    states = []
    for every in (0, 1, 7):
        cfg = make_config(training={"epochs": 1, "grad_stats_every": every})
        result = Trainer(cfg, digits_bundle(), tmp_path / f"every-{every}").fit()
        states.append(load_checkpoint(Path(result.checkpoints["last"]))["model"])
    _assert_bitwise_equal(states[0], states[1])
    _assert_bitwise_equal(states[0], states[2])


def test_resume_refuses_a_checkpoint_of_another_config(tmp_path: Path) -> None:
    cfg = make_config(training={"epochs": 1})
    Trainer(cfg, digits_bundle(), tmp_path / "a").fit()
    other = make_config(training={"epochs": 1, "lr": 0.002})
    with pytest.raises(CheckpointError, match="different config"):
        Trainer(other, digits_bundle(), tmp_path / "a").fit(
            resume=tmp_path / "a" / "checkpoints" / "last.pt")


def test_resume_never_rewrites_later_epochs(tmp_path: Path) -> None:
    cfg = make_config(training={"epochs": 3})
    Trainer(cfg, digits_bundle(), tmp_path / "a").fit()
    with pytest.raises(CheckpointError, match="rewrite its later epochs"):
        Trainer(cfg, digits_bundle(), tmp_path / "a").fit(
            resume=tmp_path / "a" / "checkpoints" / "epoch-001.pt")


def test_find_resume_checkpoint_without_any_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no checkpoint to resume from"):
        find_resume_checkpoint(tmp_path)


# -- checkpoint files -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def short_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, MltConfig]:
    run_dir = tmp_path_factory.mktemp("runs") / "short"
    cfg = make_config(training={"epochs": 3, "grad_stats_every": 5})
    result = Trainer(cfg, digits_bundle(), run_dir, baseline={"accuracy": 0.1}).fit()
    return run_dir, result, cfg


def test_checkpoints_load_weights_only_and_hold_the_whole_state(short_run: tuple) -> None:
    run_dir, result, cfg = short_run
    names = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert names == ["best.pt", "epoch-001.pt", "epoch-002.pt", "epoch-003.pt", "last.pt"]
    ckpt = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["config_fingerprint"] == cfg.fingerprint()
    assert (ckpt["epoch"], ckpt["step"], ckpt["position"]) == (3, 60, 0)
    assert set(ckpt["rng"]) == {"python", "numpy", "torch", "cuda", "shuffle"}
    assert ckpt["best_epoch"] == result.best_epoch and ckpt["best_metric"] == result.best_metric
    assert {"optimizer", "schedule", "scaler", "early_stopping", "history"} <= set(ckpt)
    best = torch.load(run_dir / "checkpoints" / "best.pt", weights_only=True)
    assert best["epoch"] == result.best_epoch


def test_epoch_events_carry_train_metrics_of_the_epochs_model(short_run: tuple) -> None:
    """Every epoch event has the task's metrics and loss on the training rows, measured like
    val's: the epoch's end model in eval mode (digits' 1257 training rows: all of them)."""
    run_dir, _result, cfg = short_run
    stream = read_stream(run_dir / "metrics.jsonl")
    epochs = [e for e in stream if e["type"] == "epoch"]
    assert [sorted(e["train"]) for e in epochs] == [["accuracy", "f1_macro", "roc_auc"]] * 3
    bundle = digits_bundle()
    # the start event says how many rows: the detectors weigh the train side's noise by it
    assert stream[0]["n_train_eval"] == len(bundle.train.y)
    model = load_model_from_checkpoint(run_dir / "checkpoints" / "epoch-003.pt", cfg,
                                       bundle.spec, device="cpu")
    outputs = predict(model, bundle.train.X)
    assert epochs[-1]["train"] == pytest.approx(compute_metrics("classification",
                                                                bundle.train.y, outputs))
    loss = torch.nn.functional.cross_entropy(torch.as_tensor(outputs),
                                             torch.as_tensor(bundle.train.y))
    assert epochs[-1]["train_eval_loss"] == pytest.approx(float(loss), rel=1e-5)
    assert epochs[-1]["train_eval_loss"] < epochs[0]["train_loss"]  # not the epoch mean
    assert _result.history[-1]["train"] == epochs[-1]["train"]

@pytest.mark.parametrize(
    ("n_train", "n_val", "items", "rows"),
    [
        (1257, 270, False, 1257),        # small: all of train
        (3000, 6, False, 2048),          # the floor
        (10_000, 2_000, False, 2048),    # the floor, val under it
        (20_000, 4_000, False, 2048),    # was 4000 (as many as val): a 32nd of train is 625
        (140_000, 30_000, False, 4375),  # issue 16's job: was 30 000, a 32nd of train now
        (1_000_000, 20_000, False, 20_000),  # val under a 32nd of train: as many as val
        (479, 61, True, 61),             # items: as many as val, no floor
        (3000, 6, True, 6),
        (50_000, 10_000, True, 2048),    # was 10 000
        (1_281_167, 50_000, True, 40_037),  # was 50 000
    ],
)
def test_train_subset_size_is_bounded_by_a_share_of_train(n_train: int, n_val: int,
                                                          items: bool, rows: int) -> None:
    """The train metrics' rows: as many as val, at most a 32nd of train (its forward pass
    then costs ~1 % of an epoch), never under 2048 (or all of train); items no more than val.
    Distinct sorted training rows, the same for the same seed."""
    from mltrainer.engine.loop import train_subset

    subset = train_subset(n_train, n_val, 7, items=items)
    assert len(subset) == rows
    assert np.all(np.diff(subset) > 0) and subset[0] >= 0 and subset[-1] < n_train
    assert np.array_equal(subset, train_subset(n_train, n_val, 7, items=items))


def test_start_event_records_the_bounded_train_subset(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """When the share bound applies (digits with the floor lowered to 16: a 32nd of 1257
    training rows is 40, under val's 270), the start event's n_train_eval, which the overfitting
    rule weighs the train side's noise by, is the subset's size, and the train metrics are
    those of exactly those rows."""
    from mltrainer.engine import loop

    monkeypatch.setattr(loop, "TRAIN_EVAL_MIN_ROWS", 16)
    bundle = digits_bundle()
    cfg = make_config(training={"epochs": 1})
    Trainer(cfg, bundle, tmp_path / "run").fit()
    stream = read_stream(tmp_path / "run" / "metrics.jsonl")
    rows = loop.train_subset(len(bundle.train.y), len(bundle.val.y), cfg.seed)
    assert stream[0]["n_train_eval"] == len(rows) == 40
    model = load_model_from_checkpoint(tmp_path / "run" / "checkpoints" / "epoch-001.pt", cfg,
                                       bundle.spec, device="cpu")
    outputs = predict(model, bundle.train.X[rows])
    epoch = next(e for e in stream if e["type"] == "epoch")
    assert epoch["train"] == pytest.approx(compute_metrics("classification",
                                                           bundle.train.y[rows], outputs))



@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda data: data[: len(data) // 2], "truncated or corrupted"),
        (lambda data: b"not a checkpoint at all" * 100, "truncated or corrupted"),
        (lambda data: b"", "truncated or corrupted"),
    ],
    ids=["truncated", "garbage", "empty"],
)
def test_damaged_checkpoint_is_a_clear_error(short_run: tuple, tmp_path: Path, damage: Any,
                                             message: str) -> None:
    run_dir, _, cfg = short_run
    bad = tmp_path / "last.pt"
    bad.write_bytes(damage((run_dir / "checkpoints" / "epoch-002.pt").read_bytes()))
    with pytest.raises(CheckpointError, match=message) as info:
        load_checkpoint(bad)
    assert str(bad) in info.value.message and "epoch-NNN.pt" in (info.value.hint or "")
    with pytest.raises(CheckpointError, match=message):
        Trainer(cfg, digits_bundle(), tmp_path / "again").fit(resume=bad)


def test_missing_checkpoint_and_foreign_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "nope.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not an mlt training checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")


def test_reloaded_best_checkpoint_reproduces_val_metrics(short_run: tuple) -> None:
    run_dir, result, cfg = short_run
    bundle = digits_bundle()
    model = load_model_from_checkpoint(run_dir / "checkpoints" / "best.pt", cfg, bundle.spec)
    outputs = predict(model, bundle.val.X)
    assert outputs.shape == (len(bundle.val.y), 10)
    assert compute_metrics("classification", bundle.val.y, outputs) == result.val


def test_a_checkpoint_of_another_architecture_is_refused(short_run: tuple) -> None:
    run_dir, _, _ = short_run
    other = make_config(model={"hidden": [32]})
    with pytest.raises(CheckpointError, match="do not fit the configured model"):
        load_model_from_checkpoint(run_dir / "checkpoints" / "best.pt", other,
                                   digits_bundle().spec)


def test_run_folder_and_stream(short_run: tuple) -> None:
    run_dir, result, cfg = short_run
    assert yaml.safe_load((run_dir / "config.resolved.yaml").read_text()) == cfg.model_dump(
        mode="json")
    assert json.loads((run_dir / "env.json").read_text())["torch"]["version"] == torch.__version__
    events = read_stream(run_dir / "metrics.jsonl")
    start, end = events[0], events[-1]
    assert start["type"] == "start" and start["run_id"] == "short"
    assert (start["task"], start["metric"], start["greater_is_better"]) == (
        "classification", "accuracy", True)
    assert start["steps_per_epoch"] == 20 and start["baseline"] == {"accuracy": 0.1}
    steps = [e for e in events if e["type"] == "step"]
    assert [e["step"] for e in steps] == list(range(1, 61))
    assert all({"loss", "lr", "grad_norm", "epoch", "time"} <= set(e) for e in steps)
    with_layers = [e["step"] for e in steps if "layers" in e]
    assert with_layers == list(range(5, 61, 5))
    layers = next(e["layers"] for e in steps if "layers" in e)
    assert set(layers) == {"net.0.weight", "net.0.bias", "net.3.weight", "net.3.bias",
                           "net.6.weight", "net.6.bias"}
    assert all(0.0 <= v["zero_frac"] <= 1.0 and v["grad_norm"] >= 0 for v in layers.values())
    epochs = [e for e in events if e["type"] == "epoch"]
    assert [e["epoch"] for e in epochs] == [1, 2, 3]
    for e in epochs:
        assert {"train_loss", "val_loss", "val", "lr", "wall_time", "peak_mem_mb"} <= set(e)
        assert set(e["val"]) == {"accuracy", "f1_macro", "roc_auc"} and e["peak_mem_mb"] > 0
    assert (end["type"], end["reason"], end["step"]) == ("end", "completed", 60)
    assert result.checkpoints == {"best": str(run_dir / "checkpoints" / "best.pt"),
                                  "last": str(run_dir / "checkpoints" / "last.pt")}


# -- stopping: early stopping, subscribers, non-finite losses ---------------------------------


@pytest.mark.parametrize(
    ("values", "patience", "min_delta", "greater", "stop_epoch"),
    [
        ([0.5, 0.6, 0.7, 0.8], 2, 0.0, True, None),
        ([0.5, 0.6, 0.6, 0.6], 2, 0.0, True, 4),  # equal is not better
        ([0.5, 0.6, 0.55, 0.61], 2, 0.0, True, None),
        ([0.5, 0.6, 0.605, 0.609], 2, 0.01, True, 4),  # gains below min_delta do not count
        ([1.0, 0.9, 0.95, 0.99, 0.9], 3, 0.0, False, 5),  # lower is better (rmse)
        ([0.5, math.nan, math.nan], 2, 0.0, True, 3),  # NaN never improves
        ([math.nan, 0.1, 0.1, 0.1], 2, 0.0, True, 4),  # a finite value beats a NaN start
        ([0.5, 0.4, 0.3, 0.2, 0.1], 0, 0.0, True, None),  # patience 0: off
    ],
)
def test_early_stopping_table(values: list[float], patience: int, min_delta: float,
                              greater: bool, stop_epoch: int | None) -> None:
    stopper = EarlyStopping(patience, min_delta, greater)
    stopped = next((epoch for epoch, v in enumerate(values, 1) if stopper.update(v).should_stop),
                   None)
    assert stopped == stop_epoch


@pytest.mark.parametrize(
    ("values", "losses", "greater", "stop_epoch", "best"),
    [
        # a saturated accuracy: tied epochs with a falling val loss keep improving
        ([0.9, 1.0, 1.0, 1.0, 1.0], [0.5, 0.3, 0.1, 0.05, 0.01], True, None, 5),
        ([0.9, 1.0, 1.0, 1.0, 1.0], [0.5, 0.3, 0.4, 0.35, 0.31], True, 4, 2),  # loss no lower
        ([0.9, 1.0, 0.95, 1.0], [0.5, 0.3, 0.01, 0.2], True, None, 4),  # a tie with the best
        ([2.0, 1.5, 1.5, 1.5], [4.0, 2.0, 1.9, math.nan], False, None, 3),  # rmse; NaN loss
        ([0.9, 0.9, 0.9], [0.5, 0.5, 0.5], True, 3, 1),  # an equal loss is not lower
    ],
)
def test_a_tie_of_the_goal_metric_is_broken_by_the_val_loss(
        values: list[float], losses: list[float], greater: bool, stop_epoch: int | None,
        best: int) -> None:
    """The best epoch and early stopping judge alike: the goal metric, then on an exact tie
    the lower val loss (`engine.metrics.improves`)."""
    stopper = EarlyStopping(2, 0.0, greater)
    decisions = [stopper.update(v, loss) for v, loss in zip(values, losses, strict=True)]
    stopped = next((i for i, d in enumerate(decisions, 1) if d.should_stop), None)
    best_epoch = max(i for i, d in enumerate(decisions, 1) if d.improved)
    assert (stopped, best_epoch) == (stop_epoch, best)
    restored = EarlyStopping(2, 0.0, greater)
    restored.load_state_dict(stopper.state_dict())
    assert restored.best_loss == stopper.best_loss


def test_a_saturated_val_metric_keeps_the_epoch_with_the_lowest_val_loss(tmp_path: Path) -> None:
    """On a val set small enough that accuracy reaches 1.0 early, the best checkpoint is the
    tied epoch with the lowest val loss, not the first tied one."""
    cfg = make_config(training={"lr": 0.01, "epochs": 8, "early_stopping": {"patience": 3}})
    result = Trainer(cfg, digits_bundle(), tmp_path / "tie").fit()
    epochs = [e for e in read_stream(tmp_path / "tie" / "metrics.jsonl") if e["type"] == "epoch"]
    top = max(e["val"]["accuracy"] for e in epochs)
    tied = [e for e in epochs if e["val"]["accuracy"] == top]
    assert len(tied) >= 2, [e["val"]["accuracy"] for e in epochs]  # else nothing is tested
    assert result.best_epoch == min(tied, key=lambda e: e["val_loss"])["epoch"]


def test_early_stopping_refuses_negative_patience() -> None:
    with pytest.raises(ValueError, match="patience cannot be negative but got -1"):
        EarlyStopping(-1, 0.0, True)


def test_early_stopping_stops_a_real_run_at_the_expected_epoch(tmp_path: Path) -> None:
    # an lr so small that predictions, hence val accuracy, never change after epoch 1
    cfg = make_config(training={"lr": 1e-12, "epochs": 10, "early_stopping": {"patience": 2}})
    result = Trainer(cfg, digits_bundle(), tmp_path / "es").fit()
    assert result.stopped_reason == "early_stopping"
    assert (result.epochs_run, result.best_epoch) == (3, 1)
    assert read_stream(tmp_path / "es" / "metrics.jsonl")[-1]["reason"] == "early_stopping"


def test_subscriber_stop_reason_stops_at_that_step(tmp_path: Path) -> None:
    sub = StopAt("step", 7, "detector:test")
    result = Trainer(make_config(), digits_bundle(), tmp_path / "s", subscribers=[sub]).fit()
    assert result.stopped_reason == "detector:test"
    assert (result.final_step, result.epochs_run, result.final_epoch) == (7, 0, 1)
    assert result.best_epoch is None and result.val == {}
    events = read_stream(tmp_path / "s" / "metrics.jsonl")
    assert [e["type"] for e in events] == ["start"] + ["step"] * 7 + ["end"]
    assert events[-1]["reason"] == "detector:test"
    assert [e["type"] for e in sub.seen] == [e["type"] for e in events]  # it saw every event
    assert load_checkpoint(tmp_path / "s" / "checkpoints" / "last.pt")["position"] == 7


class StopOnNonFinite:
    def on_event(self, event: dict[str, Any]) -> str | None:
        if event["type"] == "step" and not math.isfinite(event["loss"]):
            return "detector:nan_loss"
        return None


def _all_checkpoints_finite(run_dir: Path) -> list[str]:
    names = []
    for path in sorted((run_dir / "checkpoints").glob("*.pt")):
        state = torch.load(path, weights_only=True)["model"]
        assert all(torch.isfinite(t).all() for t in state.values()), f"{path.name} non-finite"
        names.append(path.name)
    return names


@pytest.mark.parametrize("stop_on_nan", [False, True])
def test_a_nan_loss_never_leaves_non_finite_weights(tmp_path: Path, stop_on_nan: bool) -> None:
    # sgd with momentum, no clipping, unscaled targets: diverges to inf/NaN after some epochs
    cfg = make_config(task="regression", data={"source": "sklearn:diabetes"},
                      model={"dropout": 0.0},
                      training={"optimizer": "sgd", "lr": 1e-3, "grad_clip": None,
                                "scheduler": "none", "epochs": 8,
                                "early_stopping": {"patience": 0}},
                      goal={"metric": "rmse", "target": 50.0})
    subs = [StopOnNonFinite()] if stop_on_nan else []
    result = Trainer(cfg, diabetes_bundle(), tmp_path / "nan", subscribers=subs).fit()
    losses = [e["loss"] for e in read_stream(tmp_path / "nan" / "metrics.jsonl")
              if e["type"] == "step"]
    assert not all(math.isfinite(v) for v in losses), "the designed case must diverge"
    assert result.stopped_reason == ("detector:nan_loss" if stop_on_nan else "completed")
    names = _all_checkpoints_finite(tmp_path / "nan")
    assert "last.pt" in names and "best.pt" in names  # the last finite state stands
    assert math.isfinite(result.best_metric)
    model = load_model_from_checkpoint(Path(result.checkpoints["last"]), cfg,
                                       diabetes_bundle().spec)
    assert predict(model, diabetes_bundle().val.X).shape == (len(diabetes_bundle().val.y),)
    as_json = json.dumps(result.to_dict(), allow_nan=False)  # non-finite values as "nan"
    assert '"nan"' in as_json or '"inf"' in as_json or stop_on_nan


class BlockRecorder:
    """A subscriber with `on_steps`: the loop hands it the step events in blocks."""

    def __init__(self) -> None:
        self.blocks: list[list[dict[str, Any]]] = []
        self.events: list[dict[str, Any]] = []

    def on_steps(self, block: Any) -> None:
        self.blocks.append(list(block.events))
        self.events += block.events

    def on_event(self, event: dict[str, Any]) -> None:
        self.events.append(event)


def test_step_blocks_write_each_step_line_as_the_per_step_writer_did(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # blocks of 7 on 20-step epochs: full blocks, an epoch's short last one; per-layer
    # statistics every 3rd step. The per-step writer wrote `line_of(event)` of each step event
    # as it ended (MetricWriter.write); a per-step subscriber (no on_steps) still gets that
    # event, so the file must hold exactly its line, and the block subscribers the same events.
    from mltrainer.detectors import DetectorSubscriber, build_detectors, run_detectors
    from mltrainer.engine import loop
    from mltrainer.stream import line_of

    monkeypatch.setattr(loop, "STEP_BLOCK", 7)
    per_step, blocks = CountingSubscriber(), BlockRecorder()
    seen: list[dict[str, Any]] = []
    per_step.on_event = lambda e: seen.append(e) if e["type"] == "step" else None  # type: ignore
    detectors = DetectorSubscriber(build_detectors(None))
    cfg = make_config(training={"epochs": 2, "grad_stats_every": 3})
    Trainer(cfg, digits_bundle(), tmp_path / "r", subscribers=[detectors, blocks, per_step]).fit()
    lines = (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()
    steps = [line for line in lines if line.startswith('{"type":"step"')]
    assert len(steps) == len(seen) == 40
    assert steps == [line_of(event) for event in seen]  # byte for byte, time included
    assert [e for e in blocks.events if e["type"] == "step"] == seen
    assert [len(b) for b in blocks.blocks] == [7, 7, 6, 7, 7, 6]
    base = ["type", "epoch", "step", "loss", "lr", "grad_norm"]
    assert [list(e) for e in seen] == [
        [*base, "layers", "time"] if e["step"] % 3 == 0 else [*base, "time"] for e in seen]
    # every epoch event after the steps before it; judged as event by event (offline)
    kinds = [json.loads(line)["type"] for line in lines]
    assert kinds == ["start"] + ["step"] * 20 + ["epoch"] + ["step"] * 20 + ["epoch", "end"]
    offline = run_detectors(tmp_path / "r" / "metrics.jsonl")
    assert [f.to_dict() for f in detectors.findings] == [f.to_dict() for f in offline]


@pytest.mark.parametrize("rows", [
    [(1, 1, 0.5, 1e-3, 1.25, 1.7e9), (1, 2, 0.25, 1e-3, 0.75, 1.7e9 + 0.1)],  # the loop's
    [(1, 1, 0.5, 1e-3, math.nan, 1.0), (1, 2, 0.5, 1e-3, math.inf, 2.0)],  # non-finite norms
    [(1, 1, 0.5, 1e-3, 1e308, 1.0), (1, 2, 0.5, 1e-3, 1e308, 2.0)],  # a sum that overflows
    [(1, 1, 0.5, 1e-3, 1, 1.0), (1, 2, 0.5, 1e-3, 2.0, 2.0)],  # an int norm
])
def test_a_block_with_a_norm_on_every_step_is_each_steps_line(rows: list[tuple[Any, ...]]
                                                              ) -> None:
    """`stream.step_lines` checks a norm on every step (the loop's, HF's) once for the block:
    byte for byte `step_line` of each step (None where the encoder must write it)."""
    from mltrainer.stream import step_line, step_lines

    columns = [list(column) for column in zip(*rows, strict=True)]
    assert step_lines(*columns) == [step_line(*row) for row in rows]


@pytest.mark.parametrize("rows", [
    [(1, 1, 0.5, 1e-3, 1.25, None, 1.7e9), (1, 2, 0.25, 1e-3, 0.75, None, 1.7e9 + 0.1)],
    [(1, 1, 0.5, 1e-3, 1.25, {"w": {"grad_norm": 1.0, "zero_frac": 0.0}}, 1.0),
     (1, 2, 0.5, 1e-3, 1.5, None, 2.0)],  # a per-layer table
    [(1, 1, 0.5, 1e-3, math.nan, None, 1.0), (1, 2, math.inf, 1e-3, 1.0, None, 2.0)],
])
def test_a_blocks_lines_are_each_events_line(rows: list[tuple[Any, ...]]) -> None:
    """The loop writes a block's lines from its columns (`stream.block_lines`): byte for byte
    what the per-step writer wrote for each event (`line_of`)."""
    from mltrainer.detectors import StepBlock
    from mltrainer.stream import block_lines, line_of

    block = StepBlock(*[list(column) for column in zip(*rows, strict=True)])
    assert block_lines(block) == [line_of(event) for event in block.events]


def test_a_non_finite_step_stops_training_at_that_step(tmp_path: Path) -> None:
    # the real nan_loss detector, in blocks: the stop, the finding and the end event name the
    # first step whose loss or gradient norm is not finite, and nothing after it is written
    from mltrainer.detectors import DetectorSubscriber, build_detectors

    cfg = make_config(task="regression", data={"source": "sklearn:diabetes"},
                      model={"dropout": 0.0},
                      training={"optimizer": "sgd", "lr": 1e-3, "grad_clip": None,
                                "scheduler": "none", "epochs": 8,
                                "early_stopping": {"patience": 0}},
                      goal={"metric": "rmse", "target": 50.0})
    detectors = DetectorSubscriber(build_detectors(None))
    result = Trainer(cfg, diabetes_bundle(), tmp_path / "nan", subscribers=[detectors]).fit()
    events = read_stream(tmp_path / "nan" / "metrics.jsonl")
    bad = [e["step"] for e in events if e["type"] == "step"
           and not (math.isfinite(e["loss"]) and math.isfinite(e["grad_norm"]))]
    assert result.stopped_reason == "detector:nan_loss" and bad == [result.final_step]
    assert events[-2]["type"] == "step" and events[-2]["step"] == result.final_step
    assert (events[-1]["reason"], events[-1]["step"]) == ("detector:nan_loss", bad[0])
    nan = [f for f in detectors.findings if f.id == "nan_loss"]
    assert [f.onset["step"] for f in nan] == bad


# -- determinism --------------------------------------------------------------------------------


def test_determinism_probe_is_identical() -> None:
    evidence = determinism_probe(make_config(), digits_bundle(), steps=25)
    assert evidence["identical"] is True and evidence["max_abs_diff"] == 0.0
    assert evidence["steps"] == 25
    a, b = evidence["params_sha256"]
    assert a == b and len(a) == 64


def test_seeding_and_flags() -> None:
    seed_everything(3)
    a = (np.random.rand(), torch.rand(1).item())
    seed_everything(3)
    assert (np.random.rand(), torch.rand(1).item()) == a
    flags = set_deterministic()
    assert flags["use_deterministic_algorithms"] is True and flags["cudnn_benchmark"] is False
    assert "pythonhashseed" in flags


# -- SIGINT in a real subprocess ----------------------------------------------------------------

SCRIPT = """
import importlib.util, json, sys, time
from pathlib import Path
spec = importlib.util.spec_from_file_location("engine_tests", sys.argv[1])
tests = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tests)
from mltrainer.engine import Trainer

class Slow:  # gives the test time to send the signal mid-epoch; counts the steps done
    def on_event(self, event):
        if event["type"] == "step":
            Path(sys.argv[2] + ".steps").write_text(str(event["step"]))
            time.sleep(0.01)

cfg = tests.make_config(training={"epochs": 4})
result = Trainer(cfg, tests.digits_bundle(), Path(sys.argv[2]), subscribers=[Slow()]).fit()
print(json.dumps(result.to_dict()))
"""


def _steps_done(run_dir: Path) -> int:
    """The last step the script's subscriber saw end (its lines may wait in a block)."""
    text = Path(f"{run_dir}.steps").read_text() if Path(f"{run_dir}.steps").is_file() else ""
    return int(text) if text.strip() else 0


def _wait_for_steps(run_dir: Path, count: int, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if _steps_done(run_dir) >= count:
            return
        time.sleep(0.02)
    proc.kill()
    raise AssertionError(f"no {count} step events in {timeout} s")


def _start_training(tmp_path: Path, run_dir: Path) -> subprocess.Popen:
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(SCRIPT))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(script), __file__, str(run_dir)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # inside epoch 2; generous: it returns as soon as the steps are there (a loaded CI box)
    _wait_for_steps(run_dir, 25, proc, timeout=180)
    return proc


def _resume_equals_uninterrupted(tmp_path: Path, run_dir: Path) -> None:
    cfg = make_config(training={"epochs": 4})
    resumed = Trainer(cfg, digits_bundle(), run_dir).fit(resume=find_resume_checkpoint(run_dir))
    assert resumed.stopped_reason == "completed" and resumed.final_step == 80
    whole = Trainer(cfg, digits_bundle(), tmp_path / "whole").fit()
    _assert_bitwise_equal(load_checkpoint(Path(whole.checkpoints["last"]))["model"],
                          load_checkpoint(Path(resumed.checkpoints["last"]))["model"])
    assert resumed.history == whole.history


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_saves_a_checkpoint_and_resume_finishes(tmp_path: Path, sig: int) -> None:
    run_dir = tmp_path / "runs" / "sig"
    proc = _start_training(tmp_path, run_dir)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["stopped_reason"] == "interrupted"

    ckpt_path = run_dir / "checkpoints" / "interrupt.pt"
    ckpt = torch.load(ckpt_path, weights_only=True)
    assert ckpt["step"] == result["final_step"] and 0 < ckpt["position"] < 20
    assert ckpt["epoch"] == 1 and result["final_epoch"] == 2
    assert result["checkpoints"]["interrupt"] == str(ckpt_path)
    end = read_stream(run_dir / "metrics.jsonl")[-1]
    assert (end["type"], end["reason"], end["step"]) == ("end", "interrupted", ckpt["step"])
    _resume_equals_uninterrupted(tmp_path, run_dir)  # continues exactly at that step


def test_kill_9_loses_at_most_the_epoch_in_progress(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "killed"
    proc = _start_training(tmp_path, run_dir)
    proc.kill()
    proc.communicate(timeout=180)
    assert proc.returncode == -signal.SIGKILL
    events = read_stream(run_dir / "metrics.jsonl")
    assert events[-1]["type"] in ("step", "epoch")  # no end event
    # epoch 1 whole; of epoch 2 the steps up to the block in progress (engine.loop.STEP_BLOCK)
    from mltrainer.engine.loop import STEP_BLOCK

    steps = [e["step"] for e in events if e["type"] == "step"]
    assert [e["epoch"] for e in events if e["type"] == "epoch"] == [1]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) >= 20
    assert _steps_done(run_dir) - STEP_BLOCK <= len(steps) <= _steps_done(run_dir)
    resume = find_resume_checkpoint(run_dir)
    assert load_checkpoint(resume)["epoch"] == 1  # epoch 1 survived; epoch 2 was in progress
    _resume_equals_uninterrupted(tmp_path, run_dir)


def test_signal_handlers_are_restored_after_fit(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    Trainer(make_config(training={"epochs": 1}), digits_bundle(), tmp_path / "r").fit()
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_deterministic_flags_are_restored_after_fit(tmp_path: Path) -> None:
    torch.use_deterministic_algorithms(False)
    result = Trainer(make_config(training={"epochs": 1}), digits_bundle(), tmp_path / "r").fit()
    assert result.deterministic["use_deterministic_algorithms"] is True
    assert torch.are_deterministic_algorithms_enabled() is False


def test_a_used_run_folder_is_refused_for_a_fresh_start(tmp_path: Path) -> None:
    cfg = make_config(training={"epochs": 1})
    Trainer(cfg, digits_bundle(), tmp_path / "r").fit()
    with pytest.raises(CheckpointError, match="already holds a run"):
        Trainer(cfg, digits_bundle(), tmp_path / "r").fit()


# -- models through the trainer, precision, devices ---------------------------------------------


def test_factory_model_trains(tmp_path: Path) -> None:
    name = f"user_net_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent("""
        import torch.nn as nn

        def build(input_spec, output_spec, width=32):
            return nn.Sequential(nn.Linear(input_spec["n_features"], width), nn.ReLU(),
                                 nn.Linear(width, output_spec["n_outputs"]))
    """))
    cfg = make_config(model={"kind": f"python:{name}:build", "params": {"width": 48}},
                      training={"epochs": 3, "lr": 1e-2})
    run_dir = tmp_path / "runs" / "factory"  # root inferred: tmp_path holds the module
    result = Trainer(cfg, digits_bundle(), run_dir).fit()
    assert result.best_metric > 0.9
    model = load_model_from_checkpoint(Path(result.checkpoints["best"]), cfg,
                                       digits_bundle().spec, root=tmp_path)
    assert model[0].out_features == 48


NONDETERMINISTIC = """
import torch
import torch.nn as nn

class Scatter(nn.Module):  # put_(accumulate=False) has no deterministic implementation
    def __init__(self, n_features, n_outputs):
        super().__init__()
        self.linear = nn.Linear(n_features, n_outputs)

    def forward(self, x):
        out = self.linear(x)
        return out + torch.zeros(1).put_(torch.tensor([0]), torch.tensor([0.0]))

def build(input_spec, output_spec):
    return Scatter(input_spec["n_features"], output_spec["n_outputs"])
"""


def test_an_op_without_a_deterministic_kernel_is_reported_not_crashed(tmp_path: Path) -> None:
    name = f"user_nd_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(NONDETERMINISTIC)
    cfg = make_config(model={"kind": f"python:{name}:build"}, training={"epochs": 1})
    evidence = determinism_probe(cfg, digits_bundle(), steps=3, root=tmp_path)
    assert evidence["identical"] is False and "put_" in evidence["error"]
    with pytest.raises(ConfigError, match="cannot run deterministically.*put_"):
        Trainer(cfg, digits_bundle(), tmp_path / "runs" / "nd").fit()
    end = read_stream(tmp_path / "runs" / "nd" / "metrics.jsonl")[-1]
    assert (end["type"], end["reason"]) == ("end", "error:RuntimeError")


def test_cnn_trains_on_digits(tmp_path: Path) -> None:
    cfg = make_config(model={"kind": "cnn", "hidden": [64]},
                      training={"epochs": 3, "lr": 1e-2})
    result = Trainer(cfg, digits_bundle(), tmp_path / "cnn").fit()
    assert result.best_metric > 0.8


def test_fp16_on_cpu_is_refused() -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: fp16 is allowed")
    with pytest.raises(ConfigError, match="fp16"):
        Trainer(make_config(training={"precision": "fp16"}), digits_bundle(), Path("unused"))


def test_regression_run_records_regression_metrics(tmp_path: Path) -> None:
    cfg = make_config(task="regression", data={"source": "sklearn:diabetes"},
                      training={"epochs": 3, "lr": 1e-2},
                      goal={"metric": "rmse", "target": 50.0})
    result = Trainer(cfg, diabetes_bundle(), tmp_path / "reg").fit()
    assert set(result.val) == {"rmse", "mae", "r2"}
    assert all(h["val"]["rmse"] >= result.best_metric for h in result.history)  # lower is better


# -- metrics and schedule tables ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "classes", "seed", "ties", "absent"),
    [
        (270, 10, 0, False, None),
        (270, 10, 1, True, None),  # coarse logits: many tied probabilities
        (86, 2, 2, False, None),
        (86, 2, 3, True, None),
        (60, 3, 4, False, 2),  # class 2 absent from the evaluated rows
        (500, 5, 5, True, 0),
    ],
)
def test_classification_metrics_equal_sklearn(rows: int, classes: int, seed: int, ties: bool,
                                              absent: int | None) -> None:
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(rows, classes))
    if ties:
        logits = np.round(logits)
    y = rng.integers(0, classes, size=rows)
    if absent is not None:
        y[y == absent] = (absent + 1) % classes
    got = compute_metrics("classification", y, logits)
    probs = softmax(logits)  # the same probabilities (and ties) for both
    pred = probs.argmax(1)
    if classes == 2:
        auc = roc_auc_score(y, probs[:, 1])
    elif absent is None:
        auc = roc_auc_score(y, probs, multi_class="ovr", average="macro")
    else:  # the documented fallback: macro over the classes present
        auc = np.mean([roc_auc_score(y == c, probs[:, c]) for c in np.unique(y)])
    expected = {"accuracy": accuracy_score(y, pred),
                "f1_macro": f1_score(y, pred, average="macro", zero_division=0),
                "roc_auc": auc}
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_regression_metrics_equal_sklearn() -> None:
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    rng = np.random.default_rng(0)
    y, pred = rng.normal(size=67) * 50 + 150, rng.normal(size=(67, 1)) * 50 + 150
    got = compute_metrics("regression", y, pred)
    expected = {"rmse": math.sqrt(mean_squared_error(y, pred[:, 0])),
                "mae": mean_absolute_error(y, pred[:, 0]), "r2": r2_score(y, pred[:, 0])}
    assert got == pytest.approx(expected, rel=1e-12)


def test_roc_auc_with_one_class_is_chance_not_nan() -> None:
    logits = np.random.default_rng(0).normal(size=(20, 3))
    assert compute_metrics("classification", np.zeros(20, dtype=int), logits)["roc_auc"] == 0.5


@pytest.mark.parametrize(
    ("task", "outputs", "expected"),
    [
        ("regression", np.array([[1.0], [2.0], [3.0]]), {"rmse": 0.0, "mae": 0.0, "r2": 1.0}),
        ("regression", np.array([1.0, 2.0, 5.0]), {"rmse": math.sqrt(4 / 3), "mae": 2 / 3}),
        ("regression", np.array([2.0, 2.0, 2.0]), {"r2": 0.0}),
        ("regression", np.array([1.0, np.nan, 3.0]),
         {"rmse": math.nan, "mae": math.nan, "r2": math.nan}),
        ("classification", np.array([[1.0, np.inf], [0.0, 1.0], [1.0, 0.0]]),
         {"accuracy": math.nan}),
    ],
)
def test_metrics_table(task: str, outputs: np.ndarray, expected: dict[str, float]) -> None:
    y = np.array([1.0, 2.0, 3.0]) if task == "regression" else np.array([1, 1, 0])
    got = compute_metrics(task, y, outputs)
    for name, value in expected.items():
        assert (math.isnan(got[name]) if math.isnan(value)
                else got[name] == pytest.approx(value)), (name, got)


@pytest.mark.parametrize(
    ("training", "lrs"),  # 10 steps per epoch, 3 epochs, base lr 1.0
    [
        ({"scheduler": "none"}, {0: 1.0, 15: 1.0, 29: 1.0}),
        ({"scheduler": "none", "warmup_epochs": 1}, {0: 0.1, 4: 0.5, 9: 1.0, 20: 1.0}),
        ({"scheduler": "cosine"}, {0: 1.0, 15: 0.5, 30: 0.0}),
        ({"scheduler": "cosine", "warmup_epochs": 1}, {0: 0.1, 10: 1.0, 20: 0.5}),
        ({"scheduler": "step", "step_size": 1, "gamma": 0.5}, {0: 1.0, 10: 0.5, 25: 0.25}),
    ],
)
def test_lr_schedule_table(training: dict[str, Any], lrs: dict[int, float]) -> None:
    cfg = make_config(training={"lr": 1.0, "epochs": 3, **training}).training
    schedule = LrSchedule(cfg, steps_per_epoch=10, greater_is_better=True)
    assert {s: pytest.approx(schedule.lr_at(s)) for s in lrs} == lrs


def test_plateau_schedule_drops_after_patience() -> None:
    cfg = make_config(training={"lr": 1.0, "scheduler": "plateau", "plateau_patience": 1,
                                "gamma": 0.5}).training
    schedule = LrSchedule(cfg, steps_per_epoch=10, greater_is_better=True)
    for value in (0.5, 0.6, 0.6, 0.6):  # two epochs without improvement > patience 1
        schedule.on_epoch_end(value)
    assert schedule.lr_at(40) == 0.5
    restored = LrSchedule(cfg, steps_per_epoch=10, greater_is_better=True)
    restored.load_state_dict(schedule.state_dict())
    assert restored.lr_at(40) == 0.5 and restored.state_dict() == schedule.state_dict()


@pytest.mark.parametrize(
    ("signal_name", "subscriber_reason", "expected"),
    [
        (None, None, None),
        (None, "pruned", "pruned"),
        ("SIGINT", None, "interrupted"),
        ("SIGINT", "pruned", "interrupted"),  # the user's Ctrl-C is never swallowed
        ("SIGTERM", "detector:nan_loss", "detector:nan_loss"),  # bad weights: the detector wins
    ],
)
def test_interrupt_precedence_over_subscriber_stops(signal_name, subscriber_reason, expected):
    from mltrainer.engine.loop import _with_interrupt
    from mltrainer.engine.signals import InterruptFlag

    flag = InterruptFlag()
    flag.signal_name = signal_name
    assert _with_interrupt(subscriber_reason, flag) == expected
