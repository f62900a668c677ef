"""Training through the project's own script (`training.entrypoint` in mlt.yaml).

The engine's second way to train: instead of its loop, it runs the user's Lightning or Hugging
Face script, or plain PyTorch loop, in a subprocess (`python -m mltrainer.engine.entrypoint
SPEC`, whose `main` seeds Python, NumPy and torch with MLT_SEED, turns on deterministic
algorithms as mlt's own loop does, and calls the function of `python:<module>:<function>` or
runs a script path as `__main__`), with the run folder, seed, resolved config and the train and
val rows (never test) passed in through the MLT_* environment variables below
(`mltrainer.integrations.context()` reads them). The script's `MltCallback` (a plain loop's
`MltMonitor`) writes the metric stream and checkpoints into the run folder; this side follows
the stream as it grows and hands every event to the subscribers (detectors, progress,
optimize's pruning), exactly as `Trainer.fit` does, then returns the same `RunResult`.

`Trainer.fit`, `determinism_probe` and `load_model_from_checkpoint` dispatch here when the
config names an entrypoint, so every phase trains, probes and reloads such a project the same
way it does a built-in model.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import importlib
import importlib.util
import json
import math
import os
import runpy
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from mltrainer.config import MltConfig
from mltrainer.engine.result import RunResult
from mltrainer.engine.runfolder import provisional_run_dir, refuse_reusing, write_run_files
from mltrainer.errors import CheckpointError, ConfigError, MltError
from mltrainer.stream import decode_json

# The environment of the script (mltrainer.integrations._context documents each)
ENV_RUN_DIR = "MLT_RUN_DIR"
ENV_SEED = "MLT_SEED"
ENV_CONFIG = "MLT_CONFIG"
ENV_DATA = "MLT_DATA"
ENV_MAX_STEPS = "MLT_MAX_STEPS"
ENV_BASELINE = "MLT_BASELINE"
ENV_SPEC = "MLT_SPEC"
ENV_SCHEDULE_EPOCHS = "MLT_SCHEDULE_EPOCHS"
ENV_PARENT = "MLT_PARENT_PID"  # the mlt process: the script stops when it is gone
ORPHAN_GRACE_S = 10.0  # after the Ctrl-C it is sent, an orphaned script is ended
LOG_FILE = "entrypoint.log"
POLL_S = 0.05  # how often the stream is read while the script runs


class EntrypointError(MltError):
    """The user's training script failed (exit 1: its own error, shown with its log)."""


def run_entrypoint(cfg: MltConfig, bundle: Any, run_dir: Path, root: Path, *,
                   subscribers: Sequence[Any] = (), baseline: dict[str, Any] | None = None,
                   kind: str = "baseline", max_steps: int | None = None,
                   fresh: bool = True, schedule_epochs: int | None = None) -> RunResult:
    """Run the entrypoint into `run_dir`; every event of its stream reaches `subscribers` in
    order while it runs. A subscriber's stop (optimize's pruning) interrupts the script.
    `schedule_epochs`: the lr schedule's horizon when it is longer than the run (finalize's
    replay of the source run's recipe), handed to the script as MLT_SCHEDULE_EPOCHS."""
    assert cfg.training.entrypoint
    if kind != "probe":  # the probe's caller checked once, before its two threads
        check_entrypoint(cfg, root)
    run_dir = Path(run_dir)
    if fresh:
        refuse_reusing(run_dir)
    write_run_files(run_dir, cfg, root, "entrypoint")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mlt-entrypoint-") as tmp:
        env = _environment(cfg, bundle, run_dir, root, Path(tmp), baseline, max_steps,
                           schedule_epochs)
        follower = _StreamFollower(run_dir / "metrics.jsonl", subscribers)
        with open(run_dir / LOG_FILE, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "mltrainer.engine.entrypoint", cfg.training.entrypoint],
                cwd=root, env=env, stdout=log,
                stderr=subprocess.STDOUT)
            try:
                while proc.poll() is None:
                    if follower.poll() is not None and not follower.signalled:
                        follower.signalled = True
                        proc.send_signal(signal.SIGINT)
                    time.sleep(POLL_S)
            except KeyboardInterrupt:
                follower.stop = follower.stop or "interrupted"
                proc.send_signal(signal.SIGINT)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=30)
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        follower.poll()
    events = follower.events
    end = next((e for e in reversed(events) if e["type"] == "end"), None)
    if proc.returncode != 0 and follower.stop is None:
        raise EntrypointError(
            f"training.entrypoint {cfg.training.entrypoint} failed (exit code "
            f"{proc.returncode}): {_last_line(run_dir / LOG_FILE)}",
            hint=f"read {_shown(run_dir / LOG_FILE, root)} for the whole output")
    if not events and follower.stop is None and kind != "probe":  # (the probe says why)
        raise EntrypointError(
            f"training.entrypoint {cfg.training.entrypoint} ran to its end without writing "
            f"mlt's metric stream ({run_dir.name}/metrics.jsonl)",
            hint="add MltCallback() to its Trainer (mltrainer.integrations.transformers, "
                 ".lightning) or MltMonitor(model) to its loop (.loop); its output: "
                 f"{_shown(run_dir / LOG_FILE, root)}")
    if end is None:
        reason = follower.stop or ("error:no end event (does the script use MltCallback or "
                                   "MltMonitor?)")
    else:
        reason = follower.stop or str(end.get("reason") or "completed")
    return _result(cfg, run_dir, events, reason, kind, time.perf_counter() - started)


