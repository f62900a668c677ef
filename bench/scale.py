"""Scaling out, measured side by side in one run (issue 14):

1. ddp:    the same job in 2 gloo processes (torchrun, DDP, 32 rows each) against 1 process
           (64 rows): seconds per epoch (the epoch events' wall_time, so without the processes'
           start), the whole call's wall time, and the final val accuracy.
2. accum:  grad_accum_steps 4 at batch_size 16 against batch_size 64, over several seeds: the
           final val accuracy (the same 64 rows per step; dropout masks differ per forward).
3. optuna: `mlt optimize --worker` on PostgreSQL (scripts/postgres.sh), 2 workers from two
           copies of one project against 1 worker, each on a fresh database: trials per minute
           of wall time, process start included.

    python bench/scale.py [--epochs 10] [--seeds 3] [--trials 8] [--only ddp,accum,optuna]

Every process runs one torch thread (OMP_NUM_THREADS=1), so on a machine with two free cores
two processes can use both. Digits, the MLP [256, 128], dropout 0.1 unless stated.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["PYTHONPATH"] = str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")

import torch  # noqa: E402

from mltrainer.config import parse_config  # noqa: E402

MLT = [sys.executable, "-c", "from mltrainer.cli import main; main()"]


def config(epochs: int, seed: int = 42, **training: Any) -> Any:
    return parse_config({
        "name": "bench-scale", "task": "classification", "seed": seed,
        "data": {"source": "sklearn:digits"},
        "model": {"kind": "mlp", "hidden": [256, 128], "dropout": training.pop("dropout", 0.1)},
        "training": {"epochs": epochs, "batch_size": 64, "lr": 1e-3, "device": "cpu",
                     "early_stopping": {"patience": 0}, **training},
        "goal": {"metric": "accuracy", "target": 0.97},
    })


def epoch_seconds(run_dir: Path) -> float:
    from mltrainer.stream import read_stream

    walls = [e["wall_time"] for e in read_stream(run_dir / "metrics.jsonl")
             if e["type"] == "epoch"]
    return statistics.median(walls)


def bench_ddp(tmp: Path, epochs: int) -> dict[str, Any]:
    from mltrainer.data import prepare_data
    from mltrainer.engine import Trainer
    from mltrainer.engine.launch import Launch, train_processes

    one_cfg, two_cfg = config(epochs), config(epochs, batch_size=32)
    bundle = prepare_data(one_cfg, tmp)
    t = time.perf_counter()
    one = Trainer(one_cfg, bundle, tmp / "runs" / "one").fit()
    one_wall = time.perf_counter() - t
    t = time.perf_counter()
    two = train_processes(two_cfg, tmp / "runs" / "two", tmp, Launch(nproc=2), kind="baseline")
    two_wall = time.perf_counter() - t
    return {
        "1 process (batch 64)": {"s_per_epoch": epoch_seconds(tmp / "runs" / "one"),
                                 "wall_s": one_wall, "final_val_accuracy":
                                 one.history[-1]["val"]["accuracy"]},
        "2 gloo processes (32 each)": {"s_per_epoch": epoch_seconds(tmp / "runs" / "two"),
                                       "wall_s": two_wall, "final_val_accuracy":
                                       two.history[-1]["val"]["accuracy"]},
    }


def bench_accum(tmp: Path, epochs: int, seeds: int) -> dict[str, Any]:
    from mltrainer.data import prepare_data
    from mltrainer.engine import Trainer

    out: dict[str, Any] = {}
    for label, training in (("batch 64", {}), ("4 x batch 16", {"batch_size": 16,
                                                                "grad_accum_steps": 4})):
        accs = []
        for seed in range(seeds):
            cfg = config(epochs, seed=seed, **training)
            r = Trainer(cfg, prepare_data(cfg, tmp), tmp / "runs" / f"{label}-{seed}".replace(
                " ", "")).fit()
            accs.append(r.history[-1]["val"]["accuracy"])
        out[label] = {"final_val_accuracy": accs, "mean": statistics.mean(accs),
                      "std": statistics.stdev(accs) if len(accs) > 1 else 0.0}
    return out


def _run(*args: str, cwd: Path | None = None) -> dict[str, Any]:
    p = subprocess.run([*MLT, *args, "--json"], capture_output=True, text=True, cwd=cwd)
    if p.returncode not in (0, 3):
        raise RuntimeError(f"mlt {' '.join(args)}: exit {p.returncode}: {p.stderr[-1500:]}")
    return json.loads(p.stdout)


def _database(admin_url: str) -> str:
    import psycopg

    name = f"mlt_bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return admin_url.rsplit("/", 1)[0] + "/" + name


def bench_optuna(tmp: Path, trials: int) -> dict[str, Any]:
    import yaml

    admin = subprocess.run(["bash", str(REPO / "scripts" / "postgres.sh")], check=True,
                           capture_output=True, text=True).stdout.strip().splitlines()[-1]
    proj = tmp / "proj"
    _run("init", str(proj), "--example", "digits")
    raw = yaml.safe_load((proj / "mlt.yaml").read_text())
    raw["model"] = {"kind": "mlp", "hidden": [16], "dropout": 0.1}
    raw["training"].update({"epochs": 8, "lr": 2e-4, "grad_stats_every": 0})
    (proj / "mlt.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    for cmd in ("plan", "train-baseline", "diagnose"):
        _run(cmd, "-C", str(proj))
    out: dict[str, Any] = {}
    for workers in (1, 2):
        url = _database(admin)
        copies = []
        for i in range(workers):
            copies.append(tmp / f"w{workers}-{i}")
            shutil.copytree(proj, copies[-1])
        t = time.perf_counter()
        procs = [subprocess.Popen([*MLT, "optimize", "--worker", "-C", str(c), "--storage", url,
                                   "--trials", str(trials), "--json"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for c in copies]
        results = [json.loads(p.communicate()[0]) for p in procs]
        wall = time.perf_counter() - t
        import optuna

        from mltrainer.phases.optimize.study import counts, with_driver

        storage = optuna.storages.RDBStorage(with_driver(url))
        (summary,) = optuna.get_all_study_summaries(storage)
        n = counts(optuna.load_study(study_name=summary.study_name, storage=storage))
        # pruning makes trials unequal: the epochs they trained are the work done
        epochs = sum(line.count('"type":"epoch"') for c in copies
                     for f in c.glob("runs/*-trial-*/metrics.jsonl") for line in [f.read_text()])
        out[f"{workers} worker(s)"] = {
            "wall_s": wall, "trials_per_min": trials / wall * 60,
            "trial_epochs_per_min": epochs / wall * 60,
            "finished": n["complete"] + n["pruned"], "pruned": n["pruned"],
            "ran_per_worker": [len(r["ran_here"]) for r in results]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--only", default="ddp,accum,optuna")
    args = ap.parse_args()
    torch.set_num_threads(1)
    only = set(args.only.split(","))
    report: dict[str, Any] = {"cpus": os.cpu_count(), "load_avg": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        if "ddp" in only:
            report["ddp"] = bench_ddp(Path(tmp) / "ddp", args.epochs)
            print(json.dumps({"ddp": report["ddp"]}, indent=2), flush=True)
        if "accum" in only:
            report["accum"] = bench_accum(Path(tmp) / "accum", args.epochs, args.seeds)
            print(json.dumps({"accum": report["accum"]}, indent=2), flush=True)
        if "optuna" in only:
            report["optuna"] = bench_optuna(Path(tmp) / "optuna", args.trials)
            print(json.dumps({"optuna": report["optuna"]}, indent=2), flush=True)
    report["load_avg_after"] = os.getloadavg()
    out = REPO / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "scale.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"load average before {report['load_avg']}, after {report['load_avg_after']}")


if __name__ == "__main__":
    main()
