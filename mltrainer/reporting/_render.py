"""Gate reports: `reports/<phase>.md` for the repository, `reports/<phase>.html` for people, and
`reports/index.html` linking every phase with its status.

A report opens with the verdict and the next command, then the checklist with each item's
evidence, then the phase's details (`templates/details/<phase>.md.j2`, when one exists) with
its figures. The Markdown links the figures as PNG files under `reports/img/`; the HTML is one
self-contained file (inline CSS, figures as data: URIs, nothing fetched) in which every value a
template prints is HTML-escaped (see `mltrainer.reporting._html`).

matplotlib and markdown are imported only while a report renders.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
import yaml
from markupsafe import Markup, escape

from mltrainer import __version__
from mltrainer.errors import printable
from mltrainer.project import Project
from mltrainer.reporting._figures import ReportFigure, phase_figures
from mltrainer.resources import content_path
from mltrainer.state import ProjectState, atomic_write_text
from mltrainer.workflow import PHASES, live_phase_views, next_command, phase_def

STATUS_ICONS = {"pass": "✅", "fail": "❌", "pending": "⏳", "waived": "⚠️"}
_HTML_BADGES = {"pass": "✓", "fail": "✗", "pending": "…", "waived": "!"}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (dict, list)):
        return json.dumps(_rounded(value), default=str, separators=(", ", ": "))
    return printable(value)  # a class name "\x1b[31m..." must not colour a terminal that cats


def _rounded(value: Any) -> Any:
    """Floats to 6 significant digits, inside lists and mappings too (evidence is for reading)."""
    if isinstance(value, float):
        return float(f"{value:.6g}") if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    return value


def _when(value: Any) -> str:
    """An ISO timestamp as people read it: `2026-11-24 07:53:11 UTC`."""
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    offset = moment.utcoffset()
    zone = " UTC" if offset is not None and not offset else moment.strftime(" %z").rstrip()
    return moment.strftime("%Y-%m-%d %H:%M:%S") + zone


_TICKS = re.compile(r"`([^`]+)`")


def _md_prose(value: Any) -> str:
    return _md_cell(value)


def _html_prose(value: Any) -> Markup:
    """A sentence of ours (a status reason) whose `command` spans become <code>, escaped."""
    return Markup(_TICKS.sub(r"<code>\1</code>", str(escape(_html_cell(value)))))


def _md_cell(value: Any) -> str:
    return _fmt(value).replace("|", "\\|").replace("\n", " ")


_MD_MARKUP = re.compile(r"([\\`*_\[\]<>|])")


def _md_text(value: Any) -> str:
    """A user's string (a class label, a project name) in Markdown prose or a table: every
    character Markdown would read as markup (emphasis, a link or image, inline HTML, a code
    span, a cell edge) is backslash-escaped, so it shows as the characters it is."""
    return _MD_MARKUP.sub(r"\\\1", _fmt(value)).replace("\n", " ")


def _html_cell(value: Any) -> str:
    # In the HTML pass values never reach the Markdown parser: no pipe to escape.
    return _fmt(value).replace("\n", " ")


def _fmt_or_dash(value: Any) -> str:
    return "—" if value is None else _fmt(value)


def _latency(value: Any) -> str:
    """Latency as finalize records it: {p50, p95} (or p50_ms, p95_ms), per batch size under
    `by_batch` or as a mapping of batch size to those."""
    if value is None:
        return "—"
    if isinstance(value, dict):
        per_batch = value.get("by_batch")
        if isinstance(per_batch, dict) and per_batch:
            return "; ".join(f"batch {b}: {_latency(v)}" for b, v in per_batch.items())
        p50, p95 = value.get("p50_ms", value.get("p50")), value.get("p95_ms", value.get("p95"))
        if isinstance(p50, (int, float)):
            tail = f" / p95 {p95:.3g}" if isinstance(p95, (int, float)) else ""
            return f"p50 {p50:.3g}{tail}"
        parts = [f"batch {k}: {_latency(v)}" for k, v in value.items() if isinstance(v, dict)]
        if parts:
            return "; ".join(parts)
    return _fmt(value)


def _md_icon(status: str) -> str:
    return STATUS_ICONS.get(status, status)


def _html_icon(status: str) -> Markup:
    badge = _HTML_BADGES.get(status, "?")
    return Markup('<span class="badge badge-{0}" title="{0}">{1}</span>').format(status, badge)


class _BytecodeCache(jinja2.FileSystemBytecodeCache):
    """Jinja's own cache of compiled templates (its safe per-user folder under the system's
    temporary directory), best effort: a folder that cannot be written means compiling, as
    without a cache. Compiling mlt's templates costs a fresh process ~0.25 s a report."""

    def dump_bytecode(self, bucket: Any) -> None:
        with contextlib.suppress(OSError):
            super().dump_bytecode(bucket)


