"""The metric stream: `runs/<id>/metrics.jsonl`, one JSON object a line, flushed as it goes.

This module is public: people with their own training loop use `MetricWriter` to write a stream
that `mlt diagnose --metrics FILE` understands. The engine writes through the same class.

Events (fields may be added; readers ignore what they do not know):

    {"type": "start", "run_id": str, "task": "classification"|"regression",
     "metric": str, "greater_is_better": bool, "steps_per_epoch": int,
     "baseline": {"<metric>": float, "loss": float} | absent,   # trivial baseline on val
     "goal_target": float | absent,           # the metric's value that counts as done
     "n_val": int | absent,                   # val rows
     "target_scale": {"mean": float, "std": float} | absent,  # regression losses standardised
     "n_train_eval": int | absent,            # training rows `train` is measured on
     "grad_scale": float | absent,            # fp16: the GradScaler's scale at the start
                                              #   (nan_loss bears its skipped overflows)
     "time": float}
    {"type": "step", "epoch": int, "step": int, "loss": float, "lr": float,
     "grad_norm": float | absent,             # the global norm BEFORE clipping, where measured
     "layers": {"<param name>": {"grad_norm": float, "zero_frac": float}}  # every N steps only
     "time": float}
    {"type": "epoch", "epoch": int, "step": int,
     "train_loss": float | absent,            # mean of the epoch's step losses (train mode;
                                              #   absent: a callback's epoch with no step loss)
     "val_loss": float | absent,              # absent: a callback's epoch not validated, or
     "val": {"<metric>": float, ...},         #   whose val loss was not logged (val: {})
     "train": {"<metric>": float, ...} | absent,   # every metric of the task on training rows,
     "train_eval_loss": float | absent,       #   and their loss, in eval mode at the epoch's end
     "lr": float, "wall_time": float (seconds for the epoch), "peak_mem_mb": float, "time": float}
    {"type": "end", "reason": str, "epoch": int, "step": int,
     "stop_step": int | absent,               # the step a detector stopped training for
     "time": float}

`grad_norm` is on every step of mlt's loop and of the HF callback (the Trainer computes it).
The Lightning callback measures it on every step while that costs at most 0.1 % of the step
(a GPU, a long step) and otherwise on a stride (every Nth step, N adapted; always the first
10 steps and every step with `layers`): a step without the field was not measured, and
readers judge the norm on the steps that have it (the detectors count reports, not steps).
`loss` is on every step.

`train` and `train_eval_loss` are measured like `val` and `val_loss` (same model, same moment,
eval mode) on a fixed subset of the training rows (mlt's engine, `loop.train_subset`: as many
rows as val, at most a 32nd of train but at least 2048 or all of train; item data: no more than
val); a stream without them is judged on
`train_loss` alone.

Regression losses (`loss`, `train_loss`, `val_loss`, `train_eval_loss` and the baseline's
`loss`) are MSE on the targets the model learns: with `target_scale` in the start event (mlt's
loop; `data.standardize_target`, the default) on (y - mean) / std, i.e. the raw-unit MSE
divided by std**2; without it on raw targets. Metrics (`val`, `train`, the baseline's
`<metric>`) are always in the target's units.

Durability: a crash loses at most the steps of the epoch in progress. Every epoch event is
written after all the steps before it; mlt's loop and the callbacks of
`mltrainer.integrations` write the step lines in blocks of steps (`MetricWriter.write_lines`,
the lines formatted by `step_lines`, `block_lines`): a process killed outright loses at most
the block in progress (mlt's loop: at most 32 steps and 0.25 s plus one step,
`engine.loop.STEP_BLOCK`), a Python exception or a Ctrl-C none.

Readers refuse a stream whose known field has another type (a loss as the string "0.5", `val`
not an object of numbers: `BadInputError` naming the line and field); a field absent or null is
unknown and skipped, and whole-number floats are taken as counts.

`epoch` counts from 1 (the first epoch is 1); `step` counts optimisation steps from 1 over the
whole run. Non-finite floats are written as the strings "nan", "inf", "-inf" so the file stays
strict JSON, and read back as floats.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from mltrainer.errors import BadInputError
from mltrainer.numbers import decode_json, encode_json

EVENT_TYPES = ("start", "step", "epoch", "end")
# Step lines are written (and judged) in blocks: at most this many steps, and for at most
# this long (wall time), wait. The engine's loop (`engine.loop.STEP_BLOCK`) and the callbacks
# (`integrations.MAX_BLOCK`) share these bounds; why these values: `integrations._core`.
BLOCK_STEPS = 32
BLOCK_DELAY_S = 0.25
# one encoder for every line (json.dumps with options builds a new one per call: twice the cost)
_STRICT = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
_SPELLED = json.JSONEncoder(separators=(",", ":"))
# the line of a step event with nothing but these keys, in this order (mlt's loop and the
# callbacks write one a step), formatted as the encoder would but at half its cost
_PLAIN_STEPS = {
    keys: "{" + ",".join(f'"{k}":%r' if k != "type" else '"type":"step"' for k in keys) + "}"
    for keys in (("type", "epoch", "step", "loss", "lr", "time"),
                 ("type", "epoch", "step", "loss", "lr", "grad_norm", "time"))}
_STEP_LINE = _PLAIN_STEPS[("type", "epoch", "step", "loss", "lr", "time")]
_NORM_STEP_LINE = _PLAIN_STEPS[("type", "epoch", "step", "loss", "lr", "grad_norm", "time")]


def _plain_step_line(event: dict[str, Any]) -> str | None:
    """The JSON line `_STRICT.encode(event)` gives, for a step event of ints and finite floats
    under `_PLAIN_STEPS`' keys; None for any other event (then the encoder writes it)."""
    template = _PLAIN_STEPS.get(tuple(event))
    if template is None:
        return None
    values = tuple(event.values())[1:]
    if type(values[0]) is not int or type(values[1]) is not int:  # not a bool
        return None
    for value in values[2:]:
        if type(value) is not float or value - value != 0.0:  # a finite float
            return None
    return template % values


