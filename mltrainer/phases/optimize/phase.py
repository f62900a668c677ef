"""Phase 4, `mlt optimize`: a targeted Optuna search over what diagnose recommended, then the
best trial's config against the baseline's across seeds, with confidence intervals.

One run of the phase is one iteration (at most `optimize.max_iterations`, counted on the current
baseline run): build the space (`space.py`), open or join the iteration's study
(`study`), run trials ask-and-tell around the Trainer until the study holds the requested number
(`search`), compare over seeds (`compare`) and write `mlt.optimized.yaml` (`config_file`).
`mlt optimize --stop` searches no more: it records the decision to finalize with the better of
the two configs of the last iteration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mltrainer.config import MltConfig
from mltrainer.errors import BadInputError, DataError, GateRefusedError
from mltrainer.phases.baseline.outcome import BaselineOutcome
from mltrainer.phases.diagnose.outcome import DiagnoseOutcome
from mltrainer.phases.optimize.outcome import OptimizeOutcome
from mltrainer.phases.plan.outcome import PlanOutcome
from mltrainer.runner import PhaseContext
from mltrainer.state import now

if TYPE_CHECKING:  # optuna and the data layer load inside the phase, not on import
    from mltrainer.data import DataBundle
    from mltrainer.phases.optimize.space import SearchSpace
    from mltrainer.phases.optimize.study import IterationStudy


def run(ctx: PhaseContext) -> OptimizeOutcome:
    previous = previous_iteration(ctx)
    if ctx.options.get("decision") == "stop":
        return _stop(ctx, previous)
    return _search(ctx, _iteration(ctx, previous), previous)


def open_worker(ctx: PhaseContext) -> _OpenSearch:
    """`mlt optimize --worker`, its checks: a shared storage, this iteration's study opened
    in it (bad input here is found before any trial runs)."""
    if not _storage(ctx)[0]:
        raise BadInputError(
            "`mlt optimize --worker` needs a storage that every worker shares",
            hint="pass --storage postgresql://USER:PASSWORD@HOST/DB (or set optimize.storage "
            "in mlt.yaml); on one machine a path ending in .journal works too")
    previous = previous_iteration(ctx)
    return _open_search(ctx, _iteration(ctx, previous), previous)


def run_worker(ctx: PhaseContext, s: _OpenSearch) -> dict[str, Any]:
    """`mlt optimize --worker`: join this iteration's study (on a shared storage) and run trials
    until it holds the requested number; no seeds comparison, no gate, no state change (the
    `mlt optimize` that leads the iteration does those once the study has its trials)."""
    from mltrainer.phases.optimize.search import run_trials

    summary = run_trials(s.it.study, s.runner, s.target, timeout_s=ctx.cfg.optimize.timeout,
                         enqueue=s.enqueue, on_trial=ctx.progress)
    return {"worker": True, "iteration": s.iteration, "study": s.it.name,
            "storage": s.it.info["storage"], "requested_trials": s.target,
            "ran_here": summary["ran"], "stopped": summary["stopped"],
            "recovered_dead_trials": summary["recovered"], "counts": summary["counts"],
            "elapsed_s": round(summary["elapsed_s"], 3),
            "next": "mlt optimize" + (" --storage URL" if ctx.options.get("storage") else "")
            + ": compares the best trial with the baseline across seeds and judges the gate"}


def _iteration(ctx: PhaseContext, previous: OptimizeOutcome | None) -> int:
    """The iteration to search next; past optimize.max_iterations it is refused."""
    iteration = (previous.iteration if previous else 0) + 1
    cap = ctx.cfg.optimize.max_iterations
    if iteration > cap:
        raise GateRefusedError(
            f"`mlt optimize` refused: {cap} search iteration(s) already ran on this baseline "
            f"(optimize.max_iterations = {cap})",
            hint="run `mlt optimize --stop` to finalize with the better of the baseline and the "
            "best config found",
            iteration=iteration, max_iterations=cap,
        )
    return iteration


def previous_iteration(ctx: PhaseContext) -> OptimizeOutcome | None:
    """The last recorded iteration's outcome, if it searched on the current baseline run (a new
    baseline starts the count again: its findings, and so the space, are new)."""
    outcome = OptimizeOutcome.recorded(ctx.state)
    if outcome is None or outcome.baseline_run != BaselineOutcome.of(ctx.state).run.id:
        return None
    return outcome


@dataclass
class _OpenSearch:
    """An iteration's study, joined, and what its trials are built from: shared by the
    command that leads the iteration and by every `--worker`."""

    iteration: int
    target: int
    findings: list[dict[str, Any]]
    space: SearchSpace
    bundle: DataBundle
    trivial: dict[str, Any]
    it: IterationStudy
    runner: Any
    base_raw: dict[str, Any]
    enqueue: dict[str, Any] | None


def _open_search(ctx: PhaseContext, iteration: int, previous: OptimizeOutcome | None
                 ) -> _OpenSearch:
    from mltrainer.phases.optimize.search import TrialRunner
    from mltrainer.phases.optimize.space import build_space
    from mltrainer.phases.optimize.study import open_iteration_study

    cfg, project = ctx.cfg, ctx.project
    target = _target(ctx)
    findings = DiagnoseOutcome.of(ctx.state).findings
    modality = str(PlanOutcome.of(ctx.state).data.spec.get("modality", "table"))
    space = build_space(cfg, findings, cfg.optimize.space, source=project.config_path.name,
                        modality=modality)
    bundle = _prepare(ctx)
    trivial = PlanOutcome.of(ctx.state).trivial_baseline
    url, where = _storage(ctx)
    it = open_iteration_study(cfg, project, url, iteration, target, where=where, inputs={
        "data": dict(bundle.fingerprints), "code": ctx.fingerprints["optimize"]["code"]})
    base_raw = cfg.model_dump(mode="json")
    # trials keep only best.pt and last.pt unless training.keep_checkpoints says otherwise
    keep = 0 if cfg.training.keep_checkpoints is None else cfg.training.keep_checkpoints
    runner = TrialRunner(project, bundle, base_raw, space, cfg.goal.metric, it.storage, trivial,
                         keep_checkpoints=keep)
    enqueue = ((previous.best if previous else None) or {}).get("optuna_params")
    return _OpenSearch(iteration, target, findings, space, bundle, trivial, it, runner,
                       base_raw, enqueue)


def _search(ctx: PhaseContext, iteration: int, previous: OptimizeOutcome | None
            ) -> OptimizeOutcome:
    from mltrainer.phases.optimize.compare import compare_seeds, comparison_seeds
    from mltrainer.phases.optimize.importances import BackgroundImportances
    from mltrainer.phases.optimize.search import (
        best_record,
        run_trials,
        trial_records,
        wait_for_running,
    )
    from mltrainer.phases.optimize.space import trial_config
    from mltrainer.phases.optimize.study import counts, keep_seed_run, kept_seed_runs

    cfg, project = ctx.cfg, ctx.project
    started_at = now()
    s = _open_search(ctx, iteration, previous)
    target, findings, space, bundle, trivial, it, base_raw = (
        s.target, s.findings, s.space, s.bundle, s.trivial, s.it, s.base_raw)
    summary = run_trials(it.study, s.runner, target, timeout_s=cfg.optimize.timeout,
                         enqueue=s.enqueue, on_trial=ctx.progress)
    # trials other workers still run count towards the target: judge once they have ended
    summary["recovered"] += wait_for_running(it.study)
    summary["counts"] = counts(it.study)
    records = trial_records(it.study, space, base_raw)
    best = best_record(records, cfg.greater_is_better)
    importances = BackgroundImportances(it.study, cfg.seed)  # while the seeds train


    comparison, chosen, chosen_raw = None, "baseline", base_raw
    if best is not None:
        best_cfg = trial_config(base_raw, best["params"], source=f"trial {best['number']}")
        comparison = compare_seeds(
            project, bundle, {"optimized": best_cfg, "baseline": cfg},
            comparison_seeds(cfg, cfg.optimize.seeds), trivial_baseline=trivial,
            trained={**kept_seed_runs(it.study),
                     **(((previous.comparison if previous else None) or {}).get("trained")
                        or {})},
            on_run=ctx.progress, on_trained=lambda key, entry: keep_seed_run(it.study, key,
                                                                             entry))
        if is_optimized_better(comparison):
            chosen, chosen_raw = "optimized", best_cfg.model_dump(mode="json")

    search = SearchResult(it, summary, space, records, best, comparison, importances.result())
    outcome = _iteration_outcome(ctx, iteration, started_at, target, findings, search, bundle)
    decided = _decide(ctx, outcome.model_dump(mode="json"), chosen, chosen_raw, space=space)
    outcome = outcome.model_copy(update=decided)
    outcome.iterations = [*(previous.iterations if previous else []), {
        "iteration": iteration, "study": it.name, "counts": summary["counts"],
        "best_value": best and best["value"], "chosen": chosen,
        "improvement": (comparison or {}).get("improvement")}]
    ctx.audit({"event": "optimize_iteration", "phase": "optimize", "iteration": iteration,
               "study": it.name, "counts": summary["counts"], "chosen": chosen})
    return outcome


@dataclass
class SearchResult:
    """One iteration's search: its study, the run summary, the space, every trial, the best
    one and its comparison with the baseline across seeds."""

    it: IterationStudy
    summary: dict[str, Any]  # counts, stopped, ran, recovered, elapsed_s (run_trials)
    space: SearchSpace
    records: list[dict[str, Any]]
    best: dict[str, Any] | None
    comparison: dict[str, Any] | None
    importances: dict[str, float] | None  # fANOVA's, of the finished trials (importances.py)


def _iteration_outcome(ctx: PhaseContext, iteration: int, started_at: str, target: int,
                       findings: list[dict[str, Any]], search: SearchResult, bundle: DataBundle
                       ) -> OptimizeOutcome:
    """What the search measured, before the decision about which config ships."""
    cfg = ctx.cfg
    it, summary, space, best = search.it, search.summary, search.space, search.best
    records, comparison = search.records, search.comparison
    return OptimizeOutcome(
        iteration=iteration, max_iterations=cfg.optimize.max_iterations,
        started_at=started_at, baseline_run=BaselineOutcome.of(ctx.state).run.id,
        metric=cfg.goal.metric, greater_is_better=cfg.greater_is_better,
        requested_trials=target, timeout_s=cfg.optimize.timeout,
        study={"name": it.name, "stopped": summary["stopped"], "ran_here": len(summary["ran"]),
               "recovered_dead_trials": summary["recovered"],
               "elapsed_s": round(summary["elapsed_s"], 3), "counts": summary["counts"]},
        **it.info,
        space=space.to_dict(),
        importances=search.importances,
        importance_evaluator=f"FanovaImportanceEvaluator(seed={cfg.seed})",
        diagnose_findings=[f["id"] for f in findings],
        trials=[{k: r[k] for k in ("number", "state", "value", "params", "run_id", "pruned_at",
                                   "error")} | {"host": (r.get("worker") or {}).get("host")}
                for r in records],
        best=best and {k: best[k] for k in ("number", "value", "params", "optuna_params",
                                            "run_id", "best_epoch", "val", "stopped_reason")},
        comparison=comparison,
        run=best and {"id": best["run_id"], "best_epoch": best["best_epoch"], "val": best["val"],
                      "stopped_reason": best["stopped_reason"], "dir": f"runs/{best['run_id']}"},
        data={"splits_used": ["train", "val"],
              "sizes": {"train": len(bundle.train.y), "val": len(bundle.val.y)},
              "fingerprints": {k: bundle.fingerprints[k] for k in ("train", "val")}},
    )


def _stop(ctx: PhaseContext, previous: OptimizeOutcome | None) -> OptimizeOutcome:
    """`--stop`: no new search; the last iteration's better config is the one to finalize."""
    if previous is None:
        raise BadInputError(
            "`mlt optimize --stop`: no optimize iteration has run on the current baseline, so "
            "there is nothing to decide between",
            hint="run `mlt optimize` first",
        )
    outcome = previous.model_dump(mode="json", exclude={"iterations"})
    outcome["decision"], outcome["decided_at"] = "stop", now()
    chosen, chosen_raw = previous.chosen, previous.chosen_config
    if chosen != "optimized" or not chosen_raw:  # nothing recorded to ship but the baseline
        chosen, chosen_raw = "baseline", ctx.cfg.model_dump(mode="json")
    changes = list(previous.changes) if chosen == "optimized" else []
    outcome.update(_decide(ctx, outcome, chosen, chosen_raw, changes=changes))
    outcome["iterations"] = list(previous.iterations)
    ctx.audit({"event": "optimize_decision", "phase": "optimize", "decision": "stop",
               "iteration": previous.iteration, "chosen": chosen})
    return OptimizeOutcome.model_validate(outcome)


