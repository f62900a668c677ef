from __future__ import annotations

import os

# Tests run on 2 shared cores: keep torch from oversubscribing them.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# No test may reach a hub: trackio (through huggingface_hub) would otherwise ask who is logged in.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


from pathlib import Path  # noqa: E402

import pytest  # noqa: E402


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


