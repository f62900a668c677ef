"""Export, parity and latency, on real exports: no mocks, small models, all three formats."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from mltrainer.errors import BadInputError
from mltrainer.exporting import (
    EXPORTERS,
    FORMATS,
    DeployableModel,
    ExportRecord,
    build_deployable,
    check_parity,
    compare_outputs,
    export_all,
    measure_latency,
)
from mltrainer.exporting._formats import trace_example

N_FEATURES = 6
N_CLASSES = 3
TOL = {"atol": 1e-5, "rtol": 1e-4}


def _data(rows: int = 40, seed: int = 0) -> np.ndarray:
    """Encoded features with NaN in the numeric columns, as the data layer hands them over."""
    rng = np.random.default_rng(seed)
    x = rng.normal(loc=0.5, scale=2.0, size=(rows, N_FEATURES)).astype(np.float32)
    x[rng.random(x.shape) < 0.15] = np.nan
    return x


def _scale(n: int = N_FEATURES) -> dict[str, list[float]]:
    return {"fill": [0.25] * n, "mean": [0.5] * n, "std": [2.0] * n}


def _mlp(out: int = N_CLASSES) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(N_FEATURES, 16), nn.ReLU(), nn.Linear(16, out))


class _Shifted(nn.Module):
    """Adds a constant to the wrapped model's outputs: enough to break parity, not labels."""

    def __init__(self, model: nn.Module, shift: float) -> None:
        super().__init__()
        self.model = model
        self.shift = shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) + self.shift


class _EmbeddingNet(nn.Module):
    """LayerNorm, GELU and two embeddings: of a feature bucketised inside forward, and of a
    categorical index column (the last one, passed through the scale unchanged) cast to long."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("edges", torch.tensor([-1.0, -0.25, 0.25, 1.0]))
        self.bucket_emb = nn.Embedding(5, 4)
        self.cat_emb = nn.Embedding(4, 3)
        self.norm = nn.LayerNorm(N_FEATURES - 1 + 4 + 3)
        self.head = nn.Linear(N_FEATURES - 1 + 4 + 3, N_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        buckets = torch.bucketize(x[:, 0].contiguous(), self.edges)
        category = x[:, -1].round().clamp(0, 3).long()
        h = torch.cat([x[:, :-1], self.bucket_emb(buckets), self.cat_emb(category)], dim=1)
        return self.head(nn.functional.gelu(self.norm(h)))


class _DataDependent(nn.Module):
    """A Python branch on tensor values: torch.export refuses it, torch.jit.trace freezes it."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(N_FEATURES, N_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if bool((x.abs() >= 0).all()):  # always true on finite inputs: the frozen trace is right
            return self.fc(x)
        return -self.fc(x)


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    return _data()


@pytest.fixture(scope="module")
def mlp_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[DeployableModel, list]:
    deployable = build_deployable(_mlp(), _scale(), "classification")
    out_dir = tmp_path_factory.mktemp("mlp")
    return deployable, export_all(deployable, _data()[:8], out_dir)


@pytest.fixture(scope="module")
def mlp_parity(mlp_export: tuple[DeployableModel, list], data: np.ndarray) -> list[dict]:
    deployable, records = mlp_export
    return check_parity(records, deployable, data, "classification", tolerance=TOL)


# -- export ---------------------------------------------------------------------------------


def test_mlp_exports_to_all_three_formats(mlp_export: tuple[DeployableModel, list]) -> None:
    _, records = mlp_export
    assert [r.format for r in records] == ["onnx", "torchscript", "pt2"]
    for record in records:
        assert record.ok, record.error
        assert record.error is None
        path = Path(record.path)
        assert path.name == EXPORTERS[record.format].filename and path.is_file()
        assert record.size_bytes == path.stat().st_size > 0
        assert len(record.sha256) == 64
        json.dumps(record.to_dict())  # JSON-safe, as finalize writes it into reports
    onnx_record = records[0]
    assert onnx_record.checker == {"passed": True, "error": None, "full_check": True}
    assert isinstance(onnx_record.opset, int) and onnx_record.opset >= 18
    assert records[1].checker is None and records[2].checker is None


