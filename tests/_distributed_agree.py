"""What each of two processes does in tests/test_distributed.py's stop-agreement test: a
module of its own so the spawned children import torch and the engine's DistContext only."""

from __future__ import annotations

import json
from pathlib import Path

import torch


def agree_in_process(rank: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    from mltrainer.engine.distributed import DistContext

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    ctx = DistContext(rank=rank, world_size=2, backend="gloo")
    cases = [  # (process 0's subscriber reason, which process caught a signal)
        (None, None), ("detector:nan_loss", None), (None, 1), ("pruned", 0),
    ]
    answers = [ctx.agree(reason if rank == 0 else None, caught == rank)
               for reason, caught in cases]
    loss = ctx.mean_loss(torch.tensor(float(rank + 1)))
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps({"answers": answers,
                                                             "loss": float(loss)}))
    dist.destroy_process_group()