@contextlib.contextmanager
def run_dir_kept_on_script_failure(project: Any, kind: str) -> Iterator[Path]:
    """`provisional_run_dir` (a new run folder, removed again when its start is refused),
    except that a run whose script ran and failed (EntrypointError) keeps its folder: the
    error's fix points at its entrypoint.log, which went with the folder when the script
    failed before it wrote a line of the stream (an import error, a bad column name)."""
    failed: EntrypointError | None = None
    with provisional_run_dir(project, kind) as run_dir:
        try:
            yield run_dir
        except EntrypointError as exc:
            failed = exc
    if failed is not None:
        raise failed


def _environment(cfg: MltConfig, bundle: Any, run_dir: Path, root: Path, tmp: Path,
                 baseline: dict[str, Any] | None, max_steps: int | None,
                 schedule_epochs: int | None = None) -> dict[str, str]:
    data = tmp / "data.npz"  # train and val only: the test split never leaves mlt
    np.savez(data, X_train=bundle.train.X, y_train=bundle.train.y, X_val=bundle.val.X,
             y_val=bundle.val.y)
    env = dict(os.environ)
    path = [str(root), env.get("PYTHONPATH", "")]
    env.update({
        ENV_RUN_DIR: str(run_dir.resolve()), ENV_SEED: str(cfg.seed),
        ENV_CONFIG: str((run_dir / "config.resolved.yaml").resolve()),
        ENV_DATA: str(data), ENV_SPEC: json.dumps(bundle.spec.to_dict()),
        "PYTHONPATH": os.pathsep.join(p for p in path if p), ENV_PARENT: str(os.getpid())})
    env.pop(ENV_MAX_STEPS, None)
    env.pop(ENV_BASELINE, None)
    env.pop(ENV_SCHEDULE_EPOCHS, None)
    if max_steps is not None:
        env[ENV_MAX_STEPS] = str(max_steps)
    if schedule_epochs is not None:
        env[ENV_SCHEDULE_EPOCHS] = str(schedule_epochs)
    if baseline:
        env[ENV_BASELINE] = json.dumps(baseline)
    return env


class _StreamFollower:
    """Reads the complete lines the script has appended and hands them to the subscribers."""

    def __init__(self, path: Path, subscribers: Sequence[Any]) -> None:
        self.path = path
        self.subscribers = list(subscribers)
        self.events: list[dict[str, Any]] = []
        self.stop: str | None = None
        self.signalled = False
        self._offset = 0
        self._partial = b""

    def poll(self) -> str | None:
        """Feed new events; the first non-detector stop a subscriber asks for (a detector's
        stop is the script's own to make: its callback runs the same detectors)."""
        if not self.path.is_file():
            return None
        with open(self.path, "rb") as fh:
            fh.seek(self._offset)
            chunk = fh.read()
        self._offset += len(chunk)
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        for line in lines:
            if not line.strip():
                continue
            event = decode_json(json.loads(line))
            self.events.append(event)
            for sub in self.subscribers:
                answer = sub.on_event(event)
                if (answer is not None and event["type"] != "end" and self.stop is None
                        and not str(answer).startswith("detector:")):
                    self.stop = str(answer)
        return self.stop


