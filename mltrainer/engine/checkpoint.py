"""Checkpoint files: written atomically, loadable with `weights_only=True`, refused clearly.

Layout of `run_dir/checkpoints/`:

    epoch-NNN.pt   one per finished epoch, never overwritten (created with an exclusive link)
    last.pt        the newest state (an epoch end, or mid-epoch after an interrupt or a stop)
    best.pt        the epoch with the best goal metric on val so far
    interrupt.pt   the state at a SIGINT/SIGTERM, holding the position inside the epoch

`last.pt` and `best.pt` are hard links to the epoch (or interrupt) file they stand for, so an
epoch costs one write; where links are not supported they are copies.

A write goes to a temporary file, is fsynced, then renamed (or linked) into place, and the
folder is fsynced: a crash leaves the old file or the new one, never half of one. Serialising
happens on the caller's thread (the state is captured at that instant); the file I/O can run
on a background thread (`CheckpointWriter(background=True)`), which overlaps it with the next
epoch's first steps. A kill -9 inside that window (about a millisecond for a small model) loses
that epoch's checkpoint as well.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from mltrainer.errors import CheckpointError
from mltrainer.state import fsync_dir

FORMAT_VERSION = 1
REQUIRED_KEYS = ("format", "config_fingerprint", "model", "optimizer", "rng", "epoch", "step")
RESUME_NAMES = ("interrupt.pt", "last.pt")
_CORRUPT_HINT = ("delete it and resume from an earlier checkpoint in the same folder "
                 "(checkpoints/epoch-NNN.pt), or start a fresh run")


def epoch_name(epoch: int) -> str:
    return f"epoch-{epoch:03d}.pt"


def state_sha256(state: dict[str, torch.Tensor]) -> str:
    """sha256 over a state dict's names and bytes: two equal hashes are bitwise-equal weights."""
    digest = hashlib.sha256()
    for name, tensor in state.items():
        digest.update(name.encode())
        digest.update(tensor.reshape(-1).contiguous().view(torch.uint8).numpy().tobytes()
                      if tensor.numel() else b"")
    return digest.hexdigest()


def serialize(payload: dict[str, Any]) -> bytes:
    buf = io.BytesIO()  # one write() later is ~2x faster than torch.save's many small ones
    torch.save(payload, buf)
    return buf.getvalue()


