"""The finalize phase's machinery, one concern per module: `phase.py` runs them;
`checks.py` judges the gate.

    production.py   which config ships, and the model: retrained on train+val, or kept as is
    scoring.py      fast metrics for the bootstrap, confusion matrix, per-class metrics
    evaluation.py   the one evaluation of the locked test split, recorded and audited
    schema.py       schema checks on every split, rows shared across splits
    artifacts.py    versioned artifact folders: exports, preprocess.json, manifest, `latest`
    verification.py parity (fresh process), latency, the DEPLOYMENT.md snippet run
    card.py         the model card and the deployment notes (templates/), their checks
    predict.py      `mlt predict`: raw CSV rows → the shipped ONNX model → predictions
"""

from __future__ import annotations

from mltrainer.phases.finalize import checks
from mltrainer.phases.finalize.outcome import FinalizeOutcome
from mltrainer.phases.finalize.phase import run

__all__ = ["FinalizeOutcome", "checks", "run"]