def _result(cfg: MltConfig, run_dir: Path, events: list[dict[str, Any]], reason: str,
            kind: str, wall: float) -> RunResult:
    metric = cfg.goal.metric
    history = [{"epoch": e["epoch"], "train_loss": e.get("train_loss"),
                "val_loss": e.get("val_loss"), "val": dict(e.get("val") or {}),
                "train": dict(e.get("train") or {}), "lr": e.get("lr")}
               for e in events if e["type"] == "epoch"]
    best_epoch = next((e.get("best_epoch") for e in reversed(events) if e["type"] == "epoch"),
                      None) or None
    best = next((h for h in history if h["epoch"] == best_epoch), None)
    steps = [e for e in events if e["type"] == "step"]
    ckpt = run_dir / "checkpoints"
    start = next((e for e in events if e["type"] == "start"), {})
    value = best["val"].get(metric) if best else None
    return RunResult(
        run_id=run_dir.name, run_dir=str(run_dir), best_epoch=best_epoch,
        best_metric=value if value is None or math.isfinite(value) else None,
        val=dict(best["val"]) if best else {}, epochs_run=len(history),
        final_epoch=steps[-1]["epoch"] if steps else len(history),
        final_step=steps[-1]["step"] if steps else 0, stopped_reason=reason,
        device=str(start.get("device") or "cpu"),
        checkpoints={name: str(ckpt / f"{name}.pt") if (ckpt / f"{name}.pt").is_file() else None
                     for name in ("best", "last")},
        wall_time_s=wall, history=history, kind=kind, metric=metric,
        deterministic={"entrypoint": cfg.training.entrypoint})


def _shown(path: Path, root: Path) -> str:
    """`path` relative to the project root when it is inside it (a fix line is short)."""
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return str(path)


def _last_line(path: Path) -> str:
    lines = [ln for ln in path.read_text(encoding="utf-8", errors="replace").splitlines()
             if ln.strip()] if path.is_file() else []
    return lines[-1].strip()[:300] if lines else "(no output)"


# -- determinism: the entrypoint twice, a few steps each ------------------------------------------


def entrypoint_determinism(cfg: MltConfig, bundle: Any, steps: int, root: Path
                           ) -> dict[str, Any]:
    """Run the entrypoint twice with MLT_MAX_STEPS=`steps` and compare the weights it ends with
    (`checkpoints/final.pt`, written by MltCallback or MltMonitor) bitwise, as the engine's own
    probe does.
    Says plainly when it could not verify, and why."""
    import torch

    from mltrainer.engine.checkpoint import state_sha256
    from mltrainer.stream import read_stream

    check_entrypoint(cfg, root)  # a typo is bad input (exit 2), not an unverified check
    finals: list[dict[str, torch.Tensor] | None] = []
    counts: list[int] = []
    with tempfile.TemporaryDirectory(prefix="mlt-probe-") as tmp:
        dirs = [Path(tmp) / name for name in ("a", "b")]
        # the two runs are separate processes in separate folders: started together, they
        # overlap their start-up (mostly imports, several seconds each) on a multi-core machine
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            runs = [pool.submit(run_entrypoint, cfg, bundle, run_dir, root, kind="probe",
                                max_steps=steps) for run_dir in dirs]
            for run in runs:
                try:
                    run.result()
                except EntrypointError as exc:
                    return _unverified(steps, f"the entrypoint failed: {exc.message}")
        for run_dir in dirs:
            stream = run_dir / "metrics.jsonl"
            counts.append(sum(e["type"] == "step" for e in read_stream(stream))
                          if stream.is_file() else 0)
            final = run_dir / "checkpoints" / "final.pt"
            finals.append(torch.load(final, map_location="cpu", weights_only=True)["model"]
                          if final.is_file() else None)
    if not counts[0] or finals[0] is None or finals[1] is None:
        return _unverified(steps, "the entrypoint wrote no step events or no final weights "
                                  "(add mltrainer.integrations' MltCallback to its Trainer, "
                                  "or MltMonitor around its own loop)")
    a, b = finals
    hashes = [state_sha256(a), state_sha256(b)]
    diffs = [(a[k].double() - b[k].double()).abs().nan_to_num(nan=0.0).max().item()
             for k in a if k in b and a[k].is_floating_point() and a[k].numel()]
    evidence: dict[str, Any] = {
        "steps": counts[0], "identical": a.keys() == b.keys() and hashes[0] == hashes[1],
        "verified": True, "max_abs_diff": float(max(diffs, default=0.0)),
        "params_sha256": hashes, "n_tensors": len(a), "device": "cpu",
        "entrypoint": cfg.training.entrypoint, "max_steps": steps, "steps_run": counts,
        "max_steps_honoured": max(counts) <= steps}
    if max(counts) > steps:
        evidence["note"] = (f"the script ran {max(counts)} steps although MLT_MAX_STEPS was "
                            f"{steps}: it does not honour context().max_steps, so the check "
                            "trained it fully, twice")
    return evidence


