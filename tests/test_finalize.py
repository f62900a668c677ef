"""The finalize phase end to end, on real training and real exports.

Two projects are built once per module through the CLI and copied by the tests that change
them: digits on the fast path (init → plan → train-baseline → finalize), and a CSV with text
categories and missing values trained by a model factory (LayerNorm, GELU, an embedding).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from mltrainer.cli import cli

pytestmark = pytest.mark.slow

FORMATS = ("onnx", "torchscript", "pt2")
MANUAL = ("data_governance_licence", "model_code_review", "fairness_review",
          "intended_use_approved", "rollback_and_monitoring_plan")

FACTORY = '''
import torch
from torch import nn


class Net(nn.Module):
    """An embedding of a bucketised feature, LayerNorm and GELU."""

    def __init__(self, n_features: int, n_out: int, width: int = 16) -> None:
        super().__init__()
        self.register_buffer("edges", torch.tensor([-1.0, 0.0, 1.0]))
        self.emb = nn.Embedding(4, 4)
        self.inp = nn.Linear(n_features + 4, width)
        self.norm = nn.LayerNorm(width)
        self.act = nn.GELU()
        self.head = nn.Linear(width, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bucket = torch.bucketize(x[:, 0].contiguous(), self.edges)
        h = torch.cat([x, self.emb(bucket)], dim=1)
        return self.head(self.act(self.norm(self.inp(h))))


def build(input_spec, output_spec, **params):
    return Net(input_spec["n_features"], output_spec["n_outputs"], **params)
'''


def mlt(*args: str) -> tuple[int, dict[str, Any] | None, str]:
    """Run the CLI in-process with --json; return (exit code, parsed stdout, stderr)."""
    res = CliRunner().invoke(cli, [*args, "--json"], catch_exceptions=False)
    out = res.stdout.strip()
    return res.exit_code, (json.loads(out) if out else None), res.stderr


def edit_config(root: Path, **sections: dict[str, Any]) -> None:
    cfg = yaml.safe_load((root / "mlt.yaml").read_text())
    for name, values in sections.items():
        cfg[name] = {**cfg.get(name, {}), **values} if isinstance(values, dict) else values
    (root / "mlt.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))


def state_outcome(root: Path) -> dict[str, Any]:
    state = json.loads((root / ".mlt" / "state.json").read_text())
    return state["phases"]["finalize"]["outcome"]


def items_of(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {i["id"]: i for i in result["gate"]["items"]}


def audit_events(root: Path, event: str) -> list[dict[str, Any]]:
    lines = (root / ".mlt" / "audit.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["event"] == event]


def build_project(root: Path, example: str, **sections: dict[str, Any]) -> dict[str, Any]:
    assert mlt("init", str(root), "--example", example)[0] == 0
    edit_config(root, **sections)
    for command in ("plan", "train-baseline"):
        code, result, err = mlt(command, "-C", str(root))
        assert code == 0, (command, err, result)
    code, result, err = mlt("finalize", "-C", str(root))
    assert code == 3, err  # blocked on the manual sign-offs only
    return result


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("digits") / "proj"
    result = build_project(
        root, "digits", model={"hidden": [32], "dropout": 0.0},
        training={"epochs": 4, "lr": 0.003}, goal={"target": 0.5},
        finalize={"bootstrap": 200})
    return root, result


@pytest.fixture
def digits_copy(digits: tuple[Path, dict[str, Any]], tmp_path: Path) -> Path:
    dest = tmp_path / "proj"
    shutil.copytree(digits[0], dest)
    return dest


@pytest.fixture(scope="module")
def tabular(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A CSV project: text categories, missing numbers and categories, text labels, and a
    python: model factory."""
    root = tmp_path_factory.mktemp("tabular") / "proj"
    root.mkdir()
    rng = np.random.default_rng(0)
    n = 400
    a, b = rng.normal(size=n), rng.normal(size=n)
    color = rng.choice(["red", "green", "blue"], size=n).astype(object)
    size = rng.choice(["S", "M", "L"], size=n)
    label = np.where(a + 1.5 * (color == "red") - 0.5 * b > 0.5, "yes", "no")
    a[rng.random(n) < 0.1] = np.nan
    color[rng.random(n) < 0.1] = None
    import pandas as pd

    pd.DataFrame({"a": a.round(4), "b": b.round(4), "color": color, "size": size,
                  "label": label}).to_csv(root / "data.csv", index=False)
    (root / "mymodels.py").write_text(FACTORY)
    # plan's determinism probe and baseline's reload import the factory from the working
    # directory (they pass no project root): build from inside the project until they do.
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        result = build_project(
            root, "breast_cancer", name="tabular-demo",
            data={"source": "data.csv", "target": "label",
                  "split": {"val": 0.2, "test": 0.2, "stratify": True}},
            model={"kind": "python:mymodels:build", "params": {"width": 16}},
            training={"epochs": 6, "lr": 0.01}, goal={"target": 0.55},
            finalize={"bootstrap": 200})
    return root, result


# -- the fast path --------------------------------------------------------------------------


