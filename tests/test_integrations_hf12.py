"""A new user's Hugging Face Trainer scripts and training.entrypoint projects, in the shapes
users write them: gradient accumulation, max_steps, fractional epochs, eval_on_start, a
resumed run; a load_model that fails, a script that trains at import."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
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


# -- load_model: the user's code failing is bad input naming it ------------------------------


def _entrypoint_cfg(entrypoint: str, load_model: str | None = None) -> Any:
    from mltrainer.config import parse_config

    return parse_config({"name": "x", "task": "classification", "seed": 1,
                         "data": {"source": "sklearn:iris"},
                         "goal": {"metric": "accuracy", "target": 0.9},
                         "training": {"entrypoint": entrypoint, "load_model": load_model}})


@pytest.mark.parametrize(("body", "says"), [
    ("def load_model(checkpoint, config, spec):\n    raise KeyError('weights')\n",
     "training.load_model python:{mod}:load_model failed on best.pt: KeyError: 'weights'"),
    ("import no_such_module_hf12\n\ndef load_model(checkpoint, config, spec):\n    pass\n",
     "training.load_model python:{mod}:load_model: importing module '{mod}' raised "
     "ModuleNotFoundError: No module named 'no_such_module_hf12'"),
])
def test_a_load_model_that_fails_is_bad_input_naming_it(tmp_path: Path, body: str,
                                                        says: str) -> None:
    """A load_model that raised was 'unexpected failure ... report it' (exit 1, mlt's bug by
    its words); it is the project's code, refused as a model factory's is (exit 2)."""
    from mltrainer.engine.entrypoint import load_entrypoint_model
    from mltrainer.errors import ConfigError

    mod = f"hf12_loader_{abs(hash(body)) % 10**8}"
    (tmp_path / f"{mod}.py").write_text(body)
    ckpt = tmp_path / "best.pt"
    torch.save({"model": {}}, ckpt)
    cfg = _entrypoint_cfg(f"python:{mod}:main", f"python:{mod}:load_model")
    with pytest.raises(ConfigError) as err:
        load_entrypoint_model(ckpt, cfg, None, tmp_path)
    assert err.value.exit_code == 2
    assert says.format(mod=mod) in err.value.message


_TOP_LEVEL_SCRIPT = """
import torch
from torch import nn

from mltrainer.integrations import context, load_checkpoint_weights
from mltrainer.integrations.loop import MltMonitor

ctx = context()  # the training runs at import: no `if __name__ == "__main__":`
model = nn.Linear(ctx.n_features, ctx.n_outputs)
with MltMonitor(model, steps_per_epoch=1, epochs=1) as mlt:
    loss = nn.functional.cross_entropy(model(torch.as_tensor(ctx.train.X)),
                                       torch.as_tensor(ctx.train.y))
    loss.backward()
    mlt.step(loss)
    with torch.no_grad():
        out = model(torch.as_tensor(ctx.val.X))
    mlt.epoch(1.0, ctx.compute_metrics(out))


def load_model(checkpoint, config, spec):
    m = nn.Linear(spec.n_features, spec.n_classes)
    m.load_state_dict(load_checkpoint_weights(checkpoint))
    return m
