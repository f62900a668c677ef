"""Example data written by `mlt init --example images|text`, from data that ships in a package
(no download, no generated noise):

- `images`: scikit-image's `lfw_subset` — 200 real 25x25 grayscale photos, 100 faces (from
  Labeled Faces in the Wild) and 100 non-face patches — written as PNG files into the
  ImageFolder layout `data/faces/{face,not_face}/NNN.png`.
- `text`: the 1990 US Census first-name lists that the `names` package ships — written as
  `data/names.jsonl` (`{"text": name, "label": "female"|"male"}`), names on both lists left
  out and the female list thinned evenly to the male list's size (a balanced task). The
  example also trains a BPE tokenizer on the names (labels unused) with `tokenizers`
  (`tokenizer/`) and writes a tiny BERT config (`model/config.json`): the transformer is
  built from that config with the run's seed, so no weights are downloaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mltrainer.errors import BadInputError

DATA_EXAMPLES = ("images", "text")


def write_example_data(name: str, root: Path) -> list[str]:
    """Write the example's data under `root`; returns the paths written (relative)."""
    if name == "images":
        return _faces(root)
    if name == "text":
        return _names(root)
    return []


def _faces(root: Path) -> list[str]:
    import numpy as np
    from PIL import Image

    try:
        from skimage.data import lfw_subset
    except ImportError:
        raise BadInputError("the images example needs scikit-image (it ships the photos)",
                            hint="pip install -c constraints.txt 'mltrainer[vision]'") from None
    images = lfw_subset()  # (200, 25, 25) float in [0, 1]: 100 faces, then 100 non-faces
    out = root / "data" / "faces"
    for i, img in enumerate(images):
        cls = "face" if i < 100 else "not_face"
        (out / cls).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.round(img * 255).astype(np.uint8), mode="L").save(
            out / cls / f"{i % 100:03d}.png", optimize=False)
    return ["data/faces/"]


def _names(root: Path) -> list[str]:
    import json

    try:
        import names
    except ImportError:
        raise BadInputError("the text example needs the `names` package (it ships the lists)",
                            hint="pip install -c constraints.txt 'mltrainer[text]'") from None
    folder = Path(names.__file__).parent
    lists = {label: [line.split()[0].capitalize() for line in
                     (folder / f"dist.{label}.first").read_text().splitlines() if line.strip()]
             for label in ("male", "female")}
    both = set(lists["male"]) & set(lists["female"])
    male = [n for n in lists["male"] if n not in both]
    female = [n for n in lists["female"] if n not in both]
    step = len(female) / len(male)
    female = [female[int(i * step)] for i in range(len(male))]
    rows = [{"text": n, "label": "male"} for n in male] + \
           [{"text": n, "label": "female"} for n in female]
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    (data / "names.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows),
                                      encoding="utf-8")
    _tokenizer([r["text"] for r in rows], root / "tokenizer")
    _tiny_bert(root / "model", vocab_size=_vocab_size(root / "tokenizer"))
    return ["data/names.jsonl", "tokenizer/", "model/"]


def _tokenizer(texts: list[str], folder: Path) -> None:
    """A byte-pair (BPE) tokenizer trained on the example's texts (`tokenizers`), saved as
    `transformers` saves one. The same texts give the same tokenizer, byte for byte: BPE
    without a continuing-subword prefix numbers every token in a sorted order. (WordPiece's
    trainer numbers its `##` tokens in hash-map order, so its merges, and the vocabulary, vary
    from run to run: huggingface/tokenizers#1794.)"""
    from mltrainer.models._vision import torchvision

    torchvision()  # transformers imports it
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=600, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
        show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    fast.save_pretrained(str(folder))


def _vocab_size(folder: Path) -> int:
    import json

    return len(json.loads((folder / "tokenizer.json").read_text())["model"]["vocab"])


_TINY_BERT_POSITIONS = 64  # tokens the tiny transformer can take: `init --data`'s max_length


def _tiny_bert(folder: Path, vocab_size: int) -> None:
    from transformers import BertConfig

    BertConfig(vocab_size=vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
               intermediate_size=128, max_position_embeddings=_TINY_BERT_POSITIONS,
               hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1).save_pretrained(
        str(folder))


def describe() -> dict[str, Any]:
    return {"images": "scikit-image lfw_subset (faces vs not faces)",
            "text": "names package: US Census first names (male vs female)"}


# -- `mlt init --data PATH --target COL`: a first config that fits the user's data -------------

