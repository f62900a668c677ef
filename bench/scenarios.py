"""The labelled scenarios of `bench/detectors.py`: real mlt training runs with a known fault.

A scenario is an mlt.yaml (as a dict, over `BASE`), a seed, the finding it must produce (its
primary label, or "healthy"), the findings it may legitimately produce as well ("allowed"),
and where its fault begins.

Onset convention (1-based, as in the metric stream: the first epoch is 1, the first step is 1):

* A fault present from the start (a config, a model, an init, a data set) has onset step 1,
  epoch 1.
* A fault injected mid-run (an `Injection`) has onset at the first optimisation step it
  affects: `at_step` k means step k is the first step computed with the fault (an lr change
  applies to step k's update; a weight change is made just before step k's forward pass).
* nan_loss is judged from the first non-finite value itself: its onset is the first step whose
  loss or gradient norm is non-finite, as recorded in the run's own metrics.jsonl (for a
  poisoned weight that is the injection step; for an lr blow-up it is a few steps later). The
  target is to fire at that very step (latency 0).

Injections reach into the engine through `capture_parts` (bench-only): it wraps
`mltrainer.engine.loop.build_training`, the one place the Trainer builds its model, optimiser,
schedule and step, and lets the scenario wrap the lr schedule and the step function. Nothing in
mltrainer changes; the engine runs exactly as in `mlt train-baseline`.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

HEALTHY = "healthy"

BASE: dict[str, Any] = {
    "name": "detector-bench",
    "task": "classification",
    "seed": 0,
    "data": {"source": "sklearn:digits", "split": {"val": 0.15, "test": 0.15, "stratify": True}},
    "model": {"kind": "mlp", "hidden": [128, 64], "dropout": 0.1},
    "training": {
        "epochs": 15, "batch_size": 64, "optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-4,
        "scheduler": "cosine", "grad_clip": 1.0, "device": "cpu", "grad_stats_every": 10,
        "early_stopping": {"patience": 5, "min_delta": 0.0},
    },
    "goal": {"metric": "accuracy", "target": 0.9},
}

# Per data set: the source, the model kinds that fit it, and a batch size that gives a handful
# of steps per epoch (wine has 124 training rows: 64 would be two steps an epoch).
DATASETS: dict[str, dict[str, Any]] = {
    "digits": {"data": {"source": "sklearn:digits"}, "training": {"batch_size": 64}},
    "breast_cancer": {"data": {"source": "sklearn:breast_cancer"},
                      "training": {"batch_size": 32}},
    "wine": {"data": {"source": "sklearn:wine"}, "training": {"batch_size": 16}},
    # regression in raw units (tuning only; the held-out set has diabetes, Friedman #1 and
    # make_regression)
    "friedman2": {"task": "regression",
                  "data": {"source": "python:bench_factories:friedman2",
                           "split": {"stratify": False}},
                  "training": {"batch_size": 32}, "goal": {"metric": "r2", "target": 0.8}},
    "friedman3": {"task": "regression",
                  "data": {"source": "python:bench_factories:friedman3",
                           "split": {"stratify": False}},
                  "training": {"batch_size": 32}, "goal": {"metric": "rmse", "target": 0.15}},
    # the same with 5 added to the target (issue 11, second pass: an offset 20x the spread)
    "friedman3_offset": {"task": "regression",
                         "data": {"source": "python:bench_factories:friedman3_offset",
                                  "split": {"stratify": False}},
                         "training": {"batch_size": 32},
                         "goal": {"metric": "rmse", "target": 0.15}},
}
CNN: dict[str, Any] = {"model": {"kind": "cnn", "channels": [8, 16], "hidden": [64]}}


def merge(base: dict[str, Any], *overrides: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of `base` with each override merged in (dicts recursively, the rest set)."""
    out = copy.deepcopy(base)
    for over in overrides:
        for key, value in over.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = merge(out[key], value)
            else:
                out[key] = copy.deepcopy(value)
    return out