def _decide(ctx: PhaseContext, outcome: dict[str, Any], chosen: str,
            chosen_raw: dict[str, Any], *, space: Any = None,
            changes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Write mlt.optimized.yaml for the chosen config; return the outcome fields about it."""
    from mltrainer.phases.optimize.config_file import changes_between, write_optimized_config

    cfg = ctx.cfg
    if changes is None:
        changes = changes_between(cfg.model_dump(mode="json"), chosen_raw, space)
    goal = goal_status(cfg, outcome.get("comparison"), chosen)
    written = write_optimized_config(ctx.project, chosen_raw, changes,
                                     header=_header(outcome, chosen, changes))
    return {"chosen": chosen, "chosen_config": chosen_raw, "changes": changes, "goal": goal,
            "config_path": written["path"], "config_sha256": written["config_sha256"]}


def is_optimized_better(comparison: dict[str, Any] | None) -> bool:
    """The better of the two by mean over seeds (oriented so that positive = better)."""
    if not comparison:
        return False
    if comparison.get("improvement"):
        return comparison["improvement"]["diff"] > 0
    opt, base = comparison["optimized"].get("mean"), comparison["baseline"].get("mean")
    if opt is None or base is None:
        return False
    return opt > base if comparison["greater_is_better"] else opt < base


def goal_status(cfg: MltConfig, comparison: dict[str, Any] | None, chosen: str
                ) -> dict[str, Any]:
    mean = ((comparison or {}).get(chosen) or {}).get("mean")
    met = mean is not None and math.isfinite(mean) and (
        mean >= cfg.goal.target if cfg.greater_is_better else mean <= cfg.goal.target)
    return {"metric": cfg.goal.metric, "target": cfg.goal.target, "chosen_mean": mean,
            "met_by_chosen": bool(met)}


def _header(outcome: dict[str, Any], chosen: str, changes: list[dict[str, Any]]) -> list[str]:
    comp = outcome.get("comparison") or {}
    metric = outcome["metric"]
    lines = [
        "mlt.optimized.yaml: the configuration `mlt finalize` trains, written by `mlt optimize`",
        f"at {now()}. mlt.yaml is left as it was (the baseline); do not edit it to match.",
        (f"Iteration {outcome['iteration']} of {outcome['max_iterations']}, Optuna study "
         f"{outcome['study']['name']}: trials {_counts_text(outcome['study']['counts'])}."),
    ]
    for label in ("optimized", "baseline"):
        side = comp.get(label) or {}
        if side.get("n"):
            lines.append(f"{label}: val {metric} mean {side['mean']:.4f} (std {side['std']:.4f}, "
                         f"95% CI [{side['ci'][0]:.4f}, {side['ci'][1]:.4f}]) over {side['n']} "
                         f"seeds")
    imp = comp.get("improvement")
    if imp:
        lines.append(f"improvement ({imp['orientation']}): {imp['diff']:+.4f}, 95% CI "
                     f"[{imp['ci'][0]:+.4f}, {imp['ci'][1]:+.4f}]")
    lines.append(f"chosen: {chosen}" + ("  (decision: `mlt optimize --stop`)"
                                        if outcome.get("decision") == "stop" else ""))
    if changes:
        lines += ["", "Changes from mlt.yaml (each also marked on its line below):"]
        lines += [f"  {c['path']}: {_short(c['baseline'])} -> {_short(c['value'])}  "
                  f"({', '.join(c['findings'])})" for c in changes]
    else:
        lines += ["", "No change: this is mlt.yaml's configuration (nothing beat the baseline)."]
    return [*lines, ""]


def _counts_text(n: dict[str, int]) -> str:
    return (f"{n.get('complete', 0)} complete, {n.get('pruned', 0)} pruned, "
            f"{n.get('fail', 0)} failed")


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _storage(ctx: PhaseContext) -> tuple[str | None, str]:
    """The study's storage URL and where the user gave it (`--storage` wins over
    optimize.storage); an empty --storage is bad input, not "the default"."""
    given = ctx.options.get("storage")
    if given is not None and not str(given).strip():
        raise BadInputError("--storage is empty",
                            hint="give a database URL or a path ending in .journal, or leave "
                                 "--storage out for .mlt/optuna.journal")
    return (given, "--storage") if given else (ctx.cfg.optimize.storage, "optimize.storage")


def _target(ctx: PhaseContext) -> int:
    trials = ctx.options.get("trials")
    if trials is None:
        return ctx.cfg.optimize.trials
    if int(trials) < 1:
        raise BadInputError(f"--trials must be at least 1 but got {trials}",
                            hint="leave it out to use optimize.trials from mlt.yaml")
    return int(trials)


def _prepare(ctx: PhaseContext) -> Any:
    from mltrainer.data import prepare_data

    bundle = prepare_data(ctx.cfg, ctx.project.root, audit=ctx.audit)
    if bundle.fingerprints != PlanOutcome.of(ctx.state).data.fingerprints:
        raise DataError(
            "the data no longer matches what `mlt plan` recorded (split hashes differ)",
            hint="re-run `mlt plan`",
        )
    return bundle
