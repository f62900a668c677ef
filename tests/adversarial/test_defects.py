"""The defects of issue 12 that the CLI table cannot reach directly, one test each (each
failed before its fix): sign-offs without an artifact hash, the audit reader, the lock
holder's record, stale staging folders, refused starts and resume, the probe on NaN weights,
the alias-bomb bound, and the test split asked for from inside another phase."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from mltrainer.config import parse_config
from mltrainer.errors import ConfigError, LockHeldError, TestSplitLockedError
from mltrainer.project import Project

IRIS = {"name": "iris", "task": "classification", "seed": 0,
        "data": {"source": "sklearn:iris"}, "model": {"kind": "mlp", "hidden": [8]},
        "training": {"epochs": 1, "batch_size": 16}, "goal": {"target": 0.5}}


def test_a_signoff_without_an_artifact_hash_approves_nothing() -> None:
    from mltrainer.gates import _signoff_valid
    from mltrainer.phases.finalize.outcome import FinalizeOutcome
    from mltrainer.phases.plan.outcome import PlanOutcome

    shipped = FinalizeOutcome.model_construct(artifact_hash="abc123")
    assert _signoff_valid("abc123", shipped)
    assert not _signoff_valid(None, shipped)  # given before the artifact existed
    assert not _signoff_valid("other", shipped)
    assert not _signoff_valid("abc123", FinalizeOutcome.model_construct(artifact_hash=""))
    assert _signoff_valid(None, PlanOutcome.model_construct())  # no artifact in that phase


def test_the_audit_reader_reports_a_damaged_line_and_goes_on(tmp_path: Path) -> None:
    from mltrainer.state import UNREADABLE_EVENT, audit, read_audit

    project = Project.at(tmp_path)
    audit(project, "first")
    with open(project.audit_path, "ab") as fh:
        fh.write(b'{"event": "x", "text": "\xff"}\n[1, 2]\n{"half": \n')
    audit(project, "last")
    events = read_audit(project)
    assert [e["event"] for e in events] == ["first", UNREADABLE_EVENT, UNREADABLE_EVENT,
                                            UNREADABLE_EVENT, "last"]
    assert [e.get("line") for e in events[1:4]] == [2, 3, 4]
    assert "UTF-8" in events[1]["problem"] and "JSON object" in events[2]["problem"]
    # finalize's own reader of the log (the test-access check) goes on past them too
    from mltrainer.phases.finalize.evaluation import test_access_outside_finalize

    assert test_access_outside_finalize(project)["violations"] == []


def test_a_refused_racer_names_the_holder_written_just_after_the_lock(tmp_path: Path) -> None:
    from mltrainer.state import _holder_record, project_lock

    project = Project.at(tmp_path)
    project.mlt_dir.mkdir()
    fd = os.open(project.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)  # the holder has the lock but has not written its record

    def write_record() -> None:
        time.sleep(0.2)
        os.pwrite(fd, _holder_record({"pid": 777, "host": "h", "command": "mlt plan",
                                      "since": "now"}), 0)

    writer = threading.Thread(target=write_record)
    writer.start()
    try:
        with pytest.raises(LockHeldError) as exc, project_lock(project, "mlt status"):
            pass
    finally:
        writer.join()
        os.close(fd)
    assert "pid 777" in exc.value.message and "`mlt plan`" in exc.value.message


def test_the_lock_record_is_rewritten_whole_never_truncated_first(tmp_path: Path) -> None:
    from mltrainer.state import HOLDER_BYTES, project_lock

    project = Project.at(tmp_path)
    project.mlt_dir.mkdir()
    project.lock_path.write_bytes(b"{}")  # a lock file an older mlt left: kept, record reset
    with project_lock(project, "mlt plan"):
        blob = project.lock_path.read_bytes()
        assert len(blob) == HOLDER_BYTES and json.loads(blob)["command"] == "mlt plan"
    assert json.loads(project.lock_path.read_bytes()) == {}


def test_the_lock_file_lives_only_while_a_command_holds_it(tmp_path: Path) -> None:
    """A command refused for bad input leaves the project's files byte for byte as they were,
    also in a project where no command has run yet: no `.mlt/lock` (nor `.mlt/`) left behind."""
    from mltrainer.state import project_lock

    project = Project.at(tmp_path)
    with project_lock(project, "mlt plan"):
        assert project.lock_path.exists()
    assert not project.mlt_dir.exists()  # created for the lock alone, removed with it
    project.mlt_dir.mkdir()
    (project.mlt_dir / "audit.jsonl").write_text("")
    with (project_lock(project, "mlt plan"), pytest.raises(LockHeldError),
          project_lock(project, "mlt status")):
        pass
    assert sorted(p.name for p in project.mlt_dir.iterdir()) == ["audit.jsonl"]
    root = tmp_path / "p"
    mlt = str(Path(sys.executable).with_name("mlt"))
    assert subprocess.run([mlt, "init", str(root), "--example", "digits"],
                          capture_output=True).returncode == 0
    (root / "mlt.yaml").write_text((root / "mlt.yaml").read_text().replace(
        "source: ", "source: nothere-", 1))
    before = sorted((p, p.read_bytes()) for p in root.rglob("*") if p.is_file())
    res = subprocess.run([mlt, "-C", str(root), "plan"],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "nothere-" in res.stderr
    assert sorted((p, p.read_bytes()) for p in root.rglob("*") if p.is_file()) == before


def test_stale_staging_folders_are_removed(tmp_path: Path) -> None:
    from mltrainer.phases.finalize.artifacts import remove_stale_staging

    project = Project.at(tmp_path)
    stale = project.artifacts_dir / ".staging-dead"
    (stale / "sub").mkdir(parents=True)
    (stale / "model.onnx").write_bytes(b"\0" * 10)
    (project.artifacts_dir / "abc123").mkdir()  # a real artifact folder stays
    assert remove_stale_staging(project) == [".staging-dead"]
    assert not stale.exists() and (project.artifacts_dir / "abc123").is_dir()


def test_a_refused_start_leaves_no_run_folder(tmp_path: Path) -> None:
    from mltrainer.engine.runfolder import provisional_run_dir

    project = Project.at(tmp_path)
    with pytest.raises(ConfigError), provisional_run_dir(project, "baseline") as run_dir:
        (run_dir / "config.resolved.yaml").write_text("x")
        raise ConfigError("refused at the start")
    assert not project.runs_dir.exists()


def test_resume_picks_the_newest_run_with_a_checkpoint(tmp_path: Path) -> None:
    from mltrainer.engine.runfolder import latest_resumable

    runs = tmp_path / "runs"
    real = runs / "20260101-000000-baseline-aaaa"
    (real / "checkpoints").mkdir(parents=True)
    (real / "checkpoints" / "last.pt").write_bytes(b"x")
    (runs / "20260102-000000-baseline-bbbb").mkdir()  # an empty folder of a refused start
    assert latest_resumable(runs, "baseline") == real
    assert latest_resumable(tmp_path / "none", "baseline") is None


def test_the_probe_fails_when_both_runs_end_in_nan() -> None:
    from mltrainer.data import prepare_data
    from mltrainer.engine import determinism_probe

    cfg = parse_config({**IRIS, "training": {"epochs": 1, "batch_size": 16, "lr": 1e30,
                                             "grad_clip": None, "scheduler": "none"}})
    evidence = determinism_probe(cfg, prepare_data(cfg, Path(".")), steps=6)
    assert evidence["non_finite_params"] > 0
    assert evidence["reproduced"] is False and "non-finite" in evidence["error"]


def test_the_alias_bound_stops_before_expanding() -> None:
    from mltrainer.config import safe_load_bounded

    bomb = "a: &a [1,1,1,1,1,1,1,1,1]\n" + "".join(
        f"{n}: &{n} [{','.join(['*' + p] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi"))
    start = time.monotonic()
    with pytest.raises(ConfigError, match="expands to more than"):
        safe_load_bounded(bomb)
    assert time.monotonic() - start < 2.0
    assert safe_load_bounded("x: &x [1, 2]\ny: *x\n") == {"x": [1, 2], "y": [1, 2]}


def test_a_factory_inside_baseline_cannot_get_the_test_rows(tmp_path: Path) -> None:
    """What a python: factory could do while train-baseline runs: prepare the data itself
    and ask as finalize would, or read the private attribute. Both get nothing, audited."""
    from mltrainer.data import prepare_data, running_phase
    from mltrainer.state import read_audit

    project = Project.at(tmp_path)
    project.mlt_dir.mkdir()
    cfg = parse_config(IRIS)
    with running_phase("baseline"):
        bundle = prepare_data(cfg, tmp_path)
        with pytest.raises(TestSplitLockedError, match="while baseline runs"):
            bundle.test("finalize")
    assert [(e["event"], e["phase"], e["running"]) for e in read_audit(project)] == [
        ("test_split_denied", "finalize", "baseline")]


def _png(seed: int) -> bytes:
    import io

    import numpy as np
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (8, 8, 3), dtype=np.uint8)
                    ).save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize("case", ["timm-typo", "fp16-on-cpu", "weights-missing",
                                  "freeze-typo", "empty-image-file"])
def test_bad_input_in_a_fresh_project_leaves_every_file_as_it_was(tmp_path: Path, case: str
                                                                   ) -> None:
    """A project where no command has run yet, then `mlt plan` refused for bad input: plan
    had written .mlt/env.json, the image folder's hash cache (.mlt/cache/) and the lock file
    before the input was found bad, so the project's files were not byte for byte as before."""
    import yaml
    from click.testing import CliRunner
    from harness import FIXTURE_CONFIG, write_iris_csv

    from mltrainer.cli import cli

    runner = CliRunner()
    root = tmp_path / "p"
    assert runner.invoke(cli, ["init", str(root)]).exit_code == 0
    cfg = yaml.safe_load(FIXTURE_CONFIG)
    write_iris_csv(root / "data.csv")
    if case == "empty-image-file":
        for label in ("a", "b"):
            for i in range(12):
                (root / "img" / label).mkdir(parents=True, exist_ok=True)
                (root / "img" / label / f"{i}.png").write_bytes(_png(i + 100 * (label == "b")))
        (root / "img" / "a" / "empty.png").write_bytes(b"")
        cfg["data"] = {"source": "imagefolder:img", "transforms": {"size": 8, "crop": 8}}
        cfg["model"] = {"kind": "cnn", "channels": [4]}
    else:
        cfg["model"].update({"timm-typo": {"kind": "timm:resnet_nope"},
                             "weights-missing": {"weights": "w.pt"},
                             "freeze-typo": {"freeze": ["nothere"]}}.get(case, {}))
        if case == "fp16-on-cpu":
            cfg["training"]["precision"] = "fp16"
    (root / "mlt.yaml").write_text(yaml.safe_dump(cfg))
    before = sorted((str(p), p.read_bytes()) for p in root.rglob("*") if p.is_file())
    res = runner.invoke(cli, ["-C", str(root), "plan"])
    assert res.exit_code == 2, res.output
    assert sorted((str(p), p.read_bytes()) for p in root.rglob("*") if p.is_file()) == before