def test_fast_path_ends_with_verified_exports_waiting_only_on_signoffs(
        digits: tuple[Path, dict[str, Any]]) -> None:
    root, result = digits
    assert result["phase"] == "finalize" and result["gate"]["passed"] is False
    items = items_of(result)
    assert len(items) == 25
    auto = {k: v for k, v in items.items() if v["kind"] == "auto"}
    assert {k for k, v in items.items() if v["kind"] == "manual"} == set(MANUAL)
    assert all(v["status"] == "pass" for v in auto.values()), {
        k: v["evidence"] for k, v in auto.items() if v["status"] != "pass"}
    assert all(items[m]["status"] == "pending" for m in MANUAL)
    assert result["next"] == "mlt signoff finalize data_governance_licence --by NAME"

    test = result["test"]
    assert set(test["metrics"]) == set(test["ci95"]) == {"accuracy", "f1_macro", "roc_auc"}
    for name, value in test["metrics"].items():
        lo, hi = test["ci95"][name]
        assert lo <= value <= hi
    assert [e["format"] for e in result["exports"]] == list(FORMATS)
    for e in result["exports"]:
        assert e["max_abs_diff"] < 1e-4 and e["label_agreement"] == 1.0
        assert e["latency_ms"]["p50"] > 0 and e["latency_ms"]["p95"] >= e["latency_ms"]["p50"]
        assert (root / e["path"]).is_file()

    outcome = state_outcome(root)
    digest = outcome["artifact_hash"]
    assert outcome["reused_test_result"] is False
    assert result.get("artifact_hash", digest) == digest  # top level once the runner copies it
    folder = root / "artifacts" / digest[:12]
    for name in ("model.onnx", "model.ts", "model.pt2", "preprocess.json", "manifest.json",
                 "model_card.md", "DEPLOYMENT.md"):
        assert (folder / name).is_file(), name
    assert json.loads((root / "artifacts" / "latest.json").read_text())["artifact_hash"] == digest
    assert (root / "artifacts" / "model_card.md").read_text() == (
        folder / "model_card.md").read_text()
    final_runs = list((root / "runs").glob("*-final-*"))
    assert len(final_runs) == 1 and outcome["run"]["trained_on"] == ["train", "val"]

    _, status, _ = mlt("status", "-C", str(root))
    assert {p["name"]: p["status"] for p in status["phases"]} == {
        "plan": "passed", "baseline": "passed", "diagnose": "skipped", "optimize": "skipped",
        "finalize": "blocked"}


def test_model_card_has_metadata_sections_and_limitations_left_to_a_person(
        digits: tuple[Path, dict[str, Any]]) -> None:
    from mltrainer.phases.finalize.card import PERSON_MARKER, REQUIRED_SECTIONS

    root, _ = digits
    text = (root / "artifacts" / "model_card.md").read_text()
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["pipeline_tag"] == "tabular-classification"
    results = meta["model-index"][0]["results"][0]
    assert results["dataset"]["split"] == "test"
    assert {m["type"] for m in results["metrics"]} == {"accuracy", "f1_macro", "roc_auc"}
    headings = re.findall(r"^## (.+)$", text, re.MULTILINE)
    assert set(REQUIRED_SECTIONS) <= set(headings)
    limitations = text.split("## Limitations")[1].split("\n## ")[0]
    assert PERSON_MARKER in limitations and "To be written by a person" in limitations
    outcome = state_outcome(root)
    assert outcome["data"]["fingerprints"]["test"][:16] in text
    assert "95 %" in text and outcome["artifact_hash"] in text
    n = outcome["exports"][0]["parity_rows"]  # a table's parity adds the all-missing row
    assert f"on {n} rows (validation rows and one row with every value missing)" in text
    assert "Timed at a 1-minute load average of" in text  # how busy the machine was


def test_deployment_snippet_runs_against_the_artifact(digits: tuple[Path, dict[str, Any]]
                                                      ) -> None:
    import torch

    from mltrainer.config import load_config
    from mltrainer.data import prepare_data
    from mltrainer.engine import load_model_from_checkpoint
    from mltrainer.exporting import build_deployable

    root, _ = digits
    outcome = state_outcome(root)
    folder = root / outcome["artifact"]["dir"]
    text = (folder / "DEPLOYMENT.md").read_text()
    snippet = re.search(r"```python\n(.*?)```", text, re.DOTALL).group(1)
    assert "onnxruntime" in snippet
    proc = subprocess.run([sys.executable, "-c", snippet], cwd=folder, capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])

    cfg = load_config(root / "mlt.yaml")
    bundle = prepare_data(cfg, root)
    model = load_model_from_checkpoint(root / outcome["run"]["checkpoint"], cfg, bundle.spec)
    deployable = build_deployable(model, bundle.preprocessor.scale_params, cfg.task)
    import pandas as pd

    rows = json.loads((folder / "example_input.json").read_text())
    encoded = bundle.preprocessor.encode(pd.DataFrame(rows))
    with torch.inference_mode():
        probs = torch.softmax(deployable(torch.from_numpy(encoded)).double(), dim=1).numpy()
    assert len(got) == len(rows) == 3
    for g, p in zip(got, probs):
        assert g["label"] == bundle.spec.class_labels[int(p.argmax())]
        assert np.allclose([g["probabilities"][str(k)] for k in bundle.spec.class_labels], p,
                           atol=1e-5)


