"""What keeps short runs cheap: the prepared-data cache between commands (and what it must
never do), and the imports each command's path is allowed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from mltrainer.config import parse_config
from mltrainer.data import DataBundle, cache_prepared, prepare_data, running_phase
from mltrainer.errors import DataError, TestSplitLockedError

REPO = Path(__file__).resolve().parents[1]


def csv_project(root: Path, rows: int = 120) -> Path:
    """An mlt project folder (`.mlt/` present) with a small CSV of numbers and text."""
    (root / ".mlt").mkdir(parents=True)
    lines = ["a,b,color,label"] + [
        f"{i % 13},{(i * 7) % 5}.5,{['red', 'blue', ''][i % 3]},{['x', 'y'][(i * i) % 2]}"
        for i in range(rows)]
    (root / "data.csv").write_text("\n".join(lines) + "\n")
    return root


def cfg_for(source: str = "data.csv", seed: int = 3) -> object:
    return parse_config({"name": "t", "task": "classification", "seed": seed,
                         "data": {"source": source, "target": "label"},
                         "goal": {"metric": "accuracy", "target": 0.9}})


def entries(root: Path) -> list[Path]:
    folder = root / ".mlt" / "cache" / "data"
    return sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def same(a: DataBundle, b: DataBundle) -> bool:
    with running_phase("finalize"):  # the test split is released while finalize runs
        tests = (a.test("finalize"), b.test("finalize"))
    splits = [(a.train, b.train), (a.val, b.val), tests]
    return (all(x.X.tobytes() == y.X.tobytes() and x.y.tobytes() == y.y.tobytes()
                and np.array_equal(x.raw_index, y.raw_index)
                and x.encoded.tobytes() == y.encoded.tobytes() for x, y in splits)
            and a.fingerprints == b.fingerprints and a.split_info == b.split_info
            and a.duplicates == b.duplicates and a.spec == b.spec and a.source == b.source
            and a.preprocessor.to_dict() == b.preprocessor.to_dict())


def test_a_cache_hit_is_the_bundle_the_source_gives(tmp_path: Path) -> None:
    root = csv_project(tmp_path)
    cfg = cfg_for()
    fresh = prepare_data(cfg, root, cache=False)
    assert entries(root) == []  # cache=False reads and writes nothing
    cache_prepared(cfg, root, fresh)
    assert len(entries(root)) == 1
    hit = prepare_data(cfg, root)
    assert hit._test is None  # the test rows stay on disk until finalize asks
    assert same(hit, fresh)


def test_test_rows_are_read_from_the_cache_only_in_finalize(tmp_path: Path) -> None:
    root = csv_project(tmp_path)
    cfg = cfg_for()
    cache_prepared(cfg, root, prepare_data(cfg, root, cache=False))
    denied: list[dict] = []
    hit = prepare_data(cfg, root, audit=denied.append)
    with pytest.raises(TestSplitLockedError):
        hit.test("optimize")
    assert hit._test is None and denied[0]["phase"] == "optimize"
    with running_phase("finalize"):
        assert len(hit.test("finalize")) == hit.split_info["sizes"]["test"]


def test_no_bundle_leaves_data_preparation_with_test_rows_in_memory(tmp_path: Path) -> None:
    """A miss, plan's store, and a source the cache cannot hold (`python:`) all hand out
    bundles without test rows; finalize gets the same rows back, from the cache entry or by
    preparing the source again - and a source whose rows changed since is refused."""
    root = csv_project(tmp_path)
    cfg = cfg_for()
    reference = prepare_data(cfg, root, cache=False)  # plan's bundle before it is stored
    with running_phase("finalize"):
        expected = reference.test("finalize")
    miss = prepare_data(cfg, root)  # the first command after a data change
    assert miss._test is None and len(entries(root)) == 1
    planned = prepare_data(cfg, root, cache=False)
    cache_prepared(cfg, root, planned)
    assert planned._test is None
    (root / "mod.py").write_text(
        "from pathlib import Path\n"
        "import pandas as pd\n"
        "def rows():\n"
        "    return pd.read_csv(Path(__file__).parent / 'data.csv')\n")
    pycfg = cfg_for("python:mod:rows")
    unhashed = prepare_data(pycfg, root)
    assert unhashed._test is None and len(entries(root)) == 1  # not cacheable: nothing stored
    with running_phase("finalize"):
        for bundle in (miss, planned):
            got = bundle.test("finalize")
            assert got.X.tobytes() == expected.X.tobytes()
            assert np.array_equal(got.raw_index, expected.raw_index)
        assert len(unhashed.test("finalize")) == len(expected)
    unhashed2 = prepare_data(pycfg, root)
    text = (root / "data.csv").read_text().splitlines()
    (root / "data.csv").write_text("\n".join(text[:-5]) + "\n")  # rows changed since the split
    with running_phase("finalize"), pytest.raises(DataError, match="not the ones prepared before"):
        unhashed2.test("finalize")


@pytest.mark.parametrize("damage", ["flip a byte of train.npz", "truncate val.npz",
                                    "garble meta.json", "remove test.npz"])
def test_a_damaged_entry_is_ignored_and_rebuilt(tmp_path: Path, damage: str) -> None:
    root = csv_project(tmp_path)
    cfg = cfg_for()
    fresh = prepare_data(cfg, root, cache=False)
    cache_prepared(cfg, root, fresh)
    [entry] = entries(root)
    if damage.startswith("flip"):
        data = bytearray((entry / "train.npz").read_bytes())
        data[len(data) // 2] ^= 0xFF
        (entry / "train.npz").write_bytes(bytes(data))
    elif damage.startswith("truncate"):
        (entry / "val.npz").write_bytes((entry / "val.npz").read_bytes()[:100])
    elif damage.startswith("garble"):
        (entry / "meta.json").write_text("{not json")
    else:
        (entry / "test.npz").unlink()
    again = prepare_data(cfg, root)
    assert same(again, fresh)  # the test file's damage shows in finalize, which rebuilds
    assert same(prepare_data(cfg, root), fresh)


def test_changed_data_config_or_seed_misses(tmp_path: Path) -> None:
    root = csv_project(tmp_path)
    cfg = cfg_for()
    prepare_data(cfg, root)  # a miss prepares and stores
    assert len(entries(root)) == 1
    before = prepare_data(cfg, root).fingerprints
    other_seed = prepare_data(cfg_for(seed=4), root)
    assert other_seed.fingerprints["train"] != before["train"]
    (root / "data.csv").write_text((root / "data.csv").read_text().replace("red", "green"))
    changed = prepare_data(cfg, root)
    assert changed.fingerprints["data"] != before["data"]
    assert len(entries(root)) == 3


def test_only_projects_and_content_fingerprinted_sources_are_cached(tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "data.csv").write_text("a,label\n" + "\n".join(f"{i},{i % 2}" for i in range(40)))
    prepare_data(cfg_for(), bare)
    assert not (bare / ".mlt").exists()  # not an mlt project: nothing written
    root = csv_project(tmp_path / "proj")
    (root / "rows.py").write_text("import numpy as np\ndef load():\n"
                                  "    return np.arange(80.0).reshape(40, 2), np.arange(40) % 2\n")
    cfg = parse_config({"name": "t", "task": "classification",
                        "data": {"source": "python:rows:load"},
                        "goal": {"metric": "accuracy", "target": 0.9}})
    prepare_data(cfg, root)
    assert entries(root) == []  # its fingerprint is the module's code, not the rows


def run_python(code: str, cwd: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


HEAVY = ("torch", "numpy", "pandas", "sklearn", "scipy", "matplotlib", "optuna", "onnx",
         "onnxruntime", "jinja2", "torch._dynamo")


@pytest.mark.parametrize("args", [["--help"], ["status"], ["train-baseline", "--help"]])
def test_help_and_status_import_nothing_heavy(tmp_path: Path, args: list[str]) -> None:
    csv_project(tmp_path)
    (tmp_path / "mlt.yaml").write_text("name: t\ntask: classification\ndata: {source: data.csv, "
                                       "target: label}\ngoal: {metric: accuracy, target: 0.9}\n")
    loaded = run_python(f"""
        import json, sys
        from mltrainer.cli import cli
        try:
            cli({args!r}, prog_name="mlt")
        except SystemExit:
            pass
        print(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))
    """, tmp_path)
    assert not any(loaded.values()), loaded


def test_the_command_collects_less_often_and_not_at_exit(tmp_path: Path) -> None:
    """`mlt` (cli.main) raises the collector's first threshold and freezes what is alive once
    every other exit handler has run: the interpreter's exit collections have nothing to
    traverse. The command's output and exit code are its own."""
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent("""
            import atexit, gc, sys
            atexit.register(lambda: print("at exit", gc.get_threshold(), gc.get_freeze_count() > 0,
                                          file=sys.stderr))
            from mltrainer.cli import main
            sys.argv = ["mlt", "--version"]
            main()
        """)], cwd=tmp_path, capture_output=True, text=True, check=False,
        env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith(__import__("mltrainer").__version__)
    assert out.stderr.strip().splitlines()[-1] == "at exit (10000, 10, 10) True"