"""


def test_a_script_that_trains_at_import_is_refused_before_training(tmp_path: Path) -> None:
    """A script path whose training runs at its top level, with load_model beside it: mlt
    imports the script for load_model, which ran the training code in mlt's process (it
    failed in context(), after train-baseline had trained, as 'training.load_model: no mlt
    run context'). train-baseline refuses it before training, saying what to change; the
    state is as it was, and no run folder is made."""
    from click.testing import CliRunner

    from mltrainer.cli import cli

    root = tmp_path / "p"
    root.mkdir()
    (root / "train.py").write_text(_TOP_LEVEL_SCRIPT)
    (root / "mlt.yaml").write_text(yaml.safe_dump({
        "name": "x", "task": "classification", "data": {"source": "sklearn:iris"},
        "goal": {"metric": "accuracy", "target": 0.5},
        "training": {"entrypoint": "train.py", "epochs": 1}}))
    plan = CliRunner().invoke(cli, ["plan", "-C", str(root)])
    assert plan.exit_code == 0, plan.output
    state = (root / ".mlt" / "state.json").read_bytes()
    res = CliRunner().invoke(cli, ["train-baseline", "-C", str(root)])
    assert res.exit_code == 2, res.output
    said = " ".join(res.stderr.split())
    assert "training.load_model train.py: train.py runs its training at import" in said
    assert 'if __name__ == "__main__":' in said
    assert (root / ".mlt" / "state.json").read_bytes() == state
    assert not (root / "runs").exists() or not any((root / "runs").iterdir())
    assert not any(name.startswith("_mlt_script_train") for name in sys.modules)


_LOOP_SCRIPT = """
import os

import torch
from torch import nn

from mltrainer.integrations import context, load_checkpoint_weights
from mltrainer.integrations.loop import MltMonitor


def main():
    ctx = context()
    model = nn.Linear(ctx.n_features, ctx.n_outputs)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    X, y = torch.as_tensor(ctx.train.X), torch.as_tensor(ctx.train.y)
    epochs = ctx.config.training.epochs
    with MltMonitor(model, steps_per_epoch=1, epochs=epochs) as mlt:
        for _ in range(epochs):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(X), y)
            loss.backward()
            mlt.step(loss, opt)
            opt.step()
            if mlt.should_stop:
                break
            with torch.no_grad():
                out = model(torch.as_tensor(ctx.val.X))
            val_loss = nn.functional.cross_entropy(out, torch.as_tensor(ctx.val.y)).item()
            if mlt.epoch(val_loss, ctx.compute_metrics(out)):
                break


def load_model(checkpoint, config, spec):
    if os.environ.get("HF12_BROKEN_LOADER"):
        raise RuntimeError("Error(s) in loading state_dict: size mismatch")
    m = nn.Linear(spec.n_features, spec.n_classes)
    m.load_state_dict(load_checkpoint_weights(checkpoint))
    return m
"""


def _mlt(root: Path, *args: str) -> Any:
    from click.testing import CliRunner

    from mltrainer.cli import cli

    return CliRunner().invoke(cli, [*args, "-C", str(root), "--json"])


def test_finalize_refuses_a_failing_load_model_before_it_retrains(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """finalize retrained (a replay on train and the production run: two runs of the script)
    before its first call of load_model; a load_model that raises is now found on the source
    run's checkpoint first: exit 2, one line naming it, no run made, the state as it was."""
    root = tmp_path / "p"
    root.mkdir()
    (root / "user_loop.py").write_text(_LOOP_SCRIPT)
    (root / "mlt.yaml").write_text(yaml.safe_dump({
        "name": "x", "task": "classification", "seed": 0, "data": {"source": "sklearn:iris"},
        "goal": {"metric": "accuracy", "target": 0.5},
        "training": {"entrypoint": "python:user_loop:main", "epochs": 3}}))
    for phase in ("plan", "train-baseline"):
        res = _mlt(root, phase)
        assert res.exit_code == 0, res.output
    state = (root / ".mlt" / "state.json").read_bytes()
    runs = sorted(p.name for p in (root / "runs").iterdir())
    monkeypatch.setenv("HF12_BROKEN_LOADER", "1")
    res = _mlt(root, "finalize")
    assert res.exit_code == 2, res.output
    err = json.loads(res.stdout)
    assert err["message"].startswith("training.load_model python:user_loop:load_model failed "
                                     "on best.pt: RuntimeError: Error(s) in loading"), err
    assert sorted(p.name for p in (root / "runs").iterdir()) == runs
    assert (root / ".mlt" / "state.json").read_bytes() == state


