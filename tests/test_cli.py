"""The CLI end to end: init, status, plan, refusals, staleness, bad input, waivers, sign-offs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from mltrainer.cli import cli


def mlt(*args: str, cwd: Path | None = None) -> tuple[int, dict | None, str]:
    """Run the CLI in-process with --json; return (exit code, parsed stdout, stderr)."""
    runner = CliRunner()
    res = runner.invoke(cli, [*args, "--json"], catch_exceptions=False)
    out = res.stdout.strip()
    return res.exit_code, (json.loads(out) if out else None), res.stderr


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A digits project after a passed `mlt plan` (copied by tests that change it)."""
    root = tmp_path_factory.mktemp("planned") / "proj"
    assert mlt("init", str(root), "--example", "digits")[0] == 0
    code, result, err = mlt("plan", "-C", str(root))
    assert code == 0, err
    return root


@pytest.fixture
def project(planned: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "proj"
    shutil.copytree(planned, dest)
    return dest


def files_snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes()
            for p in sorted((root / ".mlt").rglob("*")) if p.is_file() and p.name != "lock"}


def test_init_then_status_shows_plan_ready(tmp_path: Path) -> None:
    code, result, _ = mlt("init", str(tmp_path / "p"))
    assert code == 0 and Path(result["config"]).is_file()
    code, status, _ = mlt("status", "-C", str(tmp_path / "p"))
    assert code == 0
    assert [p["status"] for p in status["phases"]] == ["ready", "locked", "locked", "locked",
                                                       "locked"]
    assert status["next"] == "mlt plan" and status["current"] == "plan"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["init", "{d}", "--example", "nope"], "no example named 'nope'"),
        (["plan", "-C", "{d}/missing"], "no such config file"),
        (["waive", "plan", "seeds_fixed", "--reason", "short", "-C", "{d}/p"], "too short"),
        (["signoff", "plan", "seeds_fixed", "--by", "ana", "-C", "{d}/p"],
         "checked automatically"),
        (["waive", "plan", "no_such_item", "--reason", "a long enough reason", "-C", "{d}/p"],
         "has no item"),
        (["explain", "nothing"], "nothing to explain"),
    ],
)
def test_bad_input_exits_2_with_one_clear_line(tmp_path: Path, args: list[str], fragment: str
                                               ) -> None:
    mlt("init", str(tmp_path / "p"))
    before = files_snapshot(tmp_path / "p")
    code, result, err = mlt(*[a.replace("{d}", str(tmp_path)) for a in args])
    assert code == 2, err
    assert fragment in result["message"]
    assert "Traceback" not in err
    assert files_snapshot(tmp_path / "p") == before


def test_phase_out_of_order_exits_3_naming_the_fix(tmp_path: Path) -> None:
    mlt("init", str(tmp_path / "p"))
    code, result, err = mlt("train-baseline", "-C", str(tmp_path / "p"))
    assert code == 3
    assert "plan has not passed: run `mlt plan`" in result["message"]
    assert result["hint"] == "run `mlt plan`"


def test_plan_end_to_end_on_digits(planned: Path) -> None:
    state = json.loads((planned / ".mlt" / "state.json").read_text())
    plan = state["phases"]["plan"]
    assert plan["status"] == "passed"
    items = {i["id"]: i for i in plan["gate"]["items"]}
    assert all(i["status"] == "pass" for i in items.values()), items
    assert items["determinism_verified"]["evidence"]["identical"] is True
    assert items["no_duplicate_rows_across_splits"]["evidence"]["across_splits"] == 0
    sizes = items["split_recorded"]["evidence"]["sizes"]
    assert sum(sizes.values()) == 1797
    assert 0.05 < items["trivial_baseline"]["evidence"]["accuracy"] < 0.2  # majority of 10 classes
    report = (planned / "reports" / "plan.md").read_text()
    assert report.startswith("# Plan gate — PASSED")
    assert "Next: `mlt train-baseline`" in report
    audit = [json.loads(x) for x in (planned / ".mlt" / "audit.jsonl").read_text().splitlines()]
    events = [a["event"] for a in audit]
    assert "test_split_denied" in events and events[-1] == "gate"
    assert (planned / ".mlt" / "env.json").is_file()