def _unverified(steps: int, why: str) -> dict[str, Any]:
    return {"steps": steps, "identical": False, "verified": False, "max_abs_diff": None,
            "params_sha256": [None, None], "device": "cpu", "error": why}


# -- checking the references before anything runs ------------------------------------------------


def check_entrypoint(cfg: MltConfig, root: Path) -> None:
    """Refuse (ConfigError, exit 2) a `training.entrypoint` or `training.load_model` that names
    a script, module or function that is not there, before the script runs and before a run
    folder exists: a typo was found only as a failed determinism check at plan, or (load_model)
    after train-baseline had trained. Reads the source (ast), runs none of it; a module whose
    names cannot be read statically (a star import, a module __getattr__) is left to run."""
    root = Path(root)
    entry = cfg.training.entrypoint
    if not entry:
        return
    load = load_model_spec(cfg)
    checks = [("training.entrypoint", entry, None if entry.startswith("python:") else ""),
              ("training.load_model", load, "load_model")]
    for field, spec, default in checks:
        if spec.startswith("python:"):
            _, module, function = spec.split(":")
            source = _module_source(module, root)
            if source is None:
                raise ConfigError(f"{field}: {spec}: no module {module!r} in {root}",
                                  hint=f"put {module.replace('.', '/')}.py in the project root "
                                       "(next to mlt.yaml), or fix the name")
        else:
            source = (root / spec).resolve()
            if not source.is_file():
                raise ConfigError(f"{field}: {spec}: no such script ({source})",
                                  hint="point it at a .py file, relative to mlt.yaml's folder")
            function = default or ""
        if function:
            _has_function(source, function, field, spec)


def load_model_spec(cfg: MltConfig) -> str:
    """What reloads an entrypoint's checkpoint: `training.load_model`, else `load_model` in
    the entrypoint's module (python:<module>:load_model) or in its script."""
    spec = cfg.training.load_model or cfg.training.entrypoint or ""
    if spec.startswith("python:") and not cfg.training.load_model:
        spec = ":".join([*spec.split(":")[:2], "load_model"])
    return spec


def _module_source(module: str, root: Path) -> Path | None:
    """The .py file `module` would be imported from, the project root first; None when none."""
    parts = module.split(".")
    for base in [root, *map(Path, sys.path[1:])]:
        for candidate in (base.joinpath(*parts).with_suffix(".py"),
                          base.joinpath(*parts, "__init__.py")):
            if candidate.is_file():
                return candidate
    try:
        spec = importlib.util.find_spec(module) if "." not in module else None
    except (ImportError, ValueError):
        return None
    origin = getattr(spec, "origin", None)
    return Path(origin) if origin and origin.endswith(".py") else None


_AST_LOCK = threading.Lock()


