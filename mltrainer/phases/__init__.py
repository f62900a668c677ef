"""The five phases, one package each: its body (`phase.py`: `run(ctx) -> outcome`), its typed
outcome (`outcome.py`, a `runner.Outcome`), its gate's checks (`checks.py`, registered in
`mltrainer.gates` on import) and the machinery only it uses.

Imported statically, in phase order, so that a reader following imports from the CLI reaches
every phase body, and the check registry is complete wherever a phase can run. Heavy libraries
(torch, onnx, optuna, matplotlib) are imported inside the functions that use them, so importing
this package stays cheap for `mlt status`.
"""

from __future__ import annotations

from mltrainer.phases import baseline, diagnose, finalize, optimize, plan
from mltrainer.runner import Phase

PHASES: dict[str, Phase] = {
    "plan": Phase("plan", plan.run, plan.PlanOutcome),
    "baseline": Phase("baseline", baseline.run, baseline.BaselineOutcome),
    "diagnose": Phase("diagnose", diagnose.run, diagnose.DiagnoseOutcome),
    "optimize": Phase("optimize", optimize.run, optimize.OptimizeOutcome),
    "finalize": Phase("finalize", finalize.run, finalize.FinalizeOutcome),
}

__all__ = ["PHASES"]
