"""`mlt predict INPUT.csv --out preds.csv`: the shipped model on raw rows.

The rows go through the data layer's own strict CSV reader and `Preprocessor.encode` (rebuilt
from the artifact's preprocess.json), exactly the column handling training used; the current
artifact's `model.onnx` runs in onnxruntime, as a deployment would. Columns the model does not
use (the target, dropped ids) are ignored; a missing model column is a DataError (exit 2).
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

import numpy as np

from mltrainer.errors import BadInputError, DataError, RefusedError, StateCorruptError
from mltrainer.phases.finalize.artifacts import PREPROCESS_FORMAT, read_latest, verify_folder
from mltrainer.project import Project
from mltrainer.runtime import walk
from mltrainer.state import atomic_write_text

PROB_PREFIX = "prob_"  # column name prefix of the per-class probabilities
SHOWN = 5  # the values (a column's unseen categories) or files a result names


def current_artifact(project: Project) -> tuple[Path, dict[str, Any]]:
    """The folder `artifacts/latest.json` points at, verified, and its preprocess.json."""
    latest = read_latest(project)
    pointer = project.artifacts_dir / "latest.json"
    if latest is None and pointer.exists():
        raise StateCorruptError(
            f"{project.relative(pointer)}: not a readable pointer to the current artifact",
            hint="restore it, or re-run `mlt finalize` to point it at the artifact again")
    if latest is not None and not (project.root / str(latest["dir"])).resolve().is_relative_to(
            project.artifacts_dir.resolve()):
        raise StateCorruptError(
            f"{project.relative(pointer)}: points outside artifacts/ ({latest['dir']!r})",
            hint="restore it, or re-run `mlt finalize` to point it at the artifact again")
    if latest is None:
        raise RefusedError(
            f"no exported model in {project.relative(project.artifacts_dir)} "
            f"(no {project.relative(project.artifacts_dir / 'latest.json')})",
            hint="run `mlt finalize` first",
        )
    folder = project.root / latest["dir"]
    hint = "restore the folder, or re-run `mlt finalize` to export anew"
    if not folder.is_dir():
        raise StateCorruptError(f"{latest['dir']}: the current artifact's folder is gone "
                                f"(moved or deleted)", hint=hint)
    check = verify_folder(folder)
    if not check["intact"]:
        what = (f"missing {', '.join(check['missing'])}; " if check.get("missing") else "") + (
            f"changed {', '.join(check['mismatched'])}" if check.get("mismatched") else "")
        raise StateCorruptError(
            f"{latest['dir']}: the artifact's files do not match its manifest "
            f"({what.strip('; ') or check.get('why') or 'its hash or name differs'})",
            hint=hint)
    doc = json.loads((folder / "preprocess.json").read_text(encoding="utf-8"))
    if doc.get("format") != PREPROCESS_FORMAT:
        raise StateCorruptError(f"{latest['dir']}/preprocess.json: not an mlt preprocessing "
                                f"record", hint="re-run `mlt finalize`")
    return folder, doc


def _as_category_text(col: Any) -> Any:
    """A category column pandas parsed as numbers ("1", "2" → 1.0, 2.0 with a gap) back to the
    text training saw ("1", "2"), so the one-hot lookup matches."""
    import pandas as pd

    if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
        return col
    def text(v: Any) -> Any:
        if pd.isna(v):
            return None
        return str(int(v)) if float(v).is_integer() else str(v)
    return col.map(text).astype(object)


def encode_csv(path: Path, preprocessor: Any
               ) -> tuple[np.ndarray, list[str], int, dict[str, dict[str, Any]]]:
    """(encoded float32 rows, ignored columns, row count, unseen categories); DataError naming
    the file otherwise. A category training never saw is encoded as none of the known ones
    (`Preprocessor.encode`); `unseen` says where: {column: {"rows": count, "values": [the
    first few, sorted], "distinct": how many}}."""
    from mltrainer.data._csv import read_csv_frame
    from mltrainer.data._preprocess import unseen_categories
    from mltrainer.data._table import check_features

    where = str(path)
    if not path.is_file():
        raise DataError(f"{where}: {'a folder, not a file' if path.is_dir() else 'no such file'}",
                        hint="pass the path of a CSV file to predict on")
    frame, _, lines = read_csv_frame(path, where)
    wanted = [c.name for c in preprocessor.columns]
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        spare = [c for c in frame.columns if c not in wanted]
        named = []
        for name in missing:
            guess = difflib.get_close_matches(name, spare, n=1, cutoff=0.6)
            named.append(f"{name!r}" + (f" (did you mean {guess[0]!r}?)" if guess else ""))
        raise DataError(
            f"{where}: missing column(s) {', '.join(named)} the model needs "
            f"(the file has: {', '.join(frame.columns)})",
            hint=f"the model reads columns {', '.join(wanted)}; other columns are ignored",
        )
    features = frame[wanted].copy()
    check_features(features, where, lines)
    for c in preprocessor.columns:
        if c.kind == "category":
            features[c.name] = _as_category_text(features[c.name])
    unseen: dict[str, dict[str, Any]] = {}
    for name, rows in unseen_categories(preprocessor, features).items():
        values = sorted(set(features[name][rows].astype(str)))
        unseen[name] = {"rows": int(rows.sum()), "distinct": len(values),
                        "values": values[:SHOWN]}
    try:
        encoded = preprocessor.encode(features)
    except DataError as exc:
        # the default hint names mlt.yaml's data settings: here the input file is what to fix
        hint = (f"fix that column in {where}: the model reads it as in training"
                if exc.hint == DataError.default_hint else exc.hint)
        raise DataError(f"{where}: {exc.message}", hint=hint) from None
    ignored = [c for c in frame.columns if c not in wanted]
    return encoded, ignored, len(frame), unseen


def check_output_path(project: Project, input_path: Path, out_path: Path, force: bool) -> None:
    """Refuse (exit 2) to write predictions over the input, the training data, the project's
    own files (mlt.yaml, .mlt/, runs/, artifacts/, reports/, Python sources), or, unless
    `force`, over any existing file."""
    out = Path(out_path).resolve()
    fix = "choose another --out path (a new file)"
    if out.is_dir():
        raise BadInputError(f"--out {out_path}: is a folder", hint=fix)
    above = next((d for d in out.parents if d.exists()), None)
    if above is not None and not above.is_dir():
        raise BadInputError(f"--out {out_path}: {above} is a file, not a folder", hint=fix)
    protected = {Path(input_path).resolve(): "over the input file",
                 project.config_path: "over the project config",
                 project.optimized_config_path: "over the optimized config"}
    source = _data_source_path(project)
    if source is not None:
        protected[source] = "over the training data (data.source)"
    what = protected.get(out)
    if what is None:
        for folder in (project.mlt_dir, project.runs_dir, project.artifacts_dir,
                       project.reports_dir):
            if out.is_relative_to(folder.resolve()):
                what = f"inside the project's {folder.name}/"
                break
    if what is None and out.suffix == ".py" and out.is_relative_to(project.root):
        what = "over a Python source of the project"
    if what is not None:
        raise BadInputError(f"--out {out_path}: refusing to write predictions {what}",
                            hint=f"{fix}; --force never overwrites project files")
    if out.exists() and not force:
        raise BadInputError(f"--out {out_path}: already exists",
                            hint=f"{fix}, or pass --force to replace it")


def _data_source_path(project: Project) -> Path | None:
    from mltrainer.config import load_config
    from mltrainer.errors import MltError

    try:
        source = load_config(project.config_path).data.source
    except MltError:
        return None
    if source.startswith(("sklearn:", "python:")):
        return None
    return (project.root / source).resolve()


def predict_csv(project: Project, input_path: Path, out_path: Path, *, force: bool = False
                ) -> dict[str, Any]:
    """Predict every row of `input_path` into `out_path`; returns {"rows", "out", ...}.
    `out_path` may not be a project file or an input, nor an existing file unless `force`."""
    import onnxruntime as ort

    from mltrainer.data import Preprocessor

    check_output_path(project, Path(input_path), Path(out_path), force)
    folder, doc = current_artifact(project)
    preprocessor = Preprocessor.from_dict(doc["preprocessor"])
    encoded, ignored, rows, unseen = encode_csv(Path(input_path), preprocessor)
    session = ort.InferenceSession(str(folder / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    (outputs,) = session.run([doc["output"]["name"]], {doc["input"]["name"]: encoded})
    return {**_write_predictions(project, folder, doc["output"], outputs, rows, out_path,
                                 ignored), "unseen_categories": unseen}


def _write_predictions(project: Project, folder: Path, out: dict[str, Any], outputs: Any,
                       rows: int, out_path: Path, ignored: list[str],
                       names: list[str] | None = None) -> dict[str, Any]:
    """The predictions CSV (an `input` column first when `names` are given; the label and
    each class's probability, or the value), written atomically; the command's result."""
    import pandas as pd

    from mltrainer.engine.metrics import softmax

    outputs = np.asarray(outputs, dtype=np.float64)
    first = {"input": names} if names is not None else {}
    if out["task"] == "regression":
        table = pd.DataFrame({**first, "prediction": outputs.reshape(rows)})
    else:
        labels = list(out["class_labels"])
        probs = softmax(outputs.reshape(rows, -1))
        table = pd.DataFrame({**first,
                              "prediction": [labels[i] for i in probs.argmax(axis=1)]})
        for j, label in enumerate(labels):
            table[f"{PROB_PREFIX}{label}"] = probs[:, j]
    atomic_write_text(Path(out_path), table.to_csv(index=False))
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    return {"rows": rows, "out": str(out_path), "artifact": project.relative(folder),
            "artifact_hash": manifest["artifact_hash"], "task": out["task"],
            "columns": list(table.columns), "ignored_columns": ignored,
            "finalize_status": _finalize_status(project)}


def _finalize_status(project: Project) -> str | None:
    """The finalize gate's status: predictions from an artifact nobody signed off say so."""
    from mltrainer.state import load_state

    try:
        rec = load_state(project).phases.get("finalize")
    except StateCorruptError:
        return None
    return rec.status if rec is not None else None


def predict_inputs(project: Project, inputs: list[Path], out_path: Path,
                   column: str | None = None, *, force: bool = False) -> dict[str, Any]:
    """`mlt predict`: one CSV of raw rows for a table model; image files or folders for an
    image model; a text file (one text a line) or a CSV `column` for a text model. `out_path`
    may not be a project file or an input, nor an existing file unless `force`."""
    if not inputs:
        raise DataError("mlt predict: no input given", hint="pass a file (or folders of images)")
    for path in inputs:
        check_output_path(project, Path(path), Path(out_path), force)
    _, doc = current_artifact(project)
    kind = doc.get("input", {}).get("kind")
    if kind is None:
        if len(inputs) != 1:
            raise DataError(f"mlt predict: a table model takes one CSV file, got {len(inputs)}",
                            hint="mlt predict INPUT.csv --out preds.csv")
        return predict_csv(project, inputs[0], out_path, force=force)
    return predict_items(project, inputs, out_path, column)


def predict_items(project: Project, inputs: list[Path], out_path: Path,
                  column: str | None) -> dict[str, Any]:
    """An image or text model on raw items, through runtime.items (what the deployment
    snippet does), or a Dataset model on .npy files of its items, and the artifact's
    model.onnx in onnxruntime."""

    from mltrainer.runtime.items import image_batch, image_files, text_batch
    from mltrainer.runtime.runners import load_runner

    folder, doc = current_artifact(project)
    pre, out = doc["input"], doc["output"]
    missing = [str(p) for p in inputs if not Path(p).exists()]
    if missing:
        raise DataError(f"mlt predict: no such file or folder: {missing[0]}",
                        hint="pass existing input files or folders (see `mlt predict --help`)")
    if pre["kind"] == "image":
        files = image_files([Path(p) for p in inputs])
        if not files:
            raise DataError(f"mlt predict: no image files in {', '.join(map(str, inputs))}")
        names = [str(f) for f in files]
        try:
            batch: Any = image_batch(files, pre)
        except Exception as exc:  # an unreadable image: name it
            bad = next((f for f in files if not _readable(f)), files[0])
            raise DataError(f"{bad}: not a readable image ({type(exc).__name__}: {exc})",
                            hint="fix or remove the file") from None
    elif pre["kind"] == "text":
        names, blank = _texts(inputs, column)
        batch = text_batch(names, folder, pre)
    else:
        names, items = _tensor_items(inputs, pre)
        batch = {pre["name"]: items}
    run, _ = load_runner("onnx", str(folder / "model.onnx"))
    result = _write_predictions(project, folder, out, run(batch), len(names), out_path, [],
                                names=names)
    if pre["kind"] == "text":  # nothing skipped silently: a blank line has no prediction
        result["skipped_blank_lines"] = blank
    if pre["kind"] == "image":  # nor a file of an input folder that is no image
        result["skipped_files"] = _not_images(inputs, files)
    return result


def _not_images(inputs: list[Path], files: list[Path]) -> dict[str, Any]:
    """The files under the input folders that have no image suffix, so no prediction:
    {"count", "examples": the first few}."""
    taken = {Path(f).resolve() for f in files}
    skipped = [f for d in map(Path, inputs) if d.is_dir()
               for f in sorted(d / rel / name for rel, _, names in walk(d) for name in names)
               if f.is_file() and f.resolve() not in taken]
    return {"count": len(skipped), "examples": [str(f) for f in skipped[:SHOWN]]}


def _tensor_items(inputs: list[Path], pre: dict[str, Any]) -> tuple[list[str], np.ndarray]:
    """A Dataset model's inputs: .npy files, each one item or a stack of items shaped as the
    Dataset returns them (preprocess.json's input shape); rows named `file[i]`."""
    item = tuple(int(d) for d in pre["shape"][1:])
    names: list[str] = []
    arrays: list[np.ndarray] = []
    for path in map(Path, inputs):
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: not a .npy array ({type(exc).__name__}: {exc})",
                            hint="save the items with numpy.save(path, array)") from None
        if not isinstance(array, np.ndarray) or not np.issubdtype(array.dtype, np.number):
            raise DataError(f"{path}: not a numeric .npy array",
                            hint="save the items with numpy.save(path, array)")
        if array.shape == item:
            array = array[None]
        if array.shape[1:] != item:
            raise DataError(f"{path}: items of shape {tuple(array.shape)}, but the model takes "
                            f"items of shape {item} (or a stack of them: (n, "
                            f"{', '.join(map(str, item))}))",
                            hint="save the items as your Dataset returns them")
        names += [f"{path}[{i}]" for i in range(len(array))]
        arrays.append(array.astype(np.float32))
    return names, np.ascontiguousarray(np.concatenate(arrays))


