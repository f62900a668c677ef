"""The one evaluation of the locked test split.

Evaluations are kept in `.mlt/test_evaluations.json`, keyed by the fingerprint of what was
evaluated: the shipped config (and the finalize settings), the data and its split hashes, and the
code (a model factory's source). A second `mlt finalize` on the same key reuses the recorded
result and never opens the test split again.

The test split is spent once per project: after the first evaluation, evaluating a different
config (or data, or code) is refused unless the user asks for it with a reason
(`mlt finalize --reevaluate-test --reason TEXT`, `guard_new_evaluation`); the reason goes into
the audit log and the record, and the gate's `test_evaluated_once` item then fails (unless
waived), listing every earlier result. Records are never removed: the first result stays
visible in every later report. Every evaluation is appended to the audit log as a
`test_evaluation` event, and records the hash of the split it scored next to the hash
`mlt plan` locked.
"""

from __future__ import annotations

import json
from typing import Any

from mltrainer.config import MltConfig, sha256_json
from mltrainer.errors import BadInputError, RefusedError, StateCorruptError
from mltrainer.project import Project
from mltrainer.state import atomic_write_text, audit, now, read_audit

EVALUATIONS_FILE = "test_evaluations.json"
FORMAT = "mltrainer.test_evaluations"
VERSION = 1
AUDIT_EVENT = "test_evaluation"
REEVALUATION_EVENT = "test_reevaluation_requested"


def evaluation_key(cfg: MltConfig, finalize: dict[str, Any], data_fps: dict[str, str],
                   code_fp: str) -> str:
    """What identifies an evaluation: change any part and the test split may be scored anew."""
    return sha256_json({"config": cfg.fingerprint(), "finalize": finalize,
                        "data": data_fps, "code": code_fp})


def evaluations_path(project: Project) -> Any:
    return project.mlt_dir / EVALUATIONS_FILE


def load_evaluations(project: Project) -> dict[str, dict[str, Any]]:
    path = evaluations_path(project)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != FORMAT or not isinstance(data.get("evaluations"), dict):
            raise ValueError("not a test-evaluation record")
    except (ValueError, AttributeError) as exc:
        raise StateCorruptError(
            f"{path}: cannot be read ({exc})",
            hint="restore it from version control or a backup; it is the record of which "
                 "test evaluations already happened, and is never rebuilt silently",
        ) from None
    return data["evaluations"]


def _save(project: Project, evaluations: dict[str, dict[str, Any]]) -> None:
    atomic_write_text(evaluations_path(project), json.dumps(
        {"format": FORMAT, "version": VERSION, "evaluations": evaluations},
        indent=2, default=str) + "\n")


def audited_evaluations(project: Project, key: str | None = None) -> list[dict[str, Any]]:
    """The audit log's `test_evaluation` events (of one key, when given)."""
    return [e for e in read_audit(project) if e.get("event") == AUDIT_EVENT
            and (key is None or e.get("key") == key)]


def traces(project: Project) -> list[dict[str, Any]]:
    """Every test evaluation the project records besides `.mlt/test_evaluations.json`: the
    audit log's events, the finalize outcome in `.mlt/state.json` (and its `.bak`), the
    manifest of every folder in `artifacts/` and the mark in the judged model's run folder.
    Each is written after the record, so in a sound project the record holds every key they
    name; files deleted or edited by hand do not make the test split fresh again. Unreadable
    files count as no trace."""
    found: dict[str, dict[str, Any]] = {}

    def add(key: Any, at: Any, fingerprint: Any, metrics: Any, where: str) -> None:
        if isinstance(key, str) and key:
            entry = found.setdefault(key, {"key": key, "evaluated_at": at,
                                           "config_fingerprint": fingerprint,
                                           "metrics": metrics if isinstance(metrics, dict)
                                           else {}, "where": []})
            if where not in entry["where"]:
                entry["where"].append(where)

    for event in audited_evaluations(project):
        add(event.get("key"), event.get("time"), event.get("config_fingerprint"),
            event.get("metrics"), project.relative(project.audit_path))
    for path in (project.state_path, project.state_path.with_name("state.json.bak")):
        outcome = _dig(_read_json(path), "phases", "finalize", "outcome")
        where = project.relative(path)
        for e in outcome.get("test_evaluations") or []:
            if isinstance(e, dict):
                add(e.get("key"), e.get("evaluated_at"), e.get("config_fingerprint"),
                    e.get("metrics"), where)
        add(_dig(outcome, "evaluation").get("key"), _dig(outcome, "evaluation").get(
            "evaluated_at"), _dig(outcome, "chosen").get("config_fingerprint"),
            _dig(outcome, "test").get("metrics"), where)
    from mltrainer.phases.finalize.artifacts import MANIFEST, artifact_folders, read_manifest

    for folder in artifact_folders(project):
        manifest = read_manifest(folder) or {}
        test = _dig(manifest, "test")
        add(test.get("key"), test.get("evaluated_at"),
            _dig(manifest, "config").get("config_fingerprint"), test.get("metrics"),
            project.relative(folder / MANIFEST))
    for path in sorted(project.runs_dir.glob(f"*/{RUN_TRACE.format(key='*')}")):
        mark = _read_json(path)
        add(mark.get("key"), mark.get("evaluated_at"), mark.get("config_fingerprint"),
            mark.get("metrics"), project.relative(path))
    return sorted(found.values(), key=lambda t: str(t["evaluated_at"]))


