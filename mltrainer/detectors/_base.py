"""The detector contract: a `Detector` reads metric-stream events one by one and returns a
`Finding` the first time its rule holds. Everything else in `mltrainer.detectors` builds on it.

A detector is a small state machine over the events of `mltrainer.stream` (plain dicts; no
torch). It is fed every event in order, live during training (through `DetectorSubscriber`) or
afterwards from a file (through `run_detectors`); both paths call the same `update`, so they
agree by construction. Its state is JSON-safe (`state_dict`), so a resumed run detects exactly
what an uninterrupted one would.
"""

from __future__ import annotations

import difflib
import math
import re
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from functools import cached_property, lru_cache
from typing import Any, ClassVar

from mltrainer.config import CLASSIFICATION_METRICS, LOWER_IS_BETTER, REGRESSION_METRICS
from mltrainer.errors import ConfigError, StateCorruptError
from mltrainer.numbers import decode_json, encode_json, finite, is_nonfinite  # noqa: F401

SEVERITIES = ("critical", "warning", "info")
STATE_VERSION = 1

# How a threshold value is checked (declared per name in `Detector.kinds`; default "positive").
_KIND_RULES: dict[str, tuple[Any, str]] = {
    "positive": (lambda v: v > 0, "a number above 0"),
    "nonnegative": (lambda v: v >= 0, "a number of at least 0"),
    "fraction": (lambda v: 0 <= v < 1, "a fraction in [0, 1)"),
    "count": (lambda v: v >= 1 and float(v).is_integer(), "a whole number of at least 1"),
}


def fitted_loss(event: Mapping[str, Any]) -> float | None:
    """How well the model of this epoch's end fits its training rows: `train_eval_loss` (the
    loss on a fixed train subset in eval mode, measured like `val_loss`) when the stream has it,
    else `train_loss` (the mean of the epoch's step losses, which in epoch 1 still includes the
    untrained start and is taken with dropout on)."""
    value = finite(event.get("train_eval_loss"))
    return value if value is not None else finite(event.get("train_loss"))


# where a parametrised tensor is stored: `<module>.parametrizations.<tensor>.original[N]`
# (torch.nn.utils.parametrizations: spectral_norm, weight_norm's magnitude and direction,
# orthogonal), `<tensor>_orig` / `_g` / `_v` (the older torch.nn.utils hooks)
_PARAMETRISED = re.compile(r"^(?P<key>(?:.*\.)?parametrizations\.(?P<tensor>[^.]+))\.original\d*$")
_HOOKED = re.compile(r"^(?P<key>.*weight)_(?:orig|g|v)$")


@lru_cache(maxsize=4096)
def weight_of(name: str) -> str | None:
    """The weight a parameter (by its name in the per-layer statistics) is or stores - the
    name itself when it ends in "weight", the parametrised weight's name for the tensors a
    parametrisation keeps (`0.parametrizations.weight.original1` -> `0.parametrizations.weight`,
    `0.weight_orig` -> `0.weight`) - or None when it is no weight (a bias, a scale)."""
    stored = _PARAMETRISED.match(name)
    if stored is not None:
        return stored.group("key") if stored.group("tensor").endswith("weight") else None
    hooked = _HOOKED.match(name)
    if hooked is not None:
        return hooked.group("key")
    return name if name.endswith("weight") else None


