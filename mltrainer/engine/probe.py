"""`determinism_probe`: train a few steps twice from the seed and compare bitwise.

Both runs go through `build_training` and `TrainStep`, the code `Trainer.fit` runs, so a pass
says something about training itself. Nothing is written to disk.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from mltrainer.config import MltConfig
from mltrainer.engine.seeding import deterministic_mode, nondeterministic_op_error
from mltrainer.engine.step import build_training


def _train_steps(cfg: MltConfig, bundle: Any, steps: int, root: Path | None
                 ) -> dict[str, torch.Tensor]:
    parts = build_training(cfg, bundle, root)
    spe = parts.batches.steps_per_epoch
    every = cfg.training.grad_stats_every
    order = None
    for step in range(steps):
        position = step % spe
        if position == 0:
            order = parts.batches.new_order()
        assert order is not None
        xb, yb = parts.batches.batch(order, position)
        out = parts.step(step, xb, yb, layer_stats=parts.wants_layer_stats(step, every))
        out.loss.item()  # a sync per step, as fit() has
    return {k: v.detach().cpu().clone() for k, v in parts.model.state_dict().items()}


def _sha256(state: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for name, tensor in state.items():
        digest.update(name.encode())
        digest.update(tensor.reshape(-1).contiguous().view(torch.uint8).numpy().tobytes()
                      if tensor.numel() else b"")
    return digest.hexdigest()


def determinism_probe(cfg: MltConfig, bundle: Any, steps: int = 20, *,
                      root: Path | None = None) -> dict[str, Any]:
    """Evidence: {"steps", "identical", "max_abs_diff", "params_sha256": [a, b], ...}."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1 but got {steps}")
    # leave the caller's global RNG and deterministic flags as they were
    with deterministic_mode() as flags, torch.random.fork_rng(devices=[]):
        try:
            a = _train_steps(cfg, bundle, steps, root)
            b = _train_steps(cfg, bundle, steps, root)
        except RuntimeError as exc:
            error = nondeterministic_op_error(exc)
            if error is None:
                raise
            return {"steps": steps, "identical": False, "max_abs_diff": None,
                    "params_sha256": [None, None], "error": error.message,
                    "deterministic_flags": flags}
    # Bitwise: equal byte patterns, so two runs that both diverged to the same NaNs count as
    # identical (torch.equal says NaN != NaN); the finite-ness is a separate question.
    hashes = [_sha256(a), _sha256(b)]
    identical = a.keys() == b.keys() and hashes[0] == hashes[1]
    diffs = [(a[k].double() - b[k].double()).abs().nan_to_num(nan=0.0).max().item()
             for k in a if k in b and a[k].is_floating_point() and a[k].numel()]
    return {
        "steps": steps,
        "identical": bool(identical),
        "max_abs_diff": float(max(diffs, default=0.0)),
        "non_finite_params": int(sum((~torch.isfinite(t)).sum().item()
                                     for t in a.values() if t.is_floating_point())),
        "params_sha256": hashes,
        "n_tensors": len(a),
        "device": str(next(iter(a.values())).device) if a else "cpu",
        "deterministic_flags": flags,
    }
