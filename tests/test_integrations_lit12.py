"""A new user's own Lightning scripts and hand-written loops around `MltCallback` and
`MltMonitor` (issue 15, lit12): gradient accumulation, several optimisers, values logged on
step and epoch, a GradScaler's skipped steps, a run folder used twice. Each test fails on the
code before its fix."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from mltrainer.stream import read_stream


def _lightning() -> Any:
    from mltrainer.engine.entrypoint import frameworks_importable

    frameworks_importable()  # before the framework (a CPU torch with a CUDA torchvision)
    import lightning as L

    return L


def _digits(n: int = 96, batch_size: int = 16) -> tuple[Any, Any]:
    from sklearn.datasets import load_digits
    from torch.utils.data import DataLoader, TensorDataset

    X, y = load_digits(return_X_y=True)
    rows = TensorDataset(torch.as_tensor(X[:n], dtype=torch.float32) / 16, torch.as_tensor(y[:n]))
    return DataLoader(rows, batch_size=batch_size), DataLoader(rows, batch_size=n)


def _module(L: Any, **overrides: Any) -> Any:
    """A digits MLP whose training_step keeps each loss it returned (`self.losses`) and whose
    validation logs val_loss and val_accuracy; `overrides` replace its methods."""

    class Module(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
            self.losses: list[float] = []

        def training_step(self, batch: Any, idx: int) -> torch.Tensor:
            loss = nn.functional.cross_entropy(self.net(batch[0]), batch[1])
            self.losses.append(loss.item())
            return loss

        def validation_step(self, batch: Any, idx: int) -> None:
            out = self.net(batch[0])
            self.log("val_loss", nn.functional.cross_entropy(out, batch[1]))
            self.log("val_accuracy", (out.argmax(1) == batch[1]).float().mean())

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    for name, method in overrides.items():
        setattr(Module, name, method)
    torch.manual_seed(0)
    return Module()


def _fit(L: Any, run_dir: Path, module: Any, callback: Any = None, **trainer_args: Any) -> Any:
    from mltrainer.integrations.lightning import MltCallback

    callback = callback or MltCallback(run_dir, task="classification", metric="accuracy")
    trainer_args.setdefault("max_epochs", 1)
    trainer = L.Trainer(callbacks=[callback], logger=False, accelerator="cpu",
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, **trainer_args)
    train, val = _digits()
    trainer.fit(module, train, val)
    return callback


def _steps(run_dir: Path) -> list[dict[str, Any]]:
    return [e for e in read_stream(run_dir / "metrics.jsonl") if e["type"] == "step"]


def test_an_accumulated_step_records_the_mean_of_its_micro_batch_losses(tmp_path: Path) -> None:
    """accumulate_grad_batches=3 over 6 batches an epoch, then a last partial window of 2
    (8 batches): each step's loss is the mean of its micro-batches' losses as training_step
    returned them. It was the last micro-batch's alone, divided by 3 (Lightning hands
    on_train_batch_end the loss it scaled for the backward): a third of the real loss, and
    a train loss three times below the val loss."""
    L = _lightning()
    module = _module(L)
    _fit(L, tmp_path, module, accumulate_grad_batches=3, limit_train_batches=5)
    steps = _steps(tmp_path)
    windows = [module.losses[0:3], module.losses[3:5]]  # 5 batches: 3, then the last 2
    assert [e["step"] for e in steps] == [1, 2]
    assert [e["loss"] for e in steps] == pytest.approx([sum(w) / len(w) for w in windows],
                                                       rel=1e-6)
    epoch = next(e for e in read_stream(tmp_path / "metrics.jsonl") if e["type"] == "epoch")
    assert epoch["train_loss"] == pytest.approx(sum(module.losses[:3]) / 6
                                                + sum(module.losses[3:5]) / 4, rel=1e-6)


def test_a_manual_optimisation_stepping_every_other_batch_records_both_losses(
        tmp_path: Path) -> None:
    """Manual optimisation that accumulates by hand (manual_backward every batch, step every
    second): each step's loss is the mean of its two batches' losses, as with
    accumulate_grad_batches=2 (it was the stepping batch's alone)."""
    L = _lightning()

    def init(self: Any) -> None:
        super(type(self), self).__init__()
        self.automatic_optimization = False
        self.net = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
        self.losses = []

    def training_step(self: Any, batch: Any, idx: int) -> torch.Tensor:
        optimizer = self.optimizers()
        loss = nn.functional.cross_entropy(self.net(batch[0]), batch[1])
        self.manual_backward(loss / 2)
        self.losses.append(loss.item())
        if idx % 2 == 1:
            optimizer.step()
            optimizer.zero_grad()
        return loss.detach()

    module = _module(L, __init__=init, training_step=training_step)
    _fit(L, tmp_path, module)
    pairs = [module.losses[i:i + 2] for i in range(0, 6, 2)]
    assert [e["loss"] for e in _steps(tmp_path)] == pytest.approx(
        [sum(p) / 2 for p in pairs], rel=1e-6)


def test_two_optimisers_stepped_in_one_batch_are_one_step(tmp_path: Path) -> None:
    """Manual optimisation with two optimisers (a GAN's generator and discriminator, each
    stepped every batch): one step event per batch, numbered 1.. as steps_per_epoch counts
    them and as Lightning's loggers do, with the first optimiser's lr and the gradient norm
    over both optimisers' parameters as each was stepped. The steps were numbered 2, 4, ...
    (Lightning's global_step counts each optimiser's step), against steps_per_epoch 6 and an
    epoch event at step 12, with the second optimiser's lr and its gradients alone."""
    L = _lightning()
    norms: list[float] = []

    def init(self: Any) -> None:
        super(type(self), self).__init__()
        self.automatic_optimization = False
        self.net = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
        self.critic = nn.Linear(10, 1)

    def training_step(self: Any, batch: Any, idx: int) -> torch.Tensor:
        first, second = self.optimizers()
        out = self.net(batch[0])
        loss = nn.functional.cross_entropy(out, batch[1])
        first.zero_grad()
        self.manual_backward(loss)
        grads = [p.grad.norm() for p in self.net.parameters()]
        first.step()
        second.zero_grad()
        self.manual_backward(self.critic(out.detach()).pow(2).mean())
        grads += [p.grad.norm() for p in self.critic.parameters()]
        second.step()
        norms.append(math.hypot(*(g.item() for g in grads)))
        return loss.detach()

    def optimizers_(self: Any) -> Any:
        return (torch.optim.SGD(self.net.parameters(), lr=0.1),
                torch.optim.Adam(self.critic.parameters(), lr=1e-3))

    module = _module(L, __init__=init, training_step=training_step,
                     configure_optimizers=optimizers_)
    _fit(L, tmp_path, module, max_epochs=2)
    events = read_stream(tmp_path / "metrics.jsonl")
    steps = [e for e in events if e["type"] == "step"]
    assert events[0]["steps_per_epoch"] == 6
    assert [e["step"] for e in steps] == list(range(1, 13))
    assert [e["step"] for e in events if e["type"] == "epoch"] == [6, 12]
    assert {e["lr"] for e in steps} == {0.1}
    assert steps[0]["grad_norm"] == pytest.approx(norms[0], rel=1e-5)


def test_values_logged_on_step_and_epoch_are_one_val_metric(tmp_path: Path) -> None:
    """self.log(..., on_step=True, on_epoch=True) in validation_step: Lightning keeps
    `name`, `name_epoch` and `name_step`; the epoch event's val holds the metric once (it also
    held `loss_epoch` and `accuracy_epoch` as metrics of their own)."""
    L = _lightning()

    def validation_step(self: Any, batch: Any, idx: int) -> None:
        out = self.net(batch[0])
        for name, value in (("val_loss", nn.functional.cross_entropy(out, batch[1])),
                            ("val_accuracy", (out.argmax(1) == batch[1]).float().mean())):
            self.log(name, value, on_step=True, on_epoch=True)

    _fit(L, tmp_path, _module(L, validation_step=validation_step))
    epoch = next(e for e in read_stream(tmp_path / "metrics.jsonl") if e["type"] == "epoch")
    assert list(epoch["val"]) == ["accuracy"] and "val_loss" in epoch


@pytest.mark.filterwarnings("ignore:mlt. MltMonitor.step found no gradients")
def test_a_run_folder_that_holds_a_stream_is_refused(tmp_path: Path) -> None:
    """A script run twice into the same run_dir, and a second fit() with the same callback:
    one error naming the folder and what to do, and the first run's stream untouched. The
    second run was appended to the first's stream (the writer appends): a start, steps from 1
    again after an end event, findings.json of the second alone."""
    from mltrainer.integrations.loop import MltMonitor

    model = nn.Linear(3, 1)
    with MltMonitor(model, tmp_path, task="regression", metric="r2") as mlt:
        mlt.step(1.0)
    before = (tmp_path / "metrics.jsonl").read_text()
    with (pytest.raises(ValueError, match="already holds a run's metric stream.*new run_dir"),
          MltMonitor(model, tmp_path, task="regression", metric="r2") as mlt):
        mlt.step(1.0)
    assert (tmp_path / "metrics.jsonl").read_text() == before

    L = _lightning()
    module = _module(L)
    callback = _fit(L, tmp_path / "lightning", module)
    before = (tmp_path / "lightning" / "metrics.jsonl").read_text()
    with pytest.raises(ValueError, match="already holds a run's metric stream"):
        _fit(L, tmp_path / "lightning", module, callback=callback)
    assert (tmp_path / "lightning" / "metrics.jsonl").read_text() == before


def _gradient_findings(findings: list[Any]) -> list[str]:
    return [f.id for f in findings if f.id in ("nan_loss", "exploding_gradients")]


def _scaled_loop(run_dir: Path, scaler: torch.amp.GradScaler, overflow: set[int],
                 unscale: str, steps: int = 8) -> Any:
    """A regression loop with a GradScaler whose gradients overflow on the steps in
    `overflow` (an fp16 overflow, injected), with the loop's own unscale_ `before` mlt.step,
    `after` it (for clipping) or `never`."""
    from mltrainer.integrations.loop import MltMonitor

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    X, y = torch.randn(steps * 8, 4), torch.randn(steps * 8)
    true_norms = []
    with MltMonitor(model, run_dir, task="regression", metric="r2", scaler=scaler) as mlt:
        for step in range(1, steps + 1):
            optimizer.zero_grad()
            xb, yb = X[(step - 1) * 8:step * 8], y[(step - 1) * 8:step * 8]
            loss = ((model(xb).squeeze(1) - yb) ** 2).mean()
            grads = torch.autograd.grad(loss, list(model.parameters()), retain_graph=True)
            true_norms.append(math.hypot(*(g.norm().item() for g in grads)))
            scaler.scale(loss).backward()
            if step in overflow:
                model[0].weight.grad[0, 0] = math.inf
            if unscale == "before":
                scaler.unscale_(optimizer)
            mlt.step(loss, optimizer)
            if unscale == "after":
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            scaler.step(optimizer)
            scaler.update()
            if mlt.should_stop:
                break
        mlt.epoch(loss.item(), {"r2": 0.0})
    return mlt, true_norms


@pytest.mark.parametrize("unscale", ["before", "after", "never"])
def test_a_gradient_scaler_s_skipped_overflows_are_no_nan_stop(tmp_path: Path,
                                                               unscale: str) -> None:
    """fp16 with a GradScaler (`MltMonitor(..., scaler=scaler)`): two steps whose gradients
    overflow, which the scaler skips (halving its scale), as it does on purpose: training
    runs to its end without a finding, and the step events' gradient norms are the true ones,
    whether the loop unscales before mlt.step, after it (for clipping: the monitor leaves the
    scaler's state alone, or that unscale_ would raise) or never. Without the scaler known,
    nan_loss stopped training on the first overflow, and a loop that did not unscale first
    recorded norms 65536 times too large."""
    mlt, true_norms = _scaled_loop(tmp_path, torch.amp.GradScaler("cpu"), {2, 3}, unscale)
    assert mlt.stopping_reason is None and not _gradient_findings(mlt.findings)
    steps = _steps(tmp_path)
    assert len(steps) == 8 and read_stream(tmp_path / "metrics.jsonl")[-1]["reason"] == (
        "completed")
    assert steps[0]["grad_norm"] == pytest.approx(true_norms[0], rel=1e-5)
    # the stream says so (the start event's grad_scale), so `mlt diagnose` judges it as the
    # run did: no nan_loss from the skipped overflows (it re-judged at grad_steps 1)
    from mltrainer.phases.diagnose.phase import diagnose_stream

    assert read_stream(tmp_path / "metrics.jsonl")[0]["grad_scale"] == 65536.0
    assert "nan_loss" not in {f["id"] for f in diagnose_stream(tmp_path / "metrics.jsonl",
                                                                {})["findings"]}


def test_gradients_a_scaler_cannot_bring_back_still_stop_training(tmp_path: Path) -> None:
    """Gradients non-finite on every step: once the scaler's scale is below 1 (init_scale 4:
    log2(4) + 1 = 3 consecutive overflows) they are broken, not out of fp16's range, and
    nan_loss stops training on the first of them."""
    mlt, _ = _scaled_loop(tmp_path, torch.amp.GradScaler("cpu", init_scale=4.0),
                          set(range(1, 9)), unscale="before")
    assert mlt.stopping_reason == "detector:nan_loss"
    assert [f.id for f in mlt.findings] == ["nan_loss"] and mlt.findings[0].onset["step"] == 1


def test_lightning_16_mixed_skipped_overflows_are_no_nan_stop(tmp_path: Path) -> None:
    """precision "16-mixed" (Lightning's GradScaler, here on the CPU through its plugin): a
    step whose gradients overflowed is skipped by the scaler, and training goes on without a
    finding (nan_loss stopped it there)."""
    L = _lightning()
    from lightning.pytorch.plugins.precision import MixedPrecision

    def on_after_backward(self: Any) -> None:
        if self.global_step in (1, 2):
            self.net[0].weight.grad[0, 0] = math.inf

    callback = _fit(L, tmp_path, _module(L, on_after_backward=on_after_backward),
                    plugins=[MixedPrecision("16-mixed", "cpu", torch.amp.GradScaler("cpu"))])
    assert callback.stopping_reason is None and not _gradient_findings(callback.findings)
    assert len(_steps(tmp_path)) == 6


def test_monitor_refuses_a_scaler_that_is_no_grad_scaler(tmp_path: Path) -> None:
    from mltrainer.integrations.loop import MltMonitor

    with pytest.raises(ValueError, match="scaler must be the torch.amp.GradScaler"):
        MltMonitor(nn.Linear(2, 1), tmp_path, task="regression", metric="r2", scaler=2.0**16)


@pytest.mark.filterwarnings("ignore:mlt. MltMonitor.step found no gradients")
def test_a_loss_of_another_number_type_is_a_float_in_the_stream(tmp_path: Path) -> None:
    """A loop that hands `step` its loss as a numpy float32 (from a numpy metric) or an int:
    the stream holds floats (a float32 crashed the block's JSON write with a TypeError deep in
    the stream), and a loss that is no number is one error naming what to pass."""
    import numpy as np

    from mltrainer.integrations.loop import MltMonitor

    with MltMonitor(nn.Linear(2, 1), tmp_path, task="regression", metric="r2") as mlt:
        mlt.step(np.float32(0.5))
        mlt.step(1)
        with pytest.raises(ValueError, match="loss must be a number or a one-element tensor but "
                                             "got str"):
            mlt.step("0.5")
    assert [e["loss"] for e in _steps(tmp_path)] == [0.5, 1.0]


def test_a_step_called_after_zero_grad_is_named(tmp_path: Path) -> None:
    """`step` called after optimizer.zero_grad() (set_to_none, torch's default): no gradient
    norm anywhere in the stream, so one warning says where to call it (the stream went without
    any gradient norm, silently)."""
    from mltrainer.integrations.loop import MltMonitor

    model = nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with (pytest.warns(RuntimeWarning, match="found no gradients.*after loss.backward"),
          MltMonitor(model, tmp_path, task="regression", metric="r2") as mlt):
        for _ in range(3):
            loss = model(torch.ones(4, 2)).pow(2).mean()
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            mlt.step(loss, optimizer)
    assert not any("grad_norm" in e for e in _steps(tmp_path))


@pytest.mark.parametrize("max_epochs", [-1, None])
def test_a_fit_bounded_by_max_steps_plans_its_epochs(tmp_path: Path,
                                                     max_epochs: int | None) -> None:
    """max_steps=8 over 6 batches an epoch, with max_epochs=-1 (Lightning's "forever") or left
    out (Lightning then runs until max_steps): the start event plans 2 epochs, what the fit
    runs. It said -1 epochs (or Lightning's placeholder), which the live view shows as the
    run's length."""
    L = _lightning()
    _fit(L, tmp_path, _module(L), max_epochs=max_epochs, max_steps=8)
    events = read_stream(tmp_path / "metrics.jsonl")
    assert events[0]["epochs"] == 2
    assert [e["epoch"] for e in events if e["type"] == "epoch"] == [1, 2]


def test_a_wrapped_model_s_checkpoints_hold_the_module_s_own_keys(tmp_path: Path) -> None:
    """MltMonitor around a torch.compile'd model (and a DataParallel one, which wraps the same
    way as DistributedDataParallel): the checkpoints hold the module's own keys, the ones the
    project's load_model builds (they were `_orig_mod.`- or `module.`-prefixed, and
    load_state_dict into the plain module failed on every key), and the per-layer statistics
    name its parameters so."""
    from mltrainer.integrations import load_checkpoint_weights
    from mltrainer.integrations.loop import MltMonitor

    for name, wrap in (("compiled", lambda m: torch.compile(m, backend="eager")),
                       ("parallel", nn.DataParallel)):
        plain = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
        model = wrap(plain)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        with MltMonitor(model, tmp_path / name, task="regression", metric="r2",
                        save_checkpoints=True, grad_stats_every=1) as mlt:
            loss = model(torch.ones(2, 3)).pow(2).mean()
            loss.backward()
            mlt.step(loss, optimizer)
            optimizer.step()
            mlt.epoch(1.0, {"r2": 0.5})
        weights = load_checkpoint_weights(tmp_path / name / "checkpoints" / "best.pt")
        assert list(weights) == list(plain.state_dict())
        nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1)).load_state_dict(weights)
        assert set(_steps(tmp_path / name)[0]["layers"]) == {"0.weight", "0.bias", "2.weight",
                                                             "2.bias"}


