"""Data sources: where the rows come from. One base class, a registry, and its members
(csv, npz and sklearn here; python:<module>:<function> in `_python.py`).

A source does two things: `load` hands over the raw table (every column, target included) and
`fingerprint` says cheaply whether the source changed. `mlt status` calls `fingerprint` on every
invocation, so this module imports only the standard library at module level: pandas, numpy
and scikit-learn are imported inside `load`, never by `source_fingerprint`.

To add a source, subclass `DataSource`, implement its three methods and decorate it with
`@register_source`; the contract test in tests/test_data.py runs every registered source.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from mltrainer.errors import DataError
from mltrainer.hashing import sha256_file

if TYPE_CHECKING:
    import pandas as pd

    from mltrainer.config import MltConfig

SKLEARN_DATASETS = ("breast_cancer", "diabetes", "digits", "iris", "wine")
# Bundled data sets with a natural image layout (channels, height, width); features stay flat.
_SKLEARN_IMAGE_SHAPES: dict[str, tuple[int, ...]] = {"digits": (1, 8, 8)}
_HASH_CHUNK = 1 << 20  # bytes read at a time when hashing a file: constant memory for big files


@dataclass
class RawData:
    """What a source hands over: the whole table, before any column is dropped.

    `data_hash` is the sha256 of the raw content when the source has bytes to hash (a file);
    None asks `prepare_data` to hash the canonical bytes of the loaded rows instead.
    """

    frame: pd.DataFrame
    target: str
    data_hash: str | None
    image_shape: tuple[int, ...] | None = None
    target_required: bool = False  # True: data.target names the column and must be set
    row_lines: list[int] | None = None  # file line of each row, for messages (CSV)


class DataSource(ABC):
    """One kind of `data.source` string. Stateless: instances are made per call.

    Contract (tested for every registered source): `handles` is a pure test of the string;
    `fingerprint` is cheap, deterministic, imports no pandas/sklearn/torch and changes when
    the data can have changed; `load` returns a `RawData` whose frame has string column names,
    a RangeIndex and the target column, or raises `DataError` naming the source.
    """

    name: ClassVar[str]

    @classmethod
    @abstractmethod
    def handles(cls, source: str) -> bool:
        """True when this source reads `source` (the `data.source` string)."""

    @classmethod
    def claims(cls, source: str, text_column: str | None) -> bool:
        """`handles`, knowing `data.text_column` too (a .csv with one is text data)."""
        return cls.handles(source)

    @abstractmethod
    def fingerprint(self, cfg: MltConfig, root: Path) -> str:
        """A sha256 hex digest that changes when the data may have changed."""

    @abstractmethod
    def load(self, cfg: MltConfig, root: Path) -> Any:
        """The raw table (`RawData`), or item data read lazily (`_items.ItemData`: image
        folders, text, torch Datasets), or DataError naming the source and what is wrong."""


SOURCES: list[type[DataSource]] = []


def register_source(cls: type[DataSource]) -> type[DataSource]:
    SOURCES.append(cls)
    return cls


def source_for(source: str, text_column: str | None = None) -> DataSource:
    for cls in SOURCES:
        if cls.claims(source, text_column):
            return cls()
    raise DataError(
        f"data.source {source!r}: not a known kind of source",
        hint="use sklearn:<name>, python:<module>:<function>, imagefolder:<dir>, text:<path>, "
             "or a path ending in .csv, .npz, .jsonl or .parquet",
    )


def source_fingerprint(cfg: MltConfig, root: Path) -> str:
    """Cheap fingerprint of the configured source (no data load for files, no sklearn import).

    csv/npz: sha256 of the file bytes; sklearn: sha256 of "sklearn:<name>@<version>";
    python: sha256 of the module's source file, found without executing it.
    """
    return source_for(cfg.data.source, cfg.data.text_column).fingerprint(cfg, Path(root))


def resolve_path(source: str, root: Path) -> Path:
    """A file source's path: relative paths are relative to the project root (mlt.yaml)."""
    path = Path(source).expanduser()
    return path if path.is_absolute() else Path(root) / path


class _FileSource(DataSource):
    suffix: ClassVar[str]

    @classmethod
    def handles(cls, source: str) -> bool:
        return source.lower().endswith(cls.suffix) and not source.startswith(
            ("sklearn:", "python:", "text:", "imagefolder:")
        )

    def existing_path(self, cfg: MltConfig, root: Path) -> Path:
        path = resolve_path(cfg.data.source, root)
        if not path.is_file():
            what = "is a directory, not a file" if path.is_dir() else "no such file"
            raise DataError(
                f"{cfg.data.source}: {what} ({path})",
                hint="fix data.source in mlt.yaml (paths are relative to the project root)",
            )
        return path

    def fingerprint(self, cfg: MltConfig, root: Path) -> str:
        path = self.existing_path(cfg, root)
        try:  # reused within the process: the staleness check, the cache key, the load
            return sha256_file(path, reuse=True)
        except OSError as exc:
            raise DataError(f"{cfg.data.source}: cannot read {path}: {exc.strerror}") from None


