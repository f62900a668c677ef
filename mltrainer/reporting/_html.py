"""Markdown templates rendered a second time as HTML, with every value escaped.

The gate templates are Markdown. For the HTML report they render again through an environment
whose `finalize` hook swaps the output of every `{{ }}` expression for an opaque token; the
Markdown is converted to HTML; then each token is replaced by its value, HTML-escaped. Values
never reach the Markdown parser, so a config name, a waiver reason or a finding message cannot
become markup of any kind (no `<script>`, and no `[link](javascript:...)` either). Only
`Markup` values, which templates get from our own helpers (status badges, figures), are put in
unescaped.
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Sequence
from typing import Any

import jinja2
from markupsafe import Markup, escape

from mltrainer.errors import printable
from mltrainer.reporting._figures import ReportFigure


class BlockMarkup(Markup):
    """Markup that is a block of its own (a figure): it replaces its whole paragraph."""


class Stash:
    """The values of one HTML render, each behind a token that Markdown leaves alone."""

    def __init__(self) -> None:
        self.nonce = secrets.token_hex(4)
        self._values: list[tuple[str, bool]] = []  # (HTML to put back, is it a block)
        self._pattern = re.compile(rf"(<p>)?mltv{self.nonce}n(\d{{6}})z(</p>)?")

    def token(self, value: Any) -> str:
        if isinstance(value, Markup):
            html, block = str(value), isinstance(value, BlockMarkup)
        else:
            html, block = str(escape(value)), False
        if not html:
            return ""
        self._values.append((html, block))
        return f"mltv{self.nonce}n{len(self._values) - 1:06d}z"

    def restore(self, html: str) -> str:
        def put_back(m: re.Match[str]) -> str:
            value, block = self._values[int(m.group(2))]
            if block:
                return value
            return f"{m.group(1) or ''}{value}{m.group(3) or ''}"

        return self._pattern.sub(put_back, html)


def printable_finalize(value: Any) -> Any:
    """Every expression's output in either report: a plain string (a user's class name, a
    reason) with its control characters as `\\xNN`, so `cat report.md` cannot drive the
    terminal; our own Markup passes as it is."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return printable(value)
    return value


@jinja2.pass_context
def stash_finalize(context: jinja2.runtime.Context, value: Any) -> Any:
    """The HTML environment's `finalize`: every expression's output goes into the stash (a
    plain string with its control characters shown as `\\xNN`: see `printable_finalize`)."""
    value = printable_finalize(value)
    stash = context.get("_stash")
    if stash is None:  # a template rendered outside render_html: escape in place
        return value if isinstance(value, Markup) else escape(value)
    return stash.token(value)


class FigureSet:
    """The figures of one report: templates place each where it reads best with
    `{{ figure("curves") }}`; the gate template shows the rest under "Figures"."""

    def __init__(self, figures: Sequence[ReportFigure], html: bool) -> None:
        self.figures = {f.name: f for f in figures}
        self.html = html
        self.placed: set[str] = set()
        self.done: set[str] = set()

    def figure(self, name: str) -> str:
        fig = self.figures.get(name)
        if fig is None or name in self.placed:
            return ""
        self.placed.add(name)
        if fig.error is not None:
            note = f"Figure not drawn ({fig.title}): {fig.error}"
            if not self.html:
                return f"*{note}*"
            return BlockMarkup(f'<p class="figure-error">{escape(note)}</p>')
        if not self.html:
            alt = re.sub(r"[\[\]]", "", fig.title)
            return f"![{alt}](img/{fig.filename})"
        data = base64.b64encode(fig.png).decode("ascii")
        return BlockMarkup(
            f'<figure><img src="data:image/png;base64,{data}" alt="{escape(fig.title)}">'
            f"<figcaption>{escape(fig.title)}</figcaption></figure>"
        )

    def remaining(self) -> list[str]:
        return [n for n in self.figures if n not in self.placed]

    def once(self, section: str) -> bool:
        """True the first time a section is asked for: lets a shared partial be included by a
        details template and by the gate template without showing twice."""
        if section in self.done:
            return False
        self.done.add(section)
        return True

    def template_vars(self) -> dict[str, Any]:
        return {"figure": self.figure, "remaining_figures": self.remaining, "once": self.once,
                "has_figure": lambda name: name in self.figures and name not in self.placed}


_MARKDOWN_EXTENSIONS = ("tables", "sane_lists", "fenced_code")


def markdown_to_html(text: str, stash: Stash) -> str:
    """Markdown (with stash tokens) → HTML with the tokens' values put back."""
    import markdown

    html = markdown.markdown(text, extensions=list(_MARKDOWN_EXTENSIONS), output_format="html")
    html = html.replace("<table>", '<div class="table-wrap"><table>').replace(
        "</table>", "</table></div>")
    return stash.restore(html)
