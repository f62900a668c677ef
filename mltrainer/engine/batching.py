"""Mini-batches by indexing tensors that live on the training device: no per-sample Dataset.

The shuffle order comes from a dedicated `torch.Generator`, so the order does not depend on how
many random numbers the model drew (dropout, init), and its state goes into every checkpoint.

One optimisation step takes `batch_size x accum x world` rows of the epoch's permutation (the
same permutation on every process: same seed, same generator state). Process `rank` takes every
`world`-th of them, as `torch.utils.data.DistributedSampler` shards an epoch (a short last step
is padded from the start of the permutation so every process gets as many rows); `TrainStep`
cuts its rows into `accum` micro-batches. So the union of what the processes and micro-batches
see at step k is exactly what one process with `batch_size x accum x world` would see.
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
                 seed: int, regression: bool, *, accum: int = 1, rank: int = 0,
                 world: int = 1) -> None:
        if len(X) != len(y):
            raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
        if len(X) == 0:
            raise ValueError("the training split has no rows")
        self.X = to_tensor(X, device, torch.float32)
        self.y = to_tensor(y, device, torch.float32 if regression else torch.int64)
        self.n = len(X)
        self.batch_size = batch_size
        self.rank, self.world = rank, world
        self.rows_per_step = step_rows = batch_size * accum * world
        rows = self.n - 1 if step_rows > 1 and self.n % step_rows == 1 and self.n > 1 else self.n
        if rows < world:
            raise ValueError(f"the training split has {self.n} rows, fewer than the {world} "
                             "processes that would share it")
        self.steps_per_epoch = math.ceil(rows / step_rows)
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(seed + SHUFFLE_SEED_OFFSET)
        self._device = device

    def new_order(self) -> torch.Tensor:
        """The next epoch's permutation (advances the shuffle generator), on the device."""
        return torch.randperm(self.n, generator=self.generator).to(self._device)

    def batch(self, order: torch.Tensor, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """This process's rows of optimisation step `index` of the epoch."""
        idx = order[index * self.rows_per_step:(index + 1) * self.rows_per_step]
        if self.world > 1:
            short = -len(idx) % self.world
            if short:  # pad as DistributedSampler does: every process gets as many rows
                idx = torch.cat([idx, order[:short]])
            idx = idx[self.rank::self.world]
        # index_select, not X[idx]: the same rows (a gather), at a third of advanced indexing's
        # cost for a batch of table rows (bench/README.md, issue 16's seventh round)
        return self.X.index_select(0, idx), self.y.index_select(0, idx)

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])


def to_tensor(array: np.ndarray, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(array)).to(device=device, dtype=dtype)
