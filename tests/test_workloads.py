"""Item data (issue 13): image folders, text, torch Datasets; the model zoo kinds; the engine's
DataLoader path (determinism and exact mid-epoch resume with workers); the bad inputs.

Tiny on purpose: 16 px images from scikit-image's lfw_subset, a 2-layer 16-wide BERT, a few
steps. Nothing reaches a hub (HF_HUB_OFFLINE=1)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from mltrainer.config import parse_config
from mltrainer.data import prepare_data, source_fingerprint
from mltrainer.engine import Trainer, determinism_probe, find_resume_checkpoint
from mltrainer.engine.checkpoint import load_checkpoint
from mltrainer.errors import ConfigError, DataError, TestSplitLockedError


class StopAt:
    def __init__(self, step: int) -> None:
        self.step = step

    def on_event(self, event: dict[str, Any]) -> str | None:
        return "test:stop" if event["type"] == "step" and event["step"] == self.step else None


def _faces(root: Path, n: int = 24, size: int = 16) -> Path:
    from PIL import Image
    from skimage.data import lfw_subset

    imgs = lfw_subset()
    folder = root / "faces"
    for i in range(n):
        cls, k = ("face", i) if i < n // 2 else ("not_face", 100 + i)
        (folder / cls).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.round(imgs[k] * 255).astype(np.uint8)).resize((size, size)).save(
            folder / cls / f"{i:03d}.png")
    return folder


def _cfg(source: str, model: dict[str, Any] | None = None, **data: Any) -> Any:
    raw = {"name": "t", "task": "classification", "seed": 3,
           "data": {"source": source, "split": {"val": 0.25, "test": 0.25}, **data},
           "model": model or {"kind": "cnn", "channels": [4], "hidden": [8]},
           "training": {"epochs": 2, "batch_size": 4, "lr": 0.01, "grad_stats_every": 0},
           "goal": {"metric": "accuracy", "target": 0.9}}
    return parse_config(raw)


def _text(root: Path) -> None:
    from mltrainer.examples import _tokenizer

    rows = [{"text": t, "label": lab} for t, lab in
            [("good fine great", "pos"), ("bad awful poor", "neg"), ("great good", "pos"),
             ("poor bad", "neg"), ("fine great", "pos"), ("awful bad", "neg"),
             ("good", "pos"), ("poor", "neg"), ("great", "pos"), ("awful", "neg"),
             ("fine", "pos"), ("bad", "neg")]]
    (root / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    _tokenizer([r["text"] for r in rows], root / "tok")
    from transformers import BertConfig

    BertConfig(vocab_size=200, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
               intermediate_size=32, max_position_embeddings=32).save_pretrained(root / "bert")


# -- sources --------------------------------------------------------------------------------


def test_imagefolder_splits_fingerprints_and_locks_test(tmp_path: Path) -> None:
    _faces(tmp_path)
    cfg = _cfg("imagefolder:faces", transforms={"channels": 1})
    bundle = prepare_data(cfg, tmp_path)
    assert bundle.spec.modality == "image" and bundle.spec.image_shape == (1, 16, 16)
    assert bundle.spec.class_labels == ["face", "not_face"]
    assert sum(bundle.split_info["sizes"].values()) == 24
    assert bundle.fingerprints["data"] == source_fingerprint(cfg, tmp_path)
    assert bundle.duplicates["train_test"] == 0
    with pytest.raises(TestSplitLockedError):
        bundle.test(phase="baseline")
    with pytest.raises(TestSplitLockedError, match="while no phase runs"):
        bundle.test(phase="finalize")  # the same lock as tables: asking as finalize is not it
    from mltrainer.data import running_phase

    with running_phase("finalize"):
        assert len(bundle.test(phase="finalize")) == bundle.split_info["sizes"]["test"]
    mean = bundle.split_info["preprocessing"]["mean"]
    assert len(mean) == 1 and 0.0 < mean[0] < 1.0  # measured on train
    assert list((tmp_path / ".mlt" / "cache").glob("manifest-*.json"))  # hashed once, cached
    again = prepare_data(cfg, tmp_path)
    assert again.fingerprints == bundle.fingerprints
    (tmp_path / "faces" / "face" / "000.png").write_bytes(
        (tmp_path / "faces" / "face" / "001.png").read_bytes())
    assert source_fingerprint(cfg, tmp_path) != bundle.fingerprints["data"]


def test_an_interrupted_first_hash_of_a_folder_keeps_the_files_it_finished(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The manifest cache was written once, at the end: a first look at a large folder
    stopped at 90 % (Ctrl-C, a crash) hashed everything again. Here the scan stops at a file
    that cannot be read, halfway; the files before it are in the cache, and the next look
    hashes only the rest."""
    import json

    from mltrainer.data import _manifest

    folder = tmp_path / "f"
    folder.mkdir()
    for i in range(6):
        (folder / f"{i}.bin").write_bytes(bytes([i]) * 100)
    (folder / "3.bin").unlink()
    (folder / "3.bin").symlink_to(folder / "missing")  # listed, but stat fails
    files = _manifest.list_files(folder, (".bin",))
    manifest = _manifest.Manifest(tmp_path, folder)
    with pytest.raises(DataError, match=r"3.bin is a symbolic link to .*missing, which does "
                                        "not exist"):
        manifest.refresh(files)
    kept = json.loads(_manifest.cache_file(tmp_path, folder).read_text())["files"]
    assert sorted(kept) == ["0.bin", "1.bin", "2.bin"]
    (folder / "3.bin").unlink()
    (folder / "3.bin").write_bytes(b"\x03" * 100)
    hashed: list[str] = []
    real = _manifest.sha256_file
    monkeypatch.setattr(_manifest, "sha256_file",  # counts the files hashed, hashes them
                        lambda path: hashed.append(path.name) or real(path))
    again = _manifest.Manifest(tmp_path, folder)
    again.refresh(files)
    assert hashed == ["3.bin", "4.bin", "5.bin"]
    again.save()
    assert sorted(json.loads(_manifest.cache_file(tmp_path, folder).read_text())["files"]) == (
        files)


def test_text_source_tokenises_and_pads_per_batch(tmp_path: Path) -> None:
    _text(tmp_path)
    cfg = _cfg("d.jsonl", {"kind": "hf:bert", "tokenizer": "tok", "max_length": 8},
               text_column="text", target="label")
    bundle = prepare_data(cfg, tmp_path)
    assert bundle.spec.modality == "text" and bundle.spec.class_labels == ["neg", "pos"]
    with pytest.raises(TestSplitLockedError):
        bundle.test(phase="plan")
    samples = [(bundle.pipeline.load(t, False), 0) for t in ("good", "good fine great")]
    inputs, _ = bundle.pipeline.collate(samples)
    assert inputs["input_ids"].shape == (2, 5)  # padded to the longest in the batch


def test_python_dataset_is_split_by_index_and_a_given_split_is_kept(tmp_path: Path) -> None:
    (tmp_path / "myds.py").write_text(
        "import torch\n"
        "from torch.utils.data import TensorDataset\n"
        "def one():\n"
        "    g = torch.Generator().manual_seed(0)\n"
        "    X = torch.randn(40, 6, generator=g)\n"
        "    return TensorDataset(X, (X[:, 0] > 0).long())\n"
        "def three():\n"
        "    ds = one()\n"
        "    sub = torch.utils.data.Subset\n"
        "    return {'train': sub(ds, range(24)), 'val': sub(ds, range(24, 32)),\n"
        "            'test': sub(ds, range(30, 40))}\n"
        "def named_as_hf():\n"
        "    ds = one()\n"
        "    sub = torch.utils.data.Subset\n"
        "    return {'train': sub(ds, range(24)), 'validation': sub(ds, range(24, 32)),\n"
        "            'test': sub(ds, range(32, 40))}\n"
        "def bad():\n"
        "    return torch.utils.data.TensorDataset(torch.zeros(4, 2, dtype=torch.long),\n"
        "                                          torch.zeros(4))\n")
    one = prepare_data(_cfg("python:myds:one", {"kind": "mlp", "hidden": [8]}), tmp_path)
    assert one.split_info["stratified"] and sum(one.split_info["sizes"].values()) == 40
    with pytest.raises(TestSplitLockedError):
        one.test(phase="optimize")
    three = prepare_data(_cfg("python:myds:three", {"kind": "mlp", "hidden": [8]}), tmp_path)
    assert three.split_info["sizes"] == {"train": 24, "val": 8, "test": 10}
    assert three.duplicates["val_test"] == 2  # items 30, 31 are in both: found by content
    # an item of a given split is named by its index in its own Dataset ('item 27' before)
    (tmp_path / "gapped.py").write_text(
        "import torch\n"
        "class DS(torch.utils.data.Dataset):\n"
        "    def __init__(self, n, bad=None): self.n, self.bad = n, bad\n"
        "    def __len__(self): return self.n\n"
        "    def __getitem__(self, i):\n"
        "        if i == self.bad: raise KeyError('no such record')\n"
        "        return torch.full((3,), float(i)), i % 2\n"
        "def load(): return {'train': DS(24), 'val': DS(8, bad=3), 'test': DS(8)}\n")
    with pytest.raises(DataError, match=r"python:gapped:load: val item 3 cannot be read "
                                        r"\(KeyError: 'no such record'\)"):
        prepare_data(_cfg("python:gapped:load", {"kind": "mlp"}), tmp_path)
    # "validation", as a DatasetDict names it (was: "the returned dict has no Dataset under
    # 'val'")
    named = prepare_data(_cfg("python:myds:named_as_hf", {"kind": "mlp"}), tmp_path)
    assert named.split_info["sizes"] == {"train": 24, "val": 8, "test": 8}
    with pytest.raises(DataError, match="item 0's input is a Tensor of torch.int64"):
        prepare_data(_cfg("python:myds:bad", {"kind": "mlp"}), tmp_path)