def test_onnx_is_self_contained_with_dynamic_batch(
    mlp_export: tuple[DeployableModel, list], data: np.ndarray
) -> None:
    deployable, records = mlp_export
    path = Path(records[0].path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.onnx", "model.pt2", "model.ts"]
    proto = onnx.load(str(path), load_external_data=False)
    assert not any(
        onnx.external_data_helper.uses_external_data(t) for t in proto.graph.initializer
    )
    assert [i.name for i in proto.graph.input] == ["features"]
    assert [o.name for o in proto.graph.output] == ["outputs"]
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # symbolic, not frozen
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 13):
        got = session.run(None, {"features": data[:batch]})[0]
        assert got.shape == (batch, N_CLASSES)
        with torch.no_grad():
            want = deployable(torch.from_numpy(data[:batch])).numpy()
        assert np.isfinite(got).all()  # the NaNs were filled inside the graph
        np.testing.assert_allclose(got, want, **TOL)


def test_export_replaces_stale_files_and_reports_failures_without_hiding_others(
    tmp_path: Path, data: np.ndarray, capfd: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "model.pt2").write_bytes(b"stale from an earlier run")
    deployable = build_deployable(_DataDependent(), _scale(), "classification")
    records = export_all(deployable, data[:8], tmp_path, formats=("torchscript", "pt2"))
    by_format = {r.format: r for r in records}
    assert by_format["torchscript"].ok
    assert not by_format["pt2"].ok and by_format["pt2"].error
    assert not (tmp_path / "model.pt2").exists()  # the stale file cannot pose as this export
    assert by_format["pt2"].sha256 is None
    assert "\x1b[" not in by_format["pt2"].error  # no terminal colour codes in records
    assert any(w.startswith("TracerWarning") for w in by_format["torchscript"].warnings)
    # torch logs the failed guard and dumps the graph to stderr: both belong in the record.
    assert capfd.readouterr().err == ""
    parity = check_parity(records, deployable, data[:10], "classification")
    assert [p["passed"] for p in parity] == [True, False]
    assert parity[1]["error"].startswith("export not available")


# -- parity ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_parity_passes_in_a_fresh_process(fmt: str, mlp_parity: list[dict]) -> None:
    result = next(r for r in mlp_parity if r["format"] == fmt)
    assert result["passed"], result
    assert result["reloaded_in_fresh_process"] is True
    assert result["worker"]["pid"] != os.getpid()
    assert result["worker"]["python"]
    assert result["batch_sizes"] == [1, 2, 7, 40]
    assert result["max_abs_diff"] <= TOL["atol"]
    assert result["label_agreement"] == 1.0
    assert all(b["passed"] for b in result["batches"])
    assert "within atol" in result["reason"]
    json.dumps(result)
    if fmt == "onnx":
        # What a deployment without torch sees: the worker never imported it.
        assert result["worker"]["torch_imported"] is False


def test_parity_fails_when_the_reference_differs_from_the_export(
    mlp_export: tuple[DeployableModel, list], data: np.ndarray
) -> None:
    deployable, records = mlp_export
    # Same scale and weights, outputs shifted by 1e-3: the exports (made without the shift)
    # genuinely differ from this eager reference.
    shifted = DeployableModel(deployable.scale, _Shifted(deployable.model, 1e-3), "classification")
    results = check_parity(records, shifted.eval(), data[:10], "classification", tolerance=TOL)
    for result in results:
        assert result["passed"] is False, result["format"]
        assert result["max_abs_diff"] == pytest.approx(1e-3, rel=1e-2)
        assert result["label_agreement"] == 1.0  # a constant shift keeps every argmax
        assert "> atol 1e-05" in result["reason"]


