"""Text data: a Hugging Face `datasets` folder written by `save_to_disk`, or data files
(.csv with `data.text_column` set, .jsonl/.json, .parquet), read with `datasets`; a text column
(`data.text_column`, default "text") and a label column (`data.target`, default "label").
A saved DatasetDict with train / validation (or val) / test keeps its own split.
A .jsonl/.json/.parquet file with no text column (no `data.text_column`, no column named
"text") is a table instead, read with pandas like a CSV.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrainer.data._manifest import fingerprint_path
from mltrainer.data._sources import DataSource, json_problem, register_source, resolve_path
from mltrainer.errors import DataError

if TYPE_CHECKING:
    from mltrainer.config import MltConfig

TEXT_FILES = (".jsonl", ".json", ".parquet")
_JSON_HINT = "write one JSON object per line, e.g. {\"text\": \"...\", \"label\": \"...\"}"
_BUILDERS = {".csv": "csv", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}


class Texts:
    """`texts[i]` → (text, label index)."""

    def __init__(self, texts: list[str], labels: list[Any]) -> None:
        self.texts = texts
        self.labels = labels

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, i: int) -> tuple[str, Any]:
        return self.texts[i], self.labels[i]


def is_text_source(source: str, text_column: str | None) -> bool:
    low = source.lower()
    if source.startswith("text:") or low.endswith(TEXT_FILES):
        return True
    return bool(text_column) and low.endswith(".csv")


@register_source
class TextSource(DataSource):
    name = "text"

    @classmethod
    def handles(cls, source: str) -> bool:
        return is_text_source(source, None)

    @classmethod
    def claims(cls, source: str, text_column: str | None) -> bool:
        return is_text_source(source, text_column)

    def path(self, cfg: MltConfig, root: Path) -> Path:
        rel = cfg.data.source.removeprefix("text:")
        path = resolve_path(rel, root)
        if not path.exists():
            raise DataError(f"data.source {cfg.data.source!r}: no such file or folder ({path})",
                            hint="point it at a datasets folder (save_to_disk) or a "
                                 ".csv/.jsonl/.parquet file")
        return path

    def fingerprint(self, cfg: MltConfig, root: Path) -> str:
        return fingerprint_path(root, self.path(cfg, root))

    def read(self, cfg: MltConfig, root: Path) -> Any:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from mltrainer.models._vision import torchvision

        torchvision()  # transformers/datasets import it: make that import work
        import datasets

        datasets.disable_progress_bars()
        # its json builder logs a parse error before raising; the raise becomes mlt's one line
        datasets.logging.set_verbosity(datasets.logging.CRITICAL)
        path = self.path(cfg, root)
        _refuse_empty(path, cfg.data.source)
        try:
            if path.is_dir():
                return datasets.load_from_disk(str(path), keep_in_memory=True)
            builder = _BUILDERS.get(path.suffix.lower())
            if builder is None:
                raise DataError(f"{cfg.data.source}: not a text data file (.csv, .jsonl, "
                                f".json, .parquet) nor a datasets folder")
            return datasets.load_dataset(builder, data_files=str(path), split="train",
                                         keep_in_memory=True,
                                         cache_dir=str(Path(root) / ".mlt" / "cache" / "hf"))
        except DataError:
            raise
        except Exception as exc:
            if path.is_file() and path.suffix.lower() == ".csv":
                from mltrainer.data._csv import read_text_file

                read_text_file(path, cfg.data.source)  # empty, binary, not UTF-8: named
            is_json = path.is_file() and _BUILDERS.get(path.suffix.lower()) == "json"
            problem = json_problem(path) if is_json else None
            if problem:
                raise DataError(f"{cfg.data.source}: {problem}", hint=_JSON_HINT) from None
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            raise DataError(f"{cfg.data.source}: datasets cannot read it "
                            f"({type(exc).__name__}: {first})") from None

    def load(self, cfg: MltConfig, root: Path) -> Any:
        table = self._table(cfg, root)
        if table is not None:
            return table
        import datasets
        import numpy as np

        from mltrainer.data._items import ItemData
        from mltrainer.data._split import SPLIT_NAMES

        where = cfg.data.source
        data = self.read(cfg, root)
        parts: dict[str, Any] = {}
        if isinstance(data, datasets.DatasetDict):
            for name, aliases in SPLIT_NAMES.items():
                key = next((a for a in aliases if a in data), None)
                if key is not None:
                    parts[name] = data[key]
            if "train" not in parts:
                raise DataError(f"{where}: the saved DatasetDict has no 'train' split "
                                f"(it has {', '.join(data)})")
            if len(parts) < 3:
                parts = {"all": datasets.concatenate_datasets(list(parts.values()))}
        else:
            parts = {"all": data}
        text_col = cfg.data.text_column or "text"
        label_col = cfg.data.target or "label"
        first = next(iter(parts.values()))
        pictures = [c for c, f in first.features.items() if isinstance(f, datasets.Image)]
        if pictures and text_col not in first.column_names:
            raise DataError(
                f"{where}: column {pictures[0]!r} holds images (datasets.Image); a datasets "
                "folder is read as text data",
                hint="save the images as an image folder (imagefolder:<dir>, one sub-folder "
                     "per class), or return from a python: function a torch.utils.data.Dataset "
                     "whose items are ((C, H, W) tensor, label)")
        for field, col in (("data.text_column", text_col), ("data.target", label_col)):
            if col not in first.column_names:
                raise DataError(
                    f"{where}: no column {col!r} ({field}); the columns are "
                    f"{', '.join(map(repr, first.column_names))}",
                    hint=f"set {field} in mlt.yaml to the column that holds the "
                         f"{'texts' if field == 'data.text_column' else 'labels'}")
        texts: list[str] = []
        raw_labels: list[Any] = []
        given: dict[str, Any] = {}
        for name, part in parts.items():
            start = len(texts)
            try:
                col = list(part[text_col])  # read here: a column decodes its rows lazily
                labels_of_part = list(part[label_col])
            except UnicodeDecodeError:
                # the JSON reader passes bytes that are not UTF-8; they fail only when read
                path = self.path(cfg, root)
                problem = json_problem(path) if path.is_file() else None
                raise DataError(f"{where}: {problem or 'it is not UTF-8 text'}",
                                hint="save the file as UTF-8") from None
            bad = [i for i, t in enumerate(col) if not isinstance(t, str) or not t.strip()]
            if bad:
                # an empty CSV cell reads as None; "" or only spaces is no text either (predict
                # skips a blank line the same way)
                empty = [i for i in bad if col[i] is None or isinstance(col[i], str)]
                rows = ", ".join(str(start + i + 1) for i in (empty or bad)[:5]) + (
                    ", ..." if len(empty or bad) > 5 else "")
                what = (f"{len(empty)} row(s) of column {text_col!r} have no text" if empty
                        else f"{len(bad)} row(s) of column {text_col!r} hold "
                             f"{type(col[bad[0]]).__name__}, not text")
                raise DataError(f"{where}: {what} (rows {rows}, counting from 1)",
                                hint="fill those cells or drop those rows: a text model "
                                     "reads a text in every row")
            texts.extend(col)
            raw_labels.extend(labels_of_part)
            given[name] = np.arange(start, len(texts))
        names = _class_names(first.features.get(label_col))
        labels, classes = _encode(raw_labels, names, cfg.task, where, label_col)
        digests = np.stack([np.frombuffer(hashlib.sha256(t.encode()).digest(), np.uint8)
                            for t in texts])
        path = self.path(cfg, root)
        return ItemData(
            dataset=Texts(texts, labels.tolist()), labels=labels, class_labels=classes,
            digests=digests, data_hash=self.fingerprint(cfg, root), modality="text",
            describe=lambda i: f"{path} row {i}",
            given_splits=None if "all" in given else given,
            extra={"text_column": text_col, "label_column": label_col},
        )


    def _table(self, cfg: MltConfig, root: Path) -> Any:
        """A .jsonl/.json/.parquet file with no text column (neither data.text_column set nor
        a column named 'text', and no `text:` prefix) is a table, read like a CSV: a RawData
        whose target is data.target. None when the file is text data."""
        import pandas as pd

        from mltrainer.data._sources import RawData

        if cfg.data.text_column or cfg.data.source.startswith("text:"):
            return None
        path = self.path(cfg, root)
        if not path.is_file():
            return None
        _refuse_empty(path, cfg.data.source)
        try:
            if path.suffix.lower() == ".parquet":
                frame = pd.read_parquet(path)
            else:
                frame = pd.read_json(path, lines=path.suffix.lower() == ".jsonl")
        except Exception as exc:
            problem = json_problem(path) if path.suffix.lower() != ".parquet" else None
            if problem:
                raise DataError(f"{cfg.data.source}: {problem}", hint=_JSON_HINT) from None
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            raise DataError(f"{cfg.data.source}: cannot read it as a table "
                            f"({type(exc).__name__}: {first})",
                            hint="write one JSON object per line (.jsonl) or a parquet file "
                                 "with one column per feature") from None
        if "text" in frame.columns:
            return None
        frame.columns = [str(c) for c in frame.columns]
        return RawData(frame.reset_index(drop=True), cfg.data.target or "",
                       self.fingerprint(cfg, root), target_required=True)


def _refuse_empty(path: Path, where: str) -> None:
    """A file with no rows at all (0 bytes, or only blank lines): said plainly, not as the
    reader's StopIteration."""
    if path.is_file() and path.stat().st_size < 4096 and not path.read_bytes().strip():
        raise DataError(f"{where}: the file is empty", hint="write the data into it, or point "
                        "data.source at the file that holds it")


