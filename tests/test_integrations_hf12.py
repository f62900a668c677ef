"""A new user's Hugging Face Trainer scripts and training.entrypoint projects, in the shapes
users write them: gradient accumulation, max_steps, fractional epochs, eval_on_start, a
resumed run; a load_model that fails, a script that trains at import."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from mltrainer.stream import read_stream

# -- the HF callback on the Trainer's own counts ----------------------------------------------


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> Any:
        logits = self.body(x)
        if labels is None:
            return logits
        return {"loss": nn.functional.cross_entropy(logits, labels), "logits": logits}


class _Rows(torch.utils.data.Dataset):
    def __init__(self, X: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y = torch.as_tensor(X), torch.as_tensor(y)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "labels": self.y[i]}


def _iris() -> tuple[_Rows, _Rows]:
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    X = ((X - X.mean(0)) / X.std(0)).astype(np.float32)
    order = np.random.default_rng(0).permutation(len(y))
    X, y = X[order], y[order]
    return _Rows(X[:104], y[:104]), _Rows(X[104:], y[104:])  # 104 rows: 13 batches of 8


def _hf_run(run_dir: Path, out: Path, *, resume: str | None = None, **kwargs: Any) -> Any:
    from mltrainer.engine.entrypoint import frameworks_importable

    frameworks_importable()
    from transformers import Trainer, TrainingArguments

    from mltrainer.integrations.transformers import MltCallback

    train, val = _iris()
    settings = {"num_train_epochs": 2, "per_device_train_batch_size": 8, "learning_rate": 0.05,
                "eval_strategy": "epoch", "save_strategy": "no", "report_to": "none",
                "use_cpu": True, "seed": 0, "disable_tqdm": True, "log_level": "error", **kwargs}
    torch.manual_seed(0)
    trainer = Trainer(
        model=_Net(), args=TrainingArguments(output_dir=str(out), **settings),
        train_dataset=train, eval_dataset=val,
        compute_metrics=lambda p: {"accuracy": float((p.predictions.argmax(1)
                                                      == p.label_ids).mean())},
        callbacks=[MltCallback(run_dir, task="classification", metric="accuracy",
                               train_rows=None)])
    trainer.train(resume_from_checkpoint=resume)
    return trainer


def _epochs_of(events: list[dict[str, Any]]) -> tuple[dict[int, int], list[int]]:
    """(steps per epoch, the epoch events' epochs) of a stream."""
    per: dict[int, int] = {}
    for e in events:
        if e["type"] == "step":
            per[e["epoch"]] = per.get(e["epoch"], 0) + 1
    return per, [e["epoch"] for e in events if e["type"] == "epoch"]


@pytest.mark.parametrize(("settings", "steps_per_epoch", "epochs"), [
    # 13 batches in 3-batch accumulations: 5 steps an epoch (the last one of a single batch);
    # the callback said 4
    ({"gradient_accumulation_steps": 3}, 5, 2),
    # max_steps decides, num_train_epochs is ignored: 40 steps of 13 are 4 epochs (said 1)
    ({"max_steps": 40, "num_train_epochs": 1}, 13, 4),
    # a fractional num_train_epochs ends within its last epoch: 1.5 runs 2 (said 1)
    ({"num_train_epochs": 1.5}, 13, 2),
    # eval_on_start: the evaluation before any step was a second event of epoch 1
    ({"eval_on_start": True}, 13, 2),
])
def test_the_hf_start_event_and_epochs_are_the_trainers_own(
        tmp_path: Path, settings: dict[str, Any], steps_per_epoch: int, epochs: int) -> None:
    """The start event's `steps_per_epoch` and `epochs` are what the Trainer runs (finalize's
    recipe check compares steps_per_epoch between runs), and every epoch has one epoch
    event, after its steps."""
    trainer = _hf_run(tmp_path / "run", tmp_path / "out", **settings)
    events = read_stream(tmp_path / "run" / "metrics.jsonl")
    start = events[0]
    per, epoch_events = _epochs_of(events)
    assert (start["steps_per_epoch"], start["epochs"]) == (steps_per_epoch, epochs)
    assert max(per.values()) == steps_per_epoch and len(per) == epochs
    assert epoch_events == list(range(1, epochs + 1))
    assert all(e["step"] > 0 for e in events if e["type"] == "epoch")
    assert sum(per.values()) == trainer.state.global_step


@pytest.mark.parametrize("strategy", ["epoch", "steps"])
def test_a_resumed_hf_run_numbers_its_epochs_as_the_trainer_does(tmp_path: Path,
                                                                 strategy: str) -> None:
    """`trainer.train(resume_from_checkpoint=...)` from step 20 of 13-step epochs continues in
    epoch 2 (eval_strategy="steps", eval_steps=5: in the 5th evaluation period); the callback
    counted epochs from 1 again, so steps 21-26 were written as epoch 1."""
    every = {"eval_strategy": strategy, "eval_steps": 5} if strategy == "steps" else {}
    _hf_run(tmp_path / "first", tmp_path / "out", max_steps=20, save_strategy="steps",
            save_steps=20, **every)
    _hf_run(tmp_path / "resumed", tmp_path / "out", max_steps=39, save_strategy="no",
            resume=str(tmp_path / "out" / "checkpoint-20"), **every)
    events = read_stream(tmp_path / "resumed" / "metrics.jsonl")
    steps = {e["step"]: e["epoch"] for e in events if e["type"] == "step"}
    assert min(steps) == 21
    if strategy == "epoch":
        assert {s: steps[s] for s in (21, 26, 27, 39)} == {21: 2, 26: 2, 27: 3, 39: 3}
        assert [(e["epoch"], e["step"]) for e in events if e["type"] == "epoch"] == [
            (2, 26), (3, 39)]
    else:
        assert {s: steps[s] for s in (21, 25, 26, 39)} == {21: 5, 25: 5, 26: 6, 39: 8}
        assert [(e["epoch"], e["step"]) for e in events if e["type"] == "epoch"] == [
            (5, 25), (6, 30), (7, 35), (8, 39)]
