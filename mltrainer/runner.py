"""The one way a phase runs: refuse out-of-order, run the body, judge the gate, save, report.

Every phase command goes through `execute_phase`. It holds the project lock, refuses (exit 3)
when the phase's needs are unmet or stale, and on bad input (exit 2) puts the state file, its
backup and the audit log back exactly as they were.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mltrainer.config import MltConfig, load_config
from mltrainer.engine import signals
from mltrainer.errors import (
    BadInputError,
    ConfigError,
    GateRefusedError,
    MltError,
    RefusedError,
    StateCorruptError,
    UserCodeExitError,
)
from mltrainer.fingerprints import current_fingerprints, evidence_fingerprint
from mltrainer.gates import GateContext, evaluate_gate
from mltrainer.project import Project
from mltrainer.state import (
    GateResult,
    ProjectState,
    atomic_write_bytes,
    audit,
    load_state,
    now,
    project_lock,
    save_state,
)
from mltrainer.workflow import (
    EVIDENCE,
    next_command,
    phase_def,
    satisfied_alternative,
    unmet_needs,
)

OutcomeT = TypeVar("OutcomeT", bound="Outcome")
_RESERVED = ("phase", "gate", "report", "next")  # the keys every phase's `--json` starts with
# what only a phase can judge in mlt.yaml (e.g. optimize's search ranges), added by the phase's
# package on import and run by `load_project_config`: check(cfg, path) raises ConfigError
CONFIG_CHECKS: list[Callable[[MltConfig, str], None]] = []


class Outcome(BaseModel):
    """What a phase measured: its body fills it, its gate's checks read it, its report renders
    it, `--json` serialises it (every field, at the top level) and the state saves it.

    Each phase declares a subclass in `phases/<name>/outcome.py`. Unknown fields are refused,
    so nothing travels between phases untyped; nested evidence blobs (a history, a search
    space) are plain JSON values inside a typed field.
    """

    model_config = ConfigDict(extra="forbid")
    phase: ClassVar[str]
    path: str = "typical"  # "fast" when the phase ran on the fast path
    # phases this one went around (the fast path); the runner marks them skipped, never saved
    skipped_phases: list[str] = Field(default_factory=list, exclude=True)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        clash = [k for k in cls.model_fields if k in _RESERVED]
        if clash:
            raise TypeError(f"{cls.__name__}: outcome fields {clash} clash with --json's keys")

    @classmethod
    def of(cls: type[OutcomeT], state: ProjectState) -> OutcomeT:
        """The phase's recorded outcome, typed (the phase must have run)."""
        rec = state.phases.get(cls.phase)
        if rec is None or not rec.outcome:
            raise RefusedError(f"`{phase_def(cls.phase).command}` has no recorded outcome",
                               hint=f"run `{phase_def(cls.phase).command}`")
        return cls._validated(rec.outcome)

    @classmethod
    def _validated(cls: type[OutcomeT], raw: dict[str, Any]) -> OutcomeT:
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise StateCorruptError(
                f".mlt/state.json: the recorded {cls.phase} outcome is damaged (field "
                f"'{where}': {err['msg']})",
                hint=f"restore .mlt/state.json.bak, or re-run `{phase_def(cls.phase).command}`",
            ) from None

    @classmethod
    def recorded(cls: type[OutcomeT], state: ProjectState) -> OutcomeT | None:
        """The recorded outcome, or None when the phase has none (never ran, or skipped)."""
        rec = state.phases.get(cls.phase)
        return cls._validated(rec.outcome) if rec is not None and rec.outcome else None


@dataclass(frozen=True)
class Phase:
    """A phase as the runner needs it: its body and the outcome type the body returns."""

    name: str
    run: Callable[[PhaseContext], Outcome]
    outcome: type[Outcome]


