"""The model card (Mitchell et al., "Model Cards for Model Reporting", 2019) and the deployment
notes, rendered from `templates/model_card.md.j2` and `templates/DEPLOYMENT.md.j2` through the
one Jinja environment of `mltrainer.reporting`.

The card opens with a Hugging Face model-card metadata block (YAML between `---` lines). What a
tool cannot know (intended use, factors, ethical considerations, limitations) is left to a
person and marked with PERSON_MARKER; the gate's `model_card_complete` item checks that every
required section is there and that the limitations are either marked or written.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

PERSON_MARKER = "<!-- mlt:to-be-written-by-a-person -->"
SNIPPET_MARKER = "<!-- mlt:deployment-snippet -->"
REQUIRED_SECTIONS = (
    "Model details", "Intended use", "Factors", "Metrics", "Evaluation data", "Training data",
    "Quantitative analyses", "Ethical considerations", "Caveats and recommendations",
    "Limitations", "Training configuration", "Environment", "Exports",
)
_MIN_WRITTEN = 20  # characters of prose that count as "a person wrote this section"
_HEADING = re.compile(r"^## +(.+?)\s*$", re.MULTILINE)
_PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def hf_metadata(context: dict[str, Any]) -> str:
    """The Hugging Face metadata block's YAML: tags, pipeline tag, and `model-index` results."""
    task = context["task"]
    pipeline = "tabular-classification" if task == "classification" else "tabular-regression"
    test = context["test"]
    metrics = [
        {"type": name, "value": round(float(value), 6),
         "name": f"test {name} (95% CI {test['ci95'][name][0]:.4g} to "
                 f"{test['ci95'][name][1]:.4g})",
         "verified": False}
        for name, value in test["metrics"].items()
    ]
    meta = {
        "library_name": "pytorch",
        "license": "unknown",  # set by the data-governance sign-off, not by a tool
        "tags": ["mltrainer", pipeline, "onnx", "torchscript", "pt2"],
        "pipeline_tag": pipeline,
        "model-index": [{
            "name": context["name"],
            "results": [{
                "task": {"type": pipeline},
                "dataset": {"name": context["data"]["source"], "type": context["data"]["source"],
                            "split": "test"},
                "metrics": metrics,
            }],
        }],
        "mltrainer": {"artifact_hash": context["artifact"]["hash"]},
    }
    return yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).strip()


def render_model_card(context: dict[str, Any]) -> str:
    from mltrainer.reporting import environment

    return environment().get_template("model_card.md.j2").render(
        **context, metadata=hf_metadata(context), person=PERSON_MARKER,
        required_sections=REQUIRED_SECTIONS)


def render_deployment(context: dict[str, Any]) -> str:
    from mltrainer.reporting import environment

    return environment().get_template("DEPLOYMENT.md.j2").render(
        **context, snippet_marker=SNIPPET_MARKER)


def sections(text: str) -> dict[str, str]:
    """`## Heading` → the text up to the next `## ` heading."""
    heads = list(_HEADING.finditer(text))
    return {m.group(1): text[m.end():heads[i + 1].start() if i + 1 < len(heads) else len(text)]
            for i, m in enumerate(heads)}


def front_matter(text: str) -> dict[str, Any] | None:
    if not text.startswith("---\n"):
        return None
    try:
        block = text.split("---\n", 2)[1]
        data = yaml.safe_load(block)
    except (IndexError, yaml.YAMLError):
        return None
    return data if isinstance(data, dict) else None


def card_completeness(text: str) -> dict[str, Any]:
    """Evidence for `model_card_complete`: sections, metadata, the state of the limitations."""
    found = sections(text)
    missing = [s for s in REQUIRED_SECTIONS if s not in found]
    empty = [s for s in REQUIRED_SECTIONS if s in found and not found[s].strip()]
    limits = found.get("Limitations", "")
    prose = re.sub(r"<!--.*?-->", "", limits, flags=re.DOTALL).strip()
    if PERSON_MARKER in limits:
        limitations = "marked for a person to write"
    elif len(prose) >= _MIN_WRITTEN:
        limitations = "written"
    else:
        limitations = "empty"
    meta = front_matter(text)
    awaiting = [s for s, body in found.items() if PERSON_MARKER in body]
    return {
        "missing_sections": missing, "empty_sections": empty,
        "limitations": limitations, "awaiting_a_person": awaiting,
        "hf_metadata": meta is not None and "model-index" in meta,
        "complete": not missing and not empty and limitations != "empty"
                    and meta is not None and "model-index" in meta,
    }


def extract_snippet(text: str) -> str | None:
    """The python block that follows SNIPPET_MARKER in DEPLOYMENT.md (else the first one)."""
    start = text.find(SNIPPET_MARKER)
    match = _PYTHON_BLOCK.search(text, max(start, 0))
    return match.group(1) if match else None