@pytest.mark.parametrize(("fn", "pattern"), [
    # the default collate would crash training on the first mixed batch
    ("ragged", r"item 1's input has shape \(3,\) but item 0's has \(4,\); without a "
               "collate_fn"),
    ("nan_input", r"item 5's input holds 1 non-finite value"),
    ("nan_target", r"item 2's target is nan \(float\), not a finite number"),
    # these were unexpected failures (exit 1) or a misleading line
    ("negative_len", r"the Dataset's length cannot be read \(len\(\) raised ValueError: "
                     r"__len__\(\) should return >= 0\)"),
    ("float_len", r"length cannot be read \(len\(\) raised TypeError: 'float' object"),
    ("iterable", r"the Dataset is an IterableDataset \(no length, no index\)"),
    ("long_len", r"item 40 cannot be read \(IndexError: .*\); __len__ says there are 45"),
    ("one_class", r"every item has label 0; a classifier needs at least 2 classes"),
    ("from_one", r"the labels run from 1 to 2 but no item has label 0 \(1 of 3 class "
                 r"indices unused\)"),
    ("scalar", r"item 0's input is a single number \(a 0-d tensor\)"),
    ("picture", r"item 0's input is a Image, not a float tensor"),
])
def test_a_dataset_whose_items_cannot_train_is_refused_naming_the_item(
        tmp_path: Path, fn: str, pattern: str) -> None:
    (tmp_path / "badds.py").write_text(
        "import torch\n"
        "class DS(torch.utils.data.Dataset):\n"
        "    def __init__(self, kind): self.kind = kind\n"
        "    def __len__(self): return 40\n"
        "    def __getitem__(self, i):\n"
        "        if i >= 40: raise IndexError(f'index {i} is out of range')\n"
        "        x = torch.full((4,), float(i))\n"
        "        if self.kind == 'ragged' and i % 2: x = x[:3]\n"
        "        if self.kind == 'nan_input' and i == 5: x[1] = float('nan')\n"
        "        if self.kind == 'scalar': x = x[0]\n"
        "        if self.kind == 'picture': x = __import__('PIL.Image').Image.new('L', (4, 4))\n"
        "        y = float('nan') if self.kind == 'nan_target' and i == 2 else float(i)\n"
        "        if self.kind == 'one_class': return x, 0\n"
        "        if self.kind == 'from_one': return x, i % 2 + 1\n"
        "        return x, (i % 2 if self.kind != 'nan_target' else y)\n"
        "class Lens(DS):\n"
        "    def __len__(self):\n"
        "        return {'negative_len': -1, 'float_len': 40.0, 'long_len': 45}[self.kind]\n"
        "class Stream(torch.utils.data.IterableDataset):\n"
        "    def __iter__(self): return iter([])\n"
        "def iterable(): return Stream()\n"
        + "".join(f"def {k}(): return Lens({k!r})\n" for k in ("negative_len", "float_len",
                                                              "long_len"))
        + "".join(f"def {k}(): return DS({k!r})\n" for k in (
            "ragged", "nan_input", "nan_target", "one_class", "from_one", "scalar", "picture")))
    cfg = _cfg(f"python:badds:{fn}", {"kind": "mlp", "hidden": [8]})
    if fn == "nan_target":
        raw = cfg.model_dump(mode="json")
        raw.update(task="regression", goal={"metric": "rmse", "target": 1.0})
        cfg = parse_config(raw)
    with pytest.raises(DataError, match=pattern) as info:
        prepare_data(cfg, tmp_path)
    assert "\n" not in info.value.message


def test_a_collate_fn_decides_the_models_input_shape(tmp_path: Path) -> None:
    """Items of lengths 2..6 with a collate_fn: the model takes what the collate_fn makes. A
    collate_fn padding to 10 trains an mlp of 10 inputs (it was built for the first raw item's
    length and crashed, exit 1); one padding to each batch's longest makes batches of many
    shapes, which an mlp cannot take: one line at plan (it was an exit 1 crash mid-training);
    a python: model may take them."""
    from mltrainer.models import build_model

    (tmp_path / "varlen.py").write_text(
        "import torch\n"
        "from torch.nn.utils.rnn import pad_sequence\n"
        "class DS(torch.utils.data.Dataset):\n"
        "    def __len__(self): return 40\n"
        "    def __getitem__(self, i): return torch.full((2 + i % 5,), float(i % 2)), i % 2\n"
        "def to_ten(batch):\n"
        "    out = torch.zeros(len(batch), 10)\n"
        "    for k, (x, _) in enumerate(batch): out[k, :len(x)] = x\n"
        "    return out, torch.tensor([y for _, y in batch])\n"
        "def longest(batch):\n"
        "    return (pad_sequence([x for x, _ in batch], batch_first=True),\n"
        "            torch.tensor([y for _, y in batch]))\n"
        "def fixed():\n"
        "    ds = DS(); ds.collate_fn = to_ten; return ds\n"
        "def ragged():\n"
        "    ds = DS(); ds.collate_fn = longest; return ds\n")
    cfg = _cfg("python:varlen:fixed", {"kind": "mlp", "hidden": [8]})
    bundle = prepare_data(cfg, tmp_path)
    assert bundle.spec.n_features == 10
    build_model(cfg.model, bundle.spec, root=tmp_path)
    Trainer(cfg, bundle, tmp_path / "runs" / "x", background_checkpoints=False).fit()
    with pytest.raises(DataError, match=r"the collate_fn makes inputs of shape \(2,\) for some "
                                        r"items and \(3,\) for others, but model.kind mlp "
                                        "takes one shape") as info:
        prepare_data(_cfg("python:varlen:ragged", {"kind": "mlp"}), tmp_path)
    assert "\n" not in info.value.message
    prepare_data(_cfg("python:varlen:ragged", {"kind": "python:varlen:anything"}), tmp_path)


def test_a_hugging_face_image_dataset_is_named_as_such(tmp_path: Path) -> None:
    """A datasets folder of images was 'no column text (data.text_column)', and a python:
    function returning a datasets.Dataset 'must return (X, y) arrays or a DataFrame': both
    now say what the data is and the two ways mlt reads it."""
    import datasets
    from PIL import Image

    feats = datasets.Features({"image": datasets.Image(),
                               "label": datasets.ClassLabel(names=["a", "b"])})
    ds = datasets.Dataset.from_dict({"image": [Image.new("L", (4, 4), i) for i in range(8)],
                                     "label": [i % 2 for i in range(8)]}, features=feats)
    ds.save_to_disk(str(tmp_path / "saved"))
    with pytest.raises(DataError, match=r"column 'image' holds images \(datasets.Image\)") as e:
        prepare_data(_cfg("text:saved"), tmp_path)
    assert "imagefolder:" in e.value.hint
    (tmp_path / "hfds.py").write_text(
        "import datasets\n"
        f"def load(): return datasets.load_from_disk({str(tmp_path / 'saved')!r})\n")
    with pytest.raises(DataError, match=r"load\(\) returned a Hugging Face Dataset, which is "
                                        r"not a torch Dataset"):
        prepare_data(_cfg("python:hfds:load"), tmp_path)


def test_a_projects_own_torchvision_import_works_in_a_fresh_process(tmp_path: Path) -> None:
    """A Dataset module and a model factory that import torchvision themselves (a FakeData
    with transforms v2, a torchvision model): on a CPU torch with PyPI's CUDA-built wheel the
    first import failed ('operator torchvision::nms does not exist') unless mlt had imported
    it first, so a Dataset plan refused as bad data. A fresh process: nothing imported yet."""
    import subprocess
    import sys

    (tmp_path / "tvdata.py").write_text(
        "import torch\n"
        "from torchvision import datasets\n"
        "from torchvision.transforms import v2\n"
        "def load():\n"
        "    tf = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])\n"
        "    return datasets.FakeData(size=24, image_size=(3, 8, 8), num_classes=2, "
        "transform=tf)\n")
    (tmp_path / "tvmodel.py").write_text(
        "import torchvision\n"
        "def make(inp, out):\n"
        "    return torchvision.models.resnet18(num_classes=out['n_outputs'])\n")
    raw = _cfg("python:tvdata:load", {"kind": "python:tvmodel:make"}).model_dump(mode="json")
    script = (
        "import sys; from pathlib import Path\n"
        "from mltrainer.config import parse_config\n"
        "from mltrainer.data import prepare_data\n"
        "from mltrainer.models import build_model\n"
        f"cfg = parse_config({raw!r})\n"
        "root = Path(sys.argv[1])\n"
        "bundle = prepare_data(cfg, root)\n"
        "model = build_model(cfg.model, bundle.spec, root=root)\n"
        "print(bundle.spec.image_shape, type(model).__name__)\n")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["(3,", "8,", "8)", "ResNet"]


@pytest.mark.parametrize("dtype", ["float64", "float16", "uint8"])
def test_a_dataset_of_another_accepted_dtype_trains_as_float32(tmp_path: Path, dtype: str
                                                               ) -> None:
    """plan accepts float and uint8 items; a float64 Dataset (torch.tensor of a NumPy array,
    the commonest kind) crashed plan's probe with "mat1 and mat2 must have the same dtype"."""
    from mltrainer.engine import determinism_probe

    (tmp_path / "dsd.py").write_text(
        "import torch\n"
        "from torch.utils.data import TensorDataset\n"
        "def load():\n"
        "    g = torch.Generator().manual_seed(0)\n"
        "    X = torch.rand(40, 6, generator=g) * 9\n"
        f"    return TensorDataset(X.to(torch.{dtype}), (X[:, 0] > 4.5).long())\n")
    cfg = _cfg("python:dsd:load", {"kind": "mlp", "hidden": [8]})
    bundle = prepare_data(cfg, tmp_path)
    inputs, _ = bundle.pipeline.collate([bundle.train.items.dataset[i] for i in range(3)])
    assert inputs.dtype == torch.float32
    evidence = determinism_probe(cfg, bundle, steps=3)
    assert evidence["reproduced"] is True, evidence


def test_a_dataset_drawing_random_numbers_hashes_the_same_in_every_command(tmp_path: Path
                                                                          ) -> None:
    """A Dataset adding noise in __getitem__ (numpy, torch and python randomness) had new
    split fingerprints on every read: `mlt plan` passed, then train-baseline refused ("the
    data no longer matches what mlt plan recorded"), and re-planning could never fix it."""
    import random

    (tmp_path / "noisy.py").write_text(
        "import random\n"
        "import numpy as np\n"
        "import torch\n"
        "class Noisy(torch.utils.data.Dataset):\n"
        "    def __len__(self): return 40\n"
        "    def __getitem__(self, i):\n"
        "        x = torch.full((4,), float(i)) + torch.rand(4)\n"
        "        x[0] += float(np.random.normal()) + random.random()\n"
        "        return x, i % 2\n"
        "def load(): return Noisy()\n")
    cfg = _cfg("python:noisy:load", {"kind": "mlp", "hidden": [8]})
    first = prepare_data(cfg, tmp_path).fingerprints

    def draws() -> tuple[float, float, float]:
        return random.random(), float(np.random.random()), float(torch.rand(1))

    random.seed(7), np.random.seed(7), torch.manual_seed(7)
    expected = draws()
    random.seed(7), np.random.seed(7), torch.manual_seed(7)
    assert prepare_data(cfg, tmp_path).fingerprints == first
    assert draws() == expected  # the reads leave the caller's random numbers where they were


@pytest.mark.parametrize("kind", ["cnn", "torchvision:resnet18", "timm:resnet10t"])
def test_a_dataset_of_c_h_w_items_feeds_the_image_models(tmp_path: Path, kind: str) -> None:
    """A Dataset of 1-channel (1, 8, 8) tensors: cnn refused it ("the data has no
    image_shape"), and torchvision/timm built a 3-channel model that crashed plan's probe
    (exit 1, "expected input to have 3 channels")."""
    from mltrainer.engine import determinism_probe

    (tmp_path / "grey.py").write_text(
        "import torch\n"
        "from torch.utils.data import TensorDataset\n"
        "def load():\n"
        "    g = torch.Generator().manual_seed(0)\n"
        "    X = torch.rand(40, 1, 8, 8, generator=g)\n"
        "    return TensorDataset(X, (X.mean((1, 2, 3)) > 0.5).long())\n")
    model = {"kind": kind, **({"channels": [4], "hidden": [8]} if kind == "cnn" else {})}
    cfg = _cfg("python:grey:load", model)
    bundle = prepare_data(cfg, tmp_path)
    assert bundle.spec.modality == "tensor" and bundle.spec.image_shape == (1, 8, 8)
    assert determinism_probe(cfg, bundle, steps=2)["reproduced"] is True


