"""Gate reports: Markdown and self-contained HTML for every gate, the index, figures, escaping."""

from __future__ import annotations

import base64
import pickle
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from mltrainer.cli import cli
from mltrainer.config import load_config
from mltrainer.fingerprints import current_fingerprints
from mltrainer.project import Project
from mltrainer.reporting import environment, index_path, render_phase_report
from mltrainer.reporting._figures import phase_figures
from mltrainer.state import ProjectState, load_state

PHASES_RUN = ("plan", "baseline", "diagnose")
PNG = b"\x89PNG\r\n\x1a\n"
XSS = "<script>alert(1)</script>"


def mlt(*args: str) -> None:
    res = CliRunner().invoke(cli, [*args, "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output


@pytest.fixture(scope="module")
def built(hot_digits: Path) -> Path:
    return hot_digits


@pytest.fixture
def project(built: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "proj"
    shutil.copytree(built, dest)
    return dest


def context(root: Path) -> tuple[Project, ProjectState, dict[str, dict[str, str]]]:
    p = Project.at(root)
    return p, load_state(p), current_fingerprints(p, load_config(p.config_path))


def html_pages(root: Path) -> list[Path]:
    return sorted((root / "reports").glob("*.html"))


def test_every_gate_writes_markdown_and_html(built: Path) -> None:
    for phase in PHASES_RUN:
        md = (built / "reports" / f"{phase}.md").read_text()
        html = (built / "reports" / f"{phase}.html").read_text()
        title = f"{phase.capitalize()} gate — PASSED"
        assert md.startswith(f"# {title}\n")
        assert f'<article class="report passed">\n<h1>{title}</h1>' in html
        assert html.startswith("<!doctype html>")


def test_the_verdict_comes_first_then_the_next_command(built: Path) -> None:
    lines = (built / "reports" / "baseline.md").read_text().splitlines()
    assert lines[0] == "# Baseline gate — PASSED"
    assert lines[2].startswith("**Verdict: passed.**")
    assert lines[4] == "Next: `mlt diagnose`"  # what was next when baseline passed
    html = (built / "reports" / "baseline.html").read_text()
    body = html.split('<article class="report passed">', 1)[1]
    order = [body.index(s) for s in ("<h1>", "Verdict: passed", "Next: <code>mlt diagnose",
                                     "<h2>Checklist</h2>", "<h2>Run</h2>")]
    assert order == sorted(order)


def test_baseline_table_shows_train_metrics_beside_val(built: Path) -> None:
    md = (built / "reports" / "baseline.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| epoch |"))
    assert "| train accuracy |" in header and "| val accuracy |" in header
    row = next(line for line in md.splitlines() if line.startswith("| 1"))
    assert row.count("|") == header.count("|")
    assert "- |" not in row.split("| val", 1)[0]  # train metric values are filled in


def test_a_blocked_gate_says_why_and_how_to_unblock(project: Path) -> None:
    p, state, fps = context(project)
    gate = state.phases["baseline"].gate
    assert gate is not None
    gate.passed, gate.items[0].status = False, "fail"
    render_phase_report(p, state, "baseline", fps)
    md = (project / "reports" / "baseline.md").read_text()
    first = gate.items[0].id
    assert md.startswith("# Baseline gate — BLOCKED\n\n**Verdict: blocked** on " + first)
    assert f"`mlt waive baseline {first} --reason TEXT`" in md
    html = (project / "reports" / "baseline.html").read_text()
    assert '<article class="report blocked">' in html


def test_index_lists_every_phase_with_its_status(built: Path) -> None:
    index = index_path(Project.at(built)).read_text()
    res = CliRunner().invoke(cli, ["status", "-C", str(built), "--json"])
    status = yaml.safe_load(res.stdout)
    assert [p["name"] for p in status["phases"]] == ["plan", "baseline", "diagnose", "optimize",
                                                    "finalize"]
    rows = re.findall(r"<tr>\n  <td>(\d)</td>(.*?)</tr>", index, flags=re.DOTALL)
    assert len(rows) == 5
    for (n, row), phase in zip(rows, status["phases"], strict=True):
        assert f'<span class="pill status-{phase["status"]}">{phase["status"]}</span>' in row
        linked = f'<a href="{phase["name"]}.html">' in row
        assert linked == (phase["name"] in PHASES_RUN), (n, row)
    assert "Next: <code>mlt optimize</code>" in index


def test_html_is_self_contained(built: Path) -> None:
    for page in html_pages(built):
        html = page.read_text()
        assert "<script" not in html and "@import" not in html
        assert "http://" not in html and "https://" not in html, page.name
        assert not re.search(r"<link[^>]+stylesheet", html)
        for src in re.findall(r'\bsrc="([^"]*)"', html):
            assert src.startswith("data:image/png;base64,"), (page.name, src[:40])
        for href in re.findall(r'\bhref="([^"]*)"', html):
            assert href.startswith("data:") or (page.parent / href).is_file(), (page.name, href)
        assert all(u.startswith("data:") for u in re.findall(r"url\(([^)]*)\)", html))
        assert "default-src 'none'" in html  # a CSP meta: nothing may load even by mistake


def test_baseline_figures_are_png_files_and_inline_images(built: Path) -> None:
    import matplotlib.image

    md = (built / "reports" / "baseline.md").read_text()
    html = (built / "reports" / "baseline.html").read_text()
    inline = [base64.b64decode(b)
              for b in re.findall(r'src="data:image/png;base64,([^"]+)"', html)]
    for name in ("curves", "optimizer"):
        path = built / "reports" / "img" / f"baseline-{name}.png"
        data = path.read_bytes()
        assert data.startswith(PNG) and len(data) > 5_000
        height, width, _ = matplotlib.image.imread(str(path)).shape
        assert width > 800 and height > 200
        assert f"](img/baseline-{name}.png)" in md
        assert data in inline
    assert (built / "reports" / "img" / "plan-classes.png").is_file()


def test_findings_are_marked_on_the_diagnose_curves(built: Path) -> None:
    p, state, _ = context(built)
    findings = state.phases["diagnose"].outcome["findings"]
    figures = {f.name: f for f in phase_figures(p, state, "diagnose")}
    assert set(figures) == {"curves", "optimizer"}
    if findings:
        assert "findings at their onset" in figures["curves"].title


def test_user_strings_are_escaped_in_html(project: Path) -> None:
    cfg = yaml.safe_load((project / "mlt.yaml").read_text())
    cfg["name"] = XSS
    (project / "mlt.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    mlt("waive", "baseline", "goal_met", "--reason",
        f"{XSS} [click](javascript:alert(2)) <img src=x onerror=alert(3)> a|b", "-C", str(project))
    p, state, fps = context(project)
    finding = {"id": "overfitting", "severity": "warning", "title": f"T {XSS}",
               "message": "<b onmouseover=alert(4)>m</b>", "onset": {"epoch": 2, "step": 3},
               "evidence": {"<i>column</i>": "<u>v</u>"}, "playbook": "diagnostics/overfitting.md",
               "recommendations": []}
    state.phases["diagnose"].outcome["findings"] = [finding]
    for phase in PHASES_RUN:
        render_phase_report(p, state, phase, fps)
    for page in html_pages(project):
        html = page.read_text()
        assert XSS not in html and "<script" not in html, page.name
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, page.name  # the project name
        assert not [t for t in re.findall(r"<[^>]*>", html) if "javascript:" in t]  # text only
        assert not re.search(r"<(img|b|i|u)\s+[^>]*(onerror|onmouseover)", html), page.name
        assert all(s.startswith("data:image/png") for s in re.findall(r'src="([^"]*)"', html))
    baseline = (project / "reports" / "baseline.html").read_text()
    assert "[click](javascript:alert(2))" in baseline  # shown as typed, not made a link
    assert "a|b" in baseline
    diagnose = (project / "reports" / "diagnose.html").read_text()
    assert "&lt;b onmouseover=alert(4)&gt;m&lt;/b&gt;" in diagnose
    assert "&lt;i&gt;column&lt;/i&gt;" in diagnose
    assert f"{XSS} [click]" in (project / "reports" / "baseline.md").read_text()


def test_rerendering_gives_the_same_bytes(project: Path) -> None:
    def snapshot() -> dict[str, bytes]:
        return {str(f.relative_to(project)): f.read_bytes()
                for f in sorted((project / "reports").rglob("*")) if f.is_file()}

    p, state, fps = context(project)
    for phase in PHASES_RUN:
        render_phase_report(p, state, phase, fps)
    first = snapshot()
    for phase in PHASES_RUN:
        render_phase_report(p, state, phase, fps)
    assert snapshot() == first
    assert any(k.endswith(".png") for k in first) and "reports/index.html" in first


def test_a_figure_no_longer_drawn_is_removed(project: Path) -> None:
    stale = project / "reports" / "img" / "baseline-gone.png"
    stale.write_bytes(PNG)
    p, state, fps = context(project)
    render_phase_report(p, state, "baseline", fps)
    assert not stale.exists()
    assert (project / "reports" / "img" / "plan-classes.png").exists()


def test_search_and_test_figures_come_from_the_outcome(project: Path) -> None:
    p, state, _ = context(project)
    rec = state.phase("optimize")
    rec.outcome = {"metric": "accuracy", "greater_is_better": True,
                   "trials": [{"number": 0, "state": "COMPLETE", "value": 0.8},
                              {"number": 1, "state": "PRUNED", "value": 0.3},
                              {"number": 2, "state": "FAIL", "value": None},
                              {"number": 3, "state": "COMPLETE", "value": 0.9}],
                   "importances": {"training.lr": 0.7, "model.$x$": 0.3}}
    names = [f.name for f in phase_figures(p, state, "optimize")]
    assert names == ["trials", "importances"]
    state.phase("finalize").outcome = {"test": {"confusion_matrix": [[5, 1], [2, 7]],
                                                "class_labels": ["no", "yes"]}}
    figures = phase_figures(p, state, "finalize")
    assert [f.name for f in figures] == ["confusion"] and figures[0].png.startswith(PNG)


def test_exports_table_renders_once_escaped() -> None:
    exports = [{"format": "onnx", "path": "artifacts/x/<m>.onnx", "passed": True,
                "max_abs_diff": 1e-6, "label_agreement": 1.0,
                "latency_ms": {"p50": 0.1, "by_batch": {"1": {"p50": 0.1, "p95": 0.2}}}},
               {"format": "pt2", "passed": False, "reason": "shape <mismatch>"}]
    shown: set[str] = set()

    def once(section: str) -> bool:
        first = section not in shown
        shown.add(section)
        return first

    md = environment().get_template("_exports.md.j2").render(outcome={"exports": exports},
                                                             once=once)
    assert "| onnx | `artifacts/x/<m>.onnx` | ✅ identical within tolerance | 1e-06 | 1 |" in md
    assert "batch 1: p50 0.1 / p95 0.2" in md and "❌ shape <mismatch>" in md
    assert environment().get_template("_exports.md.j2").render(
        outcome={"exports": exports}, once=once).strip() == ""


def test_environment_is_markdown_by_default_and_escapes_html_templates() -> None:
    env = environment()
    assert env.from_string("{{ x }}").render(x="<b>") == "<b>"
    assert {"fmt", "cell"} <= set(env.filters)
    assert env.filters["cell"]("a|b\nc") == "a\\|b c"
    assert env.autoescape("gate.html.j2") and not env.autoescape("gate.md.j2")
    html_env = environment(html=True)
    assert html_env.from_string("{{ x }}").render(x="<b>") == "&lt;b&gt;"


def test_user_strings_in_markdown_are_text_never_markup() -> None:
    # a class label or project name is data: no link, image, inline HTML, emphasis, code span
    # or table cell edge may come out of it in model_card.md / DEPLOYMENT.md
    import re

    from mltrainer.resources import content_path

    text = environment().filters["text"]
    assert text("[x](javascript:a) <img src=y> a|b *c* `d` e_f\\g") == (
        "\\[x\\](javascript:a) \\<img src=y\\> a\\|b \\*c\\* \\`d\\` e\\_f\\\\g")
    assert environment(html=True).filters["text"]("<b>") == "<b>"  # the stash escapes HTML
    for name in ("model_card.md.j2", "DEPLOYMENT.md.j2"):
        source = (content_path("templates") / name).read_text()
        user = re.findall(r"\{\{[^}]*(?:class_labels|c\.label|c\.name|categories|"
                          r"(?<!\.)\bname\b)[^}]*\}\}", source)
        assert user and all("text" in e or "length" in e for e in user), (name, user)


def test_control_characters_in_user_strings_never_reach_a_report_raw() -> None:
    """An image folder's class "\x1b[31mred" was written raw into plan.md and plan.html (the
    trivial baseline's `predicts`): `cat reports/plan.md` coloured the terminal."""
    env, html_env = environment(), environment(html=True)
    for e in (env, html_env):
        for expr in ("{{ x | text }}", "{{ x | cell }}", "{{ x }}", "{{ x | fmt }}"):
            out = e.from_string(expr).render(x="\x1b[31mred\x07")
            assert "\x1b" not in out and "\x07" not in out and "\\x1b" in out, (expr, out)


def test_status_and_help_import_neither_matplotlib_nor_markdown(built: Path) -> None:
    code = ("import sys; from click.testing import CliRunner; from mltrainer.cli import cli; "
            f"r = CliRunner().invoke(cli, ['status', '-C', {str(built)!r}]); "
            "CliRunner().invoke(cli, ['--help']); assert r.exit_code == 0, r.output; "
            "print(sorted(m for m in ('matplotlib', 'markdown') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("kind", ["fork", "spawn"])
def test_a_fresh_process_draws_the_same_figures_in_a_child(built: Path, kind: str) -> None:
    """A phase command in a fresh process gets its figures from a child that imported
    matplotlib meanwhile: the same bytes as drawn in-process; a dead child means None (the
    report then draws them itself). Before torch loads the child is a fork, started whatever
    the load (it duplicates no import); after, a fresh interpreter, when a core is spare."""
    setup = ("bg.spare_core = lambda: False  # a loaded machine\n" if kind == "fork" else
             "bg.can_fork = lambda: False; bg.spare_core = lambda: True  # torch loaded\n")
    code = (f"import sys, pickle; from pathlib import Path; root = Path({str(built)!r})\n"
            "from mltrainer.project import Project; from mltrainer.state import load_state\n"
            "from mltrainer.reporting import FigureDrawer\n"
            "import mltrainer.background as bg\n" + setup +
            "p = Project.at(root); state = load_state(p)\n"
            "dead = FigureDrawer(); dead._child._proc.kill()\n"
            "assert dead.figures(p, state, 'plan') is None\n"
            "d = FigureDrawer(); assert d.started and 'matplotlib' not in sys.modules\n"
            f"assert isinstance(d._child._proc, bg._ForkedServer) is {kind == 'fork'}\n"
            "sys.stdout.buffer.write(pickle.dumps(d.figures(p, state, 'baseline')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True)
    p, state, _ = context(built)
    assert pickle.loads(out.stdout) == phase_figures(p, state, "baseline")


def test_figures_drawn_on_two_cores_are_the_ones_drawn_in_order() -> None:
    """The drawer's child draws every second figure in a fork of itself: the same results in
    the same order (errors included) as one after the other, the odd ones from another
    process. Run in a fresh process without torch, as the drawer's child is."""
    code = textwrap.dedent("""
        import os, pickle, sys
        from mltrainer.reporting._figures import _draw_all
        def fig(i):
            def draw():
                if i == 3:
                    raise ValueError("no numbers")
                return f"{i}:{os.getpid()}".encode() if i != 4 else b""
            return draw
        draws = [fig(i) for i in range(6)]
        out = {"parallel": _draw_all(draws, parallel=True),
               "serial": _draw_all(draws, parallel=False), "pid": os.getpid(),
               "torch": "torch" in sys.modules}
        sys.stdout.buffer.write(pickle.dumps(out))
    """)
    out = pickle.loads(subprocess.run([sys.executable, "-c", code], capture_output=True,
                                      check=True).stdout)
    here = str(out["pid"])
    assert out["torch"] is False
    serial, parallel = out["serial"], out["parallel"]
    assert [pid for png, _ in serial if png for pid in [png.decode().split(":")[1]]] == [here] * 4
    assert serial[3] == (None, "ValueError: no numbers") == parallel[3] and serial[4][0] == b""
    for i, ((png, error), (png_s, error_s)) in enumerate(zip(parallel, serial, strict=True)):
        assert error == error_s
        if png:  # the same figure; odd ones from the fork
            assert png.split(b":")[0] == png_s.split(b":")[0] == str(i).encode()
            assert (png.split(b":")[1].decode() == here) is (i % 2 == 0)


def test_curves_fall_back_to_the_recorded_history_without_the_run_folder(project: Path) -> None:
    shutil.rmtree(project / "runs")  # runs/ is git-ignored: a fresh clone has none
    p, state, fps = context(project)
    figures = {f.name: f for f in phase_figures(p, state, "baseline")}
    assert "curves" in figures and figures["curves"].png.startswith(PNG)
    render_phase_report(p, state, "diagnose", fps)
    assert (project / "reports" / "img" / "diagnose-curves.png").is_file()


def test_plots_survive_nonfinite_values_and_long_runs() -> None:
    import math

    from mltrainer.reporting import _plots
    from mltrainer.reporting._curves import Marker, RunCurves

    n = 20_000  # steps: drawn as a min/max envelope
    c = RunCurves(metric="rmse", greater_is_better=False, grad_clip=1.0, goal=0.5)
    c.epochs = [1.0, 2.0, 3.0]
    c.train_loss, c.val_loss = [1.0, math.nan, math.inf], [1.2, 0.9, math.nan]
    c.val_metric, c.train_metric = [0.9, math.nan, 0.7], [math.nan] * 3
    c.epoch_lr = [1e-3, 1e-3, 1e-3]
    c.step_x = [3 * (i + 1) / n for i in range(n)]
    c.step_loss = [math.nan if i % 997 == 0 else 1.0 / (1 + i) for i in range(n)]
    c.step_lr = [1e-3 * (1 - i / n) for i in range(n)]
    c.step_grad = [math.inf if i == 5 else 0.5 + (i % 50) for i in range(n)]
    c.markers = [Marker(2.0, "best epoch (2)", "best"), Marker(1.5, "nan_loss", "critical")]
    assert _plots.training_curves(c).startswith(PNG)  # timed by hand: bench/report.py
    assert (_plots.optimizer_curves(c) or b"").startswith(PNG)
    c.val_metric = [math.nan] * 3
    assert _plots.training_curves(c).startswith(PNG)  # the loss panel alone


def test_a_sampled_gradient_norm_is_drawn_as_one_line() -> None:
    """A stream whose steps carry `grad_norm` only every 4th step (the Lightning callback's
    stride): the panel joins the measured steps instead of breaking the line at each gap."""
    import math

    from matplotlib.figure import Figure

    from mltrainer.reporting import _plots
    from mltrainer.reporting._curves import RunCurves

    c = RunCurves(metric="accuracy", greater_is_better=True)
    c.step_x = [i / 40 for i in range(1, 41)]
    c.step_grad = [1.0 + i if i % 4 == 0 else math.nan for i in range(1, 41)]
    ax = Figure().subplots()
    _plots._grad_panel(ax, c, labelled=True)
    drawn = ax.lines[0].get_xydata()
    assert len(drawn) == 10 and all(math.isfinite(y) for _, y in drawn)


def test_a_figure_that_fails_to_draw_is_reported_not_raised(project: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    from mltrainer.reporting import _plots

    def broken(*_: object) -> bytes:
        raise ValueError("<boom>")

    monkeypatch.setattr(_plots, "optimizer_curves", broken)
    p, state, fps = context(project)
    render_phase_report(p, state, "baseline", fps)
    assert "*Figure not drawn (Learning rate" in (project / "reports" / "baseline.md").read_text()
    html = (project / "reports" / "baseline.html").read_text()
    assert '<p class="figure-error">' in html and "ValueError: &lt;boom&gt;" in html
    assert not (project / "reports" / "img" / "baseline-optimizer.png").exists()
    assert (project / "reports" / "img" / "baseline-curves.png").exists()


@pytest.mark.parametrize(("machine", "says", "busy"), [
    ({"cpus": 2, "load_1min_before": 5.1, "load_1min_after": 4.0, "busy": True},
     "load average of 5.1 (before) and 4 (after) on 2 CPU(s)", True),
    ({"cpus": 8, "load_1min_before": 0.4, "load_1min_after": 1.2, "busy": False},
     "load average of 0.4 (before) and 1.2 (after) on 8 CPU(s).", False),
    (None, "", False),  # a record from before the load was measured
])
def test_latency_says_how_busy_the_machine_was(machine: dict | None, says: str,
                                                busy: bool) -> None:
    """Latency timed on a busy machine (a 2-layer BERT: 0.3 ms idle, 248 ms p50 at load 8 on
    2 CPUs) is printed with the load beside it, and a warning when it exceeded the CPUs."""
    out = environment().get_template("_machine_load.md.j2").render(machine=machine)
    assert says in out
    assert ("the machine was busy" in out) is busy
