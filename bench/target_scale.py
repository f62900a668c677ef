"""Regression targets standardised on train (`data.standardize_target`) against raw targets.

For each regression data set and seed (the seed also draws the split), the same config is
trained twice with `Trainer` as `mlt train-baseline` trains it (val held out, early stopping
on): with `data.standardize_target: true` (the default) and `false` (raw targets, mlt before
issue 11's targets change). The best checkpoint of each run is scored on val and on the test
split; the first epoch's train loss shows the units the detectors see.

    python bench/target_scale.py [--seeds 5] [--only REGEX] [--lr 0.003 0.001]

`diabetes` is the example (examples/diabetes.yaml, its lr unless --lr); `offset` is
scikit-learn's make_regression(200 rows, 8 features) + 100 through a python: source, a target
with a large offset. Prints per data set, lr and switch the mean val and test rmse and r2 over
the seeds with their 95 % Student-t intervals, the best epoch and the first train loss.
It sets `torch.set_num_threads(1)`.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

OFFSET_MODULE = '''
import numpy as np
from sklearn.datasets import make_regression


def load():
    X, y = make_regression(n_samples=400, n_features=8, n_informative=5, noise=10.0,
                           random_state=0)
    return X.astype(np.float32), (y + 100.0).astype(np.float32)
'''


def config(name: str, seed: int, lr: float | None, standardize: bool) -> Any:
    from mltrainer.config import parse_config

    raw = yaml.safe_load((REPO / "examples" / "diabetes.yaml").read_text())
    raw.update(name=f"targets-{name}", seed=seed)
    if name == "offset":
        raw["data"]["source"] = "python:offset_data:load"
    raw["data"]["standardize_target"] = standardize
    if lr is not None:
        raw["training"]["lr"] = lr
    return parse_config(raw)


def one(name: str, seed: int, lr: float | None, standardize: bool, work: Path
        ) -> dict[str, Any]:
    from mltrainer.data import prepare_data, running_phase, trivial_baseline
    from mltrainer.engine import Trainer, compute_metrics, load_model_from_checkpoint, predict
    from mltrainer.stream import read_stream

    cfg = config(name, seed, lr, standardize)
    bundle = prepare_data(cfg, work)
    with running_phase("finalize"):
        test = bundle.test(phase="finalize")
    run = work / "runs" / f"{name}-{seed}-{lr}-{standardize}"
    result = Trainer(cfg, bundle, run, root=work,
                     baseline=trivial_baseline(bundle, cfg.goal.metric)).fit()
    model = load_model_from_checkpoint(Path(result.checkpoints["best"]), cfg, bundle.spec,
                                       root=work)
    scale = bundle.spec.target_scale
    scores = {split: compute_metrics(cfg.task, rows.y, predict(model, rows.X,
                                                                target_scale=scale))
              for split, rows in (("val", bundle.val), ("test", test))}
    first = next(e for e in read_stream(run / "metrics.jsonl") if e["type"] == "epoch")
    return {"dataset": name, "seed": seed, "lr": cfg.training.lr, "standardize": standardize,
            "best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
            "first_train_loss": first["train_loss"], **scores}


def summarize(rows: list[dict[str, Any]]) -> list[str]:
    from mltrainer.stats import mean_ci

    def cell(values: list[float]) -> str:
        s = mean_ci(values)
        return f"{s['mean']:8.3f} [{s['ci'][0]:.3f},{s['ci'][1]:.3f}]"

    lines = [f"{'data set':<9} {'lr':>6} {'targets':<12} {'val rmse':>24} {'test rmse':>24} "
             f"{'val r2':>24} {'test r2':>24} {'best epochs':>20} {'1st loss':>9}"]
    keys = dict.fromkeys((r["dataset"], r["lr"], r["standardize"]) for r in rows)
    for name, lr, std in keys:
        mine = [r for r in rows if (r["dataset"], r["lr"], r["standardize"]) == (name, lr, std)]
        epochs = "/".join(str(r["best_epoch"]) for r in mine)
        first = sum(r["first_train_loss"] for r in mine) / len(mine)
        lines.append(
            f"{name:<9} {lr:>6g} {'standardised' if std else 'raw':<12} "
            f"{cell([r['val']['rmse'] for r in mine]):>24} "
            f"{cell([r['test']['rmse'] for r in mine]):>24} "
            f"{cell([r['val']['r2'] for r in mine]):>24} "
            f"{cell([r['test']['r2'] for r in mine]):>24} {epochs:>20} {first:9.4g}")
    lines.append("means over seeds with 95 % Student-t intervals; best checkpoint of each run")
    return lines


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--only", default=None, help="data sets whose name matches")
    parser.add_argument("--lr", type=float, nargs="*", default=None,
                        help="learning rates to try (default: the example's)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "offset_data.py").write_text(OFFSET_MODULE)
        sys.path.insert(0, str(work))
        for name in ("diabetes", "offset"):
            if args.only and not re.search(args.only, name):
                continue
            for lr in args.lr or [None]:
                for seed in range(args.seeds):
                    for standardize in (True, False):
                        rows.append(one(name, seed, lr, standardize, work))
    print("\n".join(summarize(rows)))


if __name__ == "__main__":
    main()
