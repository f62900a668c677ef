"""The registry of detectors, and the two ways to run them: online (`DetectorSubscriber`, fed
by the engine event by event) and offline (`run_detectors`, over a finished stream). Both call
`Detector.update` on the same events in the same order, so they find the same things."""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from mltrainer.detectors._base import Detector, DetectorContext, Finding
from mltrainer.detectors._convergence_stall import ConvergenceStallDetector
from mltrainer.detectors._dead_relu import DeadReluDetector
from mltrainer.detectors._exploding_gradients import ExplodingGradientsDetector
from mltrainer.detectors._loss_oscillation import LossOscillationDetector
from mltrainer.detectors._nan_loss import NanLossDetector
from mltrainer.detectors._overfitting import OverfittingDetector
from mltrainer.detectors._underfitting import UnderfittingDetector
from mltrainer.detectors._vanishing_gradients import VanishingGradientsDetector
from mltrainer.errors import ConfigError, StateCorruptError

# The detector vocabulary, in DESIGN order: each id is a detector, a playbook and a finding.
REGISTRY: dict[str, type[Detector]] = {
    cls.id: cls
    for cls in (
        NanLossDetector,
        ExplodingGradientsDetector,
        VanishingGradientsDetector,
        DeadReluDetector,
        LossOscillationDetector,
        ConvergenceStallDetector,
        OverfittingDetector,
        UnderfittingDetector,
    )
}
FINDING_IDS: tuple[str, ...] = tuple(REGISTRY)


def build_detectors(
    context: DetectorContext | None = None,
    thresholds: Mapping[str, Mapping[str, float]] | None = None,
) -> list[Detector]:
    """One detector per finding id, with `thresholds[<id>][<name>]` over the class defaults
    (the shape of `cfg.diagnose.thresholds`). Unknown ids or names raise ConfigError."""
    thresholds = thresholds or {}
    for finding_id in thresholds:
        if finding_id not in REGISTRY:
            guess = difflib.get_close_matches(str(finding_id), FINDING_IDS, n=1, cutoff=0.5)
            tip = f"; did you mean '{guess[0]}'?" if guess else ""
            raise ConfigError(
                f"diagnose.thresholds.{finding_id}: unknown finding id{tip} "
                f"(known: {', '.join(FINDING_IDS)})",
                hint="fix the key under diagnose.thresholds in mlt.yaml",
            )
    context = context if context is not None else DetectorContext()
    return [cls(context, **dict(thresholds.get(fid) or {})) for fid, cls in REGISTRY.items()]


class DetectorSubscriber:
    """Runs detectors on the engine's events: `on_event` returns "detector:<id>" when a
    detector that stops training fires (the engine then stops), otherwise None.

    Findings accumulate in `.findings` in the order they fired (ties in registry order);
    `on_finding` is called with each as it fires. A fired detector is no longer called.
    """

    def __init__(
        self,
        detectors: Iterable[Detector],
        on_finding: Callable[[Finding], None] | None = None,
    ) -> None:
        self.detectors = list(detectors)
        ids = [d.id for d in self.detectors]
        if len(set(ids)) != len(ids):
            raise ValueError(f"each detector may run once but got {ids}")
        self.on_finding = on_finding
        self.findings: list[Finding] = []
        self.stop_reason: str | None = None
        self._route()

    def _route(self) -> None:
        # Per event type, the live detectors that read it: a step event costs only the
        # detectors that watch steps. Start events go to all (they fill the context).
        live = [d for d in self.detectors if not d.fired]
        self._routes: dict[str, list[Detector]] = {
            kind: [d for d in live if kind == "start" or kind in d.watches]
            for kind in ("start", "step", "epoch", "end")
        }

    def on_event(self, event: dict[str, Any]) -> str | None:
        stop: str | None = None
        fired = False
        for detector in self._routes.get(event.get("type"), ()):  # type: ignore[arg-type]
            finding = detector.update(event)
            if finding is None:
                continue
            fired = True
            self.findings.append(finding)
            if self.on_finding is not None:
                self.on_finding(finding)
            if detector.stops_training and stop is None:
                stop = f"detector:{detector.id}"
        if fired:
            self._route()
        if stop is not None and self.stop_reason is None:
            self.stop_reason = stop
        return stop

    def on_steps(self, events: Sequence[dict[str, Any]]) -> tuple[int, str] | None:
        """Several step events at once (a block of steps a callback handles together): the
        same findings, in the same order, and the same detector state as `on_event` on each
        in turn, judged detector by detector (`Detector.update_steps`) rather than event by
        event. Returns (the index of the first event on which a detector that stops training
        fired, "detector:<id>"), or None."""
        hits = []
        for order, detector in enumerate(self._routes["step"]):
            hit = detector.update_steps(events)
            if hit is not None:
                hits.append((hit[0], order, detector, hit[1]))
        if not hits:
            return None
        hits.sort(key=lambda hit: hit[:2])  # on_event's order: by event, then registry order
        stop: tuple[int, str] | None = None
        for index, _, detector, finding in hits:
            self.findings.append(finding)
            if self.on_finding is not None:
                self.on_finding(finding)
            if detector.stops_training and stop is None:
                stop = (index, f"detector:{detector.id}")
        self._route()
        if stop is not None and self.stop_reason is None:
            self.stop_reason = stop[1]
        return stop

    def state_dict(self) -> dict[str, Any]:
        """Strict JSON: every detector's state and the findings so far (for checkpoints)."""
        return {
            "detectors": {d.id: d.state_dict() for d in self.detectors},
            "findings": [f.to_dict() for f in self.findings],
            "stop_reason": self.stop_reason,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        saved = state.get("detectors") if isinstance(state, Mapping) else None
        if not isinstance(saved, Mapping):
            raise StateCorruptError("detector state has no 'detectors' mapping")
        for detector in self.detectors:
            if detector.id not in saved:
                raise StateCorruptError(f"detector state lacks {detector.id!r}")
            detector.load_state_dict(saved[detector.id])
        self.findings = [Finding.from_dict(f) for f in state.get("findings") or []]
        self.stop_reason = state.get("stop_reason")
        self._route()


def run_detectors(
    events: Iterable[dict[str, Any]] | str | os.PathLike[str],
    thresholds: Mapping[str, Mapping[str, float]] | None = None,
    context: DetectorContext | None = None,
) -> list[Finding]:
    """Every finding in a finished stream (events, or the path of a metrics.jsonl).

    Without `context`, the stream's start event supplies it; a stream with no start event is
    judged with the defaults, task and metric inferred from the first epoch's `val` keys. The
    whole stream is read, even past a finding that would have stopped training.
    """
    if isinstance(events, (str, os.PathLike)):
        from mltrainer.stream import iter_stream

        events = iter_stream(events)
    subscriber = DetectorSubscriber(build_detectors(context, thresholds))
    for event in events:
        subscriber.on_event(event)
    return subscriber.findings
