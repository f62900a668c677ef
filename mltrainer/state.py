"""Persisted project state: `.mlt/state.json`, the project lock, and `.mlt/audit.jsonl`.

The state is a versioned pydantic model written atomically (temp file, fsync, rename, fsync of
the folder), so a crash leaves either the old state or the new one, never half of each. The
previous state is kept as `state.json.bak`. The audit log is append-only, one JSON object a line.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from mltrainer.errors import LockHeldError, StateCorruptError
from mltrainer.project import Project

SCHEMA_VERSION = 2

PhaseStatus = Literal[
    "locked", "ready", "running", "passed", "blocked", "failed", "skipped", "stale"
]
ItemStatus = Literal["pass", "fail", "pending", "waived"]


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


class Waiver(BaseModel):
    reason: str
    by: str | None = None
    at: str = Field(default_factory=now)


class Signoff(BaseModel):
    by: str
    at: str = Field(default_factory=now)
    note: str | None = None
    artifact_hash: str | None = None  # a changed artifact voids the sign-off


class GateItem(BaseModel):
    id: str
    text: str
    kind: Literal["auto", "manual"]
    status: ItemStatus
    required: bool = True
    evidence: dict[str, Any] = Field(default_factory=dict)
    waiver: Waiver | None = None
    signoff: Signoff | None = None
    fix: str | None = None  # the checklist's `fix`: how to meet the item when it is unmet


class GateResult(BaseModel):
    phase: str
    passed: bool
    items: list[GateItem]
    judged_at: str = Field(default_factory=now)

    def unmet(self) -> list[GateItem]:
        return [i for i in self.items if i.required and i.status in ("fail", "pending")]


class PhaseRecord(BaseModel):
    status: PhaseStatus = "ready"
    started_at: str | None = None
    finished_at: str | None = None
    gate: GateResult | None = None
    fingerprints: dict[str, str] = Field(default_factory=dict)  # what the passed gate judged
    outcome: dict[str, Any] = Field(default_factory=dict)  # its typed outcome, as JSON
    error: str | None = None
    note: str | None = None  # why a phase is skipped (the fast path went around it)
    runs: int = 0  # how many times the phase ran (optimize counts its iterations with it)


class ProjectState(BaseModel):
    schema_version: int = SCHEMA_VERSION
    created_at: str = Field(default_factory=now)
    phases: dict[str, PhaseRecord] = Field(default_factory=dict)
    waivers: dict[str, dict[str, Waiver]] = Field(default_factory=dict)
    signoffs: dict[str, dict[str, Signoff]] = Field(default_factory=dict)

    def phase(self, name: str) -> PhaseRecord:
        return self.phases.setdefault(name, PhaseRecord())


def load_state(project: Project) -> ProjectState:
    """The saved state, a fresh one when none was saved yet, or StateCorruptError (exit 2)."""
    path = project.state_path
    if not path.exists():
        return ProjectState()
    fix = (
        f"restore it from {path.name}.bak (the state before the last change) or move it away "
        "to start the phases over; .mlt/audit.jsonl keeps the history"
    )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StateCorruptError(f"{path}: not valid JSON ({str(exc)[:80]})", hint=fix) from None
    except IsADirectoryError:
        raise StateCorruptError(f"{path}: is a folder, not the state file", hint=fix) from None
    if not isinstance(raw, dict):
        raise StateCorruptError(f"{path}: expected a JSON object", hint=fix)
    version = raw.get("schema_version")
    if not isinstance(version, int):
        raise StateCorruptError(f"{path}: no integer schema_version", hint=fix)
    if version > SCHEMA_VERSION:
        raise StateCorruptError(
            f"{path}: written by a newer mlt (schema {version}, this mlt reads up to "
            f"{SCHEMA_VERSION})",
            hint="upgrade mltrainer",
        )
    raw = _migrate(raw)
    try:
        state = ProjectState.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise StateCorruptError(f"{path}: field '{where}': {err['msg']}", hint=fix) from None
    _check_gates_against_audit(project, state, fix)
    return state


def _check_gates_against_audit(project: Project, state: ProjectState, fix: str) -> None:
    """A gate result is what mlt judged: a phase's status agrees with its gate, and the gate
    is one the audit log recorded for it (the `gate` events since the phase finished: its run,
    then each sign-off or waiver). One edited by hand (an item set to pass, a blocked phase
    set to passed) is refused, exit 2. A gate with no event since it finished (a command
    killed between the two writes) is taken as it is."""
    path = project.state_path
    audited: dict[str, list[dict[str, Any]]] = {}
    for event in read_audit(project):
        if event.get("event") == "gate" and isinstance(event.get("items"), dict):
            audited.setdefault(str(event.get("phase")), []).append(event)
    for name, rec in state.phases.items():
        if rec.gate is None:
            continue
        if rec.status in ("passed", "blocked") and (rec.status == "passed") != rec.gate.passed:
            raise StateCorruptError(
                f"{path}: phase {name} is '{rec.status}' but its gate "
                f"{'passed' if rec.gate.passed else 'did not pass'}: the file was edited by "
                f"hand", hint=fix)
        since = [e for e in audited.get(name, [])
                 if str(e.get("time", "")) >= str(rec.finished_at or "")]
        items = {i.id: i.status for i in rec.gate.items}
        if since and not any(e["items"] == items and e.get("passed") == rec.gate.passed
                             for e in since):
            last = since[-1]["items"]
            differ = next((k for k in items if items[k] != last.get(k)), None)
            what = (f"item {differ} is '{items[differ]}', the audit log recorded "
                    f"'{last.get(differ)}'" if differ else "its items differ")
            raise StateCorruptError(
                f"{path}: the {name} gate is not one mlt judged ({what}): the file was edited "
                f"by hand", hint=fix)


def _migrate(raw: dict[str, Any]) -> dict[str, Any]:
    """Bring an older schema up to SCHEMA_VERSION, one step at a time."""
    if raw["schema_version"] < 2:  # v1 kept a skipped phase's note inside its outcome
        for rec in (raw.get("phases") or {}).values():
            outcome = rec.get("outcome") if isinstance(rec, dict) else None
            if isinstance(outcome, dict) and set(outcome) == {"note"}:
                rec["note"], rec["outcome"] = outcome["note"], {}
    raw["schema_version"] = SCHEMA_VERSION
    return raw


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, blob: bytes) -> None:
    """Write `blob` to `path` so a crash (or a full disk) leaves the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(blob)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def save_state(project: Project, state: ProjectState) -> None:
    path = project.state_path
    if path.exists():
        atomic_write_text(path.with_name(path.name + ".bak"), path.read_text(encoding="utf-8"))
    atomic_write_text(path, state.model_dump_json(indent=2) + "\n")