@pytest.mark.parametrize("args,code", [(["report", "deploy"], 2), (["report", "diagnose"], 2),
                                       (["signoff", "finalize", "fairness_review", "--by", "A"],
                                        3)])
def test_a_command_refused_outside_a_phase_hashes_no_folder(tmp_path: Path, args: list[str],
                                                            code: int) -> None:
    """`mlt report PHASE` with an unknown phase or one with no gate yet (exit 2), a sign-off
    before there is an artifact (exit 3): each used to hash the image folder into .mlt/cache/
    first, so a cold cache was written by a command that was refused."""
    import yaml
    from click.testing import CliRunner

    from mltrainer.cli import cli

    runner = CliRunner()
    root = tmp_path / "p"
    assert runner.invoke(cli, ["init", str(root)]).exit_code == 0
    for label in ("a", "b"):
        (root / "img" / label).mkdir(parents=True)
        for i in range(3):
            (root / "img" / label / f"{i}.png").write_bytes(_png(i + 100 * (label == "b")))
    cfg = yaml.safe_load((root / "mlt.yaml").read_text())
    cfg["data"] = {"source": "imagefolder:img", "transforms": {"size": 8, "crop": 8}}
    cfg["model"] = {"kind": "cnn", "channels": [4]}
    (root / "mlt.yaml").write_text(yaml.safe_dump(cfg))
    before = sorted((str(p), p.read_bytes()) for p in root.rglob("*") if p.is_file())
    res = runner.invoke(cli, ["-C", str(root), *args])
    assert res.exit_code == code, res.output
    assert sorted((str(p), p.read_bytes()) for p in root.rglob("*") if p.is_file()) == before


