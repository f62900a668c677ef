"""Held-out set v3 of `bench/detectors.py`: written before any rule change of issue 11's third
pass, and never used to choose a rule or a threshold.

Why a third set: held-out v2's misses were read after the second pass froze its rules, so v2
became tuning material like `heldout.py` and `scenarios.py`. This one is new on every axis,
against all three:

* data (generated, see `heldout3_factories.py`): an 8-class `make_classification`, an
  imbalanced (85/15) binary one (and a copy with 20 % of the labels replaced), two interleaved
  spirals, a 3x3 checkerboard, 16 Gaussian clusters on a grid with 4 noise features (and a copy
  with 30 % noisy labels); regression in raw units: a housing-like table with prices in units
  of 100 000 (skewed, capped), a sum of sines with 30 added (an offset ~7x the spread), a
  skewed count-like target, a product/square target with a spread of ~11;
* model families through factories: a LayerNorm MLP, a pre-norm residual MLP, a Conv2d net
  over the features laid out as a square image, per-feature binned embeddings, a GLU-gated
  MLP, a tanh stack (deep with a small init for vanishing); the built-in mlp with tanh, gelu,
  batch norm, no hidden layer, one unit, heavy dropout;
* pathologies from ordinary config choices (an lr far too high or low, sgd with momentum and
  no clipping, no hidden layer, one unit, dropout 0.9, weight decay 200, a small train split
  under a wide net trained long, a small init in a deep tanh stack, negative biases at init)
  beside injected faults (a NaN weight, the lr multiplied mid-run, every hidden bias shifted
  mid-run), for every finding;
* 32 healthy families per seed, 18 classification and 14 regression.

Labels follow what the config should cause, decided before any run; `allowed` lists what a
reasonable detector may also say about the same run. Goals are set below what a scikit-learn
MLP (64, 64) with standardised inputs (and standardised targets for regression) reaches on a
70/30 split of the same data, measured before this file was committed, without mlt.

Never edit the cases or labels after the commit that added this file ("bench: held-out v3,
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

F = "heldout3_factories"


def _clf(source: str, batch: int, metric: str, target: float) -> dict[str, Any]:
    return clf_in(F, source, batch, metric, target)


def _reg(source: str, metric: str, target: float) -> dict[str, Any]:
    return reg_in(F, source, 32, metric, target)


# goals: below what a scikit-learn MLP (64, 64) reaches on a 70/30 split (manyclass accuracy
# 0.900, imbalanced roc_auc 0.905, spirals accuracy 0.996, checker accuracy 0.983, grid16
# f1_macro 0.927; housing r2 0.648, sines r2 0.941, counts mae 2.69, product rmse 0.93; the
# noisy copies, used by overfitting cases only: imbalanced_noisy roc_auc 0.69, grid16_noisy
# accuracy 0.53, housing_noisy r2 0.03)
SETS: dict[str, dict[str, Any]] = {
    "manyclass": _clf("manyclass", 32, "accuracy", 0.8),
    "imbalanced": _clf("imbalanced", 32, "roc_auc", 0.85),
    "imbalanced_noisy": _clf("imbalanced_noisy", 32, "roc_auc", 0.6),
    "spirals": _clf("spirals", 32, "accuracy", 0.95),
    "checker": _clf("checker", 32, "accuracy", 0.9),
    "grid16": _clf("grid16", 32, "f1_macro", 0.85),
    "grid16_noisy": _clf("grid16_noisy", 32, "accuracy", 0.4),
    "housing": _reg("housing", "r2", 0.55),
    "housing_noisy": _reg("housing_noisy", "r2", 0.0),
    "sines": _reg("sines", "r2", 0.85),
    "counts": _reg("counts", "mae", 3.0),
    "product": _reg("product", "rmse", 1.5),
}

def on(name: str) -> dict[str, Any]:
    return SETS[name]


def fac(fn: str, **params: Any) -> dict[str, Any]:
    return fac_in(F, fn, **params)


def build_heldout3(repeats: int = 1) -> list[Scenario]:
    """Every held-out v3 scenario, each `repeats` times over different seeds (seed + 100 k)."""
    return build_set("h3", (_healthy, _nan, _exploding, _vanishing, _dead, _oscillation, _stall,
                  _overfitting, _underfitting), repeats)


def _healthy(b: _Builder) -> None:
    h = HEALTHY
    es = {"early_stopping": {"patience": 10}}
    # classification: 18
    b.add("healthy-manyclass-ln", h, on("manyclass"), fac("ln_mlp"), train(epochs=25),
          seed=401)
    b.add("healthy-manyclass-resnet", h, on("manyclass"), fac("prenorm_resnet"),
          train(epochs=25), seed=402)
    b.add("healthy-manyclass-gridcnn", h, on("manyclass"), fac("grid_cnn"),
          train(epochs=25, lr=3e-3), seed=403)
    b.add("healthy-manyclass-tanh-sgd", h, on("manyclass"), mlp(256, 128, activation="tanh"),
          SGD, train(epochs=30, lr=0.05), seed=404)
    b.add("healthy-manyclass-bn-sgd", h, on("manyclass"), mlp(128, 64, norm="batch"), SGD,
          train(epochs=25, lr=0.1), seed=405)
    b.add("healthy-imbalanced-mlp", h, on("imbalanced"), mlp(64, 32),
          train(epochs=30, batch_size=64), seed=406)
    b.add("healthy-imbalanced-embed", h, on("imbalanced"), fac("binned_embedding"),
          train(epochs=30), seed=407)
    b.add("healthy-imbalanced-glu-step", h, on("imbalanced"), fac("glu_mlp"),
          train(epochs=30, scheduler="step", step_size=10, gamma=0.5), seed=408)
    b.add("healthy-imbalanced-ln-warmup", h, on("imbalanced"), fac("ln_mlp", act="gelu"),
          train(epochs=30, warmup_epochs=3), seed=409)
    b.add("healthy-spirals-mlp", h, on("spirals"), mlp(128, 128, 64, dropout=0.0),
          train(epochs=100, lr=3e-3, **es), seed=410)
    b.add("healthy-spirals-resnet", h, on("spirals"), fac("prenorm_resnet"),
          train(epochs=80, lr=3e-3, **es), seed=411)
    b.add("healthy-checker-mlp", h, on("checker"), mlp(128, 128, dropout=0.0),
          train(epochs=80, lr=3e-3, **es), seed=412)
    b.add("healthy-checker-glu", h, on("checker"), fac("glu_mlp"),
          train(epochs=80, lr=3e-3, **es), seed=413)
    b.add("healthy-checker-embed", h, on("checker"), fac("binned_embedding"),
          train(epochs=60, **es), seed=414)
    b.add("healthy-grid16-ln", h, on("grid16"), fac("ln_mlp"), train(epochs=40), seed=415)
    b.add("healthy-grid16-gridcnn", h, on("grid16"), fac("grid_cnn"),
          train(epochs=40, lr=3e-3), seed=416)
    b.add("healthy-grid16-tanh", h, on("grid16"), fac("tanh_stack", depth=3),
          train(epochs=40), seed=417)
    b.add("healthy-grid16-plateau-noes", h, on("grid16"), mlp(128), NO_ES,
          train(epochs=40, batch_size=16, scheduler="plateau"), seed=418)
    # regression in raw units: 14
    b.add("healthy-housing-mlp", h, on("housing"), mlp(64, 64, dropout=0.0),
          train(epochs=80, lr=3e-3, **es), seed=419)
    b.add("healthy-housing-ln", h, on("housing"), fac("ln_mlp"),
          train(epochs=80, lr=3e-3, **es), seed=420)
    b.add("healthy-housing-resnet", h, on("housing"), fac("prenorm_resnet"),
          train(epochs=60, **es), seed=421)
    b.add("healthy-housing-embed", h, on("housing"), fac("binned_embedding"),
          train(epochs=60, **es), seed=422)
    b.add("healthy-housing-gridcnn-sgd", h, on("housing"), fac("grid_cnn"), SGD,
          train(epochs=60, lr=0.01, **es), seed=423)
    b.add("healthy-sines-mlp", h, on("sines"), mlp(128, 64, dropout=0.0),
          train(epochs=100, lr=3e-3, early_stopping={"patience": 15}), seed=424)
    b.add("healthy-sines-glu", h, on("sines"), fac("glu_mlp"),
          train(epochs=100, lr=3e-3, early_stopping={"patience": 15}), seed=425)
    b.add("healthy-sines-ln", h, on("sines"), fac("ln_mlp"),
          train(epochs=100, lr=3e-3, early_stopping={"patience": 15}), seed=426)
    b.add("healthy-counts-mlp", h, on("counts"), mlp(64, dropout=0.0),
          train(epochs=60, lr=3e-3, **es), seed=427)
    b.add("healthy-counts-resnet", h, on("counts"), fac("prenorm_resnet"),
          train(epochs=60, **es), seed=428)
    b.add("healthy-counts-gridcnn", h, on("counts"), fac("grid_cnn"),
          train(epochs=60, lr=3e-3, **es), seed=429)
    b.add("healthy-product-mlp", h, on("product"), mlp(128, 64, dropout=0.0),
          train(epochs=80, lr=3e-3, **es), seed=430)
    b.add("healthy-product-tanh", h, on("product"), fac("tanh_stack"),
          train(epochs=80, lr=3e-3, **es), seed=431)
    b.add("healthy-product-ln-warmup", h, on("product"), fac("ln_mlp"),
          train(epochs=80, lr=3e-3, warmup_epochs=5, **es), seed=432)


def _nan(b: _Builder) -> None:
    # injected: a weight set to NaN mid-run
    for seed, (ds, at, model) in enumerate([
            ("manyclass", 40, fac("prenorm_resnet")), ("housing", 50, fac("ln_mlp")),
            ("checker", 60, fac("glu_mlp")), ("counts", 30, fac("grid_cnn"))]):
        b.add(f"nan-poison-{ds}", "nan_loss", on(ds), model, NO_ES, seed=440 + seed,
              injection=Injection("poison_weight", at), note="a weight set to NaN mid-run")
    # injected: sgd lr x1e6 mid-run, no clipping
    b.add("nan-lrup-grid16", "nan_loss", on("grid16"), mlp(128, 64), NO_ES, NO_CLIP, SGD,
          CONSTANT_LR, train(lr=0.01), seed=444, allowed=NAN_OK,
          injection=Injection("lr_scale", 45, 1e6), note="sgd lr x1e6 mid-run, no clipping")
    # config: sgd lr 1e4 from the start, no clipping
    b.add("nan-hugelr-sines", "nan_loss", on("sines"), mlp(64, 32, dropout=0.0), NO_ES,
          NO_CLIP, SGD, CONSTANT_LR, train(lr=1e4), seed=445, allowed=NAN_OK,
          note="sgd lr 1e4 from the start, no clipping")


def _exploding(b: _Builder) -> None:
    # config: sgd (momentum 0.9) far past the edge of stability, no clipping
    b.add("explode-sgd-manyclass", "exploding_gradients", on("manyclass"), mlp(256, 256),
          NO_ES, NO_CLIP, SGD, CONSTANT_LR, train(lr=1.0, epochs=20), seed=450,
          allowed=EXPLODE_OK, note="sgd lr 1.0 (momentum 0.9), no clipping")
    b.add("explode-sgd-housing", "exploding_gradients", on("housing"),
          mlp(64, 64, dropout=0.0), NO_ES, NO_CLIP, SGD, CONSTANT_LR, train(lr=0.1, epochs=30),
          seed=451, allowed=EXPLODE_OK, note="sgd lr 0.1 on raw-unit targets, no clipping")
    b.add("explode-sgd-product", "exploding_gradients", on("product"),
          mlp(128, 64, dropout=0.0), NO_ES, NO_CLIP, SGD, CONSTANT_LR,
          train(lr=0.05, epochs=30), seed=452, allowed=EXPLODE_OK,
          note="sgd lr 0.05 on targets with a spread of 11, no clipping")
    # injected: sgd lr x300 mid-run, no clipping
    for seed, (ds, at, model) in enumerate([("spirals", 60, fac("prenorm_resnet")),
                                            ("checker", 80, fac("grid_cnn")),
                                            ("counts", 70, mlp(128, 64, dropout=0.0))]):
        base = 0.003 if ds == "counts" else 0.01
        b.add(f"explode-lrup-{ds}", "exploding_gradients", on(ds), model, NO_ES, NO_CLIP, SGD,
              CONSTANT_LR, train(lr=base, epochs=25), seed=453 + seed, allowed=EXPLODE_OK,
              injection=Injection("lr_scale", at, 300.0), note="sgd lr x300 mid-run, no clip")
    # model: a 3-layer GLU stack with every weight x3 at init (products of two x3 halves)
    b.add("explode-init-grid16", "exploding_gradients", on("grid16"),
          fac("glu_mlp", widths=[64, 64, 64], init_gain=3.0), NO_ES, NO_CLIP, CONSTANT_LR,
          train(epochs=20), seed=456, allowed=EXPLODE_OK,
          note="glu stack, weights x3 at init, adamw, no clipping")


def _vanishing(b: _Builder) -> None:
    b.add("vanish-tanh-small-init-manyclass", "vanishing_gradients", on("manyclass"),
          fac("tanh_stack", depth=12, width=32, init_gain=0.5), NO_ES, train(epochs=20),
          seed=460, allowed=VANISH_OK, note="12 tanh layers, weights x0.5 at init, adamw")
    b.add("vanish-tanh-small-init-housing", "vanishing_gradients", on("housing"),
          fac("tanh_stack", depth=10, width=32, init_gain=0.5), NO_ES, train(epochs=30),
          seed=461, allowed=VANISH_OK, note="10 tanh layers, weights x0.5 at init, regression")
    b.add("vanish-tanh-small-init-grid16-sgd", "vanishing_gradients", on("grid16"),
          fac("tanh_stack", depth=15, width=32, init_gain=0.4), NO_ES, SGD,
          train(lr=0.05, epochs=20), seed=462, allowed=VANISH_OK,
          note="15 tanh layers, weights x0.4 at init, sgd")
    b.add("vanish-builtin-sigmoid-checker", "vanishing_gradients", on("checker"),
          mlp(*[32] * 12, activation="sigmoid", dropout=0.0), NO_ES, SGD,
          train(lr=0.05, epochs=25), seed=463, allowed=VANISH_OK,
          note="built-in mlp, 12 sigmoid layers of 32, sgd")
    b.add("vanish-builtin-sigmoid-sines", "vanishing_gradients", on("sines"),
          mlp(*[24] * 10, activation="sigmoid", dropout=0.0), NO_ES, train(epochs=30),
          seed=464, allowed=VANISH_OK, note="built-in mlp, 10 sigmoid layers of 24, adamw")
    b.add("vanish-builtin-sigmoid-imbalanced", "vanishing_gradients", on("imbalanced"),
          mlp(*[16] * 14, activation="sigmoid", dropout=0.0), NO_ES, train(epochs=20),
          seed=465, allowed=VANISH_OK, note="built-in mlp, 14 sigmoid layers of 16, adamw")


def _dead(b: _Builder) -> None:
    # model: hidden biases far below zero at init
    b.add("dead-init-imbalanced-ln", "dead_relu", on("imbalanced"),
          fac("ln_mlp", bias_init=-6.0), NO_ES, train(epochs=20), seed=470,
          allowed=DEAD_OK, note="relu + LayerNorm mlp, hidden biases -6 at init")
    b.add("dead-init-grid16-gridcnn", "dead_relu", on("grid16"),
          fac("grid_cnn", bias_init=-8.0), NO_ES, train(epochs=20), seed=471,
          allowed=DEAD_OK, note="relu conv net, conv biases -8 at init")
    # injected: every hidden bias -10 mid-run
    for seed, (ds, at, model) in enumerate([("manyclass", 50, mlp(128, 64)),
                                            ("housing", 60, mlp(64, 64, dropout=0.0)),
                                            ("checker", 80, fac("ln_mlp")),
                                            ("counts", 40, fac("grid_cnn"))]):
        b.add(f"dead-shift-{ds}", "dead_relu", on(ds), model, NO_ES, train(epochs=25),
              seed=472 + seed, allowed=DEAD_OK, injection=Injection("bias_shift", at, -10.0),
              note="hidden biases -10 mid-run")


def _oscillation(b: _Builder) -> None:
    # config: adamw with an lr 50-100x too high, constant, no clipping
    for seed, (ds, value, model) in enumerate([
            ("manyclass", 0.1, fac("ln_mlp")), ("imbalanced", 0.1, fac("glu_mlp")),
            ("spirals", 0.05, fac("prenorm_resnet")),
            ("housing", 0.1, fac("tanh_stack"))]):
        b.add(f"osc-highlr-{ds}", "loss_oscillation", on(ds), model, NO_ES, NO_CLIP,
              CONSTANT_LR, train(lr=value, epochs=25), seed=480 + seed, allowed=OSC_OK,
              note=f"adamw lr {value:g}, constant, no clipping")
    # injected: adamw lr x100 mid-run
    for seed, (ds, at, model) in enumerate([("grid16", 60, mlp(128, 64, activation="gelu")),
                                            ("sines", 80, fac("ln_mlp"))]):
        b.add(f"osc-lrup-{ds}", "loss_oscillation", on(ds), model, NO_ES, NO_CLIP, CONSTANT_LR,
              train(epochs=25), seed=484 + seed, allowed=OSC_OK,
              injection=Injection("lr_scale", at, 100.0), note="adamw lr x100 mid-run")


def _stall(b: _Builder) -> None:
    for seed, (ds, value, model) in enumerate([
            ("manyclass", 1e-7, fac("grid_cnn")), ("housing", 1e-6, fac("prenorm_resnet")),
            ("checker", 1e-7, fac("binned_embedding"))]):
        b.add(f"stall-tinylr-{ds}", "convergence_stall", on(ds), model, NO_ES,
              train(lr=value, epochs=12), seed=490 + seed, allowed=STALL_OK,
              note=f"adamw lr {value:g}")
    b.add("stall-adam-tinylr-product", "convergence_stall", on("product"), fac("glu_mlp"),
          NO_ES, train(optimizer="adam", lr=1e-6, epochs=12), seed=493, allowed=STALL_OK,
          note="adam lr 1e-6")
    b.add("stall-sgd-tinylr-counts", "convergence_stall", on("counts"), mlp(64, 32), NO_ES,
          SGD, train(lr=1e-5, epochs=12), seed=494, allowed=STALL_OK, note="sgd lr 1e-5")
    b.add("stall-lrcut-grid16", "convergence_stall", on("grid16"), fac("ln_mlp"), NO_ES, SGD,
          train(lr=0.01, epochs=12), seed=495, allowed=STALL_OK,
          injection=Injection("lr_scale", 4, 1e-4), note="sgd lr x1e-4 at step 4")


def _overfitting(b: _Builder) -> None:
    # config: 11% of the rows to train on, a wide net, no regularisation, a constant lr,
    # trained long with no early stopping
    small = {"data": {"split": {"val": 0.45, "test": 0.44}}}
    long = train(epochs=150, batch_size=16)
    cases = [("imbalanced_noisy", mlp(512, 512)),
             ("grid16_noisy", fac("ln_mlp", widths=[512, 512])),
             ("grid16_noisy", fac("binned_embedding", dim=16, hidden=512)),
             ("manyclass", fac("prenorm_resnet", width=256)),
             ("housing_noisy", mlp(512, 512)),
             ("counts", fac("glu_mlp", widths=[512, 512]))]
    for seed, (ds, model) in enumerate(cases):
        b.add(f"overfit-smallsplit-{ds}-{model['model']['kind'].split(':')[-1]}", "overfitting",
              on(ds), small, model, NO_REG, NO_ES, CONSTANT_LR, long, seed=500 + seed,
              note="11% of the rows to train on, wide net, no regularisation, 150 epochs")


def _underfitting(b: _Builder) -> None:
    # config: no hidden layer (a linear model) on data no line fits
    for seed, (ds, epochs) in enumerate([("spirals", 30), ("checker", 30), ("sines", 40)]):
        b.add(f"under-linear-{ds}", "underfitting", on(ds), mlp(), NO_ES,
              train(epochs=epochs, lr=0.01), seed=510 + seed, allowed=UNDER_OK,
              note="built-in mlp with no hidden layer")
    # config: one hidden unit for 8 classes
    b.add("under-capacity-manyclass", "underfitting", on("manyclass"), mlp(1, dropout=0.0),
          NO_ES, train(epochs=25), seed=513, allowed=UNDER_OK, note="one hidden unit")
    # config: dropout 0.9
    b.add("under-dropout-housing", "underfitting", on("housing"), mlp(64, 64, dropout=0.9),
          NO_ES, train(epochs=40, lr=3e-3), seed=514, allowed=UNDER_OK, note="dropout 0.9")
    # config: heavy decoupled weight decay
    b.add("under-wd-imbalanced", "underfitting", on("imbalanced"), fac("ln_mlp"), NO_ES,
          train(epochs=25, weight_decay=200.0), seed=515, allowed=UNDER_OK,
          note="adamw weight decay 200")