def require_every_evaluation_recorded(project: Project) -> dict[str, dict[str, Any]]:
    """The evaluation record, refused (exit 2, nothing opened or trained) when another file
    of the project names a test evaluation it no longer holds, or holds with other metrics:
    evaluating as if it had not happened would spend the test split again, and a record
    edited by hand would ship numbers nobody measured."""
    evaluations = load_evaluations(project)
    for trace in traces(project):
        record = evaluations.get(trace["key"])
        recorded = _dig(record, "result", "metrics") if record is not None else None
        if record is not None and (not trace["metrics"] or _canonical(recorded)
                                   == _canonical(trace["metrics"])):
            continue  # as JSON: a NaN metric (non-finite outputs) equals itself
        where = trace["where"][0] + (f" (and {len(trace['where']) - 1} more)"
                                     if len(trace["where"]) > 1 else "")
        message = (
            f"{where} records a test evaluation at {trace['evaluated_at']} "
            f"({_metrics_text(trace['metrics'])}) that .mlt/test_evaluations.json no longer "
            f"holds: evaluating now would spend the test split again" if record is None else
            f".mlt/test_evaluations.json holds {_metrics_text(recorded or {})} for the test "
            f"evaluation at {trace['evaluated_at']}, but {where} records "
            f"{_metrics_text(trace['metrics'])}: the record was edited")
        raise StateCorruptError(
            message,
            hint="restore .mlt/test_evaluations.json from a backup or version control; the "
                 "test split of this project was spent and is not evaluated as new",
        )
    return evaluations


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _read_json(path: Any) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _dig(data: Any, *keys: str) -> dict[str, Any]:
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data if isinstance(data, dict) else {}


def history(project: Project, current_key: str | None = None) -> list[dict[str, Any]]:
    """Every test evaluation of the project, oldest first, as reports show them: when, which
    config, its metrics, and the reason given for evaluating again (None for the first)."""
    records = sorted(load_evaluations(project).values(), key=lambda r: str(r["evaluated_at"]))
    return [{"number": n, "key": r["key"], "evaluated_at": r["evaluated_at"],
             "config_fingerprint": (r.get("chosen") or {}).get("config_fingerprint"),
             "config_path": (r.get("chosen") or {}).get("config_path"),
             "metrics": (r.get("result") or {}).get("metrics", {}),
             "ci95": (r.get("result") or {}).get("ci95", {}),
             "reason": (r.get("reevaluation") or {}).get("reason"),
             "current": r["key"] == current_key}
            for n, r in enumerate(records, start=1)]


def check_reevaluation_options(reevaluate: bool, reason: str | None) -> str | None:
    """`--reevaluate-test` and `--reason` go together; the reason must say something."""
    text = (reason or "").strip()
    if reevaluate and not text:
        raise BadInputError("--reevaluate-test needs --reason TEXT: why the test split may be "
                            "spent again (it is recorded in the audit log and every report)",
                            hint="mlt finalize --reevaluate-test --reason \"...\"")
    if text and not reevaluate:
        raise BadInputError("--reason is only used with --reevaluate-test",
                            hint="leave --reason out, or add --reevaluate-test")
    return text or None


def guard_new_evaluation(project: Project, key: str, reason: str | None
                         ) -> dict[str, Any] | None:
    """Before a new evaluation (of `key`, not recorded yet): None for the project's first;
    with earlier ones, refused (exit 3) unless a reason was given, which is audited and
    returned to be stored with the record."""
    earlier = history(project)
    audited = audited_evaluations(project)
    if not earlier and not audited:
        if reason is not None:
            raise BadInputError("--reevaluate-test: the test split has not been evaluated in "
                                "this project yet, so there is nothing to evaluate again",
                                hint="run `mlt finalize` without --reevaluate-test")
        return None
    first = earlier[0] if earlier else {"evaluated_at": audited[0].get("time"), "metrics": {}}
    if reason is None:
        raise RefusedError(
            f"the test split was already spent in this project: evaluated "
            f"{max(len(earlier), len(audited))} time(s), first at {first['evaluated_at']} "
            f"(config {str(first.get('config_fingerprint'))[:12]}, "
            f"{_metrics_text(first['metrics'])}); this config differs, and evaluating it "
            f"would open the test split again",
            hint="restore the config that was evaluated, or run `mlt finalize "
                 "--reevaluate-test --reason TEXT` (recorded; the gate item "
                 "test_evaluated_once then fails unless waived)")
    request = {"reason": reason, "requested_at": now(),
               "earlier": [{k: e[k] for k in ("key", "evaluated_at", "config_fingerprint",
                                              "metrics")} for e in earlier]}
    audit(project, REEVALUATION_EVENT, phase="finalize", key=key, reason=reason,
          earlier=[e["key"] for e in earlier])
    return request


