"""What `mlt plan` measured: the typed outcome its gate judges and every later phase reads."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from mltrainer.runner import Outcome


class PlanData(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str
    spec: dict[str, Any]  # DataSpec.to_dict(): task, n_features, n_classes, class_labels, ...
    fingerprints: dict[str, str]  # data, train, val, test: sha256 of each
    split: dict[str, Any]  # sizes, seed, stratified, class counts per split
    duplicates: dict[str, int]  # rows whose content appears in two splits, per pair


class PlanGoal(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metric: str
    target: float
    greater_is_better: bool


class PlanOutcome(Outcome):
    phase: ClassVar[str] = "plan"
    seed: int
    seeded: list[str]  # the generators seeded: python, numpy, torch
    deterministic_flags: dict[str, Any]
    environment: dict[str, Any]  # python, torch, device, platform, git, file
    data: PlanData
    test_lock: dict[str, Any]  # {"locked": bool, "refusal": message}
    goal: PlanGoal
    trivial_baseline: dict[str, Any]  # metric -> the trivial predictor's val score, + strategy
    determinism: dict[str, Any]  # the probe: identical, max_abs_diff, steps, ...
