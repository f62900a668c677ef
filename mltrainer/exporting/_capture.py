"""Capture what exporters say (warnings, log records, stray prints) so it lands in a record.

The core never prints, and a deprecation warning that leaks into a user's terminal is noise
there but evidence in an export record (`torch.jit.trace` is deprecated in torch 2.13).
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
from collections.abc import Iterator

# torch gives dozens of its loggers their own stderr StreamHandler (bound to the real stderr,
# so redirecting sys.stderr does not catch them); every such handler under these prefixes is
# swapped for the capture while an export runs. Loggers without one propagate to a swapped
# parent, or end at logging's last resort, which writes to the redirected sys.stderr.
_LOGGER_PREFIXES = ("torch", "onnxscript", "onnx_ir", "onnx")

# Environment noise, not a property of the model: the ONNX registry says so once per process.
_NOISE = ("torchvision is not installed",)

_MAX_MESSAGE = 500  # characters; some exporter warnings carry whole graphs


class _ListHandler(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__(level=logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(f"log {record.name} {record.levelname}: {record.getMessage()}")


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def strip_ansi(text: str) -> str:
    """Exporter errors come colourised for a terminal; records are read as plain text."""
    return _ANSI.sub("", text)


def _swap_stream_handlers(
    capture: logging.Handler,
) -> list[tuple[logging.Logger, list[logging.Handler]]]:
    saved: list[tuple[logging.Logger, list[logging.Handler]]] = []
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if not isinstance(logger, logging.Logger) or not name.startswith(_LOGGER_PREFIXES):
            continue
        # File handlers write no terminal output: leave them (and non-stream handlers) alone.
        printing = [
            h
            for h in logger.handlers
            if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
        ]
        if printing:
            saved.append((logger, list(logger.handlers)))
            logger.handlers = [h for h in logger.handlers if h not in printing] + [capture]
    return saved


@contextlib.contextmanager
def captured(sink: list[str]) -> Iterator[None]:
    """Collect warnings, WARNING+ log records and stdout/stderr writes into `sink`, deduplicated.

    Nothing escapes the block, whatever the caller's warning filters are (pytest's included).
    """
    raw: list[str] = []
    handler = _ListHandler(raw)
    saved = _swap_stream_handlers(handler)
    out, err = io.StringIO(), io.StringIO()
    try:
        with (
            warnings.catch_warnings(record=True) as caught,
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
        ):
            warnings.simplefilter("always")
            try:
                yield
            finally:
                raw.extend(f"{w.category.__name__}: {w.message}" for w in caught)
    finally:
        for logger, handlers in saved:
            logger.handlers = handlers
        for stream, text in (("stdout", out.getvalue()), ("stderr", err.getvalue())):
            # One entry per stream: a dumped graph is one event, not a hundred warnings.
            if text.strip():
                raw.append(f"{stream} ({len(text.splitlines())} lines): {text.strip()}")
        for message in raw:
            message = strip_ansi(message)[:_MAX_MESSAGE]
            if message not in sink and not any(noise in message for noise in _NOISE):
                sink.append(message)
