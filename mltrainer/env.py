"""Environment capture: what a run or a gate ran on, in a form that diffs well.

Cheap to import (no torch at module level); `capture_environment` imports torch only to ask it
about itself.
"""

from __future__ import annotations

import copy
import functools
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = (
    "mltrainer", "torch", "numpy", "scikit-learn", "pandas", "pydantic", "onnx", "onnxruntime",
    "onnxscript", "optuna", "jinja2", "pyyaml",
)


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit(directory: Path) -> dict[str, Any] | None:
    """The commit of the git repository holding `directory`, and whether the tree is dirty."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=directory, capture_output=True, text=True,
            timeout=10,
        )
        return {"commit": head.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return None


def capture_environment(project_root: Path | None = None) -> dict[str, Any]:
    import torch  # only here: callers that capture are about to train anyway

    env = copy.deepcopy(_process_environment())
    env["torch"]["num_threads"] = torch.get_num_threads()  # settable: read at every capture
    env["git"] = git_commit(project_root) if project_root else None
    env["env_vars"] = {
        k: os.environ[k]
        for k in ("CUBLAS_WORKSPACE_CONFIG", "PYTHONHASHSEED", "OMP_NUM_THREADS")
        if k in os.environ
    }
    return env


@functools.lru_cache(maxsize=1)
def _process_environment() -> dict[str, Any]:
    """What cannot change while this process lives (the interpreter, the machine, the packages
    it imported, the devices torch found): read once, not per run. An optimize command starts
    dozens of runs, and reading the package metadata alone costs ~50 ms each time."""
    import torch

    cuda = torch.cuda.is_available()
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "packages": package_versions(),
        "torch": {
            "version": torch.__version__,
            "cuda_available": cuda,
            "cuda_version": torch.version.cuda,
            "cudnn_version": torch.backends.cudnn.version() if cuda else None,
            "num_threads": None,
            "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            if cuda
            else [],
        },
        "device": "cuda" if cuda else "cpu",
    }
