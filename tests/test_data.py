"""The data layer on real data: sources, the split, fingerprints, preprocessing, the lock."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mltrainer.config import MltConfig, parse_config
from mltrainer.data import (
    SOURCES,
    DataBundle,
    DataSpec,
    Preprocessor,
    prepare_data,
    running_phase,
    source_fingerprint,
    trivial_baseline,
)
from mltrainer.data._sources import RawData
from mltrainer.errors import DataError, StateCorruptError, TestSplitLockedError


def make_cfg(source: str, task: str = "classification", *, target: str | None = None,
             seed: int = 42, drop: list[str] | None = None, val: float = 0.15,
             test: float = 0.15, stratify: bool = True) -> MltConfig:
    metric = "accuracy" if task == "classification" else "rmse"
    data: dict[str, Any] = {"source": source, "split": {"val": val, "test": test,
                                                        "stratify": stratify}}
    if target is not None:
        data["target"] = target
    if drop:
        data["drop"] = drop
    return parse_config({"name": "t", "task": task, "seed": seed, "data": data,
                         "goal": {"metric": metric, "target": 0.9}})


def write_mixed_csv(path: Path, n: int = 240, seed: int = 0) -> Path:
    """Numbers, text categories and missing cells in both, plus a text target."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "age": rng.normal(40, 12, n).round(1),
        "income": rng.lognormal(10, 1, n).round(2),
        "color": rng.choice(["red", "green", "blue"], n),
        "city": rng.choice(["paris", "rome", "oslo", "lima"], n),
        "row_id": np.arange(n),
        "label": rng.choice(["yes", "no"], n),
    })
    frame.loc[rng.choice(n, 20, replace=False), "age"] = np.nan
    frame.loc[rng.choice(n, 15, replace=False), "color"] = None
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DataBundle]:
    root = tmp_path_factory.mktemp("mixed")
    write_mixed_csv(root / "data.csv")
    cfg = make_cfg("data.csv", target="label", drop=["row_id"])
    return root, prepare_data(cfg, root)


# --- sources -------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "task", "rows", "features", "classes", "image_shape"), [
    ("digits", "classification", 1797, 64, 10, (1, 8, 8)),
    ("breast_cancer", "classification", 569, 30, 2, None),
    ("wine", "classification", 178, 13, 3, None),
    ("iris", "classification", 150, 4, 3, None),
    ("diabetes", "regression", 442, 10, None, None),
])
def test_sklearn_sources_load_with_the_right_shape(
    name: str, task: str, rows: int, features: int, classes: int | None,
    image_shape: tuple[int, ...] | None,
) -> None:
    with running_phase("finalize"):
        bundle = prepare_data(make_cfg(f"sklearn:{name}", task), Path("."))
        test = bundle.test(phase="finalize")
    assert len(bundle.train) + len(bundle.val) + len(test) == rows
    assert bundle.spec.n_features == features == bundle.train.X.shape[1]
    assert bundle.spec.n_classes == classes
    assert bundle.spec.image_shape == image_shape
    for split in (bundle.train, bundle.val, test):
        assert split.X.dtype == np.float32 and np.isfinite(split.X).all()
        assert split.y.dtype == (np.int64 if task == "classification" else np.float32)
    if classes:
        assert bundle.spec.class_labels == list(range(classes))


def test_unknown_sklearn_name_lists_the_known_ones() -> None:
    with pytest.raises(DataError) as exc:
        prepare_data(make_cfg("sklearn:digit"), Path("."))
    assert "did you mean 'sklearn:digits'" in exc.value.message
    for name in ("digits", "breast_cancer", "wine", "iris", "diabetes"):
        assert name in exc.value.message


