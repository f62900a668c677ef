"""Repair rate: how often one diagnose → optimize iteration brings a broken baseline to the goal.

Each case is a project whose baseline config is broken by an ordinary config choice (a tiny or
huge learning rate, sgd without clipping, too little capacity, too much dropout or weight
decay) on one of scikit-learn's bundled data sets. The case runs the typical path as a user
would, through the same library calls the CLI makes (`mltrainer.commands.run_phase`):

    mlt plan → mlt train-baseline → mlt diagnose → mlt optimize --trials BUDGET

and is *repaired* when optimize's chosen config meets the goal on val (its mean over
`optimize.seeds` seeds, `goal.met_by_chosen`), the test split never opened. A case that stops
anywhere before (a gate that blocks the path, an error) is a failure, with the reason.

The cases are split: `TUNING` are the ones looked at while making the path work (issue 11);
`HELD_OUT` were written before the first run and run once, unchanged. The goals are what a
healthy config of the example reaches on val.

    python bench/repair.py [--set held_out|tuning|all] [--trials 8] [--seeds 2] [--only REGEX]

Prints one line per case (baseline stop, findings, space, best trial, chosen mean vs goal) and
the repair rate per set. It sets `torch.set_num_threads(1)` (through OMP_NUM_THREADS too).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

GOALS = {"digits": ("accuracy", 0.95), "breast_cancer": ("accuracy", 0.95),
         "wine": ("accuracy", 0.95), "iris": ("accuracy", 0.9), "diabetes": ("r2", 0.4)}
HEALTHY = {"model": {"kind": "mlp", "hidden": [64, 32], "dropout": 0.1},
           "training": {"epochs": 20, "batch_size": 32, "optimizer": "adamw", "lr": 0.003,
                        "weight_decay": 0.0001, "scheduler": "cosine", "grad_clip": 1.0,
                        "early_stopping": {"patience": 6, "min_delta": 0.0}}}
# name: (data set, what breaks it: changes to HEALTHY)
TUNING: dict[str, tuple[str, dict[str, Any]]] = {
    "digits-sgd-lr50-noclip": ("digits", {"training": {"optimizer": "sgd", "lr": 50.0,
                                                       "grad_clip": None}}),
    "breast_cancer-lr1e-6": ("breast_cancer", {"training": {"lr": 1e-6}}),
    "iris-hidden1": ("iris", {"model": {"hidden": [1]}}),
}
HELD_OUT: dict[str, tuple[str, dict[str, Any]]] = {
    "wine-lr1e-7": ("wine", {"training": {"lr": 1e-7}}),
    "wine-sgd-lr20-noclip": ("wine", {"training": {"optimizer": "sgd", "lr": 20.0,
                                                   "grad_clip": None}}),
    "breast_cancer-sgd-lr3-noclip": ("breast_cancer", {"training": {
        "optimizer": "sgd", "lr": 3.0, "grad_clip": None}}),
    "breast_cancer-dropout0.95": ("breast_cancer", {"model": {"dropout": 0.95}}),
    "digits-dropout0.9": ("digits", {"model": {"dropout": 0.9}}),
    "digits-wd30": ("digits", {"training": {"weight_decay": 30.0}}),
    "digits-hidden2": ("digits", {"model": {"hidden": [2]}}),
    "digits-sgd-lr1e-5": ("digits", {"training": {"optimizer": "sgd", "lr": 1e-5}}),
    "iris-adam-wd5": ("iris", {"training": {"optimizer": "adam", "weight_decay": 5.0}}),
    "wine-hidden1": ("wine", {"model": {"hidden": [1]}}),
    "diabetes-lr1e-6": ("diabetes", {"training": {"lr": 1e-6}}),
    "diabetes-sgd-lr0.5-noclip": ("diabetes", {"training": {"optimizer": "sgd", "lr": 0.5,
                                                            "grad_clip": None}}),
}
SETS = {"tuning": TUNING, "held_out": HELD_OUT}


def merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def project_config(name: str, dataset: str, broken: dict[str, Any], trials: int,
                   seeds: int) -> dict[str, Any]:
    metric, target = GOALS[dataset]
    task = "regression" if dataset == "diabetes" else "classification"
    raw = merge(HEALTHY, broken)
    return {"name": name, "task": task, "seed": 42,
            "data": {"source": f"sklearn:{dataset}",
                     "split": {"val": 0.2, "test": 0.15, "stratify": task != "regression"}},
            **raw, "goal": {"metric": metric, "target": target},
            "optimize": {"trials": trials, "seeds": seeds, "max_iterations": 1}}


def run_case(name: str, dataset: str, broken: dict[str, Any], trials: int, seeds: int,
             work: Path) -> dict[str, Any]:
    import yaml

    from mltrainer.commands import run_phase
    from mltrainer.errors import MltError
    from mltrainer.project import Project

    root = work / name
    root.mkdir(parents=True)
    (root / "mlt.yaml").write_text(yaml.safe_dump(
        project_config(name, dataset, broken, trials, seeds), sort_keys=False))
    (root / ".mlt").mkdir()
    project = Project.at(root)
    row: dict[str, Any] = {"case": name, "dataset": dataset, "broken": broken,
                           "goal": GOALS[dataset], "repaired": False}
    started = time.perf_counter()
    try:
        for phase in ("plan", "baseline", "diagnose", "optimize"):
            result = run_phase(project, phase, **({"trials": trials} if phase == "optimize"
                                                  else {}))
            summarize(row, phase, result)
            if phase == "baseline" and result["gate"]["passed"] and row["baseline_goal_met"]:
                row["why"] = "the broken baseline met the goal: not broken"
                break
            if phase in ("plan", "diagnose") and not result["gate"]["passed"]:
                row["why"] = f"{phase} gate blocked: {unmet(result)}"
                break
    except MltError as exc:
        row["why"] = f"{type(exc).__name__}: {exc.message}"
    except Exception as exc:  # a bench records every failure and carries on
        row["why"] = f"crash: {type(exc).__name__}: {exc}"
        row["traceback"] = traceback.format_exc()
    row["seconds"] = round(time.perf_counter() - started, 1)
    return row


def unmet(result: dict[str, Any]) -> str:
    return ", ".join(i["id"] for i in result["gate"]["items"]
                     if i["status"] in ("fail", "pending") and i.get("required", True))


def summarize(row: dict[str, Any], phase: str, result: dict[str, Any]) -> None:
    if phase == "baseline":
        run = result.get("run") or {}
        row["baseline"] = {"stopped": run.get("stopped_reason"), "val": run.get("val"),
                           "epochs_run": run.get("epochs_run")}
        row["baseline_goal_met"] = bool(result.get("goal_met"))
    elif phase == "diagnose":
        row["findings"] = [f["id"] for f in result.get("findings", [])]
    elif phase == "optimize":
        goal = result.get("goal") or {}
        row["space"] = {p["path"]: p.get("sources") for p in
                        (result.get("space") or {}).get("params", [])}
        row["space_origin"] = (result.get("space") or {}).get("origin")
        row["best_trial"] = {k: (result.get("best") or {}).get(k) for k in ("value", "params")}
        row["chosen"] = result.get("chosen")
        row["chosen_mean"] = goal.get("chosen_mean")
        row["repaired"] = bool(goal.get("met_by_chosen"))
        if not row["repaired"]:
            row["why"] = (f"chosen {row['chosen']} val mean {goal.get('chosen_mean')} misses "
                          f"the goal {goal.get('target')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=["held_out", "tuning", "all"], default="held_out")
    parser.add_argument("--trials", type=int, default=8, help="optimize trials (the budget)")
    parser.add_argument("--seeds", type=int, default=2, help="optimize.seeds")
    parser.add_argument("--only", default=None, help="regex over case names")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "repair.jsonl")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    chosen = ["tuning", "held_out"] if args.set == "all" else [args.set]
    cases = [(s, n, *c) for s in chosen for n, c in SETS[s].items()
             if not args.only or re.search(args.only, n)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp, args.out.open("w") as out:
        for which, name, dataset, broken in cases:
            row = {"set": which, **run_case(name, dataset, broken, args.trials, args.seeds,
                                             Path(tmp))}
            rows.append(row)
            out.write(json.dumps(row, default=str) + "\n")
            out.flush()
            print(f"[{which}] {name}: {'REPAIRED' if row['repaired'] else 'not repaired'} "
                  f"baseline {row.get('baseline', {}).get('stopped')} findings "
                  f"{row.get('findings')} space {list(row.get('space', {}))} chosen "
                  f"{row.get('chosen')} mean {row.get('chosen_mean')} goal {row['goal']} "
                  f"{row.get('why', '')} ({row['seconds']} s)", flush=True)
    for which in chosen:
        mine = [r for r in rows if r["set"] == which]
        if mine:
            fixed = sum(r["repaired"] for r in mine)
            print(f"{which}: repaired {fixed} of {len(mine)} ({fixed / len(mine):.0%}) with "
                  f"one diagnose -> optimize iteration of {args.trials} trials, "
                  f"{args.seeds} comparison seeds")


if __name__ == "__main__":
    main()
