"""Bring your own loop: mlt's stream, detectors and gates around a Lightning or Hugging Face
Trainer script, or a plain PyTorch loop of your own.

    from mltrainer.integrations.lightning import MltCallback      # lightning.Trainer
    from mltrainer.integrations.transformers import MltCallback   # transformers.Trainer
    from mltrainer.integrations.loop import MltMonitor            # a hand-written loop

One callback per framework (`lightning.py`, `transformers.py`) and one context manager for a
loop with no framework (`loop.py`: `with MltMonitor(model) as mlt:`, `mlt.step(loss, optimizer)`
after each backward, `mlt.epoch(val_loss, val)` after each val pass), each a few lines around
the shared `RunMonitor` (`_core.py`): it writes the metric stream through `MetricWriter`, runs
the detectors online through `DetectorSubscriber` and stops training the framework's own way
(the loop's: `step` and `epoch` return the reason, `mlt.should_stop`).

A project may also name its script as `training.entrypoint` in mlt.yaml; mlt's engine then runs
it in a subprocess (`mltrainer.engine.entrypoint`) and the script reads its run folder, seed,
config and data with `context()` (`_context.py`), and saves nothing itself: the callback (or
`MltMonitor`) keeps the checkpoints, which the project's `load_model(path, config, spec)` turns
back into a model for the gates and for finalize.
"""

from __future__ import annotations

from mltrainer.engine.stopping import EarlyStopping  # the engine's rule, for a loop of your own
from mltrainer.integrations._context import RunContext, Split, context, in_mlt_run
from mltrainer.integrations._core import RunMonitor, load_checkpoint_weights, split_logged

__all__ = ["EarlyStopping", "RunContext", "RunMonitor", "Split", "context", "in_mlt_run",
           "load_checkpoint_weights", "split_logged"]