# -- injections --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Injection:
    """A fault introduced at 1-based step `at_step` of a running training.

    kind:
      "lr_scale":      the lr of every step from `at_step` on is multiplied by `value`.
      "poison_weight": one entry of the first weight becomes NaN just before step `at_step`.
      "bias_shift":    `value` is added to every hidden bias just before step `at_step` (very
                       negative: ReLU units that stop firing for every input, i.e. die).
      "lr_cycle":      not a fault (held-out v10 on, healthy runs only): warm restarts (SGDR),
                       the lr of step k is the schedule's times (1 + cos(pi (k mod at_step) /
                       at_step)) / 2, back to full every `at_step` steps.
    """

    kind: str
    at_step: int
    value: float = 1.0

    def describe(self) -> str:
        return f"{self.kind}({self.value:g}) at step {self.at_step}"


def _hidden_biases(model: Any) -> list[Any]:
    import torch

    linears = [m for m in model.modules()
               if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)) and m.bias is not None]
    return [m.bias for m in linears[:-1]]  # not the head


def apply_injection(parts: Any, injection: Injection) -> None:
    """Wrap the built training parts so the fault starts at `injection.at_step`."""
    import torch

    first_index = injection.at_step - 1  # the engine's 0-based index of that step
    if injection.kind == "lr_scale":
        schedule = parts.schedule
        original = schedule.lr_at  # bound method of the engine's LrSchedule

        def lr_at(step: int) -> float:
            lr = original(step)
            return lr * injection.value if step >= first_index else lr

        schedule.lr_at = lr_at  # TrainStep calls schedule.apply -> self.lr_at
        return
    if injection.kind == "lr_cycle":
        schedule = parts.schedule
        base = schedule.lr_at
        period = injection.at_step

        def cycled(step: int) -> float:
            return base(step) * (1.0 + math.cos(math.pi * (step % period) / period)) / 2.0

        schedule.lr_at = cycled
        return
    step_fn = parts.step  # the engine's TrainStep; the loop only ever calls it

    def step(index: int, xb: Any, yb: Any, *, layer_stats: bool = False) -> Any:
        if index == first_index:
            with torch.no_grad():
                if injection.kind == "poison_weight":
                    weight = next(p for n, p in parts.model.named_parameters()
                                  if n.endswith("weight"))
                    weight.view(-1)[0] = math.nan
                elif injection.kind == "bias_shift":
                    for bias in _hidden_biases(parts.model):
                        bias.add_(injection.value)
                else:
                    raise ValueError(f"unknown injection {injection.kind!r}")
        return step_fn(index, xb, yb, layer_stats=layer_stats)

    parts.step = step


@contextlib.contextmanager
def capture_parts(injection: Injection | None) -> Iterator[None]:
    """While active, every Trainer.fit() builds its parts through mltrainer's own
    `build_training`, then gets the injection applied to them."""
    from mltrainer.engine import loop

    original: Callable[..., Any] = loop.build_training

    def build(*args: Any, **kwargs: Any) -> Any:
        parts = original(*args, **kwargs)
        if injection is not None:
            apply_injection(parts, injection)
        return parts

    loop.build_training = build
    try:
        yield
    finally:
        loop.build_training = original


# -- scenarios ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    label: str  # a finding id, or "healthy"
    config: dict[str, Any]
    allowed: frozenset[str] = frozenset()
    injection: Injection | None = None
    note: str = ""

    @property
    def onset_step(self) -> int:
        return self.injection.at_step if self.injection is not None else 1

    @property
    def dataset(self) -> str:
        return str(self.config["data"]["source"]).split(":")[-1]

    @property
    def model(self) -> str:
        kind = str(self.config["model"]["kind"])
        return kind.split(":")[-1] if kind.startswith("python:") else kind