@register_source
class CsvSource(_FileSource):
    """A comma-separated text file with a header row; `data.target` names the target column."""

    name = "csv"
    suffix = ".csv"

    @classmethod
    def claims(cls, source: str, text_column: str | None) -> bool:
        return cls.handles(source) and not text_column  # with one, it is text data

    def load(self, cfg: MltConfig, root: Path) -> RawData:
        from mltrainer.data._csv import read_csv_frame

        path = self.existing_path(cfg, root)
        frame, data_hash, lines = read_csv_frame(path, cfg.data.source)
        return RawData(frame, cfg.data.target or "", data_hash, target_required=True,
                       row_lines=lines)



def read_npz_xy(path: Path, where: str) -> tuple[Any, Any]:
    """Arrays X and y of an .npz archive (never unpickling objects), or a DataError naming
    what is missing or unreadable."""
    import numpy as np

    hint = "save it with numpy.savez(path, X=features, y=target)"
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = list(getattr(archive, "files", []))
            missing = [k for k in ("X", "y") if k not in keys]
            if missing:
                raise DataError(
                    f"{where}: the archive has no array {' or '.join(map(repr, missing))}; "
                    f"it holds {', '.join(map(repr, keys)) or 'no arrays'}", hint=hint)
            return archive["X"], archive["y"]
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{where}: not a readable .npz archive ({type(exc).__name__}: {exc})",
                        hint=hint) from None

def json_problem(path: Path) -> str | None:
    """What makes a .jsonl / .json file unreadable, naming the line (1-based) a person opens
    the file at: a line that is not JSON, or a line that is JSON but not an object. None when
    the file parses (then the reader's own message stands)."""
    import json

    if path.suffix.lower() != ".jsonl":
        try:
            json.loads(path.read_bytes())
        except UnicodeDecodeError:
            return "it is not UTF-8 text"
        except json.JSONDecodeError as exc:
            return f"not JSON at line {exc.lineno}, column {exc.colno} ({exc.msg})"
        return None
    with path.open("rb") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except UnicodeDecodeError:
                return f"line {number} is not UTF-8 text"
            except json.JSONDecodeError as exc:
                return f"line {number} is not JSON ({exc.msg} at column {exc.colno})"
            if not isinstance(value, dict):
                return (f"line {number} is a JSON {type(value).__name__}, not an object "
                        "({\"column\": value, ...})")
    return None


@register_source
class NpzSource(_FileSource):
    """A numpy .npz archive with arrays `X` (N, F) or images (N, [C,] H, W) and `y` (N,)."""

    name = "npz"
    suffix = ".npz"

    def load(self, cfg: MltConfig, root: Path) -> RawData:
        from mltrainer.data._table import frame_from_arrays

        path = self.existing_path(cfg, root)
        where = cfg.data.source
        X, y = read_npz_xy(path, where)
        frame, target, image_shape = frame_from_arrays(X, y, where)
        return RawData(frame, target, sha256_file(path, reuse=True), image_shape)


@register_source
class SklearnSource(DataSource):
    """A data set bundled with scikit-learn (no download)."""

    name = "sklearn"

    @classmethod
    def handles(cls, source: str) -> bool:
        return source.startswith("sklearn:")

    def dataset(self, cfg: MltConfig) -> str:
        name = cfg.data.source.split(":", 1)[1].strip()
        if name not in SKLEARN_DATASETS:
            import difflib

            guess = difflib.get_close_matches(name, SKLEARN_DATASETS, n=1)
            tip = f"; did you mean 'sklearn:{guess[0]}'?" if guess else ""
            raise DataError(
                f"data.source {cfg.data.source!r}: unknown scikit-learn data set {name!r}{tip} "
                f"(known: {', '.join(SKLEARN_DATASETS)})",
                hint="set data.source to sklearn:<one of the known names>",
            )
        return name

    def fingerprint(self, cfg: MltConfig, root: Path) -> str:
        name = self.dataset(cfg)
        version = metadata.version("scikit-learn")
        return hashlib.sha256(f"sklearn:{name}@{version}".encode()).hexdigest()

    def load(self, cfg: MltConfig, root: Path) -> RawData:
        import sklearn.datasets

        from mltrainer.data._table import frame_from_arrays

        name = self.dataset(cfg)
        bunch = getattr(sklearn.datasets, f"load_{name}")()
        names = [str(n) for n in getattr(bunch, "feature_names", [])] or None
        frame, target, _ = frame_from_arrays(bunch.data, bunch.target, cfg.data.source, names)
        return RawData(frame, target, None, _SKLEARN_IMAGE_SHAPES.get(name))
