"""Seeds, deterministic flags, and every RNG state in a form a checkpoint can hold.

A checkpoint must load with `torch.load(path, weights_only=True)`, so RNG states are stored as
tensors, lists of ints and plain floats, never as pickled Python objects.
"""

from __future__ import annotations

import contextlib
import os
import random
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from mltrainer.errors import ConfigError

# cuBLAS needs a fixed workspace to be deterministic; ":4096:8" is the value NVIDIA documents
# (8 buffers of 4 MiB), and it must be in the environment before cuBLAS initialises.
CUBLAS_WORKSPACE = ":4096:8"


def seed_everything(seed: int) -> None:
    """Seed Python's `random`, NumPy's global RNG and torch (CPU and every CUDA device).

    PYTHONHASHSEED cannot be changed inside a running interpreter (hashing is already seeded),
    so it is not set here; `set_deterministic()` records the value the process started with.
    """
    if seed < 0:
        raise ValueError(f"seed cannot be negative but got {seed}")
    random.seed(seed)
    np.random.seed(seed % 2**32)  # NumPy's legacy seed is limited to 32 bits
    torch.manual_seed(seed)  # also seeds every CUDA device, lazily


def set_deterministic() -> dict[str, Any]:
    """Ask torch for deterministic kernels (strictly: an op without a deterministic
    implementation raises) and return the flags as set, as gate evidence.

    On CUDA, `CUBLAS_WORKSPACE_CONFIG` is set when absent; `cublas_set_late` records when CUDA
    was already initialised at that moment, so cuBLAS may have sized its workspace before.
    """
    cuda = torch.cuda.is_available()
    set_late = False
    if cuda and os.environ.get("CUBLAS_WORKSPACE_CONFIG") not in (CUBLAS_WORKSPACE, ":16:8"):
        set_late = torch.cuda.is_initialized()
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_WORKSPACE
    use_deterministic_algorithms(True, warn_only=False)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False  # autotuning picks kernels by timing: not repeatable
    return {
        "use_deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG") if cuda else None,
        "cublas_set_late": set_late,
        "cuda_matmul_allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
        "pythonhashseed": os.environ.get("PYTHONHASHSEED"),  # None: random per process
        "num_threads": torch.get_num_threads(),
    }


def use_deterministic_algorithms(mode: bool, *, warn_only: bool = False) -> None:
    """`torch.use_deterministic_algorithms`, without importing torch's compiler to set it.

    The public function also sets `torch._inductor.config.deterministic`, and importing that
    module imports torch._dynamo: about a second of every training process, for a compiler
    nothing here uses. While inductor is not loaded, the same kernel flag is set directly and
    TORCHINDUCTOR_DETERMINISTIC (which inductor's config reads when it loads) is set to match,
    so a model compiled later still compiles deterministically; once it is loaded, the public
    function runs as it is.
    """
    set_flag = getattr(torch._C, "_set_deterministic_algorithms", None)
    if "torch._inductor.config" in sys.modules or set_flag is None:
        torch.use_deterministic_algorithms(mode, warn_only=warn_only)
        return
    set_flag(mode, warn_only=warn_only)
    os.environ["TORCHINDUCTOR_DETERMINISTIC"] = "1" if mode else "0"


def nondeterministic_op_error(exc: BaseException) -> ConfigError | None:
    """The ConfigError to raise for torch's "no deterministic implementation" RuntimeError (a
    model op that cannot run reproducibly on this device); None for any other error."""
    text = str(exc)
    if not isinstance(exc, RuntimeError) or "deterministic" not in text:
        return None
    first = text.strip().splitlines()[0]
    return ConfigError(
        f"the model uses an operation that cannot run deterministically on this device: {first}",
        hint="replace that layer in the model (see torch.use_deterministic_algorithms for the "
        "list), or train on the CPU",
    )


@contextlib.contextmanager
def deterministic_mode() -> Iterator[dict[str, Any]]:
    """`set_deterministic()` for the duration of a block, then the previous flags again, so a
    training run does not change how the rest of the process (e.g. a test suite) behaves."""
    before = (torch.are_deterministic_algorithms_enabled(),
              torch.is_deterministic_algorithms_warn_only_enabled(),
              torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    try:
        yield set_deterministic()
    finally:
        use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[2:]


def capture_rng_state(shuffle: torch.Generator | None = None) -> dict[str, Any]:
    """Every RNG the loop draws from, in weights_only-safe types."""
    version, mt_state, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        # as a tensor, not a list: pickling 625 ints one by one costs more than the model
        "python": {"version": int(version), "state": torch.tensor(mt_state, dtype=torch.int64),
                   "gauss_next": gauss},
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, np.int64)),
                  "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    if shuffle is not None:
        state["shuffle"] = shuffle.get_state()
    return state


def restore_rng_state(state: dict[str, Any], shuffle: torch.Generator | None = None) -> None:
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()),
                     py["gauss_next"]))
    np_state = state["numpy"]
    np.random.set_state((
        np_state["kind"], np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
        np_state["has_gauss"], np_state["cached_gaussian"],
    ))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if shuffle is not None and "shuffle" in state:
        shuffle.set_state(state["shuffle"])
