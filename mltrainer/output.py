"""The one output sink of the CLI: human text to stderr through rich, one JSON object to stdout.

In `--json` mode stdout carries exactly one object (the command's result, or the error), so an
AI assistant can parse it; people read stderr. What anything else prints meanwhile (a project's
data function or Dataset, a model factory, a loader worker, a child process) goes to stderr:
the first `Output` under --json moves file descriptor 1 there and keeps its own copy of stdout
for the object (`json_channel`), until the command ends (`restore_stdout`).
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from rich.console import Console
from rich.markup import escape

from mltrainer.errors import printable

STATUS_STYLE = {
    "passed": "green", "pass": "green", "ready": "cyan", "locked": "dim", "running": "yellow",
    "blocked": "red", "fail": "red", "failed": "red", "pending": "yellow", "waived": "magenta",
    "skipped": "dim", "stale": "yellow",
}


MESSAGE_LIMIT = 300  # characters of an error message or fix on the terminal (one line each)


def safe(text: object) -> str:
    """A user string (a project name, a reason, a path) as text on one line: rich markup
    escaped, control characters (escape sequences among them) shown as `\\xNN` and line breaks
    as `\\n`, never interpreted: a reason cannot add a line that reads as mlt's own output."""
    return escape(printable(str(text).replace("\r", "\\r").replace("\n", "\\n")))


def one_line(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """A message on one line, cut to `limit` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


# (sys.stdout as it was, its copy for the JSON object) once descriptor 1 went to stderr
_CHANNEL: list[tuple[Any, Any]] = []


def json_channel() -> Any:
    """Where `--json` writes its one object: the process's stdout, kept on a descriptor of its
    own, while descriptor 1 itself now points at stderr, so a print of the project's code (in
    this process, a forked child or a loader worker, all of which inherit it) cannot come
    before or after the object. Done once a process; where stdout is no descriptor 1 (a test
    runner's capture) it is used as it is."""
    stream = sys.stdout
    if _CHANNEL and _CHANNEL[0][0] is stream:
        return _CHANNEL[0][1]
    try:
        moved = stream.fileno() == 1
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation: no descriptor
        moved = False
    if not moved:
        return stream
    stream.flush()
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    _CHANNEL[:] = [(stream, channel)]
    return channel


def restore_stdout() -> None:
    """Descriptor 1 back where `json_channel` found it, at the command's end: a program that
    runs the CLI in its own process (`cli([...])`) prints to its stdout again afterwards."""
    if not _CHANNEL:
        return
    stream, channel = _CHANNEL.pop()
    stream.flush()  # (what was printed meanwhile belongs to stderr)
    channel.flush()
    os.dup2(channel.fileno(), 1)
    channel.close()


class Output:
    def __init__(self, json_mode: bool = False, quiet: bool = False) -> None:
        self.json_mode = json_mode
        self.quiet = quiet
        self.stdout = json_channel() if json_mode else sys.stdout
        # emoji=False: ":loop:" in a user string (python:loop:main) is text, never an emoji
        self.err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)

    def info(self, text: str) -> None:
        if not self.quiet:
            self.err.print(text)

    def plain(self, text: str) -> None:
        if not self.quiet:
            self.err.print(escape(printable(text)))  # text of several lines (a guide)

    def result(self, obj: dict[str, Any]) -> None:
        if self.json_mode:
            self.stdout.write(json.dumps(obj, default=str) + "\n")
            self.stdout.flush()

    def error(self, message: str, hint: str | None, payload: dict[str, Any]) -> None:
        """One line naming what is wrong, one line with the fix; under --json also the one
        JSON object on stdout (its message cut the same way; `details` keep everything)."""
        message = one_line(message)
        self.err.print(f"[bold red]error:[/] {safe(message)}")
        if hint:
            hint = one_line(hint)
            self.err.print(f"  [dim]fix:[/] {safe(hint)}")
        if self.json_mode:
            payload = {**payload, "message": message, **({"hint": hint} if hint else {})}
            self.stdout.write(json.dumps(payload, default=str) + "\n")
            self.stdout.flush()

    def findings(self, findings: list[dict[str, Any]]) -> None:
        """Each finding with its evidence and onset, then its playbook rendered for the
        terminal."""
        if self.quiet:
            return
        if not findings:
            self.info("[green]no finding[/]: the detectors saw nothing wrong")
            return
        from rich.markdown import Markdown
        from rich.panel import Panel

        from mltrainer.resources import load_playbook

        for f in findings:
            onset = f.get("onset", {})
            self.info(f"\n[bold]{safe(f['id'])}[/] ({safe(f.get('severity'))}) at epoch "
                      f"{onset.get('epoch')}, step {onset.get('step')}: "
                      f"{safe(f.get('message', ''))}")
            self.info(f"  [dim]evidence: {safe(_short(f.get('evidence', {}), 300))}[/]")
            if f.get("playbook"):
                body = load_playbook(f["id"]).body
                # wrapped inside the panel, never cut at its edge: the console's soft_wrap
                # (no wrapping of plain lines) would crop every long line of the playbook
                self.err.print(Panel(Markdown(body), title=f["playbook"], expand=False),
                               soft_wrap=False)

    def status_word(self, status: str, width: int = 0) -> str:
        return f"[{STATUS_STYLE.get(status, 'white')}]{status:<{width}}[/]"

    def gate(self, result: dict[str, Any]) -> None:
        gate = result.get("gate") or {}
        if not gate:
            return
        verdict = "[green]passed[/]" if gate["passed"] else "[red]blocked[/]"
        self.info(f"[bold]{result['phase']}[/] gate {verdict}")
        for item in gate["items"]:
            extra = "" if item.get("required", True) else " [dim](informational)[/]"
            unmet = item["status"] in ("fail", "pending")
            # an unmet item shows its nested evidence too (what is missing, per split, …),
            # longer, and the checklist's fix: the reader must see why, not only that
            evidence = _short(item["evidence"], MESSAGE_LIMIT if unmet else 100, nested=unmet)
            self.info(f"  {self.status_word(item['status'], 7)}  {safe(item['id'])}{extra}"
                      f"  [dim]{safe(evidence)}[/]")
            if unmet and item.get("fix"):
                self.info(f"           fix: {safe(one_line(item['fix']))}")
        if result.get("report"):
            self.info(f"report: {safe(result['report'])}")
        if result.get("next"):
            self.info(f"next: [bold]{safe(result['next'])}[/]")


