"""`mlt diagnose` end to end, `--metrics` on a foreign stream, and a run stopped by nan_loss."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from mltrainer.cli import cli
from mltrainer.stream import MetricWriter

pytestmark = pytest.mark.slow


def mlt(*args: str) -> tuple[int, dict | None, str]:
    res = CliRunner().invoke(cli, [*args, "--json"], catch_exceptions=False)
    out = res.stdout.strip()
    return res.exit_code, (json.loads(out) if out else None), res.stderr


def make_project(root: Path, *, waive: tuple[str, ...] = (), **training: object) -> Path:
    assert mlt("init", str(root), "--example", "breast_cancer")[0] == 0
    cfg = yaml.safe_load((root / "mlt.yaml").read_text())
    cfg["model"]["hidden"] = [32]
    cfg["training"].update({"epochs": 6, **training})
    (root / "mlt.yaml").write_text(yaml.safe_dump(cfg))
    code, result, err = mlt("plan", "-C", str(root))
    for item in waive:  # plan items the test means to get past (a diverging config)
        statuses = {i["id"]: i["status"] for i in result["gate"]["items"]}
        assert statuses[item] == "fail", statuses
        code, result, err = mlt("waive", "plan", item, "--reason",
                                "the test trains a diverging config on purpose", "-C", str(root))
    assert code == 0, err
    return root


def test_diagnose_after_a_stalled_baseline(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", lr=1e-6, optimizer="sgd", momentum=0.0,
                        early_stopping={"patience": 0, "min_delta": 0.0})
    code, result, _ = mlt("train-baseline", "-C", str(root))
    assert code == 3  # the model learned nothing: the gate blocks on the trivial baseline
    assert {i["id"]: i["status"] for i in result["gate"]["items"]}["beats_trivial_baseline"] \
        == "fail"
    code, status, _ = mlt("status", "-C", str(root))
    assert status["phases"][1]["status"] == "blocked"
    assert status["next"] == "mlt diagnose"  # a baseline that learned nothing is diagnosed
    code, result, err = mlt("diagnose", "-C", str(root))
    assert code == 0, err
    ids = {f["id"] for f in result["findings"]}
    assert ids & {"convergence_stall", "underfitting"}, ids


def test_diagnose_finds_and_recommends(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", lr=0.02, optimizer="sgd", momentum=0.0,
                        early_stopping={"patience": 0, "min_delta": 0.0})
    cfg = yaml.safe_load((root / "mlt.yaml").read_text())
    cfg["goal"]["target"] = 0.999  # the goal stays out of reach: diagnose is next
    (root / "mlt.yaml").write_text(yaml.safe_dump(cfg))
    assert mlt("plan", "-C", str(root))[0] == 0
    code, result, err = mlt("train-baseline", "-C", str(root))
    assert code == 0, err
    assert result["next"] == "mlt diagnose"
    code, result, err = mlt("diagnose", "-C", str(root))
    assert code == 0, err
    assert result["phase"] == "diagnose" and result["gate"]["passed"]
    for f in result["findings"]:
        assert f["evidence"] and f["playbook"] == f"diagnostics/{f['id']}.md"
        assert set(f["onset"]) == {"epoch", "step"}
    report = (root / "reports" / "diagnose.md").read_text()
    assert report.startswith("# Diagnose gate — PASSED")
    assert ("No finding" in report) == (not result["findings"])
    # the baseline's run folder moved away: the baseline is stale, naming the folder (it said
    # "pass the metrics.jsonl a run wrote", the advice for --metrics), and the state is left
    # as it was
    run_dir = root / json.loads((root / ".mlt" / "state.json").read_text())[
        "phases"]["baseline"]["outcome"]["run"]["dir"]
    run_dir.rename(tmp_path / "elsewhere")
    state = (root / ".mlt" / "state.json").read_bytes()
    code, result, err = mlt("diagnose", "-C", str(root))
    assert code == 3 and result["message"].startswith(
        f"`mlt diagnose` refused: baseline is stale (runs/{run_dir.name} was moved or deleted")
    assert "mlt train-baseline" in result["hint"]
    assert (root / ".mlt" / "state.json").read_bytes() == state


def _hand_written_loop(path: Path, lr: float) -> None:
    """Someone else's training loop, writing the documented stream through MetricWriter."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    X = torch.tensor(rng.normal(size=(256, 8)), dtype=torch.float32)
    y = (X[:, 0] > 0).long()
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    step = 0
    with MetricWriter(path, task="classification", metric="accuracy") as w:
        for epoch in range(1, 9):
            losses = []
            for i in range(0, 256, 32):
                step += 1
                loss = torch.nn.functional.cross_entropy(model(X[i:i + 32]), y[i:i + 32])
                opt.zero_grad()
                loss.backward()
                norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf")))
                opt.step()
                losses.append(float(loss.detach()))
                w.step(epoch=epoch, step=step, loss=float(loss.detach()), lr=lr, grad_norm=norm)
            with torch.no_grad():
                acc = float((model(X).argmax(1) == y).float().mean())
            w.epoch(epoch=epoch, step=step, train_loss=float(np.mean(losses)),
                    val_loss=float(np.mean(losses)), val={"accuracy": acc}, lr=lr)


