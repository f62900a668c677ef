"""The Optuna study of one optimize iteration: storage, name, sampler, pruner, dead workers.

- Storage: a journal file in `.mlt/` by default (safe for several processes on one machine,
  no server); a database URL (`--storage postgresql://...`) for workers on several machines;
  a path ending in `.journal` for a journal file elsewhere (e.g. a shared disk).
- Name: stable per project and iteration, so every worker with the same mlt.yaml joins the
  same study and a re-run after an interrupt continues it.
- Sampler and pruner: every argument explicit and recorded (Optuna 5 changed TPE defaults, so
  relying on them would make the record lie after an upgrade).
- A trial left RUNNING by a worker that died is failed: by heartbeat on a database, by checking
  the recorded process on this machine otherwise.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
import time
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import optuna
from optuna.trial import TrialState

from mltrainer.config import MltConfig, sha256_json
from mltrainer.errors import BadInputError
from mltrainer.project import Project

JOURNAL_NAME = "optuna.journal"
HEARTBEAT_S = 30  # database storages: a live trial records a heartbeat this often (seconds)
GRACE_S = 180  # ... and is failed as dead after this long without one (seconds)
ITERATION_SEED_STRIDE = 1000  # iteration k's sampler draws from seed + 1000 * (k - 1)
_CORE = ("name", "task", "seed", "data", "model", "training", "goal")


def study_name(cfg: MltConfig, iteration: int, inputs: dict[str, Any] | None = None) -> str:
    """`mlt-<name>-<hash>-iter<k>`: the hash covers what trials are built from and judged by,
    the config and `inputs` (the data's split fingerprints, the code's), so an edited mlt.yaml,
    changed data or a changed model factory starts a fresh study instead of counting trials
    measured on something else. Every worker on the same project derives the same name."""
    dumped = cfg.model_dump(mode="json")
    core = {k: dumped[k] for k in _CORE}
    digest = sha256_json({**core, "inputs": inputs} if inputs else core)[:10]
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", cfg.name).strip("-") or "project"
    return f"mlt-{slug}-{digest}-iter{iteration}"


def redact(url: str) -> str:
    """The URL with its password replaced by ***, fit for reports and logs."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def scrub(text: str, url: str) -> str:
    """`text` (an error message, a log line) with the URL's password replaced by ***."""
    password = urlsplit(url).password
    return text.replace(password, "***") if password else text


def with_driver(url: str) -> str:
    """`postgresql://` means psycopg2 to SQLAlchemy; mlt installs psycopg (3) with its `postgres`
    and `test` extras, so a bare `postgresql://` takes that driver when psycopg2 is absent."""
    import importlib.util

    if (url.startswith("postgresql://") and importlib.util.find_spec("psycopg2") is None
            and importlib.util.find_spec("psycopg") is not None):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def _open_rdb(rdb: Any, url: str, attempts: int = 4) -> Any:
    """RDBStorage creates its tables on first use; two workers starting together on an empty
    database race to create them, and the loser sees a duplicate-object error: try again."""
    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return rdb(url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S)
        except Exception as exc:
            text = str(exc).lower()
            if attempt == attempts - 1 or not ("already exists" in text or "duplicate" in text):
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def open_storage(url: str | None, project: Project, where: str = "--storage"
                 ) -> tuple[Any, dict[str, Any]]:
    """The storage object and what to record about it (never a password). `where`: what the
    user wrote the URL in (`--storage`, or `optimize.storage` in mlt.yaml), for the errors."""
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend

    if not url or url.endswith(".journal"):
        path = Path(url) if url else project.mlt_dir / JOURNAL_NAME
        path = path if path.is_absolute() else project.root / path
        path.parent.mkdir(parents=True, exist_ok=True)
        storage = JournalStorage(JournalFileBackend(str(path)))
        return storage, {"kind": "journal", "url": project.relative(path), "heartbeat_s": None}
    if "://" not in url:
        raise BadInputError(
            f"{where} {redact(url)!r}: not a database URL or a .journal file",
            hint="use e.g. postgresql://user:password@host/db, sqlite:///optuna.db, or a path "
            "ending in .journal; leave it out for .mlt/optuna.journal",
        )
    try:
        storage = _open_rdb(RDBStorage, with_driver(url))
    except Exception as exc:
        raise BadInputError(
            f"{where} {redact(url)!r}: cannot open it: {type(exc).__name__}: "
            f"{scrub(str(exc), url)}",
            hint="check the URL, that the database is reachable and its driver installed",
        ) from None
    return storage, {"kind": "rdb", "url": redact(url), "heartbeat_s": HEARTBEAT_S,
                     "grace_s": GRACE_S}


