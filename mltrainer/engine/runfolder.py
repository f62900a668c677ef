"""The run folder around the loop: its files written once, and the refusals that keep a run
from being overwritten."""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from mltrainer.config import MltConfig
from mltrainer.errors import CheckpointError
from mltrainer.project import Project
from mltrainer.state import atomic_write_text


def has_checkpoint(run_dir: Path) -> bool:
    """Whether a run folder holds a checkpoint to resume from."""
    folder = Path(run_dir) / "checkpoints"
    return folder.is_dir() and any(folder.glob("*.pt"))


def latest_resumable(runs_dir: Path, kind: str) -> Path | None:
    """The newest `runs/*-<kind>-*` folder that holds a checkpoint (the newest folder at all
    when none does, so the refusal names it); None when there is no such folder."""
    runs = sorted(p for p in runs_dir.glob(f"*-{kind}-*") if p.is_dir()) \
        if runs_dir.is_dir() else []
    resumable = [p for p in runs if has_checkpoint(p)]
    return (resumable or runs or [None])[-1]


def unfinished_run(runs_dir: Path, kind: str) -> Path | None:
    """The newest `kind` run when it stopped without finishing (killed, crashed, interrupted:
    its stream has no end event, or one whose reason is interrupted, aborted or an error) and
    holds a checkpoint to resume from; else None."""
    run = latest_resumable(runs_dir, kind)
    if run is None or not has_checkpoint(run):
        return None
    end = _end_event(run / "metrics.jsonl")
    if end is None:
        return run
    reason = str(end.get("reason"))
    return run if reason in ("interrupted", "aborted") or reason.startswith("error:") else None


def _end_event(stream: Path) -> dict[str, Any] | None:
    """The stream's end event when its last line is one (read from the file's tail)."""
    try:
        with open(stream, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - 8192))
            lines = f.read().splitlines()
    except OSError:
        return None
    try:
        event = json.loads(lines[-1]) if lines else None
    except ValueError:  # a line cut short by the kill
        return None
    return event if isinstance(event, dict) and event.get("type") == "end" else None


@contextlib.contextmanager
def provisional_run_dir(project: Project, kind: str) -> Iterator[Path]:
    """A new `runs/<id>/` that is removed again (with `runs/` when this made it) if the start
    fails before the run recorded anything: a refused start leaves no folder behind."""
    made_runs = not project.runs_dir.exists()
    run_dir = project.new_run_dir(kind)
    try:
        yield run_dir
    except BaseException:
        metrics = run_dir / "metrics.jsonl"
        if not has_checkpoint(run_dir) and (not metrics.exists() or metrics.stat().st_size == 0):
            shutil.rmtree(run_dir, ignore_errors=True)
            if made_runs:
                with contextlib.suppress(OSError):
                    project.runs_dir.rmdir()
        raise


def infer_root(run_dir: Path) -> Path:
    """The project root of `<root>/runs/<id>`; the cwd for a run folder elsewhere."""
    run_dir = Path(run_dir).resolve()
    return run_dir.parent.parent if run_dir.parent.name == "runs" else Path.cwd()


def write_run_files(run_dir: Path, cfg: MltConfig, root: Path, device: str,
                    record: dict[str, Any] | None = None) -> None:
    """config.resolved.yaml and env.json, written once per run folder (kept on resume);
    `record` (device notice, precision, world size, ...) goes into env.json as `training`."""
    from mltrainer.env import capture_environment

    run_dir.mkdir(parents=True, exist_ok=True)
    config_path = run_dir / "config.resolved.yaml"
    if not config_path.exists():
        atomic_write_text(config_path, yaml.safe_dump(cfg.model_dump(mode="json"),
                                                      sort_keys=False))
    env_path = run_dir / "env.json"
    if not env_path.exists():
        env = capture_environment(root)
        env["training_device"] = device
        if record is not None:
            env["training"] = record
        atomic_write_text(env_path, json.dumps(env, indent=2, default=str) + "\n")


def refuse_reusing(run_dir: Path) -> None:
    """A fresh start into a folder that already holds a run is refused."""
    used = [p.name for p in (run_dir / "metrics.jsonl", run_dir / "checkpoints") if p.exists()]
    if used:
        raise CheckpointError(
            f"{run_dir}: already holds a run ({', '.join(used)}); a run is never overwritten",
            hint="resume it (fit(resume=find_resume_checkpoint(run_dir)), `--resume` on the "
            "command line) or train into a new run folder",
        )


def refuse_rewriting_history(run_dir: Path, resume: Path, ckpt: dict[str, Any]) -> None:
    """Resuming from an epoch older than the folder's newest epoch file is refused."""
    later = sorted(p.name for p in (run_dir / "checkpoints").glob("epoch-*.pt")
                   if (epoch_of(p) or 0) > int(ckpt["epoch"]))
    if later:
        raise CheckpointError(
            f"{resume}: resuming from epoch {ckpt['epoch']} into {run_dir} would rewrite its "
            f"later epochs ({', '.join(later)}); a run is never overwritten",
            hint="resume from the run's newest checkpoint (last.pt), or into a new run folder",
        )


def set_aside_lost_events(run_dir: Path, ckpt: dict[str, Any]) -> int:
    """Before a resume: move the stream's events from after the checkpoint (written by a
    process killed before its next checkpoint, e.g. kill -9) to `metrics.lost.jsonl`, so the
    stream holds every step once. Returns how many lines moved (0 after a clean stop)."""
    stream = run_dir / "metrics.jsonl"
    if not stream.is_file():
        return 0
    step, epoch = int(ckpt["step"]), int(ckpt["epoch"])
    keep, lost = [], []
    for line in stream.read_text(encoding="utf-8").splitlines(keepends=True):
        try:
            event = json.loads(line)
        except ValueError:  # a torn last line
            lost.append(line if line.endswith("\n") else line + "\n")
            continue
        kind = event.get("type")
        late = ((kind in ("step", "end") and int(event.get("step", 0)) > step)
                or (kind == "epoch" and int(event.get("epoch", 0)) > epoch))
        (lost if late else keep).append(line)
    if lost:
        with open(run_dir / "metrics.lost.jsonl", "a", encoding="utf-8") as fh:
            fh.writelines(lost)
        atomic_write_text(stream, "".join(keep))
    return len(lost)


def epoch_of(path: Path) -> int | None:
    stem = path.name.removeprefix("epoch-").removesuffix(".pt")
    return int(stem) if stem.isdigit() else None
