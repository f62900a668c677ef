"""Gate reports, one package: `_render` writes `reports/<phase>.md|.html` and the index through
Jinja2; `_figures` (drawn by `_plots` from the numbers `_curves` reads) makes their plots; `_html`
is the escaped Markdown → HTML pass.

matplotlib and markdown are imported only while a report renders.
"""

from __future__ import annotations

from mltrainer.reporting._render import (
    environment,
    index_path,
    project_name,
    render_index,
    render_phase_report,
    report_path,
)

__all__ = [
    "environment",
    "index_path",
    "project_name",
    "render_index",
    "render_phase_report",
    "report_path",
]
