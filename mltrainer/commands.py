"""What each CLI command does, as library functions that return data (the CLI renders it)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from mltrainer.config import parse_config
from mltrainer.errors import BadInputError, RefusedError, environment_error
from mltrainer.phases import PHASES as PHASE_SPECS
from mltrainer.project import Project
from mltrainer.resources import example_config
from mltrainer.runner import execute_phase, load_project_config, rejudge
from mltrainer.state import Signoff, Waiver, audit, load_state
from mltrainer.workflow import (
    PHASE_NAMES,
    PHASES,
    current_phase,
    live_phase_views,
    next_command,
    phase_def,
)

ALIASES = {"train-baseline": "baseline", "1": "plan", "2": "baseline", "3": "diagnose",
           "4": "optimize", "5": "finalize"}


def phase_name(name: str) -> str:
    name = ALIASES.get(name, name)
    if name not in PHASE_NAMES:
        raise BadInputError(
            f"no phase named {name!r}", hint=f"phases are: {', '.join(PHASE_NAMES)}"
        )
    return name


def init_project(project: Project, example: str, *, data: str | None = None,
                 target: str | None = None) -> dict[str, Any]:
    """A new project from an example (its data too, for images/text), or — with `data` — a
    first config that fits the user's own data (task, source kind, model)."""
    from mltrainer.examples import config_for_data, write_example_data

    text = example_config(example) if data is None else ""  # unknown example → exit 2 first
    if project.config_path.exists():
        raise BadInputError(
            f"{project.config_path} already exists: this is already an mlt project",
            hint="edit it, or choose another directory for `mlt init`",
        )
    dropped: list[str] = []
    notes: list[str] = []  # what init chose that the user should know
    if data is not None:
        import yaml

        cfg, notes = config_for_data(Path(data), target, project.root,
                                     project.root.resolve().name)
        parse_config(cfg, source="mlt init --data")  # what init writes must validate
        dropped = list(cfg["data"].get("drop", []))
        text = ("# mlt.yaml written by `mlt init --data`: a starting point that fits the data.\n"
                "# `mlt config schema` lists every field; set goal.target to what counts as "
                "done.\n" + yaml.safe_dump(cfg, sort_keys=False))
    try:
        project.root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a path under a file, or where no folder can be made
        raise environment_error(exc) or BadInputError(
            f"cannot create the project folder {project.root}: {exc.strerror or exc}",
            hint="give `mlt init` a folder path that can be created (every part of it above "
                 "the new folder an existing folder)") from None
    if data is None:
        write_example_data(example, project.root)  # images / text: the data they ship with
    project.config_path.write_text(text, encoding="utf-8")
    project.mlt_dir.mkdir(exist_ok=True)
    gitignore = project.root / ".gitignore"
    if not gitignore.exists():
        gitignore.write_text("runs/\nartifacts/\n.mlt/lock\n.mlt/cache/\n.mlt/mlflow.db\n"
                             ".mlt/mlflow-artifacts/\n",
                             encoding="utf-8")
    audit(project, "init", example=example if data is None else None, data=data)
    return {"root": str(project.root), "config": str(project.config_path),
            "example": example if data is None else None, "data": data,
            "dropped": dropped, "notes": notes}


def project_status(project: Project) -> dict[str, Any]:
    from mltrainer.fingerprints import current_fingerprints

    cfg = load_project_config(project.config_path)
    state = load_state(project)
    fps = current_fingerprints(project, cfg, state)
    views = live_phase_views(project, state, fps)
    return {
        "name": cfg.name,
        "root": str(project.root),
        "current": current_phase(state, fps),
        "phases": [{"name": v.name, "status": v.status, "reason": v.reason} for v in views],
        "next": next_command(state, fps),
        "test_evaluations": spent_test_evaluations(project),
    }


def spent_test_evaluations(project: Project) -> dict[str, Any]:
    """How often the project's test split was evaluated, and each result (oldest first)."""
    from mltrainer.errors import StateCorruptError
    from mltrainer.phases.finalize.evaluation import history, require_every_evaluation_recorded

    try:
        require_every_evaluation_recorded(project)
        evaluations = history(project)
    except StateCorruptError as exc:
        return {"count": None, "evaluations": [], "error": exc.message}
    return {"count": len(evaluations), "evaluations": [
        {k: e[k] for k in ("number", "evaluated_at", "config_fingerprint", "metrics", "reason")}
        for e in evaluations]}


def run_phase(project: Project, name: str, *,
              progress: Callable[[dict[str, Any]], None] | None = None, **options: Any
              ) -> dict[str, Any]:
    phase = PHASE_SPECS[phase_name(name)]
    return execute_phase(project, phase, options=options, progress=progress)


def diagnose_standalone(path: Path) -> dict[str, Any]:
    """`mlt diagnose --metrics FILE` outside a project: findings only, no gate, no state."""
    from mltrainer.phases.diagnose.phase import diagnose_stream

    return diagnose_stream(path, {})


def _gate_item(phase: str, item: str) -> dict[str, Any]:
    from mltrainer.gates import checklist_items

    items = {i["id"]: i for i in checklist_items(phase)}
    if item not in items:
        raise BadInputError(
            f"the {phase} gate has no item {item!r}", hint=f"its items: {', '.join(items)}"
        )
    return items[item]


