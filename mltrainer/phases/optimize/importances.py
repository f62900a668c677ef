"""fANOVA parameter importances of a study, computed in a child process while the seeds
comparison trains.

Optuna's fANOVA evaluator imports scikit-learn's forests (about 2 s of a fresh process) and
fits one: work that needs only the finished trials. `BackgroundImportances` starts a child
(`background.Child`, when a core is spare) with those trials (pickled `FrozenTrial`s) when the
search ends; the child puts them in an in-memory study and runs `param_importances` on it, the
function the parent would run, with the same seed: fANOVA reads only the finished trials'
parameters, distributions and values, in order, so the numbers are the same. Anything unusual
with the child (it cannot start, dies, answers garbage or takes too long) means the parent
computes them itself, as before. This module imports Optuna only (not the engine): the child
starts without torch.
"""

from __future__ import annotations

import json
import pickle
import sys

import optuna
from optuna.trial import TrialState

from mltrainer.background import Child

TIMEOUT_S = 300.0
_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
_STARTED = False  # a child was started in this process


def param_importances(study: optuna.Study, seed: int) -> dict[str, float] | None:
    """fANOVA importance of each parameter over the complete trials (seeded: the same study
    gives the same numbers); None when there is too little to tell (fewer than two complete
    trials, or no parameter that varied)."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 2:
        return None
    try:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
        found = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except (ValueError, RuntimeError):
        return None
    return {name: round(float(v), 6) for name, v in found.items()} or None


class BackgroundImportances:
    """`param_importances(study, seed)` of the study as it is now, from a child process (when
    a core is spare; for the first search of a process only: a test session or a notebook
    that runs many pays the import once, in-process, instead of once a search)."""

    def __init__(self, study: optuna.Study, seed: int) -> None:
        global _STARTED
        self.study, self.seed = study, seed
        self._child: Child | None = None
        if "optuna.importance" in sys.modules or _STARTED:  # nothing to gain
            return
        trials = study.get_trials(deepcopy=False, states=_FINISHED)
        if sum(t.state == TrialState.COMPLETE for t in trials) < 2:
            return  # None either way, and no import to hide
        self._child = Child.start(__name__)
        if self._child is not None:
            _STARTED = True
            self._child.send(pickle.dumps({"trials": trials, "seed": seed,
                                           "directions": [d.name for d in study.directions]}))

    def result(self) -> dict[str, float] | None:
        child, self._child = self._child, None
        out = child.receive(TIMEOUT_S) if child is not None else None
        if out is not None:
            try:
                answer = json.loads(out)
                return None if answer is None else {str(k): float(v) for k, v in answer.items()}
            except (ValueError, AttributeError, TypeError):
                pass
        return param_importances(self.study, self.seed)


def serve() -> None:
    """The child: the finished trials in, their importances out (JSON)."""
    request = pickle.loads(sys.stdin.buffer.read())
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(
        directions=[optuna.study.StudyDirection[d] for d in request["directions"]])
    study.add_trials(request["trials"])
    sys.stdout.write(json.dumps(param_importances(study, request["seed"])))
    sys.stdout.flush()
