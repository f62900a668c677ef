"""Several processes: the process group `torchrun` set up, seen from inside the loop.

`DistContext.from_env()` joins the group `torch.distributed.run` describes in the environment
(RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT): gloo on the CPU, NCCL on GPUs. The loop asks
it three things, each one collective that every process calls at the same point:

- `mean_loss`: the step's loss averaged over the processes (what the stream records);
- `agree`: whether to stop, and why, after each event. Process 0 runs the subscribers (the
  detectors), any process may have caught a Ctrl-C/SIGTERM: one all-reduce (MAX) of both, so
  every process stops at the same step;
- `gather_rng`: every process's RNG states (dropout draws differ per process), so a checkpoint
  written by process 0 alone resumes every process exactly.

Only process 0 writes: checkpoints, the metric stream, run files and trackers. A checkpoint
records the world size; resuming at another one is refused (the shards, and so the result,
would differ).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from mltrainer.errors import CheckpointError

STOP_NONE, STOP_SUBSCRIBER, STOP_INTERRUPT = 0, 1, 2


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @staticmethod
    def launched() -> bool:
        """True inside a process that torchrun started (WORLD_SIZE and RANK are set)."""
        return "RANK" in os.environ and "WORLD_SIZE" in os.environ

    @classmethod
    def from_env(cls, device_type: str) -> DistContext:
        """Join the process group of this torchrun launch (NCCL for CUDA, gloo otherwise)."""
        import torch.distributed as dist

        ctx = cls(rank=int(os.environ["RANK"]), world_size=int(os.environ["WORLD_SIZE"]),
                  local_rank=int(os.environ.get("LOCAL_RANK", "0")))
        ctx.backend = "nccl" if device_type == "cuda" else "gloo"
        if ctx.active and not dist.is_initialized():
            if device_type == "cuda":
                torch.cuda.set_device(ctx.local_rank)
            dist.init_process_group(ctx.backend)
        return ctx

    def close(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()

    # -- what the loop asks -----------------------------------------------------------------

    def wrap(self, model: nn.Module) -> nn.Module:
        from torch.nn.parallel import DistributedDataParallel

        device = next(model.parameters()).device
        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def _device(self) -> torch.device:
        return (torch.device("cuda", self.local_rank) if self.backend == "nccl"
                else torch.device("cpu"))

    def mean_loss(self, loss: torch.Tensor) -> torch.Tensor:
        if not self.active:
            return loss
        import torch.distributed as dist

        buf = loss.detach().float().reshape(1).to(self._device())
        dist.all_reduce(buf, op=dist.ReduceOp.SUM)
        return (buf / self.world_size).reshape(())

    def agree(self, reason: str | None, interrupted: bool) -> tuple[bool, bool]:
        """(stop, interrupted anywhere): process 0's subscriber verdict and every process's
        interrupt flag, combined by one all-reduce. Without a group: the local values."""
        if not self.active:
            return reason is not None or interrupted, interrupted
        import torch.distributed as dist

        flags = torch.tensor([STOP_SUBSCRIBER if (self.is_main and reason) else STOP_NONE,
                              STOP_INTERRUPT if interrupted else STOP_NONE],
                             dtype=torch.int32, device=self._device())
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        sub, intr = flags.tolist()
        return bool(sub or intr), bool(intr)

    def gather_rng(self, state: dict[str, Any]) -> list[dict[str, Any]] | None:
        """Every process's RNG state, on process 0 (None elsewhere)."""
        if not self.active:
            return [state]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, state)
        return out if self.is_main else None

    def broadcast(self, obj: Any) -> Any:
        """Process 0's `obj` on every process (e.g. a checkpoint only process 0 can read)."""
        if not self.active:
            return obj
        import torch.distributed as dist

        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def check_world_size(ckpt: dict[str, Any], world_size: int, path: Any) -> None:
    """A checkpoint resumes at the world size that wrote it, or is refused clearly."""
    written = int(ckpt.get("world_size", 1))
    if written != world_size:
        raise CheckpointError(
            f"{path}: was written by {written} process(es) and this run has {world_size}; "
            "resuming at another world size would shard the data differently and change the "
            "result",
            hint=f"resume with --nproc {written} (x nodes as before), or start a fresh run",
        )