_TEXT_MIN_MEAN_CHARS = 20  # a string column this long on average (with spaces) is free text
_MAX_CLASSES = 50  # an integer target with at most this many values is a class label
_PEEK_ROWS = 2000  # rows of the data that decide the task and the text column
_IMBALANCED = 0.8  # a largest class above this share: the goal is f1_macro, not accuracy


def config_for_data(data: Path, target: str | None, root: Path, name: str
                    ) -> tuple[dict[str, Any], list[str]]:
    """mlt.yaml (as a dict) for the data at `data`: task, source kind and a fitting model —
    mlp for tables, a small CNN (or torchvision:resnet18 for larger photos) for image folders,
    the example's tiny transformer (its tokenizer trained on the texts) for text — and notes
    on what it chose that the user should know (columns left out, the goal's metric)."""
    data = Path(data).expanduser().resolve()
    rel = _relative(data, root)
    if not data.exists():
        raise BadInputError(f"--data {str(data)!r}: no such file or folder",
                            hint="point --data at a .csv/.npz/.jsonl/.parquet file, a datasets "
                                 "folder, or a folder with one sub-folder of images per class")
    if data.is_dir() and not (data / "dataset_info.json").exists() and not (
            data / "dataset_dict.json").exists():
        model, transforms, classes = _image_model(data)
        metric, goal, notes = _goal("classification", classes)
        return _base(name, "classification", {"source": f"imagefolder:{rel}",
                                              "transforms": transforms},
                     model, metric or "accuracy", goal or 0.9), notes
    suffix = data.suffix.lower()
    if suffix == ".npz":
        return _base(name, _npz_task(data), {"source": rel}, {"kind": "mlp"}, None, None), []
    whole = _peek(data)
    frame = whole.head(_PEEK_ROWS)  # what the task, the text column and the tokenizer read
    if target is None:
        columns = ", ".join(map(str, frame.columns))
        raise BadInputError(f"--data {rel}: which column is the target?",
                            hint=f"pass --target COL (columns: {columns})")
    if target not in frame.columns:
        raise BadInputError(f"--target {target!r}: no such column in {rel} (columns: "
                            f"{', '.join(map(str, frame.columns))})", hint="pass --target COL")
    task = _task(frame[target])
    metric, goal, notes = _goal(task, whole[target].dropna().astype(str))
    text = _text_column(frame.drop(columns=[target]))
    if text is not None or data.is_dir() or (suffix in (".jsonl", ".json", ".parquet")
                                             and "text" in frame.columns):
        text = text or "text"
        texts = [str(t) for t in frame[text].dropna()] if text in frame else []
        _tokenizer(texts or ["a"], root / "tokenizer")
        _tiny_bert(root / "model", vocab_size=_vocab_size(root / "tokenizer"))
        return _base(name, task, {"source": rel, "text_column": text, "target": target},
                     {"kind": "hf:model", "tokenizer": "tokenizer",
                      "max_length": _TINY_BERT_POSITIONS},
                     metric, goal), notes
    data_cfg: dict[str, Any] = {"source": rel, "target": target}
    drop = _not_features(whole.drop(columns=[target]))
    if drop:
        data_cfg["drop"] = drop
        notes.insert(0, f"data.drop leaves out {', '.join(map(repr, drop))}: text with mostly "
                        "distinct values (an identifier, a date or free text), not a category; "
                        "edit data.drop to change that")
    return _base(name, task, data_cfg, {"kind": "mlp"}, metric, goal), notes


def _goal(task: str, labels: Any) -> tuple[str | None, float | None, list[str]]:
    """(goal.metric, goal.target, notes), None for the defaults (accuracy 0.9, r2 0.8), from
    every row's label. When the largest class holds more than `_IMBALANCED` of the rows the
    goal is f1_macro 0.8: always predicting that class scores its share in accuracy (plan
    refuses a goal below the trivial baseline), and the rare classes are what matters."""
    import pandas as pd

    if task != "classification":
        return None, None, []
    shares = pd.Series(labels).value_counts(normalize=True)
    if not len(shares) or float(shares.iloc[0]) <= _IMBALANCED:
        return None, None, []
    return "f1_macro", 0.8, [
        f"goal.metric is f1_macro: class {str(shares.index[0])!r} holds "
        f"{float(shares.iloc[0]):.0%} of the rows, so always predicting it scores that much "
        "accuracy; set goal.target to what counts as done"]


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return str(path)


