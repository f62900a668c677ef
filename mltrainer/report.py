"""Gate reports: Jinja2 templates from `templates/` rendered into `reports/<phase>.md`.

The report opens with the verdict and the next command, then the checklist with each item's
evidence, then the phase's details (`templates/details/<phase>.md.j2`, when one exists).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jinja2

from mltrainer.project import Project
from mltrainer.resources import content_path
from mltrainer.state import ProjectState, atomic_write_text
from mltrainer.workflow import next_command, phase_def, phase_views


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str, separators=(", ", ": "))
    return str(value)


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(content_path("templates"))),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["fmt"] = _fmt
    env.filters["cell"] = lambda v: _fmt(v).replace("|", "\\|").replace("\n", " ")
    return env


def render_phase_report(
    project: Project, state: ProjectState, phase: str, fps: dict[str, dict[str, str]]
) -> Path:
    rec = state.phases.get(phase)
    if rec is None or rec.gate is None:
        raise ValueError(f"phase {phase} has no gate result to report")
    env = environment()
    p = phase_def(phase)
    details = f"details/{phase}.md.j2"
    has_details = (content_path("templates") / details).is_file()
    waivers = [
        {"phase": ph, "item": item, **w.model_dump()}
        for ph, items in state.waivers.items()
        for item, w in items.items()
    ]
    text = env.get_template("gate.md.j2").render(
        phase=p, rec=rec, gate=rec.gate, outcome=rec.outcome, details=details if has_details else None,
        next=next_command(state, fps), views=phase_views(state, fps), waivers=waivers,
    )
    out = project.reports_dir / f"{phase}.md"
    atomic_write_text(out, text)
    return out
