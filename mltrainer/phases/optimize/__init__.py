"""The pieces of `mlt optimize` (`phase.py` runs them; `checks.py` judges the gate):

- `space`: diagnose's recommendations (+ `optimize.space`, or a default) as Optuna parameters;
  trial configs built from the baseline's dict and validated like mlt.yaml.
- `study`: storage (journal file or database), study name, sampler and pruner, dead workers.
- `search`: ask-and-tell around mlt's Trainer, with pruning on the per-epoch val metric.
- `compare`: best trial vs baseline over seeds, with confidence intervals.
- `config_file`: `mlt.optimized.yaml`, each change traced to its finding.

Nothing here prints; nothing here reads the test split.
"""

from __future__ import annotations

from mltrainer.phases.optimize import checks
from mltrainer.phases.optimize.outcome import OptimizeOutcome
from mltrainer.phases.optimize.phase import run
from mltrainer.phases.optimize.space import check_user_space
from mltrainer.runner import CONFIG_CHECKS

CONFIG_CHECKS.append(check_user_space)  # a bad optimize.space fails on load, not in optimize

__all__ = ["OptimizeOutcome", "checks", "run"]