def step_line(epoch: Any, step: Any, loss: Any, lr: Any, grad_norm: Any, at: Any) -> str | None:
    """`_plain_step_line` of the event {"type": "step", "epoch", "step", "loss", "lr",
    ["grad_norm" when not None,] "time": at} from its values, without building the dict
    (mltrainer.integrations formats a block of steps so: `MetricWriter.write_lines`); None
    when a value is not a plain int or finite float (then the encoder must write the event)."""
    if type(epoch) is not int or type(step) is not int:
        return None
    if grad_norm is None:
        if (type(loss) is float and type(lr) is float and type(at) is float
                and loss - loss + lr - lr + at - at == 0.0):  # all finite (inf - inf is nan)
            return _STEP_LINE % (epoch, step, loss, lr, at)
        return None
    if (type(loss) is float and type(lr) is float and type(grad_norm) is float
            and type(at) is float and loss - loss + lr - lr + grad_norm - grad_norm + at - at
            == 0.0):
        return _NORM_STEP_LINE % (epoch, step, loss, lr, grad_norm, at)
    return None


def step_lines(epochs: list[Any], steps: list[Any], losses: list[Any], lrs: list[Any],
               grad_norms: list[Any], times: list[Any]) -> list[str | None]:
    """`step_line` of each step of a block, from its columns (`grad_norms` None where a step
    has none): the same lines, the common block (int epochs and steps, finite float losses,
    lrs and times) checked once for all and formatted in one pass."""
    try:
        plain = (set(map(type, epochs)) | set(map(type, steps)) == {int}
                 and set(map(type, losses)) | set(map(type, lrs)) | set(map(type, times))
                 == {float} and math.isfinite(sum(losses) + sum(lrs) + sum(times)))
    except TypeError:
        plain = False
    if not plain:
        return [step_line(*row) for row in zip(epochs, steps, losses, lrs, grad_norms, times,
                                               strict=True)]
    if grad_norms.count(None) == len(grad_norms):
        return [_STEP_LINE % row for row in zip(epochs, steps, losses, lrs, times, strict=True)]
    try:  # a norm on every step (mlt's loop, HF): the same check, once for all
        normed = (set(map(type, grad_norms)) == {float} and math.isfinite(sum(grad_norms)))
    except TypeError:
        normed = False
    if normed:
        return [_NORM_STEP_LINE % row for row in zip(epochs, steps, losses, lrs, grad_norms,
                                                      times, strict=True)]
    return [_STEP_LINE % (e, s, loss, lr, at) if norm is None else step_line(
        e, s, loss, lr, norm, at) for e, s, loss, lr, norm, at in zip(
            epochs, steps, losses, lrs, grad_norms, times, strict=True)]


def block_lines(block: Any) -> list[str]:
    """The lines of a block of step events (a `mltrainer.detectors.StepBlock`: its columns,
    and its events as dicts by index), each the same as `line_of` of its event: `step_lines`
    for the plain steps, the encoder for the others (a `layers` table, a non-finite or odd
    value). mlt's loop writes its steps so (`MetricWriter.write_lines`)."""
    lines = step_lines(block.epochs, block.steps, block.losses, block.lrs, block.grad_norms,
                       block.times)
    if block.layers.count(None) != len(block.layers):
        lines = [None if table is not None else line
                 for line, table in zip(lines, block.layers, strict=True)]
    if None in lines:
        return [line_of(block[i]) if line is None else line for i, line in enumerate(lines)]
    return lines  # type: ignore[return-value]


