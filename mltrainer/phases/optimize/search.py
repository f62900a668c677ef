"""Ask-and-tell around mlt's own Trainer: each trial is a normal run under `runs/`.

The study is shared: workers (processes, or machines with a database storage) each loop until
the study holds the requested number of finished trials (COMPLETE + PRUNED), counting trials
other workers are running, so that together they stop at exactly the number asked for (a trial
asked at the same instant as another worker's last one is failed unrun as surplus). A trial that
fails (an invalid combination of values, an error in training) is recorded and does not count.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

# The engine (and torch) is imported with this module, before any trial: `run_trials` times
# the trials, as a plain Optuna script's clock starts after its `import torch`.
from mltrainer.engine import Trainer
from mltrainer.errors import ConfigError, RefusedError
from mltrainer.phases.optimize.space import SearchSpace, trial_config
from mltrainer.phases.optimize.study import counts, fail_dead_trials, heartbeat, worker_info
from mltrainer.project import Project

PRUNED = "pruned"
NON_FINITE = "non_finite_loss"
RUN_KIND = "trial"


class PruningSubscriber:
    """Reports the val metric of every epoch to the trial; stops the run when Optuna prunes it,
    or when a loss turns non-finite (no point training a diverged trial to the end)."""

    def __init__(self, trial: optuna.Trial, metric: str) -> None:
        self.trial, self.metric = trial, metric
        self.pruned_at: int | None = None

    def on_event(self, event: dict[str, Any]) -> str | None:
        if event.get("type") != "epoch":
            return None
        losses = (event.get("train_loss"), event.get("val_loss"))
        if any(not isinstance(v, (int, float)) or not math.isfinite(v) for v in losses):
            return NON_FINITE
        value = (event.get("val") or {}).get(self.metric)
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            return None
        self.trial.report(float(value), int(event["epoch"]))
        if self.trial.should_prune():
            self.pruned_at = int(event["epoch"])
            return PRUNED
        return None


@dataclass
class TrialRunner:
    """What every trial shares: the project, the prepared data (train/val only ever read), the
    baseline config as a dict, the space and the study's storage (for heartbeats)."""

    project: Project
    bundle: Any
    base_raw: dict[str, Any]
    space: SearchSpace
    metric: str
    storage: Any = None
    trivial_baseline: dict[str, Any] | None = None
    keep_checkpoints: int | None = 0  # epoch files a trial keeps besides best.pt and last.pt

    def run(self, study: optuna.Study, trial: optuna.Trial) -> None:
        """Train one trial and tell the study how it ended. Only a refusal (the test split)
        or an interrupt escapes, after the trial was failed: it is never left RUNNING."""
        try:
            result, pruned_at = self._train(trial)
        except (RefusedError, KeyboardInterrupt) as exc:
            _fail(study, trial, f"{type(exc).__name__}: {exc}")
            raise
        except ConfigError as exc:  # an invalid combination: this trial fails, not the phase
            _fail(study, trial, exc.message)
            return
        except Exception as exc:
            _fail(study, trial, f"{type(exc).__name__}: {exc}")
            return
        trial.set_user_attr("mlt.best_epoch", result.best_epoch)
        trial.set_user_attr("mlt.val", result.val)
        trial.set_user_attr("mlt.stopped", result.stopped_reason)
        if result.stopped_reason == "interrupted":
            _fail(study, trial, "interrupted")
        result.raise_if_interrupted(
            f"optimize interrupted during trial {trial.number} (run {result.run_id}); the "
            "finished trials are kept in the study",
            hint="re-run `mlt optimize` to continue the same study")
        if pruned_at is not None:
            trial.set_user_attr("mlt.pruned_at", pruned_at)
            study.tell(trial, state=TrialState.PRUNED)
        elif result.best_metric is not None and math.isfinite(result.best_metric):
            study.tell(trial, float(result.best_metric))
        else:
            _fail(study, trial, f"no finite val {self.metric} ({result.stopped_reason})")

    def _train(self, trial: optuna.Trial) -> tuple[Any, int | None]:
        values = {p.path: p.suggest(trial, self.base_raw) for p in self.space.params}
        trial.set_user_attr("mlt.values", values)
        cfg = trial_config(self.base_raw, values, source=f"trial {trial.number}")
        run_dir = self.project.new_run_dir(RUN_KIND)
        trial.set_user_attr("mlt.run_id", run_dir.name)
        pruning = PruningSubscriber(trial, self.metric)
        with heartbeat(self.storage, trial):
            result = Trainer(cfg, self.bundle, run_dir, subscribers=[pruning],
                             baseline=self.trivial_baseline, kind=RUN_KIND,
                             keep_checkpoints=self.keep_checkpoints).fit()
        return result, pruning.pruned_at


