"""The HTML reports in a real browser: headless Chromium loads index.html and every phase page
from disk, with no console error and no request leaving the machine, and takes a screenshot.

Chromium is driven over the DevTools protocol on `--remote-debugging-pipe` (fds 3 and 4,
NUL-terminated JSON): standard library only, no port, no websocket. Skipped when no Chromium
binary exists (`scripts/install-browser.sh` installs Debian's). Screenshots go to the test's
tmp dir, and to bench/out/screenshots/ too when MLT_KEEP_SCREENSHOTS is set.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from mltrainer.cli import cli

CHROMIUM = os.environ.get("MLT_CHROMIUM") or next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH (nor MLT_CHROMIUM): "
                       "run scripts/install-browser.sh to install Debian's chromium"),
]
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--mute-audio",
         "--hide-scrollbars", "--remote-debugging-pipe")
LOCAL_SCHEMES = ("file:", "data:", "about:")
WIDTH = 1280  # a laptop screen, in CSS pixels
TIMEOUT_S = 60.0  # per DevTools command: generous, the test machine is shared


def _high_fd(fd: int) -> int:
    """The same pipe end on a descriptor >= 10, so the `3<&N 4>&M` redirections below cannot
    clobber each other (pytest's capture may hold the low numbers). bash, not dash, runs the
    redirections: dash takes single-digit descriptors only."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


class DevToolsPipe:
    """A headless Chromium and the DevTools protocol over its debugging pipe."""

    def __init__(self, binary: str, profile: Path) -> None:
        to_chrome_r, self._to_chrome = map(_high_fd, os.pipe())
        self._from_chrome, from_chrome_w = map(_high_fd, os.pipe())
        # Chromium reads commands on fd 3 and writes replies and events on fd 4.
        launcher = f'exec "$0" "$@" 3<&{to_chrome_r} 4>&{from_chrome_w}'
        self.proc = subprocess.Popen(
            ["bash", "-c", launcher, binary, *FLAGS, f"--user-data-dir={profile}",
             "about:blank"],
            pass_fds=(to_chrome_r, from_chrome_w), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._next_id = 0
        self._inbox: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.events: list[dict[str, Any]] = []
        self._stderr: list[bytes] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=lambda: self._stderr.extend(self.proc.stderr or []),
                         daemon=True).start()

    def _read(self) -> None:
        buf = b""
        with os.fdopen(self._from_chrome, "rb", buffering=0) as fh:
            while chunk := fh.read(65536):
                buf += chunk
                *messages, buf = buf.split(b"\0")
                for m in messages:
                    self._inbox.put(json.loads(m))
        self._inbox.put(None)

    def send(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None) -> dict[str, Any]:
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        try:
            os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        except BrokenPipeError:
            raise RuntimeError(f"chromium is gone (exit {self.proc.wait(5)}): "
                               f"{self.stderr_tail()}") from None
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            reply = self._take(deadline, method)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, event: str, session: str) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT_S
        for seen in self.events:
            if seen.get("method") == event and seen.get("sessionId") == session:
                return seen
        while True:
            msg = self._take(deadline, event)
            self.events.append(msg)
            if msg.get("method") == event and msg.get("sessionId") == session:
                return msg

    def _take(self, deadline: float, what: str) -> dict[str, Any]:
        try:
            msg = self._inbox.get(timeout=max(deadline - time.monotonic(), 0.01))
        except queue.Empty:
            raise TimeoutError(f"chromium did not answer {what} in {TIMEOUT_S:.0f} s") from None
        if msg is None:
            raise RuntimeError(f"chromium exited while waiting for {what}: "
                               f"{self.stderr_tail()}")
        return msg

    def stderr_tail(self) -> str:
        lines = b"".join(self._stderr).decode(errors="replace").splitlines()
        return "\n".join(line for line in lines if "dbus" not in line)[-2000:]

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, TimeoutError, OSError):
            self.send("Browser.close")
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_chrome)


