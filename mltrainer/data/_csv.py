"""Reading a CSV file strictly: every malformation is a DataError naming the file and the line.

pandas pads short rows with NaN without a word, and reads a binary file as garbage columns;
so the structure is checked with the csv module first (field counts per line, header,
encoding), and pandas parses only what passed.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections import Counter
from pathlib import Path

import pandas as pd

from mltrainer.errors import DataError

_SNIFF_BYTES = 8192  # bytes inspected for NUL characters: enough to tell binary from text
_MAX_LINES_QUOTED = 5  # offending line numbers quoted in a message
_CSV_HINT = "the file must be comma-separated UTF-8 text with a header row"


def read_text_file(path: Path, where: str, what: str = "CSV text file",
                   hint: str = _CSV_HINT) -> tuple[bytes, str]:
    """(the file's bytes, its text): a DataError naming the file when it cannot be read, is
    empty, is binary (NUL bytes) or is not UTF-8 (a byte-order mark is allowed)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{where}: cannot read {path}: {exc.strerror}") from None
    if not raw.strip():
        raise DataError(f"{where}: the file is empty", hint=hint)
    if b"\x00" in raw[:_SNIFF_BYTES]:
        raise DataError(f"{where}: binary content (NUL bytes), not a {what}", hint=hint)
    try:
        return raw, raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{where}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
            hint=hint,
        ) from None


def read_csv_frame(path: Path, where: str, *, as_text: bool = False
                   ) -> tuple[pd.DataFrame, str, list[int] | None]:
    """(table, sha256 of the file bytes, file line of each data row). `where` names the file.
    `as_text`: every cell a string as written (an empty cell is ""), for columns of texts.

    The line numbers serve messages about rows; None when rows and lines do not match one to
    one. (Not kept in `frame.attrs`: pandas deep-copies attrs on every operation.)
    """
    raw, text = read_text_file(path, where)
    data_hash = hashlib.sha256(raw).hexdigest()
    lines = _check_structure(text, where)
    try:
        frame = pd.read_csv(io.StringIO(text), low_memory=False,
                            **({"dtype": str, "keep_default_na": False} if as_text else {}))
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataError(f"{where}: malformed CSV: {str(exc).strip()}", hint=_CSV_HINT) from None
    frame.columns = [str(c) for c in frame.columns]
    frame = frame.reset_index(drop=True)
    return frame, data_hash, lines if len(lines) == len(frame) else None


def _check_structure(text: str, where: str) -> list[int]:
    """Header sane, every row as wide as the header. Returns the file line of each data row."""
    reader = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    lines: list[int] = []
    ragged: list[tuple[int, int]] = []
    try:
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank line: pandas skips it too
            if header is None:
                header = row
                _check_header(header, where)
                continue
            if len(row) != len(header):
                ragged.append((reader.line_num, len(row)))
            lines.append(reader.line_num)
    except csv.Error as exc:
        raise DataError(
            f"{where}: malformed CSV at line {reader.line_num}: {exc}", hint=_CSV_HINT
        ) from None
    if ragged:
        quoted = ", ".join(f"line {ln} has {n}" for ln, n in ragged[:_MAX_LINES_QUOTED])
        extra = len(ragged) - _MAX_LINES_QUOTED
        more = f" (and {extra} more)" if extra > 0 else ""
        raise DataError(
            f"{where}: ragged rows: the header has {len(header or [])} fields but {quoted}{more}",
            hint="every row needs one value per column (leave a cell empty for a missing value)",
        )
    if not lines:
        raise DataError(f"{where}: a header but no data rows", hint=_CSV_HINT)
    return lines


def _check_header(header: list[str], where: str) -> None:
    names = [h.strip() for h in header]
    if len(names) == 1 and any(sep in names[0] for sep in (";", "\t", "|")):
        sep = next(s for s in (";", "\t", "|") if s in names[0])
        raise DataError(
            f"{where}: the header is one column {names[0]!r}: the file looks separated by "
            f"{sep!r}, but mlt reads comma-separated files",
            hint="save the file with commas as separators",
        )
    dupes = sorted(name for name, count in Counter(names).items() if count > 1)
    if dupes:
        raise DataError(
            f"{where}: duplicate column names in the header: {', '.join(map(repr, dupes))}",
            hint="give every column a unique name",
        )