_LIGHTNING_SCRIPT_WITHOUT_MAX_STEPS = """
import os

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader

from mltrainer.integrations import context
from mltrainer.integrations.lightning import MltCallback


class Module(L.LightningModule):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.net = nn.Linear(n_in, n_out)

    def training_step(self, batch, idx):
        return nn.functional.cross_entropy(self.net(batch[0]), batch[1])

    def validation_step(self, batch, idx):
        out = self.net(batch[0])
        self.log("val_loss", nn.functional.cross_entropy(out, batch[1]))
        self.log("val_accuracy", (out.argmax(1) == batch[1]).float().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def on_train_start(self):  # (after the callbacks'): the seed training goes on with
        with open(os.environ["SEEN_SEED_FILE"], "a") as seen:
            seen.write(os.environ["PL_GLOBAL_SEED"] + "\\n")


def main():
    ctx = context()
    L.seed_everything(42)  # a hard-coded seed, not ctx.seed
    train = DataLoader(ctx.train.tensors(), batch_size=8, shuffle=True)
    val = DataLoader(ctx.val.tensors(), batch_size=len(ctx.val))
    trainer = L.Trainer(max_epochs=4, callbacks=[MltCallback()], accelerator="cpu", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, deterministic=True)  # no max_steps
    trainer.fit(Module(ctx.n_features, ctx.n_outputs), train, val)


def load_model(checkpoint, config, spec):
    return nn.Linear(spec.n_features, spec.n_classes)
"""