def test_files_an_image_folder_does_not_read_are_counted_not_dropped_silently(
        tmp_path: Path) -> None:
    """A `.gif` picture, a stray note, `.DS_Store` and a top-level README are not trained on;
    the data record counts them by reason and names the first, and nothing else changes."""
    _faces(tmp_path)
    cfg = _cfg("imagefolder:faces", transforms={"channels": 1})
    clean = prepare_data(cfg, tmp_path)
    assert clean.split_info["skipped_files"] == {"count": 0, "by_reason": {}, "examples": []}
    faces = tmp_path / "faces"
    (faces / "face" / "x.gif").write_bytes((faces / "face" / "000.png").read_bytes())
    (faces / "face" / ".DS_Store").write_bytes(b"\0")
    (faces / ".git").mkdir()
    (faces / ".git" / "HEAD").write_text("ref")
    (faces / "not_face" / "notes.txt").write_text("taken in 2019")
    (faces / "README.md").write_text("faces")
    (faces / "stray.png").write_bytes((faces / "face" / "000.png").read_bytes())
    bundle = prepare_data(cfg, tmp_path)
    assert bundle.split_info["skipped_files"] == {
        "count": 6, "by_reason": {"not an image": 3, "hidden": 2, "outside a class folder": 1},
        "examples": ["README.md", "stray.png", ".git/HEAD", "face/.DS_Store", "face/x.gif"]}
    assert bundle.fingerprints == clean.fingerprints  # what is read is what it was


def test_an_image_in_two_class_folders_is_counted_as_a_conflicting_label(tmp_path: Path
                                                                         ) -> None:
    """The same picture filed under two classes (label noise) is counted as a table's identical
    rows with two targets are; the evidence said 0 for item data whatever it held."""
    folder = _faces(tmp_path)
    cfg = _cfg("imagefolder:faces", transforms={"channels": 1})
    assert prepare_data(cfg, tmp_path).duplicates["conflicting_labels"] == 0
    (folder / "not_face" / "copy.png").write_bytes((folder / "face" / "000.png").read_bytes())
    dup = prepare_data(cfg, tmp_path).duplicates
    assert dup["conflicting_labels"] == 1 and dup["within_data"] == 1


def test_an_image_folder_holds_the_files_torchvisions_imagefolder_reads() -> None:
    """The layout is torchvision's ImageFolder: a folder of .tif (or .ppm/.pgm) images was
    "a class folder with no images"."""
    from mltrainer.models._vision import torchvision
    from mltrainer.runtime import IMAGE_SUFFIXES

    torchvision()
    from torchvision.datasets.folder import IMG_EXTENSIONS

    assert sorted(IMAGE_SUFFIXES) == sorted(IMG_EXTENSIONS)


def test_an_image_folder_follows_links_as_torchvisions_imagefolder_does(tmp_path: Path) -> None:
    """A class folder that is a symbolic link to where its images live is read (it was 'a
    class folder with no images'), the same files torchvision's ImageFolder reads; a link back
    to a folder above lists nothing twice and ends; a link to nothing is one line naming it
    (it was an unexpected failure, exit 1)."""
    from mltrainer.models._vision import torchvision

    _faces(tmp_path / "store")
    folder = tmp_path / "faces"
    folder.mkdir()
    (folder / "face").symlink_to(tmp_path / "store" / "faces" / "face")
    (folder / "not_face").symlink_to(tmp_path / "store" / "faces" / "not_face")
    cfg = _cfg("imagefolder:faces", transforms={"channels": 1})
    bundle = prepare_data(cfg, tmp_path)
    tv = torchvision().datasets.ImageFolder(str(folder))
    ours = sorted(bundle.train.items.dataset[i] for i in range(bundle.split_info["files"]))
    assert ours == sorted((p, y) for p, y in tv.samples) and len(ours) == 24
    (tmp_path / "store" / "faces" / "face" / "up").symlink_to(folder)
    assert prepare_data(cfg, tmp_path).fingerprints == bundle.fingerprints
    (tmp_path / "store" / "faces" / "face" / "gone.png").symlink_to(tmp_path / "nothing.png")
    with pytest.raises(DataError, match=r"gone.png is a symbolic link to .*nothing.png, which "
                                        "does not exist") as info:
        prepare_data(cfg, tmp_path)
    assert "\n" not in info.value.message


def test_two_class_folders_that_are_one_folder_are_refused_by_name(tmp_path: Path) -> None:
    """A class folder linking to another class's folder: the walk reads each real folder once,
    so the second was 'a class folder with no images' (it has them all); it is named as the
    same folder as the first, whose images cannot be in two classes."""
    folder = _faces(tmp_path)
    (folder / "zface").symlink_to(folder / "face")
    with pytest.raises(DataError, match=r"class folders 'face' and 'zface' are the same "
                                        r"folder \(.*faces/face\)") as info:
        prepare_data(_cfg("imagefolder:faces", transforms={"channels": 1}), tmp_path)
    assert "no images" not in info.value.message


# -- models ---------------------------------------------------------------------------------

SPEC_IMAGE = dict(task="classification", n_features=3 * 32 * 32, n_classes=3, feature_names=[],
                  image_shape=(3, 32, 32), class_labels=[0, 1, 2], modality="image")


@pytest.mark.parametrize("kind,params", [
    ("cnn", {}), ("mlp", {}), ("torchvision:resnet18", {}), ("timm:resnet10t", {}),
    ("timm:vit_tiny_patch16_224", {"img_size": 32, "depth": 1}),
])
def test_every_image_model_kind_outputs_one_logit_per_class(kind: str, params: Any) -> None:
    from mltrainer.config import ModelConfig
    from mltrainer.data import DataSpec
    from mltrainer.models import build_model, head_parameters

    spec = DataSpec(**SPEC_IMAGE)
    model = build_model(ModelConfig(kind=kind, params=params, hidden=[8], channels=[4]), spec)
    assert model.eval()(torch.rand(2, 3, 32, 32)).shape == (2, 3)
    assert head_parameters(model, spec)  # model.head_lr finds the output layer


@pytest.mark.parametrize(("kind", "first_conv"), [("torchvision:resnet18", "conv1"),
                                                  ("timm:resnet10t", "conv1.0")])
def test_an_image_model_takes_grayscale_and_keeps_loaded_weights(
        tmp_path: Path, kind: str, first_conv: str) -> None:
    """torchvision models are built for 3 channels; a 1-channel image folder rebuilt the input
    convolution (plan used to crash with a channel mismatch), folding loaded RGB kernels. timm
    builds 1 channel itself, and loaded RGB kernels are folded as timm folds its own (they were
    skipped as 'shapes differ': the first convolution stayed at its fresh init, silently)."""
    from mltrainer.config import ModelConfig
    from mltrainer.data import DataSpec
    from mltrainer.models import build_model

    rgb = build_model(ModelConfig(kind=kind), DataSpec(**SPEC_IMAGE))
    torch.save(rgb.state_dict(), tmp_path / "w.pt")
    gray = DataSpec(**{**SPEC_IMAGE, "n_features": 32 * 32, "image_shape": (1, 32, 32)})
    model = build_model(ModelConfig(kind=kind, weights="w.pt"), gray, root=tmp_path)
    assert model.eval()(torch.rand(2, 1, 32, 32)).shape == (2, 3)
    conv, rgb_conv = model.get_submodule(first_conv), rgb.get_submodule(first_conv)
    assert torch.allclose(conv.weight, rgb_conv.weight.sum(1, keepdim=True), atol=1e-6)
    x = torch.rand(2, 1, 32, 32)  # a grey image answers as its 3-channel copy did
    assert torch.allclose(conv(x), rgb_conv(x.expand(-1, 3, -1, -1)), atol=1e-5)


@pytest.mark.parametrize("kind,params,spec,match", [
    ("timm:vit_tiny_patch16_224", {"depth": 1}, SPEC_IMAGE,
     r"cannot take the data's inputs of shape \(3, 32, 32\): .*224"),
    ("torchvision:resnet18", {}, dict(task="classification", n_features=5, n_classes=2,
                                      feature_names=list("abcde"), class_labels=[0, 1]),
     r"cannot take the data's inputs of shape \(5,\)"),
])
def test_a_model_that_cannot_take_the_data_is_a_config_error(kind: str, params: Any,
                                                              spec: Any, match: str) -> None:
    """Built, then one eval forward on two zero rows of the data's shape: a ViT built for
    224 px given 32 px images used to crash `mlt plan` with an AssertionError (exit 1)."""
    from mltrainer.config import ModelConfig
    from mltrainer.data import DataSpec
    from mltrainer.models import build_model

    with pytest.raises(ConfigError, match=match) as info:
        build_model(ModelConfig(kind=kind, params=params), DataSpec(**spec))
    assert info.value.exit_code == 2 and "img_size" in (info.value.hint or "")
    fits = build_model(ModelConfig(kind=kind, params={**params, "img_size": 32}),
                       DataSpec(**SPEC_IMAGE)) if kind.startswith("timm") else None
    assert fits is None or fits.training  # the probe leaves the model in train mode


@pytest.mark.parametrize("kind,params,match", [
    ("torchvision:resnet18", {"weights": "DEFAULT"},  # a download, and an exit 1 crash before
     r"model.params.weights for torchvision:resnet18: mlt sets it itself \(weights are never "
     "downloaded"),
    ("torchvision:resnet18", {"num_classes": 1000}, r"model.params.num_classes .*mlt sets it "
                                                    r"itself \(the number of outputs comes"),
    ("torchvision:resnet18", {"foo": 1}, r"model.params for torchvision:resnet18: TypeError: "
                                         r".*unexpected keyword argument 'foo'"),
    ("timm:resnet10t", {"pretrained": True}, r"model.params.pretrained for timm:resnet10t: "
                                             "mlt sets it itself"),
    ("timm:resnet10t", {"in_chans": 3}, r"model.params.in_chans .*data.transforms.channels"),
    ("hf:bert", {"num_labels": 5}, r"model.params.num_labels for hf:bert: mlt sets it itself"),
])
def test_model_params_mlt_sets_itself_or_the_builder_refuses_are_config_errors(
        tmp_path: Path, kind: str, params: Any, match: str) -> None:
    from mltrainer.config import ModelConfig
    from mltrainer.data import DataSpec
    from mltrainer.models import build_model

    _text(tmp_path)
    spec = SPEC_IMAGE if not kind.startswith("hf:") else dict(
        task="classification", n_features=0, n_classes=2, feature_names=[], class_labels=[0, 1],
        modality="text")
    with pytest.raises(ConfigError, match=match) as info:
        build_model(ModelConfig(kind=kind, params=params), DataSpec(**spec), root=tmp_path)
    assert info.value.exit_code == 2 and "\n" not in info.value.message


def test_a_model_must_return_logits_in_training_mode_too_and_text_is_checked(
        tmp_path: Path) -> None:
    """The fit check runs the model in eval and in training mode: googlenet's training output
    (a GoogLeNetOutputs with aux logits) crashed plan (exit 1); a text model's logits were not
    checked at all (5 logits for 2 classes trained silently). The check leaves batch-norm
    statistics and the random numbers as they were."""
    from torch import nn

    from mltrainer.config import ModelConfig
    from mltrainer.data import DataSpec
    from mltrainer.models import build_model
    from mltrainer.models._base import check_fits_data

    image = DataSpec(**SPEC_IMAGE)
    with pytest.raises(ConfigError, match=r"returns a GoogLeNetOutputs in training mode but "
                                          "mlt's loop takes a tensor of class logits") as info:
        build_model(ModelConfig(kind="torchvision:googlenet",
                                params={"init_weights": False}), image)
    assert "aux_logits: false" in (info.value.hint or "")
    build_model(ModelConfig(kind="torchvision:googlenet",
                            params={"init_weights": False, "aux_logits": False}), image)
    (tmp_path / "textfac.py").write_text(
        "from torch import nn\n"
        "class Bag(nn.Module):\n"
        "    def __init__(self, n):\n"
        "        super().__init__()\n"
        "        self.emb, self.out = nn.EmbeddingBag(50, 4), nn.Linear(4, n)\n"
        "    def forward(self, batch): return self.out(self.emb(batch['input_ids']))\n"
        "def wrong(inp, out): return Bag(out['n_outputs'] + 3)\n"
        "def right(inp, out): return Bag(out['n_outputs'])\n")
    text = DataSpec(task="classification", n_features=0, n_classes=2, feature_names=[],
                    class_labels=["neg", "pos"], modality="text")
    with pytest.raises(ConfigError, match=r"returns output of shape \(2, 5\) for 2 rows but "
                                          r"the data needs \(2, 2\)"):
        build_model(ModelConfig(kind="python:textfac:wrong"), text, root=tmp_path)
    build_model(ModelConfig(kind="python:textfac:right"), text, root=tmp_path)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 8), nn.BatchNorm1d(8),
                          nn.Dropout(0.5), nn.Linear(8, 3))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    check_fits_data(model, image, "python:x:y")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(rng, torch.get_rng_state()) and model.training


