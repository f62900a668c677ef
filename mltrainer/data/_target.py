"""Regression targets standardised on train, as scikit-learn's
`TransformedTargetRegressor(transformer=StandardScaler())` does: the model learns
(y - mean) / std, and everything a user reads is mapped back with `invert`.

Why: on raw-unit targets with a large offset (a mean of 100, a spread of 3.5) an lr large
enough to learn the offset moves the output by about the spread on every step, and a loss of
scale mean**2 makes every bar on losses and gradients depend on the data's units. On
standardised targets the trivial baseline's loss is about 1 whatever the data.

Where it applies: `mean` and `std` are fitted on the train split only (`fit_target_scale`,
called where the features' preprocessing is fitted) and recorded in `DataSpec.target_scale`
(the plan outcome, the data cache, the trivial baseline). The engine's loss compares the model's
output with standardised targets (`engine.step.loss_function`); `engine.inference.predict` and
`evaluate` return and score outputs in raw units; the exported graph ends with `invert`
(`exporting.TargetUnscale`), so ONNX, TorchScript, .pt2, `mlt predict` and the runtime give raw
units. A project's own loop (`training.entrypoint`) gets raw targets and its `load_model`'s
outputs are judged raw: there it is never applied. `data.standardize_target: false` turns it
off. No scale recorded (an older project) means the identity.

Both numbers are float32-representable, so `invert` computed in float32 by the exported graph
and by the engine is the same arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


@dataclass(frozen=True)
class TargetScale:
    """A regression target's train mean and standard deviation (1 for a constant target)."""

    mean: float
    std: float

    def standardise(self, y: T) -> T:
        """(y - mean) / std: what the model is trained to output (arrays or tensors)."""
        return (y - self.mean) / self.std  # type: ignore[operator,return-value]

    def invert(self, outputs: T) -> T:
        """outputs * std + mean: the model's outputs in the target's raw units."""
        return outputs * self.std + self.mean  # type: ignore[operator,return-value]

    def to_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "std": self.std}

    @classmethod
    def from_dict(cls, data: Any) -> TargetScale | None:
        """The scale a record holds, or None (no scale: the identity) for a missing one."""
        if not isinstance(data, dict):
            return None
        return cls(mean=float(data["mean"]), std=float(data["std"]))


def standardises_target(cfg: Any) -> bool:
    """Whether a run of `cfg` trains on standardised targets: regression, the switch on, and
    mlt's own loop (a `training.entrypoint` owns its loss and gets raw targets)."""
    return (cfg.task == "regression" and bool(cfg.data.standardize_target)
            and not cfg.training.entrypoint)


def fit_target_scale(cfg: Any, y_train: np.ndarray) -> TargetScale | None:
    """The train split's target mean and std (scikit-learn's StandardScaler: population std,
    a constant target gets 1), or None when `cfg` does not standardise targets."""
    if not standardises_target(cfg) or len(y_train) == 0:
        return None
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(np.asarray(y_train, dtype=np.float64).reshape(-1, 1))
    return TargetScale(mean=float(np.float32(scaler.mean_[0])),
                       std=float(np.float32(scaler.scale_[0])))
