"""The search space of `mlt optimize`: mlt.yaml fields as Optuna parameters, each traced to why.

How the space is built (every parameter records its `sources`: finding ids, "user space" or
"default space", so each change in `mlt.optimized.yaml` traces back to what motivated it):

- `kind: search` recommendations of every finding: their union per field. Numeric ranges become
  [min low, max high], log-scaled only when every range is; categorical choices are united.
- `kind: set` recommendations become a choice between the baseline's value and the recommended
  one, never a forced change: a playbook's advice is generic, so the search (and then the seeds
  comparison) has to show that it helps on this data. On a field that is also searched, the
  recommended value widens the range (or joins the choices) instead.
- `optimize.space` entries the user wrote replace whatever the findings asked for on that field.
- Nothing to search (no finding, or every recommendation is already the baseline's value): a
  small default space around the baseline (learning rate, weight decay, model width).

Only `model.*`, `training.*` and `data.transforms.augment.*` fields are searched: the data
split, the seed, the goal and the evaluation inputs are what every trial is judged by, so a
trial may not change them; train-only augmentation changes none of them (the engine builds
each run's train pipeline from its config: `ItemBundle.for_config`). A recommendation may name
the `modality` it is for (image, text, tensor, table): a playbook's augmentation advice is
skipped, with a note, on data it does not apply to.
"""

from __future__ import annotations

import copy
import difflib
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from mltrainer.config import MltConfig, config_field, parse_config
from mltrainer.errors import ConfigError
from mltrainer.numbers import finite

SEARCHABLE = ("model.", "training.", "data.transforms.augment.")
SEARCHABLE_TEXT = "model.*, training.* and data.transforms.augment.*"
USER = "user space"
DEFAULT = "default space"
WIDTH_SCALES = (0.5, 1.0, 2.0)  # multiplies every hidden width (default space only)
TYPES = ("float", "int", "categorical")
_SPEC_KEYS = ("type", "low", "high", "log", "choices", "reason")
_SEVERITY = {"critical": 0, "warning": 1, "info": 2}


@dataclass
class Param:
    """One searched field. `choices` hold config values (lists included); Optuna sees them
    encoded (`optuna_choices`), since its categorical values must be plain scalars."""

    name: str  # the Optuna parameter name: the config path, or model.width_scale
    path: str  # the mlt.yaml field it sets
    type: str  # float | int | categorical
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[Any] | None = None
    scale: bool = False  # the value multiplies each entry of the baseline's list (model width)
    sources: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    @property
    def optuna_choices(self) -> list[Any]:
        return [_encode(c) for c in self.choices or []]

    def suggest(self, trial: Any, base_raw: dict[str, Any]) -> Any:
        """Ask the Optuna trial for this parameter; return the config value it stands for."""
        if self.type == "float":
            raw = trial.suggest_float(self.name, float(self.low), float(self.high), log=self.log)
        elif self.type == "int":
            raw = trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        else:
            raw = trial.suggest_categorical(self.name, self.optuna_choices)
        return self.value_of(raw, base_raw)

    def value_of(self, raw: Any, base_raw: dict[str, Any]) -> Any:
        """The config value of an Optuna parameter value (decoded, scaled)."""
        value = raw
        if self.type == "categorical":
            encoded = self.optuna_choices
            value = self.choices[encoded.index(raw)] if raw in encoded else raw  # type: ignore[index]
        if self.scale:
            return [max(1, round(w * float(value))) for w in get_path(base_raw, self.path)]
        return value

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.type == "categorical":
            out.pop("low"), out.pop("high"), out.pop("log")
        else:
            out.pop("choices")
        return out


@dataclass
class SearchSpace:
    params: list[Param]
    origin: str  # "findings" | "default"
    notes: list[str] = field(default_factory=list)

    def param_for(self, path: str) -> Param | None:
        return next((p for p in self.params if p.path == path), None)

    def to_dict(self) -> dict[str, Any]:
        return {"origin": self.origin, "params": [p.to_dict() for p in self.params],
                "notes": list(self.notes)}


# -- dotted paths over the config dict ---------------------------------------------------------