def sampler_seed(cfg: MltConfig, iteration: int, existing: int, shared: bool) -> int:
    """Deterministic for one worker: iteration and the trials already in the study shift it, so
    a resumed study draws new points instead of replaying its first ones. Workers sharing a
    study each add a hash of host and pid: the same seed would make them propose the same
    trials during the random start-up."""
    seed = cfg.seed + ITERATION_SEED_STRIDE * (iteration - 1) + existing
    if shared:
        seed += zlib.crc32(f"{socket.gethostname()}:{os.getpid()}".encode()) % 100_000
    return seed


def make_sampler(trials: int, seed: int) -> tuple[optuna.samplers.TPESampler, dict[str, Any]]:
    args = {
        "seed": seed,
        # random start-up: a quarter of the budget, 3 to 10 trials, before TPE models anything
        "n_startup_trials": max(3, min(10, trials // 4)),
        "n_ei_candidates": 24,
        "multivariate": True,  # lr and batch size interact: model them jointly
        "group": False,
        "constant_liar": True,  # parallel workers: treat running trials as bad, avoid duplicates
    }
    return optuna.samplers.TPESampler(**args), {"type": "TPESampler", **args}


def make_pruner(trials: int, epochs: int) -> tuple[optuna.pruners.MedianPruner, dict[str, Any]]:
    args = {
        "n_startup_trials": max(2, min(5, trials // 4)),  # trials finished before pruning starts
        "n_warmup_steps": max(1, epochs // 5),  # epochs a trial always gets (steps = epochs)
        "interval_steps": 1,
        "n_min_trials": 2,  # trials that reported at an epoch before its median counts
    }
    return optuna.pruners.MedianPruner(**args), {"type": "MedianPruner", "step": "epoch", **args}


def open_study(storage: Any, name: str, greater_is_better: bool, sampler: Any, pruner: Any
               ) -> optuna.Study:
    # The core never prints: trial lines reach the CLI as progress events instead.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        study_name=name, storage=storage, sampler=sampler, pruner=pruner,
        direction="maximize" if greater_is_better else "minimize", load_if_exists=True,
    )


def existing_trials(storage: Any, name: str) -> int:
    """Trials already in the study (0 when it does not exist yet), without opening it twice."""
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return 0
    return len(storage.get_all_trials(study_id, deepcopy=False))


@dataclass
class IterationStudy:
    """The Optuna study of one optimize iteration, opened (or joined) and described."""

    study: optuna.Study
    storage: Any
    name: str
    info: dict[str, dict[str, Any]]  # storage (redacted URL), sampler, pruner: for the outcome


def open_iteration_study(cfg: MltConfig, project: Project, url: str | None, iteration: int,
                         trials: int, where: str = "--storage",
                         inputs: dict[str, Any] | None = None) -> IterationStudy:
    """Storage, name, seeded sampler and pruner of `iteration`'s study, and the study itself.
    With a shared URL, every worker joining the study derives the same name and seed."""
    storage, storage_info = open_storage(url, project, where)
    name = study_name(cfg, iteration, inputs)
    seed = sampler_seed(cfg, iteration, existing_trials(storage, name), shared=bool(url))
    sampler, sampler_info = make_sampler(trials, seed)
    pruner, pruner_info = make_pruner(trials, cfg.training.epochs)
    study = open_study(storage, name, cfg.greater_is_better, sampler, pruner)
    return IterationStudy(study, storage, name,
                          {"storage": storage_info, "sampler": sampler_info,
                           "pruner": pruner_info})


SEEDS_RUN_ATTR = "mlt.seeds_run:"  # a finished seeds-comparison run, kept as the trials are


def kept_seed_runs(study: optuna.Study) -> dict[str, list[Any]]:
    """The seeds-comparison runs this iteration finished (`compare.run_key` -> [value, run
    id]): an interrupted comparison continues from them instead of training them again."""
    return {k[len(SEEDS_RUN_ATTR):]: list(v) for k, v in study.user_attrs.items()
            if k.startswith(SEEDS_RUN_ATTR) and isinstance(v, list) and len(v) == 2}


def keep_seed_run(study: optuna.Study, key: str, entry: list[Any]) -> None:
    study.set_user_attr(SEEDS_RUN_ATTR + key, entry)


def counts(study: optuna.Study) -> dict[str, int]:
    out = {s.name.lower(): 0 for s in TrialState}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name.lower()] += 1
    return out


# -- workers and dead trials -------------------------------------------------------------------


def worker_info() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": _start_time(os.getpid())}


def _start_time(pid: int) -> str | None:
    """The process start time (clock ticks since boot) from /proc: a reused pid differs."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def is_dead_worker(info: Any) -> bool:
    """True only when sure: the worker ran on this machine and its process is gone."""
    if not isinstance(info, dict) or info.get("host") != socket.gethostname():
        return False
    pid = info.get("pid")
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    started = info.get("started")
    return started is not None and _start_time(pid) not in (None, started)


def is_orphan(trial: optuna.trial.FrozenTrial, grace_s: float = GRACE_S) -> bool:
    """A RUNNING trial that never said which worker runs it, older than the grace period: its
    worker died between asking for it and recording itself (before any heartbeat, which
    Optuna's stale-trial check needs), so nothing else would ever end it."""
    import datetime

    start = trial.datetime_start
    if "mlt.worker" in trial.user_attrs or start is None:
        return False
    now = datetime.datetime.now(start.tzinfo) if start.tzinfo else datetime.datetime.now()
    return (now - start).total_seconds() > grace_s


def fail_dead_trials(study: optuna.Study) -> list[int]:
    """Fail RUNNING trials whose worker died (heartbeat on a database, process check here).
    Their numbers are returned; nothing else in the study changes."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        optuna.storages.fail_stale_trials(study)
    failed = []
    for t in study.get_trials(deepcopy=False):
        if t.number not in before:
            continue
        if t.state == TrialState.FAIL:
            failed.append(t.number)
        elif t.state == TrialState.RUNNING and (is_dead_worker(t.user_attrs.get("mlt.worker"))
                                                or is_orphan(t)):
            with contextlib.suppress(Exception):  # another worker may fail it first
                study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
                failed.append(t.number)
    return failed


@contextlib.contextmanager
def heartbeat(storage: Any, trial: optuna.Trial) -> Iterator[None]:
    """Record a heartbeat for `trial` every HEARTBEAT_S while it trains, when the storage
    supports it: `study.optimize` does this itself, ask-and-tell has to."""
    interval = getattr(storage, "get_heartbeat_interval", lambda: None)()
    if not interval:
        yield
        return
    trial_id = trial._trial_id  # Optuna's storage key of the trial (no public accessor)
    stop = threading.Event()

    def beat() -> None:
        while True:
            with contextlib.suppress(Exception):
                storage.record_heartbeat(trial_id)
            if stop.wait(interval):
                return

    thread = threading.Thread(target=beat, name=f"mlt-heartbeat-{trial.number}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
