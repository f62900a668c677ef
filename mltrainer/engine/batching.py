"""Mini-batches by indexing tensors that live on the training device: no per-sample Dataset.

The shuffle order comes from a dedicated `torch.Generator`, so the order does not depend on how
many random numbers the model drew (dropout, init), and its state goes into every checkpoint.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

# Offset between the run seed and the shuffle generator's seed, so the shuffle stream is not the
# same sequence the global torch RNG (model init, dropout) starts from.
SHUFFLE_SEED_OFFSET = 7919


class InMemoryBatches:
    """A split as two tensors on `device`, cut into batches of a per-epoch permutation.

    With batch_size > 1 a trailing batch of exactly one row is dropped (a different row each
    epoch, as the order is shuffled): batch normalisation cannot train on a single row.
    """

    def __init__(self, X: np.ndarray, y: np.ndarray, batch_size: int, device: torch.device,
                 seed: int, regression: bool) -> None:
        if len(X) != len(y):
            raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
        if len(X) == 0:
            raise ValueError("the training split has no rows")
        self.X = to_tensor(X, device, torch.float32)
        self.y = to_tensor(y, device, torch.float32 if regression else torch.int64)
        self.n = len(X)
        self.batch_size = batch_size
        rows = self.n - 1 if batch_size > 1 and self.n % batch_size == 1 and self.n > 1 else self.n
        self.steps_per_epoch = math.ceil(rows / batch_size)
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(seed + SHUFFLE_SEED_OFFSET)
        self._device = device

    def new_order(self) -> torch.Tensor:
        """The next epoch's permutation (advances the shuffle generator), on the device."""
        return torch.randperm(self.n, generator=self.generator).to(self._device)

    def batch(self, order: torch.Tensor, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = order[index * self.batch_size:(index + 1) * self.batch_size]
        return self.X[idx], self.y[idx]

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])


def to_tensor(array: np.ndarray, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(array)).to(device=device, dtype=dtype)
