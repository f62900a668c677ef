"""Scaling up inside one process: devices, precision, gradient accumulation, checkpoint
retention, out-of-memory handling. Several processes are in tests/test_distributed.py."""

from __future__ import annotations

import json
import textwrap
import uuid
from pathlib import Path

import pytest
import torch
from test_engine import digits_bundle, make_config

from mltrainer.engine import Trainer, load_checkpoint
from mltrainer.engine.devices import choose_device
from mltrainer.engine.precision import OutOfMemoryRunError
from mltrainer.engine.runstate import Progress, restore_training, training_payload
from mltrainer.engine.step import build_training
from mltrainer.engine.stopping import EarlyStopping
from mltrainer.errors import ConfigError
from mltrainer.stream import read_stream

NO_GPU = not torch.cuda.is_available()

# -- devices ------------------------------------------------------------------------------------


@pytest.mark.skipif(not NO_GPU, reason="a CUDA device is present: nothing to refuse")
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:3"])
def test_a_gpu_that_is_not_there_is_refused_before_any_work(tmp_path: Path, device: str) -> None:
    run_dir = tmp_path / "runs" / "gpu"
    with pytest.raises(ConfigError) as info:
        Trainer(make_config(training={"device": device}), digits_bundle(), run_dir)
    assert "no GPU here" in info.value.message and "built" in info.value.message
    assert "nvidia-smi" in info.value.hint and "torch.cuda.is_available()" in info.value.hint
    assert not run_dir.exists()  # nothing was written


@pytest.mark.parametrize("device, ok", [("auto", True), ("cpu", True), ("cuda", True),
                                        ("cuda:12", True), ("mps", True), ("gpu", False),
                                        ("cuda:", False), ("CPU", False), ("cuda:x", False)])
def test_device_field_is_validated(device: str, ok: bool) -> None:
    if ok:
        assert make_config(training={"device": device}).training.device == device
    else:
        with pytest.raises(ConfigError, match="training.device"):
            make_config(training={"device": device})


@pytest.mark.skipif(not NO_GPU, reason="a CUDA device is present: auto takes it")
def test_auto_falls_back_to_the_cpu_loudly(tmp_path: Path) -> None:
    choice = choose_device(make_config().training)
    assert choice.device.type == "cpu" and "found no GPU" in choice.notice
    assert choose_device(make_config(training={"device": "cpu"}).training).notice is None
    run_dir = tmp_path / "runs" / "auto"
    result = Trainer(make_config(training={"epochs": 1}), digits_bundle(), run_dir).fit()
    assert result.device_notice == choice.notice and result.to_dict()["device_notice"]
    start = read_stream(run_dir / "metrics.jsonl")[0]
    assert start["device_notice"] == choice.notice and start["device"] == "cpu"
    env = json.loads((run_dir / "env.json").read_text())
    assert env["training"]["device_notice"] == choice.notice


# -- gradient accumulation ------------------------------------------------------------------------


def test_accumulating_4_x_16_rows_is_one_step_of_64() -> None:
    """The same rows, the same gradients: micro-batch losses are weighted by their share of
    the step's rows (means, not sums). Dropout off: its masks are drawn per forward pass."""
    model = {"dropout": 0.0}
    whole = build_training(make_config(model=model, training={"batch_size": 64,
                                                              "grad_clip": None}),
                           digits_bundle())
    accum = build_training(make_config(model=model, training={
        "batch_size": 16, "grad_accum_steps": 4, "grad_clip": None}), digits_bundle())
    assert whole.batches.steps_per_epoch == accum.batches.steps_per_epoch
    for parts in (whole, accum):
        order = parts.batches.new_order()
        xb, yb = parts.batches.batch(order, 0)
        assert len(xb) == 64
        parts.loss = parts.step(0, xb, yb).loss
    grads = [(p.grad, q.grad) for p, q in zip(whole.model.parameters(), accum.model.parameters(),
                                              strict=True)]
    assert all(torch.allclose(a, b, rtol=1e-5, atol=1e-7) for a, b in grads)
    assert torch.allclose(whole.loss, accum.loss, rtol=1e-6)
    # and a short last step of 63 rows (4 micro-batches of 16, 16, 16, 15) weighs rows alike
    xb, yb = xb[:63], yb[:63]
    whole.step(1, xb, yb)
    accum.step(1, xb, yb)
    assert all(torch.allclose(p.grad, q.grad, rtol=1e-5, atol=1e-7)
               for p, q in zip(whole.model.parameters(), accum.model.parameters(), strict=True))


