"""`determinism_probe`: train a few steps twice from the seed and compare bitwise.

Both runs go through `build_training` and `TrainStep`, the code `Trainer.fit` runs, so a pass
says something about training itself. Nothing is written to disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from mltrainer.config import MltConfig
from mltrainer.engine.checkpoint import state_sha256
from mltrainer.engine.precision import is_out_of_memory, out_of_memory_error
from mltrainer.engine.seeding import deterministic_mode, nondeterministic_op_error
from mltrainer.engine.step import build_training


def probe_environment(cfg: MltConfig) -> dict[str, str]:
    """The environment a probe's result depends on (see `fingerprints.probe_inputs`)."""
    import platform

    from mltrainer.engine.devices import resolve_device

    device = "cpu" if cfg.training.entrypoint else str(resolve_device(cfg.training))
    return {"python": platform.python_version(), "torch": torch.__version__, "device": device}


def _train_steps(cfg: MltConfig, bundle: Any, steps: int, root: Path | None,
                 dist: Any = None) -> dict[str, torch.Tensor]:
    parts = build_training(cfg, bundle, root, dist=dist)
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


def _out_of_memory(cfg: MltConfig) -> Exception:
    from mltrainer.engine.devices import choose_device

    device = choose_device(cfg.training).device
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return out_of_memory_error(cfg.training, device, 1, None)


def distributed_probe_steps(cfg: MltConfig, bundle: Any, steps: int, root: Path | None,
                            dist: Any) -> dict[str, Any]:
    """One probe run inside a torchrun process (`engine.worker`, mode "probe"): the sha256
    of the weights after `steps` DDP steps. `distributed_probe` runs it twice and compares."""
    with deterministic_mode() as flags:
        state = _train_steps(cfg, bundle, steps, root, dist=dist if dist.active else None)
    return {"sha256": state_sha256(state), "world_size": dist.world_size,
            "backend": dist.backend,
            "deterministic_flags": flags}


def distributed_probe(cfg: MltConfig, steps: int, root: Path, launch: Any, job_dir: Path,
                      expected_fingerprints: dict[str, str] | None = None,
                      rows: Any = None) -> dict[str, Any]:
    """Evidence that the same seed at the same world size gives the same weights: the probe's
    steps twice under torchrun (`launch`), compared bitwise by hash. `rows`: a bundle whose
    train/val rows replace the prepared splits (finalize's train+val)."""
    from mltrainer.engine.launch import run_job, write_rows

    job = {"mode": "probe", "config": cfg.model_dump(mode="json"), "root": str(root),
           "steps": steps, "expected_fingerprints": expected_fingerprints,
           "rows": write_rows(rows, job_dir)}
    runs = [run_job(job, launch, job_dir / name) for name in ("a", "b")]
    hashes = [r["sha256"] for r in runs]
    return {"steps": steps, "identical": hashes[0] == hashes[1], "params_sha256": hashes,
            "world_size": runs[0]["world_size"], "backend": runs[0]["backend"]}


def determinism_probe(cfg: MltConfig, bundle: Any, steps: int = 20, *,
                      root: Path | None = None) -> dict[str, Any]:
    """Evidence: {"steps", "identical", "max_abs_diff", "params_sha256": [a, b], ...}."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1 but got {steps}")
    if cfg.training.entrypoint:  # the project's script, twice, in subprocesses
        from mltrainer.engine.entrypoint import entrypoint_determinism

        return entrypoint_determinism(cfg, bundle, steps, root or Path.cwd())
    # leave the caller's global RNG and deterministic flags as they were
    with deterministic_mode() as flags, torch.random.fork_rng(devices=[]):
        try:
            a = _train_steps(cfg, bundle, steps, root)
            b = _train_steps(cfg, bundle, steps, root)
        except RuntimeError as exc:
            if is_out_of_memory(exc):  # the configured batch does not fit: say so, exit 2
                raise _out_of_memory(cfg) from None
            error = nondeterministic_op_error(exc)
            if error is None:
                raise
            return {"steps": steps, "identical": False, "max_abs_diff": None,
                    "params_sha256": [None, None], "error": error.message,
                    "deterministic_flags": flags}
    # Bitwise: equal byte patterns, so two runs that both diverged to the same NaNs count as
    # identical (torch.equal says NaN != NaN); the finite-ness is a separate question.
    hashes = [state_sha256(a), state_sha256(b)]
    identical = a.keys() == b.keys() and hashes[0] == hashes[1]
    diffs = [(a[k].double() - b[k].double()).abs().nan_to_num(nan=0.0).max().item()
             for k in a if k in b and a[k].is_floating_point() and a[k].numel()]
    non_finite = int(sum((~torch.isfinite(t)).sum().item()
                         for t in a.values() if t.is_floating_point()))
    extra = {} if not non_finite else {"error": (
        f"{non_finite} weights are non-finite after {steps} steps: two runs that diverge to "
        "the same NaNs reproduce nothing (lower training.lr, check the data)")}
    return {
        "steps": steps,
        "identical": bool(identical),
        # what the gate judges: bitwise equal AND finite (NaN-equal is not "reproduced")
        "reproduced": bool(identical) and non_finite == 0,
        "max_abs_diff": float(max(diffs, default=0.0)),
        "non_finite_params": non_finite,
        **extra,
        "params_sha256": hashes,
        "n_tensors": len(a),
        "device": str(next(iter(a.values())).device) if a else "cpu",
        "deterministic_flags": flags,
    }
