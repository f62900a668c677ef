"""What `mlt finalize` shipped and measured: the typed outcome its readiness gate judges."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from mltrainer.runner import Outcome


class FinalizeOutcome(Outcome):
    phase: ClassVar[str] = "finalize"
    chosen: dict[str, Any]  # which config ships: source, config_path, fingerprint
    run: dict[str, Any]  # the production run: retrained, epochs, trained_on, weights_sha256
    reused_test_result: bool  # the recorded evaluation was reused, the test split not reopened
    evaluation: dict[str, Any]  # key, evaluated_at, test_hash, lock_hash, matches_lock, file
    test: dict[str, Any]  # metrics, ci95, baseline_diff, bootstrap, confusion, per class
    # every test evaluation of the project, oldest first: when, config, metrics, reason, current
    test_evaluations: list[dict[str, Any]] = Field(default_factory=list)
    goal: dict[str, Any]  # metric, target, greater_is_better
    trivial_baseline: dict[str, Any]
    data: dict[str, Any]  # source, fingerprints, lock_hash, schema per split, duplicates
    determinism: dict[str, Any]
    finite: dict[str, Any]  # non-finite weights and outputs
    exports: list[dict[str, Any]]  # format, path, max_abs_diff, label_agreement, latency_ms
    latency: dict[str, Any]
    artifact_hash: str
    artifact: dict[str, Any]  # hash, dir, reused, model_key, manifest, files, latest, history
    model_card: dict[str, Any]
    deployment: dict[str, Any]  # path and the DEPLOYMENT.md snippet's run
