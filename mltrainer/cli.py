"""The `mlt` command line: click commands that parse, call library code, and render.

Errors surface in one place (`MltGroup.invoke`): an `MltError` becomes one line, a fix, and its
exit code; anything else is exit 1, with the traceback only under `--debug`. Heavy modules
(torch, pandas, sklearn) are imported inside commands, never here: `mlt status` and `mlt --help`
stay fast.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from mltrainer import __version__
from mltrainer.errors import (
    EXIT_DETECTOR_STOP,
    EXIT_REFUSED,
    EXIT_UNEXPECTED,
    BadInputError,
    MltError,
    environment_error,
)
from mltrainer.output import Output, restore_stdout, safe
from mltrainer.project import Project

EXIT_INTERRUPTED = 130


# What an interrupted command keeps, for its one `fix:` line. train-baseline's own interruption
# (a checkpoint, `--resume`) is an InterruptedRunError with its own hint; this is the rest.
_KEPT_ON_INTERRUPT = {
    "optimize": "its finished trials and seeds-comparison runs are kept in the study and "
                "not run again",
    "train-baseline": "add --resume to continue a run from the checkpoint it saved, if any",
    "finalize": "a test evaluation it recorded is reused, the test split is not opened again",
}


def _rerun_hint(command: str | None) -> str:
    """`fix:` for a Ctrl-C/SIGTERM: run the same command again, and what it keeps."""
    if not command:
        return "run the command again"
    kept = _KEPT_ON_INTERRUPT.get(command)
    return f"run `mlt {command}` again" + (f" ({kept})" if kept else "")


def _stop_signals_as_interrupt() -> dict[int, Any]:
    """SIGTERM (a scheduler's preemption, `timeout`, `kill`) ends a command as Ctrl-C does: the
    phase is recorded as failed with the reason, a message and exit 130, instead of a silent
    death that leaves the phase "running". Both raise KeyboardInterrupt through a handler that
    also records the signal (`engine.signals.raise_interrupt`), so an interrupt Python drops
    (one raised inside a weakref callback) still ends the command. Training replaces the
    handlers with its own for the length of `fit` (stop at the step boundary, write
    interrupt.pt) and puts them back."""
    from mltrainer.engine.signals import HANDLED, forget_stops, raise_interrupt

    forget_stops()
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, raise_interrupt) for sig in HANDLED}


class MltGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        """In the order they are declared: project, the five phases in order, then the rest."""
        return list(self.commands)

    def invoke(self, ctx: click.Context) -> Any:
        previous = _stop_signals_as_interrupt()
        try:
            result = super().invoke(ctx)
            from mltrainer.engine.signals import raise_if_stop_arrived

            raise_if_stop_arrived()  # one Python dropped on the way still ends the command
            return result
        except MltError as exc:
            out = _output(ctx)
            out.error(exc.message, exc.hint, exc.to_dict())
            if ctx.meta.get("mlt.debug"):
                traceback.print_exc(file=sys.stderr)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            _output(ctx).error("interrupted", _rerun_hint(ctx.invoked_subcommand),
                               {"error": "interrupted", "exit_code": 130})
            ctx.exit(EXIT_INTERRUPTED)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:  # the one place an unexpected failure is turned into exit 1
            env = environment_error(exc)  # disk full, read-only: the machine's, exit 2
            if env is not None:
                _output(ctx).error(env.message, env.hint, env.to_dict())
                if ctx.meta.get("mlt.debug"):
                    traceback.print_exc(file=sys.stderr)
                ctx.exit(env.exit_code)
            out = _output(ctx)
            if ctx.meta.get("mlt.debug"):
                traceback.print_exc(file=sys.stderr)
            out.error(
                f"unexpected failure: {type(exc).__name__}: {exc}",
                "re-run with --debug for the traceback, and report it",
                {"error": type(exc).__name__, "message": str(exc), "exit_code": EXIT_UNEXPECTED},
            )
            ctx.exit(EXIT_UNEXPECTED)
        finally:
            for sig, handler in previous.items():  # in-process callers get theirs back
                signal.signal(sig, handler)


    def main(self, args: Any = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any
             ) -> Any:
        """A usage error (unknown option, missing argument) is rendered like every other
        failure: one `error:` line and the fix on stderr, and under `--json` one JSON object
        on stdout with its exit code."""
        argv = list(sys.argv[1:] if args is None else args)
        try:
            if not standalone_mode:
                return super().main(argv, prog_name, complete_var, standalone_mode, **extra)
            self._main_standalone(argv, prog_name, complete_var, **extra)
        finally:
            restore_stdout()  # (under --json descriptor 1 went to stderr for the command)

    def _main_standalone(self, argv: list[str], prog_name: str | None,
                         complete_var: str | None, **extra: Any) -> None:
        out = Output(json_mode="--json" in argv)
        try:
            rv = super().main(argv, prog_name, complete_var, False, **extra)
        except click.ClickException as exc:
            ctx = getattr(exc, "ctx", None)
            where = f"`{ctx.command_path} --help`" if ctx is not None else "`mlt --help`"
            message = exc.format_message()
            out.error(message, f"see {where} for the usage",
                      {"error": type(exc).__name__, "message": message,
                       "exit_code": exc.exit_code})
            sys.exit(exc.exit_code)
        except click.Abort:
            out.error("aborted", None, {"error": "interrupted", "message": "aborted",
                                        "exit_code": EXIT_INTERRUPTED})
            sys.exit(EXIT_INTERRUPTED)
        sys.exit(rv if isinstance(rv, int) else 0)


def _output(ctx: click.Context) -> Output:
    root = ctx.find_root()
    return Output(json_mode=bool(root.meta.get("mlt.json")))


def common(fn: Callable[..., Any]) -> Callable[..., Any]:
    """-C/--dir, --json and --debug on every command (also accepted before the command)."""

    @click.option("-C", "--dir", "directory", type=click.Path(file_okay=False), default=None,
                  help="Project directory (default: the current one).")
    @click.option("--json", "json_mode", is_flag=True, default=False,
                  help="Print one machine-readable JSON object to stdout.")
    @click.option("--debug", is_flag=True, default=False, help="Show tracebacks on errors.")
    @click.pass_context
    @functools.wraps(fn)
    def wrapper(ctx: click.Context, directory: str | None, json_mode: bool, debug: bool,
                **kwargs: Any) -> Any:
        meta = ctx.find_root().meta
        meta["mlt.json"] = json_mode or meta.get("mlt.json", False)
        meta["mlt.debug"] = debug or meta.get("mlt.debug", False)
        directory = directory or meta.get("mlt.dir")
        out = Output(json_mode=meta["mlt.json"])
        project = Project.at(directory)
        # the command runs in the project's folder (as `git -C` does), so the project's own
        # code (a data function, a Dataset, a model factory) opens its relative paths there;
        # the paths given on the command line stay relative to where mlt was called
        for param in ctx.command.params:
            value = kwargs.get(param.name or "")
            if isinstance(param.type, click.Path) and value:
                kwargs[param.name or ""] = (tuple(map(os.path.abspath, value))
                                            if isinstance(value, tuple)
                                            else os.path.abspath(value))
        with _working_in(project.root):
            return fn(out=out, project=project, **kwargs)

    return wrapper


@contextlib.contextmanager
def _working_in(folder: Path) -> Iterator[None]:
    """The current directory is `folder` (when it is one) for the block, then what it was."""
    if not folder.is_dir():
        yield
        return
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


@click.group(cls=MltGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-C", "--dir", "directory", type=click.Path(file_okay=False), default=None,
              help="Project directory (default: the current one).")
@click.option("--json", "json_mode", is_flag=True, default=False,
              help="Print one machine-readable JSON object to stdout.")
@click.option("--debug", is_flag=True, default=False, help="Show tracebacks on errors.")
@click.version_option(__version__, prog_name="mlt")
@click.pass_context
def cli(ctx: click.Context, directory: str | None, json_mode: bool, debug: bool) -> None:
    """mlt: train PyTorch models reproducibly through five gated phases.

    \b
    mlt init my-proj --example digits && cd my-proj
    mlt plan → mlt train-baseline → mlt diagnose → mlt optimize → mlt finalize
    mlt status shows where the project stands and the next command.
    """
    ctx.meta["mlt.dir"], ctx.meta["mlt.json"], ctx.meta["mlt.debug"] = directory, json_mode, debug


# The cyclic garbage collector in a command's process (`main`, the `mlt` executable; not the
# library in a caller's process): a first-generation threshold of 10 000 allocations instead of
# 700, and none of it at exit. Importing torch, torch._dynamo and the CLI's modules builds ~1M
# long-lived objects; at the default threshold the collector ran 5 full and 63 middle passes
# over them during a short train-baseline (0.75-1 s at load 5), and the interpreter's own
# collections after the last exit handler 1.5-2 s more (load 5-7; 0.3-0.4 s frozen), on issue
# 16's 3-epoch job (bench/README.md, sixth round).
# Nothing is collected that would have been kept: cycles wait a little longer, and at exit
# the objects alive are frozen (`gc.freeze`) rather than traversed, as the process ends anyway.
GC_THRESHOLD = (10_000, 10, 10)


def _settle_collector() -> None:
    import atexit
    import gc

    gc.set_threshold(*GC_THRESHOLD)
    atexit.register(gc.freeze)  # registered first, so it runs last: after every other handler


def main() -> None:
    _settle_collector()
    cli(prog_name="mlt")


# ---------------------------------------------------------------- project and status


@cli.command()
@click.argument("target", required=False, type=click.Path(file_okay=False))
@click.option("--example", default="digits", show_default=True,
              help="Which example to start from (digits, breast_cancer, diabetes, images, text).")
@click.option("--data", "data", default=None,
              help="Start from your own data instead: a file (.csv/.npz/.jsonl/.parquet), a "
                   "datasets folder, or an image folder (one sub-folder per class).")
@click.option("--target", "target_col", default=None, help="The target column (with --data).")
@common
def init(out: Output, project: Project, target: str | None, example: str, data: str | None,
         target_col: str | None) -> None:
    """Create a project: mlt.yaml from an example or your data, and the .mlt/ state folder."""
    from mltrainer.commands import init_project

    result = init_project(Project.at(target) if target else project, example, data=data,
                          target=target_col)
    origin = f"example '{safe(example)}'" if data is None else f"the data in {safe(data)}"
    out.info(f"created [bold]{safe(result['config'])}[/] from {origin}")
    for note in result.get("notes") or []:
        out.info(f"note: {safe(note)}")
    out.info(f"next: cd {safe(result['root'])} && [bold]mlt plan[/]")
    out.result(result)


@cli.command()
@common
def status(out: Output, project: Project) -> None:
    """Every phase, its status and why, and the next command."""
    from mltrainer.commands import project_status

    result = project_status(project)
    out.info(f"[bold]{safe(result['name'])}[/] — {safe(result['root'])}")
    for ph in result["phases"]:
        word = out.status_word(ph["status"], 8)
        out.info(f"  {ph['name']:<9} {word} [dim]{safe(ph['reason'])}[/]")
    spent = result.get("test_evaluations") or {}
    if spent.get("count"):
        many = spent["count"] > 1
        out.info(f"test split evaluated {spent['count']} time(s)" + (
            " [bold red](spent again: finalize's test_evaluated_once fails unless waived)[/]"
            if many else "") + ":")
    if spent.get("error"):
        out.info(f"[bold red]test split record:[/] {safe(spent['error'])}")
    for ev in spent.get("evaluations", []):
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in ev["metrics"].items())
        why = f" — reason: {safe(ev['reason'])}" if ev.get("reason") else " (the first)"
        out.info(f"  #{ev['number']} {ev['evaluated_at']} config "
                 f"{str(ev['config_fingerprint'])[:12]}: {metrics}{why}")
    out.info(f"next: [bold]{safe(result['next'])}[/]" if result["next"]
             else "every phase has passed")
    out.result(result)


# ---------------------------------------------------------------- phases


def _run_phase(out: Output, project: Project, name: str, **options: Any) -> dict[str, Any]:
    from mltrainer.commands import run_phase
    from mltrainer.output import TrainingProgress
    from mltrainer.workflow import phase_def

    progress = TrainingProgress(out, phase_def(name).command)
    result = run_phase(project, name, progress=progress.on_event, **options)
    if "findings" in result:
        out.findings(result["findings"])
    split = (result.get("data") or {}).get("split") or {}  # plan's: what data was left out
    skipped = split.get("skipped_files") or {}
    if skipped.get("count"):  # nothing left out silently: a .gif or .heic picture, a stray file
        reasons = ", ".join(f"{n} {safe(r)}" for r, n in skipped["by_reason"].items())
        out.info(f"note: {skipped['count']} file(s) in the image folder are not read "
                 f"({reasons}), e.g. {_few(skipped['examples'])}")
    unseen = split.get("unseen_categories") or {}
    if unseen:  # categories training never saw: the model reads them as none of the known
        where = "; ".join(f"{split}: " + ", ".join(f"{n} row(s) of {safe(repr(col))}"
                                                    for col, n in cols.items())
                          for split, cols in unseen.items())
        out.info(f"note: categories train does not hold, encoded as none of the known ones "
                 f"({where})")
    out.gate(result)
    out.result(result)
    return result


def _exit_for(result: dict[str, Any]) -> None:
    """3 when the gate blocked, 4 when a detector stopped training; 0 otherwise."""
    if (result.get("run") or {}).get("stopped_reason", "").startswith("detector:"):
        sys.exit(EXIT_DETECTOR_STOP)
    if not result["gate"]["passed"]:
        sys.exit(EXIT_REFUSED)


def torchrun_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--nproc/--nnodes/--node-rank/--rdzv-endpoint: torchrun's own options, passed through."""
    for option in reversed([
        click.option("--nproc", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Training processes on this machine (torchrun --nproc-per-node; one "
                     "per GPU, or gloo processes on the CPU)."),
        click.option("--nnodes", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Machines taking part (torchrun --nnodes)."),
        click.option("--node-rank", type=click.IntRange(min=0), default=0, show_default=True,
                     help="This machine's index, 0 on the machine that writes (torchrun "
                     "--node-rank)."),
        click.option("--rdzv-endpoint", default=None,
                     help="HOST:PORT of node rank 0 for --nnodes > 1 (torchrun "
                     "--rdzv-endpoint)."),
    ]):
        fn = option(fn)
    return fn


def _launch_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The torchrun options, checked before anything runs (bad ones: exit 2, nothing written)."""
    from mltrainer.engine.launch import Launch

    options = {k: kwargs[k] for k in ("nproc", "nnodes", "node_rank", "rdzv_endpoint")}
    Launch(**options)
    return options


def _join(out: Output, project: Project, kind: str, resume: bool, **kwargs: Any) -> bool:
    """On a machine of node rank > 0: run this machine's processes only (no state, no
    report: node rank 0 writes them). True when it did."""
    if not kwargs["node_rank"]:
        return False
    from mltrainer.commands import join_training

    result = join_training(project, kind, resume=resume, **_launch_options(kwargs))
    out.info(f"node {result['node_rank']}: trained {result['nproc']} process(es) of "
             f"{result['world_size']}; node 0 writes the run and the report")
    out.result(result)
    return True


@cli.command()
@torchrun_options
@common
def plan(out: Output, project: Project, **launch: Any) -> None:
    """Phase 1: seeds, environment, data fingerprints and split, baselines, determinism.

    With --nproc N the determinism probe also runs twice under torchrun at that world size."""
    _exit_for(_run_phase(out, project, "plan", **_launch_options(launch)))


@cli.command("train-baseline")
@click.option("--resume", is_flag=True, default=False,
              help="Continue the last baseline run from its last checkpoint.")
@torchrun_options
@common
def train_baseline(out: Output, project: Project, resume: bool, **launch: Any) -> None:
    """Phase 2: train the configured model, watched by the detectors; judge it.

    With --nproc N (and --nnodes/--node-rank/--rdzv-endpoint) it trains under torchrun with
    DistributedDataParallel; training.batch_size is per process."""
    if _join(out, project, "baseline", resume, **launch):
        return
    _exit_for(_run_phase(out, project, "baseline", resume=resume, **_launch_options(launch)))


@cli.command()
@click.option("--metrics", "metrics", type=click.Path(dir_okay=False), default=None,
              help="Diagnose this metrics.jsonl instead of the baseline run's (works outside a "
              "project too: then no gate is judged).")
@common
def diagnose(out: Output, project: Project, metrics: str | None) -> None:
    """Phase 3: run the detectors over the metric stream; findings, playbooks, recommendations."""
    from mltrainer.commands import diagnose_standalone

    if metrics and not project.is_initialized():
        result = diagnose_standalone(Path(metrics))
        out.findings(result["findings"])
        for note in result["unjudged"]:
            out.info(f"not judged: {safe(note)}")
        out.result(result)
        return
    result = _run_phase(out, project, "diagnose", metrics=metrics)
    _exit_for(result)


@cli.command()
@click.option("--storage", default=None,
              help="Optuna storage URL (e.g. postgresql://...) shared by several workers; "
              "default: a journal file in .mlt/.")
@click.option("--trials", type=int, default=None, help="Trials the study should reach in total, "
              "across all workers sharing it (default: optimize.trials from mlt.yaml).")
@click.option("--stop", "decision", flag_value="stop", default=None,
              help="Record the decision to stop searching and finalize with the better config.")
@click.option("--worker", is_flag=True, default=False,
              help="Only run trials in the shared study (--storage) until it has --trials; no "
              "seeds comparison, no gate, no state change. Start one per extra machine.")
@common
def optimize(out: Output, project: Project, storage: str | None, trials: int | None,
             decision: str | None, worker: bool) -> None:
    """Phase 4: targeted Optuna search over what diagnose recommended, compared across seeds."""
    if worker:
        from mltrainer.commands import optimize_worker
        from mltrainer.output import TrainingProgress

        progress = TrainingProgress(out, "mlt optimize --worker")
        result = optimize_worker(project, progress=progress.on_event, storage=storage,
                                 trials=trials)
        n = result["counts"]
        out.info(f"worker: ran {len(result['ran_here'])} trial(s) here; study "
                 f"{result['study']} has {n['complete']} complete, {n['pruned']} pruned, "
                 f"{n['fail']} failed of {result['requested_trials']} requested")
        out.info(f"next: [bold]{result['next']}[/]")
        out.result(result)
        return
    _exit_for(_run_phase(out, project, "optimize", storage=storage, trials=trials,
                         decision=decision))


@cli.command()
@click.option("--nproc", type=click.IntRange(min=1), default=1, show_default=True,
              help="Production training in this many processes on this machine (torchrun, "
              "DDP); training.batch_size is per process.")
@click.option("--reevaluate-test", "reevaluate_test", is_flag=True, default=False,
              help="Evaluate a config other than the one the test split was already spent on "
              "(needs --reason; recorded, and the gate's test_evaluated_once item then fails "
              "unless waived).")
@click.option("--reason", default=None, help="Why the test split is spent again (with "
              "--reevaluate-test): written to the audit log and every later report.")
@common
def finalize(out: Output, project: Project, nproc: int, reevaluate_test: bool,
             reason: str | None) -> None:
    """Phase 5: production training, the one test evaluation, verified exports, readiness gate."""
    from mltrainer.phases.finalize.evaluation import check_reevaluation_options

    check_reevaluation_options(reevaluate_test, reason)  # bad options first: exit 2, not 3
    _exit_for(_run_phase(out, project, "finalize", nproc=nproc,
                         reevaluate_test=reevaluate_test, reason=reason))


@cli.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="Where to write the predictions (CSV): a new file, never a project file "
              "or the input.")
@click.option("--column", default=None,
              help="Text models: the CSV column holding the texts (default: text).")
@click.option("--force", is_flag=True, default=False,
              help="Replace an existing --out file (never a project file or an input).")
@common
def predict(out: Output, project: Project, inputs: tuple[str, ...], out_path: str,
            column: str | None, force: bool) -> None:
    """Run the exported ONNX model, with its preprocessing, on raw inputs: a CSV of rows
    (tables), image files or folders (images), a text file or a CSV column (text), .npy files
    of items (a Python Dataset)."""
    from mltrainer.phases.finalize.predict import predict_inputs

    result = predict_inputs(project, [Path(p) for p in inputs], Path(out_path), column,
                            force=force)
    out.info(f"wrote {result['rows']} predictions to {safe(result['out'])}")
    skipped = result.get("skipped_files") or {}
    if skipped.get("count"):
        out.info(f"skipped {skipped['count']} file(s) of the input folders that are not images "
                 f"and have no prediction: {_few(skipped['examples'])}"
                 f"{', ...' if skipped['count'] > len(skipped['examples']) else ''}")
    blank = result.get("skipped_blank_lines") or []
    if blank:
        out.info(f"skipped {len(blank)} blank line(s), which have no prediction: {_few(blank)}")
    ignored = result.get("ignored_columns") or []
    if ignored:  # nothing dropped silently: a misspelt column would be one of these
        out.info(f"ignored {len(ignored)} column(s) the model does not read: {_few(ignored)}")
    for name, unseen in (result.get("unseen_categories") or {}).items():
        out.info(f"[bold yellow]warning:[/] column {safe(repr(name))}: {unseen['rows']} row(s) "
                 f"hold a category training never saw ({_few(unseen['values'])}"
                 f"{', ...' if unseen['distinct'] > len(unseen['values']) else ''}), encoded as "
                 "none of the known ones")
    status = result.get("finalize_status")
    if status != "passed":
        out.info(f"[bold yellow]warning:[/] the finalize gate is {safe(status or 'not run')}: "
                 "these predictions come from an artifact its gate has not passed "
                 "(`mlt status`)")
    out.result(result)


def _few(names: list[str], most: int = 5) -> str:
    """The first `most` names, escaped, with ", ..." when there are more."""
    return ", ".join(safe(n) for n in names[:most]) + (", ..." if len(names) > most else "")


# ---------------------------------------------------------------- gates by hand


@cli.command()
@click.argument("phase")
@click.argument("item")
@click.option("--by", "by", required=True, help="Who signs off (a name or an email).")
@click.option("--note", default=None, help="What was reviewed.")
@common
def signoff(out: Output, project: Project, phase: str, item: str, by: str, note: str | None
            ) -> None:
    """Sign off a manual gate item."""
    from mltrainer.commands import signoff_item

    result = signoff_item(project, phase, item, by, note)
    out.info(f"signed off {safe(phase)}/{safe(item)} by {safe(by)}")
    out.gate(result)
    out.result(result)


@cli.command()
@click.argument("phase")
@click.argument("item")
@click.option("--reason", required=True, help="Why the item may be skipped (recorded forever).")
@click.option("--by", "by", default=None, help="Who waives it.")
@common
def waive(out: Output, project: Project, phase: str, item: str, reason: str, by: str | None
          ) -> None:
    """Waive a gate item, with a reason that every later report prints."""
    from mltrainer.commands import waive_item

    result = waive_item(project, phase, item, reason, by)
    out.info(f"waived {safe(phase)}/{safe(item)}: {safe(reason)}")
    out.gate(result)
    out.result(result)


@cli.command()
@click.argument("phase", required=False)
@click.option("--open", "open_browser", is_flag=True, default=False,
              help="Open the HTML report (or the index) in a browser.")
@common
def report(out: Output, project: Project, phase: str | None, open_browser: bool) -> None:
    """Re-render the gate reports (all phases that have one, or PHASE) and print their paths."""
    from mltrainer.commands import render_reports

    result = render_reports(project, phase)
    for p in result["reports"] + result["html"] + [result["index"]]:
        click.echo(p, err=out.json_mode)
    if open_browser:
        import webbrowser

        webbrowser.open(Path(result["open"]).resolve().as_uri())
    out.result(result)


# ---------------------------------------------------------------- config


@cli.group(cls=MltGroup)
def config() -> None:
    """Check mlt.yaml, or print its JSON Schema."""


@config.command("validate")
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@common
def config_validate(out: Output, project: Project, path: str | None) -> None:
    """Validate mlt.yaml (or PATH)."""
    import mltrainer.phases  # noqa: F401 (their CONFIG_CHECKS: optimize.space)
    from mltrainer.runner import load_project_config

    target = Path(path) if path else project.config_path
    cfg = load_project_config(target)
    out.info(f"[green]valid[/]: {safe(target)} (config sha256 {cfg.fingerprint()[:12]})")
    out.result({"valid": True, "path": str(target), "fingerprint": cfg.fingerprint()})


@config.command("schema")
@common
def config_schema(out: Output, project: Project) -> None:
    """Print the JSON Schema of mlt.yaml (for editors)."""
    from mltrainer.config import json_schema

    click.echo(json.dumps(json_schema(), indent=2))


@cli.command()
@click.argument("topic")
@common
def explain(out: Output, project: Project, topic: str) -> None:
    """Print the guide of a phase (plan, baseline, ...) or the playbook of a finding."""
    from mltrainer.commands import explain_topic

    text = explain_topic(topic)
    click.echo(text, err=out.json_mode)
    out.result({"topic": topic, "text": text})


@cli.command()
@click.option("--dir", "target", default="mlt-demo", show_default=True,
              type=click.Path(file_okay=False), help="Where to create the demo project.")
@click.option("--json", "json_mode", is_flag=True, default=False,
              help="Print one machine-readable JSON object to stdout.")
@click.option("--debug", is_flag=True, default=False, help="Show tracebacks on errors.")
@click.pass_context
def demo(ctx: click.Context, target: str, json_mode: bool, debug: bool) -> None:
    """Create a project from the embedded digits example and run every phase that exists."""
    from mltrainer.commands import init_project, project_status, run_phase
    from mltrainer.output import TrainingProgress
    from mltrainer.workflow import phase_def

    meta = ctx.find_root().meta
    meta["mlt.json"] = json_mode or meta.get("mlt.json", False)
    meta["mlt.debug"] = debug or meta.get("mlt.debug", False)
    out = Output(json_mode=meta["mlt.json"])
    project = Project.at(Path(target))
    if project.root.exists() and any(project.root.iterdir()):
        raise BadInputError(
            f"{project.root} exists and is not empty",
            hint="choose another place with `mlt demo --dir PATH`, or remove it",
        )
    init_project(project, "digits")
    out.info(f"demo project: [bold]{safe(project.root)}[/]")
    results: list[dict[str, Any]] = []
    name: str | None = "plan"
    while name is not None and name not in [r["phase"] for r in results]:
        command = phase_def(name).command
        out.info(f"\n[bold]$ {command}[/]")
        result = run_phase(project, name, progress=TrainingProgress(out, command).on_event)
        out.gate(result)
        results.append(result)
        if not result["gate"]["passed"]:
            break
        name = project_status(project)["current"]
    status = project_status(project)
    out.info(f"\nreports in {safe(project.reports_dir)}; next: [bold]{safe(status['next'])}[/]")
    out.result({"root": str(project.root), "phases": results, "status": status})