# -- the test split, once -------------------------------------------------------------------


def test_second_finalize_reuses_the_test_result(digits_copy: Path) -> None:
    before = state_outcome(digits_copy)
    code, result, err = mlt("finalize", "-C", str(digits_copy))
    assert code == 3, err
    after = state_outcome(digits_copy)
    assert after["reused_test_result"] is True and result["test"]["reused"] is True
    assert result["test"]["metrics"] == before["test"]["metrics"]
    assert after["artifact_hash"] == before["artifact_hash"]  # same model, same folder
    assert after["artifact"]["reused"] is True
    assert len(audit_events(digits_copy, "test_evaluation")) == 1
    assert len(audit_events(digits_copy, "test_evaluation_reused")) == 1
    assert len(list((digits_copy / "runs").glob("*-final-*"))) == 1  # no retraining
    once = items_of(result)["test_evaluated_once"]
    assert once["status"] == "pass"
    assert once["evidence"]["evaluations_of_this_config_and_data"] == 1


def test_new_config_evaluates_again_only_with_a_reason_and_voids_signoffs(
        digits_copy: Path) -> None:
    old = state_outcome(digits_copy)
    code, signed, _ = mlt("signoff", "finalize", "fairness_review", "--by", "ana",
                          "-C", str(digits_copy))
    assert code == 0 and items_of(signed)["fairness_review"]["status"] == "pass"
    state_before = (digits_copy / ".mlt" / "state.json").read_bytes()

    edit_config(digits_copy, finalize={"retrain": False, "bootstrap": 200})
    code, result, err = mlt("finalize", "-C", str(digits_copy))  # a second config: refused
    assert code == 3 and "gate" not in (result or {}), result
    assert "already spent" in err and "--reevaluate-test --reason" in err
    assert old["evaluation"]["evaluated_at"] in err
    assert (digits_copy / ".mlt" / "state.json").read_bytes() == state_before
    code, _, err = mlt("finalize", "-C", str(digits_copy), "--reevaluate-test")
    assert code == 2 and "--reason" in err
    assert len(audit_events(digits_copy, "test_evaluation")) == 1

    why = "retrain: false | compared on purpose"
    code, result, err = mlt("finalize", "-C", str(digits_copy), "--reevaluate-test",
                            "--reason", why)
    assert code == 3, err
    new = state_outcome(digits_copy)
    assert new["reused_test_result"] is False and new["run"]["retrained"] is False
    # the shipped checkpoint's config, rows, code and environment are the ones plan probed:
    # plan's result stands (retrained on train+val, `old` was probed afresh)
    assert new["determinism"]["reused_from"] == "plan" and new["determinism"]["identical"]
    assert "reused_from" not in old["determinism"] and old["determinism"]["identical"]
    evaluations = audit_events(digits_copy, "test_evaluation")
    assert len(evaluations) == 2 and evaluations[0]["key"] != evaluations[1]["key"]
    assert audit_events(digits_copy, "test_reevaluation_requested")[0]["reason"] == why
    assert new["artifact_hash"] != old["artifact_hash"]
    assert (digits_copy / old["artifact"]["dir"] / "model.onnx").is_file()  # kept
    items = items_of(result)
    assert items["fairness_review"]["status"] == "pending"
    assert "voided" in items["fairness_review"]["evidence"]
    assert items["previous_artifact_kept"]["status"] == "pass"
    assert items["previous_artifact_kept"]["evidence"]["previous"] == [old["artifact"]["dir"]]
    once = items["test_evaluated_once"]
    assert once["status"] == "fail" and once["evidence"]["evaluations_in_project"] == 2
    assert once["evidence"]["reevaluation_reason"] == why
    first = once["evidence"]["other_evaluations"][0]
    assert first["metrics"] == old["test"]["metrics"] and first["reason"] is None
    # the first result stays visible: report, model card, status
    report = (digits_copy / "reports" / "finalize.md").read_text()
    card = (digits_copy / new["model_card"]["path"]).read_text()
    for text in (report, card):
        assert "evaluated 2 times" in text and "retrain: false \\| compared on purpose" in text
        assert f"{old['test']['metrics']['accuracy']:.4f}"[:5] in text
    _, status, err = mlt("status", "-C", str(digits_copy))
    assert "test split evaluated 2 time(s)" in err and why in err
    assert status["test_evaluations"]["count"] == 2
    assert status["test_evaluations"]["evaluations"][0]["metrics"] == old["test"]["metrics"]
    code, waived, _ = mlt("waive", "finalize", "test_evaluated_once", "--reason",
                          "the team agreed to compare both", "-C", str(digits_copy))
    assert items_of(waived)["test_evaluated_once"]["status"] == "waived"


