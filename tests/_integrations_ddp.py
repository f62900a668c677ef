"""What each of two processes does in tests/test_integrations.py's stop-broadcast test, started
by torchrun (gloo, CPU): process 0's loss turns NaN at step 3 (Lightning, then Hugging Face);
its detector's stop (for step 3, handled with its block of steps) must reach process 1, so both
stop at the same step (without the broadcast process 1 trains on and waits forever in the next
gradient all-reduce). Writes rank<N>.json to argv[1]."""

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


result = {"hf": hf_run(), "lightning": lightning_run()}
(OUT / f"rank{RANK}.json").write_text(json.dumps(result))