_HF_SCRIPT_WITHOUT_MAX_STEPS = """
import torch
from torch import nn
from transformers import Trainer, TrainingArguments

from mltrainer.integrations import context
from mltrainer.integrations.transformers import MltCallback


class Net(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.body = nn.Linear(n_in, n_out)

    def forward(self, x, labels=None):
        logits = self.body(x)
        if labels is None:
            return logits
        return {"loss": nn.functional.cross_entropy(logits, labels), "logits": logits}


class Rows(torch.utils.data.Dataset):
    def __init__(self, split):
        self.x, self.y = torch.as_tensor(split.X), torch.as_tensor(split.y)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"x": self.x[i], "labels": self.y[i]}


def main():
    ctx = context()
    args = TrainingArguments(output_dir=str(ctx.run_dir / "hf"), num_train_epochs=4,
                             per_device_train_batch_size=8, eval_strategy="epoch",
                             save_strategy="no", report_to="none", use_cpu=True,
                             seed=ctx.seed, disable_tqdm=True)  # no max_steps=ctx.max_steps
    Trainer(model=Net(ctx.n_features, ctx.n_outputs), args=args, train_dataset=Rows(ctx.train),
            eval_dataset=Rows(ctx.val), callbacks=[MltCallback()],
            compute_metrics=lambda p: ctx.compute_metrics(p.predictions, p.label_ids)).train()


def load_model(checkpoint, config, spec):
    raise NotImplementedError
"""


def test_the_hf_callback_stops_at_plans_max_steps_itself(tmp_path: Path) -> None:
    """A Trainer script that does not pass context().max_steps to its TrainingArguments was
    trained fully, twice, by plan's determinism check (4 epochs of 12 steps here); the
    callback stops the Trainer at MLT_MAX_STEPS, as MltMonitor does."""
    from mltrainer.data import prepare_data
    from mltrainer.engine.entrypoint import entrypoint_determinism

    (tmp_path / "user_hf.py").write_text(_HF_SCRIPT_WITHOUT_MAX_STEPS)
    cfg = _entrypoint_cfg("python:user_hf:main")
    probe = entrypoint_determinism(cfg, prepare_data(cfg, tmp_path), 5, tmp_path)
    assert probe["verified"] and probe["identical"], probe
    assert probe["steps_run"] == [5, 5] and probe["max_steps_honoured"]


_HF_STYLE_LOADER = """
import torch
from torch import nn


class Net(nn.Module):  # a transformers-style model: an output object even without labels
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(4, 3)

    def forward(self, x, labels=None):
        return {"loss": None, "logits": self.body(x)}


def load_model(checkpoint, config, spec):
    return Net()
"""


def test_a_load_model_whose_model_returns_an_output_object_is_named(tmp_path: Path) -> None:
    """load_model's module must map rows to a tensor of logits; one returning a transformers
    output object (the natural shape of an HF model) failed in the baseline gate's reload as
    'unexpected failure: AttributeError: ... has no attribute float' (exit 1). It is bad input
    now, checked as mlt's own models are (exit 2, the fix naming .logits)."""
    from mltrainer.data import prepare_data
    from mltrainer.engine.entrypoint import load_entrypoint_model
    from mltrainer.errors import ConfigError

    (tmp_path / "hf12_style.py").write_text(_HF_STYLE_LOADER)
    ckpt = tmp_path / "best.pt"
    torch.save({"model": {}}, ckpt)
    cfg = _entrypoint_cfg("python:hf12_style:main", "python:hf12_style:load_model")
    spec = prepare_data(cfg, tmp_path).spec
    with pytest.raises(ConfigError) as err:
        load_entrypoint_model(ckpt, cfg, spec, tmp_path)
    assert err.value.exit_code == 2
    assert err.value.message == ("model (training.load_model python:hf12_style:load_model) "
                                 "returns a dict but mlt's loop takes a tensor of class logits")
    assert ".logits" in (err.value.hint or "")