@dataclass
class PhaseContext:
    project: Project
    cfg: MltConfig
    state: ProjectState
    fingerprints: dict[str, dict[str, str]]
    options: dict[str, Any] = field(default_factory=dict)
    progress: Callable[[dict[str, Any]], None] | None = None
    path: str = "typical"  # "fast" when the phase runs on the fast path (baseline met the goal)

    def audit(self, record: dict[str, Any]) -> None:
        event = record.pop("event", "note")
        audit(self.project, event, phase=record.pop("phase", None), **record)


class ProgressForwarder:
    """A training subscriber that hands every event to the CLI's progress display (if any)
    and never asks the loop to stop."""

    def __init__(self, fn: Callable[[dict[str, Any]], None] | None) -> None:
        self.fn = fn

    def on_event(self, event: dict[str, Any]) -> None:
        if self.fn is not None:
            self.fn(event)

    def on_steps(self, block: Any) -> None:
        """A block of step events (`engine.loop`'s blocks): each, in order."""
        if self.fn is not None:
            for event in block.events:
                self.fn(event)




class _Snapshot:
    """What a command refused for bad input puts back: every file under `.mlt/` as it was
    (state.json and its backup, env.json, the caches' files) and the audit log's length.
    Files the command added there are removed, with the folders it made; files it changed are
    written back from their bytes (a file over SNAPSHOT_MAX_BYTES, a prepared-data array, is
    only ever written whole under a new name, so it is removed when new and otherwise left).
    The lock file belongs to the command holding it and is left out."""

    SNAPSHOT_MAX_BYTES = 16 << 20

    def __init__(self, project: Project, under: Path | None = None) -> None:
        self.project = project
        self.root = under or project.mlt_dir
        self.skip = {project.lock_path, project.audit_path}
        self.files: dict[Path, bytes | None] = {}
        self.dirs: set[Path] = set()
        for path in self._walk():
            if path.is_dir():
                self.dirs.add(path)
            elif path.is_file() and path not in self.skip:
                small = path.stat().st_size <= self.SNAPSHOT_MAX_BYTES
                self.files[path] = path.read_bytes() if small else None
        self.audit_len = project.audit_path.stat().st_size if project.audit_path.exists() else None

    def _walk(self) -> list[Path]:
        return sorted(self.root.rglob("*")) if self.root.is_dir() else []

    def restore(self, keep_audit: bool = False) -> None:
        for path in self._walk():
            if path.is_file() and path not in self.skip and path not in self.files:
                path.unlink(missing_ok=True)
        for path, blob in self.files.items():
            if blob is not None and (not path.exists() or path.read_bytes() != blob):
                path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(path, blob)
        for path in sorted(self._walk(), reverse=True):  # deepest first
            if path.is_dir() and path not in self.dirs:
                with contextlib.suppress(OSError):
                    path.rmdir()
        if keep_audit or self.root != self.project.mlt_dir:
            return
        if self.audit_len is None:
            self.project.audit_path.unlink(missing_ok=True)
        else:
            with open(self.project.audit_path, "r+b") as fh:
                fh.truncate(self.audit_len)


@contextlib.contextmanager
def restored_on_refusal(project: Project) -> Iterator[None]:
    """For a command outside `execute_phase` (a sign-off or waiver, an optimize worker opening
    its study): bad input or a refusal found inside leaves `.mlt/cache/` as it was (the
    fingerprints hash a folder into it). Only the caches: a worker holds no lock, so another
    command may be writing the state or a shared study's journal meanwhile, and putting those
    back would lose what it finished. Wrap the checks, never the work."""
    snapshot = _Snapshot(project, under=project.mlt_dir / "cache")
    try:
        yield
    except (BadInputError, RefusedError):
        snapshot.restore()
        raise


def load_project_config(path: Path) -> MltConfig:
    """`load_config` plus what only the layers above the config can judge: the detector
    thresholds under `diagnose.thresholds` (owned by the detectors) and each phase's
    `CONFIG_CHECKS` (optimize's `optimize.space`), so a typo fails at load time, on every
    command and in `mlt config validate`, not after a training run."""
    cfg = load_config(path)
    if cfg.diagnose.thresholds:
        from mltrainer.detectors import build_detectors  # no torch

        try:
            build_detectors(None, cfg.diagnose.thresholds)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc.message}", hint=exc.hint) from None
    for check in CONFIG_CHECKS:  # the phases' own (e.g. optimize.space), on every command too
        check(cfg, str(path))
    return cfg


