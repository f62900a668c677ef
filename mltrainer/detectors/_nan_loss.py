"""nan_loss: a loss or gradient norm stopped being a number. Training stops at that step.

Rule (Keras `TerminateOnNaN`, Lightning `EarlyStopping(check_finite=True)`): a step whose `loss`
is NaN or ±inf fires at once; a step whose unclipped `grad_norm` is non-finite fires once that
has happened on `grad_steps` consecutive measured steps (1 = at once; a step event without
`grad_norm` was not measured and is skipped); an epoch whose `train_loss` or `val_loss` is
non-finite fires at once.

With an fp16 gradient scaler (the start event's `grad_scale`: mlt's loop with
`training.precision: fp16`, Lightning's "16-mixed", `MltMonitor(scaler=...)`, HF's `fp16`) a
step whose gradients overflowed is the scaler's to handle: it skips the update and halves its
scale, on purpose, typically on a few of the first steps. Then `grad_steps`, unless
`diagnose.thresholds.nan_loss.grad_steps` sets it, is the number of consecutive halvings that
bring the scale below 1 (log2(grad_scale) + 1: 17 from torch's default 65536): the gradients
then overflow unscaled, broken, not out of fp16's range. The same rule online and in
`mlt diagnose` over the stream.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from mltrainer.detectors._base import Detector, Finding
from mltrainer.detectors._base import is_nonfinite as _bad


class NanLossDetector(Detector):
    id: ClassVar[str] = "nan_loss"
    severity: ClassVar[str] = "critical"
    stops_training: ClassVar[bool] = True
    step_fields: ClassVar[frozenset[str] | None] = frozenset({"grad_norm"})
    defaults: ClassVar[dict[str, float]] = {"grad_steps": 1}
    kinds: ClassVar[dict[str, str]] = {"grad_steps": "count"}
    _state_fields: ClassVar[tuple[str, ...]] = ("grad_run", "grad_run_epoch", "grad_run_step")

    def __init__(self, context: Any = None, **thresholds: float) -> None:
        self._grad_steps_given = "grad_steps" in thresholds  # (else: the scaler's, see above)
        super().__init__(context, **thresholds)

    def grad_steps(self) -> int:
        """The consecutive non-finite measured norms that fire (see the module docstring)."""
        scale = self.context.grad_scale
        if self._grad_steps_given or scale is None:
            return int(self.thresholds["grad_steps"])
        return max(0, math.ceil(math.log2(max(scale, 1.0)))) + 1

    def _setup(self) -> None:
        self.grad_run = 0  # consecutive steps with a non-finite grad_norm
        self.grad_run_epoch: int | None = None
        self.grad_run_step: int | None = None

    def _observe(self, event: dict[str, Any]) -> Finding | None:
        epoch, step = event.get("epoch"), event.get("step")
        if event["type"] == "step":
            loss = event.get("loss")
            if _bad(loss):
                return self._fire(epoch, step, "loss", loss, "step")
            if "grad_norm" not in event:
                # an unmeasured step (a callback sampling the norm on a stride) neither
                # extends nor breaks a run of non-finite norms: the run counts measured steps
                return None
            grad = event["grad_norm"]
            if not _bad(grad):
                self.grad_run = 0
                return None
            if self.grad_run == 0:
                self.grad_run_epoch, self.grad_run_step = epoch, step
            self.grad_run += 1
            if self.grad_run >= self.grad_steps():
                return self._fire(
                    self.grad_run_epoch, self.grad_run_step, "grad_norm", grad, "step",
                    consecutive_steps=self.grad_run,
                )
            return None
        for name in ("train_loss", "val_loss"):
            if _bad(event.get(name)):
                return self._fire(epoch, step, name, event[name], "epoch")
        return None

    def _fire(
        self, epoch: int | None, step: int | None, name: str, value: float, where: str,
        **extra: Any,
    ) -> Finding:
        place = f"step {step}" if where == "step" else f"the end of epoch {epoch}"
        return self.finding(
            epoch, step,
            f"{name} became {value} at {place}; training stopped there",
            field=name, value=value, event=where, grad_steps=self.grad_steps(),
            **extra,
        )
