"""vanishing_gradients: the earliest layers barely receive a gradient.

Rules (onset: the first report or step of the streak):

* layers: in the per-layer statistics (`layers`, every N steps), the gradient norm of the first
  weight parameter divided by that of the last one is below `ratio` on `reports` consecutive
  reports (AUTOTRAINER flags a first/last layer gradient ratio below 1e-3). Parameters are taken
  in the stream's order (the model's registration order); only names ending in "weight" count
  (all names when none do), embeddings are skipped (their gradients are sparse by design).
* global: the global `grad_norm` is below `min_grad_norm` for `steps` consecutive steps while the
  loss is still at least `loss_fraction` of the reference loss (SageMaker `VanishingGradient`
  judges gradients below 1e-7 in mean absolute value; a global norm below 1e-5 is that, or
  less, for a model of up to ~10^4 parameters) - a model that learned nothing and gets no signal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from mltrainer.detectors._base import Detector, Finding, finite


def first_and_last_weights(layers: Mapping[str, Any]) -> tuple[str, str] | None:
    names = [n for n in layers if "embed" not in n.lower()]
    weights = [n for n in names if n.endswith("weight")] or names
    return (weights[0], weights[-1]) if len(weights) >= 2 else None


def _grad_norm(stats: Any) -> float | None:
    return finite(stats.get("grad_norm")) if isinstance(stats, Mapping) else None


class VanishingGradientsDetector(Detector):
    id: ClassVar[str] = "vanishing_gradients"
    severity: ClassVar[str] = "warning"
    defaults: ClassVar[dict[str, float]] = {
        "ratio": 1e-3,
        "reports": 3,
        "min_grad_norm": 1e-5,
        "steps": 10,
        "loss_fraction": 0.5,
    }
    kinds: ClassVar[dict[str, str]] = {"reports": "count", "steps": "count"}
    watches: ClassVar[frozenset[str]] = frozenset({"step"})
    _state_fields: ClassVar[tuple[str, ...]] = ("layer_run", "global_run")

    def _setup(self) -> None:
        # [length, onset epoch, onset step, extreme value, detail]
        self.layer_run: list[Any] = [0, None, None, None, None]
        self.global_run: list[Any] = [0, None, None, None, None]

    def _observe(self, event: dict[str, Any]) -> Finding | None:
        layers = event.get("layers")
        if layers and isinstance(layers, Mapping):
            finding = self._judge_layers(layers, event)
            if finding is not None:
                return finding
        return self._judge_global(event)

    def _judge_layers(self, layers: Mapping[str, Any], event: dict[str, Any]) -> Finding | None:
        pair = first_and_last_weights(layers)
        if pair is None:
            return None
        first, last = _grad_norm(layers[pair[0]]), _grad_norm(layers[pair[1]])
        if first is None or last is None or last <= 0:
            return None  # nothing to judge: neither extends nor breaks a streak
        ratio = first / last
        run = self.layer_run
        if ratio >= self.thresholds["ratio"]:
            run[0] = 0
            return None
        if run[0] == 0:
            run[1], run[2], run[3] = event.get("epoch"), event.get("step"), ratio
            run[4] = {"first_layer": pair[0], "last_layer": pair[1],
                      "first_grad_norm": first, "last_grad_norm": last}
        run[0] += 1
        run[3] = min(run[3], ratio)
        if run[0] < self.thresholds["reports"]:
            return None
        detail = run[4]
        return self.finding(
            run[1], run[2],
            f"gradient of the first layer {detail['first_layer']} is {ratio:.2g}x that of the "
            f"last layer {detail['last_layer']} (below {self.thresholds['ratio']:g}) on "
            f"{run[0]} reports since step {run[2]}",
            rule="layer_ratio", ratio=ratio, min_ratio=run[3], threshold=self.thresholds["ratio"],
            consecutive_reports=run[0], reports=self.thresholds["reports"],
            latest_first_grad_norm=first, latest_last_grad_norm=last, **detail,
        )

    def _judge_global(self, event: dict[str, Any]) -> Finding | None:
        grad, loss = finite(event.get("grad_norm")), finite(event.get("loss"))
        ref, source = self.reference_loss()
        if grad is None or loss is None or ref is None:
            return None
        run = self.global_run
        floor = self.thresholds["loss_fraction"] * ref
        if grad >= self.thresholds["min_grad_norm"] or loss < floor:
            run[0] = 0
            return None
        if run[0] == 0:
            run[1], run[2], run[3], run[4] = event.get("epoch"), event.get("step"), grad, loss
        run[0] += 1
        run[3] = min(run[3], grad)
        if run[0] < self.thresholds["steps"]:
            return None
        return self.finding(
            run[1], run[2],
            f"global gradient norm below {self.thresholds['min_grad_norm']:g} for {run[0]} "
            f"steps since step {run[2]} while the loss ({loss:.4g}) is still above "
            f"{floor:.4g}",
            rule="global_norm", grad_norm=grad, min_seen=run[3],
            min_grad_norm=self.thresholds["min_grad_norm"], loss=loss, loss_floor=floor,
            reference_loss=ref, reference=source, consecutive_steps=run[0],
            steps=self.thresholds["steps"],
        )
