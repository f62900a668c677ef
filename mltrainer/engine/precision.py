"""Mixed precision and running out of memory.

`autocast_for` gives the forward pass's context (a no-op for fp32), `make_scaler` the fp16
gradient scaler (its state goes into every checkpoint: `runstate`), and `out_of_memory_error`
turns torch's out-of-memory error into a BadInputError (exit 2) that names the batch size that
ran out and what to try.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch

from mltrainer.config import TrainingConfig
from mltrainer.errors import BadInputError

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class OutOfMemoryRunError(BadInputError):
    """Training ran out of device memory; the last checkpoint is kept. Exit 2."""


def autocast_for(precision: str, device: torch.device) -> Callable[[], Any]:
    """A factory of the forward pass's autocast context for `precision` on `device`."""
    if precision == "fp32":
        return contextlib.nullcontext
    dtype = DTYPES[precision]
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


def make_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler | None:
    """fp16 needs loss scaling (its range underflows small gradients); bf16 and fp32 do not."""
    return torch.amp.GradScaler(device.type) if precision == "fp16" else None


def is_out_of_memory(exc: BaseException) -> bool:
    """torch's OutOfMemoryError (CUDA, and MPS/CPU allocators that raise it), or the CPU
    allocator's RuntimeError for an allocation that cannot be served."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and (
        "can't allocate memory" in text or "out of memory" in text.lower())


def out_of_memory_error(cfg: TrainingConfig, device: torch.device, world_size: int,
                        kept: str | None) -> OutOfMemoryRunError:
    smaller = max(1, cfg.batch_size // 2)
    accum = cfg.grad_accum_steps * (cfg.batch_size // smaller)
    tips = [f"training.batch_size: {smaller} with training.grad_accum_steps: {accum} (the same "
            f"effective batch of {cfg.batch_size * cfg.grad_accum_steps * world_size} rows)"]
    if cfg.precision == "fp32" and device.type != "mps":
        tips.append("training.precision: bf16" + (" (or fp16)" if device.type == "cuda" else ""))
    where = f"the last checkpoint is kept ({kept})" if kept else "no epoch had finished"
    return OutOfMemoryRunError(
        f"out of memory on {device} at training.batch_size {cfg.batch_size} (rows per forward "
        f"pass per process, precision {cfg.precision}); {where}",
        hint="try " + "; or ".join(tips) + "; then start a fresh run (or --resume)",
        batch_size=cfg.batch_size, device=str(device), precision=cfg.precision,
    )