_BYTECODE_CACHES: dict[bool, jinja2.BytecodeCache | None] = {}


def _bytecode_cache(html: bool) -> jinja2.BytecodeCache | None:
    """A template's entry is reused only while its source is the same (Jinja checks) and the
    compiled code's other inputs are too: the environment's options, set in this module, so
    the entries' names carry a hash of this module's source, and the flavour (`html`)."""
    if html not in _BYTECODE_CACHES:
        import hashlib

        flavour = hashlib.sha256(Path(__file__).read_bytes() + bytes([html])).hexdigest()[:16]
        try:
            cache: jinja2.BytecodeCache | None = _BytecodeCache(
                pattern=f"mlt-{flavour}-%s.cache")
        except (OSError, RuntimeError):  # no safe folder of this user's: compile every time
            cache = None
        _BYTECODE_CACHES[html] = cache
    return _BYTECODE_CACHES[html]


def environment(*, html: bool = False) -> jinja2.Environment:
    """THE Jinja environment of mlt's templates (gate reports, model card, deployment notes).

    `*.md.j2` templates render as Markdown. With `html=True`, every `{{ }}` value goes through
    the escaping stash of `mltrainer.reporting._html` instead: that environment is for the HTML
    pass of `render_phase_report`. `*.html.j2` templates autoescape in both.
    """
    from mltrainer.reporting._html import printable_finalize, stash_finalize

    kwargs: dict[str, Any] = {"finalize": stash_finalize if html else printable_finalize}
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(content_path("templates"))),
        bytecode_cache=_bytecode_cache(html),
        undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2", "html"),
                                            default_for_string=False, default=False),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        **kwargs,
    )
    env.filters["fmt"] = _fmt
    env.filters["cell"] = _html_cell if html else _md_cell
    env.filters["text"] = _html_cell if html else _md_text
    env.filters["fmt_or_dash"] = _fmt_or_dash
    env.filters["latency"] = _latency
    env.filters["when"] = _when
    env.filters["prose"] = _html_prose if html else _md_prose
    env.globals["icon"] = _html_icon if html else _md_icon
    return env


def report_path(project: Project, phase: str, kind: str = "md") -> Path:
    """`reports/<phase>.md` or `reports/<phase>.html`."""
    return project.reports_dir / f"{phase}.{kind}"


def index_path(project: Project) -> Path:
    """`reports/index.html`: every phase with its status, linking its report (for `--open`)."""
    return project.reports_dir / "index.html"


