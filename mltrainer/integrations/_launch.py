"""The child side of a `training.entrypoint` run: `python -m mltrainer.integrations._launch SPEC`.

mlt's engine (`mltrainer.engine.entrypoint`) starts this in the project root with the
MLT_* environment of `_context.py`. It seeds Python, NumPy and torch with MLT_SEED and turns on
deterministic algorithms (as mlt's own loop does), then calls the entrypoint: the function of
`python:<module>:<function>` with no arguments, or a script path run as `__main__`.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import runpy
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def resolve(spec: str, root: Path, default_function: str | None = None) -> Callable[..., Any]:
    """The callable `spec` names: python:<module>:<function>, or (with `default_function`) that
    function in a .py script. The project root goes first on sys.path. Raises ValueError with a
    one-line reason when the module or function is not there."""
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    if spec.startswith("python:"):
        _, module_name, function = spec.split(":")
        module = importlib.import_module(module_name)
    else:
        path = (root / spec).resolve()
        if not path.is_file():
            raise ValueError(f"{spec}: no such script")
        function = default_function or ""
        module = _module_from_script(path)
    target = getattr(module, function, None) if function else None
    if not callable(target):
        raise ValueError(f"{spec}: has no function {function!r}")
    return target


def _module_from_script(path: Path) -> Any:
    name = f"_mlt_script_{path.stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ValueError(f"{path}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def main(argv: list[str]) -> int:
    from mltrainer.engine.seeding import seed_everything, set_deterministic
    from mltrainer.integrations._context import ENV_SEED

    spec = argv[0]
    seed_everything(int(os.environ[ENV_SEED]))
    set_deterministic()
    root = Path.cwd()
    if spec.startswith("python:"):
        resolve(spec, root)()
    else:
        sys.path.insert(0, str((root / spec).resolve().parent))
        sys.argv = [spec]
        runpy.run_path(str(root / spec), run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
