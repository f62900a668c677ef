"""Content hashes of files: the one implementation (standard library only, cheap to import)."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

_CHUNK = 1 << 20  # bytes read at a time: constant memory on large data files
# A file modified this recently may change again within one timestamp tick without its size or
# times changing (git's "racy" files): its digest is never reused.
_SETTLED_NS = 2_000_000_000
_DIGESTS: dict[tuple[str, int, int, int, int, int], str] = {}


def sha256_file(path: Path, *, reuse: bool = False) -> str:
    """The sha256 of the file's bytes. `reuse`: asked again in the same process about a file
    that has not changed since (same path, device, inode, size, mtime and ctime, and last
    changed well before it was hashed), the digest computed then: one command fingerprints
    its data file for the staleness check, the cache key and the load."""
    if not reuse:
        return _sha256(path)
    key = _stat_key(path)
    if key in _DIGESTS:
        return _DIGESTS[key]
    started = time.time_ns()
    digest = _sha256(path)
    if started - max(key[4], key[5]) > _SETTLED_NS and _stat_key(path) == key:
        _DIGESTS[key] = digest
    return digest


def _stat_key(path: Path) -> tuple[str, int, int, int, int, int]:
    st = os.stat(path)
    return (os.path.abspath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns,
            st.st_ctime_ns)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