@dataclass(frozen=True)
class Finding:
    """What a detector found: its id, how bad, where it began, the numbers, one line of text.

    `onset` is {"epoch": int | None, "step": int | None}: where the problem began (which may be
    before the event that confirmed it). `evidence` holds the measured values next to the
    thresholds they were judged against.
    """

    id: str
    severity: str
    onset: dict[str, int | None]
    evidence: dict[str, Any]
    message: str

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON form (non-finite numbers become "nan"/"inf"/"-inf")."""
        return encode_json(asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        try:
            onset = data.get("onset") or {}
            return cls(
                id=str(data["id"]),
                severity=str(data["severity"]),
                onset={"epoch": onset.get("epoch"), "step": onset.get("step")},
                evidence=decode_json(dict(data.get("evidence") or {})),
                message=str(data.get("message", "")),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise StateCorruptError(f"not a finding: {data!r} ({exc})") from None


def step_event(epoch: Any, step: Any, loss: Any, lr: Any, grad_norm: Any, layers: Any,
               at: Any) -> dict[str, Any]:
    """One step event from its values, key for key (and in the order) mlt's loop and the
    callbacks write it: {"type": "step", "epoch", "step", "loss", "lr", ["grad_norm",]
    ["layers",] "time"}, the optional keys where the value is not None."""
    event = {"type": "step", "epoch": epoch, "step": step, "loss": loss, "lr": lr}
    if grad_norm is not None:
        event["grad_norm"] = grad_norm
    if layers is not None:
        event["layers"] = layers
    event["time"] = at
    return event


class StepBlock(Sequence[dict[str, Any]]):
    """Consecutive step events as columns, one list per field (`grad_norms` and `layers` None
    where a step has none): what a callback hands the detectors for a block of steps
    (`DetectorSubscriber.on_steps`). As a sequence, its items are the step events as dicts,
    built when first read, key for key the callbacks' lines: {"type": "step", "epoch",
    "step", "loss", "lr", ["grad_norm",] ["layers",] "time"}; a detector's bulk path
    (`Detector._observe_block`) reads the columns instead."""

    __slots__ = ("_made", "_odd_losses", "epochs", "grad_norms", "layers", "losses", "lrs",
                 "steps", "times")
    COLUMNS = ("epochs", "steps", "losses", "lrs", "grad_norms", "layers", "times")  # __init__'s

    def __init__(self, epochs: list[Any], steps: list[Any], losses: list[Any], lrs: list[Any],
                 grad_norms: list[Any], layers: list[Any], times: list[Any]) -> None:
        self.epochs, self.steps, self.losses, self.lrs = epochs, steps, losses, lrs
        self.grad_norms, self.layers, self.times = grad_norms, layers, times
        self._made: list[dict[str, Any] | None] = [None] * len(steps)
        self._odd_losses: list[int] | None = None

    def odd_losses(self) -> list[int]:
        """The indices of the steps whose loss is not a finite float (computed once: a block's
        losses are all finite floats but where training broke)."""
        odd = self._odd_losses
        if odd is None:
            losses = self.losses
            try:  # all floats and finite, the common block: two passes in C
                plain = (set(map(type, losses)) <= {float}
                         and math.isfinite(math.fsum(losses)))
            except (OverflowError, TypeError):
                plain = False  # (fsum of finite floats may overflow: judged one by one)
            odd = [] if plain else [i for i, loss in enumerate(losses)
                                    if type(loss) is not float or loss - loss != 0.0]
            self._odd_losses = odd
        return odd

    def marked(self, start: int, fields: frozenset[str]) -> list[int]:
        """The indices from `start` on, in order, of the steps that carry one of `fields`
        ("grad_norm", "layers") or a loss that is not a finite float: the steps a detector
        with those `step_fields` judges (the others are quiet: see `Detector._observe_block`)."""
        found = set(i for i in self.odd_losses() if i >= start)
        for field, column in (("grad_norm", self.grad_norms), ("layers", self.layers)):
            if field in fields:
                found.update(i for i in range(start, len(column)) if column[i] is not None)
        return sorted(found)

    @classmethod
    def join(cls, blocks: Sequence[StepBlock]) -> StepBlock:
        if len(blocks) == 1:
            return blocks[0]
        columns = [[value for block in blocks for value in getattr(block, name)]
                   for name in cls.COLUMNS]
        return cls(*columns)

    def __len__(self) -> int:
        return len(self.steps)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        event = self._made[index]
        if event is None:
            event = self._made[index] = self._event(index)
        return event

    def _event(self, i: int) -> dict[str, Any]:
        return step_event(self.epochs[i], self.steps[i], self.losses[i], self.lrs[i],
                          self.grad_norms[i], self.layers[i], self.times[i])

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every step event as a dict (built once)."""
        made = self._made
        if None in made:
            self._made = made = [self._event(i) if event is None else event
                                 for i, event in enumerate(made)]
        return made  # type: ignore[return-value]


