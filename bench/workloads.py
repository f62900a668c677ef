"""Issue 13's measurements: image throughput against a hand-written DataLoader loop, peak RSS
on an image folder larger than memory allows, and export parity per model family.

    python bench/workloads.py throughput [--images 600] [--epochs 3] [--workers 2] [--rounds 3]
                                         [--variants mlt,no-keep,table-rows,whole-reads,
                                                     reread-subset,eval-pool]
                                         [--baseline TREE] [--fresh]
    python bench/workloads.py rss [--limit-mb 1024] [--epochs 3] [--workers 2]
    python bench/workloads.py parity

throughput: one generated image folder (64x64 RGB PNG, 2 classes), torchvision transforms v2
(resize 32, random crop 32 + pad 2, flip, normalise), the same small CNN, AdamW, batch 32, the
same DataLoader workers; `Trainer.fit()` (epoch wall time from its stream, val included) vs a
hand-written loop (torchvision ImageFolder + DataLoader, shuffle, loss.item() per step, val
each epoch), in alternating order for several rounds, torch.set_num_threads(1). Prints ms per
epoch (median of epochs 2+, and of epoch 1 apart: mlt keeps evaluation inputs in memory after
epoch 1, workers start in epoch 1) and the ratios to the hand loop. `--fresh`: each run in a
process of its own (as `mlt train-baseline` is), not all in this one; `--baseline TREE` (implies
--fresh) adds "mlt@base", `Trainer.fit()` of another checkout (e.g. `git archive main`), side by
side in the same rounds.

rss: generates a folder of noise PNGs (512x512 RGB, incompressible) whose size on disk is 4x
`--limit-mb`, trains a CNN on it (resize 64) and prints peak RSS (the training process, and the
largest worker) after each epoch: it must stay under the limit and flat across epochs.

parity: ONNX, TorchScript and .pt2 exports (dynamic batch; text: dynamic sequence) of
torchvision resnet18 and timm resnet10t on the images example's photos (3 channels, 32 px) and
of the text example's tiny BERT on its names (seeded init: the exports, not the training, are
under test), each reloaded in a fresh process (`check_parity`, what finalize runs) against
eager PyTorch at batch 1, 2, 7 and all rows.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _config(source: str, workers: int, epochs: int, size: int, **model: Any) -> Any:
    from mltrainer.config import parse_config

    return parse_config({
        "name": "bench", "task": "classification", "seed": 0,
        "data": {"source": source, "split": {"val": 0.1, "test": 0.1},
                 "loader": {"num_workers": workers, "persistent_workers": workers > 0},
                 "transforms": {"size": size, "crop": size,
                                "augment": {"random_crop": True, "crop_padding": 2,
                                            "hflip": 0.5}}},
        "model": {"kind": "cnn", "channels": [16, 32], "hidden": [64], **model},
        "training": {"epochs": epochs, "batch_size": 32, "lr": 1e-3, "scheduler": "none",
                     "grad_clip": None, "grad_stats_every": 0,
                     "early_stopping": {"patience": 0}},
        "goal": {"metric": "accuracy", "target": 0.9}})


def _noise_folder(root: Path, n: int, side: int, seed: int = 0) -> Path:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder = root / "imgs"
    for i in range(n):
        cls = f"c{i % 2}"
        (folder / cls).mkdir(parents=True, exist_ok=True)
        img = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        if i % 2:
            img[: side // 2] //= 2  # a learnable difference between the classes
        Image.fromarray(img).save(folder / cls / f"{i:06d}.png", compress_level=1)
    return folder


def _hand_loop(folder: Path, cfg: Any, bundle: Any, epochs: int) -> list[float]:
    """The loop a careful user writes: ImageFolder, DataLoader, the same transforms and model."""
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, Subset

    from mltrainer.models import build_model
    from mltrainer.models._vision import torchvision

    tv = torchvision()
    pipe = bundle.pipeline
    train_ds = Subset(tv.datasets.ImageFolder(str(folder), transform=pipe.train_tf),
                      bundle.train.indices.tolist())
    val_ds = Subset(tv.datasets.ImageFolder(str(folder), transform=pipe.eval_tf),
                    bundle.val.indices.tolist())
    workers = cfg.data.loader.num_workers
    kw = {"num_workers": workers, "persistent_workers": workers > 0}
    train = DataLoader(train_ds, batch_size=32, shuffle=True, **kw)
    val = DataLoader(val_ds, batch_size=256, **kw)
    torch.manual_seed(0)
    model = build_model(cfg.model, bundle.spec)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        model.train()
        for xb, yb in train:
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            loss.item()
        model.eval()
        with torch.no_grad():
            for xb, yb in val:
                model(xb).argmax(1).eq(yb).float().mean().item()
        times.append(time.perf_counter() - start)
    return times


def _mlt_loop(cfg: Any, bundle: Any, run_dir: Path, variant: str = "mlt") -> list[float]:
    """`Trainer.fit()`'s epoch wall times. Variants (what each engine choice buys): "mlt" as
    shipped; "no-keep": evaluation inputs re-read from disk every epoch
    (`loading.KEEP_EVAL_MB = 0`); "table-rows": the train-metric subset sized as for table
    data (max(n_val, TRAIN_EVAL_MIN_ROWS) rows, here all of train); "whole-reads": each
    evaluation batch read whole by one worker (`loading._reading_parts` = 1, as before issue
    13's fifth pass), not in one part per worker; "reread-subset": epoch 1's train subset read
    and decoded by the evaluation workers (`LoaderBatches.evaluate_too` off, as before issue
    13's seventh pass), not taken from the training workers' decode; "eval-pool": epoch 1's val
    read by a pool of evaluation workers at the epoch's end (as before issue 13's ninth pass),
    not by the training workers while it trains (the subset still from their decode)."""
    import json
    from unittest import mock

    from mltrainer.engine import Trainer, loading, loop

    loading._EVAL_READERS.clear()  # no evaluation batches kept from an earlier run
    patches = []
    if variant == "no-keep":
        patches.append(mock.patch.object(loading, "KEEP_EVAL_MB", 0))
    if variant == "reread-subset":
        patches.append(mock.patch.object(loading.LoaderBatches, "evaluate_too",
                                         lambda self, part: False))
    if variant == "eval-pool":
        only_subset = loading.LoaderBatches.evaluate_too
        patches.append(mock.patch.object(
            loading.LoaderBatches, "evaluate_too",
            lambda self, part: part is not bundle.val and only_subset(self, part)))
    if variant == "whole-reads":
        patches.append(mock.patch.object(loading, "_reading_parts", lambda split: 1))
    if variant == "table-rows":
        table = loop.train_subset
        patches.append(mock.patch.object(
            loop, "train_subset", lambda n, v, seed, items=False: table(n, v, seed)))
    for patch in patches:
        patch.start()
    try:
        Trainer(cfg, bundle, run_dir).fit()
    finally:
        for patch in patches:
            patch.stop()
        loading._EVAL_READERS.clear()
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [e["wall_time"] for e in events if e["type"] == "epoch"]


def _fresh(tree: Path, name: str, root: Path, args: argparse.Namespace, r: int
           ) -> tuple[list[float], float]:
    """One run in a process of its own, with `tree`'s mltrainer: (epoch times, CPU seconds of
    the run, its loader workers' included)."""
    import json
    import subprocess

    cmd = [sys.executable, str(Path(__file__).resolve()), "arm", "--tree", str(tree),
           "--name", name, "--root", str(root), "--round", str(r),
           "--workers", str(args.workers), "--epochs", str(args.epochs)]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    got = json.loads(out.strip().splitlines()[-1])
    return got["times"], got["cpu"]


def arm(args: argparse.Namespace) -> None:
    """`--fresh`'s child: one run of `--name` on the folder under `--root`: its epoch times
    and CPU seconds (this process and its finished children: the workers, once stopped)."""
    import gc
    import json

    import torch

    from mltrainer.data import prepare_data

    torch.set_num_threads(1)
    root = Path(args.root)
    cfg = _config("imagefolder:imgs", args.workers, args.epochs, 32)
    bundle = prepare_data(cfg, root)

    def cpu() -> float:
        return sum(u.ru_utime + u.ru_stime for u in (
            resource.getrusage(resource.RUSAGE_SELF),
            resource.getrusage(resource.RUSAGE_CHILDREN)))

    before = cpu()
    if args.name == "hand":
        times = _hand_loop(root / "imgs", cfg, bundle, args.epochs)
    else:
        times = _mlt_loop(cfg, bundle, root / "runs" / f"{args.name}-{args.round}",
                          args.name.split("@")[0])
    gc.collect()  # the loaders go, and their workers stop (then RUSAGE_CHILDREN counts them)
    print(json.dumps({"times": times, "cpu": cpu() - before}))


def throughput(args: argparse.Namespace) -> None:
    import torch

    from mltrainer.data import prepare_data

    torch.set_num_threads(1)
    names = ["hand", *args.variants.split(",")]
    fresh = args.fresh or args.baseline is not None
    if args.baseline is not None:
        names.append("mlt@base")
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = _noise_folder(root, args.images, 64)
        cfg = _config("imagefolder:imgs", args.workers, args.epochs, 32)
        bundle = prepare_data(cfg, root)
        n = len(bundle.train)
        later: dict[str, list[float]] = {name: [] for name in names}
        first: dict[str, list[float]] = {name: [] for name in names}
        cpus: dict[str, list[float]] = {name: [] for name in names}
        for r in range(args.rounds):
            shift = r % len(names)  # each round starts with a different one
            for name in names[shift:] + names[:shift]:
                if fresh:
                    tree = Path(args.baseline).resolve() if name.endswith("@base") else REPO
                    times, used = _fresh(tree, name, root, args, r)
                    cpus[name].append(used)
                elif name == "hand":
                    times = _hand_loop(folder, cfg, bundle, args.epochs)
                else:
                    times = _mlt_loop(cfg, bundle, root / "runs" / f"{name}-{r}", name)
                first[name].append(times[0])
                later[name].extend(times[1:])
        print(f"train images {n}, val {len(bundle.val)}, workers {args.workers}, "
              f"epochs {args.epochs}, rounds {args.rounds} (alternating order), 1 thread, "
              f"{'a process per run' if fresh else 'all in one process'}; "
              f"load average before: {load_before:.2f}")
        def median(xs: list[float]) -> float:  # --epochs 1: no epochs 2+
            return statistics.median(xs) if xs else float("nan")

        h, h1 = median(later["hand"]), statistics.median(first["hand"])
        print(f"{'':<14}{'epochs 2+ ms':>13}{'images/s':>10}{'ratio':>7}   "
              f"{'epoch 1 ms':>11}{'ratio':>7}")
        for name in names:
            m, m1 = median(later[name]), statistics.median(first[name])
            print(f"{name:<14}{m * 1000:13.1f}{n / m:10.1f}{m / h:7.3f}   "
                  f"{m1 * 1000:11.1f}{m1 / h1:7.3f}")
        print("epoch 1 ms per round (in run order within a round: "
              "names rotated by one each round):")
        for name in names:
            print(f"  {name:<12}" + " ".join(f"{t * 1000:7.0f}" for t in first[name]))
        if fresh:
            print("CPU s of a whole run (all epochs; main process and loader workers), "
                  "median:", ", ".join(f"{name} {statistics.median(cpus[name]):.2f}"
                                       for name in names))
        print(f"load average after: {os.getloadavg()[0]:.2f}")
        if args.baseline is not None:
            print(f"mlt@base: {args.baseline}")


def _rss_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


def rss(args: argparse.Namespace) -> None:
    import json

    import torch

    from mltrainer.data import prepare_data
    from mltrainer.engine import Trainer

    torch.set_num_threads(1)
    per_file = 512 * 512 * 3  # bytes of an incompressible 512x512 RGB PNG (about)
    n = int(4.05 * args.limit_mb * 2**20 / per_file) + 1  # PNG headers: a little margin
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        folder = _noise_folder(root, n, 512)
        disk = sum(p.stat().st_size for p in folder.rglob("*.png"))
        print(f"generated {n} images, {disk / 2**20:.0f} MiB on disk "
              f"({disk / 2**20 / args.limit_mb:.2f}x the {args.limit_mb} MiB limit) in "
              f"{time.perf_counter() - started:.0f} s")
        cfg = _config("imagefolder:imgs", args.workers, args.epochs, 64)
        bundle = prepare_data(cfg, root)
        print(f"after plan's data load: RSS {_rss_mb(resource.RUSAGE_SELF):.0f} MiB")

        class Watch:
            def on_event(self, event: dict[str, Any]) -> None:
                if event["type"] == "epoch":
                    print(f"epoch {event['epoch']}: peak RSS {_rss_mb(resource.RUSAGE_SELF):.0f}"
                          f" MiB (largest worker {_rss_mb(resource.RUSAGE_CHILDREN):.0f} MiB), "
                          f"{event['wall_time']:.0f} s, val acc {event['val']['accuracy']:.3f}")

        Trainer(cfg, bundle, root / "runs" / "rss", subscribers=[Watch()]).fit()
        peak = _rss_mb(resource.RUSAGE_SELF)
        print(f"peak RSS {peak:.0f} MiB: {'under' if peak < args.limit_mb else 'OVER'} the "
              f"{args.limit_mb} MiB limit; data on disk {disk / 2**20:.0f} MiB")
        json.dumps({})


def parity(args: argparse.Namespace) -> None:
    import torch

    from mltrainer.config import parse_config
    from mltrainer.data import prepare_data
    from mltrainer.examples import write_example_data
    from mltrainer.exporting import build_item_deployable, check_parity, export_all, model_inputs
    from mltrainer.models import build_model

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_example_data("images", root)
        write_example_data("text", root)
        cases = [
            ("torchvision:resnet18", {"source": "imagefolder:data/faces",
                                      "transforms": {"size": 32, "crop": 32}}),
            ("timm:resnet10t", {"source": "imagefolder:data/faces",
                                "transforms": {"size": 32, "crop": 32}}),
            ("hf:model", {"source": "data/names.jsonl", "text_column": "text"}),
        ]
        print(f"{'model':<22}{'format':<13}{'rows':>5} {'max_abs':>9} {'max_rel':>9} "
              f"{'labels':>7}  passed")
        for kind, data in cases:
            model_cfg = {"kind": kind, **({"tokenizer": "tokenizer", "max_length": 16}
                                          if kind.startswith("hf:") else {})}
            cfg = parse_config({"name": "p", "task": "classification", "seed": 0,
                                "data": {**data, "split": {"val": 0.3, "test": 0.15}},
                                "model": model_cfg,
                                "goal": {"metric": "accuracy", "target": 0.9}})
            bundle = prepare_data(cfg, root)
            torch.manual_seed(0)
            model = build_model(cfg.model, bundle.spec, root=root)
            dep = build_item_deployable(model, bundle.pipeline)
            records = export_all(dep, model_inputs(bundle.val, 8), root / kind.replace(":", "-"))
            inputs = model_inputs(bundle.val, min(len(bundle.val), args.rows))
            for res in check_parity(records, dep, inputs, "classification"):
                rows = sum(res["batch_sizes"] or [])
                print(f"{kind:<22}{res['format']:<13}{rows:>5} {res['max_abs_diff']:9.2e} "
                      f"{res['max_rel_diff']:9.2e} {res['label_agreement']:7.3f}  "
                      f"{res['passed']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--images", type=int, default=600)
    t.add_argument("--epochs", type=int, default=3)
    t.add_argument("--workers", type=int, default=2)
    t.add_argument("--rounds", type=int, default=3)
    t.add_argument("--variants", default="mlt",
                   help="comma-separated, beside the hand loop: mlt, no-keep, table-rows, "
                        "whole-reads, reread-subset, eval-pool (see _mlt_loop)")
    t.add_argument("--baseline", default=None, metavar="TREE",
                   help="another checkout's mlt beside (mlt@base); implies --fresh")
    t.add_argument("--fresh", action="store_true", help="each run in a process of its own")
    a = sub.add_parser("arm")
    a.add_argument("--tree", required=True)
    a.add_argument("--name", required=True)
    a.add_argument("--root", required=True)
    a.add_argument("--round", type=int, default=0)
    a.add_argument("--workers", type=int, default=2)
    a.add_argument("--epochs", type=int, default=3)
    r = sub.add_parser("rss")
    r.add_argument("--limit-mb", type=int, default=1024)
    r.add_argument("--epochs", type=int, default=3)
    r.add_argument("--workers", type=int, default=2)
    r.add_argument("--dir", default=None, help="where to generate the folder (default: /tmp)")
    p = sub.add_parser("parity")
    p.add_argument("--rows", type=int, default=60, help="val items compared per export")
    args = parser.parse_args()
    if args.what == "arm":  # the tree under test's mltrainer, not this script's
        sys.path.insert(0, str(Path(args.tree).resolve()))
    {"throughput": throughput, "rss": rss, "parity": parity, "arm": arm}[args.what](args)


if __name__ == "__main__":
    main()
