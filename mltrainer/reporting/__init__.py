"""Gate reports, one package: `_render` writes `reports/<phase>.md|.html` and the index through
Jinja2; `_figures` (drawn by `_plots` from the numbers `_curves` reads) makes their plots; `_html`
is the escaped Markdown → HTML pass; `_drawer` draws a phase's figures in a child process that
imported matplotlib while the phase ran.

matplotlib and markdown are imported only while a report renders.
"""

from __future__ import annotations

from mltrainer.reporting._drawer import FigureDrawer
from mltrainer.reporting._render import (
    environment,
    index_path,
    project_name,
    render_index,
    render_phase_report,
    report_path,
)

__all__ = [
    "FigureDrawer",
    "environment",
    "index_path",
    "project_name",
    "render_index",
    "render_phase_report",
    "report_path",
]