def test_a_grey_image_to_an_hf_vision_model_names_the_channels_param(tmp_path: Path) -> None:
    """hf: vision models take the channels their config says: 1-channel images name
    data.transforms.channels and model.params.num_channels (the hint spoke of sizes only)."""
    from transformers import ViTConfig

    from mltrainer.config import ModelConfig
    from mltrainer.data import DataSpec
    from mltrainer.models import build_model

    ViTConfig(image_size=16, patch_size=8, hidden_size=16, num_hidden_layers=1,
              num_attention_heads=2, intermediate_size=32).save_pretrained(tmp_path / "vit")
    grey = DataSpec(**{**SPEC_IMAGE, "image_shape": (1, 16, 16), "n_features": 256})
    with pytest.raises(ConfigError, match=r"cannot take the data's inputs of shape "
                                          r"\(1, 16, 16\)") as info:
        build_model(ModelConfig(kind="hf:vit"), grey, root=tmp_path)
    assert "data.transforms.channels" in info.value.hint and "num_channels" in info.value.hint
    build_model(ModelConfig(kind="hf:vit", params={"num_channels": 1}), grey, root=tmp_path)


def test_unknown_timm_name_suggests_close_names() -> None:
    from mltrainer.config import ModelConfig
    from mltrainer.data import DataSpec
    from mltrainer.models import build_model

    with pytest.raises(ConfigError, match=r"did you mean 'timm:resnet10t'"):
        build_model(ModelConfig(kind="timm:resnet10"), DataSpec(**SPEC_IMAGE))
    # a hub name is a download: said so, with the architecture to use instead (it was 'no such
    # model in timm')
    with pytest.raises(ConfigError, match=r"names weights to fetch .* mlt never downloads") as e:
        build_model(ModelConfig(kind="timm:hf-hub:timm/resnet10t.c3_in1k"),
                    DataSpec(**SPEC_IMAGE))
    assert "timm:resnet10t" in (e.value.hint or "")


def test_missing_weights_file_and_freeze_typo_are_config_errors(tmp_path: Path) -> None:
    from mltrainer.config import ModelConfig
    from mltrainer.data import DataSpec
    from mltrainer.models import build_model

    spec = DataSpec(**SPEC_IMAGE)
    with pytest.raises(ConfigError, match="model.weights 'w.pt': no such file"):
        build_model(ModelConfig(kind="torchvision:resnet18", weights="w.pt"), spec,
                    root=tmp_path)
    model = build_model(ModelConfig(kind="torchvision:resnet18"), spec)
    torch.save(model.state_dict(), tmp_path / "w.pt")
    frozen = build_model(ModelConfig(kind="torchvision:resnet18", weights="w.pt",
                                     freeze=["conv1", "layer1"]), spec, root=tmp_path)
    assert torch.equal(frozen.conv1.weight, model.conv1.weight)
    assert not frozen.layer1[0].conv1.weight.requires_grad and frozen.fc.weight.requires_grad
    with pytest.raises(ConfigError, match="did you mean 'layer1'"):
        build_model(ModelConfig(kind="torchvision:resnet18", freeze=["layr1"]), spec)
    (tmp_path / "junk.pt").write_bytes(b"not a pickle at all")
    with pytest.raises(ConfigError, match="'junk.pt': not a weights file mlt can read") as info:
        build_model(ModelConfig(kind="torchvision:resnet18", weights="junk.pt"), spec,
                    root=tmp_path)
    assert "torch.save(model.state_dict()" in info.value.hint


