"""What MltCallback costs per optimisation step inside Lightning's and Hugging Face's loops.

The same script (digits as `mlt plan` splits it, mlt's built-in MLP, adamw, batch 64, val every
epoch, no checkpoints, no logger, no progress bar) runs with and without the callback, in
alternating order in one process for several rounds, on one thread:

- lightning / lightning+mlt:  `lightning.Trainer.fit`, with `MltCallback` added in the second;
- hf / hf+mlt:                `transformers.Trainer.train` (`disable_tqdm`, `report_to="none"`,
                              the default `logging_steps`), with `MltCallback` added (which
                              also makes the Trainer log every step: that cost is counted);
- the callbacks write the stream, per-layer statistics every 10 steps, run all eight
  detectors online; checkpoints are off in both arms (`save_checkpoints=False`) because the
  plain scripts save none.

    python bench/integrations.py [--epochs 8] [--rounds 5] [--hidden 256 128]

Prints the median and best wall time per step of each arm and the overhead ratio
(with / without - 1) over the median and the best rounds. Target: <= 2 %.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def setup(hidden: list[int]) -> tuple[Any, Any]:
    from mltrainer.config import parse_config
    from mltrainer.data import prepare_data

    cfg = parse_config({"name": "bench", "task": "classification", "seed": 0,
                        "data": {"source": "sklearn:digits"},
                        "model": {"kind": "mlp", "hidden": hidden, "dropout": 0.0},
                        "goal": {"metric": "accuracy", "target": 0.9}})
    return cfg, prepare_data(cfg, REPO)


def lightning_run(cfg: Any, bundle: Any, epochs: int, with_mlt: bool, tmp: Path) -> float:
    from mltrainer.engine.entrypoint import frameworks_importable

    frameworks_importable()  # before the framework (a CPU torch with a CUDA torchvision)
    import lightning as L
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    from mltrainer.integrations.lightning import MltCallback
    from mltrainer.models import build_model

    class Module(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = build_model(cfg.model, bundle.spec)

        def training_step(self, batch: Any, idx: int) -> torch.Tensor:
            return nn.functional.cross_entropy(self.net(batch[0]), batch[1])

        def validation_step(self, batch: Any, idx: int) -> None:
            logits = self.net(batch[0])
            self.log("val_loss", nn.functional.cross_entropy(logits, batch[1]))
            self.log("val_accuracy", (logits.argmax(1) == batch[1]).float().mean())

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.AdamW(self.parameters(), lr=1e-3)

    torch.manual_seed(0)
    train = DataLoader(TensorDataset(torch.as_tensor(bundle.train.X),
                                     torch.as_tensor(bundle.train.y)), batch_size=64,
                       shuffle=True)
    val = DataLoader(TensorDataset(torch.as_tensor(bundle.val.X), torch.as_tensor(bundle.val.y)),
                     batch_size=len(bundle.val.y))
    callbacks = [MltCallback(tmp / f"l{time.perf_counter_ns()}", task="classification",
                             metric="accuracy", save_checkpoints=False)] if with_mlt else []
    trainer = L.Trainer(max_epochs=epochs, callbacks=callbacks, logger=False, accelerator="cpu",
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0)
    start = time.perf_counter()
    trainer.fit(Module(), train, val)
    return (time.perf_counter() - start) / trainer.global_step


def hf_run(cfg: Any, bundle: Any, epochs: int, with_mlt: bool, tmp: Path) -> float:
    from mltrainer.engine.entrypoint import frameworks_importable

    frameworks_importable()  # before the framework (a CPU torch with a CUDA torchvision)
    import torch
    from torch import nn
    from transformers import Trainer, TrainingArguments

    from mltrainer.integrations.transformers import MltCallback
    from mltrainer.models import build_model

    class Wrapped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = build_model(cfg.model, bundle.spec)

        def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
            logits = self.net(x)
            return {"loss": nn.functional.cross_entropy(logits, labels), "logits": logits}

    class Rows(torch.utils.data.Dataset):
        def __init__(self, split: Any) -> None:
            self.x, self.y = torch.as_tensor(split.X), torch.as_tensor(split.y)

        def __len__(self) -> int:
            return len(self.y)

        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            return {"x": self.x[i], "labels": self.y[i]}

    torch.manual_seed(0)
    args = TrainingArguments(
        output_dir=str(tmp / "hf"), num_train_epochs=epochs, per_device_train_batch_size=64,
        per_device_eval_batch_size=len(bundle.val.y), learning_rate=1e-3,
        eval_strategy="epoch", save_strategy="no", report_to="none", use_cpu=True,
        disable_tqdm=True, log_level="error")
    callbacks = [MltCallback(tmp / f"h{time.perf_counter_ns()}", task="classification",
                             metric="accuracy", save_checkpoints=False)] if with_mlt else []
    trainer = Trainer(model=Wrapped(), args=args, train_dataset=Rows(bundle.train),
                      eval_dataset=Rows(bundle.val), callbacks=callbacks,
                      compute_metrics=lambda p: {"accuracy": float(
                          (p.predictions.argmax(1) == p.label_ids).mean())})
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # PrintCallback's lines, in both arms
        trainer.train()
    return (time.perf_counter() - start) / trainer.state.global_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 128],
                        help="MLP widths: wider makes each step cost more real work")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    cfg, bundle = setup(args.hidden)
    arms = {"lightning": lightning_run, "hf": hf_run}
    times: dict[str, list[float]] = {f"{a}{s}": [] for a in arms for s in ("", "+mlt")}
    with tempfile.TemporaryDirectory() as tmp:
        for run in arms.values():  # warm-up: imports, first-call costs
            run(cfg, bundle, 1, True, Path(tmp))
        for r in range(args.rounds):
            for name, run in arms.items():
                order = (False, True) if r % 2 == 0 else (True, False)
                for with_mlt in order:
                    key = name + ("+mlt" if with_mlt else "")
                    times[key].append(run(cfg, bundle, args.epochs, with_mlt, Path(tmp)))
    print(f"ms per step over {args.rounds} rounds of {args.epochs} epochs (digits, MLP "
          f"{args.hidden}, one thread)")
    print(f"{'arm':<16}{'median':>10}{'best':>10}")
    for key, values in times.items():
        print(f"{key:<16}{1e3 * statistics.median(values):>10.3f}{1e3 * min(values):>10.3f}")
    for name in arms:
        plain, mlt = times[name], times[name + "+mlt"]
        med = statistics.median(mlt) / statistics.median(plain) - 1
        best = min(mlt) / min(plain) - 1
        print(f"{name}: callback overhead {med:+.1%} (medians), {best:+.1%} (best rounds); "
              "target <= +2.0%")


if __name__ == "__main__":
    main()