def _plain(value: Any, field: str = "") -> Any:
    """`value` with one-element tensors and numpy numbers as Python numbers (`.item()`; a
    tensor with a graph is read without it), in tables too; anything else JSON cannot hold is
    a TypeError naming the field."""
    if isinstance(value, dict):
        return {k: _plain(v, f"{field}[{k!r}]" if field else str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, field) for v in value]
    if value is None or isinstance(value, (str, int, float)):
        return value
    if hasattr(value, "numel"):  # a tensor
        if value.numel() == 1:
            return value.item()
        raise TypeError(f"the event's {field or 'value'} must be a number but is a tensor of "
                        f"{value.numel()} elements")
    if callable(getattr(value, "item", None)) and getattr(value, "size", None) == 1:  # numpy
        return value.item()
    raise TypeError(f"the event's {field or 'value'} must be a number (or a one-element tensor "
                    f"or numpy number) but is of type {type(value).__name__}")


def line_of(event: dict[str, Any]) -> str:
    """The JSON line of one event (with its "time"): strict JSON, non-finite floats spelled."""
    line = _plain_step_line(event) if event.get("type") == "step" else None
    if line is not None:
        return line
    try:  # the common case, every float finite: strict JSON as it is, without a copy
        return _STRICT.encode(event)
    except (ValueError, TypeError):  # a non-finite float or a deque: encode_json
        return _SPELLED.encode(encode_json(event))


