"""A Lightning training script, run by mlt (training.entrypoint) or on its own.

Under mlt, `context()` hands it the run folder, seed, resolved config (with any `mlt optimize`
trial's overrides) and the train and val rows; `MltCallback()` writes the metric stream, runs
mlt's detectors and keeps the checkpoints `load_model` reads back.
"""

from __future__ import annotations

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader

from mltrainer.integrations import context, load_checkpoint_weights
from mltrainer.integrations.lightning import MltCallback


def build_model(config, spec) -> nn.Module:
    layers: list[nn.Module] = []
    width = spec.n_features
    for hidden in config.model.hidden:
        layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(config.model.dropout)]
        width = hidden
    layers.append(nn.Linear(width, spec.n_classes))
    return nn.Sequential(*layers)


class Classifier(L.LightningModule):
    def __init__(self, net: nn.Module, lr: float, weight_decay: float, metrics) -> None:
        super().__init__()
        self.net = net
        self.lr, self.weight_decay, self.metrics = lr, weight_decay, metrics
        self.loss = nn.CrossEntropyLoss()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return self.loss(self.net(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch  # one batch: the whole val split
        logits = self.net(x)
        self.log("val_loss", self.loss(logits, y))
        for name, value in self.metrics(logits, y).items():
            self.log(f"val_{name}", torch.tensor(value, dtype=torch.float64))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)


def main() -> None:
    ctx = context()
    cfg = ctx.config.training
    module = Classifier(build_model(ctx.config, ctx.spec), cfg.lr, cfg.weight_decay,
                        ctx.compute_metrics)
    train = DataLoader(ctx.train.tensors(), batch_size=cfg.batch_size, shuffle=True,
                       generator=torch.Generator().manual_seed(ctx.seed))
    val = DataLoader(ctx.val.tensors(), batch_size=len(ctx.val))
    callbacks: list[L.Callback] = [MltCallback()]
    if cfg.early_stopping.patience:
        callbacks.append(L.pytorch.callbacks.EarlyStopping(
            "val_accuracy", mode="max", patience=cfg.early_stopping.patience, strict=False))
    trainer = L.Trainer(
        max_epochs=cfg.epochs, max_steps=ctx.max_steps or -1, callbacks=callbacks,
        gradient_clip_val=cfg.grad_clip, accelerator="cpu", deterministic=True, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0)
    trainer.fit(module, train, val)


def load_model(checkpoint, config, spec) -> nn.Module:
    """The best checkpoint back as a module mapping feature rows to logits."""
    net = build_model(config, spec)
    weights = load_checkpoint_weights(checkpoint)
    net.load_state_dict({k.removeprefix("net."): v for k, v in weights.items()})
    return net
