"""The OLD held-out scenarios of `bench/detectors.py`: tuning material since issue 11's second
pass.

Written before the detector rules of issue 11's first pass were changed and run as a held-out
set then; its misses were analysed case by case in that pass, so it is no longer held out. In
the second pass it is tuning material beside `scenarios.py`, and its figures are reported as
"old held-out, now tuning". The held-out set is now `heldout2.py`. What was new here, against
`scenarios.py`:

* data sets: iris, diabetes (regression in raw units, mlt's own example), and generated ones -
  two moons, a 4-class `make_classification`, Friedman #1 and a `make_regression` with an
  offset (both regression in raw units);
* model families through factories: a pre-norm residual MLP, a 1-D convolution over the
  features, a deep tanh stack with a small init;
* pathologies from ordinary config choices (too high an lr, a tiny lr, huge dropout, huge
  weight decay, no clipping with sgd on raw-unit targets, too little capacity, a small train
  split under a wide MLP trained long) beside injected faults (a NaN weight, an lr blown up
  mid-run, a bias shift);
* at least 30 healthy runs per full run (16 families x 3 seeds), classification and regression.

The labels follow what the config does by construction; `allowed` lists what a reasonable
detector may also say about the same run.
"""

from __future__ import annotations

from typing import Any

from heldout_common import (
    DEAD_OK,
    EXPLODE_OK,
    NAN_OK,
    OSC_OK,
    STALL_OK,
    UNDER_OK,
    VANISH_OK,
    build_set,
)
from scenarios import (
    CONSTANT_LR,
    HEALTHY,
    NO_CLIP,
    NO_ES,
    NO_REG,
    SGD,
    Injection,
    Scenario,
    _Builder,
    factory,
    mlp,
    train,
)

# goal targets are ones these models reach on train comfortably when healthy
SETS: dict[str, dict[str, Any]] = {
    "iris": {"data": {"source": "sklearn:iris"}, "training": {"batch_size": 16},
             "goal": {"metric": "accuracy", "target": 0.9}},
    "moons": {"data": {"source": "python:bench_factories:moons"},
              "training": {"batch_size": 32}, "goal": {"metric": "accuracy", "target": 0.85}},
    "clf4": {"data": {"source": "python:bench_factories:clf4"},
             "training": {"batch_size": 32}, "goal": {"metric": "accuracy", "target": 0.8}},
    "digits": {"data": {"source": "sklearn:digits"}, "training": {"batch_size": 64},
               "goal": {"metric": "accuracy", "target": 0.9}},
    "breast_cancer": {"data": {"source": "sklearn:breast_cancer"},
                      "training": {"batch_size": 32}, "goal": {"metric": "roc_auc",
                                                               "target": 0.95}},
    "wine": {"data": {"source": "sklearn:wine"}, "training": {"batch_size": 16},
             "goal": {"metric": "f1_macro", "target": 0.9}},
    "diabetes": {"task": "regression",
                 "data": {"source": "sklearn:diabetes", "split": {"stratify": False}},
                 "training": {"batch_size": 32}, "goal": {"metric": "r2", "target": 0.4}},
    "friedman1": {"task": "regression",
                  "data": {"source": "python:bench_factories:friedman1",
                           "split": {"stratify": False}},
                  "training": {"batch_size": 32}, "goal": {"metric": "rmse", "target": 2.0}},
    "regraw": {"task": "regression",
               "data": {"source": "python:bench_factories:regression_raw",
                        "split": {"stratify": False}},
               "training": {"batch_size": 32}, "goal": {"metric": "mae", "target": 30.0}},
}
REGRESSION = ("diabetes", "friedman1", "regraw")

def on(name: str) -> dict[str, Any]:
    return SETS[name]


def fac(fn: str, **params: Any) -> dict[str, Any]:
    return factory(fn, **params)


def build_heldout(repeats: int = 1) -> list[Scenario]:
    """Every held-out scenario, each `repeats` times over different seeds (seed + 100 k)."""
    return build_set("ho", (_healthy, _nan, _exploding, _vanishing, _dead, _oscillation, _stall,
                  _overfitting, _underfitting), repeats)


