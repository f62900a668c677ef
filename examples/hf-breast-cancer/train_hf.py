"""A Hugging Face Trainer script, run by mlt (training.entrypoint) or on its own.

The model is a tiny BERT created from a `BertConfig` (nothing downloaded) over tabular rows:
each feature is one token whose embedding is its value times a learned vector. Under mlt,
`context()` hands the script its run folder, seed, resolved config and the train and val rows;
`MltCallback()` writes the metric stream, runs mlt's detectors and keeps the checkpoints that
`load_model` reads back.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import BertConfig, BertModel, Trainer, TrainingArguments
from transformers.modeling_outputs import SequenceClassifierOutput

from mltrainer.integrations import context, load_checkpoint_weights
from mltrainer.integrations.transformers import MltCallback


class TabularBert(nn.Module):
    """Rows (N, features) -> logits (N, classes); with `labels`, a SequenceClassifierOutput."""

    def __init__(self, n_features: int, n_classes: int, hidden: int, dropout: float) -> None:
        super().__init__()
        config = BertConfig(vocab_size=1, hidden_size=hidden, num_hidden_layers=1,
                            num_attention_heads=2, intermediate_size=2 * hidden,
                            max_position_embeddings=n_features, hidden_dropout_prob=dropout,
                            attention_probs_dropout_prob=dropout)
        self.values = nn.Parameter(torch.randn(n_features, hidden) * 0.02)
        self.bert = BertModel(config, add_pooling_layer=False)
        self.head = nn.Linear(hidden, n_classes)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None):
        tokens = x.unsqueeze(-1) * self.values  # (N, features, hidden)
        pooled = self.bert(inputs_embeds=tokens).last_hidden_state.mean(dim=1)
        logits = self.head(pooled)
        if labels is None:
            return logits
        loss = nn.functional.cross_entropy(logits, labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)


def build_model(config, spec) -> TabularBert:
    return TabularBert(spec.n_features, spec.n_classes, config.model.hidden[0],
                       config.model.dropout)


class Rows(torch.utils.data.Dataset):
    def __init__(self, split) -> None:
        self.x, self.y = torch.as_tensor(split.X), torch.as_tensor(split.y)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "labels": self.y[i]}


def main() -> None:
    ctx = context()
    cfg = ctx.config.training
    args = TrainingArguments(
        output_dir=str(ctx.run_dir / "hf"), num_train_epochs=cfg.epochs,
        max_steps=ctx.max_steps or -1, per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=len(ctx.val), learning_rate=cfg.lr,
        weight_decay=cfg.weight_decay, max_grad_norm=cfg.grad_clip or 0.0,
        lr_scheduler_type="constant", eval_strategy="epoch", save_strategy="no",
        report_to="none", use_cpu=True, seed=ctx.seed, data_seed=ctx.seed,
        disable_tqdm=True, logging_nan_inf_filter=False, dataloader_num_workers=0)
    trainer = Trainer(
        model=build_model(ctx.config, ctx.spec), args=args, train_dataset=Rows(ctx.train),
        eval_dataset=Rows(ctx.val), callbacks=[MltCallback()],
        compute_metrics=lambda p: ctx.compute_metrics(p.predictions, p.label_ids))
    trainer.train()


def load_model(checkpoint, config, spec) -> nn.Module:
    """The best checkpoint back as a module mapping feature rows to logits."""
    model = build_model(config, spec)
    model.load_state_dict(load_checkpoint_weights(checkpoint))
    return model