def _has_function(path: Path, function: str, field: str, spec: str) -> None:
    import ast
    import difflib

    try:
        with _AST_LOCK:  # CPython 3.11's parser is not thread-safe (SystemError: "AST
            # constructor recursion depth mismatch"): plan's probe runs two scripts in threads
            tree = ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError) as exc:
        raise ConfigError(f"{field}: {path.name} cannot be read as Python ({exc})",
                          hint="fix the script; `python -m py_compile FILE` shows the error"
                          ) from None
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            if any(a.name == "*" for a in node.names):
                return  # names this file cannot show
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    if function in names or "__getattr__" in names:
        return
    close = difflib.get_close_matches(function, sorted(names), n=3, cutoff=0.5)
    tip = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    raise ConfigError(f"{field}: {spec}: {path.name} defines no {function!r}{tip}",
                      hint="define load_model(checkpoint_path, config, spec) -> nn.Module beside "
                           "the entrypoint, or name it with training.load_model: "
                           "python:<module>:<function>" if field == "training.load_model" else
                           f"name a function {path.name} defines")


# -- reloading a checkpoint through the project's load_model --------------------------------------


def load_entrypoint_model(path: str | os.PathLike[str], cfg: MltConfig, spec: Any,
                          root: Path | None) -> nn.Module:
    """The user's `load_model(path, config, spec)`, in eval mode. The user's code failing
    (its module or script not importing, the call raising, a return that is no module) is
    bad input naming `training.load_model` (ConfigError, exit 2), as a model factory's is."""
    spec_str = load_model_spec(cfg)
    loader = entrypoint_loader(cfg, root)
    if not Path(path).is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        model = loader(Path(path), cfg, spec)
    except MltError:
        raise  # mlt's own refusal inside it (load_checkpoint_weights on a bad file)
    except Exception as exc:
        raise ConfigError(
            f"training.load_model {spec_str} failed on {Path(path).name}: "
            f"{type(exc).__name__}: {exc}",
            hint="load_model(checkpoint, config, spec) must rebuild the trained model and load "
                 "the checkpoint's weights (load_checkpoint_weights(checkpoint)); run with "
                 "--debug for the traceback") from exc
    if not isinstance(model, nn.Module):
        raise ConfigError(f"training.load_model {spec_str} returned "
                          f"{type(model).__name__}, not a torch.nn.Module",
                          hint="make load_model return the model (an nn.Module mapping rows "
                               "to outputs), then run the command again")
    if spec is not None:
        # rows in, a tensor of logits (one value per row) out, as for mlt's own models: a
        # transformers-style output object was an 'unexpected failure' in the reload check
        from mltrainer.models import check_fits_data

        check_fits_data(model, spec, f"(training.load_model {spec_str})")
    return model.eval()


def entrypoint_loader(cfg: MltConfig, root: Path | None) -> Callable[..., Any]:
    """The project's `load_model`, imported (its module or script's top level runs here, in
    mlt's process); refused clearly (ConfigError, exit 2) when that fails. train-baseline and
    finalize call it before they train, so a load_model that cannot be imported is found
    before the training, not after it."""
    spec_str = load_model_spec(cfg)
    root = Path(root) if root is not None else Path.cwd()
    frameworks_importable()  # the module may import Lightning or transformers (see there)
    hint = ("define load_model(checkpoint_path, config, spec) -> nn.Module beside the "
            "entrypoint, or name it with training.load_model: python:<module>:<function>")
    try:
        return resolve_callable(spec_str, root, default_function="load_model")
    except (ValueError, TypeError) as exc:
        if not isinstance(exc, _ImportFailed):
            raise ConfigError(f"training.load_model: {exc}", hint=hint) from None
        cause = exc.__cause__
        where = exc.args[0]
        if _refused_outside_a_run(cause):
            raise ConfigError(
                f"training.load_model {spec_str}: {where} runs its training at import "
                "(outside an mlt run, so context() refuses)",
                hint="mlt imports load_model's file without running it as a script: put the "
                     "training under `if __name__ == \"__main__\":` (or in a function named "
                     "by training.entrypoint: python:<module>:<function>), or name a "
                     "load_model in another module with training.load_model") from cause
        raise ConfigError(
            f"training.load_model {spec_str}: importing {where} raised "
            f"{type(cause).__name__}: {cause}",
            hint="mlt imports it in its own process, with the project root (and a script's "
                 "own folder) first on sys.path: make that import work (run with --debug for "
                 "the traceback)") from cause