def visit(browser: DevToolsPipe, page: Path, shot: Path) -> dict[str, Any]:
    """Load one page; screenshot it (screen and print media); return what the page did."""
    target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    s = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Page", "Runtime", "Log", "Network"):
        browser.send(f"{domain}.enable", session=s)
    browser.send("Emulation.setDeviceMetricsOverride",
                 {"width": WIDTH, "height": 800, "deviceScaleFactor": 1, "mobile": False}, s)
    nav = browser.send("Page.navigate", {"url": page.resolve().as_uri()}, s)
    assert not nav.get("errorText"), nav
    browser.wait_for("Page.loadEventFired", s)
    dom = browser.send("Runtime.evaluate", {"returnByValue": True, "expression": (
        "({scripts: document.scripts.length, images: [...document.images].map(i => "
        "({src: i.src.slice(0, 30), ok: i.complete && i.naturalWidth > 0})), "
        "title: document.title, h1: (document.querySelector('h1') || {}).textContent, "
        "text: document.body.innerText})")}, s)["result"]["value"]
    height = browser.send("Page.getLayoutMetrics", session=s)["cssContentSize"]["height"]
    clip = {"x": 0, "y": 0, "width": WIDTH, "height": min(height, 12000), "scale": 1}
    png = browser.send("Page.captureScreenshot", {"format": "png", "clip": clip,
                                                  "captureBeyondViewport": True}, s)["data"]
    shot.write_bytes(base64.b64decode(png))
    browser.send("Emulation.setEmulatedMedia", {"media": "print"}, s)
    pdf = browser.send("Page.printToPDF", {"printBackground": True}, s)["data"]
    shot.with_suffix(".pdf").write_bytes(base64.b64decode(pdf))
    browser.send("Target.closeTarget", {"targetId": target})
    mine = [e for e in browser.events if e.get("sessionId") == s]
    return {"dom": dom, "errors": _errors(mine), "requests": _requests(mine)}


def _errors(events: list[dict[str, Any]]) -> list[str]:
    out = []
    for e in events:
        p = e.get("params", {})
        if e.get("method") == "Runtime.exceptionThrown":
            out.append(json.dumps(p.get("exceptionDetails", {}))[:300])
        elif e.get("method") == "Runtime.consoleAPICalled" and p.get("type") in ("error",
                                                                                 "assert"):
            out.append(json.dumps(p.get("args", []))[:300])
        elif e.get("method") == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            out.append(f"{p['entry'].get('source')}: {p['entry'].get('text')}")
    return out


def _requests(events: list[dict[str, Any]]) -> list[str]:
    return [e["params"]["request"]["url"] for e in events
            if e.get("method") == "Network.requestWillBeSent"]


def _mlt(*args: str) -> None:
    res = CliRunner().invoke(cli, [*args, "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output


@pytest.fixture(scope="module")
def reports(hot_digits: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared hot digits project (conftest), copied, with a hostile waiver reason."""
    root = tmp_path_factory.mktemp("browser") / "proj"
    shutil.copytree(hot_digits, root)
    reason = "<script>alert(1)</script> & [x](javascript:alert(2))"
    _mlt("waive", "baseline", "goal_met", "--reason", reason, "-C", str(root))
    return root / "reports"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Any:
    assert CHROMIUM is not None
    chrome = DevToolsPipe(CHROMIUM, tmp_path_factory.mktemp("chromium-profile"))
    yield chrome
    chrome.close()


@pytest.mark.parametrize("page", ["index", "plan", "baseline", "diagnose"])
def test_page_loads_offline_without_errors(reports: Path, browser: DevToolsPipe, page: str,
                                           tmp_path: Path) -> None:
    shot = tmp_path / f"{page}.png"
    seen = visit(browser, reports / f"{page}.html", shot)
    assert seen["errors"] == [], seen["errors"]
    leaving = [u for u in seen["requests"] if not u.startswith(LOCAL_SCHEMES)]
    assert leaving == [], leaving
    dom = seen["dom"]
    assert dom["scripts"] == 0  # the waiver reason's <script> stayed text
    assert all(i["ok"] and i["src"].startswith("data:image/png") for i in dom["images"])
    if page != "index":
        assert dom["h1"].startswith(("Plan gate", "Baseline gate", "Diagnose gate"))
        assert dom["images"], "every phase page has at least one figure"
    assert "<script>alert(1)</script>" in dom["text"] or page in ("plan", "diagnose")
    assert shot.stat().st_size > 10_000 and shot.with_suffix(".pdf").read_bytes()[:4] == b"%PDF"
    keep = os.environ.get("MLT_KEEP_SCREENSHOTS")
    if keep:
        out = Path(__file__).resolve().parent.parent / "bench" / "out" / "screenshots"
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, out / shot.name)
        shutil.copy(shot.with_suffix(".pdf"), out / shot.with_suffix(".pdf").name)