def get_path(raw: dict[str, Any], path: str) -> Any:
    """The value at a dotted path; None where the config leaves it out (a `model.params` key
    the baseline does not set)."""
    cur: Any = raw
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def with_values(base_raw: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of the config dict with `values` set at their dotted paths."""
    raw = copy.deepcopy(base_raw)
    for path, value in values.items():
        *parents, leaf = path.split(".")
        cur = raw
        for part in parents:
            cur = cur.setdefault(part, {})
        cur[leaf] = copy.deepcopy(value)
    return raw


def trial_config(base_raw: dict[str, Any], values: dict[str, Any], source: str) -> MltConfig:
    """The baseline config with `values` applied, validated like mlt.yaml (ConfigError if not)."""
    return parse_config(with_values(base_raw, values), source=source)


def config_paths() -> list[str]:
    """Every leaf field path of mlt.yaml (for "did you mean" hints)."""
    out: list[str] = []

    def walk(model: Any, prefix: str) -> None:
        for name, info in model.model_fields.items():
            sub = info.annotation
            if hasattr(sub, "model_fields"):
                walk(sub, f"{prefix}{name}.")
            else:
                out.append(f"{prefix}{name}")

    walk(MltConfig, "")
    return out


# -- building the space ------------------------------------------------------------------------


@dataclass
class _Wanted:
    """What the findings asked for on one field, before it becomes a Param."""

    path: str
    ranges: list[dict[str, Any]] = field(default_factory=list)  # `kind: search` recs
    values: list[Any] = field(default_factory=list)  # resolved `kind: set` values
    sources: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)


def build_space(cfg: MltConfig, findings: list[dict[str, Any]],
                user_space: dict[str, dict[str, Any]], *, source: str = "mlt.yaml",
                modality: str = "table") -> SearchSpace:
    """The space to search: see the module docstring. Bad `optimize.space` entries raise
    ConfigError naming `optimize.space.<path>` before anything runs. `modality`: the data's
    (the plan's DataSpec), for recommendations that name theirs."""
    base_raw = cfg.model_dump(mode="json")
    user_params = [user_param(path, spec, base_raw, source) for path, spec in user_space.items()]
    notes: list[str] = []
    wanted: dict[str, _Wanted] = {}
    ordered = sorted(findings, key=lambda f: _SEVERITY.get(f.get("severity", "info"), 3))
    for finding in ordered:
        for rec in finding.get("recommendations") or []:
            _collect(wanted, rec, finding["id"], base_raw, notes, modality)
    params = [p for w in wanted.values() if (p := _to_param(w, base_raw, notes)) is not None]
    origin = "findings"
    if not params:
        origin = "default"
        notes.append("no finding: searching the default space around the baseline"
                     if not findings else "the findings' recommendations leave nothing to "
                     "search (each is already the baseline's value): searching the default "
                     "space around the baseline")
        params = default_params(cfg)
    for up in user_params:  # the user's range replaces the findings' on the same field
        earlier = [s for p in params if p.path == up.path for s in p.sources]
        up.sources += [s for s in earlier if s not in up.sources]
        params = [p for p in params if p.path != up.path] + [up]
    return SearchSpace(params, origin, notes)


def _collect(wanted: dict[str, _Wanted], rec: dict[str, Any], finding: str,
             base_raw: dict[str, Any], notes: list[str], modality: str) -> None:
    path = str(rec.get("path", ""))
    if rec.get("modality") not in (None, modality):
        notes.append(f"{finding}: '{path}' is for {rec['modality']} data, not {modality}: "
                     "skipped")
        return
    try:
        config_field(path)
    except KeyError:
        notes.append(f"{finding}: recommendation on unknown field '{path}' skipped")
        return
    if not path.startswith(SEARCHABLE):
        notes.append(f"{finding}: '{path}' is not searched (only {SEARCHABLE_TEXT})")
        return
    entry = wanted.setdefault(path, _Wanted(path))
    if rec.get("kind") == "search":
        entry.ranges.append(rec)
    else:
        base = get_path(base_raw, path)
        value = _resolve_set(rec, base)
        if value is None:
            notes.append(f"{finding}: cannot {rec.get('op', 'set')} '{path}' "
                         f"(baseline {base!r}) by {rec.get('value')!r}: skipped")
            return
        if value == base:
            notes.append(f"{finding}: '{path}' = {value!r} is already the baseline's value")
            return
        entry.values.append(value)
    if finding not in entry.sources:
        entry.sources.append(finding)
    if rec.get("reason"):
        entry.reasons.append(f"{finding}: {rec['reason']}")


def _resolve_set(rec: dict[str, Any], base: Any) -> Any:
    value = rec.get("value")
    if rec.get("op", "set") != "multiply":
        return value
    if finite(base) is None or finite(value) is None:
        return None
    product = base * value
    return round(product) if isinstance(base, int) else float(product)


def _to_param(w: _Wanted, base_raw: dict[str, Any], notes: list[str]) -> Param | None:
    if not w.ranges and not w.values:
        return None
    common = {"name": w.path, "path": w.path, "sources": w.sources, "reasons": w.reasons}
    if not w.ranges:
        return Param(type="categorical", choices=_unique([get_path(base_raw, w.path), *w.values]),
                     **common)
    if any(r.get("type") == "categorical" for r in w.ranges):
        choices: list[Any] = []
        for r in w.ranges:
            choices += list(r.get("choices") or []) or [r.get("low"), r.get("high")]
        return Param(type="categorical", choices=_unique([*choices, *w.values]), **common)
    numeric = [v for v in w.values if finite(v) is not None]
    for v in w.values:
        if finite(v) is None:
            notes.append(f"'{w.path}': recommended value {v!r} does not fit its numeric range")
    low = min([float(r["low"]) for r in w.ranges] + numeric)
    high = max([float(r["high"]) for r in w.ranges] + numeric)
    is_int = all(r.get("type") == "int" for r in w.ranges)
    log = all(bool(r.get("log")) for r in w.ranges) and low > 0
    if is_int:
        return Param(type="int", low=math.floor(low), high=math.ceil(high), log=log, **common)
    return Param(type="float", low=low, high=high, log=log, **common)


def default_params(cfg: MltConfig) -> list[Param]:
    lr = cfg.training.lr
    params = [
        Param("training.lr", "training.lr", "float", lr / 10, lr * 10, True, sources=[DEFAULT],
              reasons=["a decade either side of the baseline's learning rate"]),
        Param("training.weight_decay", "training.weight_decay", "float", 1e-6, 1e-2, True,
              sources=[DEFAULT], reasons=["regularisation strength, from negligible to strong"]),
    ]
    if cfg.model.kind in ("mlp", "cnn") and cfg.model.hidden:
        params.append(Param("model.width_scale", "model.hidden", "categorical",
                            choices=list(WIDTH_SCALES), scale=True, sources=[DEFAULT],
                            reasons=["half, same or twice the baseline's hidden widths"]))
    return params


# -- the user's `optimize.space` ---------------------------------------------------------------


def check_user_space(cfg: MltConfig, source: str) -> None:
    """Every `optimize.space` entry, as `build_space` will read it (runner.CONFIG_CHECKS: at
    load time, so `mlt config validate` and every command refuse a bad range at once)."""
    if cfg.optimize.space:
        base_raw = cfg.model_dump(mode="json")
        for path, spec in cfg.optimize.space.items():
            user_param(path, spec, base_raw, source)


def user_param(path: str, spec: Any, base_raw: dict[str, Any], source: str = "mlt.yaml"
               ) -> Param:
    """One `optimize.space` entry, validated eagerly: ConfigError names the entry and the value."""
    where = f"{source}: field 'optimize.space.{path}'"
    hint = ("write '<model|training>.<field>' (or 'data.transforms.augment.<field>', or "
            "'model.params.<key>' for your own model or entrypoint): "
            "{type: float|int|categorical, low, high, log} "
            "or {type: categorical, choices: [...]} under optimize.space")
    try:
        config_field(path)
    except KeyError:
        guess = difflib.get_close_matches(path, config_paths(), n=1, cutoff=0.6)
        tip = f"; did you mean '{guess[0]}'?" if guess else ""
        raise ConfigError(f"{where}: no config field '{path}'{tip}", hint=hint) from None
    if not path.startswith(SEARCHABLE):
        raise ConfigError(f"{where}: only {SEARCHABLE_TEXT} fields can be searched (the "
                          "split, seed, goal and evaluation inputs are what every trial is "
                          "judged by)", hint=hint)
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected a mapping but got {spec!r}", hint=hint)
    unknown = sorted(set(spec) - set(_SPEC_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key '{unknown[0]}' (known: {', '.join(_SPEC_KEYS)})",
                          hint=hint)
    kind = spec.get("type")
    if kind not in TYPES:
        raise ConfigError(f"{where}: type must be float, int or categorical but got {kind!r}",
                          hint=hint)
    reasons = [f"{USER}: {spec['reason']}"] if spec.get("reason") else []
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}: a categorical needs a non-empty list of choices but "
                              f"got {choices!r}", hint=hint)
        param = Param(path, path, kind, choices=_unique(choices), sources=[USER], reasons=reasons)
        probes = [("choice", c) for c in param.choices or []]
    else:
        low, high, log = spec.get("low"), spec.get("high"), bool(spec.get("log", False))
        if finite(low) is None or finite(high) is None or not low < high:
            raise ConfigError(f"{where}: needs numbers low < high but got low={low!r}, "
                              f"high={high!r}", hint=hint)
        if log and low <= 0:
            raise ConfigError(f"{where}: a log range needs low > 0 but got {low!r}", hint=hint)
        if kind == "int" and (low != int(low) or high != int(high)):
            raise ConfigError(f"{where}: an int range needs whole numbers but got "
                              f"[{low!r}, {high!r}]", hint=hint)
        param = Param(path, path, kind, low, high, log, sources=[USER], reasons=reasons)
        probes = [("low", low), ("high", high)]
    for label, value in probes:  # each end must make a valid config, else every trial fails
        try:
            trial_config(base_raw, {path: value}, source)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {label} {value!r} is not a valid value: "
                              f"{exc.message.removeprefix(f'{source}: ')}", hint=hint) from None
    return param


# -- small helpers -----------------------------------------------------------------------------


def _encode(value: Any) -> Any:
    """Optuna's categorical choices must be None, bool, int, float or str: lists become JSON."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value)


def _unique(values: list[Any]) -> list[Any]:
    seen: list[Any] = []
    out = []
    for v in values:
        key = json.dumps(v, sort_keys=True, default=str)
        if key not in seen:
            seen.append(key)
            out.append(v)
    return out
