"""Versioned artifact folders: `artifacts/<short hash>/`, written once and never overwritten.

    artifacts/
      latest.json            which folder is current, and every folder that was (the history)
      model_card.md          copies of the current folder's card and deployment notes
      DEPLOYMENT.md
      <hash[:12]>/
        model.onnx model.ts model.pt2 preprocess.json     ← what the artifact hash covers
        manifest.json                                     ← hashes, config, data, environment
        model_card.md DEPLOYMENT.md example_input.json    ← documents, written once

The artifact hash is the sha256 over the sha256 of each hashed file (name and digest, sorted),
so it changes exactly when what ships changes; sign-offs bind to it. A folder appears complete
or not at all: exports and manifest are written into a staging folder that is renamed into place.

TorchScript bytes differ between two exports of the same model inside one process (its class
names get a counter), so an existing folder is found by its *model key* (weights hash,
preprocessing, formats, exporter versions) before anything is exported again: finalizing the same
model twice reuses its folder and keeps its hash, and the sign-offs bound to it.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from mltrainer.config import sha256_json
from mltrainer.errors import MltError
from mltrainer.hashing import sha256_file
from mltrainer.project import Project
from mltrainer.state import atomic_write_text, now

HASHED_FILES = ("model.onnx", "model.ts", "model.pt2", "preprocess.json")
MANIFEST = "manifest.json"
LATEST = "latest.json"
SHORT = 12  # hex characters of the artifact hash that name its folder
PREPROCESS_FORMAT = "mltrainer.deployment_preprocess"
EXPORTER_PACKAGES = ("mltrainer", "torch", "onnx", "onnxscript")


def canonical_json(obj: Any) -> str:
    """Deterministic text: the same content always hashes the same."""
    return json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"


def preprocess_document(bundle: Any, output_shape: list[Any]) -> dict[str, Any]:
    """preprocess.json: how raw rows become the model's input, and what comes out.

    Only the encoding happens outside the graph; the NaN fill and scaling parameters are
    recorded for reference but live inside every export (they must not be applied twice).
    """
    from mltrainer.exporting import INPUT_NAME, OUTPUT_NAME

    pre, spec = bundle.preprocessor, bundle.spec
    return {
        "format": PREPROCESS_FORMAT, "version": 1,
        "preprocessor": pre.to_dict(),
        "input": {
            "name": INPUT_NAME, "dtype": "float32", "shape": ["batch", spec.n_features],
            "feature_names": list(spec.feature_names),
            "columns": [{"name": c.name, "kind": c.kind,
                         **({"categories": list(c.categories)} if c.kind == "category" else {})}
                        for c in pre.columns],
            "encoding": "numeric columns as numbers, missing as NaN; each category column "
                        "one-hot over its categories (unseen or missing: all zeros)",
            "in_graph": "NaN filled with the train median, then (x - mean) / std",
        },
        "output": {
            "name": OUTPUT_NAME, "task": spec.task, "shape": ["batch", *output_shape],
            "kind": "logits (softmax gives class probabilities)"
                    if spec.task == "classification" else "predicted value",
            "class_labels": list(spec.class_labels) if spec.class_labels is not None else None,
            "target": spec.target, **target_output(spec),
        },
    }


def target_output(spec: Any) -> dict[str, Any]:
    """preprocess.json's output entries for a regression model trained on standardised
    targets: the inverse is the graph's last layer, so the output is in the target's units."""
    if spec.target_scale is None:
        return {}
    return {"in_graph": "the model's output (standardised target) * std + mean: values in the "
                        "target's units", "target_scale": spec.target_scale.to_dict()}


def model_key(weights_sha256: str, preprocess: dict[str, Any], formats: list[str]) -> str:
    from mltrainer.env import package_versions

    return sha256_json({"weights": weights_sha256, "preprocess": preprocess, "formats": formats,
                        "exporters": package_versions(EXPORTER_PACKAGES)})


def artifact_hash(file_hashes: dict[str, str]) -> str:
    lines = "".join(f"{name}:{digest}\n" for name, digest in sorted(file_hashes.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


def hash_files(folder: Path) -> dict[str, dict[str, Any]]:
    """The shipped files: the exports, preprocess.json, and a text model's tokenizer/."""
    names = [n for n in HASHED_FILES if (folder / n).is_file()]
    if (folder / "tokenizer").is_dir():
        names += sorted(p.relative_to(folder).as_posix()
                        for p in (folder / "tokenizer").rglob("*") if p.is_file())
    return {name: {"sha256": sha256_file(folder / name),
                   "size_bytes": (folder / name).stat().st_size} for name in names}


def read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def verify_folder(folder: Path) -> dict[str, Any]:
    """Re-hash the files the manifest lists: intact when every digest, the artifact hash and
    the folder's name agree."""
    manifest = read_manifest(folder)
    if manifest is None:
        return {"dir": folder.name, "intact": False, "why": "no readable manifest.json"}
    listed: dict[str, dict[str, Any]] = manifest.get("files", {})
    missing = [n for n in listed if not (folder / n).is_file()]
    mismatched = [n for n, f in listed.items()
                  if n not in missing and sha256_file(folder / n) != f.get("sha256")]
    recomputed = artifact_hash({n: f["sha256"] for n, f in listed.items()})
    intact = (not missing and not mismatched and recomputed == manifest.get("artifact_hash")
              and folder.name == recomputed[:SHORT])
    return {"dir": folder.name, "intact": intact, "artifact_hash": manifest.get("artifact_hash"),
            "recomputed": recomputed, "missing": missing, "mismatched": mismatched}


