"""Start training in several processes with `torch.distributed.run` (torchrun), and wait.

The calling process (the CLI's, which holds the project lock and writes state and reports)
writes a job file, starts torchrun on `mltrainer.engine.worker` and follows the run through
the metric stream process 0 writes. torchrun starts the processes, sets up rendezvous (on
this machine, or across machines through `--rdzv-endpoint`), and tears every process down
when one dies. What the job returns comes back as files in the job folder:
`result.json` (process 0's RunResult) or `error-rank<k>.json` (an error, with its exit code).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mltrainer import errors
from mltrainer.engine.result import RunResult
from mltrainer.errors import BadInputError, ConfigError, MltError
from mltrainer.state import atomic_write_text

POLL_S = 0.2  # how often the stream is read for progress while the processes run (seconds)
TERM_GRACE_S = 60  # after a Ctrl-C: how long the processes get to save interrupt.pt (seconds)


class DistributedRunError(MltError):
    """The processes ended without a result (one was killed, or crashed). Exit 1."""


@dataclass(frozen=True)
class Launch:
    """How many processes, on how many machines: `torchrun`'s own options, passed through."""

    nproc: int = 1
    nnodes: int = 1
    node_rank: int = 0
    rdzv_endpoint: str | None = None

    def __post_init__(self) -> None:
        if self.nproc < 1:
            raise BadInputError(f"--nproc must be at least 1 but got {self.nproc}")
        if self.nnodes < 1 or not 0 <= self.node_rank < self.nnodes:
            raise BadInputError(f"--node-rank must be in 0..{self.nnodes - 1} (--nnodes "
                                f"{self.nnodes}) but got {self.node_rank}")
        if self.nnodes > 1 and not self.rdzv_endpoint:
            raise BadInputError("--nnodes above 1 needs --rdzv-endpoint HOST:PORT (the machine "
                                "of node rank 0, reachable from every node)",
                                hint="e.g. --rdzv-endpoint 10.0.0.1:29500 on every node")
        if self.nnodes == 1 and self.rdzv_endpoint:  # (else one machine trains, silently)
            raise BadInputError("--rdzv-endpoint is for training across machines but --nnodes "
                                "is 1", hint="add --nnodes N (and --node-rank) on every node, "
                                             "or leave --rdzv-endpoint out")

    @classmethod
    def from_options(cls, options: dict[str, Any], cfg: Any = None) -> Launch:
        """From a phase's options (the CLI's --nproc, --nnodes, --node-rank, --rdzv-endpoint).
        With the project's `cfg`: several processes for a `training.entrypoint` project are
        refused here, before anything runs (the script is run once, as one process)."""
        launch = cls(nproc=int(options.get("nproc") or 1),
                     nnodes=int(options.get("nnodes") or 1),
                     node_rank=int(options.get("node_rank") or 0),
                     rdzv_endpoint=options.get("rdzv_endpoint"))
        if cfg is not None and launch.is_distributed and cfg.training.entrypoint:
            raise ConfigError(
                f"--nproc/--nnodes cannot run training.entrypoint {cfg.training.entrypoint}: "
                "mlt runs your script once, as one process",
                hint="drop --nproc/--nnodes; start several processes inside the script "
                "(Lightning's devices=, accelerate) - MltCallback stops every process together")
        return launch

    def flags(self) -> str:
        """The command-line flags that give this shape again ("" for one process)."""
        out = f" --nproc {self.nproc}" if self.nproc > 1 else ""
        if self.nnodes > 1:
            out += (f" --nnodes {self.nnodes} --node-rank {self.node_rank} --rdzv-endpoint "
                    f"{self.rdzv_endpoint}")
        return out

    @property
    def is_distributed(self) -> bool:
        return self.nproc * self.nnodes > 1

    @property
    def world_size(self) -> int:
        return self.nproc * self.nnodes

    def command(self, job_file: Path) -> list[str]:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node",
               str(self.nproc), "--max-restarts", "0", "--monitor-interval", "0.2"]
        if self.nnodes == 1:
            cmd.append("--standalone")  # rendezvous on a free local port
        else:
            cmd += ["--nnodes", str(self.nnodes), "--node-rank", str(self.node_rank),
                    "--rdzv-endpoint", str(self.rdzv_endpoint)]
        return [*cmd, "-m", "mltrainer.engine.worker", str(job_file)]


