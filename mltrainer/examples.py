"""Example data written by `mlt init --example images|text`, from data that ships in a package
(no download, no generated noise):

- `images`: scikit-image's `lfw_subset` — 200 real 25x25 grayscale photos, 100 faces (from
  Labeled Faces in the Wild) and 100 non-face patches — written as PNG files into the
  ImageFolder layout `data/faces/{face,not_face}/NNN.png`.
- `text`: the 1990 US Census first-name lists that the `names` package ships — written as
  `data/names.jsonl` (`{"text": name, "label": "female"|"male"}`), names on both lists left
  out and the female list thinned evenly to the male list's size (a balanced task). The
  example also trains a WordPiece tokenizer on the names (labels unused) with `tokenizers`
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
    """A WordPiece tokenizer trained on the example's texts (`tokenizers`), saved as
    `transformers` saves one."""
    from mltrainer.models._vision import torchvision

    torchvision()  # transformers imports it
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
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


def _tiny_bert(folder: Path, vocab_size: int) -> None:
    from transformers import BertConfig

    BertConfig(vocab_size=vocab_size, hidden_size=64, num_hidden_layers=2,
               num_attention_heads=2, intermediate_size=128, max_position_embeddings=64,
               hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1).save_pretrained(
        str(folder))


def describe() -> dict[str, Any]:
    return {"images": "scikit-image lfw_subset (faces vs not faces)",
            "text": "names package: US Census first names (male vs female)"}
