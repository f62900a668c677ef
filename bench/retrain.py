"""What `finalize.retrain` should default to: the test score of the three ways to ship.

For each data set and seed (the seed also draws the split), one source run is trained as
`mlt train-baseline` trains it (`Trainer` on train, val held out, early stopping on), then the
model that ships is made three ways and scored on the test split:

- checkpoint:  `finalize.retrain: false`: the source run's best checkpoint, as it is;
- replay:      `finalize.retrain: true` (today): the production recipe on train+val, stopped at
               the source run's best epoch, lr schedule spanning the source run's epochs
               (`production_config` + `Trainer(schedule_epochs=...)`, what finalize runs);
- compressed:  the recipe before issue 11: the same, but the schedule compressed into the best
               epoch count (`training.epochs = best_epoch`, no horizon), for comparison.

    python bench/retrain.py [--seeds 3] [--only REGEX] [--out bench/out/retrain.jsonl]

Prints per data set the mean test metric of each choice over the seeds with its 95 % Student-t
interval, and the paired difference replay − checkpoint (per seed, then its interval), oriented
so that above zero means retraining helps. It sets `torch.set_num_threads(1)`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BASE = {  # the breast_cancer example, with the source swapped per data set
    "task": "classification",
    "data": {"split": {"val": 0.15, "test": 0.15, "stratify": True}},
    "model": {"kind": "mlp", "hidden": [64, 32], "dropout": 0.1},
    "training": {"epochs": 40, "batch_size": 32, "optimizer": "adamw", "lr": 0.001,
                 "weight_decay": 0.0001, "scheduler": "cosine", "grad_clip": 1.0,
                 "early_stopping": {"patience": 8, "min_delta": 0.0}},
    "goal": {"metric": "accuracy", "target": 0.9},
}
DATASETS: dict[str, dict[str, Any]] = {
    "breast_cancer": {},
    "wine": {},
    "iris": {"training": {"batch_size": 16}},
    "digits": {"model": {"hidden": [128, 64]}, "training": {"batch_size": 64, "lr": 0.003}},
    "diabetes": {"task": "regression", "goal": {"metric": "r2", "target": 0.45},
                 "data": {"split": {"val": 0.15, "test": 0.15, "stratify": False}},
                 "model": {"dropout": 0.0},
                 "training": {"epochs": 60, "lr": 0.003,
                              "early_stopping": {"patience": 10, "min_delta": 0.0}}},
    "warmup_step": {"source": "breast_cancer",  # a schedule with warmup and step drops
                    "training": {"scheduler": "step", "step_size": 8, "gamma": 0.3,
                                 "warmup_epochs": 3, "lr": 0.003}},
}
CHOICES = ("checkpoint", "replay", "compressed")


def merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def config(name: str, seed: int) -> Any:
    from mltrainer.config import parse_config

    spec = dict(DATASETS[name])
    source = spec.pop("source", name)
    raw = merge(BASE, spec)
    raw = merge(raw, {"name": f"retrain-{name}", "seed": seed,
                      "data": {"source": f"sklearn:{source}"}})
    return parse_config(raw)


def one(name: str, seed: int, work: Path) -> dict[str, Any]:
    from mltrainer.data import prepare_data, running_phase
    from mltrainer.engine import Trainer, compute_metrics, load_model_from_checkpoint, predict
    from mltrainer.phases.finalize.production import production_config, train_plus_val

    cfg = config(name, seed)
    bundle = prepare_data(cfg, work)
    with running_phase("finalize"):  # the test split opens only while finalize runs
        test = bundle.test(phase="finalize")
    metric = cfg.goal.metric
    runs = work / "runs"
    source = Trainer(cfg, bundle, runs / f"{name}-{seed}-source", root=work).fit()
    best = source.best_epoch or cfg.training.epochs
    scores: dict[str, float] = {}
    in_sample: dict[str, float] = {}  # each retrained model's val metric: val is in its rows
    started = time.perf_counter()
    model = load_model_from_checkpoint(Path(source.checkpoints["best"]), cfg, bundle.spec,
                                       root=work)
    scale = bundle.spec.target_scale  # regression: outputs back in the target's units
    scores["checkpoint"] = compute_metrics(cfg.task, test.y, predict(
        model, test.X, target_scale=scale))[metric]
    prod_cfg = production_config(cfg, best)
    data = train_plus_val(bundle)
    for choice, horizon in (("replay", cfg.training.epochs), ("compressed", None)):
        result = Trainer(prod_cfg, data, runs / f"{name}-{seed}-{choice}", root=work,
                         schedule_epochs=horizon).fit()
        model = load_model_from_checkpoint(Path(result.checkpoints["last"]), prod_cfg,
                                           data.spec, root=work)
        scores[choice] = compute_metrics(cfg.task, test.y, predict(
            model, test.X, target_scale=scale))[metric]
        in_sample[choice] = result.history[-1]["val"][metric]
    return {"dataset": name, "seed": seed, "metric": metric,
            "greater_is_better": cfg.greater_is_better, "best_epoch": best,
            "epochs": cfg.training.epochs, "epochs_run": source.epochs_run,
            "val": source.best_metric, "test": scores, "in_sample_val": in_sample,
            "n_test": len(test.y),
            "train_rows": len(bundle.train), "train_val_rows": len(data.train),
            "seconds": round(source.wall_time_s + time.perf_counter() - started, 1)}


def summarize(rows: list[dict[str, Any]]) -> list[str]:
    from mltrainer.stats import mean_ci

    lines = [f"{'data set':<14} {'metric':<8} {'best/epochs':>11}  "
             + "  ".join(f"{c:>22}" for c in CHOICES) + f"  {'replay - checkpoint':>26}"]
    for name in dict.fromkeys(r["dataset"] for r in rows):
        mine = [r for r in rows if r["dataset"] == name]
        sign = 1.0 if mine[0]["greater_is_better"] else -1.0
        cells = []
        for c in CHOICES:
            s = mean_ci([r["test"][c] for r in mine])
            cells.append(f"{s['mean']:.4f} [{s['ci'][0]:.3f},{s['ci'][1]:.3f}]")
        d = mean_ci([sign * (r["test"]["replay"] - r["test"]["checkpoint"]) for r in mine])
        epochs = "/".join(str(r["best_epoch"]) for r in mine) + f"/{mine[0]['epochs']}"
        lines.append(f"{name:<14} {mine[0]['metric']:<8} {epochs:>11}  "
                     + "  ".join(f"{c:>22}" for c in cells)
                     + f"  {d['mean']:+.4f} [{d['ci'][0]:+.3f},{d['ci'][1]:+.3f}]")
    wins = sum((r["test"]["replay"] - r["test"]["checkpoint"])
               * (1 if r["greater_is_better"] else -1) > 0 for r in rows)
    ties = sum(r["test"]["replay"] == r["test"]["checkpoint"] for r in rows)
    lines.append(f"replay better than checkpoint in {wins} of {len(rows)} (data set, seed) "
                 f"pairs, equal in {ties}; intervals: 95 % Student-t over seeds")
    return lines


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--only", default=None, help="regex over data set names")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "retrain.jsonl")
    args = parser.parse_args()
    torch.set_num_threads(1)
    names = [n for n in DATASETS if not args.only or re.search(args.only, n)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp, args.out.open("w") as out:
        for name in names:
            for seed in range(42, 42 + args.seeds):
                row = one(name, seed, Path(tmp))
                rows.append(row)
                out.write(json.dumps(row) + "\n")
                out.flush()
                print(f"{name} seed {seed}: best epoch {row['best_epoch']}/{row['epochs']} "
                      f"test {row['test']} ({row['seconds']} s)", file=sys.stderr, flush=True)
    print("\n".join(summarize(rows)))


if __name__ == "__main__":
    main()
