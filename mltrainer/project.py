"""Where things live in a user's project. The one place that knows the layout."""

from __future__ import annotations

import importlib.machinery
import os
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path

CONFIG_NAME = "mlt.yaml"
OPTIMIZED_CONFIG_NAME = "mlt.optimized.yaml"


@dataclass(frozen=True)
class Project:
    root: Path

    @classmethod
    def at(cls, directory: str | os.PathLike[str] | None = None) -> Project:
        return cls(Path(directory or ".").resolve())

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def optimized_config_path(self) -> Path:
        return self.root / OPTIMIZED_CONFIG_NAME

    @property
    def mlt_dir(self) -> Path:
        return self.root / ".mlt"

    @property
    def state_path(self) -> Path:
        return self.mlt_dir / "state.json"

    @property
    def audit_path(self) -> Path:
        return self.mlt_dir / "audit.jsonl"

    @property
    def lock_path(self) -> Path:
        return self.mlt_dir / "lock"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    @property
    def artifacts_dir(self) -> Path:
        return self.root / "artifacts"

    def is_initialized(self) -> bool:
        return self.config_path.is_file()

    def new_run_dir(self, kind: str) -> Path:
        """A fresh `runs/<id>/` that no earlier run used: the folder is created exclusively."""
        if self.runs_dir.exists() and not self.runs_dir.is_dir():
            from mltrainer.errors import BadInputError

            raise BadInputError(f"{self.runs_dir}: is a file, but runs are kept in this folder",
                                hint=f"move {self.runs_dir.name} away, then re-run")
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        while True:
            run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{kind}-{secrets.token_hex(2)}"
            path = self.runs_dir / run_id
            try:
                path.mkdir()
            except FileExistsError:
                continue
            return path

    def relative(self, path: Path) -> str:
        try:
            return str(Path(path).resolve().relative_to(self.root))
        except ValueError:
            return str(path)


def find_module_file(module: str, root: Path) -> Path | None:
    """The source file of `module` (dotted names too), found WITHOUT executing any code.

    `importlib.util.find_spec("a.b")` imports package `a` first; walking the path finders one
    component at a time does not.
    """
    search: list[str] | None = [str(root), *sys.path]
    spec = None
    for depth, part in enumerate(module.split(".")):
        try:
            spec = importlib.machinery.PathFinder.find_spec(part, search)
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            return None
        if depth < module.count("."):
            search = list(spec.submodule_search_locations or [])
            if not search:
                return None
    origin = spec.origin if spec is not None else None
    return Path(origin) if origin and Path(origin).is_file() else None
