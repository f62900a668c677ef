"""The five phases, one package each: its body (`phase.py`: `run(ctx) -> outcome`), its gate's
checks (`checks.py`, registered in `mltrainer.gates` on import) and the machinery only it uses.

Imported statically, in phase order, so that a reader following imports from the CLI reaches
every phase body, and the check registry is complete wherever a phase can run. Heavy libraries
(torch, onnx, optuna, matplotlib) are imported inside the functions that use them, so importing
this package stays cheap for `mlt status`.
"""

from __future__ import annotations

from mltrainer.phases import baseline, diagnose, finalize, optimize, plan
from mltrainer.runner import PhaseBody

BODIES: dict[str, PhaseBody] = {
    "plan": plan.run,
    "baseline": baseline.run,
    "diagnose": diagnose.run,
    "optimize": optimize.run,
    "finalize": finalize.run,
}

__all__ = ["BODIES"]
