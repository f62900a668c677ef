"""AGENT.md stays true to the code: every command its examples show runs against a demo project."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from mltrainer.cli import cli
from mltrainer.resources import read_text

pytestmark = pytest.mark.slow


def shown_commands() -> list[str]:
    text = read_text("AGENT.md")
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines()
            if line.strip().startswith("mlt ")]


def test_agent_md_shows_commands() -> None:
    cmds = shown_commands()
    assert any(c.startswith("mlt init") for c in cmds) and len(cmds) >= 6


def test_every_command_in_agent_md_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for line in shown_commands():
        args = shlex.split(line, comments=True)[1:]
        expected = re.search(r"# exit (\d+)", line)
        res = runner.invoke(cli, args, catch_exceptions=False)
        assert res.exit_code == (int(expected.group(1)) if expected else 0), (line, res.stderr)
        if "--json" in args:
            json.loads(res.stdout)  # exactly one JSON object on stdout


def test_agent_md_exit_codes_match_the_code() -> None:
    from mltrainer import errors

    text = read_text("AGENT.md")
    for code in (errors.EXIT_BAD_INPUT, errors.EXIT_REFUSED, errors.EXIT_DETECTOR_STOP,
                 errors.InterruptedRunError.exit_code):
        assert f"| {code} |" in text