def test_data_changed_since_plan_refuses_before_opening_the_test_split(digits_copy: Path
                                                                       ) -> None:
    """A changed data fingerprint makes plan stale: finalize is refused, nothing evaluated."""
    edit_config(digits_copy, data={"split": {"val": 0.2, "test": 0.15, "stratify": True}})
    code, result, _ = mlt("finalize", "-C", str(digits_copy))
    assert code == 3 and "stale" in result["message"]
    assert len(audit_events(digits_copy, "test_evaluation")) == 1


# -- the gate's checks on crafted or tampered evidence ---------------------------------------


class _Shifted:
    """Adds a constant to a model's outputs: the labels stay, parity breaks."""

    def __new__(cls, model: Any, shift: float) -> Any:
        from torch import nn

        class Shifted(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, x: Any) -> Any:
                return self.model(x) + shift

        return Shifted()


def test_failing_parity_fails_its_gate_item(digits: tuple[Path, dict[str, Any]]) -> None:
    from mltrainer.config import load_config
    from mltrainer.data import prepare_data
    from mltrainer.engine import load_model_from_checkpoint
    from mltrainer.exporting import build_deployable
    from mltrainer.gates import GateContext, evaluate_gate
    from mltrainer.phases.finalize import artifacts, verification
    from mltrainer.project import Project
    from mltrainer.state import load_state

    root, _ = digits
    project = Project.at(root)
    state = load_state(project)
    outcome = json.loads(json.dumps(state.phases["finalize"].outcome))
    cfg = load_config(project.config_path)
    bundle = prepare_data(cfg, root)
    model = load_model_from_checkpoint(root / outcome["run"]["checkpoint"], cfg, bundle.spec)
    shifted = build_deployable(_Shifted(model, 0.01), bundle.preprocessor.scale_params, cfg.task)
    onnx = artifacts.records_from_manifest(root / outcome["artifact"]["dir"])[:1]
    inputs = verification.parity_inputs(bundle.val.encoded[:20], bundle.preprocessor)
    exports, _ = verification.verify_exports(project, shifted, onnx, inputs, cfg.task,
                                             missing_row=True)
    assert exports[0]["passed"] is False and exports[0]["label_agreement"] == 1.0
    outcome["exports"][0] = exports[0]

    from mltrainer.phases.finalize import FinalizeOutcome

    gate = evaluate_gate(GateContext("finalize", cfg, FinalizeOutcome.model_validate(outcome),
                                     state, project))
    items = {i.id: i for i in gate.items}
    assert items["parity_onnx"].status == "fail"
    assert items["parity_onnx"].evidence["max_abs_diff"] > 1e-3
    assert "atol" in items["parity_onnx"].evidence["reason"]
    assert items["parity_torchscript"].status == items["parity_pt2"].status == "pass"


def test_tampered_artifact_fails_the_manifest_and_is_refused_by_predict(digits_copy: Path
                                                                        ) -> None:
    from mltrainer.config import load_config
    from mltrainer.gates import GateContext, registry
    from mltrainer.project import Project
    from mltrainer.state import load_state

    outcome = state_outcome(digits_copy)
    pre = digits_copy / outcome["artifact"]["dir"] / "preprocess.json"
    pre.write_text(pre.read_text().replace('"float32"', '"float64"', 1))
    project = Project.at(digits_copy)
    from mltrainer.phases.finalize import FinalizeOutcome

    ctx = GateContext("finalize", load_config(project.config_path),
                      FinalizeOutcome.model_validate(outcome), load_state(project), project)
    res = registry()["manifest_recorded"](ctx, {})
    assert res.passed is False and res.evidence["mismatched"] == ["preprocess.json"]
    (digits_copy / "in.csv").write_text("x\n1\n")
    code, result, _ = mlt("predict", str(digits_copy / "in.csv"), "--out",
                          str(digits_copy / "p.csv"), "-C", str(digits_copy))
    assert code == 2 and "do not match its manifest" in result["message"]