class _ImportFailed(ValueError):
    """Importing the module or script that holds a function raised (the cause)."""


def _refused_outside_a_run(exc: BaseException | None) -> bool:
    return isinstance(exc, ValueError) and "no mlt run context" in str(exc)


# -- the child process: python -m mltrainer.engine.entrypoint SPEC ------------------------------


def resolve_callable(spec: str, root: Path, default_function: str | None = None
                     ) -> Callable[..., Any]:
    """The callable `spec` names: python:<module>:<function>, or (with `default_function`) that
    function in a .py script. The project root goes first on sys.path. Raises ValueError (no
    script, or `_ImportFailed` from what importing it raised) or TypeError (no such function)
    with a one-line reason."""
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    if spec.startswith("python:"):
        _, module_name, function = spec.split(":")
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise _ImportFailed(f"module {module_name!r}") from exc
    else:
        path = (root / spec).resolve()
        if not path.is_file():
            raise ValueError(f"{spec}: no such script")
        function = default_function or ""
        if str(path.parent) not in sys.path:  # its own folder, as when it runs as a script
            sys.path.insert(0, str(path.parent))
        try:
            module = _module_from_script(path)
        except Exception as exc:
            raise _ImportFailed(spec) from exc
    target = getattr(module, function, None) if function else None
    if not callable(target):
        raise TypeError(f"{spec}: has no function {function!r}")
    return target


def _module_from_script(path: Path) -> Any:
    name = f"_mlt_script_{path.stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ValueError(f"{path}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]  # not a half-run module for the next caller
        raise
    return module


def frameworks_importable() -> None:
    """Lightning (through torchmetrics) and transformers' Trainer import torchvision when it is
    installed; on a CPU torch PyPI's CUDA-built wheel only imports through
    `mltrainer.models._vision.torchvision()` (see there). The first `import torchvision` goes
    through it (`import_torchvision_safely`: a finder, nothing imported before that, ~1.5 s
    saved where the script never needs torchvision)."""
    from mltrainer.models._vision import import_torchvision_safely

    import_torchvision_safely()


def stop_when_orphaned(parent: int, every_s: float = 0.5,
                       grace_s: float = ORPHAN_GRACE_S) -> threading.Thread:
    """A daemon thread of the script's process that ends it once the mlt process `parent`
    is gone (killed with SIGKILL, or crashed: nothing of it could stop the script): a Ctrl-C
    in the script's main thread (its callback records the run as interrupted where the
    framework lets it), then, `grace_s` later, the process's end. An orphan trained on into
    a run folder that `mlt status` already calls stopped, and held the CPU meanwhile."""
    main_thread = threading.main_thread().ident

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every_s)
        # a signal to the main thread itself, so a blocking call there (a sleep, a read)
        # is interrupted too (`_thread.interrupt_main` waits for it to return)
        signal.pthread_kill(main_thread, signal.SIGINT)  # type: ignore[arg-type]
        time.sleep(grace_s)
        os._exit(130)

    thread = threading.Thread(target=watch, name="mlt-parent-watch", daemon=True)
    thread.start()
    return thread


def main(argv: list[str]) -> int:
    from mltrainer.engine.seeding import seed_everything, set_deterministic

    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # mlt started in the background (a shell's `&`, as under nohup or CI, starts its
        # children with SIGINT ignored, and Python then installs no KeyboardInterrupt): the
        # orphan watcher's Ctrl-C and mlt's own must still end the script, its `finally`s run
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if os.environ.get(ENV_PARENT):
        stop_when_orphaned(int(os.environ[ENV_PARENT]))
    spec = argv[0]
    frameworks_importable()
    seed_everything(int(os.environ[ENV_SEED]))
    set_deterministic()
    root = Path.cwd()
    if spec.startswith("python:"):
        try:
            target = resolve_callable(spec, root)
        except _ImportFailed as exc:  # the module's own error, last in the log
            raise exc.__cause__ from None  # type: ignore[misc]
        target()
    else:
        sys.path.insert(0, str((root / spec).resolve().parent))  # as `python SCRIPT` does
        sys.argv = [spec]
        runpy.run_path(str(root / spec), run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
