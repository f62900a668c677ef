"""One training process under torchrun: `python -m mltrainer.engine.worker JOB.json`.

`launch.run_job` writes the job and starts torchrun on this module. Every process reads the
job, prepares the same data (from its own copy of the project: on another machine too), joins
the process group and runs the same `Trainer` (or the determinism probe's steps); process 0
alone writes the run folder and `result.json`. Any process that fails writes
`error-rank<k>.json` with the error's class, message and exit code.

Job fields: config (the resolved config as a dict), root, run_dir, kind, resume (a path or
null), baseline (the trivial baseline, for the detectors), detectors (thresholds, or null for
none), rows (an .npz of train_X, train_y, val_X, val_y that replaces the prepared splits,
e.g. finalize's train+val rows; one machine only, or null), expected_fingerprints (the plan's
split hashes, or null), keep_checkpoints, mode ("train" or "probe"), steps (probe only).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from mltrainer.errors import DataError, MltError
from mltrainer.state import atomic_write_text


def online_detectors(cfg: Any, trivial_baseline: dict[str, Any] | None,
                     thresholds: dict[str, Any]) -> Any:
    """The detectors as a training subscriber (None when they are not installed)."""
    try:
        from mltrainer.detectors import DetectorContext, DetectorSubscriber, build_detectors
    except ImportError:
        return None
    dctx = DetectorContext(task=cfg.task, metric=cfg.goal.metric,
                           greater_is_better=cfg.greater_is_better, steps_per_epoch=None,
                           baseline=trivial_baseline)
    return DetectorSubscriber(build_detectors(dctx, thresholds))


def load_bundle(job: dict[str, Any], cfg: Any, dist: Any) -> Any:
    from mltrainer.data import prepare_data

    bundle = prepare_data(cfg, Path(job["root"]))
    expected = job.get("expected_fingerprints")
    theirs = dist.broadcast(bundle.fingerprints)  # every machine must train on the same rows
    if bundle.fingerprints != theirs or (expected and bundle.fingerprints != expected):
        raise DataError(f"process {dist.rank} prepared different data than "
                        f"{'the plan recorded' if expected else 'process 0'} (split hashes "
                        "differ)", hint="give every machine the same data and mlt.yaml, and "
                        "re-run `mlt plan` after a change")
    if job.get("rows"):
        import numpy as np

        with np.load(job["rows"]) as rows:
            return SimpleNamespace(
                spec=bundle.spec, fingerprints=bundle.fingerprints,
                train=SimpleNamespace(X=rows["train_X"], y=rows["train_y"]),
                val=SimpleNamespace(X=rows["val_X"], y=rows["val_y"]))
    return bundle


def run(job: dict[str, Any], job_dir: Path) -> int:
    from mltrainer.config import parse_config
    from mltrainer.engine.devices import choose_device
    from mltrainer.engine.distributed import DistContext
    from mltrainer.engine.loop import Trainer

    # which process is which rank, for a person (or a test) who has to stop one
    (job_dir / f"rank{os.environ.get('RANK', '0')}.pid").write_text(f"{os.getpid()}\n")
    cfg = parse_config(job["config"], source="job.json")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dist = DistContext.from_env(choose_device(cfg.training, local_rank).device.type)
    try:
        bundle = load_bundle(job, cfg, dist)
        if job.get("mode") == "probe":
            from mltrainer.engine.probe import distributed_probe_steps

            digest = distributed_probe_steps(cfg, bundle, int(job["steps"]), Path(job["root"]),
                                             dist)
            if dist.is_main:
                _write(job_dir / "result.json", digest)
            return 0
        subscribers = []
        if job.get("detectors") is not None and dist.is_main:
            detectors = online_detectors(cfg, job.get("baseline"), job["detectors"])
            subscribers = [detectors] if detectors is not None else []
        resume = job.get("resume")
        result = Trainer(cfg, bundle, Path(job["run_dir"]), subscribers=subscribers,
                         baseline=job.get("baseline"), kind=job["kind"], root=Path(job["root"]),
                         dist=dist, keep_checkpoints=job.get("keep_checkpoints"),
                         schedule_epochs=job.get("schedule_epochs"),
                         ).fit(resume=Path(resume) if resume else None)
        if dist.is_main:
            _write(job_dir / "result.json", result.to_dict())
        return 0
    finally:
        dist.close()


def _write(path: Path, obj: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(obj, default=str) + "\n")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    job_file = Path(args[0])
    job_dir = job_file.parent
    rank = os.environ.get("RANK", "0")
    try:
        return run(json.loads(job_file.read_text(encoding="utf-8")), job_dir)
    except MltError as exc:
        _write(job_dir / f"error-rank{rank}.json", {**exc.to_dict(), "rank": int(rank)})
        return exc.exit_code
    except BaseException as exc:  # reported to the launching process, then re-raised
        _write(job_dir / f"error-rank{rank}.json",
               {"error": type(exc).__name__, "message": str(exc)[:2000], "exit_code": 1,
                "rank": int(rank)})
        raise


if __name__ == "__main__":
    sys.exit(main())