def _metrics_text(metrics: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()
                     if isinstance(v, (int, float))) or "no metrics recorded"


def evaluate_test_split(
    project: Project,
    *,
    key: str,
    bundle: Any,
    model: Any,
    lock_hash: str,
    baseline: dict[str, Any],
    bootstrap: int,
    seed: int,
    run: dict[str, Any],
    chosen: dict[str, Any],
    reevaluation: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Open the test split (the only call to `bundle.test` in mlt), score it, record it.

    The record is written (atomically) before the audit event, so a crash in between leaves a
    result that blocks a second evaluation rather than an evaluation nobody can find.
    """
    import numpy as np  # here, not at the top: `mlt status` reads this module's history()

    from mltrainer.engine import compute_metrics, predict
    from mltrainer.phases.finalize import schema, scoring

    test = bundle.test(phase="finalize")
    task, spec = bundle.spec.task, bundle.spec
    outputs = predict(model, test.X, target_scale=spec.target_scale)
    test_hash = bundle.fingerprints["test"]
    metrics = compute_metrics(task, test.y, outputs)
    base_scores = scoring.trivial_scores(task, baseline, len(test.y), spec.class_labels)
    intervals = scoring.score_with_intervals(task, test.y, outputs, base_scores,
                                             n_resamples=bootstrap, seed=seed)
    result: dict[str, Any] = {
        "metrics": metrics, "ci95": intervals["ci95"],
        "baseline_diff": intervals["baseline_diff"], "bootstrap": intervals["bootstrap"],
        "level": scoring.LEVEL, "n_rows": len(test.y), "split_hash": test_hash,
        "trivial_baseline": {"predictor": baseline.get("predictor"),
                             "predicts": baseline.get("predicts")},
        "non_finite_outputs": int((~np.isfinite(np.asarray(outputs, dtype=np.float64))).sum()),
    }
    if task == "classification":
        result.update(scoring.confusion_and_per_class(test.y, outputs, list(spec.class_labels)))
    else:
        result["residuals"] = scoring.residual_summary(test.y, outputs)
    record = {
        "key": key, "evaluated_at": now(), "test_hash": test_hash, "lock_hash": lock_hash,
        "matches_lock": test_hash == lock_hash, "chosen": chosen, "run": run,
        "data_fingerprints": dict(bundle.fingerprints), "result": result,
        "schema_test": schema.split_schema("test", test, spec, bundle.preprocessor),
        "shared_rows": schema.shared_rows({"train": bundle.train, "val": bundle.val,
                                           "test": test}),
        "reevaluation": reevaluation,
    }
    evaluations = load_evaluations(project)
    evaluations[key] = record
    _save(project, evaluations)
    _mark_run(project, record)
    audit(project, AUDIT_EVENT, phase="finalize", key=key, test_hash=test_hash,
          lock_hash=lock_hash, matches_lock=record["matches_lock"], rows=result["n_rows"],
          config_fingerprint=chosen.get("config_fingerprint"), run=run.get("id"),
          metrics=metrics, reevaluation_reason=(reevaluation or {}).get("reason"))
    return record


RUN_TRACE = "test_evaluation-{key}.json"  # in the run folder of the model a record judged


def _mark_run(project: Project, record: dict[str, Any]) -> None:
    """A trace in the judged model's run folder (runs/ is never cleaned by mlt): with .mlt/
    and artifacts/ both gone, the test split still reads as spent."""
    run_dir = project.root / str(record["run"].get("dir") or "")
    if record["run"].get("dir") and run_dir.is_dir():
        atomic_write_text(run_dir / RUN_TRACE.format(key=record["key"][:16]), json.dumps(
            {"key": record["key"], "evaluated_at": record["evaluated_at"],
             "config_fingerprint": record["chosen"].get("config_fingerprint"),
             "metrics": record["result"]["metrics"]}, indent=2, default=str) + "\n")


def note_reuse(project: Project, record: dict[str, Any]) -> None:
    """A second finalize on the same key: say so in the audit log (not a test access)."""
    audit(project, "test_evaluation_reused", phase="finalize", key=record["key"],
          evaluated_at=record["evaluated_at"])


# Audit events that mean "the test split was read"; `test_split_denied` is a refusal.
def is_test_access(event: dict[str, Any]) -> bool:
    name = str(event.get("event", ""))
    return name == AUDIT_EVENT or (name.startswith("test_split_") and name != "test_split_denied")


def test_access_outside_finalize(project: Project) -> dict[str, Any]:
    """Walk the audit log, tracking which phase was running: any test access while a phase
    other than finalize ran (or recorded by one) is a violation; refusals are counted."""
    current: str | None = None
    accesses, refusals, violations = 0, 0, []
    for event in read_audit(project):
        if event.get("event") == "phase_started":
            current = event.get("phase")
        if event.get("event") == "test_split_denied":
            refusals += 1
        if not is_test_access(event):
            continue
        accesses += 1
        by = event.get("phase") or current
        if by != "finalize" or current not in (None, "finalize"):
            violations.append({"time": event.get("time"), "event": event.get("event"),
                               "phase": by, "while_running": current})
    return {"test_accesses": accesses, "refusals": refusals, "violations": violations}