def artifact_folders(project: Project) -> list[Path]:
    root = project.artifacts_dir
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and (p / MANIFEST).is_file())


def find_by_model_key(project: Project, key: str) -> Path | None:
    for folder in artifact_folders(project):
        manifest = read_manifest(folder)
        if manifest and manifest.get("model_key") == key and verify_folder(folder)["intact"]:
            return folder
    return None


def records_from_manifest(folder: Path) -> list[Any]:
    from mltrainer.exporting import ExportRecord

    manifest = read_manifest(folder) or {}
    return [ExportRecord(**{**r, "path": str(folder / Path(r["path"]).name)})
            for r in manifest.get("exports", [])]


STAGING_PREFIX = ".staging-"


def remove_stale_staging(project: Project) -> list[str]:
    """Remove the staging folders an export killed midway left in artifacts/ (finalize holds
    the project lock, so no export is writing one now); their names."""
    if not project.artifacts_dir.is_dir():
        return []
    stale = sorted(p for p in project.artifacts_dir.glob(f"{STAGING_PREFIX}*") if p.is_dir())
    for folder in stale:
        shutil.rmtree(folder, ignore_errors=True)
    return [p.name for p in stale if not p.exists()]


def create_artifact(project: Project, deployable: Any, example: Any,
                    preprocess: dict[str, Any], key: str, manifest: dict[str, Any],
                    extra_files: Callable[[Path], None] | None = None
                    ) -> tuple[Path, list[Any], str]:
    """Export into a staging folder, hash, write the manifest, rename into place.

    Returns (folder, export records with their final paths, artifact hash).
    """
    from mltrainer.exporting import export_all

    project.artifacts_dir.mkdir(parents=True, exist_ok=True)
    staging = project.artifacts_dir / f"{STAGING_PREFIX}{secrets.token_hex(4)}"
    staging.mkdir()
    try:
        records = export_all(deployable, example, staging)
        (staging / "preprocess.json").write_text(canonical_json(preprocess), encoding="utf-8")
        if extra_files is not None:  # e.g. a text model's tokenizer: shipped and hashed
            extra_files(staging)
        files = hash_files(staging)
        digest = artifact_hash({n: f["sha256"] for n, f in files.items()})
        final = project.artifacts_dir / digest[:SHORT]
        records = [replace(r, path=str(final / Path(r.path).name)) for r in records]
        body = {"format": "mltrainer.artifact", "version": 1, "artifact_hash": digest,
                "model_key": key, "created_at": now(), "files": files,
                "exports": [r.to_dict() for r in records], **manifest}
        (staging / MANIFEST).write_text(json.dumps(body, indent=2, default=str) + "\n",
                                        encoding="utf-8")
        if final.exists():
            if not verify_folder(final)["intact"]:
                raise MltError(
                    f"{project.relative(final)} exists but its files do not match its hash; "
                    f"artifact folders are never overwritten",
                    hint=f"move {project.relative(final)} away (it was changed by hand), then "
                         f"re-run `mlt finalize`",
                )
            return final, records_from_manifest(final), digest
        staging.rename(final)
        return final, records, digest
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def write_once(path: Path, text: str) -> bool:
    """Write `path` unless it exists: documents in an artifact folder are never replaced."""
    if path.exists():
        return False
    atomic_write_text(path, text)
    return True


def read_latest(project: Project) -> dict[str, Any] | None:
    path = project.artifacts_dir / LATEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("dir") else None


def point_latest(project: Project, folder: Path, digest: str) -> dict[str, Any]:
    """Make `folder` current; the history keeps every folder that was current before."""
    before = read_latest(project) or {}
    history = list(before.get("history", []))
    if not history or history[-1].get("artifact_hash") != digest:
        history.append({"artifact_hash": digest, "dir": project.relative(folder), "at": now()})
    latest = {"format": "mltrainer.latest_artifact", "artifact_hash": digest,
              "dir": project.relative(folder), "at": now(), "history": history}
    atomic_write_text(project.artifacts_dir / LATEST, json.dumps(latest, indent=2) + "\n")
    rel = project.relative(folder)
    # Convenience copies of the current folder's documents. The card's copy stays verbatim (its
    # metadata block must open the file); the notes' copy says where its snippet runs.
    notes = {"model_card.md": "",
             "DEPLOYMENT.md": f"> A copy of `{rel}/DEPLOYMENT.md`, the current artifact: run the "
                              f"snippet below from `{rel}/`.\n\n"}
    for name, note in notes.items():
        if (folder / name).is_file():
            atomic_write_text(project.artifacts_dir / name,
                              note + (folder / name).read_text(encoding="utf-8"))
    return latest


def previous_artifacts(project: Project, current: str) -> list[dict[str, Any]]:
    """Every folder that was current before `current` (by hash), verified again."""
    latest = read_latest(project) or {}
    seen: dict[str, dict[str, Any]] = {}
    for entry in latest.get("history", []):
        if entry.get("artifact_hash") == current or entry["artifact_hash"] in seen:
            continue
        folder = project.root / entry["dir"]
        check = verify_folder(folder) if folder.is_dir() else {"intact": False,
                                                               "why": "folder missing"}
        seen[entry["artifact_hash"]] = {**check, "artifact_hash": entry["artifact_hash"],
                                        "dir": entry["dir"]}
    return list(seen.values())