def test_finalize_interrupted_after_the_test_evaluation_reuses_it(
        digits_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C or SIGTERM while finalize exports (the test split already scored): exit 130, the
    fix says the evaluation is kept, and the re-run reuses it instead of opening test again."""
    from mltrainer.phases.finalize import phase

    edit_config(digits_copy, finalize={"retrain": False, "bootstrap": 200})
    real = phase._ship

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt  # what SIGINT and SIGTERM raise

    monkeypatch.setattr(phase, "_ship", interrupted)
    code, result, err = mlt("finalize", "-C", str(digits_copy), "--reevaluate-test",
                            "--reason", "retrain false compared on purpose")
    assert code == 130 and "is reused, the test split is not opened again" in result["hint"]
    assert len(audit_events(digits_copy, "test_evaluation")) == 2
    monkeypatch.setattr(phase, "_ship", real)
    code, result, err = mlt("finalize", "-C", str(digits_copy))
    assert code == 3 and result["reused_test_result"], err
    assert len(audit_events(digits_copy, "test_evaluation")) == 2


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def _lose_record_and_log(root: Path) -> None:
    (root / ".mlt" / "test_evaluations.json").unlink()
    (root / ".mlt" / "audit.jsonl").unlink()


def _start_the_state_over(root: Path) -> None:
    shutil.rmtree(root / ".mlt")
    for command in ("plan", "train-baseline"):
        assert mlt(command, "-C", str(root))[0] == 0


def _start_over_without_artifacts(root: Path) -> None:
    shutil.rmtree(root / "artifacts")
    _start_the_state_over(root)


def _edit_the_recorded_score(root: Path) -> None:
    path = root / ".mlt" / "test_evaluations.json"
    data = json.loads(path.read_text())
    for record in data["evaluations"].values():
        record["result"]["metrics"]["accuracy"] = 0.999
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("damage", [
    lambda root: (root / ".mlt" / "test_evaluations.json").unlink(),
    _lose_record_and_log, _start_the_state_over, _start_over_without_artifacts,
    _edit_the_recorded_score,
], ids=["record", "record-and-audit-log", "whole-state", "state-and-artifacts", "edited-score"])
def test_lost_or_edited_evaluation_record_is_refused_not_evaluated_again(
        digits_copy: Path, damage: Callable[[Path], None]) -> None:
    """Every file that records the evaluation (the audit log, state.json and its .bak, each
    artifact's manifest, the mark in the judged run's folder) keeps the test split spent:
    deleting or editing some of them is refused before anything trains, and the project is
    left as it was."""
    damage(digits_copy)
    before = _tree(digits_copy)
    code, result, _ = mlt("finalize", "-C", str(digits_copy))
    assert code == 2 and "test_evaluations.json" in result["message"], result
    assert "restore .mlt/test_evaluations.json" in result["hint"]
    assert _tree(digits_copy) == before
    code, status, err = mlt("status", "-C", str(digits_copy))
    assert code == 0 and status["test_evaluations"]["count"] is None
    assert "test_evaluations.json" in status["test_evaluations"]["error"]
    assert "test_evaluations.json" in err


def test_a_nan_test_metric_is_not_taken_for_an_edited_record(tmp_path: Path) -> None:
    """Non-finite outputs give a NaN metric; the record and its audit event both hold it, and
    that is the same evaluation, not a record edited by hand."""
    from mltrainer.phases.finalize.evaluation import (
        AUDIT_EVENT,
        _save,
        require_every_evaluation_recorded,
    )
    from mltrainer.project import Project
    from mltrainer.state import audit

    project = Project(tmp_path)
    project.mlt_dir.mkdir()
    metrics = {"accuracy": 0.5, "roc_auc": float("nan")}
    _save(project, {"k": {"key": "k", "evaluated_at": "t", "result": {"metrics": metrics}}})
    audit(project, AUDIT_EVENT, phase="finalize", key="k", metrics=metrics)
    assert "k" in require_every_evaluation_recorded(project)


def test_status_sees_run_and_artifact_folders_moved_after_their_phase(digits_copy: Path
                                                                      ) -> None:
    """A phase stands on the files its outcome names (the baseline's run, the shipped
    artifact): moved or deleted afterwards, status calls it stale naming the folder, the
    phases after it refuse, and putting the folder back (or re-running) restores the truth."""
    outcome = state_outcome(digits_copy)
    run = digits_copy / json.loads((digits_copy / ".mlt" / "state.json").read_text())[
        "phases"]["baseline"]["outcome"]["run"]["dir"]
    run.rename(digits_copy / "elsewhere")
    _, status, _ = mlt("status", "-C", str(digits_copy))
    views = {p["name"]: p for p in status["phases"]}
    assert views["baseline"]["status"] == "stale", views
    assert f"runs/{run.name} was moved or deleted" in views["baseline"]["reason"]
    assert views["finalize"]["status"] == "stale" and status["next"] == "mlt train-baseline"
    code, result, _ = mlt("finalize", "-C", str(digits_copy))
    assert code == 3 and "baseline is stale" in result["message"]
    assert len(audit_events(digits_copy, "test_evaluation")) == 1
    (digits_copy / "elsewhere").rename(run)
    _, status, _ = mlt("status", "-C", str(digits_copy))
    assert [p["status"] for p in status["phases"]] == [
        "passed", "passed", "skipped", "skipped", "blocked"]

    artifact = digits_copy / outcome["artifact"]["dir"]
    shutil.rmtree(artifact)
    _, status, _ = mlt("status", "-C", str(digits_copy))
    views = {p["name"]: p for p in status["phases"]}
    assert views["finalize"]["status"] == "stale" and status["next"] == "mlt finalize"
    assert f"{outcome['artifact']['dir']} was moved or deleted" in views["finalize"]["reason"]
    (digits_copy / "in.csv").write_text("x\n1\n")
    code, result, _ = mlt("predict", str(digits_copy / "in.csv"), "--out",
                          str(digits_copy / "p.csv"), "-C", str(digits_copy))
    assert code == 2 and result["message"] == (
        f"{outcome['artifact']['dir']}: the current artifact's folder is gone (moved or deleted)")
    code, result, _ = mlt("finalize", "-C", str(digits_copy))  # the same model, rebuilt
    assert code == 3 and result["reused_test_result"]
    assert (digits_copy / result["artifact"]["dir"] / "model.onnx").is_file()
    _, status, _ = mlt("status", "-C", str(digits_copy))
    assert {p["name"]: p["status"] for p in status["phases"]}["finalize"] == "blocked"


def test_every_signoff_or_waiver_finishes_the_project(digits_copy: Path) -> None:
    for item in MANUAL[:-1]:
        code, result, _ = mlt("signoff", "finalize", item, "--by", "ana", "--note", "reviewed",
                              "-C", str(digits_copy))
        assert code == 0 and items_of(result)[item]["evidence"]["signed_off_by"] == "ana"
    assert result["gate"]["passed"] is False
    code, result, _ = mlt("waive", "finalize", MANUAL[-1], "--reason",
                          "serving owner tracks this in the platform runbook", "-C",
                          str(digits_copy))
    assert code == 0 and result["gate"]["passed"] is True and result["next"] is None
    code, status, _ = mlt("status", "-C", str(digits_copy))
    assert status["next"] is None
    assert {p["name"]: p["status"] for p in status["phases"]}["finalize"] == "passed"
    signoffs = audit_events(digits_copy, "signoff")
    assert {s["artifact_hash"] for s in signoffs} == {state_outcome(digits_copy)["artifact_hash"]}


# -- a model factory and a CSV project -------------------------------------------------------


def test_factory_model_with_layernorm_gelu_embedding_exports_with_parity(
        tabular: tuple[Path, dict[str, Any]]) -> None:
    root, result = tabular
    items = items_of(result)
    for item in ("onnx_checker", "parity_onnx", "parity_torchscript", "parity_pt2",
                 "exports_reload_in_fresh_process", "deployment_snippet_runs",
                 "schema_every_split", "no_rows_shared_across_splits"):
        assert items[item]["status"] == "pass", (item, items[item]["evidence"])
    assert all(e["max_abs_diff"] < 1e-4 for e in result["exports"])
    preprocess = json.loads((root / state_outcome(root)["artifact"]["dir"]
                             / "preprocess.json").read_text())
    columns = {c["name"]: c for c in preprocess["input"]["columns"]}
    assert columns["color"]["categories"] == ["blue", "green", "red"]
    assert preprocess["output"]["class_labels"] == ["no", "yes"]


def test_predict_csv_with_text_categories_and_missing_values(
        tabular: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    import pandas as pd
    import torch

    from mltrainer.config import load_config
    from mltrainer.data import prepare_data
    from mltrainer.engine import load_model_from_checkpoint
    from mltrainer.exporting import build_deployable

    root, _ = tabular
    rows = "size,color,a,b,id\nS,red,0.5,1.0,7\nM,,,0.2,8\nL,purple,-1.0,-1.0,9\n,green,2.0,,10\n"
    (tmp_path / "in.csv").write_text(rows)
    out = tmp_path / "preds.csv"
    code, result, err = mlt("predict", str(tmp_path / "in.csv"), "--out", str(out),
                            "-C", str(root))
    assert code == 0, err
    assert result["rows"] == 4 and result["ignored_columns"] == ["id"]
    # said to the person too: a column the model does not read, an artifact not signed off
    assert "ignored 1 column(s) the model does not read: id" in err
    assert (f"warning: the finalize gate is {result['finalize_status']}" in err) == (
        result["finalize_status"] != "passed")
    # a category training never saw is encoded as none of the known ones: said, not silent
    # (a missing one is no category: not counted)
    assert result["unseen_categories"] == {
        "color": {"rows": 1, "distinct": 1, "values": ["purple"]}}
    assert ("warning: column 'color': 1 row(s) hold a category training never saw (purple), "
            "encoded as none of the known ones") in err
    preds = pd.read_csv(out)
    assert list(preds.columns) == ["prediction", "prob_no", "prob_yes"]
    assert set(preds["prediction"]) <= {"no", "yes"}
    assert np.allclose(preds[["prob_no", "prob_yes"]].sum(axis=1), 1.0)

    cfg = load_config(root / "mlt.yaml")
    bundle = prepare_data(cfg, root)
    outcome = state_outcome(root)
    model = load_model_from_checkpoint(root / outcome["run"]["checkpoint"], cfg, bundle.spec,
                                       root=root)
    deployable = build_deployable(model, bundle.preprocessor.scale_params, cfg.task)
    frame = pd.read_csv(tmp_path / "in.csv")
    with torch.inference_mode():
        logits = deployable(torch.from_numpy(bundle.preprocessor.encode(frame)))
    probs = torch.softmax(logits.double(), dim=1).numpy()
    assert np.allclose(preds[["prob_no", "prob_yes"]].to_numpy(), probs, atol=1e-5)
    assert list(preds["prediction"]) == [["no", "yes"][i] for i in probs.argmax(axis=1)]

    (tmp_path / "bad.csv").write_text("a,colour,size\n1,red,S\n")
    code, result, _ = mlt("predict", str(tmp_path / "bad.csv"), "--out",
                          str(tmp_path / "x.csv"), "-C", str(root))
    assert code == 2
    assert "'color' (did you mean 'colour'?)" in result["message"] and "'b'" in result["message"]
    assert not (tmp_path / "x.csv").exists()
    # a value of the wrong kind: the fix is in the input file, not in mlt.yaml
    (tmp_path / "kind.csv").write_text("size,color,a,b\nS,red,abc,1.0\n")
    code, result, _ = mlt("predict", str(tmp_path / "kind.csv"), "--out",
                          str(tmp_path / "x.csv"), "-C", str(root))
    assert code == 2 and "column 'a' must be numeric but holds 'abc'" in result["message"]
    assert result["hint"].startswith(f"fix that column in {tmp_path / 'kind.csv'}")
    assert not (tmp_path / "x.csv").exists()
    # an --out under a file (an "unexpected failure", exit 1), a folder as the input
    (tmp_path / "afile").write_text("x")
    for args, message in (
            ([str(tmp_path / "in.csv"), "--out", str(tmp_path / "afile" / "p.csv")],
             f"--out {tmp_path / 'afile' / 'p.csv'}: {tmp_path / 'afile'} is a file, not a "
             "folder"),
            ([str(tmp_path), "--out", str(tmp_path / "y.csv")],
             f"{tmp_path}: a folder, not a file")):
        code, result, _ = mlt("predict", *args, "-C", str(root))
        assert code == 2 and result["message"] == message, result


# -- small units -----------------------------------------------------------------------------


def test_checklist_has_25_items_grounded_in_the_rubric() -> None:
    from mltrainer.gates import checklist_items

    items = checklist_items("finalize")
    assert len(items) == 25 and len({i["id"] for i in items}) == 25
    assert sorted(i["id"] for i in items if i.get("manual")) == sorted(MANUAL)
    assert all(i.get("rubric") for i in items)
    assert {i["format"] for i in items if i.get("check") == "export_parity"} == set(FORMATS)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_bootstrap_metrics_equal_the_engine_metrics(task: str) -> None:
    from mltrainer.engine import compute_metrics
    from mltrainer.phases.finalize import scoring

    rng = np.random.default_rng(1)
    if task == "classification":
        y = rng.integers(0, 4, 200)
        outputs = rng.normal(size=(200, 4)) + np.eye(4)[y] * 1.5
        outputs[:10] = outputs[10]  # ties in the scores
    else:
        y = rng.normal(size=200)
        outputs = y + rng.normal(scale=0.5, size=200)
    scores = scoring.as_scores(task, outputs)
    for name, value in compute_metrics(task, y, outputs).items():
        assert scoring.METRICS[name](y, scores) == pytest.approx(value, abs=1e-12), name


def test_typical_path_ships_the_optimized_config(tmp_path: Path) -> None:
    from mltrainer.config import parse_config
    from mltrainer.errors import ConfigError
    from mltrainer.phases.finalize.production import choose_config
    from mltrainer.project import Project
    from mltrainer.runner import PhaseContext
    from mltrainer.state import ProjectState

    raw = {"name": "t", "task": "classification", "data": {"source": "sklearn:iris"},
           "goal": {"metric": "accuracy", "target": 0.9}}
    optimized = {**raw, "training": {"lr": 0.01}}
    (tmp_path / "mlt.optimized.yaml").write_text(yaml.safe_dump(optimized))
    from mltrainer.phases.baseline import BaselineOutcome
    from mltrainer.phases.baseline.outcome import RunSummary
    from mltrainer.phases.optimize import OptimizeOutcome

    state = ProjectState()
    state.phase("baseline").outcome = BaselineOutcome(
        run=RunSummary(id="b", best_epoch=7, dir="runs/b"), history=[], metric="accuracy",
        best_metric=0.8, trivial_baseline={}, goal={}, goal_met=False, reload={},
        online_findings=[], detector_stop=False).model_dump(mode="json")
    state.phase("optimize").outcome = OptimizeOutcome(
        iteration=1, max_iterations=3, started_at="t", baseline_run="b", metric="accuracy",
        greater_is_better=True, requested_trials=1, study={}, storage={}, sampler={}, pruner={},
        space={}, chosen="optimized", config_path="mlt.optimized.yaml",
        run={"id": "o", "best_epoch": 12, "dir": "runs/o"}).model_dump(mode="json")
    ctx = PhaseContext(Project.at(tmp_path), parse_config(raw), state, {}, path="typical")
    chosen = choose_config(ctx)
    assert chosen.source == "optimized" and chosen.cfg.training.lr == 0.01
    assert chosen.run["best_epoch"] == 12
    assert choose_config(PhaseContext(Project.at(tmp_path), parse_config(raw), state, {},
                                      path="fast")).source == "baseline"
    (tmp_path / "mlt.optimized.yaml").unlink()
    with pytest.raises(ConfigError, match="optimized config but the file is missing"):
        choose_config(ctx)


def test_production_training_replays_the_source_runs_lr_at_every_step(tmp_path: Path) -> None:
    """Source run: cosine over 6 epochs with a 1-epoch warmup, chosen at epoch 3. Production
    (train+val, more steps an epoch) must give, at every step, the source run's lr at the same
    point of its schedule (the source step scaled by the ratio of steps per epoch); the replay
    on train alone must give it exactly, and the source run's val metric at epoch 3."""
    from mltrainer.config import parse_config
    from mltrainer.data import prepare_data
    from mltrainer.engine import Trainer
    from mltrainer.phases.finalize.production import ChosenConfig, produce_model, step_lrs
    from mltrainer.project import Project
    from mltrainer.runner import PhaseContext
    from mltrainer.state import ProjectState

    cfg = parse_config({
        "name": "lr", "task": "classification", "data": {"source": "sklearn:iris"},
        "model": {"hidden": [8], "dropout": 0.0}, "goal": {"target": 0.9},
        "training": {"epochs": 6, "batch_size": 16, "lr": 0.01, "scheduler": "cosine",
                     "warmup_epochs": 1}})
    project = Project.at(tmp_path)
    bundle = prepare_data(cfg, tmp_path)
    source = Trainer(cfg, bundle, project.new_run_dir("baseline"), root=tmp_path).fit()
    chosen = ChosenConfig(cfg, "baseline", "mlt.yaml", {
        "id": source.run_id, "dir": project.relative(Path(source.run_dir)), "best_epoch": 3,
        "val": source.history[2]["val"]})
    ctx = PhaseContext(project, cfg, ProjectState(), {}, path="fast")
    _, run, prod_cfg, _ = produce_model(ctx, chosen, bundle)

    src = step_lrs(Path(source.run_dir) / "metrics.jsonl")
    prod = step_lrs(tmp_path / run["dir"] / "metrics.jsonl")
    spe_src, spe_prod = run["steps_per_epoch"]["source"], run["steps_per_epoch"]["production"]
    assert spe_prod > spe_src and len(src) == 6 * spe_src and len(prod) == 3 * spe_prod
    assert run["schedule_epochs"] == 6 and prod_cfg.training.epochs == 3
    expected = np.interp(np.arange(len(prod)) * spe_src / spe_prod, np.arange(len(src)), src)
    one_step = float(np.abs(np.diff(src)).max())  # the rounding of a step boundary, at most
    assert float(np.abs(np.asarray(prod) - expected).max()) <= one_step + 1e-12
    assert prod[-1] == pytest.approx(src[3 * spe_src - 1], abs=one_step)  # not compressed to 0

    replay = run["replay"]
    assert replay["lr"]["steps_compared"] == replay["lr"]["replay_steps"] == 3 * spe_src
    assert replay["lr"]["max_rel_diff"] == 0.0
    assert replay["val"] == replay["source_val"] == source.history[2]["val"]["accuracy"]
    check = run["in_sample_check"]  # production on the val rows it trained on: not short
    assert check["compared"] and check["short_by"] <= check["tolerance"]


@pytest.mark.parametrize(("metric", "validated", "production", "val_rows", "refused"), [
    ("accuracy", 0.95, 0.96, 200, False),  # trained on val: in-sample at least the validated
    ("accuracy", 0.95, 0.94, 200, False),  # within the tolerance (0.02 absolute)
    ("accuracy", 0.95, 0.92, 200, True),
    ("accuracy", 22 / 23, 21 / 23, 23, False),  # one row of 23: within one row's worth
    ("accuracy", 1.0, 0.516, 31, True),    # a BERT that learned in the source run's last epoch
    ("r2", 0.50, 0.47, 23, True),          # continuous: no row allowance
    ("rmse", 10.0, 10.1, 23, False),       # lower is better; relative: 1 % short
    ("rmse", 10.0, 10.5, 23, True),        # 5 % short
    ("mae", 0.0, 0.0, 23, False),
])
def test_finalize_refuses_a_production_model_short_of_the_validated_one(
        metric: str, validated: float, production: float, val_rows: int, refused: bool
) -> None:
    """Before the test split opens: the production model scored on the val rows it trained on
    must reach the validated run's score on them unseen; else the retrained model learned less
    than the one validated, and spending the test split on it is refused (exit 3)."""
    from mltrainer.config import parse_config
    from mltrainer.errors import RefusedError
    from mltrainer.phases.finalize.production import ChosenConfig, refuse_if_short_of_validated

    task = "classification" if metric == "accuracy" else "regression"
    cfg = parse_config({"name": "x", "task": task, "data": {"source": "sklearn:iris"},
                        "goal": {"metric": metric, "target": 0.5}})
    chosen = ChosenConfig(cfg, "baseline", "mlt.yaml", {"val": {metric: validated}})
    run = {"dir": "runs/x-final", "in_sample_val": {metric: production}}
    if refused:
        with pytest.raises(RefusedError, match="learned less than the validated one.*not opened"):
            refuse_if_short_of_validated(chosen, run, val_rows)
    else:
        refuse_if_short_of_validated(chosen, run, val_rows)
    assert run["in_sample_check"]["compared"] and run["in_sample_check"]["validated"] == validated
