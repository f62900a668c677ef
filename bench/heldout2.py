"""Held-out set v2 of `bench/detectors.py`: written before any rule change of issue 11's second
pass, and never used to choose a rule or a threshold.

Why a second set: the first held-out set (`heldout.py`) had its misses analysed case by case,
so it became tuning material. This one is new on every axis, against both earlier sets:

* data (scikit-learn generators neither of them uses, see `heldout2_factories.py`): two noisy
  circles, five 10-D blobs (and a copy with 25 % of the labels replaced), nested Gaussian
  quantiles, Hastie 10.2; regression in raw units: sparse-uncorrelated with 100 added (a large
  offset: mean 100, spread 3.5), the swiss roll and the S-curve (the target is the position
  along the manifold);
* model families through factories: a Linear-BatchNorm-ReLU stack, an hourglass (128-32-8-32-
  128, SiLU/GELU/ReLU), a wide shallow net (one hidden layer of 1024-2048), a narrow deep
  sigmoid stack, a tiny transformer over the features as tokens; the built-in mlp with no
  hidden layer (a linear model) and with other activations;
* pathologies from ordinary config choices (an lr far too high or too low, sgd without
  clipping on raw-unit targets, no hidden layer on non-linear data, heavy weight decay, a small
  train split under a wide net trained long, a bad init or bias) beside injected faults (a NaN
  weight, the lr multiplied mid-run, every hidden bias shifted mid-run), for every finding;
* 32 healthy families per seed, 18 classification and 14 regression.

Labels follow what the config does by construction; `allowed` lists what a reasonable detector
may also say about the same run. Goals are set below what a scikit-learn MLP reaches on a 70/30
split of the same data (measured before this file was committed, without mlt or its detectors).

Never edit the cases or labels after the commit that added this file ("bench: held-out v2,
written before any rule change"). A label found wrong later is reported in the note, not fixed.
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
    clf_in,
    fac_in,
    mlp,
    reg_in,
    train,
)

F = "heldout2_factories"


def _clf(source: str, batch: int, metric: str, target: float) -> dict[str, Any]:
    return clf_in(F, source, batch, metric, target)


def _reg(source: str, metric: str, target: float) -> dict[str, Any]:
    return reg_in(F, source, 32, metric, target)


# goals: below what a scikit-learn MLP (64, 64) reaches on val (circles 0.996, blobs 0.996,
# quantiles 0.948, hastie 0.907 accuracy; sparse_offset r2 0.889, swissroll rmse 0.287, scurve
# mae 0.225; the noisy copies: circles 0.82, blobs 0.75, swiss roll r2 0.71)
SETS: dict[str, dict[str, Any]] = {
    "circles": _clf("circles", 32, "accuracy", 0.9),
    "circles_noisy": _clf("circles_noisy", 32, "accuracy", 0.7),
    "blobs": _clf("blobs", 32, "f1_macro", 0.9),
    "blobs_noisy": _clf("blobs_noisy_labels", 32, "accuracy", 0.6),
    "quantiles": _clf("quantiles", 32, "accuracy", 0.85),
    "hastie": _clf("hastie", 32, "roc_auc", 0.9),
    "sparse_offset": _reg("sparse_offset", "r2", 0.7),
    "swissroll": _reg("swissroll", "rmse", 0.6),
    "swissroll_noisy": _reg("swissroll_noisy", "r2", 0.5),
    "scurve": _reg("scurve", "mae", 0.5),
}

def on(name: str) -> dict[str, Any]:
    return SETS[name]


def fac(fn: str, **params: Any) -> dict[str, Any]:
    return fac_in(F, fn, **params)


def build_heldout2(repeats: int = 1) -> list[Scenario]:
    """Every held-out v2 scenario, each `repeats` times over different seeds (seed + 100 k)."""
    return build_set("h2", (_healthy, _nan, _exploding, _vanishing, _dead, _oscillation, _stall,
                  _overfitting, _underfitting), repeats)


def _healthy(b: _Builder) -> None:
    h = HEALTHY
    # classification: 18
    b.add("healthy-circles-mlp", h, on("circles"), mlp(64, 64), train(epochs=30), seed=201)
    b.add("healthy-circles-transformer", h, on("circles"), fac("feature_transformer"),
          train(epochs=30, lr=3e-3), seed=202)
    b.add("healthy-circles-wide-sgd", h, on("circles"), fac("wide_shallow"), SGD,
          train(epochs=30, lr=0.05), seed=203)
    b.add("healthy-circles-hourglass", h, on("circles"), fac("hourglass", act="silu"),
          train(epochs=30), seed=204)
    b.add("healthy-blobs-bn", h, on("blobs"), fac("bn_mlp"), train(epochs=20), seed=205)
    b.add("healthy-blobs-gelu", h, on("blobs"), mlp(128, activation="gelu"),
          train(epochs=20), seed=206)
    b.add("healthy-blobs-transformer", h, on("blobs"), fac("feature_transformer"),
          train(epochs=20, lr=3e-3), seed=207)
    b.add("healthy-blobs-wide-step", h, on("blobs"), fac("wide_shallow"),
          train(epochs=20, scheduler="step", step_size=5, gamma=0.5), seed=208)
    b.add("healthy-quantiles-leaky", h, on("quantiles"), mlp(128, 64, activation="leaky_relu"),
          train(epochs=40), seed=209)
    b.add("healthy-quantiles-hourglass", h, on("quantiles"), fac("hourglass", act="gelu"),
          train(epochs=40, lr=3e-3), seed=210)
    b.add("healthy-quantiles-bn-sgd", h, on("quantiles"), fac("bn_mlp"), SGD,
          train(epochs=40, lr=0.05), seed=211)
    b.add("healthy-quantiles-transformer-warmup", h, on("quantiles"),
          fac("feature_transformer", dim=32), train(epochs=40, lr=3e-3, warmup_epochs=3),
          seed=212)
    b.add("healthy-hastie-mlp", h, on("hastie"), mlp(64), train(epochs=30), seed=213)
    b.add("healthy-hastie-bn", h, on("hastie"), fac("bn_mlp"), train(epochs=30), seed=214)
    b.add("healthy-hastie-wide", h, on("hastie"), fac("wide_shallow"), train(epochs=30),
          seed=215)
    b.add("healthy-hastie-hourglass-plateau", h, on("hastie"), fac("hourglass", act="silu"),
          NO_ES, train(epochs=30, scheduler="plateau"), seed=216)
    b.add("healthy-hastie-long-noes", h, on("hastie"), mlp(256, 128), NO_ES, train(epochs=40),
          seed=217)
    b.add("healthy-hastie-transformer", h, on("hastie"), fac("feature_transformer"),
          train(epochs=30, lr=3e-3), seed=218)
    # regression in raw units: 14
    es = {"early_stopping": {"patience": 10}}
    b.add("healthy-offset-mlp", h, on("sparse_offset"), mlp(64, 32, dropout=0.0),
          train(epochs=80, lr=0.01, **es), seed=219)
    b.add("healthy-offset-bn", h, on("sparse_offset"), fac("bn_mlp"),
          train(epochs=80, lr=0.01, **es), seed=220)
    b.add("healthy-offset-wide", h, on("sparse_offset"), fac("wide_shallow"),
          train(epochs=80, lr=0.01, **es), seed=221)
    b.add("healthy-offset-hourglass", h, on("sparse_offset"), fac("hourglass", act="silu"),
          train(epochs=80, lr=0.01, **es), seed=222)
    b.add("healthy-swissroll-mlp", h, on("swissroll"), mlp(64, 64, dropout=0.0),
          train(epochs=60, lr=3e-3, **es), seed=223)
    b.add("healthy-swissroll-transformer", h, on("swissroll"), fac("feature_transformer"),
          train(epochs=60, lr=3e-3, **es), seed=224)
    b.add("healthy-swissroll-bn-sgd", h, on("swissroll"), fac("bn_mlp"), SGD,
          train(epochs=60, lr=0.01, **es), seed=225)
    b.add("healthy-swissroll-hourglass", h, on("swissroll"), fac("hourglass", act="gelu"),
          train(epochs=60, lr=3e-3, **es), seed=226)
    b.add("healthy-swissroll-wide-warmup", h, on("swissroll"), fac("wide_shallow"),
          train(epochs=60, lr=3e-3, warmup_epochs=3, **es), seed=227)
    b.add("healthy-scurve-mlp", h, on("scurve"), mlp(128, 64, dropout=0.0),
          train(epochs=60, lr=3e-3, **es), seed=228)
    b.add("healthy-scurve-bn", h, on("scurve"), fac("bn_mlp", act="silu"),
          train(epochs=60, lr=3e-3, **es), seed=229)
    b.add("healthy-scurve-hourglass", h, on("scurve"), fac("hourglass", act="silu"),
          train(epochs=60, lr=3e-3, **es), seed=230)
    b.add("healthy-scurve-wide-sgd", h, on("scurve"), fac("wide_shallow"), SGD,
          train(epochs=60, lr=0.01, **es), seed=231)
    b.add("healthy-scurve-transformer", h, on("scurve"), fac("feature_transformer"),
          train(epochs=60, lr=3e-3, **es), seed=232)


def _nan(b: _Builder) -> None:
    # injected: a weight set to NaN mid-run
    for seed, (ds, at, model) in enumerate([
            ("circles", 30, fac("feature_transformer")), ("sparse_offset", 45, fac("bn_mlp")),
            ("hastie", 50, fac("hourglass"))]):
        b.add(f"nan-poison-{ds}", "nan_loss", on(ds), model, NO_ES, seed=240 + seed,
              injection=Injection("poison_weight", at), note="a weight set to NaN mid-run")
    # injected: sgd lr x1e6 mid-run, no clipping
    b.add("nan-lrup-blobs", "nan_loss", on("blobs"), fac("wide_shallow"), NO_ES, NO_CLIP, SGD,
          CONSTANT_LR, train(lr=0.01), seed=243, allowed=NAN_OK,
          injection=Injection("lr_scale", 35, 1e6), note="sgd lr x1e6 mid-run, no clipping")
    # config: sgd lr 1e4 from the start, no clipping
    for seed, (ds, model) in enumerate([("swissroll", mlp(64, 32, dropout=0.0)),
                                        ("quantiles", fac("hourglass", act="relu"))]):
        b.add(f"nan-hugelr-{ds}", "nan_loss", on(ds), model, NO_ES, NO_CLIP, SGD, CONSTANT_LR,
              train(lr=1e4), seed=244 + seed, allowed=NAN_OK,
              note="sgd lr 1e4 from the start, no clipping")


def _exploding(b: _Builder) -> None:
    # config: sgd far past the edge of stability, no clipping
    b.add("explode-sgd-blobs-wide", "exploding_gradients", on("blobs"), fac("wide_shallow"),
          NO_ES, NO_CLIP, SGD, CONSTANT_LR, train(lr=0.5, epochs=20), seed=250,
          allowed=EXPLODE_OK, note="sgd lr 0.5, wide net, no clipping")
    b.add("explode-sgd-swissroll", "exploding_gradients", on("swissroll"),
          mlp(64, 32, dropout=0.0), NO_ES, NO_CLIP, SGD, CONSTANT_LR, train(lr=0.05, epochs=30),
          seed=251, allowed=EXPLODE_OK, note="sgd lr 0.05 on raw-unit targets, no clipping")
    b.add("explode-sgd-offset", "exploding_gradients", on("sparse_offset"),
          mlp(64, 32, dropout=0.0), NO_ES, NO_CLIP, SGD, CONSTANT_LR, train(lr=0.02, epochs=30),
          seed=252, allowed=EXPLODE_OK,
          note="sgd lr 0.02 on targets offset by 100, no clipping")
    # injected: sgd lr x300 mid-run, no clipping
    for seed, (ds, at, model) in enumerate([("circles", 60, fac("feature_transformer")),
                                            ("quantiles", 70, fac("hourglass", act="silu")),
                                            ("scurve", 80, fac("wide_shallow"))]):
        base = 0.005 if ds == "scurve" else 0.01
        b.add(f"explode-lrup-{ds}", "exploding_gradients", on(ds), model, NO_ES, NO_CLIP, SGD,
              CONSTANT_LR, train(lr=base, epochs=25), seed=253 + seed, allowed=EXPLODE_OK,
              injection=Injection("lr_scale", at, 300.0), note="sgd lr x300 mid-run, no clip")
    # model: a deep ReLU hourglass with every weight x3 at init (x3^6 through the stack)
    b.add("explode-init-hastie", "exploding_gradients", on("hastie"),
          fac("hourglass", act="relu", init_gain=3.0), NO_ES, NO_CLIP, CONSTANT_LR,
          train(epochs=20), seed=256, allowed=EXPLODE_OK,
          note="relu hourglass, weights x3 at init, adamw, no clipping")


def _vanishing(b: _Builder) -> None:
    b.add("vanish-deepsigmoid-blobs", "vanishing_gradients", on("blobs"),
          fac("deep_sigmoid", depth=10, width=12), NO_ES, train(epochs=20), seed=260,
          allowed=VANISH_OK, note="10 sigmoid layers of 12, adamw")
    b.add("vanish-deepsigmoid-swissroll", "vanishing_gradients", on("swissroll"),
          fac("deep_sigmoid", depth=10, width=12), NO_ES, train(epochs=30), seed=261,
          allowed=VANISH_OK, note="10 sigmoid layers of 12, adamw, regression")
    b.add("vanish-deepsigmoid-quantiles-sgd", "vanishing_gradients", on("quantiles"),
          fac("deep_sigmoid", depth=14, width=16), NO_ES, SGD, train(lr=0.05, epochs=20),
          seed=262, allowed=VANISH_OK, note="14 sigmoid layers of 16, sgd")
    for seed, ds in enumerate(["circles", "scurve"]):
        b.add(f"vanish-builtin-sigmoid-{ds}", "vanishing_gradients", on(ds),
              mlp(*[24] * 10, activation="sigmoid", dropout=0.0), NO_ES, SGD,
              train(lr=0.01, epochs=25), seed=263 + seed, allowed=VANISH_OK,
              note="built-in mlp, 10 sigmoid layers of 24, sgd")
    b.add("vanish-builtin-sigmoid12-hastie", "vanishing_gradients", on("hastie"),
          mlp(*[32] * 12, activation="sigmoid", dropout=0.0), NO_ES, train(epochs=20),
          seed=265, allowed=VANISH_OK, note="built-in mlp, 12 sigmoid layers of 32, adamw")


def _dead(b: _Builder) -> None:
    # model: hidden biases far below zero at init
    b.add("dead-init-quantiles-wide", "dead_relu", on("quantiles"),
          fac("wide_shallow", bias_init=-6.0), NO_ES, train(epochs=20), seed=270,
          allowed=DEAD_OK, note="wide relu net, hidden biases -6 at init")
    b.add("dead-init-hastie-hourglass", "dead_relu", on("hastie"),
          fac("hourglass", act="relu", bias_init=-5.0), NO_ES, train(epochs=20), seed=271,
          allowed=DEAD_OK, note="relu hourglass, hidden biases -5 at init")
    # injected: every hidden bias -10 mid-run
    for seed, (ds, at, model) in enumerate([("blobs", 40, fac("wide_shallow")),
                                            ("swissroll", 60, fac("hourglass", act="relu")),
                                            ("sparse_offset", 100, mlp(64, 64, dropout=0.0))]):
        b.add(f"dead-shift-{ds}", "dead_relu", on(ds), model, NO_ES, train(epochs=25),
              seed=272 + seed, allowed=DEAD_OK, injection=Injection("bias_shift", at, -10.0),
              note="hidden biases -10 mid-run")


def _oscillation(b: _Builder) -> None:
    # config: adamw with an lr 50-300x too high, constant, no clipping
    for seed, (ds, value, model) in enumerate([
            ("circles", 0.05, fac("feature_transformer")), ("blobs", 0.3, fac("wide_shallow")),
            ("quantiles", 0.1, fac("hourglass", act="silu")),
            ("swissroll", 0.3, mlp(64, 64, dropout=0.0))]):
        b.add(f"osc-highlr-{ds}", "loss_oscillation", on(ds), model, NO_ES, NO_CLIP,
              CONSTANT_LR, train(lr=value, epochs=25), seed=280 + seed, allowed=OSC_OK,
              note=f"adamw lr {value:g}, constant, no clipping")
    # injected: adamw lr x100 mid-run
    for seed, (ds, at, model) in enumerate([("hastie", 100, mlp(128, 64)),
                                            ("scurve", 80, fac("wide_shallow"))]):
        b.add(f"osc-lrup-{ds}", "loss_oscillation", on(ds), model, NO_ES, NO_CLIP, CONSTANT_LR,
              train(epochs=25), seed=284 + seed, allowed=OSC_OK,
              injection=Injection("lr_scale", at, 100.0), note="adamw lr x100 mid-run")


def _stall(b: _Builder) -> None:
    for seed, (ds, value, model) in enumerate([
            ("blobs", 1e-7, fac("feature_transformer")), ("hastie", 1e-6, fac("bn_mlp")),
            ("scurve", 1e-6, mlp(64, 32, dropout=0.0)),
            ("sparse_offset", 1e-6, fac("wide_shallow"))]):
        b.add(f"stall-tinylr-{ds}", "convergence_stall", on(ds), model, NO_ES,
              train(lr=value, epochs=12), seed=290 + seed, allowed=STALL_OK,
              note=f"adamw lr {value:g}")
    b.add("stall-sgd-tinylr-quantiles", "convergence_stall", on("quantiles"),
          fac("hourglass", act="silu"), NO_ES, SGD, train(lr=1e-5, epochs=12), seed=294,
          allowed=STALL_OK, note="sgd lr 1e-5")
    b.add("stall-lrcut-swissroll", "convergence_stall", on("swissroll"), mlp(64, 32), NO_ES,
          SGD, train(lr=0.001, epochs=12), seed=295, allowed=STALL_OK,
          injection=Injection("lr_scale", 3, 1e-4), note="sgd lr x1e-4 at step 3")


def _overfitting(b: _Builder) -> None:
    # config: 11% of the rows to train on, a wide net, no regularisation, a constant lr,
    # trained long with no early stopping
    small = {"data": {"split": {"val": 0.45, "test": 0.44}}}
    long = train(epochs=150, batch_size=16)
    cases = [("circles_noisy", fac("wide_shallow", width=2048)),
             ("blobs_noisy", mlp(512, 512)),
             ("hastie", fac("bn_mlp", widths=[512, 512])),
             ("quantiles", fac("feature_transformer", dim=32, layers=2)),
             ("swissroll_noisy", mlp(512, 512))]
    for seed, (ds, model) in enumerate(cases):
        b.add(f"overfit-smallsplit-{ds}", "overfitting", on(ds), small, model, NO_REG, NO_ES,
              CONSTANT_LR, long, seed=300 + seed,
              note="11% of the rows to train on, wide net, no regularisation, 150 epochs")
    b.add("overfit-smallsplit-sparse_offset", "overfitting", on("sparse_offset"), small,
          mlp(512, 512), NO_REG, NO_ES, CONSTANT_LR, train(epochs=200, batch_size=16, lr=3e-3),
          seed=305, note="11% of the rows, 2x512, no regularisation, 200 epochs, offset target")


def _underfitting(b: _Builder) -> None:
    # config: no hidden layer (a linear model) on data no line separates
    for seed, ds in enumerate(["circles", "quantiles"]):
        b.add(f"under-linear-{ds}", "underfitting", on(ds), mlp(), NO_ES, train(epochs=20),
              seed=310 + seed, allowed=UNDER_OK, note="built-in mlp with no hidden layer")
    b.add("under-linear-swissroll", "underfitting", on("swissroll"), mlp(), NO_ES,
          train(epochs=40, lr=0.01), seed=312, allowed=UNDER_OK,
          note="a linear model on the swiss roll")
    # config: one hidden unit
    b.add("under-capacity-hastie", "underfitting", on("hastie"), mlp(1, dropout=0.0), NO_ES,
          train(epochs=20), seed=313, allowed=UNDER_OK, note="one hidden unit")
    # config: heavy weight decay
    b.add("under-wd-blobs", "underfitting", on("blobs"), fac("wide_shallow"), NO_ES,
          train(epochs=20, weight_decay=50.0), seed=314, allowed=UNDER_OK,
          note="adamw weight decay 50")
    b.add("under-l2-scurve", "underfitting", on("scurve"), mlp(64, 32), NO_ES,
          {"training": {"optimizer": "adam", "weight_decay": 10.0, "epochs": 30}}, seed=315,
          allowed=UNDER_OK, note="adam L2 weight decay 10")