@dataclass
class _Builder:
    """Collects scenarios; each one added is repeated `repeats` times, with seeds
    seed, seed + 100, seed + 200, ..."""

    repeats: int = 1
    scenarios: list[Scenario] = field(default_factory=list)

    def add(self, name: str, label: str, *overrides: dict[str, Any], seed: int = 0,
            allowed: frozenset[str] | set[str] = frozenset(),
            injection: Injection | None = None, note: str = "") -> None:
        for copy_no in range(self.repeats):
            run_seed = seed + 100 * copy_no
            config = merge(BASE, *overrides, {"seed": run_seed})
            self.scenarios.append(Scenario(f"{name}-s{run_seed}", label, config,
                                           frozenset(allowed), injection, note))


NO_ES = {"training": {"early_stopping": {"patience": 0}}}
NO_REG = {"model": {"dropout": 0.0}, "training": {"weight_decay": 0.0}}
NO_CLIP = {"training": {"grad_clip": None}}
CONSTANT_LR = {"training": {"scheduler": "none"}}
SGD = {"training": {"optimizer": "sgd"}}


def factory(fn: str, **params: Any) -> dict[str, Any]:
    return {"model": {"kind": f"python:bench_factories:{fn}", "params": params}}


# Config fragments shared by every set (held-out v5 on; earlier sets keep their own copies, as
# committed): a model from a factory module, the built-in mlp, training fields.


def fac_in(module: str, fn: str, **params: Any) -> dict[str, Any]:
    """model.kind = python:<module>:<fn> with `params`."""
    return {"model": {"kind": f"python:{module}:{fn}", "params": params}}


def clf_in(module: str, source: str, batch: int, metric: str,
           target: float) -> dict[str, Any]:
    """A classification data set from `python:<module>:<source>`, its batch size and goal."""
    return {"data": {"source": f"python:{module}:{source}"}, "training": {"batch_size": batch},
            "goal": {"metric": metric, "target": target}}


def reg_in(module: str, source: str, batch: int, metric: str,
           target: float) -> dict[str, Any]:
    """A regression data set from `python:<module>:<source>` (unstratified split), its batch
    size and goal."""
    return {"task": "regression",
            "data": {"source": f"python:{module}:{source}", "split": {"stratify": False}},
            "training": {"batch_size": batch}, "goal": {"metric": metric, "target": target}}


def mlp(*hidden: int, **extra: Any) -> dict[str, Any]:
    """The built-in mlp with these hidden widths (none: a linear model) and model fields."""
    return {"model": {"kind": "mlp", "hidden": list(hidden), **extra}}


def train(**fields: Any) -> dict[str, Any]:
    """training.<field> = value for each keyword."""
    return {"training": fields}


def data(name: str) -> dict[str, Any]:
    return DATASETS[name]


def lr(value: float, **training: Any) -> dict[str, Any]:
    return {"training": {"lr": value, **training}}


def build_scenarios(repeats: int = 1) -> list[Scenario]:
    """Every scenario of the benchmark, each `repeats` times over different seeds."""
    b = _Builder(repeats)
    for family in (_healthy, _nan_loss, _exploding, _vanishing, _dead_relu, _oscillation,
                   _stall, _overfitting, _underfitting, _regression):
        family(b)
    return b.scenarios


