"""What a passed gate judged: fingerprints of the config, the data, the code and the files its
outcome stands on.

Cheap by design (no torch, no data load): `mlt status` computes them on every call.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from mltrainer import __version__
from mltrainer.config import MltConfig
from mltrainer.project import Project
from mltrainer.state import ProjectState
from mltrainer.workflow import EVIDENCE, evidence_paths, fingerprint_view


def module_source_hash(spec_str: str, root: Path) -> str | None:
    """sha256 of the source file of `python:<module>:<fn>`'s module, found without running it
    (not even a dotted module's parent package: `mlt status` never executes project code)."""
    from mltrainer.data import find_module_file

    path = find_module_file(spec_str.split(":")[1], root)
    return hashlib.sha256(path.read_bytes()).hexdigest() if path is not None else None


def model_files(cfg: MltConfig, root: Path) -> list[str]:
    """Fingerprints of the files the model is built from, where the config names them:
    `model.weights`, the `hf:<folder>` and `model.tokenizer` (folders by their manifest, so
    `mlt status` hashes a folder once and stats it afterwards)."""
    from mltrainer.data import fingerprint_path
    from mltrainer.data._sources import resolve_path

    kind = cfg.model.kind
    named = (("weights", cfg.model.weights), ("tokenizer", cfg.model.tokenizer),
             ("hf", kind.split(":", 1)[1] if kind.startswith("hf:") else None))
    parts = []
    for name, rel in named:
        if not rel:
            continue
        path = resolve_path(rel, root)
        if path.exists():
            parts.append(f"{name}={fingerprint_path(Path(root), path)}")
    return parts


def code_fingerprint(cfg: MltConfig, root: Path) -> str:
    """mltrainer's version plus the source of a user model factory, training entrypoint and
    its load_model, when the config names them (a changed script makes its phases stale),
    and the model's own files (`model_files`: new weights or another tokenizer, too)."""
    parts = [f"mltrainer=={__version__}", *model_files(cfg, root)]
    if cfg.model.kind.startswith("python:"):
        parts.append(f"model={module_source_hash(cfg.model.kind, root)}")
    for name in ("entrypoint", "load_model"):
        spec = getattr(cfg.training, name)
        if spec and spec.startswith("python:"):
            parts.append(f"{name}={module_source_hash(spec, root)}")
        elif spec and (root / spec).is_file():
            parts.append(f"{name}={hashlib.sha256((root / spec).read_bytes()).hexdigest()}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def probe_inputs(cfg: MltConfig, rows: str | None, root: Path,
                 environment: dict[str, str]) -> str:
    """What a determinism probe's result depends on, as one sha256: the config it trains
    (seed, task, data, model, training), the fingerprint of the rows it trains on, the code
    (`code_fingerprint`) and the environment (python, torch, device). Two probes with equal
    inputs are the same experiment: finalize reuses plan's instead of running it again."""
    from mltrainer.config import sha256_json

    view = cfg.model_dump(mode="json", include={"seed", "task", "data", "model", "training"})
    return sha256_json({"config": view, "rows": rows, "code": code_fingerprint(cfg, root),
                        "environment": environment})


SMALL_FILE = 1 << 16  # bytes: evidence hashes a file this small, and takes a larger one's size


def evidence_fingerprint(project: Project, name: str, outcome: dict[str, Any]) -> str:
    """The files phase `name`'s recorded outcome stands on, as JSON {path: "size[:sha256]"
    | "gone"}: sizes survive a copy or a move of the project (mtimes do not), and a small
    file (mlt.optimized.yaml, a manifest) is hashed, since an edit may keep its size."""
    import json

    view = {}
    for rel in evidence_paths(name, outcome):
        path = project.root / rel
        if not path.is_file():
            view[rel] = "gone"
            continue
        size = path.stat().st_size
        view[rel] = (f"{size}:{hashlib.sha256(path.read_bytes()).hexdigest()}"
                     if size <= SMALL_FILE else str(size))
    return json.dumps(view, sort_keys=True)


def current_fingerprints(project: Project, cfg: MltConfig, state: ProjectState | None = None
                         ) -> dict[str, dict[str, str]]:
    """Each phase's fingerprints now; with the state, also the files each recorded outcome
    stands on (`evidence`), so a run folder moved or deleted after its phase passed is seen."""
    from mltrainer.data import source_fingerprint

    view = fingerprint_view(
        cfg.model_dump(mode="json"),
        source_fingerprint(cfg, project.root),
        code_fingerprint(cfg, project.root),
    )
    for name, rec in (state.phases.items() if state is not None else ()):
        if EVIDENCE in rec.fingerprints and name in view:
            view[name][EVIDENCE] = evidence_fingerprint(project, name, rec.outcome)
    return view
