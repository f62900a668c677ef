"""dead_relu: a large share of a layer's units no longer pass any gradient.

A ReLU unit that outputs 0 for every row of a batch contributes exact zeros to the gradient of
its own incoming weights (a zero row) and of the next layer's weights (a zero column). So the
share of exact-zero entries in a weight gradient (`zero_frac` in the per-layer statistics)
measures dead units directly.

Rule: on `reports` consecutive per-layer reports, some weight parameter has
`zero_frac` >= `zero_fraction` (SageMaker `DeadRelu` flags a layer with 50% inactive units;
AUTOTRAINER flags 70% zero gradients). The first weight parameter is not judged (exact zeros
there also come from input features that are constant zero, e.g. blank pixels; its dead units
still show up as zero columns of the next layer), nor are embeddings (sparse by design).
Weights are named as `vanishing_gradients` reads them (`_base.weight_of`): a parametrised
weight (spectral_norm, weight_norm, orthogonal) is stored as `...parametrizations.weight.
original[N]`, and without that a spectral-normalised net's only "weight" was its head, so no
layer was judged (issue 11, ninth pass).
Onset: the first report of the streak.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from mltrainer.detectors._base import Detector, Finding, finite, weight_of


def judged_layers(layers: Mapping[str, Any]) -> list[str]:
    """The weights judged: every weight but the first (`weight_of`: with the tensors a
    parametrised weight is stored as, all of the first weight's), or every name but the first
    when none is a weight."""
    names = [n for n in layers if "embed" not in n.lower()]
    weights = [n for n in names if weight_of(n) is not None]
    if not weights:
        return names[1:]
    first = weight_of(weights[0])
    return [n for n in weights if weight_of(n) != first]


class DeadReluDetector(Detector):
    id: ClassVar[str] = "dead_relu"
    severity: ClassVar[str] = "warning"
    defaults: ClassVar[dict[str, float]] = {"zero_fraction": 0.6, "reports": 3}
    kinds: ClassVar[dict[str, str]] = {"zero_fraction": "fraction", "reports": "count"}
    watches: ClassVar[frozenset[str]] = frozenset({"step"})
    step_fields: ClassVar[frozenset[str] | None] = frozenset({"layers"})
    _state_fields: ClassVar[tuple[str, ...]] = ("run", "run_epoch", "run_step", "worst")

    def _setup(self) -> None:
        self.run = 0
        self.run_epoch: int | None = None
        self.run_step: int | None = None
        self.worst: dict[str, Any] = {}  # {"layer", "zero_frac"} at the streak's worst report

    def _observe(self, event: dict[str, Any]) -> Finding | None:
        layers = event.get("layers")
        if not layers or not isinstance(layers, Mapping):
            return None
        shares = {}
        for name in judged_layers(layers):
            stats = layers[name]
            share = finite(stats.get("zero_frac")) if isinstance(stats, Mapping) else None
            if share is not None:
                shares[name] = share
        if not shares:
            return None  # no usable statistics: neither extends nor breaks the streak
        layer = max(shares, key=shares.__getitem__)
        limit = self.thresholds["zero_fraction"]
        if shares[layer] < limit:
            self.run = 0
            return None
        if self.run == 0:
            self.run_epoch, self.run_step, self.worst = event.get("epoch"), event.get("step"), {}
        self.run += 1
        if shares[layer] >= self.worst.get("zero_frac", -1.0):
            self.worst = {"layer": layer, "zero_frac": shares[layer]}
        if self.run < self.thresholds["reports"]:
            return None
        dead = sorted(n for n, s in shares.items() if s >= limit)
        return self.finding(
            self.run_epoch, self.run_step,
            f"{shares[layer]:.0%} of the gradient of {layer} is exactly zero (dead units; "
            f"limit {limit:.0%}) on {self.run} reports since step {self.run_step}",
            layer=layer, zero_frac=shares[layer], worst=self.worst, layers_over=dead,
            zero_fraction=limit, consecutive_reports=self.run,
            reports=self.thresholds["reports"],
        )