def refusal(name: str, state: ProjectState, fps: dict[str, dict[str, str]]) -> GateRefusedError:
    p = phase_def(name)
    unmet = unmet_needs(name, state, fps)
    first_cmd = next((line.split("`")[1] for line in unmet if "`" in line), None)
    return GateRefusedError(
        f"`{p.command}` refused: " + "; ".join(unmet),
        hint=f"run `{first_cmd}`" if first_cmd else None,
        unmet=unmet,
    )


def read_only_context(project: Project, name: str, *, options: dict[str, Any] | None = None,
                      progress: Callable[[dict[str, Any]], None] | None = None
                      ) -> PhaseContext:
    """What a phase body reads, for work that helps a phase without being it (an optimize
    worker): the same refusal when the phase's needs are unmet, and no lock, no state
    change, no gate, no report."""
    cfg = load_project_config(project.config_path)
    state = load_state(project)
    fps = current_fingerprints(project, cfg, state)
    alt = satisfied_alternative(name, state, fps)
    if alt is None:
        raise refusal(name, state, fps)
    return PhaseContext(project, cfg, state, fps, dict(options or {}), progress,
                        path="fast" if "goal_met" in alt else "typical")


def execute_phase(
    project: Project,
    phase: Phase,
    *,
    options: dict[str, Any] | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
    config_path: Path | None = None,
) -> dict[str, Any]:
    name = phase.name
    p = phase_def(name)
    cfg = load_project_config(config_path or project.config_path)
    with project_lock(project, p.command):
        snapshot = _Snapshot(project)
        try:
            state = load_state(project)
            fps = current_fingerprints(project, cfg, state)  # may hash into .mlt/cache/
        except BadInputError:
            snapshot.restore()
            raise
        alt = satisfied_alternative(name, state, fps)
        if alt is None:
            err = refusal(name, state, fps)
            snapshot.restore()
            audit(project, "refused", phase=name, unmet=err.details["unmet"])
            raise err
        rec = state.phase(name)
        previous = rec.model_copy(deep=True)
        rec.status, rec.started_at, rec.error = "running", now(), None
        save_state(project, state)
        # from here on the phase is "running": whatever ends it (a signal during the imports
        # below among them) must record how it ended
        try:
            audit(project, "phase_started", phase=name, path=list(alt))
            ctx = PhaseContext(project, cfg, state, fps, dict(options or {}), progress,
                               path="fast" if "goal_met" in alt else "typical")
            from mltrainer.data import running_phase
            from mltrainer.reporting import FigureDrawer

            drawer = FigureDrawer(once=True)  # imports matplotlib in a child meanwhile
            # the test split exists only while finalize runs
            with running_phase(name), drawer.closed_on_error():
                outcome = phase.run(ctx)
                signals.raise_if_stop_arrived()  # a Ctrl-C Python dropped is not a pass
        except SystemExit as exc:
            # project code (a factory, a data function) called sys.exit: the phase failed
            msg = (f"project code called sys.exit({exc.code!r}) during `{p.command}`; "
                   "the phase did not finish")
            _finish_failed(project, state, name, previous, msg)
            raise UserCodeExitError(msg, hint="raise an exception instead of exiting in a "
                                    "model factory or data function") from None
        except BadInputError:
            snapshot.restore()
            raise
        except RefusedError as exc:
            # Refused before it changed anything (an iteration cap, the test-split lock): the
            # phase keeps the status it had; only the refusal is added to the audit log.
            snapshot.restore(keep_audit=True)
            audit(project, "refused", phase=name, reason=exc.message)
            raise
        except (MltError, KeyboardInterrupt, Exception) as exc:
            # The phase failed (or was interrupted) after it started: record that it did.
            msg = getattr(exc, "message", None) or (
                "interrupted (Ctrl-C or SIGTERM) before it finished"
                if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}")
            _finish_failed(project, state, name, previous, msg)
            raise
        if not isinstance(outcome, phase.outcome):
            raise TypeError(f"phase {name} returned {type(outcome).__name__}, "
                            f"not its declared {phase.outcome.__name__}")
        outcome.path = ctx.path
        gate = evaluate_gate(GateContext(name, cfg, outcome, state, project))
        rec.gate, rec.outcome, rec.finished_at = gate, outcome.model_dump(mode="json"), now()
        rec.runs += 1
        rec.status = "passed" if gate.passed else "blocked"
        # what was judged (staleness only reads it once passed), and the files it stands on
        rec.fingerprints = {**fps[name], EVIDENCE: evidence_fingerprint(project, name,
                                                                       rec.outcome)}
        fps[name] = dict(rec.fingerprints)
        for skipped in outcome.skipped_phases:
            srec = state.phase(skipped)
            if srec.status not in ("passed",):
                srec.status, srec.outcome = "skipped", {}
                srec.note = f"skipped: {name} took the fast path"
        save_state(project, state)
        audit(project, "gate", phase=name, passed=gate.passed,
              items={i.id: i.status for i in gate.items})
    return phase_result(project, state, fps, name, gate, drawer=drawer)


