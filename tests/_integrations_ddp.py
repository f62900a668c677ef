"""What each of two processes does in tests/test_integrations.py's stop-broadcast test, started
by torchrun (gloo, CPU): process 0's loss turns NaN at step 3 (Lightning, Hugging Face, then a
hand-written loop with MltMonitor: the one named by argv[2]);
its detector's stop (for step 3, handled with its block of steps) must reach process 1, so both
stop at the same step (without the broadcast process 1 trains on and waits forever in the next
gradient all-reduce). Writes <framework>-rank<N>.json to argv[1]."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

from mltrainer.engine.entrypoint import frameworks_importable

frameworks_importable()
import torch  # noqa: E402
from torch import nn  # noqa: E402

OUT = Path(sys.argv[1])
RANK = int(os.environ["RANK"])
BAD_STEP = 3
torch.manual_seed(0)
X = torch.randn(128, 4)
Y = (X[:, 0] > 0).long()


def lightning_run() -> dict:
    import lightning as L
    from torch.utils.data import DataLoader, TensorDataset

    from mltrainer.integrations.lightning import MltCallback

    class Module(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Linear(4, 2)

        def training_step(self, batch, idx):
            loss = nn.functional.cross_entropy(self.net(batch[0]), batch[1])
            if self.global_rank == 0 and self.global_step + 1 == BAD_STEP:
                loss = loss * math.nan
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    cb = MltCallback(OUT / "lightning", task="classification", metric="accuracy")
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_epochs=4,
                        callbacks=[cb], logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(Module(), DataLoader(TensorDataset(X, Y), batch_size=8))
    return {"step": trainer.global_step, "reason": cb.stopping_reason,
            "stop_step": cb.monitor.stop_step, "max_block": cb.monitor.max_block}


def hf_run() -> dict:
    from transformers import Trainer, TrainingArguments

    from mltrainer.integrations.transformers import MltCallback

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Linear(4, 2)
            self.calls = 0

        def forward(self, x, labels):
            loss = nn.functional.cross_entropy(self.net(x), labels)
            self.calls += self.training
            if RANK == 0 and self.training and self.calls == BAD_STEP:
                loss = loss * math.nan
            return {"loss": loss}

    class Rows(torch.utils.data.Dataset):
        def __len__(self):
            return len(Y)

        def __getitem__(self, i):
            return {"x": X[i], "labels": Y[i]}

    cb = MltCallback(OUT / "hf", task="classification", metric="accuracy", train_rows=None)
    args = TrainingArguments(output_dir=str(OUT / "hf-out"), num_train_epochs=4,
                             per_device_train_batch_size=8, learning_rate=0.1, optim="sgd",
                             save_strategy="no", report_to="none", use_cpu=True,
                             ddp_backend="gloo", disable_tqdm=True, log_level="error",
                             logging_nan_inf_filter=False, max_grad_norm=0.0)
    trainer = Trainer(model=Model(), args=args, train_dataset=Rows(), callbacks=[cb])
    trainer.train()
    return {"step": trainer.state.global_step, "reason": cb.stopping_reason,
            "stop_step": cb.monitor.stop_step, "max_block": cb.monitor.max_block}


def loop_run() -> dict:
    """A hand-written DDP loop with MltMonitor: process 0's stop reaches process 1 through
    the monitor's all-reduce of the stop flag at every step."""
    from torch import distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from mltrainer.integrations.loop import MltMonitor

    ours = not dist.is_initialized()  # (the frameworks' runs may have left theirs up)
    if ours:
        dist.init_process_group("gloo")
    torch.manual_seed(0)
    model = DistributedDataParallel(nn.Linear(4, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with MltMonitor(model, OUT / "loop", task="classification", metric="accuracy",
                    train_rows=None) as mlt:
        for _ in range(8):  # 64 steps: the stop (handled with its block of 32) cuts it short
            for i in range(RANK, len(Y), 16):  # this process's half of each batch of 16
                optimizer.zero_grad()
                loss = nn.functional.cross_entropy(model(X[i:i + 8]), Y[i:i + 8])
                if RANK == 0 and mlt.global_step + 1 == BAD_STEP:
                    loss = loss * math.nan
                loss.backward()
                mlt.step(loss, optimizer)
                optimizer.step()
                if mlt.should_stop:
                    break
            if mlt.should_stop:
                break
    if ours:
        dist.destroy_process_group()
    return {"step": mlt.global_step, "reason": mlt.stopping_reason,
            "stop_step": mlt.monitor.stop_step, "max_block": mlt.monitor.max_block}


# one framework per pair of processes, as a script uses one (argv[2]): run one after another
# in the same two processes, a torch.distributed group HF's Trainer left up was reused by
# Lightning's, and process 1 aborted in C++ now and then ("terminate called without an active
# exception", ~1 run in 20 under load), outside anything this test is about
FRAMEWORK = sys.argv[2]
result = {FRAMEWORK: {"hf": hf_run, "lightning": lightning_run, "loop": loop_run}[FRAMEWORK]()}
(OUT / f"{FRAMEWORK}-rank{RANK}.json").write_text(json.dumps(result))