def test_a_broken_file_is_a_failed_parity_not_an_exception(
    mlp_export: tuple[DeployableModel, list], tmp_path: Path, data: np.ndarray
) -> None:
    deployable, records = mlp_export
    broken = tmp_path / "model.onnx"
    shutil.copy(records[0].path, broken)
    broken.write_bytes(broken.read_bytes()[:200])  # truncated mid-file
    bad = ExportRecord(format="onnx", path=str(broken), ok=True)
    missing = ExportRecord(format="pt2", path=str(tmp_path / "none.pt2"), ok=False, error="boom")
    results = check_parity([bad, missing], deployable, data[:5], "classification")
    assert [r["passed"] for r in results] == [False, False]
    assert results[0]["error"].startswith("worker:")
    assert results[0]["worker"]["pid"] != os.getpid()
    assert "boom" in results[1]["error"]


def test_embedding_layernorm_gelu_model_exports_and_passes_parity(
    tmp_path: Path, recwarn: pytest.WarningsRecorder, capfd: pytest.CaptureFixture[str]
) -> None:
    x = _data(seed=1)
    x[:, -1] = np.random.default_rng(2).integers(0, 4, size=len(x))  # a categorical index
    scale = _scale()
    scale["fill"][-1], scale["mean"][-1], scale["std"][-1] = 0.0, 0.0, 1.0  # index passes as is
    deployable = build_deployable(_EmbeddingNet(), scale, "classification")
    records = export_all(deployable, x[:8], tmp_path)
    assert all(r.ok for r in records), [r.error for r in records]
    results = check_parity(records, deployable, x, "classification", tolerance=TOL)
    assert all(r["passed"] for r in results), results
    # Nothing leaked: every warning and log line landed in a record, nothing was printed.
    assert [str(w.message) for w in recwarn] == []
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""


def test_torchscript_deprecation_is_recorded_and_does_not_leak(
    tmp_path: Path, recwarn: pytest.WarningsRecorder
) -> None:
    deployable = build_deployable(_mlp(), _scale(), "classification")
    (record,) = export_all(deployable, _data()[:4], tmp_path, formats=("torchscript",))
    assert record.ok
    assert any("torch.jit.trace" in w and "deprecated" in w for w in record.warnings)
    assert len(recwarn) == 0


@pytest.mark.parametrize("squeeze", [True, False], ids=["(N,)", "(N,1)"])
def test_regression_output_shape_is_kept(tmp_path: Path, data: np.ndarray, squeeze: bool) -> None:
    model: nn.Module = _mlp(out=1)
    if squeeze:
        model = nn.Sequential(model, nn.Flatten(start_dim=0))
    deployable = build_deployable(model, _scale(), "regression")
    formats = FORMATS if squeeze else ("onnx",)  # one full run is enough; keep the suite fast
    records = export_all(deployable, data[:8], tmp_path, formats=formats)
    assert all(r.ok for r in records), [r.error for r in records]
    results = check_parity(records, deployable, data, "regression", tolerance=TOL)
    want = [len(data)] if squeeze else [len(data), 1]
    for result in results:
        assert result["passed"], result
        assert result["label_agreement"] is None
        assert result["batches"][-1]["shape"] == want


# -- compare_outputs: the verdict as a table -------------------------------------------------

_REF = np.array([[0.1, 0.2, 0.3], [1.0, -1.0, 0.5]], dtype=np.float32)


@pytest.mark.parametrize(
    ("exported", "task", "passed", "why"),
    [
        (_REF.copy(), "classification", True, "identical"),
        (_REF + 5e-6, "classification", True, "within atol"),
        (_REF * (1 + 5e-5), "classification", True, "within rtol"),
        (_REF + 1e-3, "classification", False, "shifted beyond tolerance"),
        (_REF[:, ::-1].copy(), "classification", False, "labels swapped"),
        (_REF[:1], "classification", False, "shape differs"),
        (np.where(_REF > 0.9, np.nan, _REF), "regression", False, "NaN where eager is finite"),
    ],
)
def test_compare_outputs(exported: np.ndarray, task: str, passed: bool, why: str) -> None:
    result = compare_outputs(exported, _REF, task, TOL)
    assert result["passed"] is passed, why
    assert result["reason"]
    json.dumps(result)


