"""The machinery behind `mltrainer.report`: figures (`_figures`, drawn by `_plots` from the
numbers `_curves` reads) and the escaped Markdown → HTML pass (`_html`).

`mltrainer.report` is the entry point; nothing here writes files.
"""