def _healthy(b: _Builder) -> None:
    h = HEALTHY
    b.add("healthy-iris-mlp", h, on("iris"), mlp(64, 32), train(epochs=40), seed=11)
    b.add("healthy-iris-sgd", h, on("iris"), mlp(32), SGD, train(lr=0.05, epochs=60), seed=12)
    b.add("healthy-moons-mlp", h, on("moons"), mlp(64, 64), train(epochs=40), seed=13)
    b.add("healthy-moons-residual", h, on("moons"), fac("residual_mlp", width=32),
          train(epochs=30), seed=14)
    b.add("healthy-clf4-bn-gelu", h, on("clf4"), mlp(128, 64, norm="batch", activation="gelu"),
          train(epochs=30), seed=15)
    b.add("healthy-clf4-conv1d", h, on("clf4"), fac("conv1d_net", channels=[16, 32]),
          train(lr=3e-3, epochs=30), seed=16)
    b.add("healthy-digits-residual", h, on("digits"), fac("residual_mlp", width=64),
          train(epochs=15), seed=17)
    b.add("healthy-digits-tanh-ln-sgd", h, on("digits"),
          mlp(128, norm="layer", activation="tanh"), SGD, train(lr=0.05, epochs=20), seed=18)
    b.add("healthy-bc-residual-sgd", h, on("breast_cancer"), fac("residual_mlp", width=32),
          SGD, train(lr=0.01, epochs=30), seed=19)
    b.add("healthy-wine-tanh", h, on("wine"), mlp(64, activation="tanh"),
          train(lr=3e-3, epochs=40), seed=20)
    # regression in raw units: mlt's diabetes example as shipped, and others
    b.add("healthy-diabetes-example", h, on("diabetes"), mlp(64, 32, dropout=0.0),
          train(epochs=60, lr=0.003, early_stopping={"patience": 10}), seed=21)
    b.add("healthy-diabetes-residual", h, on("diabetes"), fac("residual_mlp", width=32),
          train(epochs=60, lr=0.003, early_stopping={"patience": 10}), seed=22)
    b.add("healthy-friedman1-mlp", h, on("friedman1"), mlp(128, 64, dropout=0.0),
          train(epochs=60, lr=3e-3, early_stopping={"patience": 10}), seed=23)
    b.add("healthy-friedman1-sgd", h, on("friedman1"), mlp(64, 64, dropout=0.0), SGD,
          train(epochs=60, lr=0.01, early_stopping={"patience": 10}), seed=24)
    b.add("healthy-regraw-mlp", h, on("regraw"), mlp(64, dropout=0.0),
          train(epochs=80, lr=0.01, early_stopping={"patience": 10}), seed=25)
    b.add("healthy-friedman1-residual-warmup", h, on("friedman1"),
          fac("residual_mlp", width=64), train(epochs=60, lr=3e-3, warmup_epochs=3), seed=26)


def _nan(b: _Builder) -> None:
    for seed, (ds, at, model) in enumerate([
            ("iris", 20, mlp(32)), ("friedman1", 40, fac("residual_mlp", width=32)),
            ("moons", 25, fac("conv1d_net")), ("diabetes", 15, mlp(64, 32))]):
        b.add(f"nan-poison-{ds}", "nan_loss", on(ds), model, NO_ES, seed=30 + seed,
              injection=Injection("poison_weight", at), note="a weight set to NaN mid-run")
    # config: sgd, a huge lr, no clipping, raw-unit targets
    for seed, ds in enumerate(["diabetes", "regraw"]):
        b.add(f"nan-sgd-hugelr-{ds}", "nan_loss", on(ds), mlp(64), NO_ES, NO_CLIP, SGD,
              CONSTANT_LR, train(lr=1.0), seed=40 + seed, allowed=NAN_OK,
              note="sgd lr 1 on raw-unit targets, no clipping")


def _exploding(b: _Builder) -> None:
    # config: no clipping with sgd (momentum 0.9) on raw-unit regression, an lr that is
    # ordinary for standardised data
    for seed, ds in enumerate(["diabetes", "regraw", "friedman1"]):
        b.add(f"explode-sgd-noclip-{ds}", "exploding_gradients", on(ds), mlp(64, 32), NO_ES,
              NO_CLIP, SGD, train(lr=0.05), seed=50 + seed, allowed=EXPLODE_OK,
              note="sgd lr 0.05, no clipping, raw-unit targets")
    # injected: sgd lr x300 mid-run, no clipping (new data sets and families)
    for seed, (ds, at, model) in enumerate([("moons", 60, mlp(64, 64)),
                                            ("clf4", 80, fac("residual_mlp", width=32))]):
        b.add(f"explode-lrup-{ds}", "exploding_gradients", on(ds), model, NO_ES, NO_CLIP, SGD,
              CONSTANT_LR, train(lr=0.01), seed=55 + seed, allowed=EXPLODE_OK,
              injection=Injection("lr_scale", at, 300.0), note="sgd lr x300 mid-run, no clip")
    # a bad init of a residual net, no clipping
    b.add("explode-residual-init-clf4", "exploding_gradients", on("clf4"),
          fac("residual_mlp", width=64, blocks=4, act="relu", init_gain=6.0), NO_ES, NO_CLIP,
          CONSTANT_LR, SGD, train(lr=0.01), seed=58, allowed=EXPLODE_OK,
          note="residual relu net, weights x6 at init, sgd, no clipping")


def _vanishing(b: _Builder) -> None:
    for seed, ds in enumerate(["iris", "clf4", "friedman1"]):
        b.add(f"vanish-sigmoid10-{ds}", "vanishing_gradients", on(ds),
              mlp(*[16] * 10, activation="sigmoid", dropout=0.0), NO_ES, seed=60 + seed,
              allowed=VANISH_OK, note="built-in mlp, 10 sigmoid layers of 16, adamw")
    for seed, ds in enumerate(["moons", "digits", "diabetes"]):
        b.add(f"vanish-deeptanh-{ds}", "vanishing_gradients", on(ds),
              fac("deep_tanh", depth=8, width=32, init_std=0.05), NO_ES, seed=65 + seed,
              allowed=VANISH_OK, note="8 tanh layers, init std 0.05")


