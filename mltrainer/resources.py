"""The one loader of the content that ships beside the code.

`checklists/`, `diagnostics/`, `templates/`, `phases/`, `examples/` and `AGENT.md` live at the top
of the repository. An installed wheel carries them in `mltrainer/_content/`; a source checkout
(or an editable install) finds them beside the package. Nothing else in mltrainer opens them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mltrainer.errors import BadInputError

_PACKAGE = Path(__file__).resolve().parent
_CANDIDATES = (_PACKAGE / "_content", _PACKAGE.parent)


@functools.cache
def content_root() -> Path:
    for root in _CANDIDATES:
        if (root / "checklists").is_dir():
            return root
    raise BadInputError(
        "mlt's content folders (checklists/, diagnostics/, templates/, phases/) were not found",
        hint="reinstall mltrainer: the wheel is incomplete",
    )


def content_path(*parts: str) -> Path:
    return content_root().joinpath(*parts)


def read_text(*parts: str) -> str:
    path = content_path(*parts)
    if not path.is_file():
        raise BadInputError(f"{path}: missing from mlt's content", hint="reinstall mltrainer")
    return path.read_text(encoding="utf-8")


def load_yaml(*parts: str) -> Any:
    path = content_path(*parts)
    try:
        return yaml.safe_load(read_text(*parts))
    except yaml.YAMLError as exc:
        raise BadInputError(f"{path}: not valid YAML: {exc}") from None


def load_checklist(phase: str) -> dict[str, Any]:
    """checklists/<phase>.yaml as a mapping:
    {phase, title, items: [{id, text, check|manual, ...}]}."""
    data = load_yaml("checklists", f"{phase}.yaml")
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise BadInputError(
            f"{content_path('checklists', f'{phase}.yaml')}: needs a list under 'items'"
        )
    return data


@dataclass(frozen=True)
class Playbook:
    id: str
    meta: dict[str, Any]
    body: str
    path: str = field(default="")  # relative, e.g. diagnostics/overfitting.md


def split_front_matter(text: str, where: str) -> tuple[dict[str, Any], str]:
    if not text.startswith("---"):
        raise BadInputError(f"{where}: must start with a '---' YAML front-matter block")
    try:
        _, front, body = text.split("---", 2)
        meta = yaml.safe_load(front) or {}
    except (ValueError, yaml.YAMLError) as exc:
        raise BadInputError(f"{where}: malformed front matter: {exc}") from None
    if not isinstance(meta, dict):
        raise BadInputError(f"{where}: front matter must be a mapping")
    return meta, body.lstrip("\n")


def load_playbook(finding_id: str) -> Playbook:
    rel = f"diagnostics/{finding_id}.md"
    meta, body = split_front_matter(read_text("diagnostics", f"{finding_id}.md"), rel)
    return Playbook(id=finding_id, meta=meta, body=body, path=rel)


def playbook_ids() -> list[str]:
    return sorted(p.stem for p in content_path("diagnostics").glob("*.md") if p.stem != "README")


def phase_guide(phase_dir: str) -> str:
    return read_text("phases", phase_dir, "workflow.md")


def example_config(name: str) -> str:
    path = content_path("examples", f"{name}.yaml")
    if not path.is_file():
        known = sorted(p.stem for p in content_path("examples").glob("*.yaml"))
        raise BadInputError(
            f"no example named {name!r}", hint=f"choose one of: {', '.join(known)}"
        )
    return path.read_text(encoding="utf-8")