def test_a_cache_hit_and_the_training_path_import_no_pandas_sklearn_or_scipy(
        tmp_path: Path) -> None:
    root = csv_project(tmp_path)
    cfg = cfg_for()
    cache_prepared(cfg, root, prepare_data(cfg, root, cache=False))
    loaded = run_python("""
        import json, sys
        from pathlib import Path
        from mltrainer.config import parse_config
        from mltrainer.data import prepare_data
        import mltrainer.engine, mltrainer.detectors, mltrainer.phases.baseline.phase
        cfg = parse_config({"name": "t", "task": "classification", "seed": 3,
                            "data": {"source": "data.csv", "target": "label"},
                            "goal": {"metric": "accuracy", "target": 0.9}})
        bundle = prepare_data(cfg, Path("."))
        print(json.dumps({m: m in sys.modules for m in
                          ("pandas", "sklearn", "scipy", "matplotlib", "optuna", "onnx")}))
    """, root)
    assert not any(loaded.values()), loaded


def test_deterministic_flags_without_loading_the_compiler(tmp_path: Path) -> None:
    state = run_python("""
        import json, sys
        import torch
        from mltrainer.engine import set_deterministic
        flags = set_deterministic()
        loaded = "torch._inductor" in sys.modules
        import torch._inductor.config as inductor
        print(json.dumps({"flags": flags["use_deterministic_algorithms"], "loaded": loaded,
                          "kernels": torch.are_deterministic_algorithms_enabled(),
                          "inductor": inductor.deterministic}))
    """, tmp_path)
    assert state == {"flags": True, "loaded": False, "kernels": True, "inductor": True}