def test_status_json_after_plan(planned: Path) -> None:
    code, status, _ = mlt("status", "-C", str(planned))
    assert code == 0
    assert status["phases"][0] == {"name": "plan", "status": "passed", "reason": "gate passed"}
    assert status["next"] == "mlt train-baseline"


def test_config_change_makes_plan_stale_and_baseline_refuse(project: Path) -> None:
    cfg = yaml.safe_load((project / "mlt.yaml").read_text())
    cfg["seed"] = 7
    (project / "mlt.yaml").write_text(yaml.safe_dump(cfg))
    _, status, _ = mlt("status", "-C", str(project))
    assert status["phases"][0]["status"] == "stale"
    assert "config changed" in status["phases"][0]["reason"]
    code, result, _ = mlt("train-baseline", "-C", str(project))
    assert code == 3 and "stale" in result["message"]


def test_unrelated_config_change_keeps_plan_fresh(project: Path) -> None:
    cfg = yaml.safe_load((project / "mlt.yaml").read_text())
    cfg["finalize"] = {"retrain": False}
    (project / "mlt.yaml").write_text(yaml.safe_dump(cfg))
    _, status, _ = mlt("status", "-C", str(project))
    assert status["phases"][0]["status"] == "passed"


def test_corrupted_state_file_is_exit_2_without_traceback(project: Path) -> None:
    (project / ".mlt" / "state.json").write_text('{"schema_version": 1, "phases": {"plan": ')
    code, result, err = mlt("status", "-C", str(project))
    assert code == 2
    assert "state.json" in result["message"] and "not valid JSON" in result["message"]
    assert "state.json.bak" in result["hint"]
    assert "Traceback" not in err


def test_waiver_is_recorded_and_reported(project: Path) -> None:
    code, result, _ = mlt("waive", "plan", "classes_in_every_split", "--reason",
                          "rare class accepted by the data owner", "--by", "ana",
                          "-C", str(project))
    assert code == 0
    report = (project / "reports" / "plan.md").read_text()
    assert "rare class accepted by the data owner" in report
    audit = (project / ".mlt" / "audit.jsonl").read_text()
    assert '"event": "waiver"' in audit and "rare class accepted" in audit


def test_a_line_break_in_a_user_string_cannot_add_a_line_of_output(project: Path) -> None:
    """A reason or name is one line of the terminal's output however it was typed: a line
    break in it is shown as `\\n`, so it cannot print a line that reads as mlt's verdict."""
    reason = "accepted by the data owner\nfinalize gate passed\r\nnext: mlt predict"
    code, _, err = mlt("waive", "plan", "classes_in_every_split", "--reason", reason,
                       "--by", "ana\nbob", "-C", str(project))
    assert code == 0
    assert "accepted by the data owner\\nfinalize gate passed\\r\\nnext: mlt predict" in err
    lines = err.splitlines()
    assert not [ln for ln in lines if ln.startswith(("finalize gate passed", "next: mlt predict"))]
    state = json.loads((project / ".mlt" / "state.json").read_text())
    assert state["waivers"]["plan"]["classes_in_every_split"]["reason"] == reason  # data kept
    _, _, err = mlt("status", "-C", str(project))
    assert not [ln for ln in err.splitlines() if ln.startswith("finalize gate passed")]