def _fail(study: optuna.Study, trial: optuna.Trial, error: str) -> None:
    trial.set_user_attr("mlt.error", error[:500])
    study.tell(trial, state=TrialState.FAIL)


def run_trials(study: optuna.Study, runner: TrialRunner, target: int, *,
               timeout_s: float | None = None, max_failures: int | None = None,
               enqueue: dict[str, Any] | None = None,
               on_trial: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run trials until the study holds `target` finished ones (this worker's and others'),
    the timeout passes (no new trial starts after it) or too many trials failed in a row."""
    started = time.monotonic()
    failures, ran = 0, []
    max_failures = max_failures or max(3, target)
    recovered = fail_dead_trials(study)
    if enqueue and not study.get_trials(deepcopy=False):
        study.enqueue_trial(enqueue, skip_if_exists=True)  # the previous iteration's best first
    reason = "target"
    while True:
        n = counts(study)
        if n["complete"] + n["pruned"] + n["running"] >= target:
            break
        if timeout_s is not None and time.monotonic() - started >= timeout_s:
            reason = "timeout"
            break
        if failures >= max_failures:
            reason = "failures"
            break
        with warnings.catch_warnings():
            # Optuna warns that heartbeats are meant for study.optimize: heartbeat() beats here
            warnings.filterwarnings("ignore", message="Heartbeat of storage")
            trial = study.ask()
        trial.set_user_attr("mlt.worker", worker_info())  # first: who runs it, if it dies
        if is_surplus(study, trial, target):
            reason = "target"
            break
        runner.run(study, trial)
        frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number)
        ran.append(trial.number)
        failures = failures + 1 if frozen.state == TrialState.FAIL else 0
        if on_trial is not None:
            on_trial({"type": "trial", "number": trial.number, "value": frozen.value,
                      "best": _best_value(study), "state": frozen.state.name})
        recovered += fail_dead_trials(study)
    return {"ran": ran, "stopped": reason, "recovered": recovered,
            "elapsed_s": time.monotonic() - started, "counts": counts(study)}


def is_surplus(study: optuna.Study, trial: optuna.Trial, target: int) -> bool:
    """True (and the trial is failed, with its reason) when trials numbered below `number`
    that have not failed already make the target: another worker asked at the same instant.
    Numbers are unique and ordered, so between them the workers keep exactly `target`."""
    alive = [t for t in study.get_trials(deepcopy=False)
             if t.number < trial.number and t.state != TrialState.FAIL]
    if len(alive) < target:
        return False
    trial.set_user_attr("mlt.error", f"surplus: the study already had its {target} trials "
                        "(another worker asked at the same instant); not run")
    study.tell(trial, state=TrialState.FAIL)
    return True


def wait_for_running(study: optuna.Study, poll_s: float = 1.0) -> list[int]:
    """Wait until no trial of the study is RUNNING (other workers finishing theirs), failing
    those whose worker died on the way; their numbers are returned."""
    recovered: list[int] = []
    while study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        recovered += fail_dead_trials(study)
        if study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            time.sleep(poll_s)
    return recovered


def _best_value(study: optuna.Study) -> float | None:
    try:
        return float(study.best_value)
    except ValueError:  # no complete trial yet
        return None


def trial_records(study: optuna.Study, space: SearchSpace, base_raw: dict[str, Any]
                  ) -> list[dict[str, Any]]:
    """Every trial of the study (all workers, all sessions), as plain data for the outcome."""
    records = []
    for t in study.get_trials(deepcopy=False):
        values = t.user_attrs.get("mlt.values")
        if values is None:  # recorded by every mlt trial; decode Optuna's params otherwise
            by_name = {p.name: p for p in space.params}
            values = {by_name[k].path: by_name[k].value_of(v, base_raw)
                      for k, v in t.params.items() if k in by_name}
        records.append({
            "number": t.number, "state": t.state.name, "value": t.value,
            "params": values, "optuna_params": dict(t.params),
            "run_id": t.user_attrs.get("mlt.run_id"),
            "best_epoch": t.user_attrs.get("mlt.best_epoch"),
            "val": t.user_attrs.get("mlt.val"),
            "stopped_reason": t.user_attrs.get("mlt.stopped"),
            "pruned_at": t.user_attrs.get("mlt.pruned_at"),
            "error": t.user_attrs.get("mlt.error"),
            "worker": t.user_attrs.get("mlt.worker"),
        })
    return records


def best_record(records: list[dict[str, Any]], greater_is_better: bool
                ) -> dict[str, Any] | None:
    """The best COMPLETE trial (ties: the earliest); pruned trials never count as best."""
    done = [r for r in records if r["state"] == "COMPLETE" and r["value"] is not None]
    if not done:
        return None
    sign = 1.0 if greater_is_better else -1.0
    return max(done, key=lambda r: (sign * r["value"], -r["number"]))