def test_run_record_carries_the_effective_batch(tmp_path: Path) -> None:
    cfg = make_config(training={"epochs": 1, "batch_size": 16, "grad_accum_steps": 4,
                                "precision": "bf16"})
    result = Trainer(cfg, digits_bundle(), tmp_path / "runs" / "acc").fit()
    start = read_stream(tmp_path / "runs" / "acc" / "metrics.jsonl")[0]
    assert (start["effective_batch_size"], start["grad_accum_steps"], start["world_size"],
            start["precision"], start["compile"]) == (64, 4, 1, "bf16", False)
    assert start["steps_per_epoch"] == -(-len(digits_bundle().train.y) // 64)
    assert result.final_step == start["steps_per_epoch"]


# -- precision ------------------------------------------------------------------------------------


def test_grad_scaler_state_goes_into_the_checkpoint_and_comes_back() -> None:
    """fp16 trains on GPUs only (scripts/gpu-check.sh runs it); the scaler's round trip
    through a checkpoint payload is the same code on the CPU's scaler."""
    cfg = make_config(training={"epochs": 1})
    parts = build_training(cfg, digits_bundle())
    parts.scaler = torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=7)
    parts.scaler.scale(torch.ones(()))  # the scale tensor exists from the first use
    parts.scaler.update(512.0)
    stopper = EarlyStopping(5, 0.0, True)
    payload = training_payload(parts, Progress(), stopper, [], meta={}, wall_time_s=0.0)
    fresh = build_training(cfg, digits_bundle())
    fresh.scaler = torch.amp.GradScaler("cpu")
    restore_training(payload, fresh, EarlyStopping(5, 0.0, True), [])
    assert fresh.scaler.state_dict() == parts.scaler.state_dict()
    assert fresh.scaler.get_scale() == 512.0


# -- checkpoints kept ---------------------------------------------------------------------------


@pytest.mark.parametrize("keep, expected", [(None, ["epoch-001.pt", "epoch-002.pt",
                                                    "epoch-003.pt"]),
                                            (1, ["epoch-003.pt"]), (0, [])])
def test_keep_checkpoints_keeps_best_last_and_the_newest(tmp_path: Path, keep: int | None,
                                                         expected: list[str]) -> None:
    cfg = make_config(training={"epochs": 3, "keep_checkpoints": keep, "lr": 3e-3})
    result = Trainer(cfg, digits_bundle(), tmp_path / "runs" / "keep",
                     background_checkpoints=False).fit()
    folder = tmp_path / "runs" / "keep" / "checkpoints"
    assert sorted(p.name for p in folder.glob("epoch-*.pt")) == expected
    assert load_checkpoint(folder / "best.pt")["epoch"] == result.best_epoch
    assert load_checkpoint(folder / "last.pt")["epoch"] == 3


def test_keep_checkpoints_does_not_change_the_config_fingerprint() -> None:
    assert (make_config(training={"keep_checkpoints": 2}).fingerprint()
            == make_config().fingerprint())
    assert (make_config(training={"grad_accum_steps": 2}).fingerprint()
            != make_config().fingerprint())


# -- out of memory -----------------------------------------------------------------------------

OOM_AFTER = """
import torch
import torch.nn as nn

class Greedy(nn.Module):  # runs out of memory on its 40th forward pass (epoch 2 of digits)
    def __init__(self, n_features, n_outputs):
        super().__init__()
        self.linear = nn.Linear(n_features, n_outputs)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        if self.training and self.calls >= 40:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return self.linear(x)

def build(input_spec, output_spec):
    return Greedy(input_spec["n_features"], output_spec["n_outputs"])
"""


def test_out_of_memory_stops_cleanly_and_keeps_the_last_checkpoint(tmp_path: Path) -> None:
    name = f"user_oom_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(OOM_AFTER))
    cfg = make_config(model={"kind": f"python:{name}:build"}, training={"epochs": 3})
    run_dir = tmp_path / "runs" / "oom"
    with pytest.raises(OutOfMemoryRunError) as info:
        Trainer(cfg, digits_bundle(), run_dir).fit()
    err = info.value
    assert err.exit_code == 2 and "batch_size 64" in err.message and "last.pt" in err.message
    assert "grad_accum_steps: 2" in err.hint and "bf16" in err.hint
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["epoch"] == 1
    end = read_stream(run_dir / "metrics.jsonl")[-1]
    assert (end["type"], end["reason"]) == ("end", "error:OutOfMemoryError")


# -- the command line ---------------------------------------------------------------------------


@pytest.mark.parametrize("args, message", [
    (["--nnodes", "2"], "--rdzv-endpoint"),
    (["--nnodes", "2", "--node-rank", "2", "--rdzv-endpoint", "h:1"], "--node-rank"),
    (["--node-rank", "1"], "--node-rank"),
    (["--nproc", "0"], "--nproc"),
    (["--rdzv-endpoint", "h:1"], "--nnodes is 1"),  # trained on one machine without a word
])
def test_bad_torchrun_options_are_refused_before_anything_runs(
        tmp_path: Path, args: list[str], message: str) -> None:
    from click.testing import CliRunner

    from mltrainer.cli import cli

    root = tmp_path / "proj"
    assert CliRunner().invoke(cli, ["init", str(root), "--example", "digits"]).exit_code == 0
    before = {p: p.read_bytes() for p in (root / ".mlt").iterdir() if p.is_file()}
    res = CliRunner().invoke(cli, ["train-baseline", "-C", str(root), *args])
    assert res.exit_code == 2 and message in res.output, res.output
    assert "Traceback" not in res.output
    assert {p: p.read_bytes() for p in (root / ".mlt").iterdir() if p.is_file()} == before
    assert not (root / "runs").exists()
