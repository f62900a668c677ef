"""The pieces of `mlt optimize` (the phase body is `mltrainer.phases.optimize.run`):

- `space`: diagnose's recommendations (+ `optimize.space`, or a default) as Optuna parameters;
  trial configs built from the baseline's dict and validated like mlt.yaml.
- `study`: storage (journal file or database), study name, sampler and pruner, dead workers.
- `search`: ask-and-tell around mlt's Trainer, with pruning on the per-epoch val metric.
- `compare`: best trial vs baseline over seeds, with confidence intervals.
- `config_file`: `mlt.optimized.yaml`, each change traced to its finding.

Nothing here prints; nothing here reads the test split.
"""