class MetricWriter:
    """Append events to a metrics.jsonl file, one line each, flushed after every write.

    >>> with MetricWriter("metrics.jsonl", task="classification", metric="accuracy") as w:
    ...     w.step(epoch=1, step=1, loss=0.7, lr=1e-3, grad_norm=1.2)
    ...     w.epoch(epoch=1, step=10, train_loss=0.6, val_loss=0.65, val={"accuracy": 0.8},
    ...             lr=1e-3)

    Values may be Python numbers, one-element tensors (read with `.item()`, graph or not) or
    numpy numbers; anything else JSON cannot hold is a TypeError naming the field, with
    nothing written. `fsync_every_epoch` makes each epoch event durable on disk (a crash loses
    at most the steps of the epoch in progress) without paying an fsync per step.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        task: str | None = None,
        metric: str | None = None,
        greater_is_better: bool | None = None,
        run_id: str | None = None,
        fsync_every_epoch: bool = True,
        write_start: bool = True,
        **start_fields: Any,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        self._fsync = fsync_every_epoch
        if write_start:
            if greater_is_better is None and metric is not None:
                greater_is_better = metric not in ("rmse", "mae")
            self.write(
                {
                    "type": "start",
                    "run_id": run_id,
                    "task": task,
                    "metric": metric,
                    "greater_is_better": greater_is_better,
                    **start_fields,
                }
            )

    def write(self, event: dict[str, Any]) -> None:
        self.write_many([event])

    def write_many(self, events: list[dict[str, Any]]) -> None:
        """Several events in order, their lines in one write and one flush (a block of steps
        handled together; see mltrainer.integrations). The same lines as one `write` each."""
        lines = []
        durable = False
        for event in events:
            kind = event.get("type")
            if kind not in EVENT_TYPES:
                raise ValueError(f"event type must be one of {EVENT_TYPES} but got {kind!r}")
            if "time" not in event:
                event = {**event, "time": time.time()}
            try:
                lines.append(line_of(event))
            except TypeError:  # a tensor or numpy number, as a loop has them: written as numbers
                lines.append(line_of(_plain(event)))
            durable = durable or kind in ("epoch", "end")
        if not lines:
            return
        lines.append("")
        self._fh.write("\n".join(lines))
        self._fh.flush()
        if self._fsync and durable:
            os.fsync(self._fh.fileno())

    def write_lines(self, lines: list[str]) -> None:
        """Lines already formatted (`step_line`, or the encoder's through `line_of`), in one
        write and one flush: for mltrainer.integrations, which formats a block of step events
        from their values. No fsync (step lines only)."""
        if lines:
            lines.append("")
            self._fh.write("\n".join(lines))
            self._fh.flush()

    def step(self, *, epoch: int, step: int, loss: float, **fields: Any) -> None:
        self.write({"type": "step", "epoch": epoch, "step": step, "loss": loss, **fields})

    def epoch(self, *, epoch: int, step: int, **fields: Any) -> None:
        self.write({"type": "epoch", "epoch": epoch, "step": step, **fields})

    def end(self, *, reason: str, epoch: int, step: int, **fields: Any) -> None:
        self.write({"type": "end", "reason": reason, "epoch": epoch, "step": step, **fields})

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> MetricWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_stream(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All events of a stream, in order. A torn last line (a crash mid-write) is skipped;
    any other malformed line is bad input naming the file and line."""
    return list(iter_stream(path))


def iter_stream(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise BadInputError(
            f"{path}: no such metrics file",
            hint="pass the metrics.jsonl a run wrote (runs/<id>/metrics.jsonl) or one "
            "written with mltrainer.stream.MetricWriter",
        )
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                return  # torn final line from a crash: everything before it stands
            raise BadInputError(
                f"{path}: line {number} is not JSON",
                hint="each line must be one JSON object (see mltrainer.stream for the format)",
            ) from None
        if not isinstance(event, dict) or event.get("type") not in EVENT_TYPES:
            raise BadInputError(
                f"{path}: line {number} is not an event (needs \"type\" one of "
                f"{', '.join(EVENT_TYPES)})",
                hint="write streams with mltrainer.stream.MetricWriter",
            )
        event = decode_json(event)
        problem = _field_problem(event)
        if problem is not None:
            raise BadInputError(
                f"{path}: line {number}: {problem}",
                hint="write each field as the format in mltrainer.stream says (numbers as JSON "
                "numbers, null or absent where unknown, \"nan\"/\"inf\" for non-finite), "
                "e.g. with mltrainer.stream.MetricWriter and float(loss)",
            )
        yield event


# The fields the readers (the detectors, the gates, the reports) rely on, by event type:
# numbers, counts (whole numbers) and tables ({name: number}). A field absent or null is
# unknown (readers skip it); one of another type made the detectors skip it without a word
# ("0.5" as a loss: no finding, as if the run were healthy), so the stream is refused instead.
_NUMBERS = {
    "start": ("goal_target", "grad_scale"),
    "step": ("loss", "lr", "grad_norm", "time"),
    "epoch": ("train_loss", "val_loss", "train_eval_loss", "lr", "wall_time", "peak_mem_mb",
              "time"),
    "end": ("time",),
}
_COUNTS = {
    "start": ("steps_per_epoch", "epochs", "n_val", "n_train_eval"),
    "step": ("epoch", "step"),
    "epoch": ("epoch", "step", "best_epoch"),
    "end": ("epoch", "step", "stop_step"),
}
_TABLES = {"epoch": ("val", "train")}  # (the start event's baseline also names its predictor)
_TASKS = ("classification", "regression")


def _field_problem(event: dict[str, Any]) -> str | None:
    """What is wrong with a known field of `event` (decoded: non-finite floats are floats),
    or None. Counts given as whole floats (3.0) are taken as ints."""
    kind = event["type"]
    for name in _NUMBERS[kind]:
        value = event.get(name)
        if value is not None and (type(value) not in (int, float)):
            return f"{kind} event's {name!r} must be a number but is {value!r}"
    for name in _COUNTS[kind]:
        value = event.get(name)
        if value is None or type(value) is int:
            continue
        if type(value) is float and value.is_integer():
            event[name] = int(value)
            continue
        return f"{kind} event's {name!r} must be a whole number but is {value!r}"
    for name in _TABLES.get(kind, ()):
        table = event.get(name)
        if table is None:
            continue
        if not isinstance(table, dict):
            return (f"{kind} event's {name!r} must be an object of name: number but is "
                    f"{table!r}")
        for key, value in table.items():
            if value is not None and type(value) not in (int, float):
                return f"{kind} event's {name}[{key!r}] must be a number but is {value!r}"
    if kind == "step" and event.get("layers") is not None:
        layers = event["layers"]
        if not isinstance(layers, dict) or not all(
                isinstance(v, dict) and all(x is None or type(x) in (int, float)
                                            for x in v.values()) for v in layers.values()):
            return ("step event's 'layers' must be an object of parameter name: "
                    "{\"grad_norm\": number, \"zero_frac\": number}")
    if kind == "start":
        task, metric = event.get("task"), event.get("metric")
        if task is not None and task not in _TASKS:
            return f"start event's 'task' must be classification or regression but is {task!r}"
        if metric is not None and not isinstance(metric, str):
            return f"start event's 'metric' must be a metric's name but is {metric!r}"
    return None
