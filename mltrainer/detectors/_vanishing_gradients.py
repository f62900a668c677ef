"""vanishing_gradients: some layers barely receive a gradient (the earliest ones, usually).

Rules (onset: the first report or step of the streak):

* layers: in the per-layer statistics (`layers`, every N steps), the gradient norm of the
  first weight parameter divided by the largest gradient norm of any parameter is below
  `ratio` on `reports` consecutive reports (AUTOTRAINER flags a first/last layer gradient
  ratio below 1e-3). Against the largest, not the last weight: in a deep stack with a small
  init the forward signal shrinks as much as the backward one, so the last weight's gradient
  is as tiny as the first's - only the head's bias still gets a signal - and a first/last
  ratio stays near 1. Parameters are taken in the stream's order (the model's registration
  order); only weights can be the first (all names when none is): a name ending in "weight",
  or the tensors a parametrised weight is stored as - `parametrizations.<name>.original`
  (`original0`, `original1`: magnitude and direction) of `torch.nn.utils.parametrizations`
  (spectral_norm, weight_norm, orthogonal), `weight_orig`/`weight_g`/`weight_v` of the older
  `torch.nn.utils` hooks. Without them the first "weight" of a spectral-normalised stack is
  its plain head, and the head's gradient is compared with the strongest (issue 11, ninth
  pass: 10 spectral-normalised sigmoid layers flat at the trivial loss, nothing fired);
  embeddings are skipped (their gradients are sparse by design), and so are parameters whose
  gradient is mostly exact zeros (`zero_frac` >= 0.5: dead units, `dead_relu`'s finding, not
  a vanishing signal).
* global: the global `grad_norm` is below `min_grad_norm` x the task's gradient scale (1 for
  classification, the square root of the starting loss for regression; see
  `Detector.gradient_scale`) for `steps` consecutive steps while the
  loss is still at least `loss_fraction` of the reference loss (SageMaker `VanishingGradient`
  judges gradients below 1e-7 in mean absolute value; a global norm below 1e-5 is that, or
  less, for a model of up to ~10^4 parameters) - a model that learned nothing and gets no signal.

Neither rule fires once an epoch's train metric (val's, in a stream without train metrics) has
met the goal: a model that fits its training rows to the goal is not starved of gradient, and
near the optimum the early layers' gradients shrink first (issue 11, ninth pass: the text
project `mlt init --data` writes, a tiny BERT at train and val accuracy 1.0 from epoch 3, fired
the layer rule at step 40 - layer 0's query weight 3e-4 x the classifier's - with its loss at
0.1 and falling to 0.002).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from mltrainer.detectors._base import Detector, Finding, finite, weight_of

DEAD_SHARE = 0.5  # a gradient at least this share exact zeros is dead units', not vanishing


def first_and_strongest(layers: Mapping[str, Any]) -> tuple[str, float, str, float] | None:
    """(the first weight, its gradient norm, the parameter with the largest gradient norm,
    that norm), or None with fewer than two parameters to compare."""
    norms = {}
    for name, stats in layers.items():
        if "embed" in name.lower() or not isinstance(stats, Mapping):
            continue
        norm, zeros = finite(stats.get("grad_norm")), finite(stats.get("zero_frac"))
        if norm is not None and (zeros is None or zeros < DEAD_SHARE):
            norms[name] = norm
    if len(norms) < 2:
        return None
    weights = [n for n in norms if weight_of(n) is not None] or list(norms)
    strongest = max(norms, key=norms.__getitem__)
    return weights[0], norms[weights[0]], strongest, norms[strongest]


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
    watches: ClassVar[frozenset[str]] = frozenset({"step", "epoch"})
    step_fields: ClassVar[frozenset[str] | None] = frozenset({"grad_norm", "layers"})
    _state_fields: ClassVar[tuple[str, ...]] = ("layer_run", "global_run", "goal_met")
    _optional_state: ClassVar[frozenset[str]] = frozenset({"goal_met"})

    def _setup(self) -> None:
        # [length, onset epoch, onset step, extreme value, detail]
        self.layer_run: list[Any] = [0, None, None, None, None]
        self.global_run: list[Any] = [0, None, None, None, None]
        self.goal_met = False  # some epoch's train metric (else val's) reached the goal

    def _observe(self, event: dict[str, Any]) -> Finding | None:
        if event.get("type") == "epoch":
            split = "train" if isinstance(event.get("train"), Mapping) else "val"
            if self.context.meets_goal(self.metric_of(event, split)):
                self.goal_met = True
            return None
        if self.goal_met:
            return None  # a model that fits to its goal is not starved of gradient
        layers = event.get("layers")
        if layers and isinstance(layers, Mapping):
            finding = self._judge_layers(layers, event)
            if finding is not None:
                return finding
        return self._judge_global(event)

    def _judge_layers(self, layers: Mapping[str, Any], event: dict[str, Any]) -> Finding | None:
        found = first_and_strongest(layers)
        if found is None or found[3] <= 0:
            return None  # nothing to judge: neither extends nor breaks a streak
        first_name, first, strong, last = found
        ratio = first / last
        run = self.layer_run
        if ratio >= self.thresholds["ratio"]:
            run[0] = 0
            return None
        if run[0] == 0:
            run[1], run[2], run[3] = event.get("epoch"), event.get("step"), ratio
            run[4] = {"first_layer": first_name, "strongest_layer": strong,
                      "first_grad_norm": first, "strongest_grad_norm": last}
        run[0] += 1
        run[3] = min(run[3], ratio)
        if run[0] < self.thresholds["reports"]:
            return None
        detail = run[4]
        return self.finding(
            run[1], run[2],
            f"gradient of the first layer {detail['first_layer']} is {ratio:.2g}x that of "
            f"{detail['strongest_layer']} (below {self.thresholds['ratio']:g}) on "
            f"{run[0]} reports since step {run[2]}",
            rule="layer_ratio", ratio=ratio, min_ratio=run[3], threshold=self.thresholds["ratio"],
            consecutive_reports=run[0], reports=self.thresholds["reports"],
            latest_first_grad_norm=first, latest_strongest_grad_norm=last, **detail,
        )

    def _judge_global(self, event: dict[str, Any]) -> Finding | None:
        grad, loss = finite(event.get("grad_norm")), finite(event.get("loss"))
        ref, source = self.reference_loss()
        if grad is None or loss is None or ref is None:
            return None
        run = self.global_run
        floor = self.thresholds["loss_fraction"] * ref
        bar = self.thresholds["min_grad_norm"] * self.gradient_scale()
        if grad >= bar or loss < floor:
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
            f"global gradient norm below {bar:.3g} for {run[0]} "
            f"steps since step {run[2]} while the loss ({loss:.4g}) is still above "
            f"{floor:.4g}",
            rule="global_norm", grad_norm=grad, min_seen=run[3],
            min_grad_norm=self.thresholds["min_grad_norm"], limit=bar, loss=loss,
            loss_floor=floor,
            reference_loss=ref, reference=source, consecutive_steps=run[0],
            steps=self.thresholds["steps"],
        )