@pytest.mark.parametrize("seed", range(6))
def test_average_ranks_are_scipys_rankdata(seed: int) -> None:
    from scipy.stats import rankdata

    from mltrainer.engine.metrics import average_ranks

    rng = np.random.default_rng(seed)
    a = rng.integers(0, 4, (25, 3)).astype(np.float64) / 3  # many ties
    if seed % 2:
        a[rng.integers(0, 25), 1] = np.nan  # that column ranks as NaN
    if seed % 3 == 0:
        a[:5, 2] = [np.inf, -np.inf, np.inf, 0.0, -0.0]
    assert average_ranks(a).tobytes() == rankdata(a, axis=0).tobytes()


def test_a_file_digest_is_reused_only_while_the_file_is_unchanged(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One command hashes its data file once (`reuse`), and again whenever it changed; a file
    changed within the last moments (git's "racy" case) is always hashed again."""
    import hashlib

    from mltrainer import hashing

    monkeypatch.setattr(hashing, "_DIGESTS", {})
    reads: list[Path] = []
    real = hashing._sha256
    monkeypatch.setattr(hashing, "_sha256", lambda p: reads.append(p) or real(p))
    path = tmp_path / "d.bin"
    path.write_bytes(b"abc")
    want = hashlib.sha256(b"abc").hexdigest()
    assert hashing.sha256_file(path, reuse=True) == hashing.sha256_file(path, reuse=True) == want
    assert len(reads) == 2  # just written: not settled, hashed each time
    monkeypatch.setattr(hashing, "_SETTLED_NS", 0)
    assert [hashing.sha256_file(path, reuse=True) for _ in range(3)] == [want] * 3
    assert len(reads) == 3  # settled: hashed once more, then reused
    path.write_bytes(b"abcd")
    assert hashing.sha256_file(path, reuse=True) == hashlib.sha256(b"abcd").hexdigest()
    assert hashing.sha256_file(path) == hashlib.sha256(b"abcd").hexdigest()
    assert len(reads) == 5  # changed: hashed again; without `reuse`: always


@pytest.mark.parametrize(("cpus", "load", "spare"), [
    (2, 0.4, True), (2, 1.4, True), (2, 1.6, False), (2, 11.0, False), (1, 0.2, False),
    (16, 9.0, True)])
def test_a_helper_process_starts_only_when_a_core_is_spare(
        monkeypatch: pytest.MonkeyPatch, cpus: int, load: float, spare: bool) -> None:
    """The report's figures and fANOVA move to a fresh interpreter only when it can run beside
    the command: on a loaded machine it would only add its own imports to the work. (A fork,
    which imports nothing twice, starts whatever the load: `test_report.py`.)"""
    from mltrainer import background

    monkeypatch.setattr(background, "can_fork", lambda: False)  # torch loaded: no fork
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus)), raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    assert background.spare_core() is spare
    # the report drawer: the command that waits for its figures is idle, not a busy process
    assert background.spare_core(waiting=1) is (cpus >= 2 and load - 1 < cpus - 0.5)
    started = background.Child.start("json")  # any module: only whether it starts matters
    assert (started is not None) is spare
    if started is not None:
        started.close()


