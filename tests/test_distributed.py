"""Several processes: two gloo processes under torchrun, on a small digits MLP.

Each launch starts two Python processes (a few seconds each here), so the module trains as
little as it can: one uninterrupted two-process run is shared by the tests that compare with it.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from test_engine import digits_bundle, make_config

from mltrainer.engine import Trainer, load_checkpoint
from mltrainer.engine.launch import DistributedRunError, Launch, run_job, run_result
from mltrainer.errors import CheckpointError
from mltrainer.stream import read_stream

pytestmark = pytest.mark.slow

# Two processes of 32 rows against one of 64: each step sees the same 64 rows (the shards
# interleave as DistributedSampler's do) and DDP averages the gradients, so the runs differ
# only in the order of float additions. Dropout off: its masks are drawn per process.
TOLERANCE = 0.01  # val accuracy, absolute: under 3 of digits' 270 val rows
EPOCHS = 3


def _cfg(batch_size: int) -> Any:
    return make_config(model={"hidden": [64], "dropout": 0.0},
                       training={"epochs": EPOCHS, "batch_size": batch_size, "lr": 3e-3,
                                 "device": "cpu"})


def _job(tmp: Path, run_dir: Path, resume: Path | None = None) -> dict[str, Any]:
    return {"mode": "train", "config": _cfg(32).model_dump(mode="json"), "root": str(tmp),
            "run_dir": str(run_dir), "kind": "baseline", "resume": str(resume) if resume else None,
            "expected_fingerprints": None, "detectors": None}


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A two-process run whose process 1 is killed with SIGKILL in epoch 2, then resumed with
    --resume at the same world size: the run every test here looks at (two launches)."""
    tmp = tmp_path_factory.mktemp("ddp")
    run_dir, job_dir = tmp / "runs" / "ddp", tmp / "job"
    job_dir.mkdir(parents=True)

    def kill_rank1_after_epoch_1() -> None:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            pid = job_dir / "rank1.pid"
            if (run_dir / "checkpoints" / "epoch-001.pt").exists() and pid.exists():
                os.kill(int(pid.read_text()), signal.SIGKILL)
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_rank1_after_epoch_1)
    killer.start()
    try:
        run_job(_job(tmp, run_dir), Launch(nproc=2), job_dir)
        killed: Exception | None = None
    except DistributedRunError as exc:
        killed = exc
    killer.join()
    last = run_dir / "checkpoints" / "last.pt"
    epoch_at_kill = load_checkpoint(last)["epoch"]
    refusal = None
    try:  # resuming at another world size: refused
        Trainer(_cfg(32), digits_bundle(), run_dir).fit(resume=last)
    except CheckpointError as exc:
        refusal = exc
    result = run_result(run_job(_job(tmp, run_dir, resume=last), Launch(nproc=2), job_dir))
    return {"tmp": tmp, "run_dir": run_dir, "result": result, "killed": killed,
            "epoch_at_kill": epoch_at_kill, "refusal": refusal}


def _steps(run_dir: Path) -> list[int]:
    return [e["step"] for e in read_stream(run_dir / "metrics.jsonl") if e["type"] == "step"]


def test_two_processes_reach_the_single_process_metric(ddp_run: dict[str, Any],
                                                       tmp_path: Path) -> None:
    from mltrainer.data import prepare_data

    ddp = ddp_run["result"]
    assert ddp.world_size == 2 and ddp.stopped_reason == "completed"
    bundle = prepare_data(_cfg(64), tmp_path)  # the rows the workers trained on
    single = Trainer(_cfg(64), bundle, tmp_path / "runs" / "one").fit()
    assert ddp.final_step == single.final_step  # the same number of 64-row steps
    assert abs(ddp.best_metric - single.best_metric) <= TOLERANCE
    start = read_stream(ddp_run["run_dir"] / "metrics.jsonl")[0]
    assert (start["world_size"], start["backend"], start["effective_batch_size"]) == (2, "gloo",
                                                                                      64)


def test_kill_9_of_one_process_leaves_a_run_that_resumes(ddp_run: dict[str, Any]) -> None:
    assert ddp_run["killed"] is not None and "--resume" in ddp_run["killed"].hint
    assert 1 <= ddp_run["epoch_at_kill"] < EPOCHS
    assert "written by 2 process" in ddp_run["refusal"].message
    # every step once, in order: the steps the killed run wrote past its checkpoint were set
    # aside (metrics.lost.jsonl), the resumed run wrote them again
    assert _steps(ddp_run["run_dir"]) == list(range(1, ddp_run["result"].final_step + 1))
    ends = [e for e in read_stream(ddp_run["run_dir"] / "metrics.jsonl") if e["type"] == "end"]
    assert ends[-1]["reason"] == "completed"


def test_only_process_zero_writes(ddp_run: dict[str, Any]) -> None:
    run_dir = ddp_run["run_dir"]
    names = sorted(p.name for p in (run_dir / "checkpoints").glob("*.pt"))
    assert names == ["best.pt", "epoch-001.pt", "epoch-002.pt", "epoch-003.pt", "last.pt"]
    ckpt = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert ckpt["world_size"] == 2 and len(ckpt["rng_ranks"]) == 2
    assert sorted(p.name for p in run_dir.parent.iterdir()) == ["ddp"]  # no folder per rank


def test_every_process_stops_at_the_same_step(tmp_path: Path) -> None:
    """One all-reduce decides: process 0's detectors, any process's Ctrl-C/SIGTERM."""
    import torch.multiprocessing as mp
    from _distributed_agree import agree_in_process  # a light module: the children import it

    mp.spawn(agree_in_process, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    got = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    expected = [[False, False], [True, False], [True, True], [True, True]]
    assert got[0]["answers"] == got[1]["answers"] == expected
    assert got[0]["loss"] == got[1]["loss"] == 1.5  # the step's loss, averaged


def test_distributed_probe_runs_on_the_rows_it_is_given(tmp_path: Path) -> None:
    """`mlt finalize --nproc N` probes the production recipe on its own rows (train+val) in N
    processes, twice: identical hashes, from the train+val rows handed to the processes."""
    from types import SimpleNamespace

    import numpy as np

    from mltrainer.data import prepare_data
    from mltrainer.engine.probe import distributed_probe

    cfg = _cfg(32)
    bundle = prepare_data(cfg, tmp_path)
    joined = SimpleNamespace(
        train=SimpleNamespace(X=np.concatenate([bundle.train.X, bundle.val.X]),
                              y=np.concatenate([bundle.train.y, bundle.val.y])),
        val=bundle.val)
    probe = distributed_probe(cfg, 3, tmp_path, Launch(nproc=2), tmp_path / "a", rows=joined)
    assert probe["identical"] and probe["world_size"] == 2
    with np.load(tmp_path / "a" / "rows.npz") as handed:  # what the processes trained on
        assert len(handed["train_y"]) == len(bundle.train) + len(bundle.val)