@dataclass(frozen=True)
class DetectorContext:
    """What a detector knows about the run beyond its events.

    Built from the stream's start event (`from_start_event`); fields left None are filled from
    a start event when one arrives, and `task`/`metric` are inferred from the first epoch's
    `val` keys when no start event said them. `baseline` is the trivial baseline measured on
    val by `mlt plan`, e.g. {"accuracy": 0.1, "loss": 2.30}. `goal_target` is the value of the
    metric that counts as done (`goal.target`); `n_val` the number of val rows (the sampling
    noise of a val metric); `n_train_eval` the number of training rows the epoch events'
    `train` metrics and `train_eval_loss` are measured on (their sampling noise); `epochs` the
    number of epochs the run is configured for (the start event's `epochs`: how long it has
    left to learn); `grad_scale` the fp16 gradient scaler's scale as the run started (None: no
    scaler), whose skipped overflows `nan_loss` bears.

    Immutable: the derived losses (`baseline_loss`, `untrained_loss`, `baseline_metric`) are
    computed once per context (several detectors read them on every step event).
    """

    task: str | None = None
    metric: str | None = None
    greater_is_better: bool | None = None
    steps_per_epoch: int | None = None
    baseline: dict[str, float] | None = None
    goal_target: float | None = None
    n_val: int | None = None
    n_train_eval: int | None = None
    epochs: int | None = None
    grad_scale: float | None = None

    @classmethod
    def from_start_event(
        cls, event: Mapping[str, Any], overrides: Mapping[str, Any] | None = None
    ) -> DetectorContext:
        """The context a start event describes; `overrides` (same field names) win over it."""
        return cls(**{**cls._fields_of(event), **dict(overrides or {})})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> DetectorContext:
        return cls(**cls._fields_of(data or {}))

    def to_dict(self) -> dict[str, Any]:
        return encode_json(asdict(self))

    def filled_from(self, event: Mapping[str, Any]) -> DetectorContext:
        """This context with its None fields taken from a start event."""
        found = self._fields_of(event)
        changes = {k: v for k, v in found.items() if getattr(self, k) is None and v is not None}
        return replace(self, **changes) if changes else self

    def inferred_from_epoch(self, event: Mapping[str, Any]) -> DetectorContext:
        """Guess task and metric from an epoch event's `val` keys (streams with no start)."""
        val = event.get("val")
        if self.metric is not None or not isinstance(val, Mapping):
            return self
        for metric in (*CLASSIFICATION_METRICS, *REGRESSION_METRICS):
            if metric in val:
                task = "classification" if metric in CLASSIFICATION_METRICS else "regression"
                return replace(
                    self,
                    task=self.task or task,
                    metric=metric,
                    greater_is_better=(
                        self.greater_is_better
                        if self.greater_is_better is not None
                        else metric not in LOWER_IS_BETTER
                    ),
                )
        return self

    @cached_property
    def baseline_loss(self) -> float | None:
        value = finite((self.baseline or {}).get("loss"))
        return value if value is not None and value > 0 else None

    @cached_property
    def untrained_loss(self) -> float | None:
        """The loss a model that predicts about zero gets, which is where an untrained model
        starts: the baseline's loss for classification (uniform logits are about as good as the
        class frequencies); for regression the MSE of predicting 0, the baseline's loss (the
        MSE of predicting the train mean m) plus m**2 - on targets with a large offset far
        above the baseline's own. On targets standardised on train (the baseline records its
        `target_scale`), m is in the loss's units: about 0."""
        base = self.baseline_loss
        if base is None or self.task != "regression":
            return base
        mean = finite((self.baseline or {}).get("predicts"))
        scale = (self.baseline or {}).get("target_scale")
        if mean is not None and isinstance(scale, Mapping):
            mean = (mean - float(scale["mean"])) / float(scale["std"])
        return base + mean**2 if mean is not None else base

    @cached_property
    def baseline_metric(self) -> float | None:
        return finite((self.baseline or {}).get(self.metric)) if self.metric else None

    def meets_goal(self, value: float | None) -> bool | None:
        """Whether a value of the metric reaches the goal; None when either is unknown."""
        if value is None or self.goal_target is None:
            return None
        if self.greater_is_better is False:
            return value <= self.goal_target
        return value >= self.goal_target

    @staticmethod
    def _fields_of(data: Mapping[str, Any]) -> dict[str, Any]:
        baseline = data.get("baseline")
        steps = data.get("steps_per_epoch")
        gib = data.get("greater_is_better")
        return {
            "goal_target": finite(data.get("goal_target")),
            "n_val": _count(data.get("n_val")),
            "n_train_eval": _count(data.get("n_train_eval")),
            "epochs": _count(data.get("epochs")),
            "task": data.get("task") if isinstance(data.get("task"), str) else None,
            "metric": data.get("metric") if isinstance(data.get("metric"), str) else None,
            "greater_is_better": gib if isinstance(gib, bool) else None,
            "steps_per_epoch": steps if isinstance(steps, int) and not isinstance(steps, bool)
            else None,
            "baseline": decode_json(dict(baseline)) if isinstance(baseline, Mapping) else None,
            "grad_scale": _positive(data.get("grad_scale")),
        }


