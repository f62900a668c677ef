from __future__ import annotations

import os

# Tests run on 2 shared cores: keep torch from oversubscribing them.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# No test may reach a hub: trackio (through huggingface_hub) would otherwise ask who is logged in.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest


@pytest.fixture(scope="session")
def hot_digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """digits through plan → train-baseline → diagnose, trained hot (a wide MLP, lr 0.02, no
    schedule) so that early stopping fires and the detectors have something to say. Tests that
    change it work on a copy (`copy_project`)."""
    import yaml
    from click.testing import CliRunner

    from mltrainer.cli import cli

    def mlt(*args: str) -> None:
        res = CliRunner().invoke(cli, [*args, "--json"], catch_exceptions=False)
        assert res.exit_code == 0, res.output

    root = tmp_path_factory.mktemp("hot_digits") / "proj"
    mlt("init", str(root), "--example", "digits")
    cfg = yaml.safe_load((root / "mlt.yaml").read_text())
    cfg["training"].update(epochs=12, lr=0.02, scheduler="none", weight_decay=0.0)
    cfg["model"] = {"kind": "mlp", "hidden": [512, 512], "dropout": 0.0}
    cfg["data"]["split"]["val"] = 0.5
    (root / "mlt.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    for command in ("plan", "train-baseline", "diagnose"):
        mlt(command, "-C", str(root))
    return root




# ------------------------------------------------------------------ gate checks as tables
# Outcomes a real mlt run recorded (tests/data/state_v1_typical.json), typed, to build the
# evidence that check tables feed their checks with.
def recorded_outcome(phase: str, **changes: object) -> object:
    """The recorded outcome of `phase`, typed, with dotted-path `changes` applied
    (`recorded_outcome("plan", **{"data.duplicates.train_val": 3})`)."""
    import copy
    import json

    from mltrainer.phases import PHASES

    state = json.loads((Path(__file__).parent / "data" / "state_v1_typical.json").read_text())
    raw = copy.deepcopy(state["phases"][phase]["outcome"])
    for dotted, value in changes.items():
        *parents, leaf = dotted.split(".")
        node = raw
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if isinstance(node, list):
            node[int(leaf)] = value
        else:
            node[leaf] = value
    return PHASES[phase].outcome.model_validate(raw)


def judge(phase: str, check_id: str, outcome: object, tmp_path: Path,
          threshold: object = None, **cfg_changes: object) -> object:
    """Run one registered check of `phase` on `outcome`, in a project at tmp_path that holds
    the recorded state; returns its CheckResult."""
    import shutil

    import yaml

    from mltrainer.config import parse_config
    from mltrainer.gates import GateContext, registry
    from mltrainer.project import Project
    from mltrainer.state import load_state

    data = Path(__file__).parent / "data"
    (tmp_path / ".mlt").mkdir(exist_ok=True)
    shutil.copy(data / "state_v1_typical.json", tmp_path / ".mlt" / "state.json")
    raw = yaml.safe_load((data / "state_v1.mlt.yaml").read_text())
    for dotted, value in cfg_changes.items():
        *parents, leaf = dotted.split("__")
        node = raw
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    project = Project.at(tmp_path)
    ctx = GateContext(phase, parse_config(raw), outcome, load_state(project), project)
    item = {} if threshold is None else {"threshold": threshold}
    return registry()[check_id](ctx, item)


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The SQLAlchemy URL of a local PostgreSQL server that `scripts/postgres.sh` installs (as
    root, when missing) and starts; skipped, saying why, only when it cannot be started.
    MLT_TEST_POSTGRES_URL points the tests at another server instead."""
    import importlib.util
    import subprocess

    if importlib.util.find_spec("psycopg") is None:
        pytest.skip("psycopg is not installed: pip install -c constraints.txt -e '.[test]'")
    url = os.environ.get("MLT_TEST_POSTGRES_URL")
    if url:
        return url
    script = Path(__file__).resolve().parents[1] / "scripts" / "postgres.sh"
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0 or not proc.stdout.strip():
        pytest.skip(f"PostgreSQL could not be started by scripts/postgres.sh: "
                    f"{proc.stderr.strip()[-500:]}")
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture
def postgres_url(postgres_server: str) -> Any:
    """A fresh database with a role of its own whose password appears nowhere else (so a test
    can look for it in every file and output); dropped afterwards."""
    import secrets
    from urllib.parse import urlsplit

    import psycopg

    admin = urlsplit(postgres_server)
    token = secrets.token_hex(6)
    role, password, db = f"mlt_t_{token}", f"Pw-{token}-secret", f"mlt_t_{token}"
    dsn = postgres_server.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        conn.execute(f"GRANT {role} TO {admin.username}")
        conn.execute(f"CREATE DATABASE {db} OWNER {role}")
    yield SimpleNamespace(url=f"postgresql://{role}:{password}@{admin.hostname}:{admin.port}/{db}",
                          password=password, db=db)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        conn.execute(f"DROP ROLE IF EXISTS {role}")
