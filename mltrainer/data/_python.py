"""`python:<module>:<function>` sources: a function in the user's project returns the data.

The module is imported with the project root first on sys.path. Its fingerprint is the sha256
of the module's source file, found by walking the path finders, so `mlt status` never runs
user code (`importlib.util.find_spec("a.b")` would execute package `a`).
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrainer.data._sources import DataSource, RawData, register_source, sha256_file
from mltrainer.errors import DataError
from mltrainer.project import find_module_file

if TYPE_CHECKING:
    from mltrainer.config import MltConfig


@register_source
class PythonSource(DataSource):
    """`python:<module>:<function>`: a function in the project returning (X, y), a DataFrame,
    a torch Dataset or a dict of train/val/test Datasets (`_torchdata.py`)."""

    name = "python"

    @classmethod
    def handles(cls, source: str) -> bool:
        return source.startswith("python:")

    def parts(self, cfg: MltConfig) -> tuple[str, str]:
        bits = cfg.data.source.split(":")
        if len(bits) != 3 or not bits[1] or not bits[2]:
            raise DataError(
                f"data.source {cfg.data.source!r}: expected python:<module>:<function>",
                hint="e.g. python:mydata:load (mydata.py in the project root, function load)",
            )
        return bits[1], bits[2]

    def fingerprint(self, cfg: MltConfig, root: Path) -> str:
        module, _ = self.parts(cfg)
        origin = find_module_file(module, Path(root))
        if origin is None:
            raise DataError(
                f"data.source {cfg.data.source!r}: module {module!r} not found "
                f"(looked in {root} and on sys.path)",
                hint="put the module in the project root or install it",
            )
        return sha256_file(origin)

    def load(self, cfg: MltConfig, root: Path) -> Any:
        from mltrainer.data._table import frame_from_python_result
        from mltrainer.models._vision import import_torchvision_safely

        module_name, fn_name = self.parts(cfg)
        where = cfg.data.source
        import_torchvision_safely()  # the project's code may build a torchvision Dataset
        with _on_sys_path(Path(root)):
            module = _import_fresh(module_name, where)
            fn = getattr(module, fn_name, None)
            if not callable(fn):
                import difflib

                names = [n for n in dir(module) if callable(getattr(module, n, None))
                         and not n.startswith("_")]
                guess = difflib.get_close_matches(fn_name, names, n=1)
                tip = f"; did you mean {guess[0]!r}?" if guess else ""
                raise DataError(
                    f"{where}: module {module_name!r} has no function {fn_name!r}{tip}"
                )
            try:
                result = fn()
            except Exception as exc:
                raise DataError(
                    f"{where}: {fn_name}() raised {type(exc).__name__}: {exc}"
                ) from None
        from mltrainer.data._torchdata import is_dataset_result, items_from_datasets

        if is_dataset_result(result):
            return items_from_datasets(result, cfg.task, where, self.fingerprint(cfg, root))
        if type(result).__module__.split(".")[0] == "datasets":  # Hugging Face, not torch
            raise DataError(
                f"{where}: {fn_name}() returned a Hugging Face {type(result).__name__}, which "
                "is not a torch Dataset (its items are dicts)",
                hint="texts: save_to_disk() it and set data.source to that folder; otherwise "
                     "return a torch.utils.data.Dataset whose items are (input tensor, label)")
        frame, target, image_shape, required = frame_from_python_result(
            result, cfg.data.target, where
        )
        return RawData(frame, target, None, image_shape, target_required=required)


@contextmanager
def _on_sys_path(root: Path) -> Iterator[None]:
    entry = str(Path(root).resolve())
    added = entry not in sys.path
    if added:
        sys.path.insert(0, entry)
    try:
        yield
    finally:
        if added and entry in sys.path:
            sys.path.remove(entry)


def _import_fresh(name: str, where: str) -> Any:
    """Import (or re-import, so an edited data module is seen) the user's module."""
    try:
        importlib.invalidate_caches()
        module = sys.modules.get(name)
        return importlib.reload(module) if module is not None else importlib.import_module(name)
    except Exception as exc:
        raise DataError(
            f"{where}: cannot import module {name!r}: {type(exc).__name__}: {exc}",
            hint="the module must be importable from the project root",
        ) from None
