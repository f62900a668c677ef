"""The numbers behind a run's plots, read from its `metrics.jsonl` (or a phase's recorded history).

No matplotlib here: this module turns a metric stream into plain lists, so the plots module only
draws. Steps are placed on the epoch axis (step i of the n steps of epoch e sits at
e - 1 + i / n), so per-step and per-epoch series share one x axis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mltrainer.errors import MltError
from mltrainer.numbers import as_float

LOWER_IS_BETTER = ("rmse", "mae", "loss")


@dataclass(frozen=True)
class Marker:
    """A vertical line on the epoch axis: the best epoch, where training stopped, a finding."""

    x: float
    label: str
    kind: str  # best | stop | critical | warning | info


@dataclass
class RunCurves:
    metric: str | None = None
    greater_is_better: bool = True
    epochs: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_metric: list[float] = field(default_factory=list)
    train_metric: list[float] = field(default_factory=list)
    epoch_lr: list[float] = field(default_factory=list)
    step_x: list[float] = field(default_factory=list)
    step_loss: list[float] = field(default_factory=list)
    step_lr: list[float] = field(default_factory=list)
    step_grad: list[float] = field(default_factory=list)  # global norm before clipping
    step_at: dict[int, float] = field(default_factory=dict)  # step number -> x
    grad_clip: float | None = None
    goal: float | None = None
    trivial: float | None = None
    loss_title: str = "Loss"  # names the units when a regression's losses are standardised
    markers: list[Marker] = field(default_factory=list)
    source: str = ""  # where the numbers came from, for the caption

    @property
    def has_epochs(self) -> bool:
        return bool(self.epochs)

    @property
    def has_steps(self) -> bool:
        return bool(self.step_x)

    def x_of(self, onset: dict[str, Any] | None) -> float | None:
        """Where a finding's onset sits on the epoch axis (its step when known, else its epoch)."""
        if not onset:
            return None
        step, epoch = onset.get("step"), onset.get("epoch")
        if isinstance(step, int) and step in self.step_at:
            return self.step_at[step]
        return float(epoch) if isinstance(epoch, (int, float)) else None


num = as_float  # the name the report code uses


def greater_is_better(metric: str | None) -> bool:
    return metric not in LOWER_IS_BETTER


def load_curves(root: Path, stream: str | None, history: list[dict[str, Any]] | None,
                metric: str | None) -> RunCurves:
    """The curves of one run: from `stream` (a metrics.jsonl, relative to `root`) when it can be
    read, else from a recorded per-epoch `history`; empty when neither exists."""
    from mltrainer.stream import read_stream

    curves = RunCurves(metric=metric, greater_is_better=greater_is_better(metric))
    path = (root / stream) if stream else None
    if path is not None and path.is_file():
        try:
            events = read_stream(path)
        except MltError:
            events = []
        if events:
            _from_events(curves, events)
            curves.source = str(stream)
            curves.grad_clip = _grad_clip(path.parent / "config.resolved.yaml")
            return curves
    for h in history or []:
        _add_epoch(curves, h)
    curves.source = "recorded history" if curves.epochs else ""
    return curves


def _from_events(curves: RunCurves, events: list[dict[str, Any]]) -> None:
    start = next((e for e in events if e.get("type") == "start"), {})
    if curves.metric is None and start.get("metric"):
        curves.metric = str(start["metric"])
    gib = start.get("greater_is_better")
    curves.greater_is_better = bool(gib) if gib is not None else greater_is_better(curves.metric)
    if start.get("target_scale"):
        curves.loss_title = "Loss (MSE on the target standardised on train)"
    baseline = start.get("baseline") or {}
    if curves.metric and curves.metric in baseline:
        curves.trivial = num(baseline[curves.metric])
    by_epoch: dict[int, list[dict[str, Any]]] = {}
    for e in events:
        kind = e.get("type")
        if kind == "step" and isinstance(e.get("epoch"), int):
            by_epoch.setdefault(e["epoch"], []).append(e)
        elif kind == "epoch":
            _add_epoch(curves, e)
    for epoch in sorted(by_epoch):
        steps = by_epoch[epoch]
        for i, s in enumerate(steps, start=1):
            x = epoch - 1 + i / len(steps)
            curves.step_x.append(x)
            curves.step_loss.append(num(s.get("loss")))
            curves.step_lr.append(num(s.get("lr")))
            curves.step_grad.append(num(s.get("grad_norm")))
            if isinstance(s.get("step"), int):
                curves.step_at[s["step"]] = x


def _add_epoch(curves: RunCurves, e: dict[str, Any]) -> None:
    curves.epochs.append(num(e.get("epoch")))
    curves.train_loss.append(num(e.get("train_loss")))
    curves.val_loss.append(num(e.get("val_loss")))
    curves.epoch_lr.append(num(e.get("lr")))
    val, train = e.get("val") or {}, e.get("train") or {}
    curves.val_metric.append(num(val.get(curves.metric)) if curves.metric else math.nan)
    curves.train_metric.append(num(train.get(curves.metric)) if curves.metric else math.nan)


def _grad_clip(config_path: Path) -> float | None:
    """The clipping threshold the run used, from its resolved config (None: no clipping)."""
    try:
        cfg = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
        clip = (cfg.get("training") or {}).get("grad_clip")
    except (OSError, yaml.YAMLError, AttributeError):
        return None
    value = num(clip)
    return value if math.isfinite(value) and value > 0 else None


def best_epoch(curves: RunCurves) -> int | None:
    """The epoch with the best finite val metric (first one on ties), as the engine picks it."""
    best: tuple[float, int] | None = None
    sign = 1.0 if curves.greater_is_better else -1.0
    for x, v in zip(curves.epochs, curves.val_metric, strict=True):
        if math.isfinite(v) and (best is None or sign * v > sign * best[0]):
            best = (v, int(x))
    return best[1] if best else None


def add_run_markers(curves: RunCurves, best: int | None, stopped_reason: str | None) -> None:
    """The best epoch and, when training did not simply run its course, where it stopped."""
    best = best if best is not None else best_epoch(curves)
    if best is not None:
        curves.markers.append(Marker(float(best), f"best epoch ({best})", "best"))
    if stopped_reason and stopped_reason != "completed" and curves.epochs:
        last = curves.step_x[-1] if curves.step_x else curves.epochs[-1]
        label = stopped_reason.replace("_", " ")
        curves.markers.append(Marker(max(last, curves.epochs[-1]),
                                     f"stopped: {label} (epoch {int(curves.epochs[-1])})", "stop"))


def add_finding_markers(curves: RunCurves, findings: list[dict[str, Any]]) -> None:
    """One marker per finding, at its onset."""
    for f in findings:
        x = curves.x_of(f.get("onset"))
        if x is None:
            continue
        severity = str(f.get("severity", "info"))
        kind = severity if severity in ("critical", "warning") else "info"
        epoch = (f.get("onset") or {}).get("epoch")
        where = f" (epoch {epoch})" if epoch is not None else ""
        curves.markers.append(Marker(x, f"{f.get('id', 'finding')}{where}", kind))