def test_metrics_flag_outside_a_project(tmp_path: Path) -> None:
    healthy, broken = tmp_path / "healthy.jsonl", tmp_path / "broken.jsonl"
    _hand_written_loop(healthy, lr=0.1)
    _hand_written_loop(broken, lr=1e4)
    code, result, _ = mlt("diagnose", "--metrics", str(healthy), "-C", str(tmp_path))
    assert code == 0 and result["findings"] == []
    code, result, _ = mlt("diagnose", "--metrics", str(broken), "-C", str(tmp_path))
    assert code == 0
    assert result["findings"], "a diverging loop must produce a finding"
    assert all(f["playbook"] for f in result["findings"])


def test_a_baseline_broken_in_its_first_epoch_goes_diagnose_then_optimize(tmp_path: Path
                                                                          ) -> None:
    """The typical path from a broken baseline: exit 4, diagnosed from its steps alone, and
    optimize (next) searches the playbooks' recommendations."""
    # plan's determinism probe already fails on the NaN weights this lr makes (issue 12): the
    # test waives that item to see what training itself does with the config
    root = make_project(tmp_path / "p", lr=1e6, optimizer="sgd", momentum=0.0, grad_clip=None,
                        early_stopping={"patience": 0, "min_delta": 0.0},
                        waive=("determinism_verified",))
    code, result, err = mlt("train-baseline", "-C", str(root))
    assert code == 4, err
    assert result["run"]["stopped_reason"] == "detector:nan_loss"
    items = {i["id"]: i for i in result["gate"]["items"]}
    assert items["all_losses_finite"]["status"] == "fail"
    run_dir = root / "runs" / result["run"]["id"]
    for ckpt in (run_dir / "checkpoints").glob("*.pt"):
        state = torch.load(ckpt, weights_only=True)
        assert all(torch.isfinite(t).all() for t in state["model"].values()), ckpt
    state = json.loads((root / ".mlt" / "state.json").read_text())
    assert any(f["id"] == "nan_loss" for f in state["phases"]["baseline"]["outcome"]
               ["online_findings"])
    assert result["run"]["epochs_run"] == 0 and result["next"] == "mlt diagnose"

    code, result, err = mlt("diagnose", "-C", str(root))
    assert code == 0, err
    items = {i["id"]: i for i in result["gate"]["items"]}
    assert items["stream_diagnosed"]["evidence"]["epoch"] == 0
    assert items["stream_diagnosed"]["evidence"]["step"] >= 1
    assert "nan_loss" in [f["id"] for f in result["findings"]]
    assert result["next"] == "mlt optimize"

    from mltrainer.config import load_config
    from mltrainer.phases.optimize.space import build_space

    space = build_space(load_config(root / "mlt.yaml"), result["findings"], {})
    assert space.origin == "findings"
    params = {p.path: p for p in space.params}
    assert "nan_loss" in params["training.lr"].sources
    assert params["training.lr"].low < 1e-3  # the playbook's range, far below lr 1e6
    assert "training.grad_clip" in params