def test_npz_source_with_images(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    X = rng.random((90, 6, 5)).astype(np.float32)
    y = np.repeat([0, 1, 2], 30)
    np.savez(tmp_path / "imgs.npz", X=X, y=y)
    bundle = prepare_data(make_cfg("imgs.npz"), tmp_path)
    assert bundle.spec.image_shape == (1, 6, 5)
    assert bundle.spec.n_features == 30 and bundle.spec.feature_names[:2] == ["x0", "x1"]
    assert bundle.fingerprints["data"] == source_fingerprint(make_cfg("imgs.npz"), tmp_path)


PY_SOURCES = {
    "tuple": "def load():\n    return X, y\n",
    "frame": "def load():\n    df = pd.DataFrame(X, columns=['a', 'b', 'c'])\n"
             "    df['kind'] = y\n    return df\n",
}


@pytest.mark.parametrize("returns", sorted(PY_SOURCES))
def test_python_source(tmp_path: Path, returns: str) -> None:
    module = f"mydata_{returns}"
    (tmp_path / f"{module}.py").write_text(
        "import numpy as np\nimport pandas as pd\n"
        "rng = np.random.default_rng(0)\nX = rng.random((60, 3))\n"
        "y = np.array(['cat', 'dog'] * 30)\n" + PY_SOURCES[returns]
    )
    cfg = make_cfg(f"python:{module}:load", target="kind" if returns == "frame" else None)
    bundle = prepare_data(cfg, tmp_path)
    assert bundle.spec.n_features == 3 and bundle.spec.class_labels == ["cat", "dog"]
    assert str(tmp_path) not in sys.path  # the project root is put back off the path
    assert len(source_fingerprint(cfg, tmp_path)) == 64


def test_python_source_fingerprint_does_not_run_the_module(tmp_path: Path) -> None:
    pkg = tmp_path / "datapkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("open('ran-init', 'w').close()\n")
    (pkg / "rows.py").write_text("open('ran-module', 'w').close()\ndef load(): ...\n")
    cfg = make_cfg("python:datapkg.rows:load")
    before = source_fingerprint(cfg, tmp_path)
    assert not list(Path(".").glob("ran-*")) and not list(tmp_path.glob("ran-*"))
    (pkg / "rows.py").write_text("def load():\n    return 1\n")
    assert source_fingerprint(cfg, tmp_path) != before


@pytest.mark.parametrize(("body", "expected"), [
    ("raise ImportError('no such thing')", "cannot import module"),
    ("def load():\n    return 42", "must return (X, y) arrays or a pandas DataFrame"),
    ("def load():\n    raise RuntimeError('boom')", "load() raised RuntimeError: boom"),
    ("def lod():\n    return 1", "did you mean 'lod'"),
])
def test_python_source_failures_are_data_errors(tmp_path: Path, body: str, expected: str) -> None:
    module = f"bad_{abs(hash(body))}"
    (tmp_path / f"{module}.py").write_text(body + "\n")
    with pytest.raises(DataError) as exc:
        prepare_data(make_cfg(f"python:{module}:load"), tmp_path)
    assert expected in exc.value.message and module in exc.value.message


def _contract_case(name: str, root: Path) -> MltConfig:
    rng = np.random.default_rng(3)
    X, y = rng.random((40, 3)), np.repeat([0, 1], 20)
    if name == "csv":
        pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "t": y}).to_csv(root / "c.csv", index=False)
        return make_cfg("c.csv", target="t")
    if name == "npz":
        np.savez(root / "c.npz", X=X, y=y)
        return make_cfg("c.npz")
    if name == "python":
        (root / "contract_mod.py").write_text(
            "import numpy as np\ndef load():\n    return np.eye(4).repeat(10, 0), "
            "np.arange(40) % 2\n")
        return make_cfg("python:contract_mod:load")
    if name == "imagefolder":
        from PIL import Image

        for i in range(8):
            (root / "img" / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
            Image.fromarray((X[i, :1] * 255 * np.ones((4, 4))).astype(np.uint8)).save(
                root / "img" / f"c{i % 2}" / f"{i}.png")
        return make_cfg("imagefolder:img")
    if name == "text":
        (root / "t.jsonl").write_text("".join(
            f'{{"text": "row {i}", "label": {i % 2}}}\n' for i in range(10)))
        return make_cfg("t.jsonl", target="label")
    return make_cfg("sklearn:iris")


@pytest.mark.parametrize("source_cls", SOURCES, ids=lambda c: c.name)
def test_every_source_meets_the_contract(source_cls: Any, tmp_path: Path) -> None:
    cfg = _contract_case(source_cls.name, tmp_path)
    assert source_cls.handles(cfg.data.source)
    assert [c for c in SOURCES if c.handles(cfg.data.source)] == [source_cls]
    source = source_cls()
    fp = source.fingerprint(cfg, tmp_path)
    assert len(fp) == 64 and fp == source.fingerprint(cfg, tmp_path)
    raw = source.load(cfg, tmp_path)
    if not isinstance(raw, RawData):  # item data: a lazily read dataset
        from mltrainer.data._items import ItemData

        assert isinstance(raw, ItemData)
        n = len(raw.dataset)
        assert n == len(raw.labels) == len(raw.digests) and raw.digests.shape[1] == 32
        assert raw.data_hash == fp and isinstance(raw.describe(0), str)
        return
    assert all(isinstance(c, str) for c in raw.frame.columns)
    assert isinstance(raw.frame.index, pd.RangeIndex)
    assert raw.target in raw.frame.columns
    assert raw.data_hash is None or len(raw.data_hash) == 64


# --- the split -----------------------------------------------------------------------------


def test_split_is_deterministic_by_seed_and_changes_with_it() -> None:
    a = prepare_data(make_cfg("sklearn:wine", seed=7), Path("."))
    b = prepare_data(make_cfg("sklearn:wine", seed=7), Path("."))
    c = prepare_data(make_cfg("sklearn:wine", seed=8), Path("."))
    assert np.array_equal(a.train.raw_index, b.train.raw_index)
    assert np.array_equal(a.train.X, b.train.X)
    assert a.fingerprints == b.fingerprints
    assert not np.array_equal(a.train.raw_index, c.train.raw_index)
    assert a.fingerprints["train"] != c.fingerprints["train"]
    assert a.fingerprints["data"] == c.fingerprints["data"]
    assert a.split_info["seed"] == 7 and c.split_info["seed"] == 8


def test_stratification_keeps_class_proportions() -> None:
    with running_phase("finalize"):
        bundle = prepare_data(make_cfg("sklearn:breast_cancer", val=0.2, test=0.2), Path("."))
        test = bundle.test("finalize")
    assert bundle.split_info["stratified"] is True
    splits = {"train": bundle.train, "val": bundle.val, "test": test}
    overall = np.concatenate([s.y for s in splits.values()]).mean()
    for name, split in splits.items():
        assert abs(split.y.mean() - overall) < 0.02, name
        counts = bundle.split_info["class_counts"][name]
        assert sum(counts.values()) == len(split) == bundle.split_info["sizes"][name]


def test_impossible_stratification_is_dropped_with_its_reason(tmp_path: Path) -> None:
    rows = "\n".join(f"{i},{'rare' if i == 0 else ('a' if i % 2 else 'b')}" for i in range(40))
    (tmp_path / "rare.csv").write_text("x,y\n" + rows + "\n")
    bundle = prepare_data(make_cfg("rare.csv", target="y"), tmp_path)
    assert bundle.split_info["stratified"] is False
    assert "least populated class" in bundle.split_info["stratify_note"]
    assert sum(c["rare"] for c in bundle.split_info["class_counts"].values()) == 1


def test_regression_split_is_not_stratified() -> None:
    bundle = prepare_data(make_cfg("sklearn:diabetes", "regression"), Path("."))
    assert bundle.split_info["stratified"] is False and "class_counts" not in bundle.split_info
    assert bundle.spec.class_labels is None and bundle.spec.n_classes is None


def test_identical_rows_never_cross_splits(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    base = pd.DataFrame({"a": rng.integers(0, 5, 60), "b": rng.choice(["u", "v"], 60),
                         "y": rng.integers(0, 2, 60)}).drop_duplicates(["a", "b"])
    repeats = rng.integers(1, 6, len(base))
    frame = base.loc[base.index.repeat(repeats)].sample(frac=1.0, random_state=1)
    frame.to_csv(tmp_path / "dups.csv", index=False)
    with running_phase("finalize"):
        bundle = prepare_data(make_cfg("dups.csv", target="y", val=0.25, test=0.25), tmp_path)
        test = bundle.test("finalize")
    rows = frame.reset_index(drop=True)
    keys = {name: {tuple(r) for r in rows.loc[split.raw_index, ["a", "b"]].itertuples(index=False)}
            for name, split in (("train", bundle.train), ("val", bundle.val), ("test", test))}
    assert not keys["train"] & keys["val"]
    assert not keys["train"] & keys["test"]
    assert not keys["val"] & keys["test"]
    assert bundle.duplicates["train_val"] == bundle.duplicates["train_test"] == 0
    assert bundle.duplicates["val_test"] == 0
    assert bundle.duplicates["within_data"] == len(frame) - len(base)


def test_split_membership_follows_content_not_row_order(tmp_path: Path) -> None:
    frame = pd.read_csv(write_mixed_csv(tmp_path / "a.csv"))
    frame.sample(frac=1.0, random_state=3).to_csv(tmp_path / "b.csv", index=False)
    a = prepare_data(make_cfg("a.csv", target="label"), tmp_path)
    b = prepare_data(make_cfg("b.csv", target="label"), tmp_path)
    assert a.fingerprints["data"] != b.fingerprints["data"]
    for split in ("train", "val", "test"):
        assert a.fingerprints[split] == b.fingerprints[split]


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
def test_a_table_in_parquet_or_jsonl_is_the_same_table_as_its_csv(tmp_path: Path,
                                                                   suffix: str) -> None:
    """A .parquet/.jsonl file without a text column is a table (it used to be read as text
    and refused for having no 'text' column): the same split and features as the CSV."""
    frame = pd.read_csv(write_mixed_csv(tmp_path / "a.csv")).drop(columns=["row_id"])
    frame.to_csv(tmp_path / "a.csv", index=False)
    if suffix == ".parquet":
        frame.to_parquet(tmp_path / "a.parquet")
    else:
        frame.to_json(tmp_path / "a.jsonl", orient="records", lines=True)
    a = prepare_data(make_cfg("a.csv", target="label"), tmp_path)
    b = prepare_data(make_cfg(f"a{suffix}", target="label"), tmp_path)
    assert b.spec.modality == "table" and b.spec.feature_names == a.spec.feature_names
    for split in ("train", "val"):
        assert np.array_equal(getattr(a, split).raw_index, getattr(b, split).raw_index)
        assert np.allclose(getattr(a, split).X, getattr(b, split).X, equal_nan=True)


def test_init_from_a_parquet_table_writes_a_table_project(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from mltrainer.cli import cli

    frame = pd.read_csv(write_mixed_csv(tmp_path / "a.csv"))
    frame.to_parquet(tmp_path / "a.parquet")
    result = CliRunner().invoke(cli, ["init", str(tmp_path / "p"), "--data",
                                      str(tmp_path / "a.parquet"), "--target", "label"])
    assert result.exit_code == 0, result.output
    import yaml

    cfg = yaml.safe_load((tmp_path / "p" / "mlt.yaml").read_text())
    assert cfg["model"]["kind"] == "mlp" and "text_column" not in cfg["data"]


def test_init_from_data_leaves_out_the_text_columns_plan_would_refuse(tmp_path: Path) -> None:
    """A date or an identifier stored as text (every value distinct) is no category: plan
    refuses it as a feature (exit 2), so the config `mlt init --data` writes drops it, says
    so, and plan then passes. A text column of few values stays a feature."""
    from click.testing import CliRunner

    from mltrainer.cli import cli

    rng = np.random.default_rng(0)
    n = 200
    x = rng.normal(size=n)
    pd.DataFrame({"x": x, "when": pd.date_range("2020-01-01", periods=n).astype(str),
                  "order": [f"A-{i:05d}" for i in rng.permutation(n)],
                  "colour": rng.choice(["red", "green"], size=n),
                  "label": np.where(x > 0, "yes", "no")}).to_csv(tmp_path / "t.csv", index=False)
    root = tmp_path / "p"
    runner = CliRunner()
    result = runner.invoke(cli, ["init", str(root), "--data", str(tmp_path / "t.csv"),
                                 "--target", "label"])
    assert result.exit_code == 0, result.output
    assert "note: data.drop leaves out 'when', 'order'" in result.stderr
    import yaml

    cfg = yaml.safe_load((root / "mlt.yaml").read_text())
    assert cfg["data"]["drop"] == ["when", "order"]
    cfg["training"]["epochs"] = 1
    (root / "mlt.yaml").write_text(yaml.safe_dump(cfg))
    plan = runner.invoke(cli, ["plan", "-C", str(root), "--json"])
    assert plan.exit_code == 0, plan.output
    assert json.loads(plan.stdout)["gate"]["passed"]


@pytest.mark.parametrize(("name", "fragment"), [
    ("a.npz", "the archive has no array 'y'; it holds 'X'"),  # was a KeyError crash (exit 1)
    ("a.tsv", "save the table as .csv"),
])
def test_init_from_data_it_cannot_read_is_exit_2_naming_the_fix(
        tmp_path: Path, name: str, fragment: str) -> None:
    from click.testing import CliRunner

    from mltrainer.cli import cli

    if name.endswith(".npz"):
        np.savez(tmp_path / name, X=np.zeros((10, 2)))
    else:
        (tmp_path / name).write_text("a\tlabel\n1\t0\n")
    result = CliRunner().invoke(cli, ["init", str(tmp_path / "p"), "--data",
                                      str(tmp_path / name), "--target", "label"])
    assert result.exit_code == 2 and fragment in result.stderr, result.output
    assert not (tmp_path / "p").exists()


# --- preprocessing -------------------------------------------------------------------------


def test_mixed_csv_is_ready_to_train(mixed: tuple[Path, DataBundle]) -> None:
    _, bundle = mixed
    names = bundle.spec.feature_names
    assert names == ["age", "income", "color=blue", "color=green", "color=red",
                     "city=lima", "city=oslo", "city=paris", "city=rome"]
    assert "row_id" not in " ".join(names)
    assert bundle.spec.class_labels == ["no", "yes"]
    assert np.isnan(bundle.train.encoded[:, 0]).any()  # NaN survives encode; scale fills it
    for split in (bundle.train, bundle.val):
        assert split.X.shape[1] == 9 and not np.isnan(split.X).any()
        onehot = split.X[:, 2:5]
        missing_color = onehot.sum(axis=1) == 0
        assert missing_color.any() and set(np.unique(onehot)) <= {0.0, 1.0}


def test_statistics_come_from_the_train_split_only(mixed: tuple[Path, DataBundle]) -> None:
    root, bundle = mixed
    raw = pd.read_csv(root / "data.csv")
    params = bundle.preprocessor.scale_params
    train_age = raw.loc[bundle.train.raw_index, "age"]
    assert params["fill"][0] == pytest.approx(train_age.median(), rel=1e-6)
    assert params["fill"][0] != pytest.approx(raw["age"].median(), rel=1e-9)
    train_mean = bundle.train.X[:, :2].mean(axis=0)
    val_mean = bundle.val.X[:, :2].mean(axis=0)
    assert np.allclose(train_mean, 0.0, atol=1e-5)
    assert np.allclose(bundle.train.X[:, :2].std(axis=0), 1.0, atol=1e-4)
    assert not np.allclose(val_mean, train_mean, atol=1e-3)
    assert params["mean"][2:] == [0.0] * 7 and params["std"][2:] == [1.0] * 7


def test_unseen_and_missing_categories_encode_as_zeros(mixed: tuple[Path, DataBundle]) -> None:
    _, bundle = mixed
    frame = pd.DataFrame({"age": [30.0, np.nan], "income": [1e4, 2e4],
                          "color": ["purple", None], "city": ["rome", "tokyo"]})
    enc = bundle.preprocessor.encode(frame)
    assert enc[:, 2:5].tolist() == [[0, 0, 0], [0, 0, 0]]
    assert enc[0, 5:].tolist() == [0, 0, 0, 1] and enc[1, 5:].tolist() == [0, 0, 0, 0]
    assert np.isnan(enc[1, 0])
    assert not np.isnan(bundle.preprocessor.transform(frame)).any()


def test_preprocessor_round_trip_is_bitwise(mixed: tuple[Path, DataBundle]) -> None:
    root, bundle = mixed
    frame = pd.read_csv(root / "data.csv").drop(columns=["label", "row_id"])
    record = json.loads(json.dumps(bundle.preprocessor.to_dict()))
    again = Preprocessor.from_dict(record)
    assert again.feature_names == bundle.preprocessor.feature_names
    assert again.scale_params == bundle.preprocessor.scale_params
    first, second = bundle.preprocessor.transform(frame), again.transform(frame)
    assert first.dtype == second.dtype == np.float32
    assert np.array_equal(first.view(np.uint32), second.view(np.uint32))


def test_preprocessor_rejects_a_corrupt_record(mixed: tuple[Path, DataBundle]) -> None:
    record = mixed[1].preprocessor.to_dict()
    record["mean"] = record["mean"][:-1]
    with pytest.raises(StateCorruptError, match="fill/mean/std"):
        Preprocessor.from_dict(record)


def test_constant_column_scales_to_zero() -> None:
    frame = pd.DataFrame({"c": [0.1] * 7, "v": np.arange(7.0)})
    pre = Preprocessor().fit(frame)
    assert pre.scale_params["std"][0] == 1.0
    assert np.abs(pre.transform(frame)[:, 0]).max() < 1e-6


def test_spec_round_trips(mixed: tuple[Path, DataBundle]) -> None:
    spec = mixed[1].spec
    assert DataSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


# --- the test-split lock ------------------------------------------------------------------


@pytest.mark.parametrize("phase", ["plan", "baseline", "diagnose", "optimize", "Finalize", ""])
def test_test_split_is_locked_outside_finalize(phase: str) -> None:
    events: list[dict[str, Any]] = []
    with running_phase(phase):
        bundle = prepare_data(make_cfg("sklearn:iris"), Path("."), audit=events.append)
        with pytest.raises(TestSplitLockedError) as exc:
            bundle.test(phase=phase)
        # asking as finalize would changes nothing: the rows were never built
        with pytest.raises(TestSplitLockedError):
            bundle.test(phase="finalize")
    assert "locked until `mlt finalize`" in exc.value.message
    assert [(e["event"], e["phase"]) for e in events] == [("test_split_denied", phase),
                                                          ("test_split_denied", "finalize")]
    assert "time" in events[0]
    with running_phase("finalize"):
        released = prepare_data(make_cfg("sklearn:iris"), Path("."), audit=events.append)
        test = released.test(phase="finalize")
    assert len(test) == released.split_info["sizes"]["test"]
    assert events[-1]["event"] == "test_split_released"


def test_lock_holds_without_an_audit_callable() -> None:
    bundle = prepare_data(make_cfg("sklearn:iris"), Path("."))
    for phase in ("plan", "finalize"):  # outside any phase nobody gets the rows
        with pytest.raises(TestSplitLockedError):
            bundle.test(phase)
    assert not hasattr(bundle, "test_split") and "test" not in vars(bundle)


def test_library_calls_inside_a_project_are_audited(tmp_path: Path) -> None:
    from mltrainer.project import Project
    from mltrainer.state import read_audit

    project = Project.at(tmp_path)
    project.mlt_dir.mkdir()
    bundle = prepare_data(make_cfg("sklearn:iris"), tmp_path)  # no audit callable passed
    with pytest.raises(TestSplitLockedError):
        bundle.test("finalize")
    assert [e["event"] for e in read_audit(project)] == ["test_split_denied"]


# --- fingerprints --------------------------------------------------------------------------


def test_fingerprints_are_stable_and_follow_a_changed_cell(tmp_path: Path) -> None:
    path = write_mixed_csv(tmp_path / "data.csv")
    cfg = make_cfg("data.csv", target="label")
    first = prepare_data(cfg, tmp_path).fingerprints
    assert first == prepare_data(cfg, tmp_path).fingerprints
    assert first["data"] == source_fingerprint(cfg, tmp_path)
    frame = pd.read_csv(path)
    frame.loc[17, "income"] += 1.0
    frame.to_csv(path, index=False)
    second = prepare_data(cfg, tmp_path).fingerprints
    assert second["data"] != first["data"]
    assert sum(second[s] != first[s] for s in ("train", "val", "test")) >= 1
    assert source_fingerprint(cfg, tmp_path) == second["data"]


def test_sklearn_source_fingerprint_names_the_version() -> None:
    import hashlib
    from importlib import metadata

    expected = f"sklearn:iris@{metadata.version('scikit-learn')}"
    fp = source_fingerprint(make_cfg("sklearn:iris"), Path("."))
    assert fp == hashlib.sha256(expected.encode()).hexdigest()


def test_source_fingerprint_imports_no_pandas_sklearn_or_torch(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("a,y\n1,0\n2,1\n")
    code = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from mltrainer.config import parse_config
        from mltrainer.data import source_fingerprint
        for src in ("d.csv", "sklearn:wine"):
            cfg = parse_config({{"name": "x", "task": "classification", "data": {{"source": src}},
                                "goal": {{"metric": "accuracy", "target": 0.9}}}})
            source_fingerprint(cfg, Path({str(tmp_path)!r}))
        print(sorted(m for m in ("pandas", "sklearn", "torch") if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


# --- bad input -----------------------------------------------------------------------------

BAD_CSV = {
    "ragged": ("a,b,label\n1,2,0\n3,4\n5,6,1,9\n", "ragged rows"),
    "empty": ("", "the file is empty"),
    "header_only": ("a,b,label\n", "no data rows"),
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "binary content"),
    "not_utf8": (b"a,b,label\n1,\xff\xfe,0\n", "not UTF-8"),
    "semicolons": ("a;b;label\n1;2;0\n", "separated by ';'"),
    "dup_header": ("a,a,label\n1,2,0\n", "duplicate column names"),
    "target_missing": ("a,label\n1,0\n2,\n3,1\n", "missing in 1 of 3 rows (line 3)"),
    "typo_target": ("a,lable\n1,0\n2,1\n", "did you mean 'lable'"),
    "inf": ("a,label\n1,0\ninf,1\n", "infinite values"),
    # 1e300 is finite in the file but infinite in the model's float32: a NaN prediction
    "beyond_float32": ("a,label\n1,0\n-1e300,1\n", "values beyond float32's range"),
    # a column of numbers with a decimal comma in one cell is read as text: the cell is named,
    # not the column called an identifier
    "decimal_comma": ("a,label\n" + "".join(f"{i / 7:.4f},{i % 2}\n" for i in range(80))
                      + '"1,5",0\n', "column 'a' holds numbers, but 1 cell(s) are not numbers "
                                      "(line 82): '1,5'"),
}


@pytest.mark.parametrize("case", sorted(BAD_CSV))
def test_bad_csv_gives_a_data_error_naming_the_file(tmp_path: Path, case: str) -> None:
    content, expected = BAD_CSV[case]
    path = tmp_path / "broken.csv"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DataError) as exc:
        prepare_data(make_cfg("broken.csv", target="label"), tmp_path)
    assert "broken.csv" in exc.value.message
    assert expected in exc.value.message


@pytest.mark.parametrize(("source", "expected"), [
    ("nowhere.csv", "no such file"),
    ("nowhere.npz", "no such file"),
])
def test_missing_files(tmp_path: Path, source: str, expected: str) -> None:
    for call in (lambda c: prepare_data(c, tmp_path), lambda c: source_fingerprint(c, tmp_path)):
        with pytest.raises(DataError) as exc:
            call(make_cfg(source, target="y"))
        assert source in exc.value.message and expected in exc.value.message


@pytest.mark.parametrize(("arrays", "expected"), [
    ({"features": np.zeros((4, 2)), "y": np.zeros(4)}, "no array 'X'; it holds 'features', 'y'"),
    ({"X": np.zeros((4, 2))}, "no array 'y'"),
    ({"X": np.zeros((4, 2)), "y": np.zeros(5)}, "X has 4 rows but y has 5"),
])
def test_bad_npz(tmp_path: Path, arrays: dict[str, np.ndarray], expected: str) -> None:
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError) as exc:
        prepare_data(make_cfg("bad.npz"), tmp_path)
    assert "bad.npz" in exc.value.message and expected in exc.value.message


def test_npz_that_is_not_an_archive(tmp_path: Path) -> None:
    (tmp_path / "junk.npz").write_bytes(b"definitely not a zip file")
    with pytest.raises(DataError, match="junk.npz: not a readable .npz archive"):
        prepare_data(make_cfg("junk.npz"), tmp_path)


@pytest.mark.parametrize(("task", "target", "expected"), [
    ("regression", "color", "is not numeric"),
    ("classification", "score", "fractional numbers"),
    (None, None, "data.target is not set"),
])
def test_target_must_fit_the_task(tmp_path: Path, task: str | None, target: str | None,
                                  expected: str) -> None:
    (tmp_path / "t.csv").write_text("color,score,x\nred,0.5,1\nblue,1.5,2\nred,2.5,3\n")
    with pytest.raises(DataError, match=expected):
        prepare_data(make_cfg("t.csv", task or "classification", target=target), tmp_path)


def test_drop_of_an_unknown_column_says_did_you_mean(tmp_path: Path) -> None:
    write_mixed_csv(tmp_path / "data.csv")
    with pytest.raises(DataError, match=r"'rowid'.*did you mean 'row_id'"):
        prepare_data(make_cfg("data.csv", target="label", drop=["rowid"]), tmp_path)


def test_identifier_like_text_column_is_refused(tmp_path: Path) -> None:
    n = 200
    pd.DataFrame({"name": [f"person-{i}" for i in range(n)], "x": np.arange(n),
                  "y": np.arange(n) % 2}).to_csv(tmp_path / "ids.csv", index=False)
    with pytest.raises(DataError, match=r"'name'.*identifier") as exc:
        prepare_data(make_cfg("ids.csv", target="y"), tmp_path)
    assert "ids.csv" in exc.value.message and "data.drop" in (exc.value.hint or "")


# --- trivial baseline ----------------------------------------------------------------------


def test_trivial_baseline_classification() -> None:
    bundle = prepare_data(make_cfg("sklearn:breast_cancer"), Path("."))
    base = trivial_baseline(bundle, "accuracy")
    majority = int(np.bincount(bundle.train.y).argmax())
    assert base["predictor"] == "majority_class" and base["predicts"] == majority
    assert base["accuracy"] == pytest.approx((bundle.val.y == majority).mean())
    assert base["roc_auc"] == 0.5 and 0 < base["f1_macro"] < base["accuracy"]
    freqs = np.bincount(bundle.train.y) / len(bundle.train)
    assert base["loss"] == pytest.approx(-np.log(freqs[bundle.val.y]).mean())


@pytest.mark.parametrize("standardize", [True, False])
def test_trivial_baseline_regression(standardize: bool) -> None:
    cfg = make_cfg("sklearn:diabetes", "regression")
    cfg.data.standardize_target = standardize
    bundle = prepare_data(cfg, Path("."))
    base = trivial_baseline(bundle, "rmse")
    y_train = bundle.train.y.astype(np.float64)
    mean = float(y_train.mean())
    err = bundle.val.y.astype(np.float64) - mean
    # metrics and what it predicts in the target's units, whatever the training units
    assert base["predictor"] == "train_mean" and base["predicts"] == pytest.approx(mean)
    assert base["rmse"] == pytest.approx(np.sqrt((err**2).mean()))
    assert base["mae"] == pytest.approx(np.abs(err).mean()) and base["r2"] <= 0.0
    # the loss on the training loss's scale: standardised targets divide the MSE by std**2
    std = float(y_train.std()) if standardize else 1.0
    assert base["loss"] == pytest.approx((err**2).mean() / std**2, rel=1e-5)
    scale = bundle.spec.target_scale
    if standardize:
        assert (scale.mean, scale.std) == pytest.approx((mean, std), rel=1e-6)
        assert base["target_scale"] == scale.to_dict() and 0.5 < base["loss"] < 2.0
    else:
        assert scale is None and "target_scale" not in base
    json.dumps(base)


def _reference_scale_params(frame: pd.DataFrame) -> list[np.ndarray]:
    """fill/mean/std of numeric columns computed one 1-D column at a time, as the per-column
    code that `Preprocessor.fit` vectorised did."""
    fill, mean, std = [], [], []
    eps = float(np.finfo(np.float32).eps)
    for name in frame.columns:
        col = frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
        col = col.astype(np.float32).astype(np.float64)  # encode() is float32
        seen = col[~np.isnan(col)]
        fill.append(float(np.median(seen)) if len(seen) else 0.0)
        filled = np.where(np.isnan(col), fill[-1], col)
        mean.append(float(filled.mean()))
        spread = float(filled.std())
        std.append(spread if spread > eps * max(1.0, abs(mean[-1])) else 1.0)
    return [np.asarray(a, dtype=np.float32) for a in (fill, mean, std)]


def _numeric_frame(kind: str) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 1001
    if kind == "float32":
        return pd.DataFrame(rng.normal(size=(n, 5)).astype(np.float32), columns=list("abcde"))
    frame = pd.DataFrame({"a": rng.normal(scale=1e4, size=n), "b": rng.normal(size=n)})
    frame.loc[rng.random(n) < 0.2, "b"] = np.nan  # gaps: filled with the median of the rest
    frame["nan"] = np.nan  # all missing: fill 0, constant
    frame["const"] = 3.25
    frame["big"] = rng.integers(-2**62, 2**62, size=n)  # int64 → float64 → float32
    frame["flag"] = rng.random(n) < 0.3
    if kind == "with a nullable column":  # pandas' Int64: encoded column by column
        frame["nullable"] = pd.array([None if i % 7 == 0 else i for i in range(n)],
                                     dtype="Int64")
    return frame


@pytest.mark.parametrize("kind", ["float32", "numpy numbers", "with a nullable column"])
def test_preprocessor_scale_params_are_the_per_column_ones_bit_for_bit(kind: str) -> None:
    frame = _numeric_frame(kind)
    pre = Preprocessor().fit(frame)
    got = [np.asarray(pre.scale_params[k], dtype=np.float32) for k in ("fill", "mean", "std")]
    for name, a, b in zip(("fill", "mean", "std"), got, _reference_scale_params(frame),
                          strict=True):
        assert a.tobytes() == b.tobytes(), name
    encoded = pre.encode(frame)
    want = np.stack([frame[c].to_numpy(dtype=np.float64, na_value=np.nan) for c in frame.columns],
                    axis=1).astype(np.float32)
    assert encoded.dtype == np.float32 and encoded.tobytes() == want.tobytes()


@pytest.mark.parametrize(("values", "refused", "stray"), [
    ([f"2020-01-{i % 28 + 1:02d}T{i:03d}" for i in range(100)], True, 0),  # an id, a timestamp
    ([f"{i / 3:.3f}" for i in range(99)] + ["1,5"], False, 1),  # numbers with a decimal comma
    ([f"{i / 3:.3f}" for i in range(80)] + [f"n{i}" for i in range(20)], True, 0),  # 80 %: text
    (["red", "green", "1"] * 40, False, 0),  # a category that holds a number
])
def test_plan_and_init_agree_on_what_a_text_column_is(values: list[str], refused: bool,
                                                      stray: int) -> None:
    """`mlt init --data` drops a column exactly when plan would refuse it as a category, and a
    column of numbers with a typo is neither: plan names the cells (check_features)."""
    from mltrainer.data._preprocess import refused_as_category, stray_text

    col = pd.Series(values, dtype=object)
    assert refused_as_category(col) == refused
    assert int(stray_text(col).sum()) == stray


def test_categories_only_val_or_test_hold_are_counted_at_plan(tmp_path: Path) -> None:
    """A category train never holds is encoded as none of the known ones in val and test: the
    split record counts those rows per split and column (it was silent), and nothing when every
    category is in train."""
    rng = np.random.default_rng(1)
    n = 400
    frame = pd.DataFrame({"x": rng.normal(size=n), "shop": rng.choice(["a", "b", "c"], size=n),
                          "colour": rng.choice(["red", "blue"], size=n)})
    frame.loc[range(0, 40, 2), "shop"] = [f"rare{i}" for i in range(20)]
    frame.loc[3, "shop"] = None  # missing: not a category
    frame["label"] = np.where(frame.x > 0, "p", "n")
    frame.to_csv(tmp_path / "d.csv", index=False)
    bundle = prepare_data(make_cfg("d.csv", target="label"), tmp_path, cache=False)
    seen = set(frame.loc[bundle.train.raw_index, "shop"].dropna())
    expected = {}
    parts = {"val": bundle.val, "test": bundle._test_rows()}  # (the lock is not the point)
    for split in ("val", "test"):
        rows = frame.loc[parts[split].raw_index, "shop"]
        count = int((rows.notna() & ~rows.isin(seen)).sum())
        if count:
            expected[split] = {"shop": count}
    assert expected and bundle.split_info["unseen_categories"] == expected
    frame["shop"] = rng.choice(["a", "b"], size=n)
    frame.to_csv(tmp_path / "d.csv", index=False)
    assert "unseen_categories" not in prepare_data(make_cfg("d.csv", target="label"), tmp_path,
                                                   cache=False).split_info


@pytest.mark.parametrize(("majority", "metric"), [(0.97, "f1_macro"), (0.6, "accuracy")])
def test_init_from_imbalanced_data_sets_a_goal_plan_accepts(tmp_path: Path, majority: float,
                                                            metric: str) -> None:
    """With 97 % of one class, accuracy's trivial baseline (0.97) is above the 0.9 goal init
    wrote, and plan refused its own config (goal_set); init now picks f1_macro and says why."""
    from click.testing import CliRunner

    from mltrainer.cli import cli

    rng = np.random.default_rng(0)
    n = 600
    x = rng.normal(size=n)
    rare = np.argsort(-x)[: round(n * (1 - majority))]
    label = np.full(n, "ok", dtype=object)
    label[rare] = "fraud"
    pd.DataFrame({"x": x, "y": rng.normal(size=n), "label": label}).to_csv(tmp_path / "t.csv",
                                                                          index=False)
    root = tmp_path / "p"
    runner = CliRunner()
    result = runner.invoke(cli, ["init", str(root), "--data", str(tmp_path / "t.csv"),
                                 "--target", "label"])
    assert result.exit_code == 0, result.output
    assert ("note: goal.metric is f1_macro: class 'ok' holds 97% of the rows" in
            " ".join(result.stderr.split())) == (metric == "f1_macro")
    import yaml

    cfg = yaml.safe_load((root / "mlt.yaml").read_text())
    assert cfg["goal"]["metric"] == metric
    cfg["training"]["epochs"] = 1
    (root / "mlt.yaml").write_text(yaml.safe_dump(cfg))
    plan = runner.invoke(cli, ["plan", "-C", str(root), "--json"])
    assert plan.exit_code == 0 and json.loads(plan.stdout)["gate"]["passed"], plan.output