def _dead(b: _Builder) -> None:
    for seed, ds in enumerate(["clf4", "friedman1", "iris"]):
        b.add(f"dead-conv1d-init-{ds}", "dead_relu", on(ds),
              fac("conv1d_net", channels=[16, 32], bias_init=-4.0), NO_ES, seed=70 + seed,
              allowed=DEAD_OK, note="conv1d net, conv biases -4 at init")
    for seed, (ds, at) in enumerate([("moons", 50), ("regraw", 40)]):
        b.add(f"dead-shift-{ds}", "dead_relu", on(ds), mlp(64, 64, dropout=0.0), NO_ES,
              seed=75 + seed, allowed=DEAD_OK, injection=Injection("bias_shift", at, -10.0),
              note="hidden biases -10 mid-run")


def _oscillation(b: _Builder) -> None:
    # config: adam with an lr ~50-100x too high, constant, no clipping
    for seed, (ds, value) in enumerate([("iris", 0.1), ("moons", 0.1), ("clf4", 0.05),
                                        ("friedman1", 0.1)]):
        b.add(f"osc-highlr-{ds}", "loss_oscillation", on(ds), mlp(64, 64), NO_ES, NO_CLIP,
              CONSTANT_LR, train(lr=value, epochs=25), seed=80 + seed, allowed=OSC_OK,
              note=f"adamw lr {value:g}, constant, no clipping")
    # injected: lr x100 mid-run
    b.add("osc-lrup-clf4", "loss_oscillation", on("clf4"), mlp(128, 64), NO_ES, NO_CLIP,
          CONSTANT_LR, train(epochs=25), seed=85, allowed=OSC_OK,
          injection=Injection("lr_scale", 100, 100.0), note="adamw lr x100 mid-run")


def _stall(b: _Builder) -> None:
    for seed, (ds, value) in enumerate([("moons", 1e-6), ("clf4", 1e-6), ("diabetes", 1e-5),
                                        ("friedman1", 1e-6)]):
        b.add(f"stall-tinylr-{ds}", "convergence_stall", on(ds), mlp(64, 32), NO_ES,
              train(lr=value, epochs=12), seed=90 + seed, allowed=STALL_OK,
              note=f"adamw lr {value:g}")
    b.add("stall-sgd-tinylr-iris", "convergence_stall", on("iris"), mlp(32), SGD, NO_ES,
          train(lr=1e-5, epochs=12), seed=95, allowed=STALL_OK, note="sgd lr 1e-5")


def _overfitting(b: _Builder) -> None:
    # config: a small train split under a wide MLP, no regularisation, a constant lr, trained
    # long with no early stopping (the textbook overfit)
    small = {"data": {"split": {"val": 0.45, "test": 0.44}}}
    for seed, (ds, epochs) in enumerate([("breast_cancer", 150), ("clf4", 150),
                                         ("friedman1", 150), ("diabetes", 150),
                                         ("wine", 150)]):
        b.add(f"overfit-smallsplit-{ds}", "overfitting", on(ds), small, mlp(512, 512),
              NO_REG, NO_ES, CONSTANT_LR, train(epochs=epochs, batch_size=16), seed=100 + seed,
              note="10% of the rows to train on, 2x512, no regularisation, 150 epochs")
    b.add("overfit-smallsplit-moons-residual", "overfitting", on("moons"), small,
          fac("residual_mlp", width=128, blocks=3), NO_REG, NO_ES, CONSTANT_LR,
          train(epochs=150, batch_size=16), seed=106,
          note="residual mlp on 10% of two moons, no regularisation, 150 epochs")


def _underfitting(b: _Builder) -> None:
    # config: too little capacity
    for seed, (ds, width) in enumerate([("digits", 1), ("clf4", 1), ("friedman1", 1)]):
        b.add(f"under-capacity-{ds}", "underfitting", on(ds), mlp(width, dropout=0.0),
              NO_ES, train(epochs=20), seed=110 + seed, allowed=UNDER_OK,
              note=f"one hidden layer of {width} unit")
    # config: huge dropout on a narrow net
    for seed, ds in enumerate(["clf4", "digits"]):
        b.add(f"under-dropout-{ds}", "underfitting", on(ds), mlp(16, dropout=0.95), NO_ES,
              train(epochs=20), seed=115 + seed, allowed=UNDER_OK, note="dropout 0.95")
    # config: huge weight decay (adam's L2, not decoupled) on new data
    for seed, ds in enumerate(["moons", "diabetes"]):
        b.add(f"under-wd-{ds}", "underfitting", on(ds), mlp(64, 32), NO_ES,
              {"training": {"optimizer": "adam", "weight_decay": 10.0, "epochs": 20}},
              seed=118 + seed, allowed=UNDER_OK, note="adam L2 weight decay 10")
