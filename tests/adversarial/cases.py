"""The table: bad inputs and faults, by group, each with the exit code the contract names.

Exit codes: 0 done · 1 failed phase / unexpected · 2 bad input, config, environment ·
3 refused by a gate or by state · 130 interrupted (checkpoint saved).
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import yaml
from harness import (
    Case,
    disk_full,
    holder_record,
    lock_held,
    memory_cap,
    read_only,
    signal_at_first_epoch,
)

# ------------------------------------------------------------------ setup helpers


def _npz_with_objects(root: Path) -> None:
    import numpy as np

    np.savez(root / "data.npz", X=np.array([{"evil": 1}] * 10, dtype=object),
             y=np.arange(10))


def cfg_text(text: str) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        (root / "mlt.yaml").write_text(text, encoding="utf-8")
    return setup


def cfg_bytes(blob: bytes) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        (root / "mlt.yaml").write_bytes(blob)
    return setup


def cfg_set(**changes: Any) -> Callable[[Path], None]:
    """Set dotted fields of mlt.yaml (`training__lr=...` for training.lr); None deletes."""
    def setup(root: Path) -> None:
        cfg = yaml.safe_load((root / "mlt.yaml").read_text())
        for dotted, value in changes.items():
            *parents, leaf = dotted.split("__")
            node = cfg
            for key in parents:
                node = node.setdefault(key, {})
            if value is None:
                node.pop(leaf, None)
            else:
                node[leaf] = value
        (root / "mlt.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return setup


def cfg_append(text: str) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        with open(root / "mlt.yaml", "a", encoding="utf-8") as fh:
            fh.write(text)
    return setup


def write(rel: str, content: str | bytes) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return setup


def chain(*steps: Callable[[Path], None]) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        for step in steps:
            step(root)
    return setup


def remove(rel: str) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        import shutil

        path = root / rel
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    return setup


def state_edit(fn: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        path = root / ".mlt" / "state.json"
        state = json.loads(path.read_text())
        fn(state)
        path.write_text(json.dumps(state, indent=2))
    return setup


def checkpoint(root: Path, name: str = "last.pt") -> Path:
    runs = sorted((root / "runs").glob("*-baseline-*"))
    return runs[-1] / "checkpoints" / name


def ckpt_bytes(transform: Callable[[bytes], bytes], names: tuple[str, ...] = ("last.pt",)
               ) -> Callable[[Path], None]:
    """Rewrite checkpoints of the baseline run (last.pt by default; all of them with "*")."""
    def setup(root: Path) -> None:
        folder = checkpoint(root).parent
        targets = sorted(folder.glob("*.pt")) if names == ("*",) else [folder / n for n in names]
        for path in targets:
            path.write_bytes(transform(path.read_bytes()))
    return setup


def csv_data(text: str | bytes) -> Callable[[Path], None]:
    return write("data.csv", text)


def factory(body: str, kind: str = "python:usermodel:build", **params: Any
            ) -> Callable[[Path], None]:
    return chain(write("usermodel.py", body),
                 cfg_set(model={"kind": kind, **({"params": params} if params else {})}))


def data_fn(body: str) -> Callable[[Path], None]:
    return chain(write("userdata.py", body), cfg_set(data__source="python:userdata:load",
                                                     data__target=None))


BASE = """\
name: iris-adversarial
task: classification
data: {source: data.csv, target: species}
goal: {metric: accuracy, target: 0.5}
"""

ALIAS_BOMB = BASE + "model:\n  kind: mlp\n  params:\n    a: &a [1,1,1,1,1,1,1,1,1]\n" + "".join(
    f"    {n}: &{n} [{','.join(['*' + p] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi"))

GOOD_FACTORY = """
import torch
def build(input_spec, output_spec, **params):
    return torch.nn.Linear(input_spec["n_features"], output_spec["n_outputs"])
"""
SEVEN_LOGITS = """
import torch
def build(input_spec, output_spec, **params):
    return torch.nn.Linear(input_spec["n_features"], 7)
"""
EXITS = """
import sys
def build(input_spec, output_spec, **params):
    sys.exit(0)
