"""What `mlt diagnose` found: the typed outcome its gate judges and optimize searches from."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from mltrainer.runner import Outcome


class DiagnoseOutcome(Outcome):
    phase: ClassVar[str] = "diagnose"
    stream: str  # the metrics.jsonl read, relative to the project when inside it
    events: dict[str, int]  # step and epoch events counted in the stream
    # each: id, severity, onset {epoch, step}, evidence, playbook, title, recommendations
    findings: list[dict[str, Any]]
    # one per (config path, kind), with the findings that asked for it, severest first
    recommendations: list[dict[str, Any]] = Field(default_factory=list)