@pytest.mark.parametrize("kind", ["mlp", "cnn", "python:fac:make"])
def test_model_weights_are_loaded_for_every_kind_never_ignored(tmp_path: Path, kind: str
                                                               ) -> None:
    """model.weights was read only by torchvision/timm/hf: on mlp, cnn or a python: factory a
    missing file passed plan and the weights were silently not used."""
    from mltrainer.config import ModelConfig
    from mltrainer.data import DataSpec
    from mltrainer.models import build_model

    (tmp_path / "fac.py").write_text(
        "import torch\n"
        "def make(input_spec, output_spec):\n"
        "    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(\n"
        "        input_spec['n_features'], output_spec['n_outputs']))\n")
    spec = DataSpec(task="classification", n_features=64, n_classes=3, feature_names=[],
                    image_shape=(1, 8, 8), class_labels=[0, 1, 2])
    with pytest.raises(ConfigError, match="model.weights 'w.pt': no such file"):
        build_model(ModelConfig(kind=kind, weights="w.pt", hidden=[8], channels=[4]), spec,
                    root=tmp_path)
    torch.manual_seed(1)
    source = build_model(ModelConfig(kind=kind, hidden=[8], channels=[4]), spec, root=tmp_path)
    torch.save({"model": source.state_dict()}, tmp_path / "w.pt")  # an mlt checkpoint's shape
    torch.manual_seed(2)
    loaded = build_model(ModelConfig(kind=kind, weights="w.pt", hidden=[8], channels=[4]), spec,
                         root=tmp_path)
    for (name, a), b in zip(source.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name


# -- engine: workers, determinism, resume ----------------------------------------------------


def test_workers_change_nothing_and_resume_mid_epoch_is_exact(tmp_path: Path) -> None:
    _faces(tmp_path)
    base = {"transforms": {"channels": 1, "augment": {"hflip": 0.5, "rotation": 10}}}
    cfg0 = _cfg("imagefolder:faces", **base)
    cfg2 = _cfg("imagefolder:faces", loader={"num_workers": 2}, **base)
    b0, b2 = prepare_data(cfg0, tmp_path), prepare_data(cfg2, tmp_path)
    probe = determinism_probe(cfg2, b2, steps=4, root=tmp_path)
    assert probe["identical"], probe
    assert probe["params_sha256"][0] == determinism_probe(cfg0, b0, steps=4)["params_sha256"][0]

    whole = Trainer(cfg2, b2, tmp_path / "runs" / "whole", background_checkpoints=False).fit()
    run = tmp_path / "runs" / "split"
    Trainer(cfg2, b2, run, subscribers=[StopAt(4)], background_checkpoints=False).fit()
    ckpt = find_resume_checkpoint(run)
    assert load_checkpoint(ckpt)["position"] == 1  # 3 steps an epoch: stopped inside epoch 2
    again = Trainer(cfg2, b2, run, background_checkpoints=False).fit(resume=ckpt)
    a = load_checkpoint(Path(whole.checkpoints["last"]))["model"]
    b = load_checkpoint(Path(again.checkpoints["last"]))["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert again.history == whole.history


def test_evaluation_inputs_are_kept_in_memory_within_the_budget(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop's val and train-subset passes read their items from disk once: later epochs
    take the kept batches (a prefix, as far as KEEP_EVAL_MB allows) and give the same outputs;
    items past the budget are read again. Item data's train metrics use as many items as val."""
    from mltrainer.engine import loading
    from mltrainer.engine.loop import train_subset
    from mltrainer.models import build_model

    _faces(tmp_path)
    bundle = prepare_data(_cfg("imagefolder:faces", transforms={"channels": 1}), tmp_path)
    assert len(train_subset(3000, 6, 0, items=True)) == 6
    assert len(train_subset(3000, 6, 0)) == 2048  # table rows: the floor stays
    torch.manual_seed(0)
    model = build_model(_cfg("imagefolder:faces").model, bundle.spec)
    batch_bytes = 2 * 16 * 16 * 4  # two 1x16x16 float32 images
    monkeypatch.setattr(loading, "KEEP_EVAL_MB", 1.5 * batch_bytes / 2**20)
    monkeypatch.setattr(loading, "_EVAL_READERS", {})  # no other split's batches in the budget
    first = loading.forward_split(model, bundle.val, 2, keep=True)
    paths = [Path(bundle.val.items.dataset[int(i)][0]) for i in bundle.val.indices]
    for path in paths[:2]:  # the kept batch's files: no longer needed
        path.unlink()
    assert torch.equal(loading.forward_split(model, bundle.val, 2, keep=True), first)
    paths[2].unlink()  # past the budget: read from disk every time
    with pytest.raises(DataError, match=paths[2].name):
        loading.forward_split(model, bundle.val, 2, keep=True)
    monkeypatch.setattr(loading, "KEEP_EVAL_MB", 1)
    val_reader = loading._EVAL_READERS[id(bundle.val)].reader
    assert val_reader is not None and loading._same_source(bundle.val, bundle.train)
    made: list[Any] = []
    monkeypatch.setattr(loading, "_Reader", lambda *a: made.append(a))  # none may be made
    whole = loading.forward_split(model, bundle.train, 2, keep=True)
    assert made == []  # the train subset read through val's reader (one pool of workers)
    assert loading._EVAL_READERS[id(bundle.train)].reader is None  # all kept: done reading
    assert val_reader.loader is not None  # the workers it shared with val stay for val
    assert torch.equal(loading.forward_split(model, bundle.train, 2, keep=True), whole)


def test_epoch_one_takes_the_evaluation_inputs_from_the_training_workers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Epoch 1's evaluation inputs come from the training workers: the train subset's from the
    decode they make for training (`ImagePipeline.load_twice`), val's read alongside, spread
    over the epoch's batches; so no pool of workers is started for evaluation and nothing is
    read for it at the epoch's end. The kept inputs equal reading them, and the history (val
    metrics and val_loss every epoch, train metrics, train_eval_loss) and the weights are those
    of the old path (evaluation reading both), bit for bit; a run resumed inside epoch 1 (the
    subset not all seen) reads the rest of the subset as before and still takes all of val."""
    from mltrainer.data._itemsets import ImagePipeline
    from mltrainer.engine import loading

    _faces(tmp_path)
    aug = {"channels": 1, "augment": {"hflip": 0.5, "rotation": 10}}
    evaluated: list[str] = []  # items decoded for evaluation, in this process
    load = ImagePipeline.load

    def counted(self: Any, raw: Any, train: bool) -> Any:
        if not train:
            evaluated.append(raw)
        return load(self, raw, train)

    monkeypatch.setattr(ImagePipeline, "load", counted)
    taken: list[tuple[int, int]] = []  # (items of the split, items taken)
    take = loading._Harvest.take

    def spy(self: Any, entry: Any, batches: Any, batch_size: int) -> None:
        take(self, entry, batches, batch_size)
        taken.append((len(self.wanted), sum(len(b) for b in entry.kept)))

    monkeypatch.setattr(loading._Harvest, "take", spy)
    readers: list[bool] = []  # a _Reader's train flag, for each made
    made = loading._Reader.__init__

    def counted_reader(self: Any, split: Any, train: bool, *a: Any) -> None:
        readers.append(train)
        made(self, split, train, *a)

    monkeypatch.setattr(loading._Reader, "__init__", counted_reader)
    evaluate_too = loading.LoaderBatches.evaluate_too
    for workers in (0, 2):
        cfg = _cfg("imagefolder:faces", loader={"num_workers": workers}, transforms=aug)
        bundle = prepare_data(cfg, tmp_path)
        n_val, n_sub = len(bundle.val), min(len(bundle.train), len(bundle.val))
        runs, kept = {}, {}
        for harvest in (True, False):
            monkeypatch.setattr(loading.LoaderBatches, "evaluate_too",
                                evaluate_too if harvest else lambda self, part: False)
            monkeypatch.setattr(loading, "_EVAL_READERS", {})  # val's kept inputs: not shared
            evaluated.clear()
            taken.clear()
            readers.clear()
            runs[harvest] = Trainer(cfg, bundle, tmp_path / "runs" / f"{workers}-{harvest}",
                                    background_checkpoints=False).fit()
            kept[harvest] = loading._EVAL_READERS[id(bundle.val)].kept
            assert taken == ([(n_val, n_val), (n_sub, n_sub)] if harvest else [])  # once
            assert (False in readers) is not harvest  # harvest: no evaluation reader made
            if workers == 0:  # the decodes are in this process: counted
                assert len(evaluated) == n_val + (0 if harvest else n_sub)
        assert len(kept[True]) == len(kept[False]) == 1
        assert torch.equal(kept[True][0], kept[False][0])  # val's inputs, bit for bit
        assert runs[True].history == runs[False].history
        a, b = (load_checkpoint(Path(r.checkpoints["last"]))["model"] for r in runs.values())
        assert all(torch.equal(a[k], b[k]) for k in a)
    monkeypatch.setattr(loading.LoaderBatches, "evaluate_too", evaluate_too)
    run = tmp_path / "runs" / "resumed"
    Trainer(cfg, bundle, run, subscribers=[StopAt(1)], background_checkpoints=False).fit()
    taken.clear()
    monkeypatch.setattr(loading, "_EVAL_READERS", {})
    again = Trainer(cfg, bundle, run, background_checkpoints=False).fit(
        resume=find_resume_checkpoint(run))
    assert taken[0] == (n_val, n_val)  # val: spread over the batches still to read
    assert taken[1][1] < n_sub  # the items of step 1 were not seen: read from disk
    assert again.history == runs[False].history


def test_epoch_one_reads_evaluation_inputs_only_within_the_kept_budget(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the training workers read for evaluation is held until the epoch's end: val and
    the train subset together within KEEP_EVAL_MB (past it, evaluation reads from disk as
    before, so memory stays bounded on a large folder); a split mixing training and other
    items, or one already kept by an earlier run, is not asked for."""
    from dataclasses import replace

    from mltrainer.engine import loading
    from mltrainer.engine.inference import evaluation_data

    _faces(tmp_path)
    cfg = _cfg("imagefolder:faces", transforms={"channels": 1})
    bundle = prepare_data(cfg, tmp_path)
    monkeypatch.setattr(loading, "_EVAL_READERS", {})
    cpu = torch.device("cpu")
    sub = evaluation_data(bundle.train, np.arange(len(bundle.val)), cpu, "classification")[0]
    item = 4 * int(np.prod(bundle.pipeline.input_shape))
    monkeypatch.setattr(loading, "KEEP_EVAL_MB", (len(bundle.val) + 1) * item / 2**20)

    def batches() -> Any:
        return loading.LoaderBatches(bundle.train, 4, cpu, 0, cfg.data.loader, False)

    first = batches()
    assert first.evaluate_too(bundle.val) and not first.evaluate_too(sub)  # both: over
    assert batches().evaluate_too(sub)
    mixed = replace(bundle.val, indices=np.array([bundle.val.indices[0],
                                                  bundle.train.indices[0]]),
                    y=np.asarray(bundle.val.y)[:2])
    assert not batches().evaluate_too(mixed)
    entry = loading._EVAL_READERS[id(bundle.val)] = loading._EvalSplit(bundle.val)
    entry.kept.append(torch.zeros(1))
    assert not batches().evaluate_too(bundle.val)  # kept already


def test_evaluation_reads_a_batch_in_parts_with_every_worker_and_the_same_inputs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An image split smaller than the evaluation batch is read as one part per loader worker
    (both decode at once) and concatenated: the same outputs and kept inputs, bit for bit, as
    reading it whole. Text (padding per batch) is read whole."""
    from mltrainer.data._itemsets import TextPipeline
    from mltrainer.engine import loading
    from mltrainer.models import build_model

    _faces(tmp_path)
    cfg = _cfg("imagefolder:faces", transforms={"channels": 1}, loader={"num_workers": 2})
    bundle = prepare_data(cfg, tmp_path)
    torch.manual_seed(0)
    model = build_model(cfg.model, bundle.spec)
    read: list[list[int]] = []
    iterate = loading._Reader.iterate

    def spy(self: Any, batches: list[list[tuple[int, int]]]) -> Any:
        read.extend([len(b) for b in batches])
        return iterate(self, batches)

    monkeypatch.setattr(loading._Reader, "iterate", spy)
    results = {}
    for parts in ("each worker", "whole"):
        monkeypatch.setattr(loading, "_EVAL_READERS", {})
        if parts == "whole":
            monkeypatch.setattr(loading, "_reading_parts", lambda split: 1)
        read.clear()
        out = loading.forward_split(model, bundle.val, keep=True)
        kept = loading._EVAL_READERS[id(bundle.val)].kept
        results[parts] = (out, kept, list(read))
        assert torch.equal(loading.forward_split(model, bundle.val, keep=True), out)  # kept
        loading._EVAL_READERS[id(bundle.val)].close_reader()
    n = len(bundle.val)
    assert results["each worker"][2] == [(n + 1) // 2, n // 2] and results["whole"][2] == [n]
    (a, kept_a, _), (b, kept_b, _) = results.values()
    assert torch.equal(a, b) and len(kept_a) == len(kept_b) == 1
    assert torch.equal(kept_a[0], kept_b[0])
    assert TextPipeline.concatenates is False and bundle.val.pipeline.concatenates is True


@pytest.mark.slow
def test_item_data_under_two_processes_and_accumulation_matches_one_batch(
        tmp_path: Path) -> None:
    """An image folder with augmentation, 4 images a step: one process (batch 4), one process
    accumulating 2 x 2, and two gloo processes under torchrun of 2 each (a loader worker each)
    see the same images with the same augmentation at every step, so they end with the same
    weights up to the order of float additions."""
    from mltrainer.engine.launch import Launch, run_job, run_result

    _faces(tmp_path)
    model = {"kind": "cnn", "channels": [4], "hidden": [8], "norm": "none", "dropout": 0.0}
    data = {"transforms": {"channels": 1, "augment": {"hflip": 0.5, "rotation": 10}}}

    def cfg(batch: int, accum: int = 1, workers: int = 0) -> Any:
        raw = _cfg("imagefolder:faces", model, loader={"num_workers": workers},
                   **data).model_dump(mode="json")
        raw["training"].update(batch_size=batch, grad_accum_steps=accum, device="cpu")
        return parse_config(raw)

    runs = tmp_path / "runs"
    one = Trainer(cfg(4), prepare_data(cfg(4), tmp_path), runs / "one").fit()
    acc = Trainer(cfg(2, 2), prepare_data(cfg(2, 2), tmp_path), runs / "acc").fit()
    job = {"mode": "train", "config": cfg(2, workers=1).model_dump(mode="json"),
           "root": str(tmp_path), "run_dir": str(runs / "ddp"), "kind": "baseline",
           "resume": None, "expected_fingerprints": None, "detectors": None}
    ddp = run_result(run_job(job, Launch(nproc=2), tmp_path / "job"))
    assert ddp.world_size == 2 and ddp.final_step == acc.final_step == one.final_step == 6
    want = load_checkpoint(Path(one.checkpoints["last"]))["model"]
    for other in (acc, ddp):
        got = load_checkpoint(Path(other.checkpoints["last"]))["model"]
        assert all(torch.allclose(got[k], want[k], atol=1e-5) for k in want), other.run_id
        assert other.history[-1]["val"] == pytest.approx(one.history[-1]["val"], abs=1e-6)


def test_optimize_trials_on_item_data_search_augmentation_and_freezing(tmp_path: Path) -> None:
    """Optimize's trials on an image folder: a space over train-only augmentation and layer
    freezing (both data in `optimize.space`), each trial training with its own values (its
    train pipeline rebuilt from its config, val's untouched), on the one prepared bundle."""
    from mltrainer.phases.optimize.search import TrialRunner, run_trials
    from mltrainer.phases.optimize.space import build_space
    from mltrainer.phases.optimize.study import make_sampler, open_storage, open_study
    from mltrainer.project import Project
    from mltrainer.stream import read_stream

    _faces(tmp_path)
    project = Project(tmp_path)
    project.mlt_dir.mkdir()
    cfg = _cfg("imagefolder:faces", transforms={"channels": 1})
    bundle = prepare_data(cfg, tmp_path)
    space = build_space(cfg, [], {
        "data.transforms.augment.hflip": {"type": "categorical", "choices": [0.0, 1.0]},
        "model.freeze": {"type": "categorical", "choices": [[], ["features"]]}},
        modality="image")
    storage, _ = open_storage(None, project)
    study = open_study(storage, "items", True, make_sampler(4, cfg.seed)[0], None)
    for values in ({"data.transforms.augment.hflip": 1.0, "model.freeze": '["features"]'},
                   {"data.transforms.augment.hflip": 0.0, "model.freeze": "[]"}):
        study.enqueue_trial(values, skip_if_exists=True)
    runner = TrialRunner(project, bundle, cfg.model_dump(mode="json"), space,
                         cfg.goal.metric, storage)
    run_trials(study, runner, 2)
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    for trial, flip, frozen in zip(trials, (1.0, 0.0), (True, False), strict=True):
        run = project.root / "runs" / trial.user_attrs["mlt.run_id"]
        resolved = yaml.safe_load((run / "config.resolved.yaml").read_text())
        assert resolved["data"]["transforms"]["augment"]["hflip"] == flip
        start = read_stream(run / "metrics.jsonl")[0]
        assert (start["model"]["trainable"] < start["model"]["parameters"]) == frozen
    raw = cfg.model_dump(mode="json")
    raw["data"]["transforms"]["augment"]["hflip"] = 1.0
    flipped = bundle.for_config(parse_config(raw))
    assert flipped.val is bundle.val and flipped.train.indices is bundle.train.indices
    assert "RandomHorizontalFlip" in repr(flipped.train.pipeline.train_tf)
    assert "RandomHorizontalFlip" not in repr(bundle.train.pipeline.train_tf)
    assert bundle.for_config(cfg) is bundle


def test_text_model_trains_through_the_loader(tmp_path: Path) -> None:
    _text(tmp_path)
    cfg = _cfg("d.jsonl", {"kind": "hf:bert", "tokenizer": "tok", "max_length": 8,
                           "head_lr": 0.05, "freeze": ["model.bert.embeddings"]},
               text_column="text", target="label")
    bundle = prepare_data(cfg, tmp_path)
    assert determinism_probe(cfg, bundle, steps=3, root=tmp_path)["identical"]
    result = Trainer(cfg, bundle, tmp_path / "runs" / "t", root=tmp_path).fit()
    assert result.epochs_run == 2
    start = json.loads((tmp_path / "runs" / "t" / "metrics.jsonl").read_text().splitlines()[0])
    assert start["model"]["prefixes"] == ["model.bert.embeddings"]
    assert 0 < start["model"]["trainable"] < start["model"]["parameters"]


# -- bad input -------------------------------------------------------------------------------


def _bad_case(tmp_path: Path, case: str) -> tuple[Any, str]:
    folder = _faces(tmp_path, n=8)
    if case == "empty_class":
        (folder / "extra").mkdir()
        return _cfg("imagefolder:faces"), "class folder .*extra.* has no images"
    if case == "crop_beyond_images":  # no resize: each random crop failed 'on that item'
        return (_cfg("imagefolder:faces", transforms={"crop": 24, "augment": {
            "random_crop": True}}), r"data.transforms.crop 24 is larger than .*000.png \(16x16 "
                                    r"pixels, the smallest image\)")
    if case == "truncated_image":
        png = folder / "face" / "000.png"
        png.write_bytes(png.read_bytes()[:60])
        return _cfg("imagefolder:faces"), r"000.png is not a readable image"
    _text(tmp_path)
    if case == "missing_text_column":
        return (_cfg("d.jsonl", {"kind": "hf:bert", "tokenizer": "tok"}, text_column="body"),
                r"no column 'body' \(data.text_column\); the columns are 'text', 'label'")
    if case == "not_a_tokenizer":
        (tmp_path / "notok").mkdir()
        (tmp_path / "notok" / "readme.txt").write_text("hi")
        return (_cfg("d.jsonl", {"kind": "hf:bert", "tokenizer": "notok"}, text_column="text"),
                "model.tokenizer: .*notok is not a tokenizer folder")
    if case == "empty_texts":  # an empty CSV cell reads as None: "NoneType, not text" before
        (tmp_path / "t.csv").write_text("text,label\ngood fine,pos\n,neg\nbad,neg\n,pos\n")
        return (_cfg("t.csv", {"kind": "hf:bert", "tokenizer": "tok"}, text_column="text"),
                r"2 row\(s\) of column 'text' have no text \(rows 2, 4, counting from 1\)")
    if case == "label_outside_classes":
        import datasets

        feats = datasets.Features({"text": datasets.Value("string"),
                                   "label": datasets.ClassLabel(names=["x", "y"])})
        ds = datasets.Dataset.from_dict({"text": ["a", "b", "c", "d"], "label": [0, 1, 0, 1]},
                                         features=feats)
        table = ds.data.table.set_column(1, "label", __import__("pyarrow").array([0, 1, 5, 1]))
        datasets.Dataset(table, info=ds.info).save_to_disk(str(tmp_path / "saved"))
        return (_cfg("text:saved", {"kind": "hf:bert", "tokenizer": "tok"}, text_column="text"),
                r"row 3 \(counting from 1\) has label 5, outside the 2 classes")
    if case == "blank_texts":  # "" or spaces: no text, as an empty CSV cell (trained before)
        rows = [{"text": t, "label": i % 2} for i, t in enumerate(["a b", "", "c", " \t\n"])]
        (tmp_path / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return (_cfg("b.jsonl", {"kind": "hf:bert", "tokenizer": "tok"}),
                r"2 row\(s\) of column 'text' have no text \(rows 2, 4, counting from 1\)")
    if case == "vocab_beyond_model":  # ids past the embeddings: an exit 1 crash in plan before
        from transformers import BertConfig

        BertConfig(vocab_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                   intermediate_size=32, max_position_embeddings=32).save_pretrained(
            tmp_path / "small")
        return (_cfg("d.jsonl", {"kind": "hf:small", "tokenizer": "tok", "max_length": 32}),
                r"model.kind 'hf:small' cannot take a batch of texts .*ids up to \d+: the "
                r"tokenizer has \d+ tokens\): IndexError")
    if case == "list_labels":  # several labels a row: unhashable, an exit 1 crash before
        rows = [{"text": f"t{i}", "label": [i % 2]} for i in range(8)]
        (tmp_path / "l.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return (_cfg("l.jsonl", {"kind": "hf:bert", "tokenizer": "tok"}),
                r"row 1 \(counting from 1\) has label \[0\] \(list\) in column 'label'; a "
                "label is one class name or number")
    if case == "nan_targets":  # a regression crash in the target scaler before (exit 1)
        (tmp_path / "r.jsonl").write_text("".join(
            json.dumps({"text": f"t{i}", "label": i}) + "\n" if i != 3 else
            '{"text": "t3", "label": NaN}\n' for i in range(8)))
        raw = _cfg("r.jsonl", {"kind": "hf:bert", "tokenizer": "tok"}).model_dump(mode="json")
        raw.update(task="regression", goal={"metric": "rmse", "target": 1.0})
        return (parse_config(raw), r"row 4 \(counting from 1\) has target nan in column "
                                   r"'label', not a finite number")
    if case == "latin1_csv":  # was 'datasets cannot read it (DatasetGenerationError...)'
        (tmp_path / "t.csv").write_bytes("text,label\ncaf\u00e9,pos\nbad,neg\n".encode("latin-1"))
        return (_cfg("t.csv", {"kind": "hf:bert", "tokenizer": "tok"}, text_column="text"),
                r"t.csv: not UTF-8 text \(byte 0xe9 at offset 14\)")
    raise AssertionError(case)


BAD = ["empty_class", "crop_beyond_images", "truncated_image", "missing_text_column",
       "not_a_tokenizer",
       "label_outside_classes", "empty_texts", "blank_texts", "vocab_beyond_model",
       "list_labels", "nan_targets", "latin1_csv"]


@pytest.mark.parametrize("case", BAD)
def test_bad_item_data_is_one_line_naming_the_fix(tmp_path: Path, case: str) -> None:
    from mltrainer.models import build_model

    cfg, pattern = _bad_case(tmp_path, case)
    with pytest.raises((DataError, ConfigError), match=pattern) as info:
        build_model(cfg.model, prepare_data(cfg, tmp_path).spec, root=tmp_path)
    assert "\n" not in info.value.message


def test_bad_image_at_plan_exits_2_and_keeps_state(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from mltrainer.cli import cli

    _faces(tmp_path, n=8)
    cfg = _cfg("imagefolder:faces", transforms={"channels": 1, "size": 16})
    (tmp_path / "mlt.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    (tmp_path / ".mlt").mkdir()
    png = tmp_path / "faces" / "not_face" / "007.png"
    png.write_bytes(png.read_bytes()[:70])
    before = sorted(p.name for p in (tmp_path / ".mlt").iterdir())
    result = CliRunner().invoke(cli, ["-C", str(tmp_path), "plan"])
    assert result.exit_code == 2, result.output
    assert "007.png is not a readable image" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / ".mlt" / "state.json").exists()
    assert [n for n in sorted(p.name for p in (tmp_path / ".mlt").iterdir())
            if n not in ("cache", "lock")] == [n for n in before if n not in ("cache", "lock")]


@pytest.mark.parametrize("split", ["train", "val"])  # val: read by the training workers
def test_a_worker_that_fails_names_the_item(tmp_path: Path, split: str) -> None:
    _faces(tmp_path)
    cfg = _cfg("imagefolder:faces", loader={"num_workers": 2}, transforms={"channels": 1})
    bundle = prepare_data(cfg, tmp_path)
    victim = int(getattr(bundle, split).indices[0])
    path = Path(bundle.train.items.dataset[victim][0])
    path.write_bytes(b"not a png any more")  # changed after plan checked it
    with pytest.raises(DataError, match=rf"{path.name}: cannot load it"):
        Trainer(cfg, bundle, tmp_path / "runs" / "x").fit()


# -- export parity, one per family -----------------------------------------------------------


@pytest.mark.parametrize("kind,formats", [("torchvision:resnet18", ("onnx",)),
                                          ("timm:resnet10t", ("onnx",)),
                                          ("hf:bert", ("onnx", "torchscript", "pt2")),
                                          # a decoder's classifier: it reads each text's last
                                          # token before the padding (a config without a pad
                                          # id refused batches of 2; it takes the tokenizer's)
                                          ("hf:gpt2", ("onnx", "torchscript"))])
def test_exports_have_dynamic_dims_and_parity_in_a_fresh_process(
        tmp_path: Path, kind: str, formats: tuple[str, ...]) -> None:
    from mltrainer.exporting import (
        build_item_deployable,
        check_parity,
        export_all,
        load_runner,
        model_inputs,
    )
    from mltrainer.models import build_model

    if kind.startswith("hf:"):
        _text(tmp_path)
        from transformers import GPT2Config

        GPT2Config(vocab_size=200, n_embd=16, n_layer=1, n_head=2, n_positions=32
                   ).save_pretrained(tmp_path / "gpt2")
        cfg = _cfg("d.jsonl", {"kind": kind, "tokenizer": "tok", "max_length": 8},
                   text_column="text", target="label")
    else:
        _faces(tmp_path)
        cfg = _cfg("imagefolder:faces", {"kind": kind})
    bundle = prepare_data(cfg, tmp_path)
    torch.manual_seed(0)
    deployable = build_item_deployable(build_model(cfg.model, bundle.spec, root=tmp_path),
                                       bundle.pipeline)
    records = export_all(deployable, model_inputs(bundle.train, 3), tmp_path / "out",
                         formats=formats)
    assert all(r.ok for r in records), [r.error for r in records]
    onnx = records[0]
    assert onnx.details["dynamic_batch"] and onnx.checker["passed"]
    parity = check_parity(records, deployable, model_inputs(bundle.train, 8), "classification")
    for result in parity:
        assert result["passed"] and result["reloaded_in_fresh_process"], result
        assert result["label_agreement"] == 1.0
    if kind == "hf:gpt2":
        assert deployable.model.model.config.pad_token_id == bundle.pipeline.tokenizer.pad_token_id
    if bundle.spec.modality == "text":  # the sequence length is free too
        run, _ = load_runner("onnx", onnx.path)
        for n in (1, 5):
            x = model_inputs(bundle.train, n)
            assert run(x).shape == (n, 2)
        assert {model_inputs(bundle.train, 1)["input_ids"].shape[1],
                model_inputs(bundle.train, 5)["input_ids"].shape[1]} != {1}


# -- mlt init --data -------------------------------------------------------------------------


@pytest.mark.parametrize("case,task,source,kind", [
    ("images", "classification", "imagefolder:", "cnn"),
    ("table", "regression", "t.csv", "mlp"),
    ("text", "classification", "d.jsonl", "hf:model"),
    # short reviews in a CSV column not named "text" (pandas 3 reads them as str, not object)
    ("csv_text", "classification", "r.csv", "hf:model"),
])
def test_init_from_data_picks_task_source_and_model(tmp_path: Path, case: str, task: str,
                                                    source: str, kind: str) -> None:
    from click.testing import CliRunner

    from mltrainer.cli import cli

    data = tmp_path / "data"
    data.mkdir()
    if case == "images":
        _faces(data, n=6)
        args = ["--data", str(data / "faces")]
    elif case == "table":
        rng = np.random.default_rng(0)
        (data / "t.csv").write_text("a,b,y\n" + "".join(
            f"{a:.3f},{b:.3f},{a + b:.4f}\n" for a, b in rng.random((30, 2))))
        args = ["--data", str(data / "t.csv"), "--target", "y"]
    elif case == "csv_text":
        words = ["good", "bad", "plot", "cast", "dull", "fine", "slow", "fun"]
        (data / "r.csv").write_text("review,label\n" + "".join(
            f"{words[i % 8]} {words[(i * 3) % 8]} {i},{'pos' if i % 2 else 'neg'}\n"
            for i in range(40)))
        args = ["--data", str(data / "r.csv"), "--target", "label"]
    else:
        _text(data)
        args = ["--data", str(data / "d.jsonl"), "--target", "label"]
    result = CliRunner().invoke(cli, ["init", str(tmp_path / "p"), *args])
    assert result.exit_code == 0, result.output
    cfg = yaml.safe_load((tmp_path / "p" / "mlt.yaml").read_text())
    assert (cfg["task"], cfg["model"]["kind"]) == (task, kind)
    assert cfg["data"]["source"].startswith(source) or cfg["data"]["source"].endswith(source)
    if case == "images":
        assert cfg["data"]["transforms"]["channels"] == 1  # grayscale photos
    if case in ("text", "csv_text"):
        assert (tmp_path / "p" / "tokenizer" / "tokenizer.json").is_file()
        assert cfg["data"]["text_column"] == ("text" if case == "text" else "review")
        # the written max_length fits the transformer init created (longer texts are cut)
        positions = json.loads((tmp_path / "p" / "model" / "config.json").read_text())[
            "max_position_embeddings"]
        assert cfg["model"]["max_length"] <= positions


def test_the_text_tokenizer_init_trains_is_the_same_bytes_every_time(tmp_path: Path) -> None:
    """`init --example text` / `init --data` train a tokenizer on the texts: the same texts
    give the same tokenizer.json, so two people (or CI) starting from the same data train the
    same model. (WordPiece's trainer gave a different vocabulary on each call.)"""
    from mltrainer.examples import _tokenizer

    texts = [f"{a}{b}{c}" for a in ("mar", "jo", "an", "el") for b in ("i", "a", "e", "")
             for c in ("a", "na", "son", "ly", "n", "")]
    for n in range(4):
        _tokenizer(texts, tmp_path / str(n))
    files = {(tmp_path / str(n) / "tokenizer.json").read_bytes() for n in range(4)}
    assert len(files) == 1


def test_the_models_files_are_part_of_what_a_passed_phase_judged(tmp_path: Path) -> None:
    """Another tokenizer, hf config or weights file makes the phases that used them stale
    (they were not fingerprinted: a passed baseline stood on a tokenizer since replaced); a
    project whose model names no files keeps the fingerprint it had."""
    import hashlib

    import torch

    from mltrainer import __version__
    from mltrainer.fingerprints import code_fingerprint

    _text(tmp_path)
    torch.save({"w": torch.zeros(2)}, tmp_path / "w.pt")
    cfg = _cfg("d.jsonl", {"kind": "hf:bert", "tokenizer": "tok", "weights": "w.pt"},
               text_column="text")
    seen = {code_fingerprint(cfg, tmp_path)}
    assert code_fingerprint(cfg, tmp_path) in seen  # stable while nothing changes
    for edit in (tmp_path / "tok" / "tokenizer.json", tmp_path / "bert" / "config.json",
                 tmp_path / "w.pt"):
        edit.write_bytes(edit.read_bytes() + b" ")
        seen.add(code_fingerprint(cfg, tmp_path))
    assert len(seen) == 4
    plain = _cfg("sklearn:iris", {"kind": "mlp", "hidden": [4]})
    assert code_fingerprint(plain, tmp_path) == hashlib.sha256(
        f"mltrainer=={__version__}".encode()).hexdigest()


def test_a_malformed_json_line_is_named_by_init_and_plan_in_one_line(tmp_path: Path) -> None:
    """A .jsonl with a broken line: `init --data` and `plan` each name the line (1-based) in
    one line, exit 2, no log noise from `datasets`, and plan leaves no state behind."""
    from click.testing import CliRunner

    from mltrainer.cli import cli

    _text(tmp_path)
    good = (tmp_path / "d.jsonl").read_text()
    runner = CliRunner()
    assert runner.invoke(cli, ["init", str(tmp_path / "p"), "--data", str(tmp_path / "d.jsonl"),
                               "--target", "label"]).exit_code == 0
    lines = good.splitlines()
    (tmp_path / "d.jsonl").write_text("\n".join([*lines[:4], "{text: 'x'}", *lines[4:]]) + "\n")
    res = runner.invoke(cli, ["init", str(tmp_path / "q"), "--data", str(tmp_path / "d.jsonl"),
                              "--target", "label"])
    assert res.exit_code == 2 and "line 5 is not JSON" in res.stderr, res.output
    res = runner.invoke(cli, ["-C", str(tmp_path / "p"), "plan"])
    assert res.exit_code == 2, res.output
    assert "line 5 is not JSON" in res.stderr and "Failed to load" not in res.output
    assert len(res.stderr.strip().splitlines()) == 2  # the error and its fix
    assert not (tmp_path / "p" / ".mlt" / "state.json").exists()


@pytest.mark.parametrize(("content", "says"), [
    (b'{"text": "\xff\xfe", "label": "pos"}\n', "line 13 is not UTF-8 text"),
    (None, "the file is empty"),
])
def test_a_text_file_not_utf8_or_empty_is_one_line(tmp_path: Path, content: bytes | None,
                                                   says: str) -> None:
    """A .jsonl line that is not UTF-8 passed the JSON reader and crashed plan (exit 1) when
    the column was read; an empty file said "datasets cannot read it (StopIteration: )"."""
    _text(tmp_path)
    path = tmp_path / "d.jsonl"
    path.write_bytes(path.read_bytes() + content if content else b"\n")
    cfg = _cfg("d.jsonl", {"kind": "hf:bert", "tokenizer": "tok", "max_length": 8},
               text_column="text", target="label")
    with pytest.raises(DataError, match=says) as info:
        prepare_data(cfg, tmp_path)
    assert "\n" not in info.value.message


def test_max_length_beyond_the_models_positions_is_a_config_error(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from mltrainer.cli import cli

    _text(tmp_path)
    runner = CliRunner()
    assert runner.invoke(cli, ["init", str(tmp_path / "p"), "--data", str(tmp_path / "d.jsonl"),
                               "--target", "label"]).exit_code == 0
    cfg_path = tmp_path / "p" / "mlt.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["model"]["max_length"] = 512  # the tiny model has 64 positions: texts would crash it
    cfg_path.write_text(yaml.safe_dump(cfg))
    res = runner.invoke(cli, ["-C", str(tmp_path / "p"), "plan"])
    assert res.exit_code == 2, res.output
    assert "max_position_embeddings 64" in res.stderr and "model.max_length: 64" in res.stderr
    assert "Traceback" not in res.output and not (tmp_path / "p" / ".mlt" / "state.json").exists()


# -- every phase, end to end, on an image folder ---------------------------------------------


def _cli(root: Path) -> Callable[..., tuple[int, dict[str, Any], Any]]:
    """`mlt -C ROOT ARGS --json` in this process: (exit code, its JSON object, click's result)."""
    from click.testing import CliRunner

    from mltrainer.cli import cli

    runner = CliRunner()

    def mlt(*args: str) -> tuple[int, dict[str, Any], Any]:
        res = runner.invoke(cli, ["-C", str(root), *args, "--json"], catch_exceptions=False)
        return res.exit_code, (json.loads(res.stdout) if res.stdout.strip() else {}), res

    return mlt


def _through_finalize(mlt: Callable[..., tuple[int, dict[str, Any], Any]]) -> dict[str, Any]:
    """plan and train-baseline pass, then finalize passes every automatic item (it exits 3:
    the manual items wait for people); finalize's JSON."""
    for phase in ("plan", "train-baseline"):
        code, out, _ = mlt(phase)
        assert code == 0, (phase, [(i["id"], i["evidence"]) for i in out["gate"]["items"]
                                   if i["status"] != "pass"])
    code, out, res = mlt("finalize")
    assert "gate" in out, res.output
    auto = {i["id"]: i["status"] for i in out["gate"]["items"] if i["kind"] == "auto"}
    assert set(auto.values()) == {"pass"}, [(i["id"], i["evidence"]) for i in out["gate"]["items"]
                                            if i["kind"] == "auto" and i["status"] != "pass"]
    return out


@pytest.mark.slow
def test_image_folder_through_finalize_and_predict(tmp_path: Path) -> None:


    _faces(tmp_path, n=80, size=16)
    raw = {"name": "faces", "task": "classification", "seed": 1,
           "data": {"source": "imagefolder:faces", "split": {"val": 0.25, "test": 0.25},
                    "transforms": {"channels": 1, "size": 14, "crop": 12}},
           "model": {"kind": "cnn", "channels": [8, 16], "hidden": [16]},
           "training": {"epochs": 5, "batch_size": 8, "lr": 0.01},
           "goal": {"metric": "accuracy", "target": 0.6}}
    (tmp_path / "mlt.yaml").write_text(yaml.safe_dump(raw))
    mlt = _cli(tmp_path)
    (tmp_path / ".mlt").mkdir()
    out = _through_finalize(mlt)
    exports = {e["format"]: e for e in out["exports"]}
    assert set(exports) == {"onnx", "torchscript", "pt2"}
    assert all(e["passed"] and e["reloaded_in_fresh_process"] for e in exports.values())
    doc = json.loads((tmp_path / out["artifact"]["dir"] / "preprocess.json").read_text())
    assert doc["input"]["kind"] == "image" and doc["input"]["crop"] == 12
    # the baseline report names the rows its train metrics were measured on (item data: as
    # many as val), not a rule that did not apply
    baseline = (tmp_path / "reports" / "baseline.md").read_text()
    assert "Train metrics: the epoch's end model on 20 training rows" in baseline
    # what parity compared, as it was: images have no row of missing values to add
    report = (tmp_path / "reports" / "finalize.md").read_text()
    card = (tmp_path / out["artifact"]["dir"] / "model_card.md").read_text()
    for text in (report, card):
        assert f"on {exports['onnx']['parity_rows']} rows (validation items)" in text
        assert "every value missing" not in text
    shutil.copytree(tmp_path / "faces" / "face", tmp_path / "new")
    (tmp_path / "new" / "notes.txt").write_text("not a picture")
    # a folder linked in is read as training reads one (its images were left out silently)
    shutil.copytree(tmp_path / "faces" / "face", tmp_path / "elsewhere")
    (tmp_path / "new" / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    code, pred, _ = mlt("predict", str(tmp_path / "new"), "--out", str(tmp_path / "p.csv"))
    assert code == 0 and pred["rows"] == 80
    # a file of the folder that is no image has no prediction: counted, not silent
    assert pred["skipped_files"] == {"count": 1, "examples": [str(tmp_path / "new" / "notes.txt")]}
    assert (tmp_path / "p.csv").read_text().splitlines()[0].startswith("input,prediction")
    # a worker refused (diagnose skipped on the fast path) leaves the folder's hash cache as
    # it found it: the fingerprints used to hash the folder into .mlt/cache/ first
    for cached in (tmp_path / ".mlt" / "cache").glob("manifest-*.json"):
        cached.unlink()
    code, out, _ = mlt("optimize", "--worker")
    assert code == 3 and "diagnose" in out["message"], out
    assert not list((tmp_path / ".mlt" / "cache").glob("manifest-*.json"))


def test_a_worker_that_dies_names_the_item_it_was_loading(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "dying.py").write_text(
        "import os, signal\n"
        "import torch\n"
        "from torch.utils.data import Dataset, get_worker_info\n"
        "class Dying(Dataset):\n"
        "    def __len__(self):\n"
        "        return 40\n"
        "    def __getitem__(self, i):\n"
        "        victim = int(os.environ.get('MLT_TEST_VICTIM', -1))\n"
        "        if i == victim and get_worker_info() is not None:\n"
        "            os.kill(os.getpid(), signal.SIGKILL)  # a segfaulting decoder, say\n"
        "        return torch.full((4,), float(i)), i % 2\n"
        "def load():\n"
        "    return Dying()\n")
    cfg = _cfg("python:dying:load", {"kind": "mlp", "hidden": [4]}, loader={"num_workers": 2},
               split={"val": 0.25, "test": 0.25, "stratify": False})
    bundle = prepare_data(cfg, tmp_path)  # plan reads every item in-process: all fine
    victim = int(bundle.train.indices[5])
    monkeypatch.setenv("MLT_TEST_VICTIM", str(victim))
    with pytest.raises(DataError, match=rf"worker died while loading .*item {victim}\b"):
        Trainer(cfg, bundle, tmp_path / "runs" / "x").fit()


@pytest.mark.parametrize("channels", [1, 3])
def test_a_16_bit_image_is_scaled_to_8_bits_not_clipped_white(tmp_path: Path, channels: int
                                                             ) -> None:
    """A 16-bit grey PNG (PIL mode I;16) came out of PIL's convert clipped at 255: all white.
    Training and deployment (runtime.items) now read it as the same picture saved in 8 bits."""
    from PIL import Image

    from mltrainer.runtime.items import image_array

    _faces(tmp_path, n=8, size=16)
    cfg = _cfg("imagefolder:faces", transforms={"channels": channels, "size": 16, "crop": 16})
    bundle = prepare_data(cfg, tmp_path)
    picture = (np.arange(256, dtype=np.uint16).reshape(16, 16))
    Image.fromarray((picture * 257).astype(np.uint16)).save(tmp_path / "wide.png")
    Image.fromarray(picture.astype(np.uint8)).save(tmp_path / "narrow.png")
    assert Image.open(tmp_path / "wide.png").mode.startswith("I")
    pipe = bundle.pipeline
    wide, narrow = (pipe.unnormalised(pipe.open(str(tmp_path / n))).numpy()
                    for n in ("wide.png", "narrow.png"))
    assert np.array_equal(wide, narrow) and wide.max() == 1.0 and wide.min() == 0.0
    pre = {"mode": pipe.mode, "resize": 16, "crop": 16}
    assert np.array_equal(image_array(tmp_path / "wide.png", pre), wide)


def test_a_float_image_is_read_in_0_to_1_and_plan_refuses_other_ranges(tmp_path: Path) -> None:
    """A 32-bit float TIFF (PIL mode F) came out of PIL's convert clipped: values in [0, 1]
    became 0 or 1, a black picture, silently. It is now read as torchvision reads float
    images, [0, 1] black to white, the same picture as its 8-bit copy; one with values
    outside [0, 1] is refused at plan, naming the file (mlt would have to guess its range)."""
    from PIL import Image

    _faces(tmp_path, n=8, size=16)
    cfg = _cfg("imagefolder:faces", transforms={"channels": 1, "size": 16, "crop": 16})
    picture = np.arange(256, dtype=np.float64).reshape(16, 16)
    Image.fromarray((picture / 255.0).astype(np.float32), "F").save(
        tmp_path / "faces" / "face" / "float.tiff")
    Image.fromarray(picture.astype(np.uint8)).save(tmp_path / "narrow.png")
    bundle = prepare_data(cfg, tmp_path)  # plan reads it: in range
    pipe = bundle.pipeline
    wide, narrow = (pipe.unnormalised(pipe.open(str(p))).numpy()
                    for p in (tmp_path / "faces" / "face" / "float.tiff", tmp_path / "narrow.png"))
    assert np.array_equal(wide, narrow) and wide.max() == 1.0
    Image.fromarray((picture / 64.0).astype(np.float32), "F").save(
        tmp_path / "faces" / "face" / "depth.tiff")
    with pytest.raises(DataError, match=r"depth\.tiff is a 32-bit float image \(mode F\) with "
                                        r"values 0 to 3\.98"):
        prepare_data(cfg, tmp_path)


def test_deployment_preprocessing_reproduces_training_bitwise(tmp_path: Path) -> None:
    """What `mlt predict` and DEPLOYMENT.md do without torch (runtime.items) equals the
    training pipeline's eval preprocessing exactly: images pixel for pixel, texts token for
    token (padding included)."""
    from mltrainer.phases.finalize import items
    from mltrainer.runtime.items import image_batch, text_batch

    _faces(tmp_path, n=8, size=23)
    cfg = _cfg("imagefolder:faces", transforms={"channels": 1, "size": 17, "crop": 15})
    bundle = prepare_data(cfg, tmp_path)
    doc = items.input_document(bundle)
    paths = [Path(bundle.val.items.dataset[int(i)][0]) for i in bundle.val.indices]
    want = np.stack([bundle.pipeline.unnormalised(bundle.pipeline.open(p)).numpy()
                     for p in paths])
    assert np.array_equal(image_batch(paths, doc), want)

    _text(tmp_path)
    cfg = _cfg("d.jsonl", {"kind": "hf:bert", "tokenizer": "tok", "max_length": 4},
               text_column="text", target="label")
    bundle = prepare_data(cfg, tmp_path)
    items.write_extra_files(bundle, tmp_path / "artifact")
    texts = ["good", "bad awful poor fine great", "great good"]
    inputs, _ = bundle.pipeline.collate([(bundle.pipeline.load(t, False), 0) for t in texts])
    got = text_batch(texts, tmp_path / "artifact", items.input_document(bundle))
    assert got["input_ids"].shape[1] == 4  # truncated to max_length
    for key in ("input_ids", "attention_mask"):
        assert np.array_equal(got[key], inputs[key].numpy())


@pytest.mark.slow
def test_text_example_through_finalize_and_predict(tmp_path: Path) -> None:
    """`mlt init --example text`, shrunk (a 1-layer 32-wide BERT, 6 epochs; all the names: on a
    third of them test accuracy ranged 0.56-0.71 over seeds and CPUs, too close to the goal),
    through plan, train-baseline and finalize: every automatic item passes, the three exports
    pass parity in a fresh process with a dynamic batch and sequence, the tokenizer travels in
    the artifact (hashed with it), and predict reads a CSV column."""
    from click.testing import CliRunner

    from mltrainer.cli import cli

    runner = CliRunner()
    root = tmp_path / "names"

    mlt = _cli(root)
    assert runner.invoke(cli, ["init", str(root), "--example", "text"]).exit_code == 0
    model = json.loads((root / "model" / "config.json").read_text())
    model.update(hidden_size=32, num_hidden_layers=1, intermediate_size=64)
    (root / "model" / "config.json").write_text(json.dumps(model))
    cfg = yaml.safe_load((root / "mlt.yaml").read_text())
    cfg["training"].update(epochs=6, lr=0.005)
    cfg["goal"]["target"] = 0.55
    (root / "mlt.yaml").write_text(yaml.safe_dump(cfg))

    out = _through_finalize(mlt)
    exports = {e["format"]: e for e in out["exports"]}
    assert set(exports) == {"onnx", "torchscript", "pt2"}
    assert all(e["passed"] and e["reloaded_in_fresh_process"] for e in exports.values())
    artifact = root / out["artifact"]["dir"]
    text = (artifact / "preprocess.json").read_text()
    assert str(tmp_path) not in text  # the artifact does not depend on where the project is
    doc = json.loads(text)
    assert doc["input"]["kind"] == "text" and doc["input"]["tokenizer"] == "tokenizer"
    assert doc["preprocessor"]["tokenizer"] == "tokenizer"
    assert "tokenizer/tokenizer.json" in out["artifact"]["files"]  # hashed with the model
    (tmp_path / "new.csv").write_text("name\nMaria\nJohn\nAnna-Lena\n")
    code, pred, _ = mlt("predict", str(tmp_path / "new.csv"), "--column", "name", "--out",
                     str(tmp_path / "p.csv"))
    assert code == 0 and pred["rows"] == 3
    lines = (tmp_path / "p.csv").read_text().splitlines()
    assert lines[0].startswith("input,prediction") and lines[1].startswith("Maria,")
    # a text file: one text a line; a blank line has no prediction, and the result says so
    (tmp_path / "new.txt").write_text("Maria\n\nJohn\n")
    code, pred, _ = mlt("predict", str(tmp_path / "new.txt"), "--out", str(tmp_path / "t.csv"))
    assert code == 0 and pred["rows"] == 2
    assert pred["skipped_blank_lines"] == [f"{tmp_path / 'new.txt'}:2"]
    # a file that is not UTF-8 text is bad input (exit 2, naming it), not an unexpected failure
    for name, raw in (("latin.txt", "Jos\xe9\n".encode("latin-1")),
                      ("utf16.csv", "name\nMaria\n".encode("utf-16"))):
        (tmp_path / name).write_bytes(raw)
        code, doc, res = mlt("predict", str(tmp_path / name), "--column", "name", "--out",
                             str(tmp_path / "x.csv"))
        said = res.stderr + json.dumps(doc)
        assert code == 2 and name in said and ("UTF-8" in said or "NUL" in said), said
        assert not (tmp_path / "x.csv").exists()


@pytest.mark.slow
def test_dataset_model_through_finalize_and_predict_on_npy_items(tmp_path: Path) -> None:
    """A `python:` torch Dataset (iris as tensors) through finalize; `mlt predict` takes .npy
    files of items as the Dataset returns them (one item or a stack), and names a wrong shape."""


    (tmp_path / "irisdata.py").write_text(
        "import torch\n"
        "from sklearn.datasets import load_iris\n"
        "from torch.utils.data import TensorDataset\n"
        "def load():\n"
        "    X, y = load_iris(return_X_y=True)\n"
        "    return TensorDataset(torch.tensor(X, dtype=torch.float32), torch.tensor(y))\n")
    raw = {"name": "iris", "task": "classification", "seed": 0,
           "data": {"source": "python:irisdata:load", "split": {"val": 0.2, "test": 0.2}},
           "model": {"kind": "mlp", "hidden": [16]},
           "training": {"epochs": 15, "batch_size": 16, "lr": 0.02},
           "goal": {"metric": "accuracy", "target": 0.6}}
    (tmp_path / "mlt.yaml").write_text(yaml.safe_dump(raw))
    (tmp_path / ".mlt").mkdir()
    mlt = _cli(tmp_path)
    _through_finalize(mlt)
    from sklearn.datasets import load_iris

    X, _y = load_iris(return_X_y=True)
    np.save(tmp_path / "some.npy", X[[0, 50, 100]].astype(np.float32))
    np.save(tmp_path / "one.npy", X[149])
    code, pred, _ = mlt("predict", str(tmp_path / "some.npy"), str(tmp_path / "one.npy"),
                        "--out", str(tmp_path / "p.csv"))
    assert code == 0 and pred["rows"] == 4
    lines = (tmp_path / "p.csv").read_text().splitlines()
    assert lines[1].startswith(f"{tmp_path / 'some.npy'}[0],0,")  # setosa: class label 0
    np.save(tmp_path / "bad.npy", X[:2, :3])
    code, _, res = mlt("predict", str(tmp_path / "bad.npy"), "--out", str(tmp_path / "q.csv"))
    assert code == 2 and "items of shape (2, 3), but the model takes items of shape (4,)" in (
        res.output) and "Traceback" not in res.output