def _finish_failed(
    project: Project, state: ProjectState, name: str, previous: Any, message: str
) -> None:
    rec = state.phase(name)
    rec.status, rec.error, rec.finished_at = "failed", message, now()
    rec.gate = previous.gate
    with contextlib.suppress(Exception):
        save_state(project, state)
        audit(project, "phase_failed", phase=name, error=message)


def phase_result(
    project: Project,
    state: ProjectState,
    fps: dict[str, dict[str, str]],
    name: str,
    gate: GateResult,
    drawer: Any = None,
) -> dict[str, Any]:
    """The DESIGN.md `--json` object of a phase command, after rendering its report (its
    figures from `drawer`, a `reporting.FigureDrawer`, when it has them)."""
    from mltrainer.reporting import render_phase_report

    figures = drawer.figures(project, state, name) if drawer is not None else None
    report = render_phase_report(project, state, name, fps, figures=figures)
    return {
        "phase": name,
        "gate": {
            "passed": gate.passed,
            "items": [
                {"id": i.id, "text": i.text, "kind": i.kind, "status": i.status,
                 "required": i.required, "evidence": i.evidence,
                 **({"waiver": i.waiver.model_dump()} if i.waiver else {}),
                 **({"fix": i.fix} if i.fix else {})}
                for i in gate.items
            ],
        },
        "report": project.relative(report),
        "next": next_command(state, fps),
        # Everything the phase measured, as its outcome type declares it (DESIGN's `run`,
        # `findings`, `test`, `exports` among them).
        **state.phase(name).outcome,
    }


def rejudge(project: Project, phase: Phase, change: Callable[[ProjectState], None],
            command: str) -> dict[str, Any]:
    """Apply a sign-off or waiver (`change`) and judge the phase's gate again on its recorded
    outcome. The phase does not re-run: its measured evidence stays as it was."""
    name = phase.name
    cfg = load_project_config(project.config_path)
    with project_lock(project, command):
        state = load_state(project)
        with restored_on_refusal(project):  # a sign-off refused: the cache as it was
            fps = current_fingerprints(project, cfg, state)
            change(state)
        rec = state.phases.get(name)
        if rec is None or rec.gate is None or rec.status not in ("passed", "blocked"):
            save_state(project, state)
            return {"phase": name, "gate": None, "report": None, "next": next_command(state, fps)}
        outcome = phase.outcome._validated(rec.outcome)
        gate = evaluate_gate(GateContext(name, cfg, outcome, state, project))
        rec.gate = gate
        rec.status = "passed" if gate.passed else "blocked"
        save_state(project, state)
        audit(project, "gate", phase=name, passed=gate.passed, rejudged=True,
              items={i.id: i.status for i in gate.items})
    return phase_result(project, state, fps, name, gate)