def _healthy(b: _Builder) -> None:
    """30 runs with sound settings: three data sets, two built-in models, adamw and sgd,
    several widths, batch sizes, schedules, normalisations and seeds."""
    for seed in range(3):
        b.add("healthy-digits-mlp", HEALTHY, data("digits"), seed=seed)
        b.add("healthy-bc-mlp", HEALTHY, data("breast_cancer"), seed=seed)
        b.add("healthy-wine-mlp", HEALTHY, data("wine"), {"training": {"epochs": 25}},
              seed=seed)
        b.add("healthy-digits-cnn", HEALTHY, data("digits"), CNN, {"training": {"epochs": 15}},
              seed=seed)
    for seed in range(2):
        b.add("healthy-digits-sgd", HEALTHY, data("digits"), SGD, lr(0.05), seed=seed)
        b.add("healthy-bc-sgd", HEALTHY, data("breast_cancer"), SGD, lr(0.01, epochs=20),
              seed=seed)
        b.add("healthy-wine-deep", HEALTHY, data("wine"),
              {"model": {"hidden": [64, 64, 32]}, "training": {"epochs": 25}}, seed=seed)
        b.add("healthy-digits-bn-gelu", HEALTHY, data("digits"),
              {"model": {"norm": "batch", "activation": "gelu"}}, seed=seed)
        b.add("healthy-bc-noes-step", HEALTHY, data("breast_cancer"), NO_ES,
              {"training": {"scheduler": "step", "step_size": 5, "gamma": 0.5, "epochs": 20}},
              seed=seed)
        b.add("healthy-digits-bs32-warmup", HEALTHY, data("digits"),
              {"training": {"batch_size": 32, "warmup_epochs": 2, "epochs": 12}}, seed=seed)
        b.add("healthy-wine-plateau-noes", HEALTHY, data("wine"), NO_ES,
              {"training": {"scheduler": "plateau", "epochs": 25}}, seed=seed)
        # trained for long without early stopping (the cosine schedule brings lr to 0)
        b.add("healthy-digits-long-noes", HEALTHY, data("digits"), NO_ES,
              {"training": {"epochs": 40}}, seed=seed)
        b.add("healthy-digits-cnn-layernorm-sgd", HEALTHY, data("digits"), CNN, SGD,
              {"model": {"norm": "layer"}}, lr(0.05), seed=seed)


NAN_ALLOWED = {"exploding_gradients", "loss_oscillation", "dead_relu"}


def _nan_loss(b: _Builder) -> None:
    # a weight that becomes NaN mid-run (a corrupt update or checkpoint): the loss of that
    # very step is NaN
    for seed, (ds, at) in enumerate([("digits", 25), ("breast_cancer", 17), ("wine", 30),
                                     ("digits", 63)]):
        b.add(f"nan-poison-{ds}", "nan_loss", data(ds), NO_ES, seed=seed,
              injection=Injection("poison_weight", at),
              note="one weight set to NaN before the step")
    b.add("nan-poison-digits-cnn", "nan_loss", data("digits"), CNN, NO_ES, seed=4,
          injection=Injection("poison_weight", 30), note="one conv weight set to NaN")
    # an lr blown up by 10^6 mid-run, no clipping: the weights overflow a few steps later
    for seed, (ds, at) in enumerate([("digits", 30), ("breast_cancer", 20), ("wine", 24)]):
        b.add(f"nan-lr-{ds}", "nan_loss", data(ds), NO_ES, NO_CLIP, CONSTANT_LR, SGD, lr(0.01),
              seed=seed, allowed=NAN_ALLOWED, injection=Injection("lr_scale", at, 1e6),
              note="sgd lr x1e6 mid-run, no clipping")
    # a huge lr from the start
    for seed, ds in enumerate(["digits", "breast_cancer", "wine"]):
        b.add(f"nan-hugelr-{ds}", "nan_loss", data(ds), NO_ES, NO_CLIP, CONSTANT_LR, SGD,
              lr(1e4), seed=seed, allowed=NAN_ALLOWED,
              note="sgd lr 1e4 from the start, no clipping")


EXPLODING_ALLOWED = {"nan_loss", "loss_oscillation", "dead_relu", "convergence_stall",
                     "underfitting"}


