"""Where training runs: `training.device` resolved against what this machine has.

A GPU that was asked for and is not there is refused before any work (ConfigError, exit 2),
naming what torch found and how to check. `auto` takes CUDA, then MPS, then the CPU; falling
back to the CPU is never silent: the `DeviceChoice` carries a notice that the run record (start
event, env.json, RunResult) and the baseline report repeat, and the CLI prints it on stderr.
"""

from __future__ import annotations

import resource
import sys
from dataclasses import dataclass

import torch

from mltrainer.config import TrainingConfig
from mltrainer.errors import ConfigError

CHECK_HINT = ("check with `nvidia-smi` and `python -c \"import torch; "
              "print(torch.version.cuda, torch.cuda.is_available(), torch.cuda.device_count())\"`")


@dataclass(frozen=True)
class DeviceChoice:
    device: torch.device
    requested: str  # training.device as written
    notice: str | None = None  # set when `auto` fell back to the CPU


def found_devices() -> str:
    """What torch sees, in one phrase for messages."""
    if not torch.cuda.is_available():
        built = torch.version.cuda
        cuda = (f"torch {torch.__version__} built without CUDA" if built is None else
                f"torch {torch.__version__} built for CUDA {built} but no CUDA device visible")
    else:
        n = torch.cuda.device_count()
        names = ", ".join(f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(n))
        cuda = f"{n} CUDA device(s): {names}"
    mps = getattr(torch.backends, "mps", None)
    return cuda + ("; MPS available" if mps is not None and mps.is_available() else "")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def choose_device(cfg: TrainingConfig, local_rank: int | None = None) -> DeviceChoice:
    """Resolve `cfg.device`; with `local_rank` (one of several processes) `cuda` and `auto`
    take `cuda:<local_rank>`. Refuses what this machine or the precision cannot do."""
    want = cfg.device
    cuda = torch.cuda.is_available()
    notice = None
    if want.startswith("cuda"):
        if not cuda:
            raise ConfigError(f"training.device is {want!r} but there is no GPU here: "
                              f"{found_devices()}",
                              hint=f"{CHECK_HINT}; or set training.device: cpu (or auto)")
        index = int(want.split(":")[1]) if ":" in want else (local_rank or 0)
        if ":" in want and local_rank is not None:
            raise ConfigError(f"training.device is {want!r} but several processes each need "
                              "their own GPU", hint="set training.device: cuda (process k "
                              "takes cuda:k)")
        if index >= torch.cuda.device_count():
            raise ConfigError(f"training.device asks for cuda:{index} but there are only "
                              f"{torch.cuda.device_count()}: {found_devices()}", hint=CHECK_HINT)
        device = torch.device("cuda", index)
    elif want == "mps":
        if not _mps_available():
            raise ConfigError("training.device is 'mps' but torch sees no Apple GPU (MPS): "
                              f"{found_devices()}", hint="set training.device: cpu (or auto)")
        device = torch.device("mps")
    elif want == "auto" and cuda:
        device = torch.device("cuda", local_rank or 0)
    elif want == "auto" and _mps_available() and local_rank is None:
        device = torch.device("mps")
    else:
        device = torch.device("cpu")
        if want == "auto":
            notice = (f"training.device auto found no GPU ({found_devices()}): training on "
                      "the CPU")
    if cfg.precision == "fp16" and device.type != "cuda":
        raise ConfigError(
            "training.precision 'fp16' needs a CUDA device (fp16 with a gradient scaler is "
            f"GPU-only) but training runs on {device}",
            hint="use training.precision: bf16 (autocast works on the CPU) or fp32",
        )
    return DeviceChoice(device, want, notice)


def resolve_device(cfg: TrainingConfig) -> torch.device:
    """The device alone (see `choose_device`)."""
    return choose_device(cfg).device


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak (per epoch) where the device counts one."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_mem_mb(device: torch.device) -> float:
    """Peak memory in MiB: allocated on the GPU since the last reset (this epoch), the
    process's peak resident set on the CPU (the OS keeps no per-epoch peak)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    if device.type == "mps":
        return torch.mps.driver_allocated_memory() / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10
