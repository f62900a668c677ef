"""The prepared data of one project, cached between its commands under `.mlt/cache/data/`.

`mlt plan` prepares the data from the source (load, hash, split, fit preprocessing: the gate's
evidence is measured there, never read from here) and stores the result; the later commands
(`train-baseline`, `diagnose`, `optimize`, `finalize`) load it instead of preparing it again.

What makes a hit safe:

- the entry's name is a sha256 over everything `prepare_data` reads: the source's fingerprint
  (the file's bytes, or the bundled data set's version), `data`, `task` and `seed` of the
  config, the cache format and the source code of this package; a change to any of them misses;
- only sources whose fingerprint covers their content are cached (`CACHEABLE`): a `python:`
  source's fingerprint is its module's code, not the rows it returns;
- every array file is checked against the sha256 recorded beside it when it is loaded; an entry
  that does not parse or verify is ignored (and replaced), never trusted and never an error.

The test split is stored in its own file and loaded only when `bundle.test("finalize")` asks
for it: outside finalize no test row is read from the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mltrainer import __version__
from mltrainer.data._sources import source_for
from mltrainer.data._target import standardises_target
from mltrainer.hashing import sha256_file
from mltrainer.project import Project

if TYPE_CHECKING:
    from mltrainer.config import MltConfig

FORMAT = 2  # 2: X is not stored (the bundle recomputes it from `encoded`)
CACHEABLE = ("csv", "npz", "sklearn")  # sources whose fingerprint is a hash of their content
KEEP = 3  # entries kept per project (newest first): a few configs of the data side by side


def entry_dir(cfg: MltConfig, root: Path) -> Path | None:
    """Where this config's prepared data lives in the project, or None when it is not cached
    (not an mlt project, or a source whose fingerprint does not cover its rows)."""
    project = Project.at(root)
    source = source_for(cfg.data.source)
    if source.name not in CACHEABLE or not project.mlt_dir.is_dir():
        return None
    key = {
        "format": FORMAT,
        "mltrainer": __version__,
        "code": _code_hash(),
        "source": source.fingerprint(cfg, project.root),
        "data": cfg.data.model_dump(mode="json"),
        "task": cfg.task,
        "seed": cfg.seed,
        # the spec's target scale also depends on training.entrypoint (`_target.py`)
        "standardises_target": standardises_target(cfg),
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    return project.mlt_dir / "cache" / "data" / digest


def load(entry: Path) -> Cached | None:
    """The entry's record and its train and val arrays, or None when the entry is missing,
    incomplete or does not verify. The test arrays load through `Cached.load_test`."""
    try:
        meta = json.loads((entry / "meta.json").read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT or meta.get("entry") != entry.name:
            return None
        return Cached(entry, meta, _load_arrays(entry, "train", meta),
                      _load_arrays(entry, "val", meta))
    except Exception:  # any damage to a cache entry means "prepare it again"
        return None


def store(entry: Path, arrays: dict[str, dict[str, np.ndarray]], record: dict[str, Any]) -> None:
    """Write one entry: `arrays[split][name]` for train, val and test, and the JSON-safe
    `record`, all files first, then one rename. Best effort: a cache that cannot be written
    (read-only project, full disk, a concurrent writer) is skipped."""
    tmp = entry.with_name(f".{entry.name}.{os.getpid()}.tmp")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        files = {}
        for name, split in arrays.items():
            path = tmp / f"{name}.npz"
            np.savez(path, **split)
            files[name] = {"sha256": sha256_file(path), "rows": len(split["y"]),
                           "arrays": sorted(split)}
        meta = {"format": FORMAT, "entry": entry.name, "mltrainer": __version__, **record,
                "files": files}
        (tmp / "meta.json").write_text(json.dumps(meta, default=_json_default), encoding="utf-8")
        shutil.rmtree(entry, ignore_errors=True)
        os.replace(tmp, entry)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        return
    _prune(entry.parent, keep=entry)


@dataclass(frozen=True)
class Cached:
    """A verified entry: its record, and the train and val arrays by name."""

    entry: Path
    meta: dict[str, Any]
    train: dict[str, np.ndarray]
    val: dict[str, np.ndarray]

    def load_test(self) -> dict[str, np.ndarray]:
        """The test arrays, verified like the others (ValueError/OSError when they are not)."""
        return _load_arrays(self.entry, "test", self.meta)


def _load_arrays(entry: Path, name: str, meta: dict[str, Any]) -> dict[str, np.ndarray]:
    path = entry / f"{name}.npz"
    record = meta["files"][name]
    if sha256_file(path) != record["sha256"]:
        raise ValueError(f"{path} does not match its recorded sha256")
    with np.load(path, allow_pickle=False) as archive:
        arrays = {a: archive[a] for a in record["arrays"]}
    if any(len(a) != record["rows"] for a in arrays.values()):
        raise ValueError(f"{path} holds the wrong number of rows")
    return arrays


def _prune(folder: Path, keep: Path) -> None:
    with contextlib.suppress(OSError):
        entries = sorted((p for p in folder.iterdir() if p.is_dir() and p != keep
                          and not p.name.startswith(".")),
                         key=lambda p: p.stat().st_mtime, reverse=True)
        for old in entries[KEEP - 1:]:
            shutil.rmtree(old, ignore_errors=True)


def _code_hash() -> str:
    """sha256 of this package's source: a change to how data is prepared is a miss."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")