def _short(evidence: dict[str, Any], limit: int = 100, nested: bool = False) -> str:
    """Evidence on one line: scalars first, then (with `nested`) dicts and lists as compact
    JSON, cut at `limit` characters."""
    parts = [f"{k}={_fmt(v)}" for k, v in evidence.items() if not isinstance(v, (dict, list))]
    if nested:
        parts += [f"{k}={json.dumps(v, separators=(',', ':'), default=str)}"
                  for k, v in evidence.items() if isinstance(v, (dict, list)) and v]
    text = ", ".join(parts)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


class TrainingProgress:
    """A subscriber that shows training as it goes: a rich progress bar on a TTY, plain periodic
    lines otherwise (logs, CI, an assistant's pipe). Never writes to stdout."""

    def __init__(self, out: Output, label: str, every_s: float = 5.0) -> None:
        self.out, self.label, self.every_s = out, label, every_s
        self.tty = out.err.is_terminal and not out.quiet
        self._progress: Any = None
        self._task: Any = None
        self._last = 0.0
        self._epochs = 0

    def on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "start":
            self._epochs = int(event.get("epochs") or 0)
            if event.get("device_notice"):  # never a silent CPU run (even when quiet)
                self.out.err.print(f"[bold yellow]warning:[/] {escape(event['device_notice'])}")
            if self.tty:
                from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

                self._progress = Progress(
                    TextColumn("{task.description}"), BarColumn(),
                    TextColumn("{task.fields[info]}"),
                    TimeElapsedColumn(), console=self.out.err, transient=False,
                )
                self._progress.start()
                self._task = self._progress.add_task(self.label, total=self._epochs or None,
                                                     info="")
        elif kind == "epoch":
            val = event.get("val") or {}
            info = f"epoch {event['epoch']} loss {_fmt(event.get('train_loss'))} " + " ".join(
                f"{k} {_fmt(v)}" for k, v in val.items()
            )
            if self._progress is not None:
                self._progress.update(self._task, completed=event["epoch"], info=info)
            elif not self.out.quiet and time.monotonic() - self._last >= self.every_s:
                self._last = time.monotonic()
                self.out.plain(f"{self.label}: {info}")
        elif kind == "note":  # a phase's remark before or between runs (text is data)
            self.out.plain(f"note: {event['text']}")
        elif kind == "trial":
            self.out.plain(
                f"trial {event.get('number')}: {event.get('state')} value "
                f"{_fmt(event.get('value'))}, best so far {_fmt(event.get('best'))}")
        elif kind == "seed_run":
            self.out.plain(
                f"seeds comparison {event.get('index')}/{event.get('total')}: "
                f"{event.get('config')} seed {event.get('seed')} → {_fmt(event.get('value'))}"
                + (f" (run {event.get('run_id')}, kept)" if event.get("kept") else ""))
        elif kind == "end":
            if self._progress is not None:
                self._progress.stop()
                self._progress = None
            self.out.plain(f"{self.label}: stopped at epoch {event.get('epoch')} "
                           f"({event.get('reason')})")
        return None
