"""The bad-input harness: one prepared project, copied per case; each case runs one `mlt`
command (in-process through click's CliRunner, or in a child under resource limits) and is
judged on what a user relies on:

- the exit code the contract names;
- under `--json`, stdout is exactly one JSON object; a failure's object carries the exit code,
  a one-line message of at most 300 characters, and a fix (`hint`);
- stderr shows one `error:` line and at most one `fix:` line, and never a traceback;
- the project tree is byte-for-byte unchanged where the contract says so (`.mlt/audit.jsonl`
  may grow on a refusal: `unchanged="except-audit"`);
- nothing is lost: every file the project had is still there and `.mlt/state.json` loads.

`bench/adversarial.py` runs the same table and prints the counts (cases, clean, wrong exit,
state changed, lost); `tests/adversarial/test_adversarial.py` asserts every case is clean.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MESSAGE_LIMIT = 300
IGNORED = ("__pycache__",)  # Python's own byte-code caches of a project's modules

Setup = Callable[[Path], None]
Fault = Callable[[Path], contextlib.AbstractContextManager[Any]]
After = Callable[[Path, dict[str, Any]], str | None]  # extra judgement: a problem, or None


@dataclass
class Case:
    id: str
    group: str
    args: list[str]  # after `mlt --json -C <project>`; "{p}" is the project's path
    exit: int
    setup: Setup | None = None
    unchanged: str | None = "all"  # "all", "except-audit", or None (the case changes state)
    says: str | None = None  # a substring the message (or stderr) must contain
    fault: Fault | None = None  # an in-process fault around the command
    child: dict[str, Any] | None = None  # run in a child: {"as_mb": .., "fsize": .., "kill": ..}
    after: After | None = None
    json: bool = True


@dataclass
class Verdict:
    case: Case
    exit: int | None
    problems: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    stdout: str = ""
    stderr: str = ""

    @property
    def clean(self) -> bool:
        return not self.problems and not self.changed and not self.lost

    def explain(self) -> str:
        return (f"{self.case.id}: exit {self.exit} (want {self.case.exit}); "
                f"problems {self.problems}; changed {self.changed[:5]}; lost {self.lost[:5]}\n"
                f"--- stdout\n{self.stdout[-1500:]}\n--- stderr\n{self.stderr[-1500:]}")


# ------------------------------------------------------------------ the prepared project

FIXTURE_CONFIG = """\
name: iris-adversarial
task: classification
seed: 0
data:
  source: data.csv
  target: species
model:
  kind: mlp
  hidden: [8]
  dropout: 0.0
training:
  epochs: 2
  batch_size: 32
  grad_stats_every: 0
finalize:
  bootstrap: 100
goal:
  metric: accuracy
  target: 0.5
