"""What one `mlt optimize` iteration (or its `--stop` decision) recorded: the typed outcome its
gate judges and finalize reads (the chosen config)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from mltrainer.runner import Outcome


class OptimizeOutcome(Outcome):
    phase: ClassVar[str] = "optimize"
    iteration: int
    max_iterations: int
    started_at: str
    decision: str | None = None  # "stop" after `mlt optimize --stop`
    decided_at: str | None = None
    baseline_run: str | None  # the baseline run this iteration searched from
    metric: str
    greater_is_better: bool
    requested_trials: int
    timeout_s: float | None = None
    study: dict[str, Any]  # name, stopped, ran_here, recovered_dead_trials, elapsed_s, counts
    storage: dict[str, Any]  # kind and URL (never a password)
    sampler: dict[str, Any]
    pruner: dict[str, Any]
    space: dict[str, Any]  # origin, params (each with the findings it came from), notes
    importances: dict[str, float] | None = None
    importance_evaluator: str | None = None
    diagnose_findings: list[str] = Field(default_factory=list)
    trials: list[dict[str, Any]] = Field(default_factory=list)
    best: dict[str, Any] | None = None
    comparison: dict[str, Any] | None = None  # best vs baseline across seeds, with CIs
    run: dict[str, Any] | None = None  # the best trial's run (id, best_epoch, val, dir)
    data: dict[str, Any] = Field(default_factory=dict)  # splits used, sizes, fingerprints
    chosen: str | None = None  # "optimized" | "baseline"
    chosen_config: dict[str, Any] | None = None
    changes: list[dict[str, Any]] = Field(default_factory=list)
    goal: dict[str, Any] = Field(default_factory=dict)
    config_path: str | None = None  # mlt.optimized.yaml
    config_sha256: str | None = None
    iterations: list[dict[str, Any]] = Field(default_factory=list)  # every iteration so far