def _exploding(b: _Builder) -> None:
    # sgd lr raised past the edge of stability mid-run (x100 to x300), no clipping: the loss and
    # the gradient norm grow step after step
    for seed, (ds, at, factor) in enumerate([("digits", 41, 100.0), ("breast_cancer", 27, 300.0),
                                             ("wine", 33, 300.0), ("digits", 61, 200.0)]):
        b.add(f"explode-lr-{ds}", "exploding_gradients", data(ds), NO_ES, NO_CLIP, CONSTANT_LR,
              SGD, lr(0.01), seed=seed, allowed=EXPLODING_ALLOWED,
              injection=Injection("lr_scale", at, factor),
              note=f"sgd lr x{factor:g} mid-run, no clipping")
    b.add("explode-lr-digits-cnn", "exploding_gradients", data("digits"), CNN, NO_ES, NO_CLIP,
          CONSTANT_LR, SGD, lr(0.01), seed=4, allowed=EXPLODING_ALLOWED,
          injection=Injection("lr_scale", 41, 200.0), note="cnn, sgd lr x200 mid-run, no clipping")
    # a huge sgd lr from the start, no clipping
    for seed, (ds, value) in enumerate([("breast_cancer", 0.5), ("wine", 0.5),
                                        ("breast_cancer", 0.5), ("wine", 0.5), ("digits", 1.0)]):
        b.add(f"explode-hugelr-{ds}", "exploding_gradients", data(ds), NO_ES, NO_CLIP,
              CONSTANT_LR, SGD, lr(value), seed=seed, allowed=EXPLODING_ALLOWED,
              note=f"sgd lr {value:g} from the start, no clipping")
    # a deep ReLU net initialised with weights x8: gradient norms ~10^4 from the first step
    for seed, (ds, optimizer) in enumerate([("digits", "adamw"), ("breast_cancer", "adamw")]):
        b.add(f"explode-init-{ds}-{optimizer}", "exploding_gradients", data(ds), NO_ES,
              NO_CLIP, CONSTANT_LR, factory("relu_mlp", hidden=[64] * 6, init_gain=8.0),
              {"training": {"optimizer": optimizer}}, seed=seed, allowed=EXPLODING_ALLOWED,
              note="6x64 ReLU, weights x8 at init, no clipping")


VANISHING_ALLOWED = {"convergence_stall", "underfitting"}


def _vanishing(b: _Builder) -> None:
    # deep sigmoid stacks: present from the start
    for seed, ds in enumerate(["digits", "breast_cancer", "wine", "digits", "breast_cancer",
                               "wine"]):
        b.add(f"vanish-sigmoid-{ds}", "vanishing_gradients", data(ds), NO_ES,
              factory("sigmoid_stack", depth=8, width=32), seed=seed,
              allowed=VANISHING_ALLOWED, note="8 sigmoid layers of 32, adamw")
    for seed, ds in enumerate(["digits", "breast_cancer", "wine", "digits"]):
        b.add(f"vanish-builtin-{ds}", "vanishing_gradients", data(ds), NO_ES, SGD, lr(0.01),
              {"model": {"kind": "mlp", "hidden": [32] * 6, "activation": "sigmoid",
                         "dropout": 0.0}}, seed=seed,
              allowed=VANISHING_ALLOWED, note="built-in mlp, 6 sigmoid layers, sgd")


DEAD_ALLOWED = {"convergence_stall", "underfitting"}


def _dead_relu(b: _Builder) -> None:
    # hidden biases initialised far below zero: most units never fire
    for seed, ds in enumerate(["digits", "breast_cancer", "wine", "digits", "breast_cancer"]):
        b.add(f"dead-init-{ds}", "dead_relu", data(ds), NO_ES,
              factory("relu_mlp", hidden=[128, 64], bias_init=-3.0), seed=seed,
              allowed=DEAD_ALLOWED, note="hidden biases -3 at init")
    # a mid-run shift of every hidden bias by -10 (a corrupt update): the units die at once
    for seed, (ds, at) in enumerate([("digits", 45), ("breast_cancer", 31), ("wine", 35),
                                     ("digits", 81)]):
        b.add(f"dead-shift-{ds}", "dead_relu", data(ds), NO_ES, seed=seed,
              allowed=DEAD_ALLOWED, injection=Injection("bias_shift", at, -10.0),
              note="hidden biases -10 mid-run")
    b.add("dead-shift-digits-cnn", "dead_relu", data("digits"), CNN, NO_ES, seed=4,
          allowed=DEAD_ALLOWED, injection=Injection("bias_shift", 45, -10.0),
          note="cnn: conv and hidden biases -10 mid-run")


OSC_ALLOWED = {"exploding_gradients", "dead_relu", "convergence_stall", "underfitting"}