"""


def write_iris_csv(path: Path) -> None:
    from sklearn.datasets import load_iris

    data = load_iris()
    names = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    lines = [",".join([*names, "species"])]
    for row, label in zip(data.data, data.target):
        lines.append(",".join([*(f"{v:g}" for v in row), str(data.target_names[label])]))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def prepare_fixture(root: Path) -> Path:
    """iris from a CSV, through `mlt plan` and `mlt train-baseline` (2 epochs, a tiny MLP)."""
    from click.testing import CliRunner

    from mltrainer.cli import cli

    runner = CliRunner()
    res = runner.invoke(cli, ["--json", "init", str(root)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    (root / "mlt.yaml").write_text(FIXTURE_CONFIG, encoding="utf-8")
    write_iris_csv(root / "data.csv")
    for command in ("plan", "train-baseline"):
        res = runner.invoke(cli, ["--json", "-C", str(root), command], catch_exceptions=False)
        assert res.exit_code == 0, res.output
    return root


# ------------------------------------------------------------------ judging


def tree(root: Path) -> dict[str, str]:
    """sha256 of every file under `root` (byte-code caches left out), by relative path."""
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part in IGNORED for part in rel.parts) or not path.is_file():
            continue
        out[str(rel)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _changes(before: dict[str, str], after: dict[str, str], mode: str | None) -> list[str]:
    if mode is None:
        return []
    keys = set(before) | set(after)
    changed = sorted(k for k in keys if before.get(k) != after.get(k))
    if mode == "except-audit":
        changed = [k for k in changed if k != ".mlt/audit.jsonl"]
    return changed


def state_problem(root: Path) -> str | None:
    from mltrainer.errors import MltError
    from mltrainer.project import Project
    from mltrainer.state import load_state

    try:
        load_state(Project.at(root))
    except MltError as exc:
        return exc.message
    except Exception as exc:  # an mlt that crashes on it: the state counts as unreadable
        return f"{type(exc).__name__}: {exc}"
    return None


def _lost(root: Path, before: dict[str, str], after: dict[str, str], loaded: bool
          ) -> list[str]:
    """Files the project had that are gone, and a state that loaded before but not after."""
    lost = [k for k in before if k not in after and not k.endswith(".tmp")]
    problem = state_problem(root) if loaded else None
    if problem is not None:
        lost.append(f"state unreadable: {problem}")
    return lost


def judge(case: Case, code: int | None, stdout: str, stderr: str) -> list[str]:
    problems: list[str] = []
    if code != case.exit:
        problems.append(f"exit {code}, want {case.exit}")
    if case.exit < 0:  # killed by a signal: nothing to say, only what it left behind counts
        return problems
    both = stdout + stderr
    if "Traceback (most recent call last)" in both:
        problems.append("traceback")
    payload: dict[str, Any] | None = None
    if case.json and stdout.strip():
        try:
            payload = json.loads(stdout)
        except json.JSONDecodeError:
            problems.append("stdout is not exactly one JSON object")
    elif case.json and case.exit != 0:
        problems.append("no JSON object on stdout")
    if case.exit != 0 and payload is not None and "gate" not in payload:
        message = str(payload.get("message", ""))
        if payload.get("exit_code") != case.exit:
            problems.append(f"JSON exit_code {payload.get('exit_code')}")
        if "\n" in message or len(message) > MESSAGE_LIMIT or not message:
            problems.append(f"message not one line of at most {MESSAGE_LIMIT} characters")
        if not payload.get("hint"):
            problems.append("no fix (hint)")
    if case.exit != 0:
        errors = [line for line in stderr.splitlines() if line.startswith("error:")]
        fixes = [line for line in stderr.splitlines() if line.strip().startswith("fix:")]
        if payload is None or "gate" not in payload:
            if len(errors) != 1:
                problems.append(f"{len(errors)} 'error:' lines on stderr")
            if len(fixes) > 1:
                problems.append("more than one 'fix:' line")
    if "\x1b" in stderr:
        problems.append("a raw escape code reached the terminal")
    if case.says and case.says not in both:
        problems.append(f"does not say {case.says!r}")
    return problems


# ------------------------------------------------------------------ running


def run_case(case: Case, fixture: Path) -> Verdict:
    with tempfile.TemporaryDirectory(prefix="mlt-adv-") as tmp:
        root = Path(tmp) / "p"
        shutil.copytree(fixture, root, symlinks=True)
        if case.setup is not None:
            case.setup(root)
        before = tree(root)
        loaded = state_problem(root) is None
        args = ["--json", "-C", str(root), *(a.replace("{p}", str(root)) for a in case.args)]
        if not case.json:
            args.remove("--json")
        if case.child is not None:
            code, stdout, stderr = _run_child(args, case.child, root)
        else:
            code, stdout, stderr = _run_inline(args, case.fault, root)
        after = tree(root)
        verdict = Verdict(case, code, judge(case, code, stdout, stderr),
                          _changes(before, after, case.unchanged),
                          _lost(root, before, after, loaded),
                          stdout, stderr)
        if case.after is not None:
            try:
                extra = case.after(root, {"stdout": stdout, "stderr": stderr, "exit": code})
            except Exception as exc:  # an mlt without what the check reads fails the case
                extra = f"after-check failed: {type(exc).__name__}: {exc}"
            if extra:
                verdict.problems.append(extra)
        return verdict


def _run_inline(args: list[str], fault: Fault | None, root: Path) -> tuple[int, str, str]:
    from click.testing import CliRunner

    from mltrainer.cli import cli

    runner = CliRunner()
    dont_write = sys.dont_write_bytecode
    sys.dont_write_bytecode = True
    try:
        # every in-process case runs under a memory cap: a regression that allocates without
        # bound fails its case (MemoryError) instead of taking the machine down
        with memory_cap(root), fault(root) if fault is not None else contextlib.nullcontext(), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. torch on a hostile checkpoint's protocol
            res = runner.invoke(cli, args, catch_exceptions=True)
    finally:
        sys.dont_write_bytecode = dont_write
    stderr = res.stderr
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        import traceback

        stderr += "".join(traceback.format_exception(res.exception))
    return res.exit_code, res.stdout, stderr


CHILD = """
import json, resource, signal, sys
limits = json.loads(sys.argv[1])
if limits.get("as_mb"):
    cap = limits["as_mb"] * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
