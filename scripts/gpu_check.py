"""The checks a CPU cannot make, for a machine with an NVIDIA GPU (run by scripts/gpu-check.sh).

Each check prints one line, PASS or FAIL (or SKIP, saying why), with what it measured; the
exit status is the number of failures. Sized to finish in a few minutes on one GPU.

    python scripts/gpu_check.py [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

RESULTS: list[tuple[str, str, str]] = []


def check(name: str) -> Callable[[Callable[[Path], str]], Callable[[Path], None]]:
    def wrap(fn: Callable[[Path], str]) -> Callable[[Path], None]:
        def run(work: Path) -> None:
            started = time.perf_counter()
            try:
                detail = fn(work)
                status = "SKIP" if detail.startswith("skip:") else "PASS"
            except Exception as exc:  # every failure is reported, the next check still runs
                status, detail = "FAIL", f"{type(exc).__name__}: {exc}"
                traceback.print_exc()
            line = f"{status} {name} ({time.perf_counter() - started:.1f} s): {detail}"
            RESULTS.append((status, name, detail))
            print(line, flush=True)
        return run
    return wrap


def digits_bundle() -> Any:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)
    mean, std = X_tr.mean(0), X_tr.std(0) + 1e-6
    spec = SimpleNamespace(task="classification", n_features=64, n_classes=10,
                           feature_names=[f"f{i}" for i in range(64)], image_shape=(1, 8, 8),
                           class_labels=list(range(10)))
    return SimpleNamespace(spec=spec, fingerprints={},
                           train=SimpleNamespace(X=((X_tr - mean) / std).astype(np.float32),
                                                 y=y_tr.astype(np.int64)),
                           val=SimpleNamespace(X=((X_va - mean) / std).astype(np.float32),
                                               y=y_va.astype(np.int64)))


def config(**training: Any) -> Any:
    from mltrainer.config import parse_config

    return parse_config({
        "name": "gpu-check", "task": "classification", "seed": 0,
        "data": {"source": "sklearn:digits"},
        "model": {"kind": "cnn", "channels": [16, 32], "hidden": [128], "dropout": 0.1},
        "training": {"epochs": 3, "batch_size": 64, "lr": 3e-3, **training},
        "goal": {"metric": "accuracy", "target": 0.5},
    })


@check("cuda device choice")
def devices(work: Path) -> str:
    from mltrainer.engine.devices import choose_device
    from mltrainer.errors import ConfigError

    n = torch.cuda.device_count()
    auto = choose_device(config().training)
    assert auto.device == torch.device("cuda", 0) and auto.notice is None, auto
    assert choose_device(config(device="cuda").training).device.type == "cuda"
    last = choose_device(config(device=f"cuda:{n - 1}").training).device
    assert last == torch.device("cuda", n - 1), last
    try:
        choose_device(config(device=f"cuda:{n}").training)
        raise AssertionError(f"cuda:{n} was not refused")
    except ConfigError as exc:
        refusal = exc.message
    return f"{n} GPU(s) [{torch.cuda.get_device_name(0)}]; auto -> cuda:0; cuda:{n} refused: " \
           f"{refusal[:80]}"


def train(work: Path, name: str, **training: Any) -> Any:
    from mltrainer.engine import Trainer

    return Trainer(config(**training), digits_bundle(), work / "runs" / name).fit()


@check("bf16 autocast on cuda")
def bf16(work: Path) -> str:
    r = train(work, "bf16", precision="bf16", device="cuda")
    assert r.device.startswith("cuda") and r.best_metric > 0.8, r.best_metric
    return f"val accuracy {r.best_metric:.4f} on {r.device}"


@check("fp16 with GradScaler, scaler state checkpointed and restored")
def fp16(work: Path) -> str:
    from mltrainer.engine import Trainer, load_checkpoint
    from mltrainer.engine.step import build_training

    r = train(work, "fp16", precision="fp16", device="cuda")
    assert r.best_metric > 0.8, r.best_metric
    ckpt = load_checkpoint(r.checkpoints["last"])
    assert ckpt["scaler"] and ckpt["scaler"]["scale"] > 0, ckpt.get("scaler")
    parts = build_training(config(precision="fp16", device="cuda"), digits_bundle())
    from mltrainer.engine.runstate import restore_training
    from mltrainer.engine.stopping import EarlyStopping

    restore_training(ckpt, parts, EarlyStopping(5, 0.0, True), [])
    assert parts.scaler.state_dict() == ckpt["scaler"], (parts.scaler.state_dict(), ckpt["scaler"])
    # an interrupted-then-resumed fp16 run ends where an uninterrupted one does
    whole = r
    stop = SimpleNamespace(n=0)

    def at_step_30(event: dict[str, Any]) -> str | None:
        stop.n += event.get("type") == "step"
        return "stop-for-check" if stop.n == 30 else None

    run_dir = work / "runs" / "fp16-resumed"
    Trainer(config(precision="fp16", device="cuda"), digits_bundle(), run_dir,
            subscribers=[SimpleNamespace(on_event=at_step_30)]).fit()
    resumed = Trainer(config(precision="fp16", device="cuda"), digits_bundle(),
                      run_dir).fit(resume=run_dir / "checkpoints" / "last.pt")
    a = load_checkpoint(whole.checkpoints["last"])["model"]
    b = load_checkpoint(resumed.checkpoints["last"])["model"]
    diff = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    assert diff == 0.0, f"resumed fp16 weights differ by {diff}"
    return f"val accuracy {r.best_metric:.4f}; scale {ckpt['scaler']['scale']}; resume bitwise"


@check("torch.compile on cuda (training.compile)")
def compiled(work: Path) -> str:
    r = train(work, "compiled", device="cuda", compile=True, epochs=2)
    assert r.best_metric > 0.7, r.best_metric
    return f"val accuracy {r.best_metric:.4f}"


@check("NCCL DDP with the GPUs present")
def nccl(work: Path) -> str:
    from mltrainer.engine import Trainer
    from mltrainer.engine.launch import Launch, run_job, run_result

    n = torch.cuda.device_count()
    if n < 2:
        import torch.distributed as dist

        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT="29533", RANK="0", WORLD_SIZE="1")
        dist.init_process_group("nccl")
        t = torch.ones(4, device="cuda")
        dist.all_reduce(t)
        dist.destroy_process_group()
        return f"skip: one GPU (NCCL needs a GPU per process); a world-1 NCCL all_reduce ran " \
               f"({t.sum().item():.0f})"
    cfg = config(device="cuda", batch_size=32)
    job = {"mode": "train", "config": cfg.model_dump(mode="json"), "root": str(work),
           "run_dir": str(work / "runs" / "nccl"), "kind": "baseline", "resume": None,
           "expected_fingerprints": None, "detectors": None}
    from mltrainer.data import prepare_data

    ddp = run_result(run_job(job, Launch(nproc=2), work / "nccl-job"))
    single = Trainer(config(device="cuda", batch_size=64), prepare_data(cfg, work),
                     work / "runs" / "nccl-single").fit()
    start = json.loads((work / "runs" / "nccl" / "metrics.jsonl").read_text().splitlines()[0])
    assert start["backend"] == "nccl" and ddp.world_size == 2, start
    assert abs(ddp.best_metric - single.best_metric) <= 0.02, (ddp.best_metric,
                                                               single.best_metric)
    return f"2 processes on {n} GPUs: val {ddp.best_metric:.4f} vs one process " \
           f"{single.best_metric:.4f}"


@check("out of memory with a deliberately huge batch")
def oom(work: Path) -> str:
    from mltrainer.config import parse_config
    from mltrainer.engine import Trainer
    from mltrainer.engine.precision import OutOfMemoryRunError

    rows, features = 400_000, 256
    g = torch.Generator().manual_seed(0)
    X = torch.randn(rows, features, generator=g).numpy()
    y = (X[:, 0] > 0).astype(np.int64)
    spec = SimpleNamespace(task="classification", n_features=features, n_classes=2,
                           feature_names=[f"f{i}" for i in range(features)], image_shape=None,
                           class_labels=[0, 1])
    bundle = SimpleNamespace(spec=spec, fingerprints={}, train=SimpleNamespace(X=X, y=y),
                             val=SimpleNamespace(X=X[:1000], y=y[:1000]))
    cfg = parse_config({"name": "oom", "task": "classification", "data": {"source": "x.csv"},
                        "model": {"kind": "mlp", "hidden": [32768, 32768], "dropout": 0.0},
                        "training": {"epochs": 1, "batch_size": rows, "device": "cuda"},
                        "goal": {"metric": "accuracy", "target": 0.9}})
    try:
        Trainer(cfg, bundle, work / "runs" / "oom").fit()
        raise AssertionError("a batch of 400000 rows through 32768-wide layers did not run out")
    except OutOfMemoryRunError as exc:
        assert exc.exit_code == 2 and "batch_size 400000" in exc.message, exc.message
        assert "grad_accum_steps" in (exc.hint or ""), exc.hint
        message = exc.message
    torch.cuda.empty_cache()
    after = train(work, "after-oom", device="cuda", epochs=1)  # the process is still usable
    return f"{message[:90]}...; a run after it trained ({after.best_metric:.3f})"


@check("export parity of GPU-trained weights (plan -> train-baseline -> finalize)")
def export_parity(work: Path) -> str:
    import yaml

    proj = work / "proj"
    mlt = [sys.executable, "-c", "from mltrainer.cli import main; main()"]

    def run(*args: str) -> tuple[int, dict[str, Any]]:
        p = subprocess.run([*mlt, *args, "-C", str(proj), "--json"], capture_output=True,
                           text=True, timeout=600)
        return p.returncode, json.loads(p.stdout or "{}")

    subprocess.run([*mlt, "init", str(proj), "--example", "digits"], check=True,
                   capture_output=True)
    raw = yaml.safe_load((proj / "mlt.yaml").read_text())
    raw["training"].update(epochs=8, device="cuda")
    raw["goal"]["target"] = 0.8
    (proj / "mlt.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    assert run("plan")[0] == 0
    code, base = run("train-baseline")
    assert code == 0 and base["run"]["device"].startswith("cuda"), base
    code, fin = run("finalize")
    assert "gate" in fin, fin.get("message")
    items = {i["id"]: i for i in fin["gate"]["items"]}
    parity = {k: items[k]["status"] for k in items if k.startswith("parity_")}
    assert parity and all(s == "pass" for s in parity.values()), parity
    diffs = {e["format"]: e["max_abs_diff"] for e in fin["exports"]}
    return f"trained on {base['run']['device']}; {parity}; max_abs_diff {diffs}"


@check("image folder + torchvision resnet18 on cuda, 2 loader workers, bf16: twice, bitwise")
def image_folder(work: Path) -> str:
    import yaml

    mlt = [sys.executable, "-c", "from mltrainer.cli import main; main()"]
    weights = []
    for n in (1, 2):
        proj = work / f"images-{n}"
        subprocess.run([*mlt, "init", str(proj), "--example", "images"], check=True,
                       capture_output=True)
        raw = yaml.safe_load((proj / "mlt.yaml").read_text())
        raw["model"] = {"kind": "torchvision:resnet18"}
        raw["data"]["loader"] = {"num_workers": 2}
        raw["training"].update(epochs=3, device="cuda", precision="bf16")
        (proj / "mlt.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
        for phase in ("plan", "train-baseline"):
            p = subprocess.run([*mlt, phase, "-C", str(proj), "--json"], capture_output=True,
                               text=True, timeout=300)
            assert p.returncode in (0, 1), p.stderr[-800:] or p.stdout[-800:]
        out = json.loads(p.stdout)
        assert out["run"]["device"].startswith("cuda"), out["run"]["device"]
        from mltrainer.engine import load_checkpoint

        last = proj / out["run"]["dir"] / "checkpoints" / "last.pt"
        weights.append((out["best_metric"], load_checkpoint(last)["model"]))
    (m1, a), (m2, b) = weights
    diff = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    assert diff == 0.0 and m1 == m2, (diff, m1, m2)
    return f"val accuracy {m1:.4f} twice; weights bitwise equal"


@check("throughput: digits CNN images/s, GPU against CPU")
def throughput(work: Path) -> str:
    out = {}
    for device in ("cpu", "cuda"):
        r = train(work, f"speed-{device}", device=device, epochs=3, batch_size=256)
        out[device] = 3 * len(digits_bundle().train.y) / r.wall_time_s
    return f"cpu {out['cpu']:.0f} img/s, cuda {out['cuda']:.0f} img/s " \
           f"(x{out['cuda'] / out['cpu']:.1f}; tiny 8x8 images: launch-bound)"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", default="/tmp/mlt-gpu-check")
    args = ap.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    if not torch.cuda.is_available():
        print(f"FAIL: no CUDA device visible to torch {torch.__version__} "
              f"(built for CUDA {torch.version.cuda})")
        return 1
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, "
          f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}", flush=True)
    for fn in (devices, bf16, fp16, compiled, nccl, oom, export_parity, image_folder,
               throughput):
        fn(work)
    count = {k: sum(r[0] == k for r in RESULTS) for k in ("PASS", "FAIL", "SKIP")}
    print(f"{count['PASS']} passed, {count['FAIL']} failed, {count['SKIP']} skipped")
    failed = [r for r in RESULTS if r[0] == "FAIL"]
    return len(failed)


if __name__ == "__main__":
    sys.exit(main())