"""
OOM = """
def build(input_spec, output_spec, **params):
    raise MemoryError()
"""
NOT_A_MODULE = """
def build(input_spec, output_spec, **params):
    return "a string"
"""
RAISES = """
def build(input_spec, output_spec, **params):
    raise ValueError("no such layer")
"""
PACKAGE_INIT = """
from pathlib import Path
Path(__file__).resolve().parent.parent.joinpath("EXECUTED").write_text("status ran me")
"""
DATA_EXITS = "import sys\ndef load():\n    sys.exit(3)\n"
DATA_RAISES = "def load():\n    raise RuntimeError('database down')\n"
DATA_WRONG = "def load():\n    return 42\n"
DATA_NO_FN = "def other():\n    return None\n"

IRIS_HEAD = "sepal_length,sepal_width,petal_length,petal_width,species\n"


def no_file(name: str) -> Callable[[Path, dict[str, Any]], str | None]:
    def after(root: Path, _: dict[str, Any]) -> str | None:
        return f"{name} was created" if (root / name).exists() else None
    return after


def state_says(phase: str, status: str) -> Callable[[Path, dict[str, Any]], str | None]:
    def after(root: Path, _: dict[str, Any]) -> str | None:
        state = json.loads((root / ".mlt" / "state.json").read_text())
        got = state["phases"].get(phase, {}).get("status")
        return None if got == status else f"{phase} is {got!r}, want {status!r}"
    return after


def has_waiver(root: Path, _: dict[str, Any]) -> str | None:
    state = json.loads((root / ".mlt" / "state.json").read_text())
    return None if state["waivers"].get("plan", {}).get("goal_set") else "no waiver recorded"


def resumable(root: Path, _: dict[str, Any]) -> str | None:
    from mltrainer.engine import find_resume_checkpoint
    from mltrainer.engine.runfolder import latest_resumable
    from mltrainer.errors import MltError

    run = latest_resumable(root / "runs", "baseline")
    try:
        find_resume_checkpoint(run)
    except MltError as exc:
        return f"not resumable: {exc.message}"
    return None


def status_works(root: Path, _: dict[str, Any]) -> str | None:
    from click.testing import CliRunner

    from mltrainer.cli import cli

    res = CliRunner().invoke(cli, ["-C", str(root), "--json", "status"])
    return None if res.exit_code == 0 else f"status after the kill: exit {res.exit_code}"


class AuditGrows:
    """True once the audit log holds more `event` lines than when first asked."""

    def __init__(self, event: str) -> None:
        self.event, self.start = event.encode(), None

    def __call__(self, root: Path) -> bool:
        count = (root / ".mlt" / "audit.jsonl").read_bytes().count(self.event)
        if self.start is None:
            self.start = count
        return count > self.start


def _bad_audit_line(root: Path) -> None:
    with open(root / ".mlt" / "audit.jsonl", "ab") as fh:
        fh.write(b'{"event": "note", "text": "\xff\xfe"}\n')


# ------------------------------------------------------------------ the table

CONFIG = [
    Case("alias-bomb-status", "config", ["status"], 2, cfg_text(ALIAS_BOMB),
         says="expands to more than", child={"as_mb": 2048}),
    Case("alias-bomb-validate", "config", ["config", "validate"], 2, cfg_text(ALIAS_BOMB),
         says="expands to more than", child={"as_mb": 2048}),
    Case("alias-bomb-plan", "config", ["plan"], 2, cfg_text(ALIAS_BOMB),
         says="expands to more than", child={"as_mb": 2048}),
    Case("alias-small-ok", "config", ["config", "validate"], 0,
         cfg_text(BASE + "training: &t {epochs: 2}\noptimize: {trials: 3}\n")),
    Case("duplicate-top-key", "config", ["status"], 2, cfg_append("name: again\n"),
         says="duplicate key 'name'"),
    Case("duplicate-nested-key", "config", ["plan"], 2,
         cfg_text(BASE + "training:\n  lr: 0.1\n  lr: 0.2\n"), says="duplicate key 'lr'"),
    Case("duplicate-key-in-flow", "config", ["config", "validate"], 2,
         cfg_text(BASE + "training: {epochs: 1, epochs: 2}\n"), says="duplicate key"),
    Case("deep-nesting-recursion", "config", ["status"], 2,
         cfg_text(BASE + "model: {params: {x: " + "[" * 1500 + "]" * 1500 + "}}\n"),
         says="nested more than"),
    Case("deep-nesting-60", "config", ["config", "validate"], 2,
         cfg_text(BASE + "model: {params: {x: " + "[" * 60 + "]" * 60 + "}}\n"),
         says="nested more than"),
    Case("lr-inf", "config", ["plan"], 2, cfg_set(training__lr=float("inf")),
         says="must be finite"),
    Case("lr-nan", "config", ["status"], 2, cfg_text(BASE + "training: {lr: .nan}\n"),
         says="must be finite"),
    Case("goal-target-inf", "config", ["config", "validate"], 2,
         cfg_text(BASE.replace("target: 0.5", "target: .inf")), says="must be finite"),
    Case("params-nan", "config", ["config", "validate"], 2,
         cfg_text(BASE + "model: {kind: mlp, params: {scale: .nan}}\n"), says="finite"),
    Case("threshold-inf", "config", ["config", "validate"], 2,
         cfg_text(BASE + "diagnose: {thresholds: {nan_loss: {x: -.inf}}}\n"), says="finite"),
    Case("dropout-neg-inf", "config", ["config", "validate"], 2,
         cfg_text(BASE + "model: {dropout: -.inf}\n")),
    Case("lr-negative", "config", ["plan"], 2, cfg_set(training__lr=-0.1),
         says="training.lr"),
    Case("lr-zero", "config", ["config", "validate"], 2, cfg_set(training__lr=0)),
    Case("epochs-zero", "config", ["plan"], 2, cfg_set(training__epochs=0)),
    Case("epochs-string", "config", ["config", "validate"], 2, cfg_set(training__epochs="ten")),
    Case("batch-size-zero", "config", ["config", "validate"], 2,
         cfg_set(training__batch_size=0)),
    Case("seed-negative", "config", ["config", "validate"], 2, cfg_set(seed=-1)),
    Case("typo-top-level", "config", ["status"], 2, cfg_append("trainig: {epochs: 3}\n"),
         says="did you mean"),
    Case("typo-nested", "config", ["plan"], 2, cfg_set(training__lrr=0.1), says="training.lr"),
    Case("task-unknown", "config", ["config", "validate"], 2, cfg_set(task="clustering")),
    Case("metric-wrong-task", "config", ["config", "validate"], 2, cfg_set(goal__metric="rmse"),
         says="does not fit task"),
    Case("source-missing", "config", ["config", "validate"], 2, cfg_set(data__source=None),
         says="required"),
    Case("name-missing", "config", ["status"], 2, cfg_set(name=None)),
    Case("name-empty", "config", ["config", "validate"], 2, cfg_set(name="")),
    Case("empty-file", "config", ["status"], 2, cfg_text("")),
    Case("config-a-list", "config", ["status"], 2, cfg_text("- a\n- b\n"),
         says="expected a mapping"),
    Case("config-a-scalar", "config", ["plan"], 2, cfg_text("42\n")),
    Case("yaml-syntax", "config", ["status"], 2, cfg_text(BASE + "training: {lr: [1,\n"),
         says="not valid YAML"),
    Case("yaml-tab", "config", ["config", "validate"], 2, cfg_text(BASE + "\tseed: 1\n")),
    Case("config-not-utf8", "config", ["status"], 2, cfg_bytes(b"name: \xff\xfe\n"),
         says="UTF-8"),
    Case("huge-echoed-value", "config", ["config", "validate"], 2,
         cfg_set(training__lr="x" * 100_000)),
    Case("huge-list-value", "config", ["config", "validate"], 2,
         cfg_set(model__hidden=["w"] * 5000)),
    Case("many-errors", "config", ["config", "validate"], 2,
         cfg_set(training__lr=-1, training__epochs=0, training__batch_size=0, seed=-5,
                 training__momentum=5, training__gamma=9, model__dropout=3)),
    Case("split-too-large", "config", ["config", "validate"], 2,
         cfg_set(data__split={"val": 0.5, "test": 0.45}), says="at least 10%"),
    Case("split-zero", "config", ["config", "validate"], 2, cfg_set(data__split={"val": 0})),
    Case("hidden-zero-width", "config", ["plan"], 2, cfg_set(model__hidden=[0])),
    Case("source-bad-scheme", "config", ["status"], 2, cfg_set(data__source="data.txt")),
    Case("kind-unknown", "config", ["config", "validate"], 2, cfg_set(model__kind="transformer")),
    Case("kind-python-malformed", "config", ["config", "validate"], 2,
         cfg_set(model__kind="python:nocolon")),
    Case("threshold-typo", "config", ["status"], 2,
         cfg_set(diagnose__thresholds={"nan_los": {"x": 1.0}})),
    Case("optimizer-unknown", "config", ["config", "validate"], 2,
         cfg_set(training__optimizer="lion")),
    Case("precision-unknown", "config", ["config", "validate"], 2,
         cfg_set(training__precision="fp8")),
    Case("no-config", "config", ["status"], 2, remove("mlt.yaml"), says="no such config"),
    Case("validate-missing-path", "config", ["config", "validate", "{p}/nope.yaml"], 2),
    Case("name-markup-status", "config", ["status"], 0, cfg_set(name="[/] [bold]x[/bold] [red")),
    Case("name-escape-codes", "config", ["status"], 0,
         cfg_set(name="\x1b[31mred\x1b[0m\x07bell")),
    Case("name-markup-plain", "config", ["status"], 0, cfg_set(name="[/]"), json=False),
    # rich would turn ":loop:" into an emoji (as in `python:loop:main`): it is text
    Case("name-emoji-code-plain", "config", ["status"], 0, cfg_set(name="p:loop:x :smile:"),
         json=False, says="p:loop:x :smile:"),
]

MODELS = [
    Case("cnn-on-tabular", "config", ["plan"], 2, cfg_set(model__kind="cnn"),
         says="image"),
    Case("hidden-huge", "config", ["plan"], 2, cfg_set(model__hidden=[10**9]),
         says="parameters", fault=partial(memory_cap, extra_gib=1.0)),
    Case("channels-huge", "config", ["config", "validate"], 0,
         cfg_set(model__channels=[10**6])),  # valid config; only the cnn would be too big
    Case("factory-seven-logits", "config", ["plan"], 2, factory(SEVEN_LOGITS),
         says="7"),
    Case("factory-sys-exit", "config", ["plan"], 1, factory(EXITS), unchanged=None,
         says="python:usermodel:build", after=state_says("plan", "failed")),
    Case("factory-out-of-memory", "config", ["plan"], 1, factory(OOM), unchanged=None,
         says="ran out of memory", after=state_says("plan", "failed")),
    Case("factory-not-a-module", "config", ["plan"], 2, factory(NOT_A_MODULE),
         says="not a torch.nn.Module"),
    Case("factory-raises", "config", ["plan"], 2, factory(RAISES), says="no such layer"),
    Case("factory-missing-module", "config", ["plan"], 2,
         cfg_set(model__kind="python:nowhere:build"), says="cannot import"),
    Case("factory-missing-function", "config", ["plan"], 2,
         factory(GOOD_FACTORY, kind="python:usermodel:absent"), says="no function"),
    Case("factory-syntax-error", "config", ["plan"], 2,
         factory("def build(:\n"), says="SyntaxError"),
    Case("status-never-runs-package", "config", ["status"], 0,
         chain(write("pkg/__init__.py", PACKAGE_INIT), write("pkg/mod.py", GOOD_FACTORY),
               cfg_set(model__kind="python:pkg.mod:build")),
         after=no_file("EXECUTED")),
    Case("validate-never-runs-package", "config", ["config", "validate"], 0,
         chain(write("pkg/__init__.py", PACKAGE_INIT), write("pkg/mod.py", GOOD_FACTORY),
               cfg_set(model__kind="python:pkg.mod:build")),
         after=no_file("EXECUTED")),
]

DATA = [
    Case("csv-missing", "data", ["plan"], 2, remove("data.csv"), says="data.csv"),
    Case("csv-empty", "data", ["plan"], 2, csv_data("")),
    Case("csv-header-only", "data", ["plan"], 2, csv_data(IRIS_HEAD)),
    Case("csv-target-missing", "data", ["plan"], 2, cfg_set(data__target="kind"),
         says="kind"),
    Case("csv-target-nan", "data", ["plan"], 2,
         csv_data(IRIS_HEAD + "".join(f"{i},1,1,1,{'' if i == 3 else 'a' if i % 2 else 'b'}\n"
                                      for i in range(40)))),
    Case("csv-feature-inf", "data", ["plan"], 2,
         csv_data(IRIS_HEAD + "".join(f"{'inf' if i == 5 else i},1,1,1,{'ab'[i % 2]}\n"
                                      for i in range(40)))),
    Case("csv-not-utf8", "data", ["plan"], 2,
         csv_data(IRIS_HEAD.encode() + b"1,2,3,4,\xff\xfe\n" * 30)),
    Case("csv-ragged", "data", ["plan"], 2,
         csv_data(IRIS_HEAD + "".join(f"{i},1,1,1,a{',9' if i == 7 else ''}\n"
                                      for i in range(40)))),
    Case("csv-one-class", "data", ["plan"], 2,
         csv_data(IRIS_HEAD + "".join(f"{i},1,1,1,a\n" for i in range(40)))),
    Case("csv-binary-garbage", "data", ["plan"], 2, csv_data(bytes(range(256)) * 20)),
    Case("csv-changed-after-plan", "data", ["train-baseline"], 3,
         csv_data(IRIS_HEAD + "".join(f"{i},{i % 3},1,1,{'abc'[i % 3]}\n" for i in range(60))),
         unchanged="except-audit", says="mlt plan"),
    Case("npz-corrupt", "data", ["plan"], 2,
         chain(write("data.npz", b"PK\x03\x04 not really a zip"),
               cfg_set(data__source="data.npz"))),
    Case("npz-pickled-objects", "data", ["plan"], 2,
         chain(lambda r: _npz_with_objects(r), cfg_set(data__source="data.npz"))),
    Case("sklearn-unknown", "data", ["plan"], 2, cfg_set(data__source="sklearn:mnist",
                                                         data__target=None),
         says="sklearn:"),
    Case("drop-unknown-column", "data", ["plan"], 2, cfg_set(data__drop=["nope"]),
         says="nope"),
    Case("target-is-dropped", "data", ["plan"], 2, cfg_set(data__drop=["species"])),
    Case("data-fn-raises", "data", ["plan"], 2, data_fn(DATA_RAISES), says="database down"),
    Case("data-fn-wrong-type", "data", ["plan"], 2, data_fn(DATA_WRONG)),
    Case("data-fn-missing", "data", ["plan"], 2, data_fn(DATA_NO_FN)),
    Case("data-fn-sys-exit", "data", ["plan"], 1, data_fn(DATA_EXITS), unchanged=None,
         says="sys.exit", after=state_says("plan", "failed")),
]


STATE = [
    Case("state-garbage", "state", ["status"], 2, write(".mlt/state.json", "{not json"),
         says="state.json"),
    Case("state-garbage-plan", "state", ["plan"], 2, write(".mlt/state.json", "{not json")),
    Case("state-empty", "state", ["status"], 2, write(".mlt/state.json", "")),
    Case("state-a-list", "state", ["status"], 2, write(".mlt/state.json", "[]")),
    Case("state-newer-schema", "state", ["status"], 2,
         state_edit(lambda s: s.update(schema_version=99)), says="newer mlt"),
    Case("state-no-schema", "state", ["train-baseline"], 2,
         state_edit(lambda s: s.pop("schema_version"))),
    Case("state-bad-status", "state", ["status"], 2,
         state_edit(lambda s: s["phases"]["plan"].update(status="exploded"))),
    Case("state-not-utf8", "state", ["status"], 2, write(".mlt/state.json", b"\xff\xfe{}")),
    Case("state-truncated", "state", ["waive", "plan", "goal_set", "--reason",
                                      "the goal is set by the product team"], 2,
         lambda r: (r / ".mlt/state.json").write_bytes(
             (r / ".mlt/state.json").read_bytes()[:200])),
    Case("state-a-folder", "state", ["status"], 2,
         chain(remove(".mlt/state.json"), lambda r: (r / ".mlt/state.json").mkdir())),
    Case("state-outcome-damaged", "state", ["train-baseline"], 2,
         state_edit(lambda s: s["phases"]["plan"]["outcome"].update(seed="many")),
         says="damaged"),
    Case("state-backup-garbage", "state", ["status"], 0, write(".mlt/state.json.bak", "xx")),
    Case("mlt-dir-a-file", "state", ["plan"], 2,
         chain(remove(".mlt"), write(".mlt", "not a folder")), says=".mlt"),
    Case("lock-held", "state", ["plan"], 3, holder_record, fault=lock_held, says="pid 4242"),
    Case("lock-held-waive", "state", ["waive", "plan", "goal_set", "--reason",
                                      "a reason long enough"], 3, holder_record,
         fault=lock_held, says="mlt optimize"),
    Case("lock-stale-record", "state", ["status"], 0,
         write(".mlt/lock", '{"pid": 999999, "command": "mlt plan"}')),
    Case("lock-garbage-record", "state", ["waive", "plan", "goal_set", "--reason",
                                          "stale lock bytes do not matter"], 0,
         write(".mlt/lock", b"\xff\x00garbage"), unchanged=None, after=has_waiver),
    Case("audit-not-utf8", "state", ["status"], 0, _bad_audit_line),
    Case("audit-not-utf8-waive", "state", ["waive", "plan", "goal_set", "--reason",
                                           "a damaged audit line stops nothing"], 0,
         _bad_audit_line, unchanged=None, after=has_waiver),
    Case("out-of-order-finalize", "state", ["finalize"], 3, unchanged="except-audit",
         says="refused"),
    Case("out-of-order-optimize", "state", ["optimize"], 3, unchanged="except-audit"),
    Case("stale-plan-refuses-baseline", "state", ["train-baseline"], 3,
         cfg_set(seed=1), unchanged="except-audit", says="mlt plan"),
]

CHECKPOINTS = [
    Case("resume-no-runs", "checkpoints", ["train-baseline", "--resume"], 2, remove("runs"),
         says="nothing to resume"),
    Case("resume-truncated", "checkpoints", ["train-baseline", "--resume"], 2,
         ckpt_bytes(lambda b: b[: len(b) // 2], ("*",))),
    Case("resume-garbage", "checkpoints", ["train-baseline", "--resume"], 2,
         ckpt_bytes(lambda b: b"\x00garbage" * 100, ("*",))),
    Case("resume-empty-checkpoints", "checkpoints", ["train-baseline", "--resume"], 2,
         lambda r: [p.unlink() for p in checkpoint(r).parent.glob("*.pt")],
         says="no checkpoint"),
    Case("resume-pickle-bomb", "checkpoints", ["train-baseline", "--resume"], 2,
         ckpt_bytes(lambda b: b"\x80\x04cos\nsystem\n(S'touch PWNED'\ntR.", ("*",)),
         after=no_file("PWNED")),
    Case("runs-a-file", "checkpoints", ["train-baseline"], 2,
         chain(remove("runs"), write("runs", "x")), says="runs"),
]


def _latest(root: Path, blob: str) -> None:
    (root / "artifacts").mkdir(exist_ok=True)
    (root / "artifacts" / "latest.json").write_text(blob)


PREDICT = [
    Case("predict-no-artifact", "predict", ["predict", "{p}/data.csv", "--out", "{p}/o.csv"], 3,
         says="mlt finalize"),
    Case("predict-over-config", "predict", ["predict", "{p}/data.csv", "--out", "{p}/mlt.yaml"],
         2, says="project config"),
    Case("predict-over-config-force", "predict",
         ["predict", "{p}/data.csv", "--out", "{p}/mlt.yaml", "--force"], 2),
    Case("predict-over-state", "predict",
         ["predict", "{p}/data.csv", "--out", "{p}/.mlt/state.json", "--force"], 2,
         says=".mlt"),
    Case("predict-over-training-data", "predict",
         ["predict", "{p}/x.csv", "--out", "{p}/data.csv", "--force"], 2,
         says="training data"),
    Case("predict-over-input", "predict",
         ["predict", "{p}/data.csv", "--out", "{p}/data.csv"], 2),
    Case("predict-over-input-force", "predict",
         ["predict", "{p}/in.csv", "--out", "{p}/in.csv", "--force"], 2,
         write("in.csv", IRIS_HEAD), says="input"),
    Case("predict-into-runs", "predict",
         ["predict", "{p}/data.csv", "--out", "{p}/runs/preds.csv", "--force"], 2),
    Case("predict-into-artifacts", "predict",
         ["predict", "{p}/data.csv", "--out", "{p}/artifacts/preds.csv"], 2),
    Case("predict-over-source", "predict",
         ["predict", "{p}/data.csv", "--out", "{p}/model.py", "--force"], 2,
         write("model.py", "x = 1\n"), says="Python source"),
    Case("predict-existing-out", "predict",
         ["predict", "{p}/data.csv", "--out", "{p}/old.csv"], 2, write("old.csv", "keep me\n"),
         says="--force"),
    Case("predict-existing-out-force", "predict",
         ["predict", "{p}/data.csv", "--out", "{p}/old.csv", "--force"], 3,
         write("old.csv", "keep me\n"), says="mlt finalize"),
    Case("predict-out-a-folder", "predict", ["predict", "{p}/data.csv", "--out", "{p}/runs"],
         2),
    Case("predict-latest-garbage", "predict",
         ["predict", "{p}/data.csv", "--out", "{p}/o.csv"], 2,
         lambda r: _latest(r, "{garbage")),
    Case("predict-latest-missing-folder", "predict",
         ["predict", "{p}/data.csv", "--out", "{p}/o.csv"], 2,
         lambda r: _latest(r, json.dumps({"dir": "artifacts/abc", "artifact_hash": "abc"}))),
    Case("predict-latest-outside", "predict",
         ["predict", "{p}/data.csv", "--out", "{p}/o.csv"], 2,
         lambda r: _latest(r, json.dumps({"dir": "../../etc", "artifact_hash": "abc"}))),
]

CLI = [
    Case("unknown-command", "cli", ["nonsense"], 2),
    Case("unknown-option", "cli", ["plan", "--bogus"], 2),
    Case("missing-argument", "cli", ["signoff"], 2),
    Case("bad-int-option", "cli", ["optimize", "--trials", "abc"], 2),
    Case("missing-required-option", "cli", ["waive", "plan", "goal_set"], 2),
    Case("waive-markup-reason", "cli",
         ["waive", "plan", "goal_set", "--reason", "[/] closing [bold]tags[/] are text",
          "--by", "[red]ana"], 0, unchanged=None, after=has_waiver),
    Case("waive-escape-reason", "cli",
         ["waive", "plan", "goal_set", "--reason", "\x1b[2J cleared the screen?"], 0,
         unchanged=None, after=has_waiver),
    Case("waive-short-reason", "cli", ["waive", "plan", "goal_set", "--reason", "meh"], 2,
         says="too short"),
    Case("waive-unknown-item", "cli", ["waive", "plan", "nope", "--reason", "x" * 20], 2),
    Case("waive-unknown-phase", "cli", ["waive", "deploy", "x", "--reason", "x" * 20], 2),
    Case("signoff-auto-item", "cli", ["signoff", "plan", "seeds_fixed", "--by", "ana"], 2,
         says="checked automatically"),
    Case("signoff-before-artifact", "cli",
         ["signoff", "finalize", "fairness_review", "--by", "ana"], 3, says="no artifact"),
    Case("signoff-markup-by", "cli",
         ["signoff", "finalize", "fairness_review", "--by", "[/]ana[bold"], 3),
    Case("signoff-empty-by", "cli", ["signoff", "finalize", "fairness_review", "--by", " "], 2),
    Case("explain-unknown", "cli", ["explain", "everything"], 2),
    Case("report-unknown-phase", "cli", ["report", "deploy"], 2),
    Case("report-no-gate-yet", "cli", ["report", "diagnose"], 2),
    Case("diagnose-missing-metrics", "cli", ["diagnose", "--metrics", "{p}/nope.jsonl"], 2),
    Case("init-existing", "cli", ["init", "{p}"], 2, says="already"),
    Case("init-unknown-example", "cli", ["init", "{p}/new", "--example", "mnist"], 2),
    Case("demo-non-empty", "cli", ["demo", "--dir", "{p}"], 2, says="not empty"),
    Case("dir-is-a-file", "cli", ["-C", "{p}/mlt.yaml", "status"], 2),
    Case("dir-missing", "cli", ["-C", "{p}/nowhere", "status"], 2),
    Case("help", "cli", ["--help"], 0, json=False),
    Case("resume-flag-value", "cli", ["train-baseline", "--resume=yes"], 2),
]

KILLS = [
    Case("sigint-during-training", "kills", ["train-baseline"], 130, unchanged=None,
         fault=lambda r: signal_at_first_epoch(r, signal.SIGINT), after=resumable,
         says="--resume"),
    Case("sigterm-during-training", "kills", ["train-baseline"], 130, unchanged=None,
         fault=lambda r: signal_at_first_epoch(r, signal.SIGTERM), after=resumable),
    Case("kill-9-during-plan", "kills", ["plan"], -9, unchanged=None, json=False,
         child={"kill": signal.SIGKILL, "kill_when": AuditGrows("phase_started")},
         after=status_works),
    # a scheduler's SIGTERM outside training ends the phase as Ctrl-C does: recorded, exit 130
    Case("sigterm-during-plan", "kills", ["plan"], 130, unchanged=None, json=False,
         child={"kill": signal.SIGTERM, "kill_when": AuditGrows("phase_started")},
         after=state_says("plan", "failed"), says="interrupted"),
    Case("dead-holder-lock", "kills", ["waive", "plan", "goal_set", "--reason",
                                       "the holder died long ago"], 0,
         write(".mlt/lock", '{"pid": 1, "host": "x", "command": "mlt plan"}'), unchanged=None,
         after=has_waiver),
    Case("interrupted-then-stale-tmp", "kills", ["status"], 0,
         write(".mlt/.state.json.12345.tmp", "{half")),
    Case("stale-staging-left", "kills", ["status"], 0,
         write("artifacts/.staging-dead/model.onnx", b"\x00" * 10)),
]

DISK = [
    Case("read-only-plan", "disk", ["plan"], 2, fault=read_only, says="read-only"),
    Case("read-only-waive", "disk", ["waive", "plan", "goal_set", "--reason",
                                     "reason long enough here"], 2, fault=read_only),
    Case("read-only-baseline", "disk", ["train-baseline"], 2, fault=read_only),
    Case("read-only-status", "disk", ["status"], 0, fault=read_only),
    Case("read-only-report", "disk", ["report"], 2, fault=read_only),
    Case("read-only-init", "disk", ["init", "{p}/sub"], 2, fault=read_only),
    Case("disk-full-plan", "disk", ["plan"], 2, fault=disk_full, says="no space"),
    Case("disk-full-waive", "disk", ["waive", "plan", "goal_set", "--reason",
                                     "reason long enough here"], 2, fault=disk_full),
    Case("disk-full-baseline", "disk", ["train-baseline"], 2, fault=disk_full),
    Case("file-size-limit-plan", "disk", ["plan"], 2, child={"fsize": 2048},
         says="file-size limit"),
]

CASES: list[Case] = [*CONFIG, *MODELS, *DATA, *STATE, *CHECKPOINTS, *PREDICT, *CLI, *KILLS,
                     *DISK]
