"""The floor plan holds: no import cycles, no upward imports (scripts/import_graph.py), and
docs/ARCHITECTURE.md lists every module that exists."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_graph_has_no_cycles_and_no_upward_imports() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "import_graph.py")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "cycles between units: 0" in proc.stdout and "upward imports: 0" in proc.stdout


def test_architecture_lists_every_module() -> None:
    doc = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"`([\w/<>{},.]+\.py)`", doc))
    missing = []
    for path in sorted((ROOT / "mltrainer").rglob("*.py")):
        rel = path.relative_to(ROOT / "mltrainer").as_posix()
        generic = re.sub(r"^phases/(plan|baseline|diagnose|optimize|finalize)/",
                         "phases/<name>/", rel)
        finding = re.sub(r"^detectors/_(?!base|runner)\w+\.py$", "detectors/_<finding>.py", rel)
        short = path.name if path.parent.name == "tracking" else None
        if not {rel, generic, finding, short} & listed:
            missing.append(rel)
    assert not missing, f"docs/ARCHITECTURE.md does not list: {missing}"
