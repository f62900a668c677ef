#!/usr/bin/env python3
"""Print mltrainer's import graph by layer: its cycles and its upward imports.

    python scripts/import_graph.py [PACKAGE_DIR]      # default: mltrainer/ next to this script

Every `import`/`from … import` of a `mltrainer` module is an edge, at module level or inside a
function alike (a lazy import is still a dependency). Modules group into units (a top-level
module, or a sub-package as a whole); each unit has a layer below. An upward import is an edge
from a unit to a unit of a higher layer; a cycle is a strongly connected group of units.
Exit status 1 when there is a cycle or an upward import, so CI can hold the line.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

# Lower layers never import higher ones. Units absent here are reported as "unlayered".
LAYERS: list[tuple[str, list[str]]] = [
    ("foundation", ["__init__", "errors", "background", "hashing", "numbers", "stats",
                    "stream", "project", "resources", "config", "env"]),
    ("state", ["state", "workflow"]),
    ("machinery", ["data", "models", "engine", "detectors", "tracking", "runtime",
                   "exporting", "integrations", "examples"]),
    ("judging", ["fingerprints", "gates", "reporting", "runner"]),
    ("phases", ["phases"]),
    ("interface", ["commands", "output", "cli", "__main__"]),
]


def unit_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path, module: str, is_package: bool, known: set[str]) -> set[str]:
    """The mltrainer modules `path` imports; `from pkg import mod` is an edge to `pkg.mod`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("mltrainer"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name.startswith("mltrainer"):
                subs = {f"{name}.{a.name}" for a in node.names} & known
                found.update(subs or {name})
                if len(subs) < len(node.names):
                    found.add(name)
    return found


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


def largest_function(paths: list[Path], root: Path) -> tuple[str, int]:
    best = ("-", 0)
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                if n > best[1]:
                    best = (f"{module_name(path, root)}.{node.name}", n)
    return best


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent / "mltrainer"
    layer_of = {u: i for i, (_, units) in enumerate(LAYERS) for u in units}
    edges: dict[str, set[str]] = defaultdict(set)
    unit_edges: dict[str, set[str]] = defaultdict(set)
    examples: dict[tuple[str, str], str] = {}
    paths = sorted(root.rglob("*.py"))
    known = {module_name(p, root) for p in paths}
    modules = len(paths)
    for path in paths:
        mod = module_name(path, root)
        for target in imports_of(path, mod, path.name == "__init__.py", known):
            edges[mod].add(target)
            a, b = unit_of(mod), unit_of(target)
            if a != b:
                unit_edges[a].add(b)
                examples.setdefault((a, b), f"{mod} -> {target}")
    units = sorted(set(unit_edges) | {b for bs in unit_edges.values() for b in bs})
    print(f"{modules} modules, {len(units)} units")
    for i, (name, members) in enumerate(LAYERS):
        present = [u for u in members if u in units]
        print(f"  layer {i} {name}: {', '.join(present) or '-'}")
    unlayered = [u for u in units if u not in layer_of]
    if unlayered:
        print(f"  unlayered: {', '.join(unlayered)}")
    cycles = strongly_connected({u: set(bs) for u, bs in unit_edges.items()})
    print(f"cycles between units: {len(cycles)}")
    for group in cycles:
        print(f"  {' <-> '.join(group)}")
    upward = [(a, b) for a in sorted(unit_edges) for b in sorted(unit_edges[a])
              if a in layer_of and b in layer_of and layer_of[b] > layer_of[a]]
    print(f"upward imports: {len(upward)}")
    for a, b in upward:
        print(f"  {a} (layer {layer_of[a]}) -> {b} (layer {layer_of[b]}): {examples[(a, b)]}")
    largest = max(paths, key=lambda p: len(p.read_text(encoding="utf-8").splitlines()))
    fn_name, fn_lines = largest_function(paths, root)
    print(f"largest module: {largest.relative_to(root.parent)} "
          f"({len(largest.read_text(encoding='utf-8').splitlines())} lines); "
          f"largest function: {fn_name} ({fn_lines} lines)")
    module_cycles = strongly_connected({m: set(t) for m, t in edges.items()})
    print(f"cycles between modules: {len(module_cycles)}")
    for group in module_cycles:
        print(f"  {' <-> '.join(group)}")
    return 1 if cycles or upward or module_cycles or unlayered else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