def run_job(job: dict[str, Any], launch: Launch, job_dir: Path, *,
            stream: Path | None = None,
            on_event: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run `job` under torchrun; forward the events of `stream` as they are written; return
    process 0's result dict, or raise the error a process reported (its exit code kept). On a
    machine of node rank > 0 (no process 0 here) a clean exit returns {}."""
    job_dir.mkdir(parents=True, exist_ok=True)
    for old in (*job_dir.glob("error-rank*.json"), *job_dir.glob("rank*.pid"),
                job_dir / "result.json"):
        old.unlink(missing_ok=True)
    job_file = job_dir / "job.json"
    atomic_write_text(job_file, json.dumps(job, indent=2, default=str) + "\n")
    log_path = job_dir / "torchrun.log"
    follower = _StreamFollower(stream, on_event)
    with open(log_path, "ab") as log:
        # a session of its own: a Ctrl-C reaches this process only, which asks torchrun to
        # stop (SIGTERM), so every worker sees one signal and saves interrupt.pt
        proc = subprocess.Popen(launch.command(job_file), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        interrupted = _wait(proc, follower)
    follower.poll()
    if launch.node_rank > 0 and proc.returncode == 0 and not list(job_dir.glob("error-*")):
        return {}
    return _outcome(job_dir, log_path, proc.returncode, interrupted)


def _wait(proc: subprocess.Popen[bytes], follower: _StreamFollower) -> bool:
    interrupted = False
    deadline = None
    while True:
        try:
            while proc.poll() is None:
                follower.poll()
                if deadline is not None and time.monotonic() > deadline:
                    _signal_group(proc, signal.SIGKILL)
                time.sleep(POLL_S)
            return interrupted
        except KeyboardInterrupt:
            if interrupted:  # the second Ctrl-C: stop now
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
                raise
            interrupted = True
            deadline = time.monotonic() + TERM_GRACE_S
            # torchrun alone: it forwards one SIGTERM to each worker (a second signal would
            # make a worker stop at once, without saving interrupt.pt)
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _outcome(job_dir: Path, log_path: Path, code: int | None, interrupted: bool
             ) -> dict[str, Any]:
    result = job_dir / "result.json"
    if result.is_file():
        return json.loads(result.read_text(encoding="utf-8"))
    reported = [json.loads(p.read_text(encoding="utf-8"))
                for p in sorted(job_dir.glob("error-rank*.json"))]
    if reported:  # the cause (one of ours: bad data, out of memory) before its echoes
        ours = {*dir(errors), "OutOfMemoryRunError"}
        reported.sort(key=lambda d: d.get("error") not in ours)
        raise _error_from(reported[0], log_path)
    if interrupted:
        raise KeyboardInterrupt
    raise DistributedRunError(
        f"the training processes ended without a result (torchrun exit code {code}): a "
        f"process was killed or crashed; its output is in {log_path}",
        hint="the checkpoints written so far are kept: continue with --resume and the same "
        "--nproc", log=str(log_path))


def _error_from(data: dict[str, Any], log_path: Path) -> MltError:
    """The MltError a worker raised, rebuilt here (same class where it is one of ours, so
    the exit code is the same); anything else is a DistributedRunError."""
    from mltrainer.engine.precision import OutOfMemoryRunError

    name = data.get("error", "")
    cls = {"OutOfMemoryRunError": OutOfMemoryRunError}.get(name) or getattr(errors, name, None)
    if isinstance(cls, type) and issubclass(cls, MltError):
        return cls(data.get("message", name), hint=data.get("hint"))
    return DistributedRunError(
        f"a training process failed: {name}: {data.get('message', '')} (rank "
        f"{data.get('rank')}; output in {log_path})",
        hint="the checkpoints written so far are kept: continue with --resume and the same "
        "--nproc", log=str(log_path))


def train_processes(cfg: Any, run_dir: Path, root: Path, launch: Launch, *, kind: str,
                    resume: Path | None = None, baseline: dict[str, Any] | None = None,
                    detectors: dict[str, Any] | None = None,
                    expected_fingerprints: dict[str, str] | None = None, rows: Any = None,
                    on_event: Callable[[dict[str, Any]], None] | None = None,
                    schedule_epochs: int | None = None) -> RunResult:
    """`Trainer(cfg, ...).fit(resume)` in `launch.world_size` processes; process 0 writes
    `run_dir` as a single process would. `detectors`: thresholds for process 0's online
    detectors (None: none); `rows`: a bundle whose train/val rows replace the prepared
    splits (handed over as an .npz in `run_dir/launch/`); `schedule_epochs`: the lr
    schedule's horizon (`Trainer`)."""

    job_dir = run_dir / "launch"
    job_dir.mkdir(parents=True, exist_ok=True)
    job = {"mode": "train", "config": cfg.model_dump(mode="json"), "root": str(root),
           "run_dir": str(run_dir), "kind": kind, "resume": str(resume) if resume else None,
           "baseline": baseline, "detectors": detectors, "rows": write_rows(rows, job_dir),
           "expected_fingerprints": expected_fingerprints,
           "schedule_epochs": schedule_epochs}
    return run_result(run_job(job, launch, job_dir, stream=run_dir / "metrics.jsonl",
                              on_event=on_event))


def write_rows(rows: Any, job_dir: Path) -> str | None:
    """Hand a bundle's train/val rows to the processes (`job["rows"]`, read by
    `engine.worker.load_bundle`): an .npz in `job_dir`; None when there are none."""
    import numpy as np

    if rows is None:
        return None
    job_dir.mkdir(parents=True, exist_ok=True)
    path = job_dir / "rows.npz"
    np.savez(path, train_X=rows.train.X, train_y=rows.train.y, val_X=rows.val.X,
             val_y=rows.val.y)
    return str(path)


def run_result(data: dict[str, Any]) -> RunResult:
    from mltrainer.stream import decode_json

    return RunResult(**decode_json(data))


class _StreamFollower:
    """Reads the events appended to a metric stream since the last poll (whole lines only)."""

    def __init__(self, path: Path | None, on_event: Callable[[dict[str, Any]], None] | None
                 ) -> None:
        self.path, self.on_event = path, on_event
        self.offset = path.stat().st_size if path is not None and path.is_file() else 0
        self.buffer = b""

    def poll(self) -> None:
        if self.path is None or self.on_event is None or not self.path.is_file():
            return
        if self.path.stat().st_size < self.offset:  # a resume set lost events aside
            self.offset, self.buffer = self.path.stat().st_size, b""
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            chunk = fh.read()
        self.offset += len(chunk)
        *lines, self.buffer = (self.buffer + chunk).split(b"\n")
        from mltrainer.stream import decode_json

        for line in lines:
            with contextlib.suppress(ValueError):
                self.on_event(decode_json(json.loads(line)))
