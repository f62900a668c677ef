"""Phase 5, `mlt finalize`: production training of the chosen config, the one evaluation of the
locked test split, exports into a versioned artifact folder verified in fresh processes, the
model card and deployment notes, and the production-readiness gate (25 items).

The steps, in order (each in `mltrainer.phases.finalize`):

1. choose the config (fast path: the baseline's; typical: optimize's) and load the data, which
   must still be what `mlt plan` locked;
2. the test evaluation of this config+data: recorded already → reuse it and the model it
   judged; otherwise train the production model and open the test split, once;
3. export, hash, verify (parity, latency, the deployment snippet), document.

After step 2 a bad-input error must not roll the audit log back (the runner restores it on
exit-2 errors, and the evaluation has to stay recorded), so such errors leave as exit 1.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrainer.errors import (
    BadInputError,
    DataError,
    MltError,
    RefusedError,
)
from mltrainer.phases.finalize.outcome import FinalizeOutcome
from mltrainer.phases.plan.outcome import PlanOutcome
from mltrainer.runner import PhaseContext

if TYPE_CHECKING:  # torch and the data layer load inside the phase, not on import
    from torch import nn

    from mltrainer.config import MltConfig
    from mltrainer.data import DataBundle
    from mltrainer.phases.finalize.production import ChosenConfig

SKIPPABLE = ("diagnose", "optimize")  # phases the fast path goes around


@dataclass
class Production:
    """What ships, once the one test evaluation is recorded: the chosen config, the data, the
    model and how it was trained, the evaluation record, and the plan it all stands on."""

    chosen: ChosenConfig
    bundle: DataBundle
    model: nn.Module
    train_cfg: MltConfig  # the config the model was trained with (epochs fixed for retraining)
    train_data: DataBundle  # what it was trained on (train+val when retrained)
    record: dict[str, Any]  # the evaluation record (.mlt/test_evaluations.json)
    reused: bool  # the recorded evaluation was reused, the test split not opened again
    plan: PlanOutcome


def run(ctx: PhaseContext) -> FinalizeOutcome:
    from mltrainer.data import prepare_data
    from mltrainer.engine.launch import Launch
    from mltrainer.phases.finalize import artifacts, evaluation
    from mltrainer.phases.finalize.production import choose_config

    plan = PlanOutcome.of(ctx.state)
    reason = evaluation.check_reevaluation_options(bool(ctx.options.get("reevaluate_test")),
                                                   ctx.options.get("reason"))
    chosen = choose_config(ctx)
    Launch.from_options(ctx.options, chosen.cfg)  # bad --nproc for this project: exit 2 now
    stale = artifacts.remove_stale_staging(ctx.project)  # left by an export killed midway
    if stale:
        ctx.audit({"event": "stale_staging_removed", "phase": "finalize", "folders": stale})
    bundle = prepare_data(chosen.cfg, ctx.project.root, audit=ctx.audit)
    locked = plan.data.fingerprints
    if bundle.fingerprints != locked:
        raise DataError(
            "the data no longer matches what `mlt plan` recorded and locked (split hashes "
            "differ); the test split is not opened",
            hint="re-run `mlt plan`",
        )
    key = evaluation.evaluation_key(chosen.cfg, ctx.cfg.finalize.model_dump(mode="json"),
                                    bundle.fingerprints, ctx.fingerprints["finalize"]["code"])
    record = evaluation.require_every_evaluation_recorded(ctx.project).get(key)
    reused = record is not None
    if reused and reason is not None:
        raise BadInputError(
            f"--reevaluate-test: this config and data were already evaluated (at "
            f"{record['evaluated_at']}); that result is reused, the test split is not "
            f"opened again",
            hint="run `mlt finalize` without --reevaluate-test")
    reevaluation = None if reused else evaluation.guard_new_evaluation(ctx.project, key, reason)
    if record is not None:
        model, train_cfg, train_data = _recorded_model(ctx, chosen, bundle, record)
        record = _with_replay(ctx, chosen, bundle, record, train_cfg)
        evaluation.note_reuse(ctx.project, record)
    else:
        model, train_cfg, train_data, record = _train_and_evaluate(
            ctx, chosen, bundle, key, locked["test"], plan, reevaluation)
    with _evaluation_stays_recorded():
        return _ship(ctx, Production(chosen, bundle, model, train_cfg, train_data, record,
                                     reused, plan))


def _train_and_evaluate(ctx: PhaseContext, chosen: ChosenConfig, bundle: DataBundle, key: str,
                        lock_hash: str, plan: PlanOutcome, reevaluation: dict[str, Any] | None
                        ) -> tuple[nn.Module, MltConfig, DataBundle, dict[str, Any]]:
    from mltrainer.phases.finalize import evaluation
    from mltrainer.phases.finalize.production import produce_model, weights_sha256

    model, run, train_cfg, train_data = produce_model(ctx, chosen, bundle)
    run["weights_sha256"] = weights_sha256(model)
    with _evaluation_stays_recorded():
        record = evaluation.evaluate_test_split(
            ctx.project, key=key, bundle=bundle, model=model, lock_hash=lock_hash,
            baseline=plan.trivial_baseline, bootstrap=ctx.cfg.finalize.bootstrap,
            seed=chosen.cfg.seed, run=run, chosen=chosen.to_dict(), reevaluation=reevaluation)
    return model, train_cfg, train_data, record


def _recorded_model(ctx: PhaseContext, chosen: ChosenConfig, bundle: DataBundle,
                    record: dict[str, Any]) -> tuple[nn.Module, MltConfig, DataBundle]:
    """The model the recorded evaluation judged: from its checkpoint, or trained again and
    proven identical (weights hash). Anything else would need a second test evaluation."""
    from mltrainer.phases.finalize.production import (
        produce_model,
        production_config,
        reload_recorded_model,
        source_epochs,
        train_plus_val,
        weights_sha256,
    )

    retrained = bool(record["run"].get("retrained"))
    train_cfg = production_config(chosen.cfg, source_epochs(chosen)) if retrained else chosen.cfg
    train_data = train_plus_val(bundle) if retrained else bundle
    model = reload_recorded_model(ctx, record, chosen.cfg, bundle.spec)
    if model is not None:
        return model, train_cfg, train_data
    model, _, train_cfg, train_data = produce_model(ctx, chosen, bundle)
    if weights_sha256(model) != record["run"].get("weights_sha256"):
        raise RefusedError(
            f"the test split was already evaluated for this config and data (at "
            f"{record['evaluated_at']}), its model's checkpoint "
            f"{record['run'].get('checkpoint')} is gone, and training again gave different "
            f"weights: shipping them would need a second test evaluation",
            hint="restore the run folder, or change the config (e.g. the seed) to evaluate a "
                 "new model",
        )
    return model, train_cfg, train_data


def _with_replay(ctx: PhaseContext, chosen: ChosenConfig, bundle: DataBundle,
                 record: dict[str, Any], train_cfg: MltConfig) -> dict[str, Any]:
    """A recorded retrained evaluation from before the recipe replay existed: replay it now
    (train and val only), so the gate judges the recipe all the same."""
    from mltrainer.phases.finalize.production import replay_on_train

    run = record["run"]
    if not run.get("retrained") or run.get("replay"):
        return record
    return {**record, "run": {**run, "replay": replay_on_train(ctx, chosen, bundle, train_cfg)}}


@contextlib.contextmanager
def _evaluation_stays_recorded() -> Iterator[None]:
    try:
        yield
    except BadInputError as exc:
        raise MltError(f"{exc.message} (the test evaluation stays recorded)",
                       hint=exc.hint) from exc


def _ship(ctx: PhaseContext, prod: Production) -> FinalizeOutcome:
    import numpy as np

    from mltrainer.engine import predict
    from mltrainer.exporting import FORMATS, build_deployable, build_item_deployable
    from mltrainer.phases.finalize import (
        artifacts,
        card,
        evaluation,
        items,
        schema,
        verification,
    )
    from mltrainer.phases.finalize.production import non_finite_weights, probe_determinism

    chosen, bundle, model, record = prod.chosen, prod.bundle, prod.model, prod.record
    train_cfg, train_data, reused = prod.train_cfg, prod.train_data, prod.reused
    project, task = ctx.project, bundle.spec.task
    run = record["run"]
    determinism = probe_determinism(ctx, train_cfg, train_data,
                                    retrained=bool(run.get("retrained")))
    scale = bundle.spec.target_scale  # standardised regression targets: inverted in the graph
    val_out = np.asarray(predict(model, bundle.val.X, target_scale=scale), dtype=np.float64)
    is_items = items.is_items(bundle)  # image folders, text, Datasets: items.py's parts
    deployable = (build_item_deployable(model, bundle.pipeline, target_scale=scale) if is_items
                  else build_deployable(model, bundle.preprocessor.scale_params, task,
                                        target_scale=scale))
    document = items.preprocess_document if is_items else artifacts.preprocess_document
    doc = document(bundle, _output_shape(deployable, bundle))
    key = artifacts.model_key(run["weights_sha256"], doc, list(FORMATS))
    folder = artifacts.find_by_model_key(project, key)
    artifact_reused = folder is not None
    if folder is not None:
        records = artifacts.records_from_manifest(folder)
        digest = artifacts.read_manifest(folder)["artifact_hash"]
    else:
        folder, records, digest = artifacts.create_artifact(
            project, deployable,
            items.model_inputs(bundle, 16) if is_items else bundle.val.encoded[:16], doc, key,
            _manifest(ctx, prod),
            extra_files=(lambda f: items.write_extra_files(bundle, f)) if is_items else None)
    inputs = (items.model_inputs(bundle, items.PARITY_MAX_ITEMS) if is_items
              else verification.parity_inputs(bundle.val.encoded, bundle.preprocessor))
    exports, latency = verification.verify_exports(project, deployable, records, inputs, task,
                                                   missing_row=not is_items)

    rows = (items.example_rows(bundle, folder) if is_items
            else verification.example_rows(bundle.preprocessor))
    context = _documents_context(ctx, prod, {
        "exports": exports, "latency": latency, "determinism": determinism, "preprocess": doc,
        "example_rows": rows, "folder": folder, "digest": digest})
    artifacts.write_once(folder / "example_input.json", artifacts.canonical_json(rows))
    artifacts.write_once(folder / "model_card.md", card.render_model_card(context))
    artifacts.write_once(folder / "DEPLOYMENT.md", card.render_deployment(context))
    snippet = _run_deployment_snippet(folder, deployable, bundle)
    latest = artifacts.point_latest(project, folder, digest)
    return FinalizeOutcome.model_validate({
        "skipped_phases": _skipped(ctx),
        "chosen": chosen.to_dict(),
        "run": run,
        "reused_test_result": reused,
        "evaluation": {"key": record["key"], "evaluated_at": record["evaluated_at"],
                       "test_hash": record["test_hash"], "lock_hash": record["lock_hash"],
                       "matches_lock": record["matches_lock"],
                       "file": project.relative(project.mlt_dir / "test_evaluations.json")},
        "test": {**record["result"], "reused": reused, "evaluated_at": record["evaluated_at"]},
        "test_evaluations": evaluation.history(project, record["key"]),
        "goal": {"metric": ctx.cfg.goal.metric, "target": ctx.cfg.goal.target,
                 "greater_is_better": ctx.cfg.greater_is_better},
        "trivial_baseline": prod.plan.trivial_baseline,
        "data": {
            "source": bundle.source, "fingerprints": dict(bundle.fingerprints),
            "lock_hash": record["lock_hash"],
            "schema": {"train": schema.split_schema("train", bundle.train, bundle.spec,
                                                    bundle.preprocessor),
                       "val": schema.split_schema("val", bundle.val, bundle.spec,
                                                  bundle.preprocessor),
                       "test": record["schema_test"]},
            "duplicates": dict(bundle.duplicates),
            "shared_encoded_rows": record["shared_rows"],
        },
        "determinism": determinism,
        "finite": {"weights": non_finite_weights(model),
                   "val_outputs_non_finite": int((~np.isfinite(val_out)).sum()),
                   "test_outputs_non_finite": record["result"].get("non_finite_outputs")},
        "exports": exports,
        "latency": {k: latency[k] for k in ("unit", "batch_sizes", "warmup", "iters",
                                            "budget_s", "torch_num_threads", "machine")}
                   | {"eager": latency["runtimes"]["eager"]["batches"]},
        "artifact_hash": digest,
        "artifact": {"hash": digest, "dir": project.relative(folder), "reused": artifact_reused,
                     "model_key": key, "manifest": project.relative(folder / "manifest.json"),
                     "files": (artifacts.read_manifest(folder) or {}).get("files", {}),
                     "latest": project.relative(project.artifacts_dir / artifacts.LATEST),
                     "history": len(latest["history"])},
        "model_card": {"path": project.relative(folder / "model_card.md"),
                       "copy": project.relative(project.artifacts_dir / "model_card.md")},
        "deployment": {"path": project.relative(folder / "DEPLOYMENT.md"), "snippet": snippet},
    })


def _skipped(ctx: PhaseContext) -> list[str]:
    if ctx.path != "fast":
        return []
    return [p for p in SKIPPABLE
            if getattr(ctx.state.phases.get(p), "status", None) != "passed"]


def _output_shape(deployable: Any, bundle: Any) -> list[int]:
    import torch

    from mltrainer.phases.finalize import items
    from mltrainer.runtime.runners import torch_runner

    if items.is_items(bundle):
        return [int(d) for d in torch_runner(deployable)(items.model_inputs(bundle, 2)).shape[1:]]
    with torch.inference_mode():
        out = deployable(torch.from_numpy(bundle.val.encoded[:2]))
    return [int(d) for d in out.shape[1:]]


def _manifest(ctx: PhaseContext, prod: Production) -> dict[str, Any]:
    import platform
    import sys

    from mltrainer import __version__
    from mltrainer.env import git_commit, package_versions
    from mltrainer.exporting import FORMATS

    chosen, bundle, train_cfg, record = prod.chosen, prod.bundle, prod.train_cfg, prod.record
    git = git_commit(ctx.project.root)
    return {
        "project": ctx.cfg.name, "task": bundle.spec.task, "formats": list(FORMATS),
        "config": {**chosen.to_dict(), "finalize": ctx.cfg.finalize.model_dump(mode="json"),
                   "trained_with": train_cfg.model_dump(mode="json"),
                   "trained_with_fingerprint": train_cfg.fingerprint()},
        "data": {"source": bundle.source, "fingerprints": dict(bundle.fingerprints),
                 "lock_hash": record["lock_hash"]},
        "training": record["run"],
        "test": {"key": record["key"], "evaluated_at": record["evaluated_at"],
                 "metrics": record["result"]["metrics"], "ci95": record["result"]["ci95"]},
        "environment": {"mltrainer": __version__, "python": sys.version.split()[0],
                        "platform": platform.platform(), "packages": package_versions(),
                        "git": git if git is not None else
                        {"commit": None, "why": "the project is not in a git repository"}},
    }


def _documents_context(ctx: PhaseContext, prod: Production, shipped: dict[str, Any]
                       ) -> dict[str, Any]:
    """What the model card and DEPLOYMENT.md render: `prod` and what `_ship` measured
    (exports, latency, determinism, preprocess, example_rows, folder, digest)."""
    from mltrainer.env import package_versions
    from mltrainer.phases.finalize import evaluation
    from mltrainer.state import now

    chosen, bundle, train_cfg, record, plan = (prod.chosen, prod.bundle, prod.train_cfg,
                                               prod.record, prod.plan)
    folder, digest, latency = shipped["folder"], shipped["digest"], shipped["latency"]
    env = plan.environment
    return {
        "name": ctx.cfg.name, "task": bundle.spec.task, "created_at": now(),
        "artifact": {"hash": digest, "short": folder.name,
                     "dir": ctx.project.relative(folder)},
        "chosen": chosen.to_dict(), "run": record["run"],
        "data": {"source": bundle.source, "fingerprints": dict(bundle.fingerprints),
                 "lock_hash": record["lock_hash"], "split": plan.data.split,
                 "spec": bundle.spec.to_dict(), "duplicates": dict(bundle.duplicates)},
        "test": {**record["result"], "evaluated_at": record["evaluated_at"]},
        "test_evaluations": evaluation.history(ctx.project, record["key"]),
        "goal": {"metric": ctx.cfg.goal.metric, "target": ctx.cfg.goal.target,
                 "greater_is_better": ctx.cfg.greater_is_better},
        "baseline": plan.trivial_baseline,
        "training": {"model": train_cfg.model.model_dump(mode="json"),
                     "training": train_cfg.training.model_dump(mode="json"),
                     "seed": train_cfg.seed},
        "environment": {"python": env.get("python"), "torch": env.get("torch"),
                        "platform": env.get("platform"), "device": env.get("device"),
                        "packages": package_versions()},
        "determinism": shipped["determinism"], "exports": shipped["exports"],
        "latency": {"iters": latency["iters"], "budget_s": latency["budget_s"],
                    "threads": latency["torch_num_threads"], "machine": latency["machine"],
                    "eager": latency["runtimes"]["eager"]["batches"]},
        "preprocess": shipped["preprocess"], "example_rows": shipped["example_rows"],
    }


def _run_deployment_snippet(folder: Path, deployable: Any, bundle: Any) -> dict[str, Any]:
    import json

    from mltrainer.phases.finalize import card, items, verification

    text = (folder / "DEPLOYMENT.md").read_text(encoding="utf-8")
    snippet = card.extract_snippet(text)
    if snippet is None:
        return {"ran": False, "matches": False, "error": "DEPLOYMENT.md has no python snippet"}
    rows = json.loads((folder / "example_input.json").read_text(encoding="utf-8"))
    if items.is_items(bundle):
        doc = json.loads((folder / "preprocess.json").read_text(encoding="utf-8"))
        expected = items.expected_predictions(deployable, bundle.spec, rows, folder, doc)
    else:
        expected = verification.expected_predictions(deployable, bundle.preprocessor,
                                                     bundle.spec, rows)
    return verification.run_snippet(snippet, folder, expected)