def test_a_scripts_load_model_imports_its_sibling_modules(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`training.entrypoint: src/train.py` runs with src/ on sys.path (as `python src/train.py`
    does), so `from hf12_helpers import build` works there; mlt's own import of the script for
    its load_model had the project root only, and refused it after the training."""
    from mltrainer.data import prepare_data
    from mltrainer.engine.entrypoint import load_entrypoint_model

    monkeypatch.setattr(sys, "path", list(sys.path))
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "hf12_helpers.py").write_text(
        "from torch import nn\n\ndef build(n_in, n_out):\n    return nn.Linear(n_in, n_out)\n")
    (tmp_path / "src" / "hf12_sibling.py").write_text(
        "from hf12_helpers import build\n\n\ndef main():\n    pass\n\n\n"
        "def load_model(checkpoint, config, spec):\n    return build(spec.n_features, 3)\n")
    ckpt = tmp_path / "best.pt"
    torch.save({"model": {}}, ckpt)
    cfg = _entrypoint_cfg("src/hf12_sibling.py")
    model = load_entrypoint_model(ckpt, cfg, prepare_data(cfg, tmp_path).spec, tmp_path)
    assert isinstance(model, nn.Linear) and not model.training
    monkeypatch.delitem(sys.modules, "hf12_helpers")


_SLEEPER = """
import os
import time

from mltrainer.integrations import context


def main():
    ctx = context()
    (ctx.run_dir / "pid").write_text(str(os.getpid()))
    try:
        time.sleep(120)  # a long training
    finally:
        (ctx.run_dir / "stopped").write_text("interrupted")  # a callback's end, recorded


def load_model(checkpoint, config, spec):
    raise NotImplementedError
"""

_MLT_SIDE = """
import sys
from pathlib import Path

from mltrainer.config import parse_config
from mltrainer.data import prepare_data
from mltrainer.engine.entrypoint import run_entrypoint

root = Path(sys.argv[1])
cfg = parse_config({"name": "x", "task": "classification", "data": {"source": "sklearn:iris"},
                    "goal": {"metric": "accuracy", "target": 0.9},
                    "training": {"entrypoint": "python:user_sleeper:main"}})
run_entrypoint(cfg, prepare_data(cfg, root), root / "runs" / "r1", root)
"""


@pytest.mark.parametrize("background", [False, True])
def test_a_script_stops_when_mlt_is_killed(tmp_path: Path, background: bool) -> None:
    """`kill -9` of the mlt process (nothing of it runs to stop the script) left the script
    training on as an orphan, into a run folder `mlt status` calls stopped; it now sees its
    parent gone, is sent a Ctrl-C (its `finally` runs), and ends. Also when mlt was started in
    the background (a shell's `&`, nohup, CI: SIGINT ignored, inherited by the script, whose
    Ctrl-C then did nothing: it ran on until the watcher's hard exit 10 s later)."""
    import os
    import signal
    import subprocess
    import time

    def ignore_sigint() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    (tmp_path / "user_sleeper.py").write_text(_SLEEPER)
    (tmp_path / "mlt_side.py").write_text(_MLT_SIDE)
    paths = (os.environ.get("PYTHONPATH"), str(Path(__file__).resolve().parents[1]))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    side = subprocess.Popen([sys.executable, str(tmp_path / "mlt_side.py"), str(tmp_path)],
                            env=env, preexec_fn=ignore_sigint if background else None)
    pid_file = tmp_path / "runs" / "r1" / "pid"
    try:
        deadline = time.monotonic() + 60
        while not pid_file.is_file() or not pid_file.read_text():
            assert side.poll() is None and time.monotonic() < deadline, "the script never ran"
            time.sleep(0.1)
        child = int(pid_file.read_text())
        side.send_signal(signal.SIGKILL)
        side.wait()
        deadline = time.monotonic() + 5  # (the watcher's hard exit comes at 10 s)
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(child), "the script trains on after mlt was killed"
        assert (tmp_path / "runs" / "r1" / "stopped").read_text() == "interrupted"
    finally:
        if side.poll() is None:
            side.kill()


def _alive(pid: int) -> bool:
    """The process exists and is no zombie (an orphan's end is reaped by init)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _in_mlt_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int, name: str) -> Path:
    """This process inside an mlt run of seed `seed` (the environment an entrypoint gets)."""
    from mltrainer.config import parse_config
    from mltrainer.data import prepare_data
    from mltrainer.engine.entrypoint import _environment
    from mltrainer.engine.runfolder import write_run_files
    from mltrainer.integrations._context import context

    cfg = parse_config({"name": "x", "task": "classification", "seed": 0,  # one split
                        "data": {"source": "sklearn:iris"},
                        "goal": {"metric": "accuracy", "target": 0.9},
                        "training": {"entrypoint": "python:user_train:main"}})
    run_dir = tmp_path / name
    write_run_files(run_dir, cfg, tmp_path, "entrypoint")
    env = _environment(cfg, prepare_data(cfg, tmp_path), run_dir, tmp_path, tmp_path / name,
                       None, None)
    for key, value in {**env, "MLT_SEED": str(seed)}.items():  # the seeds comparison's
        if key.startswith("MLT_"):
            monkeypatch.setenv(key, value)
    context.cache_clear()
    return run_dir


@pytest.mark.parametrize("given", [{}, {"seed": 42}, {"seed": 42, "data_seed": 7}])
def test_the_runs_seed_is_the_trainers_inside_an_mlt_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: dict[str, int]) -> None:
    """A Trainer script that leaves TrainingArguments.seed at its default (or hard-codes one)
    was reseeded with 42 by Trainer.__init__: with model_init every seed of optimize's seeds
    comparison trained the same model on the same batches. Inside an mlt run the run's seed
    replaces it: the runs differ by seed, and equal the run that passes seed=context().seed."""
    import warnings

    from mltrainer.engine.entrypoint import frameworks_importable
    from mltrainer.integrations._context import context

    frameworks_importable()
    from transformers import Trainer, TrainingArguments

    from mltrainer.integrations.transformers import MltCallback

    said: list[int] = []  # the warnings each run gave

    def losses(seed: int, name: str, pass_seed: bool) -> list[float]:
        run_dir = _in_mlt_run(tmp_path, monkeypatch, seed, name)
        ctx = context()
        extra = {"seed": ctx.seed} if pass_seed else given
        args = TrainingArguments(output_dir=str(run_dir / "hf"), num_train_epochs=1,
                                 per_device_train_batch_size=16, eval_strategy="no",
                                 save_strategy="no", report_to="none", use_cpu=True,
                                 disable_tqdm=True, log_level="error", **extra)

        class Net(_Net):
            def __init__(self) -> None:
                super().__init__()
                self.drop = nn.Dropout(0.5)

            def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> Any:
                return super().forward(self.drop(x), labels)

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            trainer = Trainer(model_init=Net, args=args,
                              train_dataset=_Rows(ctx.train.X, ctx.train.y),
                              callbacks=[MltCallback(train_rows=None, save_checkpoints=False)])
        said.append(sum("replaced by the run's seed" in str(w.message) for w in caught))
        trainer.train()
        return [e["loss"] for e in read_stream(run_dir / "metrics.jsonl") if e["type"] == "step"]

    try:
        one, two = losses(1, "s1", False), losses(2, "s2", False)
        assert one != two
        assert one == losses(1, "s1-passed", True)
        assert said == [1, 1, 0]  # a script that passes it is not warned
    finally:
        context.cache_clear()



def test_a_script_that_ignores_training_epochs_is_told_as_it_starts(tmp_path: Path) -> None:
    """A script with its own epoch count (hard-coded here; an HF `max_steps` alike) trained
    and passed the baseline gate silently, and finalize's retrain, which sets training.epochs
    to the best run's, failed its gate only after two more runs. train-baseline says so as the
    run starts."""
    from click.testing import CliRunner

    from mltrainer.cli import cli

    root = tmp_path / "p"
    root.mkdir()
    (root / "user_loop.py").write_text(_LOOP_SCRIPT.replace(
        "epochs = ctx.config.training.epochs", "epochs = 2"))
    (root / "mlt.yaml").write_text(yaml.safe_dump({
        "name": "x", "task": "classification", "seed": 0, "data": {"source": "sklearn:iris"},
        "goal": {"metric": "accuracy", "target": 0.5},
        "training": {"entrypoint": "python:user_loop:main", "epochs": 3}}))
    assert _mlt(root, "plan").exit_code == 0
    res = CliRunner().invoke(cli, ["train-baseline", "-C", str(root)])
    assert res.exit_code == 0, res.output
    assert ("note: the script runs 2 epochs but training.epochs is 3: take the epoch count "
            "from context().config.training.epochs") in " ".join(res.output.split())


def test_a_script_that_fails_before_its_stream_keeps_its_log(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A script that failed before it wrote a line of the stream (an import error, a bad
    column name) lost its run folder with entrypoint.log, which the error's fix said to read;
    one that ran to its end without MltCallback or MltMonitor got a gate of eight failures
    whose fixes spoke of learning too little. Both keep the log, and the second says what is
    missing; as does the reload item of a run that saved no checkpoint."""
    from click.testing import CliRunner

    from mltrainer.cli import cli

    root = tmp_path / "p"
    root.mkdir()
    (root / "user_loop.py").write_text(_LOOP_SCRIPT.replace("    ctx = context()\n", (
        "    ctx = context()\n"
        "    if os.environ.get('HF12_MODE') == 'early':\n"
        "        raise KeyError('no column petal_size')\n"
        "    if os.environ.get('HF12_MODE') == 'silent':\n"
        "        return\n"), 1).replace(
        "MltMonitor(model, ",
        "MltMonitor(model, save_checkpoints=not os.environ.get('HF12_MODE'), "))
    (root / "mlt.yaml").write_text(yaml.safe_dump({
        "name": "x", "task": "classification", "seed": 0, "data": {"source": "sklearn:iris"},
        "goal": {"metric": "accuracy", "target": 0.5},
        "training": {"entrypoint": "python:user_loop:main", "epochs": 2}}))
    assert _mlt(root, "plan").exit_code == 0
    for mode, says in (("early", "failed (exit code 1): KeyError: 'no column petal_size'"),
                       ("silent", "ran to its end without writing mlt's metric stream")):
        monkeypatch.setenv("HF12_MODE", mode)
        res = CliRunner().invoke(cli, ["train-baseline", "-C", str(root)])
        assert res.exit_code == 1, res.output
        said = " ".join(res.stderr.split())
        assert says in said, said
        log = root / (said.split(".log")[0].split()[-1] + ".log")  # relative to the root
        assert log.is_file() and log.parent.parent == root / "runs", said
    # a script that saves no checkpoint: the reload item says that, not 'does not give back
    # its recorded val metrics'
    monkeypatch.setenv("HF12_MODE", "no checkpoints")
    res = _mlt(root, "train-baseline")
    assert res.exit_code == 3, res.output
    item = next(i for i in json.loads(res.stdout)["gate"]["items"]
                if i["id"] == "checkpoint_reproduces")
    assert item["evidence"]["missing"].startswith("the script saved no checkpoints/best.pt")


def test_a_second_train_with_the_same_callback_is_refused(tmp_path: Path) -> None:
    """trainer.train() a second time (a second stage) with the same MltCallback wrote the
    second run's events after the first's end into one stream (epochs 1, 2, 1, 2: two
    starts, two ends), which the gates read as one run. It is refused, naming the fix."""
    trainer = _hf_run(tmp_path / "run", tmp_path / "out")
    with pytest.raises(RuntimeError, match="MltCallback records one training run and its "
                                           "stream .* ended with the first train"):
        trainer.train()
    events = read_stream(tmp_path / "run" / "metrics.jsonl")
    assert [e["type"] for e in events].count("start") == 1
    assert events[-1]["type"] == "end" and _epochs_of(events)[1] == [1, 2]