def _class_names(feature: Any) -> list[str] | None:
    names = getattr(feature, "names", None)
    return list(names) if names else None


def _encode(raw: list[Any], names: list[str] | None, task: str, where: str, col: str
            ) -> tuple[Any, list[Any] | None]:
    import numpy as np

    if task == "regression":
        try:
            values = np.asarray(raw, dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError(f"{where}: column {col!r} is not numeric (task: regression)") from None
        bad = np.flatnonzero(~np.isfinite(values) | (np.abs(values) > np.finfo(np.float32).max))
        if len(bad):
            raise DataError(f"{where}: row {int(bad[0]) + 1} (counting from 1) has target "
                            f"{raw[bad[0]]!r} in column {col!r}, not a finite number "
                            f"({len(bad)} such row(s))",
                            hint="fill or drop rows without a finite target")
        return values.astype(np.float32), None
    if names is not None:  # a ClassLabel column: integers that index `names`
        arr = np.asarray(raw, dtype=np.int64)
        bad = np.flatnonzero((arr < 0) | (arr >= len(names)))
        if len(bad):
            raise DataError(f"{where}: row {int(bad[0]) + 1} (counting from 1) has label "
                            f"{int(arr[bad[0]])}, outside the {len(names)} classes of column "
                            f"{col!r} (0..{len(names) - 1})",
                            hint="fix or drop the row, or add the class to the ClassLabel names")
        return arr, names
    missing = next((i for i, v in enumerate(raw) if v is None or (isinstance(v, float)
                                                                   and v != v)), None)
    if missing is not None:  # None, or NaN (a missing cell of a numeric column)
        raise DataError(f"{where}: row {missing + 1} (counting from 1) has no label in column "
                        f"{col!r}", hint="fill or drop rows without a label")
    odd = next((i for i, v in enumerate(raw) if not isinstance(v, (str, int, float))), None)
    if odd is not None:  # a list (several labels), a dict: not one class
        raise DataError(f"{where}: row {odd + 1} (counting from 1) has label {raw[odd]!r} "
                        f"({type(raw[odd]).__name__}) in column {col!r}; a label is one class "
                        "name or number",
                        hint="give every row one label (mlt trains single-label classifiers)")
    classes = sorted(set(raw), key=lambda v: (str(type(v)), v))
    index = {c: i for i, c in enumerate(classes)}
    if len(classes) < 2:
        raise DataError(f"{where}: column {col!r} has {len(classes)} distinct label(s); a "
                        "classifier needs at least 2")
    return np.asarray([index[v] for v in raw], dtype=np.int64), [
        v.item() if hasattr(v, "item") else v for v in classes]
