"""The one evaluation of the locked test split.

Evaluations are kept in `.mlt/test_evaluations.json`, keyed by the fingerprint of what was
evaluated: the shipped config (and the finalize settings), the data and its split hashes, and the
code (a model factory's source). A second `mlt finalize` on the same key reuses the recorded
result and never opens the test split again; evaluating again takes a new config or new data.
Every evaluation is appended to the audit log as a `test_evaluation` event, and records the
hash of the split it scored next to the hash `mlt plan` locked.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from mltrainer.config import MltConfig, sha256_json
from mltrainer.errors import StateCorruptError
from mltrainer.phases.finalize import schema, scoring
from mltrainer.project import Project
from mltrainer.state import atomic_write_text, audit, now, read_audit

EVALUATIONS_FILE = "test_evaluations.json"
FORMAT = "mltrainer.test_evaluations"
VERSION = 1
AUDIT_EVENT = "test_evaluation"


def evaluation_key(cfg: MltConfig, finalize: dict[str, Any], data_fps: dict[str, str],
                   code_fp: str) -> str:
    """What identifies an evaluation: change any part and the test split may be scored anew."""
    return sha256_json({"config": cfg.fingerprint(), "finalize": finalize,
                        "data": data_fps, "code": code_fp})


def evaluations_path(project: Project) -> Any:
    return project.mlt_dir / EVALUATIONS_FILE


def load_evaluations(project: Project) -> dict[str, dict[str, Any]]:
    path = evaluations_path(project)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != FORMAT or not isinstance(data.get("evaluations"), dict):
            raise ValueError("not a test-evaluation record")
    except (ValueError, AttributeError) as exc:
        raise StateCorruptError(
            f"{path}: cannot be read ({exc})",
            hint="restore it from version control or a backup; it is the record of which "
                 "test evaluations already happened, and is never rebuilt silently",
        ) from None
    return data["evaluations"]


def _save(project: Project, evaluations: dict[str, dict[str, Any]]) -> None:
    atomic_write_text(evaluations_path(project), json.dumps(
        {"format": FORMAT, "version": VERSION, "evaluations": evaluations},
        indent=2, default=str) + "\n")


def audited_evaluations(project: Project, key: str | None = None) -> list[dict[str, Any]]:
    """The audit log's `test_evaluation` events (of one key, when given)."""
    return [e for e in read_audit(project) if e.get("event") == AUDIT_EVENT
            and (key is None or e.get("key") == key)]


def evaluate_test_split(
    project: Project,
    *,
    key: str,
    bundle: Any,
    model: Any,
    lock_hash: str,
    baseline: dict[str, Any],
    bootstrap: int,
    seed: int,
    run: dict[str, Any],
    chosen: dict[str, Any],
) -> dict[str, Any]:
    """Open the test split (the only call to `bundle.test` in mlt), score it, record it.

    The record is written (atomically) before the audit event, so a crash in between leaves a
    result that blocks a second evaluation rather than an evaluation nobody can find.
    """
    from mltrainer.engine import compute_metrics, predict

    test = bundle.test(phase="finalize")
    task, spec = bundle.spec.task, bundle.spec
    outputs = predict(model, test.X)
    test_hash = bundle.fingerprints["test"]
    metrics = compute_metrics(task, test.y, outputs)
    base_scores = scoring.trivial_scores(task, baseline, len(test.y), spec.class_labels)
    intervals = scoring.score_with_intervals(task, test.y, outputs, base_scores,
                                             n_resamples=bootstrap, seed=seed)
    result: dict[str, Any] = {
        "metrics": metrics, "ci95": intervals["ci95"],
        "baseline_diff": intervals["baseline_diff"], "bootstrap": intervals["bootstrap"],
        "level": scoring.LEVEL, "n_rows": len(test.y), "split_hash": test_hash,
        "trivial_baseline": {"predictor": baseline.get("predictor"),
                             "predicts": baseline.get("predicts")},
        "non_finite_outputs": int((~np.isfinite(np.asarray(outputs, dtype=np.float64))).sum()),
    }
    if task == "classification":
        result.update(scoring.confusion_and_per_class(test.y, outputs, list(spec.class_labels)))
    else:
        result["residuals"] = scoring.residual_summary(test.y, outputs)
    record = {
        "key": key, "evaluated_at": now(), "test_hash": test_hash, "lock_hash": lock_hash,
        "matches_lock": test_hash == lock_hash, "chosen": chosen, "run": run,
        "data_fingerprints": dict(bundle.fingerprints), "result": result,
        "schema_test": schema.split_schema("test", test, spec, bundle.preprocessor),
        "shared_rows": schema.shared_rows({"train": bundle.train, "val": bundle.val,
                                           "test": test}),
    }
    evaluations = load_evaluations(project)
    evaluations[key] = record
    _save(project, evaluations)
    audit(project, AUDIT_EVENT, phase="finalize", key=key, test_hash=test_hash,
          lock_hash=lock_hash, matches_lock=record["matches_lock"], rows=result["n_rows"],
          config_fingerprint=chosen.get("config_fingerprint"), run=run.get("id"),
          metrics=metrics)
    return record


def note_reuse(project: Project, record: dict[str, Any]) -> None:
    """A second finalize on the same key: say so in the audit log (not a test access)."""
    audit(project, "test_evaluation_reused", phase="finalize", key=record["key"],
          evaluated_at=record["evaluated_at"])


# Audit events that mean "the test split was read"; `test_split_denied` is a refusal.
def is_test_access(event: dict[str, Any]) -> bool:
    name = str(event.get("event", ""))
    return name == AUDIT_EVENT or (name.startswith("test_split_") and name != "test_split_denied")


def test_access_outside_finalize(project: Project) -> dict[str, Any]:
    """Walk the audit log, tracking which phase was running: any test access while a phase
    other than finalize ran (or recorded by one) is a violation; refusals are counted."""
    current: str | None = None
    accesses, refusals, violations = 0, 0, []
    for event in read_audit(project):
        if event.get("event") == "phase_started":
            current = event.get("phase")
        if event.get("event") == "test_split_denied":
            refusals += 1
        if not is_test_access(event):
            continue
        accesses += 1
        by = event.get("phase") or current
        if by != "finalize" or current not in (None, "finalize"):
            violations.append({"time": event.get("time"), "event": event.get("event"),
                               "phase": by, "while_running": current})
    return {"test_accesses": accesses, "refusals": refusals, "violations": violations}