@pytest.mark.parametrize("at_epoch_event,run", [(1, "replay"), (4, "final")])
def test_ctrl_c_in_finalize_training_stops_it_before_the_test_split(
        tmp_path: Path, at_epoch_event: int, run: str) -> None:
    """Ctrl-C during finalize's replay or production training ended that run as "interrupted",
    and finalize went on: it judged a part-trained replay, shipped a part-trained model and
    spent the test split on it. Now it exits 130 there, the test split unread, and a second
    `mlt finalize` runs whole."""
    import signal

    import yaml
    from click.testing import CliRunner

    from mltrainer.cli import cli
    from mltrainer.output import TrainingProgress

    runner = CliRunner()
    root = tmp_path / "p"
    root.mkdir()
    cfg = {**IRIS, "training": {"epochs": 3, "batch_size": 16, "lr": 0.01,
                                "early_stopping": None}}
    (root / "mlt.yaml").write_text(yaml.safe_dump(cfg))
    for phase in ("plan", "train-baseline"):
        res = runner.invoke(cli, ["-C", str(root), phase])
        assert res.exit_code == 0, res.output
    real, seen = TrainingProgress.on_event, []

    def on_event(self: TrainingProgress, event: dict[str, Any]) -> None:
        if event.get("type") == "epoch":
            seen.append(event)
            if len(seen) == at_epoch_event:
                os.kill(os.getpid(), signal.SIGINT)
        return real(self, event)

    previous = signal.getsignal(signal.SIGINT)
    TrainingProgress.on_event = on_event  # type: ignore[method-assign]
    try:
        res = runner.invoke(cli, ["-C", str(root), "finalize"])
    finally:
        TrainingProgress.on_event = real  # type: ignore[method-assign]
        signal.signal(signal.SIGINT, previous)
    assert res.exit_code == 130, res.output
    assert f"interrupted during {'the replay' if run == 'replay' else 'production'}" in (
        res.output)
    assert not (root / ".mlt" / "test_evaluations.json").exists()
    assert not list((root / "artifacts").glob("*/model.onnx"))
    res = runner.invoke(cli, ["-C", str(root), "finalize", "--json"])
    assert res.exit_code == 3, res.output  # judged; people's items wait
    status = {i["id"]: i["status"] for i in json.loads(res.stdout)["gate"]["items"]}
    assert status["test_evaluated_once"] == status["shipped_recipe_reproduces_validation"] == (
        "pass")
    assert status["production_training_recorded"] == "pass"