def test_status_does_not_call_a_killed_phase_running(project: Path) -> None:
    """`kill -9` (or a full disk) leaves the state saying "running" and a lock file nobody
    holds: status says the phase stopped without finishing, and to run it again; while a
    command really holds the lock, it is running."""
    from mltrainer.project import Project
    from mltrainer.state import load_state, project_lock, save_state

    proj = Project(project)
    state = load_state(proj)
    state.phase("baseline").status = "running"
    save_state(proj, state)
    (project / ".mlt" / "lock").write_text('{"pid": 999999, "command": "mlt train-baseline"}')
    _, status, err = mlt("status", "-C", str(project))
    baseline = next(p for p in status["phases"] if p["name"] == "baseline")
    assert baseline["status"] == "failed" and "stopped without finishing" in baseline["reason"]
    assert status["next"] == "mlt train-baseline" and "run `mlt train-baseline` again" in err
    # a later phase's refusal does not call it running either
    diagnose = next(p for p in status["phases"] if p["name"] == "diagnose")
    assert "stopped without finishing" in diagnose["reason"] and "is running" not in (
        diagnose["reason"])
    # another process (another mlt command) holds the lock: the phase is running
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom pathlib import Path\n"
         "from mltrainer.project import Project\n"
         "from mltrainer.state import project_lock\n"
         "with project_lock(Project(Path(sys.argv[1])), 'mlt train-baseline'):\n"
         "    print('held', flush=True)\n    time.sleep(60)\n", str(project)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        _, status, _ = mlt("status", "-C", str(project))
        assert next(p for p in status["phases"] if p["name"] == "baseline")["status"] == (
            "running")
        # this process holding the lock is no other command: what it records as running
        # while it runs is its own phase, and it records how that phase ends itself
    finally:
        holder.kill()
        holder.wait()
    with project_lock(proj, "mlt report"):
        _, status, _ = mlt("status", "-C", str(project))
    assert next(p for p in status["phases"] if p["name"] == "baseline")["status"] == "failed"


def test_reports_do_not_call_a_killed_phase_running(project: Path) -> None:
    """The index and the gate reports rendered after a phase was killed (by `mlt report`,
    or by the next phase command, which holds the lock itself) show it as stopped without
    finishing, as `mlt status` does, not as running."""
    from mltrainer.project import Project
    from mltrainer.state import load_state, save_state

    proj = Project(project)
    state = load_state(proj)
    state.phase("baseline").status = "running"
    save_state(proj, state)
    code, _, err = mlt("report", "-C", str(project))
    assert code == 0, err
    index = (project / "reports" / "index.html").read_text()
    plan = (project / "reports" / "plan.md").read_text()
    for page in (index, plan):
        assert "stopped without finishing" in page
    assert "running (or stopped without finishing)" not in index
    code, _, err = mlt("plan", "-C", str(project))  # holds the lock while it renders
    assert code == 0, err
    assert "stopped without finishing: no mlt command" in (
        project / "reports" / "index.html").read_text()


def test_bad_csv_leaves_state_exactly_as_it_was(project: Path) -> None:
    (project / "data.csv").write_text("a,b,label\n1,2\n3,4,5,6\n")
    cfg = yaml.safe_load((project / "mlt.yaml").read_text())
    cfg["data"]["source"] = "data.csv"
    (project / "mlt.yaml").write_text(yaml.safe_dump(cfg))
    before = files_snapshot(project)
    code, result, err = mlt("plan", "-C", str(project))
    assert code == 2, err
    assert "data.csv" in result["message"]
    assert files_snapshot(project) == before


