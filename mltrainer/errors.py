"""One exception root, and the one map from exceptions to exit codes.

Library code raises these; only the CLI catches them (in one place) and turns them into a
one-line message, the command to run next, and an exit code:

    0 done · 1 unexpected failure · 2 bad input or config · 3 refused by a gate or by state
    4 training stopped by a detector
"""

from __future__ import annotations

import errno
from typing import Any

# Control characters (escape sequences among them) as `\xNN`: a user string (a class name, a
# reason, a path) shown on a terminal or in a report is text, never a terminal command.
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x00, 0x20), 0x7F) if c not in (0x09, 0x0A)}


def printable(text: object) -> str:
    """`text` with its control characters (but tab and newline) shown as `\\xNN`."""
    return str(text).translate(_CONTROL)


EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_BAD_INPUT = 2
EXIT_REFUSED = 3
EXIT_DETECTOR_STOP = 4


class MltError(Exception):
    """Root of every error mlt raises on purpose. `hint` says how to fix it (often a command)."""

    exit_code = EXIT_UNEXPECTED
    default_hint: str | None = None  # the fix a subclass names when the raiser gave none

    def __init__(self, message: str, hint: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint or self.default_hint
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "error": type(self).__name__,
            "message": self.message,
            "exit_code": self.exit_code,
        }
        if self.hint:
            out["hint"] = self.hint
        if self.details:
            out["details"] = self.details
        return out


class BadInputError(MltError):
    """Bad input: a wrong config field, a missing or malformed file. Exit 2."""

    exit_code = EXIT_BAD_INPUT
    default_hint = "correct what the message names, then run the command again"


class ConfigError(BadInputError):
    """mlt.yaml (or another config file) does not validate."""

    default_hint = "fix mlt.yaml, then check it with `mlt config validate`"


class DataError(BadInputError):
    """A data source cannot be loaded or does not have the shape the config says."""

    default_hint = ("fix the data (or data.source / data.target / data.drop in mlt.yaml), "
                    "then run the command again")


class StateCorruptError(BadInputError):
    """.mlt/state.json or another persisted file cannot be read."""

    default_hint = ("restore the file from its backup (.bak) or version control; "
                    ".mlt/audit.jsonl keeps the history")


class CheckpointError(BadInputError):
    """A checkpoint is missing, truncated or corrupted."""

    default_hint = "start a fresh run (without --resume), or restore the run's checkpoints"


class EnvironmentProblemError(BadInputError):
    """The machine refused a write or a read: disk full, read-only file system, no permission,
    a file-size limit. Exit 2: nothing is wrong with mlt or the project, the place is."""


ENVIRONMENT_ERRNOS = {
    errno.ENOSPC: ("no space left on the device", "free some space"),
    errno.EDQUOT: ("disk quota exceeded", "free some space or raise the quota"),
    errno.EROFS: ("the file system is read-only", "run in a writable copy of the project"),
    errno.EACCES: ("permission denied", "make the project writable by this user"),
    errno.EPERM: ("operation not permitted", "make the project writable by this user"),
    errno.EFBIG: ("file too large for this process's file-size limit",
                  "raise the limit (ulimit -f) or free space"),
}


def environment_error(exc: BaseException) -> EnvironmentProblemError | None:
    """The EnvironmentProblemError an OSError (or what it was raised from) amounts to, or None
    when it is not about the machine."""
    seen = 0
    cur: BaseException | None = exc
    while cur is not None and seen < 10:
        if isinstance(cur, OSError) and cur.errno in ENVIRONMENT_ERRNOS:
            what, fix = ENVIRONMENT_ERRNOS[cur.errno]
            where = f" ({cur.filename})" if cur.filename else ""
            return EnvironmentProblemError(
                f"environment error: {what}{where}",
                hint=f"{fix}, then re-run the command; files mlt writes are replaced "
                "atomically, so the project is as the last completed step left it",
                errno=cur.errno,
            )
        cur, seen = cur.__cause__ or cur.__context__, seen + 1
    return None


class RefusedError(MltError):
    """Refused by a gate or by the project's state. Exit 3."""

    exit_code = EXIT_REFUSED


class GateRefusedError(RefusedError):
    """A phase was asked to run before the gates it depends on passed (or while they are stale)."""


class LockHeldError(RefusedError):
    """Another mlt command holds the project lock."""


class TestSplitLockedError(RefusedError):
    """Something other than the finalize phase asked for the test split."""

    __test__ = False  # not a pytest test class, despite the name


class UserCodeExitError(MltError):
    """Project code (a model factory, a data function) exited the process or ran out of
    memory inside a phase: the phase is recorded as failed. Exit 1."""


class DetectorStopError(MltError):
    """A detector stopped training (e.g. a non-finite loss). Exit 4."""

    exit_code = EXIT_DETECTOR_STOP


class InterruptedRunError(MltError):
    """Training was interrupted (Ctrl-C / SIGTERM) after saving a checkpoint. Exit 130."""

    exit_code = 130
