"""Content hashes of files: the one implementation (standard library only, cheap to import)."""

from __future__ import annotations

import hashlib
from pathlib import Path

_CHUNK = 1 << 20  # bytes read at a time: constant memory on large data files


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