def _positive(value: Any) -> float | None:
    """A positive finite number from an event, as a float, else None."""
    number = finite(value) if not isinstance(value, bool) else None
    return float(number) if number is not None and number > 0 else None


def _count(value: Any) -> int | None:
    """A row count from an event: a positive int, else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


class Detector(ABC):
    """One finding's rule over the metric stream. Subclasses implement `_observe` only.

    Class attributes:
        id, severity: the finding id (also the playbook's name) and "critical"|"warning"|"info".
        defaults: threshold name -> default value; each can be overridden through
            `diagnose.thresholds.<id>.<name>` and must equal the playbook's front matter.
        kinds: threshold name -> "positive" (the default), "nonnegative", "fraction" or
            "count" (a whole number >= 1, available to `_observe` as an int).
        watches: the event types `_observe` is given ("start" is handled here).
        stops_training: when True, the online subscriber stops training when it fires.
        step_fields: the optional step-event fields ("grad_norm", "layers") the step rules
            read, when a step event with none of them and a finite loss leaves the running
            state as it is (`_observe` returns None and changes nothing): a `StepBlock`'s such
            steps are skipped (`_observe_block`). None (the default): every step counts.
        _state_fields: the attributes that make up the detector's running state; they must hold
            JSON-safe values (numbers, strings, None, lists, dicts, deques of those).
        _optional_state: those of `_state_fields` added after the state format was first
            written: a saved state without one loads, keeping the field's `_setup` value.

    The base class handles: threshold validation (eagerly, in `__init__`), firing at most once
    per run, filling the context from the start event and inferring it from the first epoch,
    the reference loss (see `reference_loss`), and `state_dict`/`load_state_dict`.
    """

    id: ClassVar[str]
    severity: ClassVar[str]
    defaults: ClassVar[dict[str, float]]
    kinds: ClassVar[dict[str, str]] = {}
    watches: ClassVar[frozenset[str]] = frozenset({"step", "epoch"})
    stops_training: ClassVar[bool] = False
    step_fields: ClassVar[frozenset[str] | None] = None
    _state_fields: ClassVar[tuple[str, ...]] = ()
    _optional_state: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, context: DetectorContext | None = None, **thresholds: float) -> None:
        self.thresholds: dict[str, float] = self.validate_thresholds(thresholds)
        self.context = context if context is not None else DetectorContext()
        self.fired = False
        self.initial_loss: float | None = None  # first finite step loss (or epoch train loss)
        self._seen_step = False
        self._setup()

    # -- to implement --------------------------------------------------------------------------

    def _setup(self) -> None:
        """Create the running state (the attributes named in `_state_fields`)."""

    @abstractmethod
    def _observe(self, event: dict[str, Any]) -> Finding | None:
        """Judge one event (its type is in `watches`); return a Finding when the rule holds.

        Contract:
          * Called for every watched event, in stream order, until a finding is returned; never
            again after that (the base class keeps a fired detector quiet).
          * Fields may be missing (someone else's training loop) or non-finite. A value that is
            missing, None, NaN or ±inf must be skipped: it never satisfies a rule and never
            enters a running statistic. Non-finite values are `nan_loss`'s to report, and only
            `nan_loss` reads them.
          * Cheap: it runs on every training step; keep the work per step O(1) or O(window).
        """

    # -- the public surface --------------------------------------------------------------------

    def update(self, event: dict[str, Any]) -> Finding | None:
        """Feed one event; returns a Finding the first time the rule holds, otherwise None."""
        if self.fired:
            return None
        kind = event.get("type")
        if kind == "step":
            if self.initial_loss is None:
                self.initial_loss = finite(event.get("loss"))
            self._seen_step = True
        elif kind == "epoch":
            if self.context.metric is None:
                self.context = self.context.inferred_from_epoch(event)
            if self.initial_loss is None and not self._seen_step:
                self.initial_loss = finite(event.get("train_loss"))
        elif kind == "start":
            self.context = self.context.filled_from(event)
        if kind not in self.watches:
            return None
        finding = self._observe(event)
        if finding is not None:
            self.fired = True
        return finding

    def update_steps(self, events: Sequence[dict[str, Any]]) -> tuple[int, Finding] | None:
        """`update` on each of several step events in order, up to the first finding: the
        same running state and finding as one `update` a step, without the per-event dispatch
        (the batch entry point `DetectorSubscriber.on_steps` uses). Every event must be a step
        event. Given a `StepBlock`, the steps that cannot fire are taken in bulk (see
        `_observe_block`). Returns (the index of the event the rule held on, the Finding), or
        None."""
        if self.fired:
            return None
        start, count = 0, len(events)
        while self.initial_loss is None and start < count:  # until a finite step loss
            finding = self.update(events[start])
            start += 1
            if finding is not None:
                return start - 1, finding
        if start == count:
            return None
        self._seen_step = True
        if "step" not in self.watches:
            return None
        observe = self._observe
        if isinstance(events, StepBlock):
            hit = self._observe_block(events, start)
            if hit is not None:
                self.fired = True
            return hit
        for index in range(start, count):
            finding = observe(events[index])
            if finding is not None:
                self.fired = True
                return index, finding
        return None

    def _observe_block(self, block: StepBlock, start: int) -> tuple[int, Finding] | None:
        """`_observe` on each of a block's steps from `start` on, in order, up to the first
        finding: (its index, the Finding), or None. A detector may override this with a bulk
        path that reads the block's columns (no event dicts) for the steps that cannot fire
        and calls `_observe` on the others (`block[index]`): the same running state and
        finding. The default skips, with `step_fields`, the steps that carry none of them and
        a finite float loss."""
        observe, losses = self._observe, block.losses
        fields = self.step_fields
        if fields is None:  # every step: all as dicts, built once
            events = block.events
            for index in range(start, len(losses)):
                finding = observe(events[index])
                if finding is not None:
                    return index, finding
            return None
        for index in block.marked(start, fields):  # the others are quiet (`step_fields`)
            finding = observe(block[index])
            if finding is not None:
                return index, finding
        return None

    def metric_of(self, event: Mapping[str, Any], split: str) -> float | None:
        """The goal metric in an epoch event's `split` ("val" or "train") when it is a finite
        number, else None (no metric known, no such split, a missing or non-finite value)."""
        scores, metric = event.get(split), self.context.metric
        return finite(scores.get(metric)) if metric and isinstance(scores, Mapping) else None

    def reference_loss(self) -> tuple[float | None, str]:
        """The loss level "no learning" sits at, and where it came from: the trivial baseline's
        val loss when the context has one ("baseline"), else the first finite step loss, or
        the first epoch's train loss in a stream without steps ("initial")."""
        base = self.context.baseline_loss
        if base is not None:
            return base, "baseline"
        return self.initial_loss, "initial"

    def start_loss(self) -> float | None:
        """The loss the run started from: the larger of the first step's loss and the trivial
        baseline's."""
        first, base = self.initial_loss, self.context.baseline_loss
        if first is None or base is None:
            return base if first is None else first
        return first if first > base else base

    def gradient_scale(self) -> float:
        """The scale of the gradients the task's loss makes, for bars on gradient norms.
        Regression (MSE): the square root of the starting loss - targets in raw units of scale
        c give losses of scale c**2 and gradients of scale c. Classification (cross-entropy):
        1 - the gradient with respect to the logits, p - onehot, has a norm below sqrt(2)
        whatever the data."""
        start = self.start_loss()
        if self.context.task != "regression" or start is None:
            return 1.0
        return start**0.5

    def state_dict(self) -> dict[str, Any]:
        """The running state as strict JSON (round-trips through `load_state_dict`)."""
        return {
            "version": STATE_VERSION,
            "id": self.id,
            "fired": self.fired,
            "initial_loss": self.initial_loss,
            "seen_step": self._seen_step,
            "context": self.context.to_dict(),
            "thresholds": dict(self.thresholds),
            "state": {name: encode_json(getattr(self, name)) for name in self._state_fields},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what `state_dict` returned. The thresholds stay those given to __init__."""
        if not isinstance(state, Mapping) or state.get("id") != self.id:
            found = state.get("id") if isinstance(state, Mapping) else type(state).__name__
            raise StateCorruptError(f"detector state for {self.id!r} expected but got {found!r}")
        if state.get("version") != STATE_VERSION:
            raise StateCorruptError(
                f"detector state of {self.id!r} has version {state.get('version')!r}; "
                f"this mlt reads version {STATE_VERSION}"
            )
        saved = state.get("state") or {}
        missing = [name for name in self._state_fields
                   if name not in saved and name not in self._optional_state]
        if missing:
            raise StateCorruptError(f"detector state of {self.id!r} lacks {', '.join(missing)}")
        self._setup()  # fresh containers (deques keep their maxlen), then fill them
        for name in self._state_fields:
            if name not in saved:
                continue  # an optional field newer than the state: keep its fresh value
            value = decode_json(saved[name])
            current = getattr(self, name)
            if isinstance(current, deque):
                value = deque(value, maxlen=current.maxlen)
            setattr(self, name, value)
        self.fired = bool(state.get("fired"))
        self.initial_loss = finite(decode_json(state.get("initial_loss")))
        self._seen_step = bool(state.get("seen_step"))
        self.context = DetectorContext.from_dict(state.get("context"))
        self._after_load()

    def _after_load(self) -> None:
        """Rebuild derived structures (caches, sorted copies) after `load_state_dict`."""

    # -- helpers for subclasses ----------------------------------------------------------------

    def finding(
        self, onset_epoch: int | None, onset_step: int | None, message: str, **evidence: Any
    ) -> Finding:
        return Finding(
            id=self.id,
            severity=self.severity,
            onset={"epoch": onset_epoch, "step": onset_step},
            evidence=evidence,
            message=message,
        )

    def collapse_finding(self, event: Mapping[str, Any], message: str,
                         factor_name: str) -> Finding | None:
        """The `collapse` rule's finding (`judge_collapse` over `self.collapse_watch`, with the
        thresholds `collapse`, `collapse_epochs`, `collapse_progress` and `factor_name`), or
        None. `message` is a `str.format` template over step, grad, ratio (grad / early),
        early, loss (the streak's last), share (loss / ref), source, ref, epochs and best (the
        lowest end-of-epoch train loss before the blow-up, formatted, "-" if none)."""
        ref, source = self.reference_loss()
        t = self.thresholds
        watch = self.collapse_watch  # type: ignore[attr-defined]
        streak = judge_collapse(watch, event, ref, t["collapse"], int(t["collapse_epochs"]),
                                t["collapse_progress"], t.get("collapse_lost"))
        if streak is None or ref is None:
            return None
        epoch, step, grad, early = watch["blowup"]
        loss = streak[-1][2]
        return self.finding(
            epoch, step,
            message.format(step=step, grad=grad, ratio=grad / early, early=early, loss=loss,
                           share=loss / ref, source=source, ref=ref, epochs=len(streak),
                           best="-" if watch.get("best") is None else f"{watch['best']:.4g}"),
            rule="collapse", peak_grad_norm=grad, early_grad_norm=early,
            **{factor_name: t[factor_name]}, train_losses=[row[2] for row in streak],
            epochs=[row[0] for row in streak], reference_loss=ref, reference=source,
            collapse=t["collapse"], collapse_epochs=t["collapse_epochs"],
            collapse_progress=t["collapse_progress"], collapse_lost=t.get("collapse_lost"),
            best_before=watch.get("best"),
        )

    @classmethod
    def validate_thresholds(cls, given: Mapping[str, Any]) -> dict[str, float]:
        """Defaults overlaid with `given`; unknown names and bad values raise ConfigError."""
        merged: dict[str, float] = dict(cls.defaults)
        for name, value in given.items():
            where = f"diagnose.thresholds.{cls.id}.{name}"
            if name not in cls.defaults:
                guess = difflib.get_close_matches(str(name), list(cls.defaults), n=1, cutoff=0.5)
                tip = f"; did you mean '{guess[0]}'?" if guess else ""
                raise ConfigError(
                    f"{where}: unknown threshold{tip} (known: {', '.join(cls.defaults)})",
                    hint=f"`mlt explain {cls.id}` lists the thresholds and their defaults",
                )
            kind = cls.kinds.get(name, "positive")
            check, wording = _KIND_RULES[kind]
            number = finite(value)
            if number is None or not check(number):
                raise ConfigError(
                    f"{where} must be {wording} but got {value!r}",
                    hint=f"the default is {cls.defaults[name]!r} (see diagnostics/{cls.id}.md)",
                )
            merged[name] = int(number) if kind == "count" else number
        for name, value in list(merged.items()):
            if cls.kinds.get(name) == "count":
                merged[name] = int(value)
        return merged



# -- a blow-up, then a collapse (shared by exploding_gradients and loss_oscillation) ---------


def new_collapse_watch() -> dict[str, Any]:
    """The running state of `watch_blowup` / `judge_collapse` (JSON-safe): the first finite
    gradient norms that were no blow-up (`early`, at most `history`; sorted once full), the
    first blow-up step ([epoch, step, grad_norm, reference] or None), this epoch's steps since
    it and how many of them had a gradient norm back below the blow-up's 1/factor (`seen`,
    `quiet`), and the latest epochs' end-of-epoch train losses ([epoch, step, loss], the
    current streak) and the best end-of-epoch train loss before the blow-up (`best`)."""
    return {"early": [], "blowup": None, "seen": 0, "quiet": 0, "streak": [], "best": None}


def watch_blowup(watch: dict[str, Any], grad: float, epoch: int | None, step: int | None,
                 factor: float, history: int) -> None:
    """Record the first step whose gradient norm is above `factor` x the run's early gradient
    norm: the median of its first `history` steps, or the first step's while there are fewer
    (an lr far too high blows up within the first few steps). Blow-ups stay out of the early
    norms. After it, count the steps whose norm is back below the blow-up's 1/`factor`."""
    blowup = watch["blowup"]
    if blowup is not None:
        watch["seen"] += 1
        watch["quiet"] += grad <= blowup[2] / factor
        return
    early = watch["early"]
    if early:
        ref = early[len(early) // 2] if len(early) >= history else early[0]
        if ref > 0 and grad > factor * ref:
            watch["blowup"] = [epoch, step, grad, ref]
            return
    if len(early) < history:
        early.append(grad)
        if len(early) == history:
            early.sort()  # from here on only its median is read


def judge_collapse(watch: dict[str, Any], event: Mapping[str, Any], ref: float | None,
                   level: float, epochs: int, progress: float,
                   lost: float | None = None) -> list[list[Any]] | None:
    """After a blow-up, `epochs` consecutive epochs in which the end-of-epoch train loss
    (`fitted_loss`) is either at or above `level` x the reference (trivial) loss with most
    steps' gradient norms back below the blow-up's 1/factor (the model was thrown back to
    predicting a constant - dead units, saturated outputs - and gets no signal to leave it),
    or (`lost`) has given back at least `lost` of the progress made before the blow-up
    (at or above best + lost x (reference - best), `best` the lowest end-of-epoch train loss
    before it: thrown out of the basin it had found, whatever the gradients do since), the
    loss improving by less than `progress` (relative) over them. Returns the streak's rows
    once it holds."""
    seen, quiet = watch["seen"], watch["quiet"]
    watch["seen"] = watch["quiet"] = 0
    loss = fitted_loss(event)
    if loss is not None and watch["blowup"] is None:
        best = watch.get("best")
        watch["best"] = loss if best is None else min(best, loss)
    if watch["blowup"] is None or ref is None or loss is None:
        return None
    streak = watch["streak"]
    best = watch.get("best")
    at_trivial = loss >= level * ref and 2 * quiet >= seen > 0
    gave_back = (lost is not None and best is not None and ref > best
                 and loss >= best + lost * (ref - best))
    if not (at_trivial or gave_back):
        streak.clear()
        return None
    streak.append([event.get("epoch"), event.get("step"), loss])
    del streak[:-epochs]
    if len(streak) < epochs:
        return None
    first, best = streak[0][2], min(row[2] for row in streak)
    if first > 0 and (first - best) / first >= progress:
        return None  # still falling: a model learning from far above (a raw-unit start)
    return [list(row) for row in streak]