def test_an_unmet_item_shows_why_and_the_fix_on_the_terminal_and_in_the_report(
        project: Path) -> None:
    # a class with one row cannot reach every split: the reader must see which class and
    # where it is missing (nested evidence), and the checklist's fix, not only "fail"
    rows = ["a,b,label"] + [f"{i},{(i * 7) % 13},{'yes' if i % 2 else 'no'}" for i in range(120)]
    rows.append("999,999,rare")
    (project / "data.csv").write_text("\n".join(rows) + "\n")
    cfg = yaml.safe_load((project / "mlt.yaml").read_text())
    cfg["data"]["source"] = "data.csv"
    cfg["data"]["target"] = "label"
    cfg["model"] = {"kind": "mlp", "hidden": [8]}
    (project / "mlt.yaml").write_text(yaml.safe_dump(cfg))
    res = CliRunner().invoke(cli, ["plan", "-C", str(project)], catch_exceptions=False)
    assert res.exit_code == 3, res.stderr
    line = next(x for x in res.stderr.splitlines() if "classes_in_every_split" in x)
    assert "fail" in line and '"rare"' in line and "missing=" in line
    fix = res.stderr.splitlines()[res.stderr.splitlines().index(line) + 1]
    assert fix.strip().startswith("fix:") and "add rows" in fix
    report = (project / "reports" / "plan.md").read_text()
    assert "add rows of it" in report.split("## Checklist")[0]  # under "To unblock"
    # a passing item carries no fix
    code, result, _ = mlt("plan", "-C", str(project))
    items = {i["id"]: i for i in result["gate"]["items"]}
    assert "fix" in items["classes_in_every_split"] and "fix" not in items["goal_set"]


def test_report_rerenders_existing_reports(project: Path) -> None:
    (project / "reports" / "plan.md").unlink()
    code, result, _ = mlt("report", "-C", str(project))
    assert code == 0 and result["reports"] == ["reports/plan.md"]
    assert (project / "reports" / "plan.md").is_file()


_NO_TORCH = """
import sys
from mltrainer.cli import cli
try:
    cli(sys.argv[1:], prog_name="mlt")
except SystemExit:
    pass
print("TORCH_IMPORTED" if "torch" in sys.modules else "NO_TORCH", file=sys.stderr)
"""


@pytest.mark.parametrize("args", [["--help"], ["status"], ["status", "--json"]])
def test_status_and_help_do_not_import_torch(planned: Path, args: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-c", _NO_TORCH, *args, "-C", str(planned)]
                          if args[0] == "status" else [sys.executable, "-c", _NO_TORCH, *args],
                          capture_output=True, text=True, timeout=60)
    assert "NO_TORCH" in proc.stderr, proc.stderr


SWALLOWED_SIGTERM = '''import signal
import weakref

from sklearn.datasets import load_digits


def load():
    """A SIGTERM whose KeyboardInterrupt Python drops: it lands inside a weakref callback (as
    one can inside importlib's module locks), where an exception is printed and ignored."""
    class Box:
        pass

    box = Box()
    ref = weakref.ref(box, lambda _: signal.raise_signal(signal.SIGTERM))
    del box
    assert ref() is None
    return load_digits(return_X_y=True)
'''


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_sigterm_python_drops_still_fails_the_phase_with_exit_130(tmp_path: Path) -> None:
    """The phase a scheduler asked to stop is recorded failed, never passed, even when the
    KeyboardInterrupt its SIGTERM raised was lost inside a weakref callback."""
    root = tmp_path / "proj"
    assert mlt("init", str(root), "--example", "digits")[0] == 0
    (root / "sigdata.py").write_text(SWALLOWED_SIGTERM)
    cfg = yaml.safe_load((root / "mlt.yaml").read_text())
    cfg["data"]["source"] = "python:sigdata:load"
    cfg["model"] = {"kind": "mlp", "hidden": [32]}
    (root / "mlt.yaml").write_text(yaml.safe_dump(cfg))
    code, result, err = mlt("plan", "-C", str(root))
    assert code == 130, err
    assert result["error"] == "interrupted"
    # the fix names the command that was stopped; --resume is train-baseline's, not plan's
    assert result["hint"] == "run `mlt plan` again", result
    plan = json.loads((root / ".mlt" / "state.json").read_text())["phases"]["plan"]
    assert plan["status"] == "failed" and "interrupted" in plan["error"]