def render_phase_report(
    project: Project, state: ProjectState, phase: str, fps: dict[str, dict[str, str]],
    figures: list[ReportFigure] | None = None,
) -> Path:
    """Write `reports/<phase>.md`, its figures, `reports/<phase>.html` and `reports/index.html`.
    Returns the Markdown path. Rendering twice from the same state gives the same bytes.
    `figures`: `phase_figures` of this state, drawn already (by a `FigureDrawer`)."""
    from mltrainer.reporting._html import FigureSet, Stash, markdown_to_html

    rec = state.phases.get(phase)
    if rec is None or rec.gate is None:
        raise ValueError(f"phase {phase} has no gate result to report")
    details = f"details/{phase}.md.j2"
    has_details = (content_path("templates") / details).is_file()
    waivers = [
        {"phase": ph, "item": item, **w.model_dump()}
        for ph, items in state.waivers.items()
        for item, w in items.items()
    ]
    context = {
        "phase": phase_def(phase), "rec": rec, "gate": rec.gate, "outcome": rec.outcome,
        "details": details if has_details else None, "next": next_command(state, fps),
        "views": live_phase_views(project, state, fps), "waivers": waivers,
        "project_name": project_name(project),
    }
    if figures is None:
        figures = phase_figures(project, state, phase)
    md = environment().get_template("gate.md.j2").render(
        **context, **FigureSet(figures, html=False).template_vars())
    _write_figures(project, phase, {f.filename: f.png for f in figures if f.png})
    out = report_path(project, phase)
    atomic_write_text(out, md)

    stash = Stash()
    body_md = environment(html=True).get_template("gate.md.j2").render(
        **context, _stash=stash, **FigureSet(figures, html=True).template_vars())
    page = environment().get_template("gate.html.j2").render(
        **context, body=Markup(markdown_to_html(body_md, stash)),
        nav=_nav(project, phase), version=__version__,
    )
    atomic_write_text(report_path(project, phase, "html"), page)
    render_index(project, state, fps)
    return out


def render_index(project: Project, state: ProjectState, fps: dict[str, dict[str, str]]) -> Path:
    """Write `reports/index.html`: each phase, its status and why, its verdict, its reports."""
    views = {v.name: v for v in live_phase_views(project, state, fps)}
    rows = []
    for n, p in enumerate(PHASES, start=1):
        rec = state.phases.get(p.name)
        gate = rec.gate if rec else None
        status = views[p.name].status
        rows.append({
            "n": n, "name": p.name, "title": p.title, "command": p.command, "status": status,
            # The gate's verdict while it stands; otherwise why the phase is where it is.
            "verdict": _verdict(gate) if gate and status in ("passed", "blocked") else None,
            "reason": views[p.name].reason,
            "judged_at": gate.judged_at if gate else None,
            "html": report_path(project, p.name, "html").is_file() and gate is not None,
            "md": report_path(project, p.name).is_file() and gate is not None,
        })
    waivers = [{"phase": ph, "item": item, **w.model_dump()}
               for ph, items in state.waivers.items() for item, w in items.items()]
    page = environment().get_template("index.html.j2").render(
        project_name=project_name(project), rows=rows, next=next_command(state, fps),
        waivers=waivers, nav=_nav(project, None), version=__version__,
    )
    out = index_path(project)
    atomic_write_text(out, page)
    return out


def project_name(project: Project) -> str:
    """The `name:` of mlt.yaml, read leniently (a report never fails on the config)."""
    from mltrainer.config import safe_load_bounded
    from mltrainer.errors import ConfigError

    try:
        raw = safe_load_bounded(project.config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ConfigError):
        raw = None
    name = raw.get("name") if isinstance(raw, dict) else None
    return str(name) if name else project.root.name


def _verdict(gate: Any) -> str:
    if gate.passed:
        waived = [i.id for i in gate.items if i.status == "waived"]
        return "passed" + (f" (waived: {', '.join(waived)})" if waived else "")
    return "blocked on " + ", ".join(f"{i.id} ({i.status})" for i in gate.unmet())


def _nav(project: Project, current: str | None) -> list[dict[str, Any]]:
    """The phase links at the top of a page: those whose report exists (or is being written)."""
    return [
        {"name": p.name, "title": p.title, "current": p.name == current,
         "href": f"{p.name}.html" if p.name == current
         or report_path(project, p.name, "html").is_file() else None}
        for p in PHASES
    ]


def _write_figures(project: Project, phase: str, files: dict[str, bytes]) -> None:
    """reports/img/<phase>-<name>.png; a figure this phase no longer draws is removed."""
    folder = project.reports_dir / "img"
    for old in folder.glob(f"{phase}-*.png") if folder.is_dir() else []:
        if old.name not in files:
            old.unlink()
    for name, data in files.items():
        path = folder / name
        if path.is_file() and path.read_bytes() == data:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
