"""Optuna workers on a real PostgreSQL server (scripts/postgres.sh): `mlt optimize --worker`
from two copies of one project sharing one study, a worker killed with -9, the leading
`mlt optimize` judging the gate, and the database password nowhere in what mlt writes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from click.testing import CliRunner
from optuna.trial import TrialState

from mltrainer.cli import cli
from mltrainer.phases.optimize.study import with_driver

pytestmark = pytest.mark.slow
TRIALS = 3
MLT = [sys.executable, "-c", "from mltrainer.cli import main; main()"]


def _mlt(*args: str) -> tuple[int, dict[str, Any] | None, str]:
    res = CliRunner().invoke(cli, [*args, "--json"], catch_exceptions=False)
    out = res.stdout.strip()
    return res.exit_code, (json.loads(out) if out else None), res.stderr


@pytest.fixture(scope="module")
def diagnosed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """digits, a tiny underfitting MLP trained briefly: diagnose has something to search."""
    root = tmp_path_factory.mktemp("pg") / "proj"
    assert _mlt("init", str(root), "--example", "digits")[0] == 0
    raw = yaml.safe_load((root / "mlt.yaml").read_text())
    raw["model"] = {"kind": "mlp", "hidden": [16], "dropout": 0.1}
    raw["training"].update({"epochs": 8, "lr": 2e-4, "grad_stats_every": 0})
    raw["optimize"] = {"trials": TRIALS, "seeds": 2, "max_iterations": 1}
    (root / "mlt.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    for cmd in ("plan", "train-baseline", "diagnose"):
        code, result, err = _mlt(cmd, "-C", str(root))
        assert code == 0, (cmd, err, result)
    return root


def _copies(diagnosed: Path, tmp_path: Path, n: int) -> list[Path]:
    """n checkouts of one project (as on n machines)."""
    out = []
    for i in range(n):
        shutil.copytree(diagnosed, tmp_path / f"checkout{i}")
        out.append(tmp_path / f"checkout{i}")
    return out


def _worker(root: Path, url: str, trials: int = TRIALS) -> subprocess.Popen[str]:
    return subprocess.Popen([*MLT, "optimize", "--worker", "-C", str(root), "--storage", url,
                             "--trials", str(trials), "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ})


def _study(url: str) -> optuna.Study:
    storage = optuna.storages.RDBStorage(with_driver(url))
    (summary,) = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=summary.study_name, storage=storage)


def _running_numbers(url: str) -> list[int]:
    """RUNNING trials, read with plain SQL (opening an RDBStorage here would race the worker
    to create Optuna's tables)."""
    import psycopg

    with psycopg.connect(url) as conn:
        if conn.execute("SELECT to_regclass('public.trials')").fetchone()[0] is None:
            return []
        rows = conn.execute(  # running, and its worker recorded (as it is before training)
            "SELECT t.number FROM trials t JOIN trial_user_attributes a USING (trial_id) "
            "WHERE t.state = 'RUNNING' AND a.key = 'mlt.worker'").fetchall()
    return [r[0] for r in rows]


def _finished(study: optuna.Study) -> list[int]:
    return [t.number for t in study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))]


def test_two_workers_from_two_checkouts_share_one_study(diagnosed: Path, tmp_path: Path,
                                                        postgres_url: Any) -> None:
    a, b = _copies(diagnosed, tmp_path, 2)
    state_before = [(p / ".mlt" / "state.json").read_bytes() for p in (a, b)]
    procs = [_worker(root, postgres_url.url) for root in (a, b)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
    results = [json.loads(out) for out, _ in outs]
    study = _study(postgres_url.url)
    assert len(_finished(study)) == TRIALS  # exactly the trials asked for, between them
    ran = sorted(n for r in results for n in r["ran_here"])
    assert set(_finished(study)) <= set(ran)
    assert all(r["worker"] and r["storage"]["kind"] == "rdb" for r in results)
    # workers run trials only: no gate, no state change, no report
    assert [(p / ".mlt" / "state.json").read_bytes() for p in (a, b)] == state_before
    assert not (a / "reports" / "optimize.md").exists()
    # trials keep best.pt and last.pt only (training.keep_checkpoints unset)
    trial_ckpts = {c.name for c in a.glob("runs/*-trial-*/checkpoints/*.pt")}
    assert trial_ckpts and trial_ckpts <= {"best.pt", "last.pt"}

    # the leading command finds the study full, compares over seeds and judges the gate
    code, result, err = _mlt("optimize", "-C", str(a), "--storage", postgres_url.url)
    assert result is not None and "gate" in result, err
    assert result is not None and code in (0, 3)
    state = json.loads((a / ".mlt" / "state.json").read_text())
    outcome = state["phases"]["optimize"]["outcome"]
    assert outcome["study"]["ran_here"] == 0
    assert outcome["study"]["counts"]["complete"] + outcome["study"]["counts"]["pruned"] == TRIALS

    # the password is nowhere: not in outputs, reports, state, audit log or run folders
    written = [out + err for out, err in outs] + [json.dumps(result), err]
    for root in (a, b):
        written += [p.read_text(errors="replace") for p in root.rglob("*")
                    if p.is_file() and p.suffix in (".json", ".jsonl", ".md", ".html", ".yaml",
                                                     ".log")]
    assert postgres_url.url in postgres_url.url  # (the URL does hold it)
    assert not [w for w in written if postgres_url.password in w]
    assert any("***" in w for w in written)


def test_a_worker_killed_with_9_leaves_a_trial_the_others_recover(
        diagnosed: Path, tmp_path: Path, postgres_url: Any) -> None:
    a, b = _copies(diagnosed, tmp_path, 2)
    doomed = _worker(a, postgres_url.url, trials=2)
    deadline = time.monotonic() + 300
    running: list[int] = []
    while not running and time.monotonic() < deadline and doomed.poll() is None:
        time.sleep(0.1)
        running = _running_numbers(postgres_url.url)
    assert running, doomed.communicate()[1][-2000:]
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.wait()

    survivor = _worker(b, postgres_url.url, trials=2)
    out, err = survivor.communicate(timeout=600)
    assert survivor.returncode == 0, err[-2000:]
    result = json.loads(out)
    study = _study(postgres_url.url)
    states = {t.number: t.state for t in study.get_trials()}
    assert states[running[0]] == TrialState.FAIL  # the dead worker's trial, recovered
    assert running[0] in result["recovered_dead_trials"]
    assert len(_finished(study)) == 2  # and the study still gets what was asked