def test_a_forked_child_answers_only_when_its_work_had_no_other_effect(tmp_path: Path) -> None:
    """`background.Forked`: the value comes back as computed; a failure, a warning or a
    death in the child means the caller computes it itself (every effect then as before)."""
    answers = run_python("""
        import json, os, sys, warnings
        import numpy as np
        from mltrainer.background import Forked

        def ok():
            return {"pid": os.getpid(), "x": np.arange(300_000, dtype=np.float32)}

        def fails():
            raise ValueError("bad data")

        def warns():
            warnings.warn("a dtype warning")
            return 1

        def dies():
            os._exit(3)

        here = os.getpid()
        out = {}
        for fn in (ok, fails, warns, dies):
            forked = Forked.start(fn)
            value = forked.receive(otherwise=lambda: "here")
            out[fn.__name__] = value if isinstance(value, str) else {
                "other_pid": value["pid"] != here,
                "same": bool((value["x"] == np.arange(300_000, dtype=np.float32)).all())}
        out["torch_loaded_no_fork"] = (__import__("torch") and Forked.start(ok)) is None
        print(json.dumps(out))
    """, tmp_path)
    assert answers == {"ok": {"other_pid": True, "same": True}, "fails": "here",
                       "warns": "here", "dies": "here", "torch_loaded_no_fork": True}


def test_plan_prepares_a_table_in_a_forked_child_with_the_same_outcome(tmp_path: Path) -> None:
    """`mlt plan` on a table imports torch while a forked child prepares the data: the
    command's own process never imports pandas or scikit-learn, and it records what the
    in-process preparation records (here: a pytest process, where torch is loaded already)."""
    from mltrainer.commands import run_phase
    from mltrainer.project import Project

    config = ("name: t\ntask: classification\nseed: 3\ndata: {source: data.csv, target: label}\n"
              "model: {kind: mlp, hidden: [8]}\ntraining: {epochs: 1, batch_size: 16}\n"
              "goal: {metric: accuracy, target: 0.9}\n")
    roots = [csv_project(tmp_path / name) for name in ("forked", "here")]
    for root in roots:
        (root / "mlt.yaml").write_text(config)
    loaded = run_python("""
        import json, sys
        from mltrainer.cli import cli
        try:
            cli(["--json", "plan"], prog_name="mlt")
        except SystemExit as exc:
            assert not exc.code, exc.code
        print(json.dumps({m: m in sys.modules for m in ("pandas", "sklearn", "torch")}))
    """, roots[0])
    assert loaded == {"pandas": False, "sklearn": False, "torch": True}
    run_phase(Project.at(roots[1]), "plan")

    def outcome(root: Path) -> dict:
        plan = json.loads((root / ".mlt" / "state.json").read_text())["phases"]["plan"]
        return {k: v for k, v in plan["outcome"].items() if k != "environment"}

    assert outcome(roots[0]) == outcome(roots[1])
    assert outcome(roots[0])["determinism"]["reproduced"] is True