@pytest.mark.parametrize("finding_id", ["convergence_stall", "underfitting", "nan_loss"])
def test_playbook_on_a_pipe_is_wrapped_not_cut(finding_id: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """An assistant reads diagnose's stderr through a pipe (80 columns): every line of the
    playbook must arrive whole, wrapped inside its panel, not cropped at the panel's edge."""
    import re

    from mltrainer.output import Output
    from mltrainer.resources import load_playbook

    Output().findings([{"id": finding_id, "severity": "warning", "message": "m",
                        "onset": {"epoch": 1, "step": 1}, "evidence": {},
                        "playbook": f"diagnostics/{finding_id}.md"}])
    def words(text: str) -> list[str]:
        return re.sub(r"[`*_#>\[\]()]", "", re.sub(r"[│╭╮╰╯─•]", " ", text)).split()

    shown = " ".join(words(capsys.readouterr().err))
    for line in load_playbook(finding_id).body.splitlines():
        if len(words(line)) >= 3:
            assert " ".join(words(line)[-3:]) in shown, f"cut: {line[-60:]!r}"


@pytest.mark.parametrize("line, named", [
    ('{"type": "step", "epoch": 1, "step": 2, "loss": "0.5"}', "line 3: step event's 'loss'"),
    ('{"type": "epoch", "epoch": 1, "step": 2, "val": [0.9]}', "line 3: epoch event's 'val'"),
    ('{"type": "epoch", "epoch": 1, "step": 2, "val": {"accuracy": "high"}}',
     "line 3: epoch event's val['accuracy']"),
    ('{"type": "step", "epoch": 1.5, "step": 2, "loss": 0.5}', "line 3: step event's 'epoch'"),
    ('{"type": "step", "epoch": 1, "step": 2, "loss": true}', "line 3: step event's 'loss'"),
])
def test_a_stream_field_of_the_wrong_type_is_refused_naming_its_line(
        tmp_path: Path, line: str, named: str) -> None:
    """A user's own stream with a loss written as a string (or a val that is no table) was
    read with the field skipped: "no finding", as if the run were healthy. It is bad input:
    one line naming the line and the field, exit 2."""
    stream = tmp_path / "metrics.jsonl"
    stream.write_text('{"type": "start", "task": "classification", "metric": "accuracy"}\n'
                      '{"type": "step", "epoch": 1, "step": 1, "loss": 0.7, "lr": 0.1}\n'
                      + line + "\n")
    code, result, err = mlt("diagnose", "--metrics", str(stream), "-C", str(tmp_path))
    assert code == 2, err
    assert named in result["message"] and "Traceback" not in err
    assert not (tmp_path / ".mlt").exists()


def test_a_stream_without_what_the_rules_read_says_what_went_unjudged(tmp_path: Path) -> None:
    """"no finding" over a stream with no steps and the goal metric logged under another name
    is not a healthy run: the result says what the detectors could not judge. Whole-number
    floats (epoch 3.0) are read as counts."""
    stream = tmp_path / "metrics.jsonl"
    with MetricWriter(stream, task="classification", metric="accuracy") as w:
        for e in range(1, 5):
            w.epoch(epoch=float(e), step=10 * e, train_loss=1 / e, val_loss=1 / e,
                    val={"acc": 0.5 + 0.05 * e}, lr=1e-3)
    code, result, err = mlt("diagnose", "--metrics", str(stream), "-C", str(tmp_path))
    assert code == 0, err
    notes = " ".join(result["unjudged"])
    assert "no step events" in notes and "'accuracy' is in no epoch event's val" in notes
    assert "acc" in notes and "not judged:" in err


def test_metric_writer_takes_a_loops_tensors_and_numpy_numbers(tmp_path: Path) -> None:
    """A hand-written loop passes `loss` (a tensor, with its graph) and numpy numbers as they
    are: they were a TypeError from the JSON encoder. They are written as numbers; a tensor of
    several elements is a TypeError naming the field, with nothing written."""
    from mltrainer.stream import read_stream

    path = tmp_path / "metrics.jsonl"
    weight = torch.ones(1, requires_grad=True)
    with MetricWriter(path, task="classification", metric="accuracy") as w:
        w.step(epoch=np.int64(1), step=1, loss=(weight * 0.5).sum(), lr=np.float32(0.1))
        w.epoch(epoch=1, step=1, train_loss=torch.tensor(0.4), val_loss=0.5,
                val={"accuracy": np.float64(0.75)})
        with pytest.raises(TypeError, match="loss must be a number but is a tensor of 3"):
            w.step(epoch=1, step=2, loss=torch.ones(3))
    events = read_stream(path)
    assert [e["type"] for e in events] == ["start", "step", "epoch"]
    assert events[1]["loss"] == 0.5 and events[1]["epoch"] == 1
    assert abs(events[1]["lr"] - 0.1) < 1e-7
    assert events[2]["train_loss"] == pytest.approx(0.4) and events[2]["val"] == {
        "accuracy": 0.75}