def audit(project: Project, event: str, **fields: Any) -> dict[str, Any]:
    """Append one event to .mlt/audit.jsonl, durably. Returns the record written."""
    record = {"time": now(), "event": event, **fields}
    require_mlt_dir(project)
    line = json.dumps(record, sort_keys=False, default=str) + "\n"
    with open(project.audit_path, "a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())
    return record


UNREADABLE_EVENT = "unreadable_line"  # what read_audit reports in place of a damaged line


def read_audit(project: Project) -> list[dict[str, Any]]:
    """Every event of the audit log, in order. A damaged line (not UTF-8, not a JSON object)
    does not stop the reading: it is reported in its place as an `unreadable_line` event
    naming the line number and what is wrong with it."""
    if not project.audit_path.exists():
        return []
    out: list[dict[str, Any]] = []
    for number, blob in enumerate(project.audit_path.read_bytes().splitlines(), start=1):
        if not blob.strip():
            continue
        try:
            record = json.loads(blob.decode("utf-8"))
            problem = None if isinstance(record, dict) else "not a JSON object"
        except UnicodeDecodeError as exc:
            problem = f"not UTF-8 (byte {exc.start})"
        except json.JSONDecodeError as exc:
            problem = f"not JSON ({exc.msg})"
        if problem is None:
            out.append(record)
        else:
            out.append({"event": UNREADABLE_EVENT, "line": number, "problem": problem})
    return out


def require_mlt_dir(project: Project) -> None:
    """Create `.mlt/` when missing; refuse (exit 2) when something else has its name."""
    if project.mlt_dir.exists() and not project.mlt_dir.is_dir():
        raise StateCorruptError(
            f"{project.mlt_dir}: is a file, but mlt keeps the project state in this folder",
            hint=f"move {project.mlt_dir.name} away (mlt creates the folder again)",
        )
    project.mlt_dir.mkdir(parents=True, exist_ok=True)


@contextlib.contextmanager
def project_lock(project: Project, command: str) -> Iterator[None]:
    """Hold `.mlt/lock` for the duration of a command that writes project state.

    An flock is released by the kernel when its holder dies, so a crashed command never leaves
    the project locked; the file's content only says who holds it, for the message.

    The lock file lives only while a command holds it: the command that creates it removes it
    (before it lets go of the flock), and a `.mlt/` folder it created is removed again when the
    command left nothing in it. So a command refused for bad input leaves the project's files
    as they were, byte for byte, even in a project no command has run in yet. A lock file from
    an older mlt is left where it is. Whoever takes the flock checks that the path still names
    the file it locked (a racer may have opened the file just before its creator removed it)
    and otherwise tries again on the new one. (Two commands racing for a new file can leave it
    behind, as a lock file of an older mlt: harmless, it is reused.)
    """
    made_dir = not project.mlt_dir.exists()
    require_mlt_dir(project)
    try:
        fd, created = _open_locked(project)
        try:
            info = {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
                    "since": now()}
            # One write of a fixed-size record (never truncate-then-write, which a racer could
            # read in between); a refused racer waits for it (see _wait_for_holder).
            os.pwrite(fd, _holder_record(info), 0)
            _HELD_HERE.add(project.lock_path)
            yield
        finally:
            _HELD_HERE.discard(project.lock_path)
            with contextlib.suppress(OSError):
                if created:
                    os.unlink(project.lock_path)  # still holding the flock: nobody else does
                else:
                    os.pwrite(fd, _holder_record({}), 0)
            os.close(fd)  # closing the descriptor releases the flock
    finally:
        if made_dir:
            with contextlib.suppress(OSError):
                project.mlt_dir.rmdir()  # only when empty: the command wrote nothing there


_HELD_HERE: set[Path] = set()  # the lock files this process holds now (project_lock)


def lock_held_elsewhere(project: Project) -> bool:
    """Whether another mlt command (not this process) holds the project lock now: a phase the
    state records as running is running only then (inside a command that holds the lock,
    the phases it runs are recorded as they end before anything reads them)."""
    return project.lock_path not in _HELD_HERE and lock_is_held(project)


def lock_is_held(project: Project) -> bool:
    """Whether a live mlt command holds the project lock now (asked without taking it for
    longer than the question: a lock file a killed command left behind is not held)."""
    try:
        fd = os.open(project.lock_path, os.O_RDONLY)
    except OSError:
        return False  # no lock file: its holder removes it on the way out
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # releases the shared lock, if it was taken
    return False


def _open_locked(project: Project) -> tuple[int, bool]:
    """Open `.mlt/lock` (creating it when missing) and take its flock without waiting.
    Returns the descriptor and whether this call created the file; raises LockHeldError."""
    path = project.lock_path
    while True:
        try:
            fd, created = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644), True
        except FileExistsError:
            try:
                fd, created = os.open(path, os.O_RDWR), False
            except FileNotFoundError:
                continue  # its creator removed it in between: create it
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = _wait_for_holder(path)
            raise LockHeldError(
                f"another mlt command holds {path}: "
                f"`{holder.get('command', '?')}` (pid {holder.get('pid', '?')} on "
                f"{holder.get('host', '?')}, since {holder.get('since', '?')})",
                hint="wait for it to finish, or stop that process; the lock frees itself when "
                "its holder exits",
                holder=holder,
            ) from None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd, created
        os.close(fd)  # we locked a file its creator had already removed: take the new one


HOLDER_BYTES = 1024  # the lock file's fixed-size holder record


def _holder_record(info: dict[str, Any]) -> bytes:
    blob = json.dumps(info).encode()[: HOLDER_BYTES - 1]
    return blob + b" " * (HOLDER_BYTES - len(blob))


def _wait_for_holder(path: Path, timeout_s: float = 2.0) -> dict[str, Any]:
    """Who holds the lock. The holder writes its record right after taking the lock; a racer
    refused in that instant waits (briefly) for it instead of saying '?'."""
    deadline = time.monotonic() + timeout_s
    while True:
        holder = _read_holder(path)
        if holder.get("pid") or time.monotonic() >= deadline:
            return holder
        time.sleep(0.01)


def _read_holder(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
        return data if isinstance(data, dict) else {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