def _oscillation(b: _Builder) -> None:
    # adam at lr 0.1-0.3 without clipping: too high to settle
    for seed, (ds, value) in enumerate([("digits", 0.1), ("breast_cancer", 0.3), ("wine", 0.3),
                                        ("digits", 0.1), ("breast_cancer", 0.3), ("wine", 0.3)]):
        b.add(f"osc-highlr-{ds}", "loss_oscillation", data(ds), NO_ES, NO_CLIP, CONSTANT_LR,
              lr(value), seed=seed, allowed=OSC_ALLOWED,
              note=f"adamw lr {value:g}, constant, no clipping")
    # the lr raised x100 mid-run
    for seed, (ds, at) in enumerate([("digits", 61), ("breast_cancer", 40), ("wine", 41),
                                     ("digits", 81)]):
        b.add(f"osc-lrup-{ds}", "loss_oscillation", data(ds), NO_ES, NO_CLIP, CONSTANT_LR,
              seed=seed, allowed=OSC_ALLOWED, injection=Injection("lr_scale", at, 100.0),
              note="adamw lr x100 mid-run, no clipping")


STALL_ALLOWED = {"underfitting"}


def _stall(b: _Builder) -> None:
    # an lr so small nothing moves (from the start)
    for seed, (ds, value) in enumerate([("digits", 1e-6), ("breast_cancer", 1e-6),
                                        ("wine", 1e-6), ("digits", 1e-7),
                                        ("breast_cancer", 1e-7)]):
        b.add(f"stall-tinylr-{ds}", "convergence_stall", data(ds), NO_ES,
              lr(value, epochs=10), seed=seed, allowed=STALL_ALLOWED,
              note=f"adamw lr {value:g}")
    b.add("stall-tinylr-digits-cnn", "convergence_stall", data("digits"), CNN, NO_ES,
          lr(1e-6, epochs=10), seed=5, allowed=STALL_ALLOWED, note="cnn, adamw lr 1e-6")
    # the lr cut by 10^4 in the first epoch, while the loss is still high
    for seed, (ds, at) in enumerate([("digits", 4), ("breast_cancer", 3), ("wine", 5),
                                     ("digits", 6)]):
        b.add(f"stall-lrcut-{ds}", "convergence_stall", data(ds), NO_ES, SGD,
              lr(0.01, epochs=10), seed=seed, allowed=STALL_ALLOWED,
              injection=Injection("lr_scale", at, 1e-4), note="sgd lr x1e-4 early in epoch 1")


OVERFIT_ALLOWED: set[str] = set()


def _overfitting(b: _Builder) -> None:
    # a tiny training set (half of a small slice) with noisy labels, a wide model, no
    # regularisation, no early stopping, a constant lr: it memorises the wrong labels
    tiny = {"data": {"split": {"val": 0.4, "test": 0.1}},
            "training": {"batch_size": 16, "epochs": 30, "scheduler": "none"}}
    wide = {"model": {"hidden": [512, 512]}}
    runs = [("digits_small_noisy", 0), ("breast_cancer_small_noisy", 1), ("wine_noisy", 2),
            ("digits_small_noisy", 3), ("breast_cancer_small_noisy", 4), ("wine_noisy", 5),
            ("digits_small_noisy", 6), ("breast_cancer_small_noisy", 7), ("wine_noisy", 8)]
    for src, seed in runs:
        b.add(f"overfit-{src}", "overfitting",
              {"data": {"source": f"python:bench_factories:{src}"}}, tiny, wide, NO_REG, NO_ES,
              seed=seed, allowed=OVERFIT_ALLOWED,
              note="tiny noisy-label training set, 2x512, no regularisation")
    b.add("overfit-digits_small_noisy-cnn", "overfitting",
          {"data": {"source": "python:bench_factories:digits_small_noisy_images"}}, tiny,
          {"model": {"kind": "cnn", "channels": [32, 64], "hidden": [256]}}, NO_REG, NO_ES,
          seed=9, allowed=OVERFIT_ALLOWED,
          note="cnn on a tiny noisy-label training set, no regularisation")


UNDER_ALLOWED = {"convergence_stall"}