def _base(name: str, task: str, data: dict[str, Any], model: dict[str, Any],
          metric: str | None, target: float | None) -> dict[str, Any]:
    metric = metric or ("accuracy" if task == "classification" else "r2")
    goal = target if target is not None else (0.9 if task == "classification" else 0.8)
    return {"name": name, "task": task, "seed": 42,
            "data": {**data, "split": {"val": 0.15, "test": 0.15,
                                       "stratify": task == "classification"}},
            "model": model,
            "training": {"epochs": 30, "batch_size": 32 if model["kind"] != "mlp" else 64,
                         "lr": 0.001},
            "goal": {"metric": metric, "target": goal}}


def _image_model(folder: Path) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """(model, transforms, each image's class folder) for an image folder."""
    from PIL import Image

    from mltrainer.data._manifest import list_files
    from mltrainer.runtime import IMAGE_SUFFIXES

    files = list_files(folder, IMAGE_SUFFIXES)
    if not files:
        raise BadInputError(f"--data {folder}: a folder without images",
                            hint="use one sub-folder of image files per class")
    with Image.open(folder / files[0]) as img:
        side, mode = min(img.size), img.mode
    channels = 1 if mode in ("1", "L", "I", "I;16", "F") else 3
    classes = [Path(f).parts[0] for f in files if len(Path(f).parts) > 1]
    if side <= 64:  # small images: a small CNN at their own size
        return ({"kind": "cnn", "channels": [32, 64], "hidden": [128]},
                {"channels": channels, "size": side, "crop": side}, classes)
    return ({"kind": "torchvision:resnet18"},
            {"channels": 3, "size": 72, "crop": 64, "augment": {"hflip": 0.5,
                                                                "random_crop": True}}, classes)


def _npz_task(path: Path) -> str:
    import numpy as np

    from mltrainer.data._sources import read_npz_xy

    return _task_of(np.asarray(read_npz_xy(path, f"--data {path}")[1]))


def _peek(path: Path) -> Any:
    """The table at `path`: a CSV or parquet file whole (read whole anyway), the first
    `_PEEK_ROWS` rows of a JSON lines file or a datasets folder."""
    import pandas as pd

    suffix = path.suffix.lower()
    try:
        if path.is_dir():
            import datasets

            ds = datasets.load_from_disk(str(path))
            part = ds[next(iter(ds))] if isinstance(ds, datasets.DatasetDict) else ds
            return part.select(range(min(len(part), _PEEK_ROWS))).to_pandas()
        if suffix == ".csv":  # read as plan reads it: a malformed file is refused alike
            from mltrainer.data._csv import read_csv_frame

            return read_csv_frame(path, f"--data {path}")[0]
        if suffix in (".jsonl", ".json"):
            return pd.read_json(path, lines=suffix == ".jsonl", nrows=_PEEK_ROWS if
                                suffix == ".jsonl" else None)
        if suffix == ".parquet":
            return pd.read_parquet(path)
    except BadInputError:
        raise
    except Exception as exc:
        from mltrainer.data._sources import json_problem

        problem = json_problem(path) if suffix in (".jsonl", ".json") else None
        raise BadInputError(f"--data {path}: {problem or 'cannot read it'}" + (
            "" if problem else f" ({type(exc).__name__}: {exc})")) from None
    raise BadInputError(f"--data {path}: not a .csv, .npz, .jsonl, .parquet file or a folder",
                        hint="save the table as .csv (comma-separated UTF-8 with a header) or "
                             ".parquet, or give a folder of images (one sub-folder per class)")


def _task(col: Any) -> str:
    import numpy as np

    return _task_of(np.asarray(col.dropna()))


def _task_of(values: Any) -> str:
    import numpy as np

    if values.dtype.kind in "OUSb":
        return "classification"
    if values.dtype.kind in "iu" or np.all(np.mod(values, 1) == 0):
        return "classification" if len(np.unique(values)) <= _MAX_CLASSES else "regression"
    return "regression"


def _not_features(frame: Any) -> list[str]:
    """The text columns plan would refuse as categories (mostly distinct values: an identifier,
    a timestamp, free text): `data.drop` leaves them out."""
    from mltrainer.data._preprocess import refused_as_category

    return [str(name) for name in frame.columns if refused_as_category(frame[name])]


def _text_column(frame: Any) -> str | None:
    for name in frame.columns:
        col = frame[name].dropna()
        if len(col) and all(isinstance(v, str) for v in col[:100]):  # object or str dtype
            lengths = col.str.len()
            words = col.str.contains(" ").mean() > 0.5
            # long texts of words, or short ones that are mostly distinct (plan refuses such a
            # column as a category: "looks like an identifier or free text")
            if words and (lengths.mean() >= _TEXT_MIN_MEAN_CHARS or col.nunique() > len(col) / 2):
                return str(name)
    return None