@pytest.mark.parametrize(("stream", "unfinished"), [
    ('{"type": "epoch", "epoch": 1}\n', True),  # killed: no end event
    ('{"type": "epoch", "epoch": 1}\n{"type": "ep', True),  # its last line cut short
    ('{"type": "end", "reason": "interrupted"}\n', True),  # Ctrl-C, SIGTERM
    ('{"type": "end", "reason": "error:RuntimeError"}\n', True),
    ('{"type": "end", "reason": "completed"}\n', False),
    ('{"type": "end", "reason": "early_stopping"}\n', False),
    (None, False),  # no checkpoint: nothing to continue
])
def test_a_fresh_baseline_says_when_the_last_one_stopped_without_finishing(
        tmp_path: Path, stream: str | None, unfinished: bool) -> None:
    """A plain `mlt train-baseline` after a kill starts a new run: the stopped one's epochs are
    kept, and the command says so and names --resume (it started afresh without a word)."""
    root = tmp_path / "p"
    assert mlt("init", str(root), "--example", "digits")[0] == 0
    cfg = yaml.safe_load((root / "mlt.yaml").read_text())
    cfg["training"]["epochs"] = 1
    (root / "mlt.yaml").write_text(yaml.safe_dump(cfg))
    assert mlt("plan", "-C", str(root))[0] == 0
    stopped = root / "runs" / "20200101-000000-baseline-0000"
    (stopped / "checkpoints").mkdir(parents=True)
    (stopped / "metrics.jsonl").write_text(stream or '{"type": "epoch", "epoch": 1}\n')
    if stream is not None:
        (stopped / "checkpoints" / "epoch-001.pt").write_bytes(b"x")
    code, result, err = mlt("train-baseline", "-C", str(root))
    assert code in (0, 3), err
    note = ("note: runs/20200101-000000-baseline-0000 stopped without finishing (its "
            "checkpoints are kept); this starts a new run instead of continuing it "
            "(`mlt train-baseline --resume` continues a stopped run)")
    assert (note in " ".join(err.split())) == unfinished, err
    assert result["run"]["id"] != stopped.name


@pytest.mark.parametrize(("space", "fragment"), [
    ({"training.lr": {"type": "float", "low": 1, "high": 0.1}}, "needs numbers low < high"),
    ({"training.lrr": {"type": "float", "low": 0.001, "high": 0.1}}, "did you mean 'training.lr'"),
    ({"training.batch_size": {"type": "int", "low": 0, "high": 64}}, "low 0 is not a valid value"),
    ({"seed": {"type": "int", "low": 0, "high": 3}}, "fields can be searched"),
])
def test_config_validate_judges_the_search_space_too(tmp_path: Path, space: dict,
                                                     fragment: str) -> None:
    """A bad `optimize.space` range was accepted by `mlt config validate` (and by plan, and
    trained a baseline) and refused only when `mlt optimize` started."""
    root = tmp_path / "p"
    assert mlt("init", str(root), "--example", "digits")[0] == 0
    raw = yaml.safe_load((root / "mlt.yaml").read_text())
    raw.setdefault("optimize", {})["space"] = space
    (root / "mlt.yaml").write_text(yaml.safe_dump(raw))
    before = files_snapshot(root)
    for command in (["config", "validate"], ["plan"]):
        code, result, err = mlt(*command, "-C", str(root))
        assert code == 2 and f"field 'optimize.space.{next(iter(space))}'" in result["message"]
        assert fragment in result["message"] and "Traceback" not in err
    assert files_snapshot(root) == before


