"""What a short run costs: `mlt plan` and `mlt train-baseline` against hand-written scripts,
each timed as a whole process (imports, data loading, training, checkpoints), side by side.

The job (issue 16): a 200 000-row, 64-feature, 10-class table saved as `.npz`; an MLP
64-256-256-10 (ReLU, dropout 0.1); AdamW (lr 1e-3, weight decay 1e-4), cosine schedule, batch
256, gradient clipping at 1.0; a 70/15/15 split; val loss and accuracy and a checkpoint every
epoch. Three ways, in rotating order, `--reps` times each:

- plain:      a careful hand-written PyTorch script (written here, run as `python plain.py`):
              loads the .npz, splits, standardises on train, trains, evaluates val and saves
              model + optimizer + scheduler every epoch;
- lightning:  the same as a LightningModule with a DataLoader and `ModelCheckpoint` every epoch
              (only when `pytorch_lightning` or `lightning` is installed);
- mlt:        `mlt train-baseline` in a project that `mlt plan` prepared (each repetition in its
              own copy of the planned project, so nothing of one run is reused by the next).

`mlt plan` is timed in fresh projects (one per epoch count). Per-epoch cost at `--long` epochs is
the marginal cost between the short and the long runs ((T_long - T_short) / (long - short)),
and the median epoch wall time measured inside each process.

Optimize (digits): `mlt optimize` (trials/minute of its search, and of the whole command, which
adds the seeds comparison) against a plain Optuna loop around a plain training function with the
same trial budget, space (lr, weight decay, width), epochs, sampler and pruner kind.

    python bench/speed.py                       # 3 and 8 epochs, per-epoch at 20, optimize
    python bench/speed.py --epochs 3 --long 0 --no-optimize --reps 3
    python bench/speed.py --threads 1 --rows 200000 --keep DIR
    python bench/speed.py --no-train --trials 8 --opt-epochs 8 --opt-reps 2   # optimize only
    python bench/speed.py --plan-only --reps 5 --baseline /tmp/base           # plan and floor

Every process gets OMP_NUM_THREADS=--threads (default 1) so the comparison is not a race for
the shared cores. Prints a table of medians and the ratios to the plain script.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
VISION = REPO / "mltrainer" / "models" / "_vision.py"  # the Lightning job loads it alone
FEATURES, CLASSES = 64, 10

PLAIN = textwrap.dedent('''
    """A careful plain PyTorch script: the job, by hand."""
    import json, math, sys, time
    t0 = time.perf_counter()
    import numpy as np
    import torch
    from torch import nn
    import torch.nn.functional as F

    data, epochs, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    torch.manual_seed(42)
    with np.load(data) as d:
        X, y = d["X"].astype(np.float32), d["y"].astype(np.int64)
    perm = np.random.default_rng(42).permutation(len(X))
    n_test = n_val = int(round(0.15 * len(X)))
    test, val, train = perm[:n_test], perm[n_test:n_test + n_val], perm[n_test + n_val:]
    mean, std = X[train].mean(0), X[train].std(0) + 1e-8
    Xt = torch.from_numpy((X[train] - mean) / std); yt = torch.from_numpy(y[train])
    Xv = torch.from_numpy((X[val] - mean) / std); yv = torch.from_numpy(y[val])
    model = nn.Sequential(nn.Linear(Xt.shape[1], 256), nn.ReLU(), nn.Dropout(0.1),
                          nn.Linear(256, 256), nn.ReLU(), nn.Dropout(0.1),
                          nn.Linear(256, int(y.max()) + 1))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    bs, n = 256, len(Xt)
    steps = math.ceil(n / bs)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps)
    gen = torch.Generator().manual_seed(42)
    epoch_s, best = [], -1.0
    for epoch in range(1, epochs + 1):
        e0 = time.perf_counter()
        model.train()
        order = torch.randperm(n, generator=gen)
        total = torch.zeros(())
        for i in range(steps):
            idx = order[i * bs:(i + 1) * bs]
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(Xt[idx]), yt[idx])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            total += loss.detach()
        model.eval()
        with torch.no_grad():
            logits = model(Xv)
            val_loss = F.cross_entropy(logits, yv).item()
            acc = (logits.argmax(1) == yv).float().mean().item()
        state = {"model": model.state_dict(), "optimizer": opt.state_dict(),
                 "scheduler": sched.state_dict(), "epoch": epoch}
        torch.save(state, f"{out}/epoch-{epoch:03d}.pt")
        if acc > best:
            best = acc
            torch.save(state, f"{out}/best.pt")
        print(json.dumps({"epoch": epoch, "train_loss": total.item() / steps,
                          "val_loss": val_loss, "acc": acc}), file=sys.stderr)
        epoch_s.append(time.perf_counter() - e0)
    print(json.dumps({"epoch_s": epoch_s, "acc": best, "in_process_s": time.perf_counter() - t0}))
''')

LIGHTNING = textwrap.dedent('''
    """The job as a LightningModule (DataLoader, ModelCheckpoint every epoch)."""
    import json, sys, time
    t0 = time.perf_counter()
    import numpy as np
    import torch
    from torch import nn
    import torch.nn.functional as F
    import importlib.util
    # PyPI's torchvision (which Lightning's torchmetrics imports) is a CUDA build: on a CPU torch
    # its import fails unless two op schemas are defined first, mlt's own fix
    # (mltrainer/models/_vision.py), loaded alone so the job imports no other mlt module
    spec = importlib.util.spec_from_file_location("_vision", sys.argv[4])
    vision = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(vision)
    vision.torchvision()
    try:
        import lightning.pytorch as pl
    except ImportError:
        import pytorch_lightning as pl
    from torch.utils.data import DataLoader, TensorDataset

    data, epochs, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    pl.seed_everything(42, verbose=False)
    with np.load(data) as d:
        X, y = d["X"].astype(np.float32), d["y"].astype(np.int64)
    perm = np.random.default_rng(42).permutation(len(X))
    n_test = n_val = int(round(0.15 * len(X)))
    val, train = perm[n_test:n_test + n_val], perm[n_test + n_val:]
    mean, std = X[train].mean(0), X[train].std(0) + 1e-8
    tr = TensorDataset(torch.from_numpy((X[train] - mean) / std), torch.from_numpy(y[train]))
    va = TensorDataset(torch.from_numpy((X[val] - mean) / std), torch.from_numpy(y[val]))

    class Job(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(X.shape[1], 256), nn.ReLU(), nn.Dropout(0.1),
                                     nn.Linear(256, 256), nn.ReLU(), nn.Dropout(0.1),
                                     nn.Linear(256, int(y.max()) + 1))
            self.epoch_s, self.t = [], None

        def training_step(self, batch, i):
            loss = F.cross_entropy(self.net(batch[0]), batch[1])
            self.log("train_loss", loss, on_epoch=True)
            return loss

        def validation_step(self, batch, i):
            logits = self.net(batch[0])
            self.log("val_loss", F.cross_entropy(logits, batch[1]))
            self.log("acc", (logits.argmax(1) == batch[1]).float().mean())

        def on_train_epoch_start(self):
            self.t = time.perf_counter()

        def on_validation_epoch_end(self):
            if self.t is not None:
                self.epoch_s.append(time.perf_counter() - self.t)

        def configure_optimizers(self):
            opt = torch.optim.AdamW(self.parameters(), lr=1e-3, weight_decay=1e-4)
            steps = self.trainer.estimated_stepping_batches
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    job = Job()
    ckpt = pl.callbacks.ModelCheckpoint(dirpath=out, every_n_epochs=1, save_top_k=-1)
    trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         gradient_clip_val=1.0, callbacks=[ckpt], num_sanity_val_steps=0)
    trainer.fit(job, DataLoader(tr, batch_size=256, shuffle=True),
                DataLoader(va, batch_size=len(va)))
    print(json.dumps({"epoch_s": job.epoch_s, "acc": float(trainer.callback_metrics["acc"]),
                      "in_process_s": time.perf_counter() - t0}))
''')

OPTUNA = textwrap.dedent('''
    """A plain Optuna loop around a plain training function (digits, mlp, val every epoch)."""
    import json, math, sys, time
    t0 = time.perf_counter()
    import numpy as np
    import optuna
    import torch
    from torch import nn
    import torch.nn.functional as F
    from sklearn.datasets import load_digits

    trials, epochs, hidden = (int(a) for a in sys.argv[1:4])
    lr0 = float(sys.argv[4])
    X, y = load_digits(return_X_y=True)
    X, y = X.astype(np.float32), y.astype(np.int64)
    perm = np.random.default_rng(42).permutation(len(X))
    n_test = n_val = int(round(0.15 * len(X)))
    val, train = perm[n_test:n_test + n_val], perm[n_test + n_val:]
    mean, std = X[train].mean(0), X[train].std(0) + 1e-8
    Xt, yt = torch.from_numpy((X[train] - mean) / std), torch.from_numpy(y[train])
    Xv, yv = torch.from_numpy((X[val] - mean) / std), torch.from_numpy(y[val])

    def train_once(lr, wd, width, trial):
        torch.manual_seed(42)
        model = nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Dropout(0.1),
                              nn.Linear(width, 10))
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd)
        bs, n = 64, len(Xt)
        steps = math.ceil(n / bs)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps)
        acc = 0.0
        for epoch in range(epochs):
            model.train()
            order = torch.randperm(n)
            for i in range(steps):
                idx = order[i * bs:(i + 1) * bs]
                opt.zero_grad(set_to_none=True)
                loss = F.cross_entropy(model(Xt[idx]), yt[idx])
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                sched.step()
            model.eval()
            with torch.no_grad():
                acc = (model(Xv).argmax(1) == yv).float().mean().item()
            trial.report(acc, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return acc

    def objective(trial):
        lr = trial.suggest_float("lr", lr0 / 10, lr0 * 10, log=True)
        wd = trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True)
        scale = trial.suggest_categorical("width_scale", [0.5, 1.0, 2.0])
        return train_once(lr, wd, max(1, int(round(hidden * scale))), trial)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=42),
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=5))
    s0 = time.perf_counter()
    study.optimize(objective, n_trials=trials)
    print(json.dumps({"search_s": time.perf_counter() - s0, "trials": len(study.trials),
                      "in_process_s": time.perf_counter() - t0}))
''')


FLOOR = textwrap.dedent('''
    """The least a process that trains on the job's data costs: start Python, import torch,
    read the .npz, one AdamW step (which imports torch._dynamo: Optimizer's construction and
    step do, whatever the script; `mlt plan`'s determinism probe trains, so this is its floor)."""
    import sys
    import numpy as np
    import torch
    with np.load(sys.argv[1]) as d:
        X, y = d["X"], d["y"]
    p = torch.nn.Parameter(torch.zeros(4))
    opt = torch.optim.AdamW([p])
    p.sum().backward()
    opt.step()
''')

FLOOR0 = textwrap.dedent('''
    """Start Python, import torch, read the .npz: no training."""
    import sys
    import numpy as np
    import torch
    with np.load(sys.argv[1]) as d:
        X, y = d["X"], d["y"]
''')
FLOORS = {"floor0": ("floor0 (python + import torch + read the .npz)", FLOOR0),
          "floor": ("floor (+ one AdamW step: torch._dynamo)", FLOOR)}


MLT_WRAPPER = textwrap.dedent('''
    """`mlt` (its entry point, `mltrainer.cli:main`), printing at exit the CPU seconds of this
    process alone: what a command costs on its critical path when its helper processes (a
    forked data preparation, the report's drawer) have a core of their own."""
    import atexit, os, resource, sys

    def own():
        r = resource.getrusage(resource.RUSAGE_SELF)
        os.write(2, f"MLT_OWN_CPU {r.ru_utime + r.ru_stime:.3f}\\n".encode())

    atexit.register(own)
    from mltrainer.cli import main
    sys.argv[0] = "mlt"
    sys.exit(main())
''')


def mlt_yaml(data: Path, epochs: int) -> str:
    return textwrap.dedent(f"""\
        name: speed-bench
        task: classification
        seed: 42
        data:
          source: {data}
          split: {{val: 0.15, test: 0.15, stratify: true}}
        model: {{kind: mlp, hidden: [256, 256], dropout: 0.1}}
        training:
          epochs: {epochs}
          batch_size: 256
          optimizer: adamw
          lr: 0.001
          weight_decay: 0.0001
          scheduler: cosine
          grad_clip: 1.0
          early_stopping: {{patience: 0}}
        goal: {{metric: accuracy, target: 0.5}}
        """)


def make_data(path: Path, rows: int) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    centers = rng.normal(size=(CLASSES, FEATURES))
    y = rng.integers(0, CLASSES, size=rows)
    X = (centers[y] + rng.normal(scale=2.5, size=(rows, FEATURES))).astype(np.float32)
    np.savez(path, X=X, y=y.astype(np.int64))


class Bench:
    def __init__(self, work: Path, threads: int, variants: dict[str, Path]) -> None:
        self.work = work
        self.env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        self.variants = variants  # mlt tool name -> the source tree it runs from (PYTHONPATH)
        self.python = sys.executable
        wrapper = work / "mlt_own_cpu.py"
        wrapper.write_text(MLT_WRAPPER)
        self.mlt = [sys.executable, str(wrapper)]  # the `mlt` entry point, own CPU reported
        self.cpu = 0.0  # CPU seconds (user + system) of the last timed process and its children
        self.own = 0.0  # ... of the process itself (mlt's helpers excluded): its critical path

    def timed(self, cmd: list[str], cwd: Path | None = None, ok: tuple[int, ...] = (0,),
              tree: Path = REPO) -> tuple[float, str]:
        env = dict(self.env, PYTHONPATH=str(tree))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, check=False, cwd=cwd, env=env, capture_output=True,
                              text=True)
        elapsed = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        # CPU time moves far less than wall time when other processes share the cores
        self.cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        own = [line.split()[1] for line in proc.stderr.splitlines()
               if line.startswith("MLT_OWN_CPU ")]
        self.own = float(own[-1]) if own else self.cpu
        if proc.returncode not in ok:
            sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
        return elapsed, proc.stdout


def last_json(stdout: str) -> dict[str, Any]:
    return json.loads(stdout.strip().splitlines()[-1])


def mlt_epoch_times(project: Path) -> list[float]:
    runs = sorted((project / "runs").glob("*-baseline-*"))
    events = [json.loads(line) for line in (runs[-1] / "metrics.jsonl").read_text().splitlines()]
    return [e["wall_time"] for e in events if e.get("type") == "epoch"]


Series = dict[tuple[str, int], list[float]]  # (tool, epochs) -> one figure per repetition
CPU: Series = {}  # (tool or "<tool> plan" or "<tool> optimize", epochs) -> CPU seconds
OWN: Series = {}  # the same keys -> CPU seconds of the command's own process


def train_jobs(bench: Bench, data: Path, epochs_list: list[int], reps: dict[int, int],
               tools: list[str]) -> tuple[Series, Series, dict[str, list[float]]]:
    scripts = {"plain": bench.work / "plain.py", "lightning": bench.work / "lightning_job.py"}
    scripts["plain"].write_text(PLAIN)
    scripts["lightning"].write_text(LIGHTNING)
    wall: Series = {}
    per_epoch: Series = {}
    plan_s: dict[str, list[float]] = {}
    floor_script = bench.work / "floor.py"
    floor_script.write_text(FLOOR)
    for epochs in epochs_list:
        elapsed, _ = bench.timed([bench.python, str(floor_script), str(data)])
        plan_s.setdefault("floor", []).append(elapsed)
        CPU.setdefault(("floor plan", 0), []).append(bench.cpu)
        OWN.setdefault(("floor plan", 0), []).append(bench.own)
        planned = {}
        for name, tree in bench.variants.items():
            planned[name] = bench.work / f"planned-{name}-{epochs}"
            bench.timed([*bench.mlt, "init", str(planned[name])], tree=tree)
            (planned[name] / "mlt.yaml").write_text(mlt_yaml(data, epochs))
            elapsed, _ = bench.timed([*bench.mlt, "-C", str(planned[name]), "--json", "plan"],
                                     tree=tree)
            plan_s.setdefault(name, []).append(elapsed)
            CPU.setdefault((f"{name} plan", 0), []).append(bench.cpu)
            OWN.setdefault((f"{name} plan", 0), []).append(bench.own)
            print(f"  {name:<10} plan ({epochs} epochs): {elapsed:6.2f} s, CPU {bench.cpu:6.2f} s",
                  file=sys.stderr)
        for rep in range(reps[epochs]):
            order = tools[rep % len(tools):] + tools[:rep % len(tools)]
            for tool in order:
                out = bench.work / f"{tool}-{epochs}-{rep}"
                if tool in bench.variants:
                    shutil.copytree(planned[tool], out)
                    elapsed, stdout = bench.timed(
                        [*bench.mlt, "-C", str(out), "--json", "train-baseline"], ok=(0, 3),
                        tree=bench.variants[tool])
                    run = last_json(stdout)["run"]
                    assert run["epochs_run"] == epochs, run
                    times = mlt_epoch_times(out)
                else:
                    out.mkdir()
                    elapsed, stdout = bench.timed(
                        [bench.python, str(scripts[tool]), str(data), str(epochs), str(out),
                         str(VISION)])
                    times = last_json(stdout)["epoch_s"]
                wall.setdefault((tool, epochs), []).append(elapsed)
                CPU.setdefault((tool, epochs), []).append(bench.cpu)
                OWN.setdefault((tool, epochs), []).append(bench.own)
                per_epoch.setdefault((tool, epochs), []).append(statistics.median(times))
                shutil.rmtree(out)
                print(f"  {tool:<10} {epochs:>3} epochs  rep {rep}: {elapsed:6.2f} s, CPU "
                      f"{bench.cpu:6.2f} s (own {bench.own:.2f}), load "
                      f"{os.getloadavg()[0]:.1f}", file=sys.stderr)
    return wall, per_epoch, plan_s


def plan_jobs(bench: Bench, data: Path, reps: int) -> dict[str, list[float]]:
    """`mlt plan` in fresh projects and the floors, in rotating order, `reps` times each."""
    for name, (_, script) in FLOORS.items():
        (bench.work / f"{name}.py").write_text(script)
    tools = [*FLOORS, *bench.variants]
    plan_s: dict[str, list[float]] = {}
    for rep in range(reps):
        for tool in tools[rep % len(tools):] + tools[:rep % len(tools)]:
            if tool in FLOORS:
                elapsed, _ = bench.timed([bench.python, str(bench.work / f"{tool}.py"),
                                          str(data)])
                CPU.setdefault((f"{tool} plan", 0), []).append(bench.cpu)
                OWN.setdefault((f"{tool} plan", 0), []).append(bench.own)
            else:
                tree = bench.variants[tool]
                project = bench.work / f"plan-{tool}-{rep}"
                bench.timed([*bench.mlt, "init", str(project)], tree=tree)
                (project / "mlt.yaml").write_text(mlt_yaml(data, 3))
                elapsed, _ = bench.timed([*bench.mlt, "-C", str(project), "--json", "plan"],
                                         tree=tree)
                CPU.setdefault((f"{tool} plan", 0), []).append(bench.cpu)
                OWN.setdefault((f"{tool} plan", 0), []).append(bench.own)
                shutil.rmtree(project)
            plan_s.setdefault(tool, []).append(elapsed)
            print(f"  {tool:<10} plan rep {rep}: {elapsed:6.2f} s, CPU {bench.cpu:6.2f} s (own "
                  f"{bench.own:.2f}), load {os.getloadavg()[0]:.1f}", file=sys.stderr)
    return plan_s


def optimize_job(bench: Bench, trials: int, epochs: int, reps: int) -> dict[str, list[float]]:
    import yaml

    script = bench.work / "optuna_loop.py"
    script.write_text(OPTUNA)
    projects = {}
    for name, tree in bench.variants.items():
        project = projects[name] = bench.work / f"digits-opt-{name}"
        bench.timed([*bench.mlt, "init", str(project), "--example", "digits"], tree=tree)
        raw = yaml.safe_load((project / "mlt.yaml").read_text())
        raw["model"] = {"kind": "mlp", "hidden": [128], "dropout": 0.1}
        raw["training"].update(epochs=epochs, early_stopping={"patience": 0})
        raw["goal"]["target"] = 0.999  # out of reach: the workflow goes through optimize
        raw["optimize"] = {"trials": trials, "seeds": 2}
        (project / "mlt.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
        for cmd in ("plan", "train-baseline", "diagnose"):
            bench.timed([*bench.mlt, "-C", str(project), "--json", cmd], ok=(0, 3), tree=tree)
    res: dict[str, list[float]] = {}
    for rep in range(reps):
        for name, tree in bench.variants.items():
            copy = bench.work / f"opt-{name}-{rep}"
            shutil.copytree(projects[name], copy)
            elapsed, _ = bench.timed([*bench.mlt, "-C", str(copy), "--json", "optimize"],
                                     ok=(0, 3), tree=tree)
            state = json.loads((copy / ".mlt" / "state.json").read_text())
            study = state["phases"]["optimize"]["outcome"]["study"]
            res.setdefault(f"{name}_whole_s", []).append(elapsed)
            CPU.setdefault((f"{name} optimize", 0), []).append(bench.cpu)
            OWN.setdefault((f"{name} optimize", 0), []).append(bench.own)
            res.setdefault(f"{name}_search_s", []).append(study["elapsed_s"])
            res.setdefault(f"{name}_trials", []).append(study["ran_here"])
            shutil.rmtree(copy)
            print(f"  optimize rep {rep}: {name} {elapsed:.1f} s (search "
                  f"{study['elapsed_s']:.1f} s), CPU {bench.cpu:.1f} s (own {bench.own:.1f})",
                  file=sys.stderr)
        elapsed, stdout = bench.timed([bench.python, str(script), str(trials), str(epochs),
                                       "128", "0.001"])
        res.setdefault("plain_whole_s", []).append(elapsed)
        CPU.setdefault(("plain optimize", 0), []).append(bench.cpu)
        res.setdefault("plain_search_s", []).append(last_json(stdout)["search_s"])
        print(f"  optimize rep {rep}: plain {elapsed:.1f} s, CPU {bench.cpu:.1f} s",
              file=sys.stderr)
    return res


def has_lightning() -> bool:
    """Installed and importable (a broken torchvision, e.g., breaks torchmetrics' import)."""
    fix = ("import importlib.util as u; s = u.spec_from_file_location('_vision', "
           f"{str(VISION)!r}); v = u.module_from_spec(s); s.loader.exec_module(v); "
           "v.torchvision(); ")  # as the job does (LIGHTNING)
    for module in ("lightning.pytorch", "pytorch_lightning"):
        proc = subprocess.run([sys.executable, "-c", f"{fix}import {module}"], check=False,
                              capture_output=True, text=True)
        if proc.returncode == 0:
            return True
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        print(f"lightning: `import {module}` fails: {last}", file=sys.stderr)
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, nargs="+", default=[3, 8])
    parser.add_argument("--long", type=int, default=20, help="per-epoch cost at this many "
                        "epochs (0 = skip)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--long-reps", type=int, default=1, help="repetitions of the --long "
                        "runs (their in-process per-epoch figure is a median over the epochs)")
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-lightning", action="store_true")
    parser.add_argument("--no-optimize", action="store_true")
    parser.add_argument("--no-train", action="store_true", help="optimize only (no plan, "
                        "train-baseline or floor)")
    parser.add_argument("--plan-only", action="store_true", help="`mlt plan` and the floor "
                        "only, --reps times each in rotating order (no training runs)")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--opt-epochs", type=int, default=10)
    parser.add_argument("--opt-reps", type=int, default=1)
    parser.add_argument("--baseline", type=Path, default=None, metavar="TREE",
                        help="also time mlt from this source tree (e.g. `git archive main` "
                        "unpacked), side by side, as `mlt@base`")
    parser.add_argument("--keep", type=Path, default=None, help="work folder to keep")
    args = parser.parse_args()

    load_before = os.getloadavg()
    lightning = has_lightning() and not args.no_lightning
    work = args.keep or Path(tempfile.mkdtemp(prefix="mlt-speed-"))
    work.mkdir(parents=True, exist_ok=True)
    variants = {"mlt@base": args.baseline.resolve()} if args.baseline else {}
    variants["mlt"] = REPO
    bench = Bench(work, args.threads, variants)
    tools = ["plain", *(["lightning"] if lightning else []), *variants]
    data = work / "table.npz"
    make_data(data, args.rows)
    epochs_list = sorted(set(args.epochs + ([args.long] if args.long else [])))
    try:
        reps = {e: args.long_reps if e == args.long and e not in args.epochs else args.reps
                for e in epochs_list}
        if args.plan_only:
            args.no_train, args.no_optimize = True, True
            wall, per_epoch, plan_s = {}, {}, plan_jobs(bench, data, args.reps)
        else:
            wall, per_epoch, plan_s = ({}, {}, {}) if args.no_train else train_jobs(
                bench, data, epochs_list, reps, tools)
        opt = None if args.no_optimize else optimize_job(bench, args.trials, args.opt_epochs,
                                                         args.opt_reps)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)

    import torch

    med = statistics.median
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                            check=False, capture_output=True, text=True).stdout.strip()
    commit = commit or str(REPO)
    print(f"commit {commit}; {os.cpu_count()} cores, OMP_NUM_THREADS={args.threads}, torch "
          f"{torch.__version__}; {args.rows} rows x {FEATURES} features, {CLASSES} classes; "
          f"median of {args.reps} whole processes"
          + (f" ({args.long_reps} at {args.long} epochs)" if args.long else "")
          + f"; load average {load_before[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at "
          f"the end")
    if args.baseline:
        print(f"mlt@base: {args.baseline}")
    header = "".join(f"{t:>12}" for t in tools) + "".join(
        f"{t + '/plain':>16}" for t in tools[1:])
    print(f"{'':26}{header}")

    def row(label: str, vals: list[float], digits: int = 2) -> None:
        print(f"{label:26}" + "".join(f"{v:12.{digits}f}" for v in vals)
              + "".join(f"{v / vals[0]:15.{digits}f}x" for v in vals[1:]))

    for epochs in [] if args.no_train else epochs_list:
        row(f"{epochs} epochs, s", [med(wall[(t, epochs)]) for t in tools])
        row(f"{epochs} epochs, CPU s", [med(CPU[(t, epochs)]) for t in tools])
        row(f"{epochs} epochs, own CPU s", [med(OWN[(t, epochs)]) for t in tools])
    short, long = min(epochs_list), max(epochs_list)
    if long > short and not args.no_train:
        row(f"s/epoch ({short}->{long} epochs)",
            [(med(wall[(t, long)]) - med(wall[(t, short)])) / (long - short) for t in tools], 3)
        cpu = [(med(CPU[(t, long)]) - med(CPU[(t, short)])) / (long - short) for t in tools]
        row(f"CPU s/epoch ({short}->{long})", cpu, 3)
    for epochs in [] if args.no_train else sorted({short, long}):
        row(f"s/epoch in-process @{epochs}", [med(per_epoch[(t, epochs)]) for t in tools], 3)
    for epochs in [] if args.no_train else epochs_list:
        row(f"fixed s @{epochs} (wall-epochs)",
            [med(wall[(t, epochs)]) - epochs * med(per_epoch[(t, epochs)]) for t in tools])
    for name, times in plan_s.items():
        what = FLOORS[name][0] if name in FLOORS else f"{name} plan"
        cpu, own = CPU[(f"{name} plan", 0)], OWN[(f"{name} plan", 0)]
        ratio = (f"; {med(times) / med(plan_s['floor']):.2f}x the floor"
                 if name not in FLOORS and "floor" in plan_s else "")
        print(f"{what}: {med(times):.2f} s (median of {len(times)}: "
              f"{', '.join(f'{s:.2f}' for s in times)}); CPU {med(cpu):.2f} s, own CPU "
              f"{med(own):.2f} s{ratio}")
    if opt is not None:
        plain = {k: 60 * args.trials / med(opt[f"plain_{k}_s"]) for k in ("search", "whole")}
        print(f"optimize (digits, mlp [128], {args.opt_epochs} epochs, {args.trials} trials, "
              f"median of {args.opt_reps}): trials/min, search only and whole process (mlt's "
              f"includes its 2-seed comparison); plain Optuna loop {plain['search']:.1f} / "
              f"{plain['whole']:.1f}")
        for name in bench.variants:
            tpm = {k: 60 * args.trials / med(opt[f"{name}_{k}_s"]) for k in ("search", "whole")}
            print(f"  {name:<9} {tpm['search']:6.1f} ({tpm['search'] / plain['search']:.2f}x) / "
                  f"{tpm['whole']:6.1f} ({tpm['whole'] / plain['whole']:.2f}x); trials run "
                  f"{med(opt[f'{name}_trials']):g}; CPU s of the whole process "
                  f"{med(CPU[(f'{name} optimize', 0)]):.1f} (own "
                  f"{med(OWN[(f'{name} optimize', 0)]):.1f})")
        print(f"  plain     CPU s of the whole process {med(CPU[('plain optimize', 0)]):.1f}")


if __name__ == "__main__":
    main()