def test_the_lightning_callback_stops_at_plans_max_steps_and_takes_the_runs_seed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Lightning script that does not pass context().max_steps to its Trainer was trained
    fully, twice, by plan's determinism check (4 epochs here); the callback stops it at
    MLT_MAX_STEPS, as the HF callback and MltMonitor do, and the run ends "max_steps". Its
    hard-coded seed_everything(42) made every seed of the seeds comparison one batch order:
    training goes on with the run's seed (with a warning)."""
    from mltrainer.config import parse_config
    from mltrainer.data import prepare_data
    from mltrainer.engine.entrypoint import entrypoint_determinism

    (tmp_path / "user_lightning.py").write_text(_LIGHTNING_SCRIPT_WITHOUT_MAX_STEPS)
    cfg = parse_config({"name": "x", "task": "classification", "seed": 1,
                        "data": {"source": "sklearn:iris"},
                        "goal": {"metric": "accuracy", "target": 0.9},
                        "training": {"entrypoint": "python:user_lightning:main"}})
    monkeypatch.setenv("SEEN_SEED_FILE", str(tmp_path / "seen.txt"))
    probe = entrypoint_determinism(cfg, prepare_data(cfg, tmp_path), 5, tmp_path)
    assert probe["verified"] and probe["identical"], probe
    assert probe["steps_run"] == [5, 5] and probe["max_steps_honoured"]
    assert (tmp_path / "seen.txt").read_text().split() == ["1", "1"]  # the run's seed, not 42


def test_a_fit_that_spent_its_max_time_ends_max_time(tmp_path: Path) -> None:
    """Trainer(max_time=...) stops the fit through Lightning's Timer; the stream ended it
    "completed", as if its epochs had run. It ends "max_time", a budget spent (underfitting
    judges such a run at its end, as one that completed)."""
    from datetime import timedelta

    L = _lightning()
    _fit(L, tmp_path, _module(L), max_epochs=50, max_time=timedelta(microseconds=1))
    events = read_stream(tmp_path / "metrics.jsonl")
    assert events[-1]["reason"] == "max_time"
    assert len([e for e in events if e["type"] == "epoch"]) < 50
