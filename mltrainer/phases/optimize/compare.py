"""The seeds comparison: the best trial's config against the baseline's, each trained with
`optimize.seeds` seeds, with the Student-t interval of each mean and Welch's interval of the
difference, oriented so that positive = better (also for rmse and mae).

The seeds are `cfg.seed + i` for i = 1..n: seed `cfg.seed` itself is the one the search picked
its best trial on, and re-using it would hand the optimized config its luckiest draw (the
winner's curse). Only the model's initialisation and the batch order change with the seed: the
data split is made once, with the plan's seed, and shared by every run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from mltrainer.config import MltConfig, sha256_json
from mltrainer.project import Project
from mltrainer.stats import diff_ci, mean_ci

RUN_KIND = "seeds"
LABELS = ("optimized", "baseline")


def comparison_seeds(cfg: MltConfig, n: int) -> list[int]:
    return [cfg.seed + i for i in range(1, n + 1)]


def compare_seeds(project: Project, bundle: Any, configs: dict[str, MltConfig], seeds: list[int],
                  *, trivial_baseline: dict[str, Any] | None = None,
                  trained: dict[str, list[Any]] | None = None,
                  on_run: Callable[[dict[str, Any]], None] | None = None,
                  on_trained: Callable[[str, list[Any]], None] | None = None) -> dict[str, Any]:
    """Train every config with every seed and compare them: `{"seeds", "optimized": {values,
    n, mean, std, ci}, "baseline": ..., "improvement": {diff, ci, ...} | None, "significant",
    "runs", "diverged", "trained"}`. A (config, seed) already in `trained` (the last
    iteration's, or this iteration's before an interrupt, keyed by `run_key`) is not trained
    again: same config, seed and split give the same run; the baseline's seeds then cost nothing
    after the first iteration. `on_trained(key, [value, run id])` keeps each finished run."""
    from mltrainer.engine import Trainer
    from mltrainer.engine.entrypoint import run_dir_kept_on_script_failure

    first = next(iter(configs.values()))
    metric, gib = first.goal.metric, first.greater_is_better
    fallback = (trivial_baseline or {}).get(metric)
    values: dict[str, list[float]] = {label: [] for label in configs}
    runs: dict[str, list[str]] = {label: [] for label in configs}
    diverged: list[dict[str, Any]] = []
    done: dict[str, list[Any]] = dict(trained or {})  # run_key -> [value, run id]
    total, index = len(seeds) * len(configs), 0
    for seed in seeds:
        for label, cfg in configs.items():
            index += 1
            seeded = cfg.model_copy(update={"seed": seed})
            key = run_key(seeded)
            kept = key in done
            if not kept:
                # like the trials: best.pt and last.pt only, unless training.keep_checkpoints
                keep = seeded.training.keep_checkpoints
                # gone if refused (kept with the log of a script that failed)
                with run_dir_kept_on_script_failure(project, RUN_KIND) as run_dir:
                    result = Trainer(seeded, bundle, run_dir, baseline=trivial_baseline,
                                     kind=RUN_KIND,
                                     keep_checkpoints=0 if keep is None else keep).fit()
                result.raise_if_interrupted(
                    f"optimize interrupted during the seeds comparison (run {run_dir.name}); "
                    "the search's trials and the comparison's finished runs are kept in the "
                    "study",
                    hint="re-run `mlt optimize`: it continues the study and trains only the "
                         "comparison runs still missing")
                best = result.best_metric
                done[key] = [best if best is not None and math.isfinite(best) else None,
                             run_dir.name]
                if on_trained is not None:
                    on_trained(key, done[key])
            value, run_id = done[key]
            if value is None:  # a diverged run learned nothing: score it as the trivial model
                diverged.append({"config": label, "seed": seed, "run_id": run_id,
                                 "scored_as": fallback})
                value = fallback
            if value is not None:
                values[label].append(float(value))
            runs[label].append(run_id)
            if on_run is not None:
                on_run({"type": "seed_run", "config": label, "seed": seed, "value": value,
                        "run_id": run_id, "index": index, "total": total, "kept": kept})
    return {"seeds": list(seeds), "metric": metric, "greater_is_better": gib,
            **summarize(values, gib), "runs": runs, "diverged": diverged, "trained": done}


def run_key(cfg: MltConfig) -> str:
    """What a run's result depends on: not the optimize/finalize/tracking sections, so editing
    `optimize.space` between iterations does not retrain the baseline's seeds."""
    dumped = cfg.model_dump(mode="json")
    return sha256_json({k: dumped[k] for k in ("task", "seed", "data", "model", "training",
                                                 "goal")})


def summarize(values: dict[str, list[float]], greater_is_better: bool) -> dict[str, Any]:
    """Mean, std and 95 % CI of each side; the difference oriented so positive = better."""
    out: dict[str, Any] = {}
    for label, vals in values.items():
        out[label] = {"values": vals, **(mean_ci(vals) if vals else {"n": 0})}
    opt, base = values.get("optimized", []), values.get("baseline", [])
    improvement = None
    if len(opt) >= 2 and len(base) >= 2:
        if greater_is_better:
            improvement = {**diff_ci(opt, base), "orientation": "optimized − baseline"}
        else:
            improvement = {**diff_ci(base, opt),
                           "orientation": "baseline − optimized (lower is better)"}
    out["improvement"] = improvement
    out["significant"] = bool(improvement and improvement["ci"][0] > 0)
    return out
