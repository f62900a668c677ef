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
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mltrainer import __version__
from mltrainer.data._sources import source_for
from mltrainer.hashing import sha256_file
from mltrainer.project import Project

if TYPE_CHECKING:
    from mltrainer.config import MltConfig
    from mltrainer.data._bundle import AuditFn, DataBundle, Split

FORMAT = 1
CACHEABLE = ("csv", "npz", "sklearn")  # sources whose fingerprint is a hash of their content
KEEP = 3  # entries kept per project (newest first): a few configs of the data side by side
_SPLIT_ARRAYS = ("X", "y", "raw_index", "encoded")


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
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    return project.mlt_dir / "cache" / "data" / digest


def load(entry: Path, *, audit: AuditFn | None, rebuild: Any) -> DataBundle | None:
    """The cached bundle, or None when the entry is missing, incomplete or does not verify.

    `rebuild()` prepares the data from the source: the test split's loader falls back to it
    when the test file fails its check in finalize.
    """
    from mltrainer.data._bundle import DataBundle, DataSpec
    from mltrainer.data._preprocess import Preprocessor

    try:
        meta = json.loads((entry / "meta.json").read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT or meta.get("entry") != entry.name:
            return None
        train, val = (_load_split(entry, name, meta) for name in ("train", "val"))
        spec = DataSpec.from_dict(meta["spec"])
        preprocessor = Preprocessor.from_dict(meta["preprocessor"])
        fingerprints = {str(k): str(v) for k, v in meta["fingerprints"].items()}
    except Exception:  # any damage to a cache entry means "prepare it again"
        return None

    def load_test() -> Split:
        try:
            return _load_split(entry, "test", meta)
        except Exception:  # a damaged test file: prepare the data again
            fresh = rebuild()
            if fresh.fingerprints != fingerprints:
                raise
            return fresh.test("finalize")

    return DataBundle(
        spec=spec, train=train, val=val, test=None, test_loader=load_test,
        fingerprints=fingerprints, split_info=meta["split_info"],
        duplicates={str(k): int(v) for k, v in meta["duplicates"].items()},
        preprocessor=preprocessor, source=str(meta["source"]), audit=audit,
    )


def store(entry: Path, bundle: DataBundle) -> None:
    """Write the bundle as `entry` (all files first, then one rename); best effort: a cache
    that cannot be written (read-only project, full disk, a concurrent writer) is skipped."""
    tmp = entry.with_name(f".{entry.name}.{os.getpid()}.tmp")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        splits = {"train": bundle.train, "val": bundle.val, "test": bundle.test_split_for_cache()}
        files = {}
        for name, split in splits.items():
            path = tmp / f"{name}.npz"
            np.savez(path, **{a: getattr(split, a) for a in _SPLIT_ARRAYS})
            files[name] = {"sha256": sha256_file(path), "rows": len(split)}
        meta = {
            "format": FORMAT, "entry": entry.name, "mltrainer": __version__,
            "source": bundle.source, "spec": bundle.spec.to_dict(),
            "fingerprints": bundle.fingerprints, "split_info": bundle.split_info,
            "duplicates": bundle.duplicates, "preprocessor": bundle.preprocessor.to_dict(),
            "files": files,
        }
        (tmp / "meta.json").write_text(json.dumps(meta, default=_json_default), encoding="utf-8")
        shutil.rmtree(entry, ignore_errors=True)
        os.replace(tmp, entry)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        return
    _prune(entry.parent, keep=entry)


def _load_split(entry: Path, name: str, meta: dict[str, Any]) -> Split:
    from mltrainer.data._bundle import Split

    path = entry / f"{name}.npz"
    record = meta["files"][name]
    if sha256_file(path) != record["sha256"]:
        raise ValueError(f"{path} does not match its recorded sha256")
    with np.load(path, allow_pickle=False) as archive:
        arrays = {a: archive[a] for a in _SPLIT_ARRAYS}
    if any(len(arrays[a]) != record["rows"] for a in _SPLIT_ARRAYS):
        raise ValueError(f"{path} holds the wrong number of rows")
    return Split(X=arrays["X"], y=arrays["y"], raw_index=arrays["raw_index"],
                 encoded=arrays["encoded"])


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
