"""The wheel carries its content: `mlt init` + `mlt plan` work from a fresh venv outside the repo.

The wheel is installed with --no-deps into a fresh venv whose only link to the test environment
is a .pth line naming its site-packages (for torch & co., which CI's own install already proves
resolvable); a plain path line does not run the test env's editable-install hook, so
`mltrainer` and its content can only come from the wheel — the test asserts that too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_wheel_installs_and_runs_plan_outside_the_repo(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                  "-w", str(dist), str(REPO)], cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    wheel = next(dist.glob("mltrainer-*.whl"))

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    installed = _run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(wheel)],
                     cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    fresh_site = Path(_run([str(py), "-c", purelib],
                           cwd=tmp_path).stdout.strip())
    (fresh_site / "zz_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{env['PATH']}"
    where = _run([str(py), "-c", "import mltrainer, mltrainer.resources as r; "
                  "print(mltrainer.__file__); print(r.content_root())"], cwd=tmp_path, env=env)
    module_file, content_root = where.stdout.split()
    assert Path(module_file).is_relative_to(env_dir), module_file
    assert Path(content_root) == Path(module_file).parent / "_content"

    mlt = str(env_dir / "bin" / "mlt")
    init = _run([mlt, "init", "proj", "--example", "digits"], cwd=tmp_path, env=env)
    assert init.returncode == 0, init.stderr
    plan = _run([mlt, "-C", "proj", "plan", "--json"], cwd=tmp_path, env=env)
    assert plan.returncode == 0, plan.stderr
    result = json.loads(plan.stdout)
    assert result["phase"] == "plan" and result["gate"]["passed"] is True
    assert (tmp_path / "proj" / "reports" / "plan.md").is_file()
    for folder in ("checklists", "diagnostics", "templates", "phases", "examples"):
        assert (Path(content_root) / folder).is_dir(), folder