def write_atomic(path: Path, data: bytes, *, exclusive: bool = False,
                 sync_dir: bool = True) -> None:
    """tmp + fsync + rename; with `exclusive`, refuse to replace an existing file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if exclusive:
            try:
                os.link(tmp, path)  # atomic create-if-absent
            except FileExistsError:
                raise CheckpointError(
                    f"{path}: already exists and epoch checkpoints are never overwritten",
                    hint="resume into a new run folder, or delete the later epoch files "
                    "knowingly",
                ) from None
            except OSError:  # no hard links here: fall back to a check-then-rename
                if path.exists():
                    raise CheckpointError(f"{path}: already exists and epoch checkpoints are "
                                          "never overwritten") from None
                os.replace(tmp, path)
        else:
            os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    if sync_dir:
        fsync_dir(path.parent)


def link_atomic(src: Path, dst: Path) -> None:
    """Make `dst` name the same content as `src` (hard link, else copy), replacing atomically."""
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
    os.replace(tmp, dst)


def prune_epochs(directory: Path, keep: int) -> list[str]:
    """Delete all but the `keep` newest epoch-NNN.pt files. best.pt and last.pt are links of
    their own (or copies), so the content they name stays whatever is deleted here."""
    epochs = sorted(directory.glob("epoch-*.pt"))
    doomed = epochs[:len(epochs) - keep] if keep else epochs
    for path in doomed:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return [p.name for p in doomed]


def remove_stale_temporaries(directory: Path) -> list[str]:
    """Delete `.NAME.PID.TID.tmp` files a killed process left behind (never a checkpoint)."""
    removed = []
    for path in directory.glob(".*.pt.*.tmp") if directory.is_dir() else []:
        with contextlib.suppress(OSError):
            path.unlink()
            removed.append(path.name)
    return removed


class CheckpointWriter:
    """Writes checkpoints into one folder, at most one write in flight.

    `save()` serialises the payload at once, on the caller's thread: the state is captured at
    that instant, and pickling holds the GIL anyway, so a thread would not overlap it. With
    `background`, the file I/O (write, fsyncs, renames, links), which releases the GIL, runs
    on a thread and overlaps the next steps; `wait()` joins it and re-raises its error, if
    any. Call it before relying on the files (`fit` does before it returns).
    """

    def __init__(self, directory: Path, *, background: bool = True, keep: int | None = None,
                 enabled: bool = True) -> None:
        self.directory = directory
        self.background = background
        self.keep = keep  # epoch files to keep besides best/last; None = all
        self.enabled = enabled  # False on processes other than 0: they write nothing
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def save(self, payload: dict[str, Any], name: str, *, exclusive: bool = False,
             links: Sequence[str] = (), after: Callable[[], None] | None = None) -> Path:
        path = self.directory / name
        if not self.enabled:
            return path
        data = serialize(payload)
        self.wait()
        if not self.background:
            self._write(data, path, exclusive, links, after)
            return path
        self._thread = threading.Thread(
            target=self._run, name="mlt-checkpoint", daemon=False,
            args=(lambda: self._write(data, path, exclusive, links, after),),
        )
        self._thread.start()
        return path

    def _write(self, data: bytes, path: Path, exclusive: bool, links: Sequence[str],
               after: Callable[[], None] | None) -> None:
        write_atomic(path, data, exclusive=exclusive, sync_dir=False)
        for link in links:
            link_atomic(path, self.directory / link)
        if self.keep is not None and exclusive:
            prune_epochs(self.directory, self.keep)
        fsync_dir(self.directory)  # one folder fsync makes the file and its links durable
        if after is not None:
            after()

    def _run(self, job: Callable[[], None]) -> None:
        try:
            job()
        except BaseException as exc:
            self._error = exc

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error


def load_checkpoint(path: str | os.PathLike[str], *, expected_fingerprint: str | None = None,
                    map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint (weights_only) or raise CheckpointError saying what is wrong and what
    to do. With `expected_fingerprint`, a checkpoint of a different config is refused."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file",
                              hint="list the run's checkpoints/ folder for the files there")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        text = str(exc).strip()
        reason = text.splitlines()[0][:160] if text else type(exc).__name__
        raise CheckpointError(
            f"{path}: checkpoint is truncated or corrupted ({reason})", hint=_CORRUPT_HINT
        ) from None
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in REQUIRED_KEYS):
        missing = [k for k in REQUIRED_KEYS if not isinstance(ckpt, dict) or k not in ckpt]
        raise CheckpointError(
            f"{path}: not an mlt training checkpoint (missing {', '.join(missing)})",
            hint=_CORRUPT_HINT,
        )
    if ckpt["format"] > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {ckpt['format']} is newer than this mlt reads "
            f"({FORMAT_VERSION})", hint="upgrade mltrainer",
        )
    if expected_fingerprint is not None and ckpt["config_fingerprint"] != expected_fingerprint:
        raise CheckpointError(
            f"{path}: was written with a different config (fingerprint "
            f"{ckpt['config_fingerprint'][:12]}, this run's is {expected_fingerprint[:12]})",
            hint="resume with the config the run used (its config.resolved.yaml), or start a "
            "fresh run with the new config",
        )
    return ckpt


def find_resume_checkpoint(run_dir: str | os.PathLike[str]) -> Path:
    """The newest state of a run: `interrupt.pt`, `last.pt` or the newest `epoch-NNN.pt`
    (that one can be newer than last.pt when a kill -9 fell between writing it and linking
    last.pt), by global step; on a tie last.pt, then interrupt.pt.

    Raises CheckpointError when there is none: a resume never silently starts afresh."""
    folder = Path(run_dir) / "checkpoints"
    found = [folder / name for name in RESUME_NAMES if (folder / name).is_file()]
    epochs = sorted(folder.glob("epoch-*.pt")) if folder.is_dir() else []
    if epochs:
        found.append(epochs[-1])
    if not found:
        raise CheckpointError(
            f"{run_dir}: no checkpoint to resume from (no checkpoints/last.pt, interrupt.pt "
            "or epoch-NNN.pt)", hint="start a fresh run (without resume)",
        )
    preference = {"last.pt": 2, "interrupt.pt": 1}

    def newness(path: Path) -> tuple[int, int]:
        return int(load_checkpoint(path)["step"]), preference.get(path.name, 0)

    return max(found, key=newness)
