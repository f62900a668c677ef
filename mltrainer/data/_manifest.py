"""A DVC-style manifest of a folder of files: relative path, size and sha256 of each file,
cached by (path, size, mtime) in `.mlt/cache/` so a 100 000-file folder is hashed once and
`mlt status` only stats it afterwards. Standard library only (`mlt status` imports this).

The cache may also hold what a source learned about a file the first time (an image's size
and mode after a full decode), so that check too runs once per file version. Work in progress
is written every PROGRESS_S seconds and when it is interrupted (Ctrl-C, a crash): a first look
at a large folder stopped at 90 % resumes from there, not from its start.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mltrainer.hashing import sha256_file
from mltrainer.runtime import walk

CACHE_VERSION = 1
PROGRESS_S = 30.0  # seconds of hashing or checking between two writes of the work so far


def cache_file(root: Path, folder: Path) -> Path:
    key = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16]
    return Path(root) / ".mlt" / "cache" / f"manifest-{key}.json"


def list_files(folder: Path, suffixes: tuple[str, ...]) -> list[str]:
    """Relative POSIX paths of the files under `folder` with one of `suffixes`, sorted
    (hidden files and folders left out; links followed, see `walk`)."""
    out = []
    for rel_dir, dirnames, filenames in walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.lower().endswith(suffixes) and not name.startswith("."):
                out.append((rel_dir / name).as_posix())
    return sorted(out)


def unreadable(folder: Path, rel: str, exc: OSError) -> Any:
    """The DataError for a listed file that cannot be read: a link to nothing says so."""
    from mltrainer.errors import DataError

    path = folder / rel
    if path.is_symlink() and not path.exists():
        return DataError(f"{path} is a symbolic link to {os.readlink(path)}, which does not "
                         "exist", hint="point the link at the file, or delete the link")
    return DataError(f"{path}: cannot read it ({exc.strerror or type(exc).__name__})",
                     hint="make the file readable (or delete it), then re-run")


class Manifest:
    """{relpath: {"size", "mtime_ns", "sha256", **extra}} for the files of one folder."""

    def __init__(self, root: Path, folder: Path) -> None:
        self.folder = Path(folder)
        self.path = cache_file(root, self.folder)
        self.entries: dict[str, dict[str, Any]] = {}
        self._cached: dict[str, dict[str, Any]] = {}
        self._dirty = False
        self._last_progress: float | None = None
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if data.get("version") == CACHE_VERSION:
                self._cached = dict(data.get("files", {}))
        except (OSError, ValueError):
            self._cached = {}

    def refresh(self, files: list[str]) -> dict[str, dict[str, Any]]:
        """Stat every file; hash the ones whose size or mtime changed since the cache."""
        self.entries = entries = {}
        with self.progress_kept():
            for rel in files:
                try:
                    st = os.stat(self.folder / rel)
                    old = self._cached.get(rel)
                    if (old and old.get("size") == st.st_size
                            and old.get("mtime_ns") == st.st_mtime_ns):
                        entries[rel] = old
                        continue
                    entries[rel] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns,
                                    "sha256": sha256_file(self.folder / rel)}
                except OSError as exc:
                    raise unreadable(self.folder, rel, exc) from None
                self._dirty = True
                self._progress_due()
        self._dirty = self._dirty or set(entries) != set(self._cached)
        return entries

    def note(self, rel: str, **extra: Any) -> None:
        """Remember facts about the current version of one file (saved with `save`)."""
        self.entries[rel].update(extra)
        self._dirty = True
        self._progress_due()

    def digest(self) -> str:
        """sha256 over (path, size, sha256) of every file: the folder's content fingerprint."""
        h = hashlib.sha256()
        for rel in sorted(self.entries):
            e = self.entries[rel]
            h.update(f"{rel}\0{e['size']}\0{e['sha256']}\n".encode())
        return h.hexdigest()

    def save(self) -> None:
        """Write the cache (atomically; a cache that cannot be written is only slower)."""
        if self._dirty and self._write(self.entries):
            self._dirty = False

    @contextlib.contextmanager
    def progress_kept(self) -> Iterator[None]:
        """Whatever ends the block early (Ctrl-C, a crash, a bad file) first writes the work
        finished so far, beside the cache's other files."""
        try:
            yield
        except BaseException:
            self._save_progress()
            raise

    def _progress_due(self) -> None:
        now = time.monotonic()
        if self._last_progress is None:
            self._last_progress = now
        elif now - self._last_progress >= PROGRESS_S:
            self._save_progress()
            self._last_progress = now

    def _save_progress(self) -> None:
        if self._dirty:  # still dirty after: the final save writes exactly the files listed
            self._write({**self._cached, **self.entries})

    def _write(self, files: dict[str, dict[str, Any]]) -> bool:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"version": CACHE_VERSION, "folder": str(self.folder),
                                       "files": files}, sort_keys=True), encoding="utf-8")
            os.replace(tmp, self.path)
            return True
        except OSError:
            return False


def fingerprint_path(root: Path, path: Path) -> str:
    """The content fingerprint of a file (its sha256) or of a folder (its manifest's digest,
    cached in `.mlt/cache/` so a folder already seen is only stat-ed)."""
    if path.is_file():
        return sha256_file(path, reuse=True)
    manifest = Manifest(root, path)
    manifest.refresh(list_files(path, ("",)))
    manifest.save()
    return manifest.digest()