if limits.get("fsize"):
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["fsize"], limits["fsize"]))
from mltrainer.cli import main
sys.argv = ["mlt", *json.loads(sys.argv[2])]
main()
"""


def _run_child(args: list[str], limits: dict[str, Any], root: Path) -> tuple[int, str, str]:
    """`mlt ARGS` in a child process under resource limits; with `kill`, the child is sent
    that signal once `kill_when(root)` holds (polled)."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(Path(__file__).resolve().parents[2]),
                                                    env.get("PYTHONPATH", "")] if p)
    plain = {k: v for k, v in limits.items() if k in ("as_mb", "fsize")}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(plain), json.dumps(args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    if limits.get("kill"):
        import time

        deadline = time.monotonic() + limits.get("timeout", 120)
        while proc.poll() is None and time.monotonic() < deadline:
            if limits["kill_when"](root):
                proc.send_signal(limits["kill"])
                break
            time.sleep(0.05)
    try:
        stdout, stderr = proc.communicate(timeout=limits.get("timeout", 120))
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
    return proc.returncode, stdout, stderr


# ------------------------------------------------------------------ faults in-process


def _under(path: Any, root: Path) -> bool:
    try:
        return Path(os.fsdecode(path)).resolve().is_relative_to(root.resolve())
    except (TypeError, ValueError, OSError):
        return False


@contextlib.contextmanager
def failing_writes(root: Path, code: int) -> Iterator[None]:
    """Every write under `root` fails with `code` (EROFS: a read-only project; ENOSPC: a full
    disk), at the system-call boundary Python's file functions go through (the test machine
    runs as root, so a chmod would not stop it)."""
    real_open, real_os_open, real_mkdir = builtins.open, os.open, os.mkdir
    real_replace, real_rename = os.replace, os.rename
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def fail(path: Any) -> OSError:
        return OSError(code, os.strerror(code), os.fsdecode(path))

    def fake_open(file: Any, mode: str = "r", *a: Any, **k: Any) -> Any:
        if isinstance(file, (str, bytes, os.PathLike)) and any(c in mode for c in "wax+") \
                and _under(file, root):
            raise fail(file)
        return real_open(file, mode, *a, **k)

    def fake_os_open(path: Any, flags: int, *a: Any, **k: Any) -> int:
        if flags & write_flags and _under(path, root):
            raise fail(path)
        return real_os_open(path, flags, *a, **k)

    def fake_mkdir(path: Any, *a: Any, **k: Any) -> None:
        if _under(path, root):
            raise fail(path)
        return real_mkdir(path, *a, **k)

    def fake_move(real: Callable[..., Any]) -> Callable[..., Any]:
        def move(src: Any, dst: Any, *a: Any, **k: Any) -> Any:
            if _under(dst, root):
                raise fail(dst)
            return real(src, dst, *a, **k)
        return move

    builtins.open = io.open = fake_open  # type: ignore[assignment]
    os.open, os.mkdir = fake_os_open, fake_mkdir  # type: ignore[assignment]
    os.replace, os.rename = fake_move(real_replace), fake_move(real_rename)  # type: ignore
    try:
        yield
    finally:
        builtins.open = io.open = real_open  # type: ignore[assignment]
        os.open, os.mkdir, os.replace, os.rename = (real_os_open, real_mkdir, real_replace,
                                                    real_rename)


def read_only(root: Path) -> contextlib.AbstractContextManager[Any]:
    return failing_writes(root, errno.EROFS)


def disk_full(root: Path) -> contextlib.AbstractContextManager[Any]:
    return failing_writes(root, errno.ENOSPC)


def holder_record(root: Path) -> None:
    """Setup: the record another command wrote into .mlt/lock when it took the lock."""
    (root / ".mlt" / "lock").write_text(json.dumps(
        {"pid": 4242, "host": "elsewhere", "command": "mlt optimize",
         "since": "2026-01-01T00:00:00+00:00"}))


@contextlib.contextmanager
def lock_held(root: Path) -> Iterator[None]:
    """Another process holds the project lock (an flock on .mlt/lock; see holder_record)."""
    import fcntl

    fd = os.open(root / ".mlt" / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def memory_cap(root: Path, extra_gib: float = 3.0) -> Iterator[None]:
    """A soft RLIMIT_AS on this process for the case (raised back afterwards): a model that
    tried to allocate what it estimated would fail here instead of taking the machine."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as fh:
        size = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    cap = size + int(extra_gib * 2**30)
    if hard not in (resource.RLIM_INFINITY,) and cap > hard:
        cap = hard
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@contextlib.contextmanager
def signal_at_first_epoch(root: Path, signum: int) -> Iterator[None]:
    """Send this process `signum` when training reports its first epoch (a real signal,
    handled by the engine's handlers, as a Ctrl-C or a `kill` would be)."""
    import signal as _signal

    from mltrainer.output import TrainingProgress

    real = TrainingProgress.on_event
    sent = []

    def on_event(self: TrainingProgress, event: dict[str, Any]) -> None:
        if event.get("type") == "epoch" and not sent:
            sent.append(True)
            os.kill(os.getpid(), signum)
        return real(self, event)

    TrainingProgress.on_event = on_event  # type: ignore[method-assign]
    previous = _signal.getsignal(signum)
    try:
        yield
    finally:
        TrainingProgress.on_event = real  # type: ignore[method-assign]
        _signal.signal(signum, previous)