def signoff_item(project: Project, phase: str, item: str, by: str, note: str | None
                 ) -> dict[str, Any]:
    phase = phase_name(phase)
    spec = _gate_item(phase, item)
    if not spec.get("manual"):
        raise BadInputError(
            f"{phase}/{item} is checked automatically and cannot be signed off",
            hint=f"fix what it measures and re-run, or `mlt waive {phase} {item} --reason TEXT`",
        )
    if not by.strip():
        raise BadInputError("--by must name who signs off", hint="pass --by NAME (or an email)")

    def change(state: Any) -> None:
        from mltrainer.gates import binds_artifact

        rec = state.phases.get(phase)
        artifact = rec.outcome.get("artifact_hash") if rec else None
        if binds_artifact(PHASE_SPECS[phase].outcome) and not artifact:
            raise RefusedError(
                f"cannot sign off {phase}/{item}: there is no artifact to approve yet "
                "(a sign-off binds to the artifact hash it reviewed)",
                hint=f"run `{phase_def(phase).command}` first, review what it ships, then "
                "sign off",
            )
        state.signoffs.setdefault(phase, {})[item] = Signoff(by=by, note=note,
                                                              artifact_hash=artifact)
        audit(project, "signoff", phase=phase, item=item, by=by, note=note,
              artifact_hash=artifact)

    return rejudge(project, PHASE_SPECS[phase], change, f"mlt signoff {phase} {item}")


def waive_item(project: Project, phase: str, item: str, reason: str, by: str | None
               ) -> dict[str, Any]:
    phase = phase_name(phase)
    _gate_item(phase, item)
    if len(reason.strip()) < 10:
        raise BadInputError(
            f"--reason {reason!r} is too short to explain a waiver",
            hint="say why skipping this item is acceptable (at least 10 characters)",
        )

    def change(state: Any) -> None:
        state.waivers.setdefault(phase, {})[item] = Waiver(reason=reason.strip(), by=by)
        audit(project, "waiver", phase=phase, item=item, reason=reason.strip(), by=by)

    return rejudge(project, PHASE_SPECS[phase], change, f"mlt waive {phase} {item}")


def render_reports(project: Project, phase: str | None) -> dict[str, Any]:
    """Re-render the gate reports (Markdown and HTML) and the index; their paths."""
    from mltrainer.fingerprints import current_fingerprints
    from mltrainer.reporting import index_path, render_index, render_phase_report, report_path

    cfg = load_project_config(project.config_path)
    state = load_state(project)
    names = [phase_name(phase)] if phase else list(PHASE_NAMES)
    done = [n for n in names if state.phases.get(n) and state.phases[n].gate is not None]
    if phase and not done:
        raise BadInputError(f"phase {names[0]} has no gate result yet",
                            hint=f"run `{phase_def(names[0]).command}` first")
    # only after the input is known good: hashing a folder may write .mlt/cache/
    fps = current_fingerprints(project, cfg, state)
    reports = [project.relative(render_phase_report(project, state, n, fps)) for n in done]
    render_index(project, state, fps)
    html = [project.relative(report_path(project, n, "html")) for n in done]
    target = report_path(project, done[0], "html") if phase else index_path(project)
    return {"reports": reports, "html": html, "index": project.relative(index_path(project)),
            "open": str(target)}


def explain_topic(topic: str) -> str:
    from mltrainer.resources import load_playbook, phase_guide, playbook_ids

    name = ALIASES.get(topic, topic)
    for p in PHASES:
        if name in (p.name, p.guide):
            return phase_guide(p.guide)
    if topic in playbook_ids():
        pb = load_playbook(topic)
        return f"# {pb.meta.get('title', topic)}\n\n{pb.body}"
    raise BadInputError(
        f"nothing to explain for {topic!r}",
        hint=f"phases: {', '.join(PHASE_NAMES)}; findings: {', '.join(playbook_ids())}",
    )


def optimize_worker(project: Project, *,
                    progress: Callable[[dict[str, Any]], None] | None = None, **options: Any
                    ) -> dict[str, Any]:
    """`mlt optimize --worker`: trials in the shared study only (see phases.optimize)."""
    from mltrainer.phases.optimize.phase import open_worker, run_worker
    from mltrainer.runner import read_only_context, restored_on_refusal

    with restored_on_refusal(project):
        ctx = read_only_context(project, "optimize", options=options, progress=progress)
        search = open_worker(ctx)
    return run_worker(ctx, search)


def join_training(project: Project, kind: str, *, resume: bool, nproc: int, nnodes: int,
                  node_rank: int, rdzv_endpoint: str | None) -> dict[str, Any]:
    """This machine's share (node rank > 0) of a training run that node rank 0 leads: the same
    config and data from this machine's copy of the project; nothing is written here (process
    0, on node 0, writes the run, the state and the report)."""
    import tempfile

    from mltrainer.engine.launch import Launch, run_job

    cfg = load_project_config(project.config_path)
    launch = Launch(nproc=nproc, nnodes=nnodes, node_rank=node_rank,
                    rdzv_endpoint=rdzv_endpoint)
    plan = load_state(project).phases.get("plan") if project.is_initialized() else None
    expected = ((plan.outcome or {}).get("data") or {}).get("fingerprints") if plan else None
    job = {"mode": "train", "config": cfg.model_dump(mode="json"), "root": str(project.root),
           "run_dir": str(project.runs_dir / "node-rank-unused"), "kind": kind,
           "resume": "on node rank 0" if resume else None,
           "expected_fingerprints": expected, "detectors": None}
    with tempfile.TemporaryDirectory(prefix="mlt-node-") as tmp:
        run_job(job, launch, Path(tmp))
    return {"node_rank": node_rank, "nproc": nproc, "world_size": launch.world_size,
            "kind": kind}