def test_binary_logit_labels_threshold_at_zero() -> None:
    ref = np.array([[0.3], [-0.2]], dtype=np.float32)
    assert compare_outputs(ref, ref, "classification", TOL)["label_agreement"] == 1.0
    flipped = compare_outputs(-ref, ref, "classification", {"atol": 1.0, "rtol": 0.0})
    assert flipped["label_agreement"] == 0.0 and flipped["passed"] is False


@pytest.mark.parametrize(
    ("rows", "features", "traced_rows"),
    [(1, 6, 2), (5, 6, 5), (40, 6, 16), (6, 6, 2), (1, 2, 3)],
)
def test_trace_example_keeps_the_batch_symbolic(
    rows: int, features: int, traced_rows: int
) -> None:
    # >= 2 rows (torch.export specialises 1) and never equal to the feature count.
    traced = trace_example(np.zeros((rows, features), dtype=np.float32))
    assert tuple(traced.shape) == (traced_rows, features)
    with pytest.raises(BadInputError, match="example has 5 columns"):
        trace_example(np.zeros((4, 5), dtype=np.float32), n_features=6)


# -- build_deployable -----------------------------------------------------------------------


def test_build_deployable_copies_and_validates() -> None:
    model = _mlp()
    model.train()
    deployable = build_deployable(model, _scale(), "classification")
    assert model.training and not deployable.training  # the caller's model is untouched
    assert deployable.model is not model
    bad_std = _scale()
    bad_std["std"][2] = 0.0
    with pytest.raises(BadInputError, match=r"std\[2\] must be > 0 but got 0.0"):
        build_deployable(model, bad_std, "classification")
    with pytest.raises(BadInputError, match="task must be one of"):
        build_deployable(model, _scale(), "ranking")
    with pytest.raises(BadInputError, match="missing"):
        build_deployable(model, {"fill": [0.0]}, "classification")


# -- latency --------------------------------------------------------------------------------


def test_latency_reports_p50_and_p95_for_each_runtime(
    mlp_export: tuple[DeployableModel, list], data: np.ndarray
) -> None:
    deployable, records = mlp_export
    result = measure_latency(deployable, records, data[0], warmup=3, iters=20)
    assert result["torch_num_threads"] == torch.get_num_threads()
    machine = result["machine"]  # the load around the timing, and whether it exceeded the CPUs
    assert machine["cpus"] >= 1 and machine["load_1min_before"] >= 0
    assert machine["busy"] == (max(machine["load_1min_before"], machine["load_1min_after"])
                               > machine["cpus"])
    assert result["onnxruntime_session_options"]["intra_op_num_threads"] >= 1
    assert set(result["runtimes"]) == {"eager", "onnxruntime", "torchscript", "pt2"}
    for name, runtime in result["runtimes"].items():
        assert runtime["ok"], (name, runtime["error"])
        assert set(runtime["batches"]) == {"1", "64"}
        for stats in runtime["batches"].values():
            assert 0 < stats["p50_ms"] <= stats["p95_ms"]
    json.dumps(result)


def test_latency_stops_at_its_time_budget_after_the_minimum_samples(
    mlp_export: tuple[DeployableModel, list], data: np.ndarray
) -> None:
    """A slow model (a transformer at batch 64) is timed for `budget_s`, not `iters` calls;
    never fewer than MIN_SAMPLES, and each cell says how many it took."""
    from mltrainer.exporting._latency import MIN_SAMPLES

    deployable, records = mlp_export
    capped = measure_latency(deployable, records[:1], data[0], warmup=3, iters=50, budget_s=0)
    full = measure_latency(deployable, records[:1], data[0], warmup=3, iters=50)
    for result, samples in ((capped, MIN_SAMPLES), (full, 50)):
        for runtime in result["runtimes"].values():
            assert {s["samples"] for s in runtime["batches"].values()} == {samples}
    assert capped["budget_s"] == 0 and full["budget_s"] is None
