"""`mlt.optimized.yaml`: the chosen configuration, beside mlt.yaml (which is never rewritten).

The whole resolved config is written (defaults included, so a later mlt with other defaults
trains the same thing), with a header saying where it came from and, on every changed line, a
comment tracing the change to the finding(s) that motivated it.
"""

from __future__ import annotations

import math
from typing import Any

import yaml

from mltrainer.config import parse_config, sha256_json
from mltrainer.phases.optimize.space import DEFAULT, USER, SearchSpace, get_path
from mltrainer.project import Project
from mltrainer.state import atomic_write_text


def changes_between(base_raw: dict[str, Any], chosen_raw: dict[str, Any], space: SearchSpace
                    ) -> list[dict[str, Any]]:
    """One entry per searched field whose chosen value differs from the baseline's."""
    out = []
    for p in space.params:
        before, after = get_path(base_raw, p.path), get_path(chosen_raw, p.path)
        if _same(before, after):
            continue
        out.append({"path": p.path, "baseline": before, "value": after,
                    "findings": list(p.sources)})
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0)
    return a == b


def trace_text(sources: list[str]) -> str:
    parts = []
    findings = [s for s in sources if s not in (USER, DEFAULT)]
    if findings:
        parts.append("finding " + ", ".join(findings) + " (diagnostics/"
                     + ".md, diagnostics/".join(findings) + ".md)")
    if USER in sources:
        parts.append("user space (optimize.space in mlt.yaml)")
    if DEFAULT in sources:
        parts.append("default space (diagnose had nothing to search)")
    return "; ".join(parts) or "unknown"


def render(chosen_raw: dict[str, Any], changes: list[dict[str, Any]], header: list[str]) -> str:
    comments = {c["path"]: f"was {_flow(c['baseline'])} in mlt.yaml; from "
                + trace_text(c["findings"]) for c in changes}
    lines = [f"# {h}" if h else "#" for h in header]
    _emit(chosen_raw, "", 0, comments, lines)
    text = "\n".join(lines) + "\n"
    if yaml.safe_load(text) != chosen_raw:  # the comments must never change what is loaded
        raise AssertionError("mlt.optimized.yaml does not round-trip to the chosen config")
    return text


def _emit(node: dict[str, Any], prefix: str, indent: int, comments: dict[str, str],
          lines: list[str]) -> None:
    pad = " " * indent
    for key, value in node.items():
        path = f"{prefix}{key}"
        label = _flow(str(key))
        if isinstance(value, dict) and value:
            lines.append(f"{pad}{label}:")
            _emit(value, f"{path}.", indent + 2, comments, lines)
            continue
        line = f"{pad}{label}: {_flow(value)}"
        if path in comments:
            line += f"  # {comments[path]}".replace("\n", " ")
        lines.append(line)


def _flow(value: Any) -> str:
    """One value as single-line YAML (lists and small mappings in flow style)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=2**31, sort_keys=False)
    return text.removesuffix("\n...\n").strip()


def write_optimized_config(project: Project, chosen_raw: dict[str, Any],
                           changes: list[dict[str, Any]], header: list[str]) -> dict[str, Any]:
    """Write the file (atomically) and return where it is and the hash of what it holds."""
    parse_config(chosen_raw, source=str(project.optimized_config_path))  # never write a bad one
    text = render(chosen_raw, changes, header)
    atomic_write_text(project.optimized_config_path, text)
    return {"path": project.relative(project.optimized_config_path),
            "config_sha256": sha256_json(chosen_raw)}
