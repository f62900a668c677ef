"""`mlt optimize`: the search space from findings (a table), the study (resume, dead workers,
two worker processes), the test-split lock inside trials, the seeds comparison, the iteration
cap, and the whole phase through the CLI. Real Optuna journal storage, real (tiny) training."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy
import yaml
from click.testing import CliRunner

from mltrainer.cli import cli
from mltrainer.config import MltConfig, load_config, parse_config
from mltrainer.errors import BadInputError, ConfigError, InterruptedRunError, TestSplitLockedError
from mltrainer.gates import GateContext
from mltrainer.phases.optimize.compare import summarize
from mltrainer.phases.optimize.config_file import changes_between, render
from mltrainer.phases.optimize.search import PruningSubscriber, TrialRunner, run_trials
from mltrainer.phases.optimize.space import Param, SearchSpace, build_space, trial_config
from mltrainer.phases.optimize.study import (
    is_dead_worker,
    make_pruner,
    make_sampler,
    open_storage,
    open_study,
    redact,
    study_name,
)
from mltrainer.project import Project
from mltrainer.state import ProjectState, audit

BASE = {"name": "opt-test", "task": "classification", "seed": 42,
        "data": {"source": "sklearn:digits"}, "goal": {"metric": "accuracy", "target": 0.97}}


def base_cfg(**sections: Any) -> MltConfig:
    return parse_config({**BASE, **sections})


def search(path: str, low: float, high: float, log: bool = True, type_: str = "float"
           ) -> dict[str, Any]:
    return {"kind": "search", "path": path, "type": type_, "low": low, "high": high, "log": log}


def choose(path: str, choices: list[Any]) -> dict[str, Any]:
    return {"kind": "search", "path": path, "type": "categorical", "choices": choices}


def set_(path: str, value: Any, op: str = "set") -> dict[str, Any]:
    return {"kind": "set", "path": path, "op": op, "value": value}


def finding(fid: str, *recs: dict[str, Any], severity: str = "warning") -> dict[str, Any]:
    return {"id": fid, "severity": severity, "recommendations": list(recs)}


STALL = finding("convergence_stall", search("training.lr", 1e-4, 1e-2),
                set_("training.optimizer", "adamw"), set_("model.norm", "batch"),
                choose("training.batch_size", [16, 32, 64]))
OVERFIT = finding("overfitting", search("training.weight_decay", 1e-5, 0.1),
                  search("model.dropout", 0.0, 0.5, log=False),
                  set_("training.early_stopping.patience", 5),
                  search("training.lr", 1e-4, 3e-3))
UNDERFIT = finding("underfitting", search("training.lr", 1e-4, 1e-2),
                   set_("training.weight_decay", 0.1, "multiply"), set_("model.dropout", 0.0),
                   set_("model.hidden", [512, 256]), set_("training.epochs", 2, "multiply"))

# finding sets (+ user space) -> {param name: (type, low, high, log) | (choices,)}, origin
SPACE_TABLE = [
    pytest.param([], {}, {
        "training.lr": ("float", 1e-4, 1e-2, True),
        "training.weight_decay": ("float", 1e-6, 1e-2, True),
        "model.width_scale": ([0.5, 1.0, 2.0],)}, "default", id="no-finding-default-space"),
    pytest.param([STALL], {}, {
        "training.lr": ("float", 1e-4, 1e-2, True),
        "model.norm": (["none", "batch"],),  # set -> {baseline, recommended}
        "training.batch_size": ([16, 32, 64],)}, "findings", id="stall-set-becomes-choice"),
    pytest.param([OVERFIT, UNDERFIT], {}, {
        "training.lr": ("float", 1e-4, 1e-2, True),  # union of [1e-4, 3e-3] and [1e-4, 1e-2]
        "training.weight_decay": ("float", 1e-5, 0.1, True),  # x0.1 = 1e-5 already inside
        "model.dropout": ("float", 0.0, 0.5, False),  # linear: one range is not log
        "model.hidden": ([[256, 128], [512, 256]],),
        "training.epochs": ([30, 60],)}, "findings", id="overfit-and-underfit-union"),
    pytest.param([finding("exploding_gradients", search("training.lr", 1e-5, 1e-4),
                          set_("training.lr", 10, "multiply"), severity="critical")], {}, {
        "training.lr": ("float", 1e-5, 1e-2, True)}, "findings",
        id="set-value-widens-searched-range"),
    pytest.param([STALL], {"training.batch_size": {"type": "int", "low": 16, "high": 128,
                                                   "log": True}}, {
        "training.lr": ("float", 1e-4, 1e-2, True), "model.norm": (["none", "batch"],),
        "training.batch_size": ("int", 16, 128, True)}, "findings",
        id="user-space-replaces-finding-range"),
    pytest.param([], {"model.dropout": {"type": "float", "low": 0.0, "high": 0.3}}, {
        "training.lr": ("float", 1e-4, 1e-2, True),
        "training.weight_decay": ("float", 1e-6, 1e-2, True),
        "model.width_scale": ([0.5, 1.0, 2.0],),
        "model.dropout": ("float", 0.0, 0.3, False)}, "default", id="user-space-plus-default"),
    pytest.param([finding("odd", set_("data.split.val", 0.3),
                          set_("training.optimizer", "adamw"))],
                 {}, {"training.lr": ("float", 1e-4, 1e-2, True),
                      "training.weight_decay": ("float", 1e-6, 1e-2, True),
                      "model.width_scale": ([0.5, 1.0, 2.0],)}, "default",
                 id="nothing-searchable-falls-back-to-default"),
]


@pytest.mark.parametrize(("findings", "user", "expected", "origin"), SPACE_TABLE)
def test_search_space_from_findings(findings: list[dict[str, Any]], user: dict[str, Any],
                                    expected: dict[str, tuple[Any, ...]], origin: str) -> None:
    space = build_space(base_cfg(), findings, user)
    assert space.origin == origin
    got = {p.name: p for p in space.params}
    assert set(got) == set(expected)
    for name, want in expected.items():
        p = got[name]
        if len(want) == 1:
            assert (p.type, p.choices) == ("categorical", want[0]), name
        else:
            assert (p.type, p.log) == (want[0], want[3]), name
            assert (p.low, p.high) == pytest.approx(want[1:3]), name
        assert p.sources, f"{name} is not traced to a finding or space"
    if origin == "default" and not user:
        assert space.notes


def test_every_param_traces_to_its_findings_and_user_space() -> None:
    space = build_space(base_cfg(), [STALL, OVERFIT, UNDERFIT],
                        {"training.batch_size": {"type": "int", "low": 16, "high": 128}})
    sources = {p.name: p.sources for p in space.params}
    assert sources["training.lr"] == ["convergence_stall", "overfitting", "underfitting"]
    assert sources["training.batch_size"] == ["user space", "convergence_stall"]
    assert any("training.optimizer" in n and "already the baseline" in n for n in space.notes)


@pytest.mark.parametrize(("path", "spec", "fragment"), [
    ("training.lrr", {"type": "float", "low": 1e-4, "high": 1e-2}, "did you mean 'training.lr'"),
    ("data.split.val", {"type": "float", "low": 0.1, "high": 0.3}, "only model.*, training.* and"),
    ("training.lr", {"type": "float", "low": 1e-2, "high": 1e-4}, "low < high"),
    ("training.lr", {"type": "float", "low": 0.0, "high": 1e-2, "log": True}, "low > 0"),
    ("training.lr", {"type": "float", "low": 1e-4, "high": 1e-2, "step": 2}, "unknown key 'step'"),
    ("training.lr", {"type": "normal", "low": 1e-4, "high": 1e-2}, "type must be"),
    ("model.activation", {"type": "categorical", "choices": []}, "non-empty list"),
    ("model.activation", {"type": "categorical", "choices": ["relu", "swish"]}, "'swish'"),
    ("training.batch_size", {"type": "int", "low": 0, "high": 64}, "low 0 is not a valid"),
])
def test_bad_user_space_entry_is_a_config_error_naming_it(path: str, spec: dict[str, Any],
                                                          fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_space(base_cfg(), [], {path: spec})
    assert f"optimize.space.{path}" in err.value.message
    assert fragment in err.value.message
    assert err.value.exit_code == 2


def test_a_model_params_key_can_be_searched() -> None:
    """A `training.entrypoint` script (or a `python:` model factory) reads its own knobs from
    `model.params`; `optimize.space` could not name one ('no config field'), so such a
    project could search the built-in fields only. A key the baseline does not set is searched
    from nothing: the trial's config carries it, mlt.optimized.yaml's changes show it."""
    space = build_space(base_cfg(), [], {"model.params.width": {
        "type": "int", "low": 2, "high": 8}, "model.params.act": {
        "type": "categorical", "choices": ["relu", "gelu"]}})
    assert {"model.params.width", "model.params.act"} <= {p.path for p in space.params}
    base_raw = base_cfg().model_dump(mode="json")
    trial = trial_config(base_raw, {"model.params.width": 5, "model.params.act": "gelu"}, "t")
    assert trial.model.params == {"width": 5, "act": "gelu"}
    changes = changes_between(base_raw, trial.model_dump(mode="json"), space)
    assert {"path": "model.params.width", "baseline": None, "value": 5} in [
        {k: c[k] for k in ("path", "baseline", "value")} for c in changes]
    with pytest.raises(ConfigError, match=r"optimize\.space\.model\.params': low 2 is not a"):
        build_space(base_cfg(), [], {"model.params": {"type": "int", "low": 2, "high": 8}})


@pytest.mark.parametrize(("modality", "searched"), [
    ("table", {"training.weight_decay", "model.dropout", "training.lr"}),
    ("image", {"training.weight_decay", "model.dropout", "training.lr",
               "data.transforms.augment.hflip", "data.transforms.augment.rotation"}),
])
def test_augmentation_is_searched_on_image_data_only(modality: str, searched: set[str]) -> None:
    """The overfitting playbook's augmentation advice names its modality: image data gets the
    ranges, other data a note instead; a user may search augmentation on any project."""
    from mltrainer.phases.diagnose.phase import with_playbook

    found = [with_playbook({"id": "overfitting", "severity": "warning"})]
    space = build_space(base_cfg(), found, {}, modality=modality)
    assert {p.path for p in space.params} == searched
    assert any("augment" in n and "image data" in n for n in space.notes) == (
        modality != "image")
    user = build_space(base_cfg(), [], {"data.transforms.augment.rotation": {
        "type": "float", "low": 0.0, "high": 10.0}})
    assert "data.transforms.augment.rotation" in {p.path for p in user.params}


def test_every_shipped_playbook_gives_a_space_of_valid_configs() -> None:
    """Contract over diagnostics/*.md: each finding's space is searchable, and every end of
    every range (every choice) makes a config that validates."""
    from mltrainer.phases.diagnose.phase import with_playbook
    from mltrainer.resources import playbook_ids

    cfg = base_cfg()
    raw = cfg.model_dump(mode="json")
    for fid in playbook_ids():
        space = build_space(cfg, [with_playbook({"id": fid, "severity": "warning"})], {})
        assert space.origin == "findings", (fid, space.notes)
        for p in space.params:
            ends = p.choices if p.type == "categorical" else [p.low, p.high]
            for end in ends or []:
                trial_config(raw, {p.path: p.value_of(end, raw)}, source=fid)


# -- the study ---------------------------------------------------------------------------------


TINY = {"name": "tiny", "task": "classification", "seed": 42,
        "data": {"source": "sklearn:breast_cancer"}, "model": {"hidden": [16]},
        "training": {"epochs": 3, "batch_size": 64, "grad_stats_every": 0},
        "goal": {"metric": "accuracy", "target": 0.99}}


@pytest.fixture
def tiny(tmp_path: Path) -> tuple[Project, MltConfig, Any]:
    from mltrainer.data import prepare_data

    project = Project(tmp_path / "proj")
    project.mlt_dir.mkdir(parents=True)
    project.config_path.write_text(yaml.safe_dump(TINY), encoding="utf-8")
    cfg = load_config(project.config_path)
    bundle = prepare_data(cfg, project.root, audit=lambda rec: audit(
        project, rec.pop("event"), **rec))
    return project, cfg, bundle


def _study(project: Project, cfg: MltConfig, target: int, name: str = "s") -> tuple[Any, Any]:
    storage, _ = open_storage(None, project)
    sampler, _ = make_sampler(target, cfg.seed)
    pruner, _ = make_pruner(target, cfg.training.epochs)
    return open_study(storage, name, True, sampler, pruner), storage


def _runner(project: Project, cfg: MltConfig, bundle: Any, space: SearchSpace | None = None,
            storage: Any = None) -> TrialRunner:
    space = space or build_space(cfg, [], {})
    return TrialRunner(project, bundle, cfg.model_dump(mode="json"), space, cfg.goal.metric,
                       storage)


def _finished(study: Any) -> int:
    return sum(t.state.name in ("COMPLETE", "PRUNED") for t in study.get_trials())


@pytest.mark.slow
def test_interrupted_study_resumes_to_the_requested_number(
        tiny: tuple[Project, MltConfig, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    project, cfg, bundle = tiny
    study, storage = _study(project, cfg, 5)
    real = PruningSubscriber.on_event

    def ctrl_c_in_trial_2(self: PruningSubscriber, event: dict[str, Any]) -> str | None:
        if self.trial.number == 2 and event.get("type") == "step" and event["step"] == 3:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: the engine finishes the step, stops
        return real(self, event)

    monkeypatch.setattr(PruningSubscriber, "on_event", ctrl_c_in_trial_2)
    with pytest.raises(InterruptedRunError):
        run_trials(study, _runner(project, cfg, bundle, storage=storage), 5)
    monkeypatch.setattr(PruningSubscriber, "on_event", real)
    before = {t.number: (t.state.name, t.value) for t in study.get_trials()}
    assert before[2][0] == "FAIL" and _finished(study) == 2
    # A worker killed mid-trial leaves a RUNNING trial that names its (now dead) process.
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    orphan = study.ask()
    orphan.set_user_attr("mlt.worker", {"host": socket.gethostname(),
                                        "pid": int(gone.stdout), "started": None})
    # Re-run: a fresh storage object on the same journal file, as a new `mlt optimize` would.
    again, storage2 = _study(project, cfg, 5)
    summary = run_trials(again, _runner(project, cfg, bundle, storage=storage2), 5)
    after = {t.number: (t.state.name, t.value) for t in again.get_trials()}
    assert _finished(again) == 5 and summary["stopped"] == "target"
    assert orphan.number in summary["recovered"] and after[orphan.number][0] == "FAIL"
    assert all(after[n] == before[n] for n in before)  # earlier trials kept as they were
    assert not [t for t in again.get_trials() if t.state.name == "RUNNING"]
    runs = {t.user_attrs.get("mlt.run_id") for t in again.get_trials()} - {None}
    assert all((project.runs_dir / r / "metrics.jsonl").is_file() for r in runs)


def test_database_storage_records_heartbeats(tiny: tuple[Project, MltConfig, Any],
                                            tmp_path: Path) -> None:
    project, cfg, bundle = tiny
    storage, info = open_storage(f"sqlite:///{tmp_path / 'optuna.db'}", project)
    assert info["kind"] == "rdb" and info["heartbeat_s"]
    sampler, _ = make_sampler(1, cfg.seed)
    pruner, _ = make_pruner(1, cfg.training.epochs)
    study = open_study(storage, "db", True, sampler, pruner)
    run_trials(study, _runner(project, cfg, bundle, storage=storage), 1)
    assert study.get_trials()[0].state.name == "COMPLETE"
    with storage.engine.connect() as conn:  # the trial beat while it trained
        beats = conn.execute(sqlalchemy.text("SELECT trial_id FROM trial_heartbeats")).fetchall()
    assert len(beats) == 1


@pytest.mark.parametrize("where", ["--storage", "optimize.storage"])
def test_a_storage_that_cannot_be_opened_names_where_it_was_given(
        tiny: tuple[Project, MltConfig, Any], tmp_path: Path, where: str) -> None:
    """A URL from mlt.yaml was reported as `--storage 'URL'`, an option the user never gave."""
    project, _, _ = tiny
    url = f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'x.db'}"
    with pytest.raises(BadInputError) as err:
        open_storage(url, project, where)
    assert err.value.message.startswith(f"{where} {url!r}: cannot open it: OperationalError")


def test_dead_worker_detection_is_sure_or_silent() -> None:
    host = socket.gethostname()
    assert not is_dead_worker({"host": host, "pid": os.getpid()})
    assert not is_dead_worker({"host": "another-machine", "pid": 2**22 + 7})
    assert not is_dead_worker(None)


@pytest.mark.parametrize(("attrs", "age_s", "orphan"), [
    ({}, 10, False),  # just asked: its worker is recording itself
    ({}, 3600, True),  # never recorded a worker, and an hour old: nobody will end it
    ({"mlt.worker": {"host": "x", "pid": 1}}, 3600, False),  # a worker to judge instead
])
def test_a_trial_whose_worker_never_recorded_itself_is_failed_after_grace(
        attrs: dict[str, Any], age_s: float, orphan: bool) -> None:
    import datetime

    import optuna

    from mltrainer.phases.optimize.study import is_orphan

    trial = optuna.trial.create_trial(state=optuna.trial.TrialState.RUNNING, user_attrs=attrs)
    trial.datetime_start = datetime.datetime.now() - datetime.timedelta(seconds=age_s)
    assert is_orphan(trial) is orphan


def test_invalid_trial_config_fails_the_trial_not_the_search(
        tiny: tuple[Project, MltConfig, Any]) -> None:
    project, cfg, bundle = tiny
    study, storage = _study(project, cfg, 1)
    space = SearchSpace([Param("training.lr", "training.lr", "float", 1e-3, 1e-2,
                               sources=["test"])], "findings")
    with pytest.warns(UserWarning, match="out of range"):  # Optuna, on the enqueued value
        summary = run_trials(study, _runner(project, cfg, bundle, space, storage), 1,
                             enqueue={"training.lr": -1.0})
    trials = study.get_trials()
    assert trials[0].state.name == "FAIL" and "training.lr" in trials[0].user_attrs["mlt.error"]
    assert trials[-1].state.name == "COMPLETE" and summary["stopped"] == "target"


def test_trials_cannot_read_the_test_split(tiny: tuple[Project, MltConfig, Any],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from mltrainer.engine import Trainer
    from mltrainer.phases.optimize.checks import trials_val_only
    from mltrainer.state import now

    project, cfg, bundle = tiny
    started = now()
    study, storage = _study(project, cfg, 1)

    def peeking_fit(self: Trainer, resume: Any = None) -> Any:
        return self.bundle.test(phase="optimize")

    monkeypatch.setattr(Trainer, "fit", peeking_fit)
    with pytest.raises(TestSplitLockedError):
        run_trials(study, _runner(project, cfg, bundle, storage=storage), 1)
    assert study.get_trials()[0].state.name == "FAIL"  # never left RUNNING
    from mltrainer.phases.optimize import OptimizeOutcome

    outcome = OptimizeOutcome.model_construct(started_at=started,
                                              data={"splits_used": ["train", "val"]})
    result = trials_val_only(GateContext("optimize", cfg, outcome, ProjectState(), project), {})
    assert not result.passed and result.evidence["test_split_requests"] == 1


def test_seeds_comparison_reuses_runs_it_already_trained(
        tiny: tuple[Project, MltConfig, Any]) -> None:
    from mltrainer.phases.optimize.compare import compare_seeds

    project, cfg, bundle = tiny
    better = trial_config(cfg.model_dump(mode="json"), {"training.lr": 3e-3}, "t")
    first = compare_seeds(project, bundle, {"optimized": better, "baseline": cfg}, [43, 44])
    assert first["seeds"] == [43, 44] and first["optimized"]["n"] == first["baseline"]["n"] == 2
    assert first["improvement"]["orientation"] == "optimized − baseline"
    n_runs = len(list(project.runs_dir.iterdir()))
    again = compare_seeds(project, bundle, {"optimized": better, "baseline": cfg}, [43, 44],
                          trained=first["trained"])
    assert len(list(project.runs_dir.iterdir())) == n_runs == 4  # nothing trained twice
    assert again["runs"] == first["runs"] and again["improvement"] == first["improvement"]
    kept = {p.name for run in project.runs_dir.iterdir() for p in (run / "checkpoints").iterdir()}
    assert kept == {"best.pt", "last.pt"}  # seed runs keep no epoch files, like the trials


WORKER = textwrap.dedent("""
    import json, os, sys, time
    from pathlib import Path
    from mltrainer.config import load_config
    from mltrainer.data import prepare_data
    from mltrainer.phases.optimize.search import TrialRunner, run_trials
    from mltrainer.phases.optimize.space import build_space
    from mltrainer.phases.optimize.study import (make_pruner, make_sampler, open_storage,
                                            open_study, sampler_seed)
    from mltrainer.project import Project

    project, target, barrier = Project(Path(sys.argv[1])), int(sys.argv[2]), Path(sys.argv[3])
    cfg = load_config(project.config_path)
    bundle = prepare_data(cfg, project.root)
    space = build_space(cfg, [], {})
    storage, _ = open_storage(None, project)
    sampler, _ = make_sampler(target, sampler_seed(cfg, 1, 0, shared=True))
    pruner, _ = make_pruner(target, cfg.training.epochs)
    study = open_study(storage, "shared", True, sampler, pruner)
    (barrier / str(os.getpid())).touch()  # start together, so both take part
    while len(list(barrier.iterdir())) < 2:
        time.sleep(0.01)
    runner = TrialRunner(project, bundle, cfg.model_dump(mode="json"), space, cfg.goal.metric,
                         storage)
    summary = run_trials(study, runner, target)
    print(json.dumps({"pid": os.getpid(), "ran": summary["ran"]}))
""")


@pytest.mark.slow
def test_two_workers_share_one_journal_study(tiny: tuple[Project, MltConfig, Any],
                                             tmp_path: Path) -> None:
    project, cfg, _ = tiny
    target, barrier = 8, tmp_path / "barrier"
    barrier.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(project.root), str(target),
                               str(barrier)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for _ in range(2)]
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
    reports = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    study, _ = _study(project, cfg, target, name="shared")
    trials = study.get_trials()
    # between them exactly the target, or one more when both asked at the same instant
    assert target <= _finished(study) <= target + 1
    assert all(r["ran"] for r in reports), reports  # both workers took part
    assert sorted(n for r in reports for n in r["ran"]) == [t.number for t in trials]
    assert {t.user_attrs["mlt.worker"]["pid"] for t in trials} == {r["pid"] for r in reports}


# -- small pure pieces -------------------------------------------------------------------------


class _FakeTrial:
    def __init__(self, number: int, prune_at: int | None) -> None:
        self.number, self.prune_at, self.reported = number, prune_at, []

    def report(self, value: float, step: int) -> None:
        self.reported.append((step, value))

    def should_prune(self) -> bool:
        return bool(self.reported) and self.reported[-1][0] == self.prune_at


@pytest.mark.parametrize(("epochs", "prune_at", "stop"), [
    ([(0.5, 0.6, 0.7), (0.4, 0.5, 0.8)], None, [None, None]),
    ([(0.5, 0.6, 0.7), (0.4, 0.5, 0.8)], 2, [None, "pruned"]),
    ([(0.5, 0.6, 0.7), (math.nan, 0.5, 0.8)], None, [None, "non_finite_loss"]),
    ([(0.5, 0.6, math.nan), (0.4, 0.5, 0.8)], None, [None, None]),  # NaN metric: not reported
])
def test_pruning_subscriber_stops_with_its_reason(
        epochs: list[tuple[float, float, float]], prune_at: int | None, stop: list[str | None]
        ) -> None:
    sub = PruningSubscriber(_FakeTrial(0, prune_at), "accuracy")  # type: ignore[arg-type]
    got = [sub.on_event({"type": "epoch", "epoch": i + 1, "train_loss": tl, "val_loss": vl,
                         "val": {"accuracy": acc}}) for i, (tl, vl, acc) in enumerate(epochs)]
    assert got == stop
    assert sub.on_event({"type": "step", "loss": math.nan}) is None


@pytest.mark.parametrize(("opt", "base", "gib", "significant"), [
    ([0.95, 0.96, 0.97], [0.50, 0.52, 0.51], True, True),
    ([0.10, 0.11, 0.12], [0.30, 0.31, 0.29], False, True),  # rmse: lower is better
    ([0.30, 0.31, 0.29], [0.10, 0.11, 0.12], False, False),
    ([0.90, 0.60, 0.75], [0.70, 0.80, 0.75], True, False),
])
def test_improvement_is_oriented_so_positive_is_better(opt: list[float], base: list[float],
                                                       gib: bool, significant: bool) -> None:
    out = summarize({"optimized": opt, "baseline": base}, gib)
    mean_gain = (sum(opt) - sum(base)) / 3 * (1 if gib else -1)
    assert out["improvement"]["diff"] == pytest.approx(mean_gain)
    assert out["significant"] is significant
    assert out["optimized"]["n"] == 3 and len(out["optimized"]["ci"]) == 2


def test_redact_and_study_name() -> None:
    url = "postgresql://ana:s3cret@db.example:5432/optuna"
    assert "s3cret" not in redact(url) and redact(url).startswith("postgresql://ana:***@db")
    assert redact("sqlite:///x.db") == "sqlite:///x.db"
    cfg = base_cfg()
    same = base_cfg(optimize={"trials": 50})  # the optimize section does not split studies
    other = base_cfg(training={"lr": 0.01})
    assert study_name(cfg, 1) == study_name(same, 1) != study_name(cfg, 2)
    assert study_name(other, 1) != study_name(cfg, 1)
    data = {"data": {"train": "a", "val": "b", "test": "c"}, "code": "x"}
    assert study_name(cfg, 1, data) != study_name(cfg, 1, {**data, "code": "y"})


@pytest.mark.slow
def test_trials_on_changed_data_are_not_counted_again(tmp_path: Path) -> None:
    """The data changed (and plan, baseline, diagnose ran again on it): optimize searches
    afresh on it, instead of counting the old data's trials and comparison runs as its own."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(240, 4))
    frame = {f"x{i}": x[:, i].round(4) for i in range(4)}
    frame["y"] = np.where(x[:, 0] + x[:, 1] > 0, "yes", "no")
    root = tmp_path / "proj"
    root.mkdir()
    import pandas as pd

    pd.DataFrame(frame).to_csv(root / "data.csv", index=False)
    (root / "mlt.yaml").write_text(yaml.safe_dump({
        "name": "changing", "task": "classification", "seed": 1,
        "data": {"source": "data.csv", "target": "y"}, "model": {"hidden": [8]},
        "training": {"epochs": 2, "grad_stats_every": 0},
        "goal": {"metric": "accuracy", "target": 0.999},
        "optimize": {"trials": 2, "seeds": 2}}))

    def optimize() -> dict[str, Any]:
        for cmd in ("plan", "train-baseline", "diagnose"):
            code, result, err = mlt(cmd, "-C", str(root))
            assert code in (0, 3) and result and "gate" in result, (cmd, err)
        code, result, err = mlt("optimize", "-C", str(root))
        assert code in (0, 3) and "gate" in result, err
        return _state(root)["phases"]["optimize"]["outcome"]

    first = optimize()
    frame["y"] = rng.permutation(frame["y"])  # new labels: every earlier score is moot
    pd.DataFrame(frame).to_csv(root / "data.csv", index=False)
    second = optimize()
    assert second["study"] != first["study"]
    def runs(outcome: dict[str, Any]) -> set[str]:
        seeds = {r for side in outcome["comparison"]["runs"].values() for r in side}
        return {t["run_id"] for t in outcome["trials"] if t.get("run_id")} | seeds

    old_runs, new_runs = runs(first), runs(second)
    assert len(second["trials"]) == 2 and new_runs and not old_runs & new_runs


def test_optimized_yaml_round_trips_with_trace_comments() -> None:
    cfg = base_cfg()
    base_raw = cfg.model_dump(mode="json")
    space = build_space(cfg, [STALL, UNDERFIT], {})
    chosen = trial_config(base_raw, {"training.lr": 0.003, "model.hidden": [512, 256]}, "t")
    chosen_raw = chosen.model_dump(mode="json")
    changes = changes_between(base_raw, chosen_raw, space)
    assert [c["path"] for c in changes] == ["training.lr", "model.hidden"]
    text = render(chosen_raw, changes, ["header"])
    assert yaml.safe_load(text) == chosen_raw
    lr_line = next(line for line in text.splitlines() if line.strip().startswith("lr:"))
    assert "was 0.001" in lr_line and "convergence_stall" in lr_line
    assert "diagnostics/underfitting.md" in lr_line


# -- the phase through the CLI -----------------------------------------------------------------


def mlt(*args: str) -> tuple[int, dict[str, Any] | None, str]:
    res = CliRunner().invoke(cli, [*args, "--json"], catch_exceptions=False)
    out = res.stdout.strip()
    return res.exit_code, (json.loads(out) if out else None), res.stderr


@pytest.fixture(scope="module")
def diagnosed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """digits with a deliberately poor config (tiny model, low lr, few epochs): the baseline
    beats the trivial model but underfits; diagnose finds it."""
    root = tmp_path_factory.mktemp("optimize") / "proj"
    assert mlt("init", str(root), "--example", "digits")[0] == 0
    raw = yaml.safe_load((root / "mlt.yaml").read_text())
    raw["model"] = {"kind": "mlp", "hidden": [16], "dropout": 0.1}
    raw["training"].update({"epochs": 8, "lr": 2e-4, "grad_stats_every": 0})
    raw["optimize"] = {"trials": 4, "seeds": 2, "max_iterations": 1}
    (root / "mlt.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    for cmd in ("plan", "train-baseline", "diagnose"):
        code, result, err = mlt(cmd, "-C", str(root))
        assert code == 0, (cmd, err, result)
    return root


@pytest.fixture(scope="module")
def optimized(diagnosed: Path, tmp_path_factory: pytest.TempPathFactory
              ) -> tuple[Path, int, dict[str, Any], bytes]:
    root = tmp_path_factory.mktemp("optimized") / "proj"
    shutil.copytree(diagnosed, root)
    before = (root / "mlt.yaml").read_bytes()
    code, result, err = mlt("optimize", "-C", str(root))
    assert result is not None and "gate" in result, err
    return root, code, result, before


def _state(root: Path) -> dict[str, Any]:
    return json.loads((root / ".mlt" / "state.json").read_text())


@pytest.mark.slow
def test_optimize_end_to_end_gate_json_and_optimized_yaml(
        optimized: tuple[Path, int, dict[str, Any], bytes]) -> None:
    root, code, result, mlt_yaml_before = optimized
    assert code in (0, 3)
    assert result["phase"] == "optimize" and (code == 0) == result["gate"]["passed"]
    items = {i["id"]: i for i in result["gate"]["items"]}
    assert list(items) == ["search_space_traced", "requested_trials_done", "trials_val_only",
                           "seeds_compared", "improvement_or_decision"]
    assert all(i["kind"] == "auto" and isinstance(i["evidence"], dict) for i in items.values())
    for ok in ("search_space_traced", "requested_trials_done", "trials_val_only",
               "seeds_compared"):
        assert items[ok]["status"] == "pass", items[ok]
    assert items["search_space_traced"]["evidence"]["origin"] == "findings"
    assert "underfitting" in items["search_space_traced"]["evidence"]["params"]["training.lr"]
    assert set(result["run"]) >= {"id", "best_epoch", "val"} and "accuracy" in result["run"]["val"]
    assert (root / result["report"]).is_file() and result["next"] in ("mlt optimize",
                                                                      "mlt finalize")
    outcome = _state(root)["phases"]["optimize"]["outcome"]
    assert outcome["iteration"] == 1 and outcome["chosen"] == "optimized"
    assert len(outcome["trials"]) >= 4 and outcome["comparison"]["seeds"] == [43, 44]
    assert outcome["sampler"]["type"] == "TPESampler" and "n_startup_trials" in outcome["sampler"]
    assert (root / "mlt.yaml").read_bytes() == mlt_yaml_before  # never rewritten
    text = (root / "mlt.optimized.yaml").read_text()
    assert text.startswith("# mlt.optimized.yaml") and load_config(root / "mlt.optimized.yaml")
    assert outcome["changes"]
    for change in outcome["changes"]:
        key = change["path"].rsplit(".", 1)[1]
        line = next(ln for ln in text.splitlines() if ln.strip().startswith(f"{key}:"))
        assert "# was " in line and any(f in line for f in change["findings"]), line
    report = (root / result["report"]).read_text()
    for section in ("## Changes", "## Seeds comparison", "## Trial history"):
        assert section in report


@pytest.mark.slow
def test_interrupted_seeds_comparison_keeps_the_runs_it_finished(
        diagnosed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C (or a kill) during the seeds comparison loses none of its finished runs: the
    re-run continues the study and trains only the (config, seed) pairs still missing."""
    from mltrainer.engine import Trainer

    root = tmp_path / "proj"
    shutil.copytree(diagnosed, root)
    real_fit, fits, interrupted = Trainer.fit, [], []

    def ctrl_c_in_the_second_seeds_run(self: Trainer) -> Any:
        if self.kind == "seeds":
            fits.append(self.run_dir.name)
            if len(fits) == 2 and not interrupted:
                interrupted.append(True)
                raise KeyboardInterrupt  # what SIGINT/SIGTERM raise between two steps
        return real_fit(self)

    monkeypatch.setattr(Trainer, "fit", ctrl_c_in_the_second_seeds_run)
    code, result, _ = mlt("optimize", "-C", str(root))
    assert code == 130, result
    finished = fits[0]
    fits.clear()
    code, result, err = mlt("optimize", "-C", str(root))
    assert code in (0, 3) and "gate" in result, err
    runs = _state(root)["phases"]["optimize"]["outcome"]["comparison"]["runs"]
    assert runs["optimized"][0] == finished  # the run of the first pair, not trained again
    assert finished not in fits and len(fits) == 3
    assert f"run {finished}, kept" in err


@pytest.mark.slow
def test_an_edited_optimized_config_is_not_finalized(
        optimized: tuple[Path, int, dict[str, Any], bytes], tmp_path: Path) -> None:
    """mlt.optimized.yaml is what the seeds comparison validated: edited afterwards, optimize
    is stale and finalize refuses before it trains or opens the test split."""
    root = tmp_path / "proj"
    shutil.copytree(optimized[0], root)
    path = root / "mlt.optimized.yaml"
    path.write_text(path.read_text().replace("epochs: 8", "epochs: 1"))
    _, status, _ = mlt("status", "-C", str(root))
    views = {p["name"]: p for p in status["phases"]}
    assert views["optimize"]["status"] == "stale", views
    assert "mlt.optimized.yaml changed since it passed" in views["optimize"]["reason"]
    code, result, _ = mlt("finalize", "-C", str(root))
    assert code == 3 and "optimize is stale" in result["message"]
    assert not list((root / "runs").glob("*-final-*"))
    assert not (root / ".mlt" / "test_evaluations.json").exists()


@pytest.mark.slow
def test_iteration_cap_refuses_then_stop_decides(
        optimized: tuple[Path, int, dict[str, Any], bytes], tmp_path: Path) -> None:
    root = tmp_path / "proj"
    shutil.copytree(optimized[0], root)
    code, result, _ = mlt("optimize", "-C", str(root))  # max_iterations: 1
    assert code == 3 and result["error"] == "GateRefusedError"
    assert "max_iterations" in result["message"] and "--stop" in result["hint"]
    code, result, _ = mlt("optimize", "-C", str(root), "--stop")
    assert code == 0 and result["gate"]["passed"] and result["next"] == "mlt finalize"
    decision = next(i for i in result["gate"]["items"] if i["id"] == "improvement_or_decision")
    assert decision["evidence"]["decision"] == "stop"
    outcome = _state(root)["phases"]["optimize"]["outcome"]
    assert outcome["decision"] == "stop" and outcome["iteration"] == 1
    assert (root / "mlt.optimized.yaml").is_file()


def test_stop_before_any_search_and_bad_space_are_bad_input(diagnosed: Path, tmp_path: Path
                                                             ) -> None:
    root = tmp_path / "proj"
    shutil.copytree(diagnosed, root)
    state_before = (root / ".mlt" / "state.json").read_bytes()
    code, result, _ = mlt("optimize", "-C", str(root), "--stop")
    assert code == 2 and "nothing to decide" in result["message"]
    for worker in ([], ["--worker"]):  # an empty --storage is not "the default storage"
        code, result, _ = mlt("optimize", "-C", str(root), "--storage", "", *worker)
        assert code == 2 and result["message"] == "--storage is empty", result
    assert not (root / "runs").exists() or not list((root / "runs").glob("*-trial-*"))
    raw = yaml.safe_load((root / "mlt.yaml").read_text())
    raw["optimize"]["space"] = {"training.lrr": {"type": "float", "low": 1e-4, "high": 1e-2}}
    (root / "mlt.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    code, result, _ = mlt("optimize", "-C", str(root))
    assert code == 2 and "optimize.space.training.lrr" in result["message"]
    assert (root / ".mlt" / "state.json").read_bytes() == state_before
    assert not (root / "mlt.optimized.yaml").exists()


def test_importances_from_the_child_are_the_in_process_ones(tmp_path: Path) -> None:
    """fANOVA importances computed in a child (while the seeds comparison trains) are the
    numbers the phase computes in-process, pruned and failed trials beside the complete ones."""
    code = textwrap.dedent("""
        import json, sys
        import optuna
        import mltrainer.background as bg
        from mltrainer.phases.optimize.importances import BackgroundImportances

        bg.spare_core = lambda: True  # whatever the machine's load
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        study = optuna.create_study(direction="maximize",
                                    sampler=optuna.samplers.RandomSampler(seed=1))
        for i in range(9):
            t = study.ask({"lr": optuna.distributions.FloatDistribution(1e-4, 1, log=True),
                           "width": optuna.distributions.CategoricalDistribution([8, 16, 32])})
            state = [optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL][i % 2] \\
                if i % 4 == 3 else optuna.trial.TrialState.COMPLETE
            value = t.params["lr"] * t.params["width"] if state.name == "COMPLETE" else None
            study.tell(t, value, state=state)
        child = BackgroundImportances(study, 3)
        assert child._child is not None and "optuna.importance" not in sys.modules
        import mltrainer.phases.optimize.importances as here
        in_process, here.param_importances = here.param_importances, None  # the child's only
        got = child.result()
        print(json.dumps([got, in_process(study, 3)]))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    got, want = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got == want and set(want) == {"lr", "width"}