def _readable(path: Path) -> bool:
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()
        return True
    except Exception:  # any failure: this is the unreadable one
        return False


def _texts(inputs: list[Path], column: str | None) -> tuple[list[str], list[str]]:
    """(the texts in order, the blank lines of text files skipped, as `file:line`)."""
    from mltrainer.data._csv import read_csv_frame, read_text_file

    texts: list[str] = []
    blank: list[str] = []
    for path in map(Path, inputs):
        if path.suffix.lower() == ".csv":
            frame, _, _ = read_csv_frame(path, str(path), as_text=True)
            col = column or "text"
            if col not in frame.columns:
                guess = difflib.get_close_matches(col, list(frame.columns), n=1)
                tip = f"; did you mean {guess[0]!r}?" if guess else ""
                raise DataError(f"{path}: no column {col!r}{tip} (columns: "
                                f"{', '.join(map(str, frame.columns))})",
                                hint="pass --column NAME")
            texts.extend(frame[col].tolist())
        else:
            _, text = read_text_file(path, str(path), "text file",
                                     hint="pass a UTF-8 text file, one text a line")
            for number, line in enumerate(text.splitlines(), 1):
                if line.strip():
                    texts.append(line)
                else:
                    blank.append(f"{path}:{number}")
    if not texts:
        raise DataError(f"mlt predict: no texts in {', '.join(map(str, inputs))}")
    return texts, blank