def _underfitting(b: _Builder) -> None:
    # over-regularised: decoupled weight decay of 100-300 (lr x wd = 0.1-0.3 a step)
    for seed, (ds, wd) in enumerate([("digits", 100.0), ("breast_cancer", 100.0),
                                     ("wine", 300.0), ("digits", 100.0), ("wine", 300.0)]):
        b.add(f"under-wd-{ds}", "underfitting", data(ds), NO_ES,
              {"training": {"weight_decay": wd}}, seed=seed, allowed=UNDER_ALLOWED,
              note=f"adamw weight decay {wd:g}")
    # under capacity: one saturated tanh unit between the input and the head
    for seed, ds in enumerate(["digits", "breast_cancer", "wine", "digits", "wine"]):
        b.add(f"under-bottleneck-{ds}", "underfitting", data(ds), NO_ES,
              factory("bottleneck", width=1, scale=0.01), seed=seed, allowed=UNDER_ALLOWED,
              note="a 1-unit tanh bottleneck")


def _regression(b: _Builder) -> None:
    """Regression in raw units: healthy runs and a few faults (the tuning set's share)."""
    reg = {"model": {"hidden": [64, 32], "dropout": 0.0},
           "training": {"epochs": 60, "lr": 3e-3, "early_stopping": {"patience": 10}}}
    for seed in range(2):
        b.add("healthy-friedman2-mlp", HEALTHY, data("friedman2"), reg, seed=seed)
        b.add("healthy-friedman3-mlp", HEALTHY, data("friedman3"), reg, seed=seed)
        b.add("healthy-friedman2-sgd", HEALTHY, data("friedman2"), reg, SGD, lr(0.01),
              seed=seed)
        b.add("healthy-friedman3-bn", HEALTHY, data("friedman3"), reg,
              {"model": {"norm": "batch"}}, seed=seed)
        # a large target offset: learning the mean takes the first epochs (issue 11, second
        # pass)
        b.add("healthy-friedman3-offset", HEALTHY, data("friedman3_offset"), reg, seed=seed)
    for seed, ds in enumerate(["friedman2", "friedman3"]):
        b.add(f"nan-poison-{ds}", "nan_loss", data(ds), reg, NO_ES, seed=seed,
              injection=Injection("poison_weight", 30), note="one weight set to NaN")
        # plain sgd on raw units: friedman2's targets (~400) diverge at lr 1e-3 unclipped,
        # friedman3's (~1.3) barely move at it
        base_lr = {"friedman2": 1e-6, "friedman3": 1e-2}[ds]
        b.add(f"explode-lr-{ds}", "exploding_gradients", data(ds), reg, NO_ES, NO_CLIP,
              CONSTANT_LR, SGD, lr(base_lr), seed=seed, allowed=EXPLODING_ALLOWED,
              injection=Injection("lr_scale", 60, 300.0), note="sgd lr x300 mid-run")
        b.add(f"stall-tinylr-{ds}", "convergence_stall", data(ds), reg, NO_ES,
              lr(1e-6, epochs=10), seed=seed, allowed=STALL_ALLOWED, note="adamw lr 1e-6")
        b.add(f"vanish-sigmoid-{ds}", "vanishing_gradients", data(ds), reg, NO_ES,
              factory("sigmoid_stack", depth=8, width=32), seed=seed,
              allowed=VANISHING_ALLOWED, note="8 sigmoid layers of 32")
        b.add(f"under-bottleneck-{ds}", "underfitting", data(ds), reg, NO_ES,
              factory("bottleneck", width=1, scale=0.01), seed=seed, allowed=UNDER_ALLOWED,
              note="a 1-unit tanh bottleneck")
    # (friedman2's raw targets take most of such a run to learn the mean: it never overfits)
    for seed in range(2):
        b.add("overfit-smallsplit-friedman3", "overfitting", data("friedman3"), NO_REG, NO_ES,
              {"data": {"split": {"val": 0.45, "test": 0.44}},
               "model": {"hidden": [512, 512]},
               "training": {"epochs": 120, "batch_size": 16, "scheduler": "none"}},
              seed=seed, note="10% train split, 2x512, no regularisation")