def test_init_where_no_folder_can_be_made_is_bad_input(tmp_path: Path) -> None:
    """A project path under a file was an "unexpected failure" (NotADirectoryError, exit 1)."""
    (tmp_path / "afile").write_text("x")
    code, result, err = mlt("init", str(tmp_path / "afile" / "p"), "--example", "digits")
    assert code == 2 and result["message"] == (
        f"cannot create the project folder {tmp_path / 'afile' / 'p'}: Not a directory")
    assert "Traceback" not in err and sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def _python_data_project(root: Path, loader: str) -> None:
    """A project at `root` whose data is `python:loader:load` (its code `loader`): iris rows
    with a `target` column, a small MLP."""
    (root / ".mlt").mkdir(parents=True)
    (root / "loader.py").write_text(loader)
    (root / "mlt.yaml").write_text(yaml.safe_dump({
        "name": "loader", "task": "classification", "seed": 0,
        "data": {"source": "python:loader:load", "target": "target"},
        "model": {"kind": "mlp", "hidden": [8]}, "training": {"epochs": 2},
        "goal": {"metric": "accuracy", "target": 0.6}}))


def test_json_stdout_is_one_object_when_the_projects_code_prints(tmp_path: Path) -> None:
    """Under --json stdout carries the command's one object even when the project's own code
    prints (a data function here, as a Dataset, a model factory or a loader worker would):
    those lines go to stderr, in mlt's process and in the children it forks."""
    _python_data_project(tmp_path, "from sklearn.datasets import load_iris\n"
                                   "def load():\n"
                                   "    print('loading iris...', flush=True)\n"
                                   "    X, y = load_iris(return_X_y=True, as_frame=True)\n"
                                   "    X['target'] = y\n"
                                   "    print('rows:', len(X))\n"
                                   "    return X\n")
    for args in (["config", "validate"], ["plan"]):
        res = subprocess.run([sys.executable, "-c", "import sys; from mltrainer.cli import main; "
                              "sys.exit(main())", *args, "--json"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=600)
        assert res.stdout.count("\n") == 1, res.stdout  # one line: the object
        assert isinstance(json.loads(res.stdout), dict)
    assert res.returncode == 0, res.stderr
    assert "loading iris..." in res.stderr and "rows: 150" in res.stderr


def test_the_projects_code_opens_its_relative_paths_in_the_project_under_dash_c(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`mlt -C proj plan` from elsewhere (what AGENT.md has assistants run): a data function
    that reads 'rows.csv' finds it in the project, as `mlt plan` run inside it does (it failed
    with FileNotFoundError); paths on the command line stay relative to where mlt was called,
    and the caller's directory is its own again afterwards."""
    from sklearn.datasets import load_iris

    root = tmp_path / "proj"
    _python_data_project(root, "import pandas as pd\n"
                               "def load():\n    return pd.read_csv('rows.csv')\n")
    rows, target = load_iris(return_X_y=True, as_frame=True)
    rows.assign(target=target).to_csv(root / "rows.csv", index=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, result, err = mlt("-C", str(root), "plan")
    assert code == 0, err
    assert Path.cwd() == elsewhere
    shutil.copy(root / "mlt.yaml", elsewhere / "copy.yaml")  # a path relative to the caller
    code, result, err = mlt("-C", str(root), "config", "validate", "copy.yaml")
    assert code == 0 and result["path"] == str(elsewhere / "copy.yaml"), err


@pytest.mark.parametrize(("args", "says"), [
    (["--reason", "a new config"], "--reason is only used with --reevaluate-test"),
    (["--reevaluate-test"], "--reevaluate-test needs --reason"),
])
def test_finalize_options_that_do_not_go_together_are_bad_input_before_state(
        project: Path, args: list[str], says: str) -> None:
    """On a project whose finalize the state refuses (exit 3, the baseline has not run),
    options that cannot work together are named first: exit 2, the state untouched."""
    before = {p: p.read_bytes() for p in (project / ".mlt").rglob("*") if p.is_file()}
    code, result, err = mlt("finalize", "-C", str(project), *args)
    assert code == 2 and result is not None and says in result["message"], err
    assert {p: p.read_bytes() for p in (project / ".mlt").rglob("*") if p.is_file()} == before
