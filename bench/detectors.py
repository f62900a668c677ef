"""How well the online detectors find faults in real mlt training runs, on data they were
tuned on and on data they were not.

Eleven sets of labelled scenarios (healthy runs, and runs with a known fault for each of the
eight findings): `bench/scenarios.py`, the TUNING set (the rules' thresholds were chosen on it);
`bench/heldout.py` .. `bench/heldout9.py`, the OLD HELD-OUT sets (held out in issue 11's
first to ninth passes, read per case since: tuning material now); and `bench/heldout10.py`,
HELD-OUT v10 (written and committed before the tenth pass changed any rule, never tuned on:
data no earlier set read, skewed and heavy-tailed raw regression targets, small batches, warm
restarts, other model families, pathologies from config choices and injected faults).
Every scenario is trained by mlt's own `Trainer` on bundled or
generated data, with the detectors online exactly as `mlt train-baseline` runs them: a
`DetectorSubscriber` over `build_detectors(DetectorContext(task, metric, greater_is_better,
baseline=trivial_baseline))` with the default thresholds (the start event adds the goal and
the val size). Nothing in mltrainer is changed; faults that start mid-run reach the engine
through the bench-only hook in `scenarios.capture_parts`.

Per set (never pooled) and per finding it prints recall, precision, the detection latency after
the fault's onset and the false-positive rate on healthy runs, beside the targets; and the
detectors' share of the fit time (time inside `DetectorSubscriber.on_event` over the wall time
of `Trainer.fit()`).

    python bench/detectors.py [--set tuning|heldout|heldout2..heldout10|tuned|all]
                              [--quick]
                              [--jobs N] [--out DIR] [--repeats N] [--only REGEX]
                              [--summarize JSONL] [--rejudge JSONL] [--brief] [-v]
                              [--keep-runs]

Per-run results go to DIR/detectors.jsonl (default bench/out/, git-ignored). Run by hand, not
in CI: the full run (eleven sets, 2 seeds each: ~2040 runs) takes about an hour with --jobs 2
on a shared 2-core machine; --quick (one seed) about half that.

Counting:
  * A run's primary label is the finding its fault must produce; `allowed` findings may fire
    too (e.g. exploding_gradients before nan_loss). A finding that is neither, or that fires
    before the fault's onset, is a false positive; every finding on a healthy run is one.
  * recall(f)     = runs labelled f in which f fired at or after the onset / runs labelled f
  * precision(f)  = firings of f on runs labelled f (at or after onset) / all firings of f
                    that are not an allowed secondary
  * latency       = where the detector fired (the event it returned the finding on) minus the
                    fault's onset, in steps and in epochs (see scenarios.py for the onset).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))          # scenarios, bench_factories
sys.path.insert(1, str(BENCH.parent))  # mltrainer from the checkout

from heldout import build_heldout  # noqa: E402  (found through the sys.path line above)
from heldout2 import build_heldout2  # noqa: E402
from heldout3 import build_heldout3  # noqa: E402
from heldout4 import build_heldout4  # noqa: E402
from heldout5 import build_heldout5  # noqa: E402
from heldout6 import build_heldout6  # noqa: E402
from heldout7 import build_heldout7  # noqa: E402
from heldout8 import build_heldout8  # noqa: E402
from heldout9 import build_heldout9  # noqa: E402
from heldout10 import build_heldout10  # noqa: E402
from scenarios import HEALTHY, Scenario, build_scenarios, capture_parts  # noqa: E402

DEFAULT_REPEATS = 2
TARGETS = {"recall": 0.95, "healthy_fp": 0.05, "nan_latency_steps": 0, "latency_epochs": 3,
           "overhead": 0.02}


@dataclass
class Firing:
    id: str
    event: str  # the event type the finding came back on
    epoch: int | None
    step: int | None
    onset: dict[str, int | None]
    rule: str | None  # which of the detector's rules fired, when it has several
    message: str


@dataclass
class TimedDetectors:
    """A DetectorSubscriber, timed: the engine calls this, this calls the subscriber."""

    inner: Any
    seconds: float = 0.0
    calls: int = 0
    step_seconds: float = 0.0
    step_calls: int = 0
    firings: list[Firing] = field(default_factory=list)
    last_step: int = 0

    def on_event(self, event: dict[str, Any]) -> str | None:
        before = len(self.inner.findings)
        t0 = time.perf_counter()
        answer = self.inner.on_event(event)
        spent = time.perf_counter() - t0
        self.seconds += spent
        self.calls += 1
        kind = event.get("type")
        if kind == "step":
            self.step_seconds += spent
            self.step_calls += 1
        step = event.get("step")
        if isinstance(step, int):
            self.last_step = step
        for finding in self.inner.findings[before:]:
            self.firings.append(Firing(finding.id, str(kind), event.get("epoch"),
                                       step if isinstance(step, int) else self.last_step,
                                       dict(finding.onset), finding.evidence.get("rule"),
                                       finding.message))
        return answer

    # checkpoints save the subscriber's state (matched by class): pass it through
    def state_dict(self) -> dict[str, Any]:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state)


def _nonfinite(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def stream_facts(path: Path, onset_step: int) -> dict[str, Any]:
    """What the run's own metrics.jsonl says, independent of the detectors (the fault's
    footprint: how far gradient norm and loss rose after the onset over their level before it
    (the first 5 steps for a fault present from the start), where val loss bottomed out)."""
    from mltrainer.stream import read_stream

    events = read_stream(path)
    start = next((e for e in events if e.get("type") == "start"), {})
    steps = [e for e in events if e.get("type") == "step"]
    epochs = [e for e in events if e.get("type") == "epoch"]
    first_bad = next((e["step"] for e in steps
                      if _nonfinite(e.get("loss")) or _nonfinite(e.get("grad_norm"))), None)
    vals = [(e["epoch"], e["val_loss"]) for e in epochs if not _nonfinite(e.get("val_loss"))]
    best_val_epoch = min(vals, key=lambda pair: pair[1])[0] if vals else None
    end = events[-1] if events and events[-1].get("type") == "end" else {}

    def rise(name: str) -> float | None:
        values = [(e["step"], e.get(name)) for e in steps
                  if isinstance(e.get(name), float) and math.isfinite(e[name])]
        before = [v for s, v in values if s < onset_step][-5:] or [v for _, v in values[:5]]
        after = [v for s, v in values if s >= onset_step]
        if not before or not after or statistics.median(before) <= 0:
            return None
        return max(after) / statistics.median(before)

    return {
        "steps_per_epoch": start.get("steps_per_epoch"),
        "steps": steps[-1]["step"] if steps else 0,
        "epochs": len(epochs),
        "first_nonfinite_step": first_bad,
        "best_val_loss_epoch": best_val_epoch,
        "end_reason": end.get("reason"),
        "final_train_loss": epochs[-1].get("train_loss") if epochs else None,
        "final_val": epochs[-1].get("val") if epochs else None,
        "grad_norm_rise": rise("grad_norm"),
        "loss_rise": rise("loss"),
    }


def check_labels(scenarios: list[Scenario], pattern: str = "") -> int:
    """Train each scenario matching `pattern` once with NO detector attached and print what
    the run's own stream shows (goal met, the best metric, the gradient norm's and the loss's
    rise after the onset, the first non-finite step, the epoch of the lowest val loss, the
    last train loss over the trivial loss, the epoch train losses): whether each label is
    earned by its config. Run before the commit; prints nothing a detector decided."""
    import torch

    from mltrainer.config import parse_config
    from mltrainer.data import prepare_data, trivial_baseline
    from mltrainer.engine import Trainer
    from mltrainer.stream import read_stream

    torch.set_num_threads(1)
    for scn in scenarios:
        if not re.search(pattern, scn.name):
            continue
        cfg = parse_config(scn.config, source=scn.name)
        bundle = prepare_data(cfg, BENCH)
        baseline = trivial_baseline(bundle, cfg.goal.metric)
        with tempfile.TemporaryDirectory() as tmp, capture_parts(scn.injection):
            result = Trainer(cfg, bundle, Path(tmp) / "run", subscribers=[], baseline=baseline,
                             root=BENCH).fit()
            facts = stream_facts(Path(tmp) / "run" / "metrics.jsonl", scn.onset_step)
            epochs = [e for e in read_stream(Path(tmp) / "run" / "metrics.jsonl")
                      if e.get("type") == "epoch"]
        best, goal = result.best_metric, cfg.goal.target
        met = best is not None and (best >= goal if cfg.greater_is_better else best <= goal)
        trivial = baseline.get("loss") or float("nan")
        losses = [e.get("train_loss") for e in epochs]
        gap = _generalisation_gap(cfg.task, epochs, trivial)
        rel = [round(v / trivial, 3) if isinstance(v, float) and math.isfinite(v) else v
               for v in losses]
        print(json.dumps({
            "scenario": scn.name, "label": scn.label, "goal_met": met,
            "best": None if best is None else round(best, 4), "goal": goal,
            "stopped": result.stopped_reason, "grad_rise": facts["grad_norm_rise"],
            "loss_rise": facts["loss_rise"], "first_nonfinite": facts["first_nonfinite_step"],
            "best_val_epoch": facts["best_val_loss_epoch"], "epochs": facts["epochs"],
            **gap, "healthy_ok": met and gap["no_gap"],
            "train_loss_over_trivial": rel}, default=str), flush=True)
    return 0


GAP_LIMIT = 0.10      # train-minus-val accuracy (or explained variance) at the last epoch
VAL_END_LIMIT = 1.10  # the last epoch's val loss over the run's lowest ...
VAL_END_ATOL = 0.02   # ... or above it by at most this x the trivial loss


def _generalisation_gap(task: str, epochs: list[dict[str, Any]],
                        trivial: float) -> dict[str, Any]:
    """The label check's own reading of a train/val gap (held-out v6 on; stated apart from
    the overfitting rule): at the last epoch, train accuracy minus val accuracy
    (classification) or (val loss - train eval loss) / the trivial loss (regression: an r2
    gap), and the last val loss over the lowest; `no_gap` when the first is below GAP_LIMIT
    and the last val loss is below VAL_END_LIMIT x the lowest or VAL_END_ATOL x the trivial
    loss above it."""
    finite = [e for e in epochs if isinstance(e.get("val_loss"), float)
              and math.isfinite(e["val_loss"])]
    if not finite:
        return {"gap": None, "val_end_over_min": None, "no_gap": False}
    last = finite[-1]
    if task == "classification":
        train_acc = (last.get("train") or {}).get("accuracy")
        val_acc = (last.get("val") or {}).get("accuracy")
        gap = (train_acc - val_acc) if train_acc is not None and val_acc is not None else None
    else:
        tr = last.get("train_eval_loss")
        gap = ((last["val_loss"] - tr) / trivial
               if isinstance(tr, float) and math.isfinite(trivial) and trivial > 0 else None)
    lowest = min(e["val_loss"] for e in finite)
    end = last["val_loss"] / lowest if lowest > 0 else None
    near = math.isfinite(trivial) and last["val_loss"] - lowest <= VAL_END_ATOL * trivial
    return {"gap": None if gap is None else round(gap, 3),
            "val_end_over_min": None if end is None else round(end, 3),
            "val_end_above_min_over_trivial": (round((last["val_loss"] - lowest) / trivial, 4)
                                               if math.isfinite(trivial) and trivial > 0
                                               else None),
            "no_gap": gap is not None and gap < GAP_LIMIT and end is not None
            and (end < VAL_END_LIMIT or near)}


def epoch_of(step: int, steps_per_epoch: int) -> int:
    return (step - 1) // steps_per_epoch + 1


def judge_firings(firings: list[Firing], label: str, allowed: frozenset[str], onset_step: int,
                  onset_epoch: int, spe: int) -> list[dict[str, Any]]:
    """Each firing with its verdict (tp / allowed / fp / fp_before_onset) and latency."""
    findings = []
    for f in firings:
        fired_step = f.step or 0
        fired_epoch = f.epoch if isinstance(f.epoch, int) else epoch_of(max(fired_step, 1), spe)
        if label == HEALTHY:
            verdict = "fp"
        elif fired_step < onset_step:
            verdict = "fp_before_onset"
        elif f.id == label:
            verdict = "tp"
        elif f.id in allowed:
            verdict = "allowed"
        else:
            verdict = "fp"
        row: dict[str, Any] = {
            "id": f.id, "verdict": verdict, "event": f.event, "fired_epoch": fired_epoch,
            "fired_step": fired_step, "reported_onset": f.onset, "rule": f.rule,
            "message": f.message,
        }
        if verdict in ("tp", "allowed"):
            row["latency_steps"] = fired_step - onset_step
            row["latency_epochs"] = fired_epoch - onset_epoch
        findings.append(row)
    return findings


def rejudge(jsonl: Path) -> list[dict[str, Any]]:
    """The records of an earlier run (made with --keep-runs), their findings judged again by
    the detectors of this checkout over each kept `metrics.jsonl` (the offline path, fed event
    by event as online; the same findings as online, since only nan_loss stops a run and its
    rule is the same). For changing rules on tuning runs without training them again."""
    from mltrainer.detectors import DetectorContext, DetectorSubscriber, build_detectors
    from mltrainer.stream import read_stream

    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    for record in records:
        stream = read_stream(jsonl.parent / "runs" / record["scenario"] / "metrics.jsonl")
        start = stream[0] if stream and stream[0].get("type") == "start" else {}
        context = DetectorContext(task=record["task"], metric=start.get("metric"),
                                  greater_is_better=start.get("greater_is_better"),
                                  baseline=start.get("baseline"))
        timed = TimedDetectors(DetectorSubscriber(build_detectors(context)))
        for event in stream:
            if timed.on_event(event):
                break
        onset = record["onset"]
        spe = int(record.get("steps_per_epoch") or 1)
        record["findings"] = judge_firings(timed.firings, record["label"],
                                           frozenset(record["allowed"]), onset["step"],
                                           onset["epoch"], spe)
        record["detected"] = (any(r["verdict"] == "tp" for r in record["findings"])
                              if record["label"] != HEALTHY else None)
    return records


def run_scenario(scn: Scenario, workdir: Path) -> dict[str, Any]:
    from mltrainer.config import parse_config
    from mltrainer.data import prepare_data, trivial_baseline
    from mltrainer.detectors import (
        DetectorContext,
        DetectorSubscriber,
        build_detectors,
        run_detectors,
    )
    from mltrainer.engine import Trainer

    cfg = parse_config(scn.config, source=scn.name)
    bundle = prepare_data(cfg, BENCH)
    baseline = trivial_baseline(bundle, cfg.goal.metric)
    # exactly what `mlt train-baseline` builds (mltrainer/phases/baseline.py)
    context = DetectorContext(task=cfg.task, metric=cfg.goal.metric,
                              greater_is_better=cfg.greater_is_better, steps_per_epoch=None,
                              baseline=baseline)
    timed = TimedDetectors(DetectorSubscriber(build_detectors(context,
                                                              cfg.diagnose.thresholds)))
    run_dir = workdir / scn.name
    with capture_parts(scn.injection):
        t0 = time.perf_counter()
        result = Trainer(cfg, bundle, run_dir, subscribers=[timed], baseline=baseline,
                         root=BENCH).fit()
        fit_s = time.perf_counter() - t0
    facts = stream_facts(run_dir / "metrics.jsonl", scn.onset_step)
    # the offline path (`mlt diagnose` on the written stream) must find the same
    offline = run_detectors(run_dir / "metrics.jsonl", cfg.diagnose.thresholds, context)
    offline_agrees = ([(f.id, f.onset) for f in offline]
                      == [(f.id, f.onset) for f in timed.inner.findings])
    spe = int(facts["steps_per_epoch"] or 1)

    onset_step = scn.onset_step
    onset_source = "injection" if scn.injection is not None else "start"
    if scn.label == "nan_loss":
        if facts["first_nonfinite_step"] is not None:
            onset_step, onset_source = facts["first_nonfinite_step"], "first_nonfinite"
        else:
            onset_source = "no_nonfinite_value"
    onset_epoch = epoch_of(onset_step, spe)

    findings = judge_firings(timed.firings, scn.label, frozenset(scn.allowed), onset_step,
                             onset_epoch, spe)
    detected = any(r["verdict"] == "tp" for r in findings)
    goal = cfg.goal.target
    best = result.best_metric
    record: dict[str, Any] = {
        "set": set_of(scn.name), "task": cfg.task,
        "goal": goal,
        "goal_met": (best is not None and (best >= goal if cfg.greater_is_better
                                           else best <= goal)),
        "scenario": scn.name, "label": scn.label, "allowed": sorted(scn.allowed),
        "dataset": scn.dataset, "model": scn.model, "seed": scn.config["seed"],
        "note": scn.note,
        "injection": scn.injection.describe() if scn.injection is not None else None,
        "onset": {"step": onset_step, "epoch": onset_epoch, "source": onset_source},
        "detected": detected if scn.label != HEALTHY else None,
        "findings": findings,
        "stopped_reason": result.stopped_reason, "best_metric": result.best_metric,
        "trivial": {k: baseline[k] for k in ("accuracy", "loss") if k in baseline},
        "offline_agrees": offline_agrees,
        "fit_s": fit_s, "detector_s": timed.seconds, "detector_calls": timed.calls,
        "detector_step_s": timed.step_seconds, "step_events": timed.step_calls,
        **facts,
    }
    if scn.label == "overfitting" and facts["best_val_loss_epoch"] is not None:
        # when overfitting became observable: the epoch after the run's lowest val loss
        visible = facts["best_val_loss_epoch"] + 1
        record["symptom_onset_epoch"] = visible
        for row in findings:
            if row["verdict"] == "tp":
                row["latency_epochs_from_symptom"] = row["fired_epoch"] - visible
    return record


# -- the summary -------------------------------------------------------------------------------


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def _latency_key(finding_id: str) -> tuple[str, str, int]:
    if finding_id == "nan_loss":
        return "latency_steps", "steps", TARGETS["nan_latency_steps"]
    return "latency_epochs", "epochs", TARGETS["latency_epochs"]


def _fired(record: dict[str, Any]) -> str:
    return ", ".join(
        f"{f['id']}@e{f['fired_epoch']}/s{f['fired_step']}"
        + ("" if f["verdict"] == "tp" else f"({f['verdict']})")
        for f in record["findings"]
    ) or "nothing"


def family(name: str) -> str:
    return re.sub(r"-s\d+$", "", name)


def summarize(records: list[dict[str, Any]], finding_ids: tuple[str, ...]) -> str:
    lines: list[str] = []
    healthy = [r for r in records if r["label"] == HEALTHY]
    labelled: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if r["label"] != HEALTHY:
            labelled[r["label"]].append(r)
    counts: dict[str, Counter[str]] = {v: Counter() for v in ("tp", "allowed", "fp")}
    for r in records:
        for f in r["findings"]:
            counts["fp" if f["verdict"].startswith("fp") else f["verdict"]][f["id"]] += 1
    healthy_fp = Counter(f["id"] for r in healthy for f in r["findings"])
    n_h = len(healthy)

    head = (f"{'finding':<20} {'runs':>4} {'recall':>6} {'prec':>5} {'TP':>4} {'FP':>3} "
            f"{'2nd':>4}  {'latency':<7} {'med':>5} {'max':>4} {'on-time':>7}  "
            f"{'steps med':>9} {'max':>4}  {'healthy FP':>11}  below target")
    target_row = (f"{'(target)':<20} {'':>4} {'>=' + str(TARGETS['recall']):>6} {'':>5} "
                  f"{'':>4} {'':>3} {'':>4}  {'':<7} {'':>5} {'<=3':>4} {'':>7}  {'':>9} "
                  f"{'':>4}  {'':>3} {'<=' + str(TARGETS['healthy_fp']):>8}")
    lines += [head, target_row, "-" * len(head)]
    for fid in finding_ids:
        runs = labelled.get(fid, [])
        recall = sum(r["detected"] for r in runs) / len(runs) if runs else None
        tp, fp = counts["tp"][fid], counts["fp"][fid]
        precision = tp / (tp + fp) if tp + fp else None
        key, unit, limit = _latency_key(fid)
        lats = [f[key] for r in runs for f in r["findings"] if f["verdict"] == "tp"]
        on_time = sum(1 for x in lats if x <= limit) / len(runs) if runs else None
        steps = [f["latency_steps"] for r in runs for f in r["findings"] if f["verdict"] == "tp"]
        share = healthy_fp[fid] / n_h if n_h else None
        lines.append(
            f"{fid:<20} {len(runs):>4} {_fmt(recall):>6} {_fmt(precision):>5} {tp:>4} {fp:>3} "
            f"{counts['allowed'][fid]:>4}  {unit:<7} "
            f"{_fmt(statistics.median(lats) if lats else None, '.1f'):>5} "
            f"{_fmt(max(lats) if lats else None, 'd'):>4} {_fmt(on_time):>7}  "
            f"{_fmt(statistics.median(steps) if steps else None, '.1f'):>9} "
            f"{_fmt(max(steps) if steps else None, 'd'):>4}  "
            f"{healthy_fp[fid]:>3}/{n_h:<3} {_fmt(share):>4}  "
            + ", ".join(name for name, bad in (
                ("recall", recall is not None and recall < TARGETS["recall"]),
                ("latency", bool(lats) and max(lats) > limit),
                ("healthy FP", share is not None and share > TARGETS["healthy_fp"]),
            ) if bad)
        )
    lines.append("-" * len(head))
    lines.append(
        f"targets: recall >= {TARGETS['recall']} | healthy FP <= {TARGETS['healthy_fp']} (any "
        f"finding and per finding) | latency max: nan_loss {TARGETS['nan_latency_steps']} "
        f"steps, others {TARGETS['latency_epochs']} epochs after the onset | precision: none"
    )
    lines.append(
        "  TP/FP: firings counted for precision; 2nd: allowed secondary firings (not counted); "
        "on-time: share of the labelled runs detected within the latency target; steps: the "
        "latency in steps"
    )
    rules = Counter(f"{f['id']}:{f['rule']}" for r in records for f in r["findings"]
                    if f["verdict"] == "tp" and f.get("rule"))
    if rules:
        lines.append("  rules that caught the labelled faults: "
                     + ", ".join(f"{k} x{v}" for k, v in sorted(rules.items())))
    any_fp = sum(1 for r in healthy if r["findings"])
    lines.append(
        f"healthy runs with ANY finding: {any_fp}/{n_h} = {_fmt(any_fp / n_h if n_h else None)}"
        f" (target <= {TARGETS['healthy_fp']})"
        + (": " + ", ".join(f"{k} x{v}" for k, v in healthy_fp.most_common()) if any_fp else "")
    )
    sym = [f["latency_epochs_from_symptom"] for r in labelled.get("overfitting", [])
           for f in r["findings"] if "latency_epochs_from_symptom" in f]
    if sym:
        lines.append(
            "overfitting latency counted from the epoch after the run's lowest val loss (where "
            f"it becomes visible) instead of epoch 1: median {statistics.median(sym):.1f}, "
            f"max {max(sym)} epochs"
        )
    fit = sum(r["fit_s"] for r in records)
    det = sum(r["detector_s"] for r in records)
    shares = sorted(r["detector_s"] / r["fit_s"] for r in records if r["fit_s"] > 0)
    step_us = (sum(r["detector_step_s"] for r in records)
               / max(1, sum(r["step_events"] for r in records)) * 1e6)
    if records:
        lines.append(
            f"detector overhead: {det:.2f} s in DetectorSubscriber.on_event of {fit:.1f} s in "
            f"Trainer.fit = {det / fit:.2%} (target <= {TARGETS['overhead']:.0%}); per run "
            f"median {statistics.median(shares):.2%}, max {shares[-1]:.2%}; "
            f"{step_us:.0f} us per step event"
        )
    if healthy:
        h_fit = sum(r["fit_s"] for r in healthy)
        h_det = sum(r["detector_s"] for r in healthy)
        lines.append(f"  healthy runs alone: {h_det:.2f} s of {h_fit:.1f} s = {h_det / h_fit:.2%}")
    disagree = [r["scenario"] for r in records if not r["offline_agrees"]]
    lines.append(
        "offline run_detectors(metrics.jsonl) gives the online findings on "
        f"{len(records) - len(disagree)}/{len(records)} runs"
        + (f" (differs: {', '.join(disagree)})" if disagree else "")
    )

    lines += ["", "by scenario (seeds pooled): detected/runs, median latency, what else fired"]
    families: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        families[family(r["scenario"])].append(r)
    for name, runs in families.items():
        label = runs[0]["label"]
        others = Counter(f"{f['id']}{'' if f['verdict'] == 'allowed' else '!'}"
                         for r in runs for f in r["findings"] if f["verdict"] != "tp")
        extra = ", ".join(f"{k} x{v}" for k, v in sorted(others.items())) or "-"
        if label == HEALTHY:
            lines.append(f"  {name:<36} {'healthy':<20} {'':>5} {'':>12}  {extra}")
            continue
        key, unit, _ = _latency_key(label)
        lats = [f[key] for r in runs for f in r["findings"] if f["verdict"] == "tp"]
        hit = sum(r["detected"] for r in runs)
        lat = f"{statistics.median(lats):.1f} {unit}" if lats else "-"
        lines.append(f"  {name:<36} {label:<20} {hit:>2}/{len(runs):<2} {lat:>12}  {extra}")
    lines.append("  (! marks a false positive; the rest are allowed secondaries)")

    misses = [r for r in records if r["label"] != HEALTHY and not r["detected"]]
    if misses:
        lines += ["", "missed (scenario [fault] -> what fired instead):"]
        lines += [f"  {r['scenario']} [{r['note']}] -> {_fired(r)}" for r in misses]
    fps = [(r, f) for r in records for f in r["findings"] if f["verdict"].startswith("fp")]
    if fps:
        lines += ["", "false positives (scenario: finding @ where it fired: its message):"]
        lines += [f"  {r['scenario']}: {f['id']}@e{f['fired_epoch']}/s{f['fired_step']}"
                  f"{' (before the onset)' if f['verdict'] == 'fp_before_onset' else ''}: "
                  f"{f['message']}" for r, f in fps]
    return "\n".join(line.rstrip() for line in lines)


def set_of(name: str) -> str:
    """Which set a scenario belongs to, from its name's prefix."""
    prefixes = {"h10-": "heldout10", "h9-": "heldout9", "h8-": "heldout8", "h7-": "heldout7",
                "h6-": "heldout6", "h5-": "heldout5", "h4-": "heldout4", "h3-": "heldout3",
                "h2-": "heldout2", "ho-": "heldout"}
    return next((v for k, v in prefixes.items() if name.startswith(k)), "tuning")


def brief(records: list[dict[str, Any]], finding_ids: tuple[str, ...]) -> str:
    """Aggregate figures only: recall per finding, healthy FP rate overall and per task."""
    lines = []
    for fid in finding_ids:
        runs = [r for r in records if r["label"] == fid]
        hit = sum(bool(r["detected"]) for r in runs)
        lines.append(f"  {fid:<20} recall {hit:>2}/{len(runs):<2} = "
                     f"{_fmt(hit / len(runs) if runs else None)}")
    healthy = [r for r in records if r["label"] == HEALTHY]
    for task in ("all", "classification", "regression"):
        rows = [r for r in healthy if task == "all" or r.get("task") == task]
        bad = sum(1 for r in rows if r["findings"])
        lines.append(f"  healthy FP {task:<14} {bad:>2}/{len(rows):<2} = "
                     f"{_fmt(bad / len(rows) if rows else None)}")
    return "\n".join(lines)


def detector_cost(runs: Path, rounds: int = 3) -> str:
    """CPU time (`time.process_time`) of a whole `DetectorSubscriber` (the detectors of the
    checkout on sys.path) fed every event of every kept `metrics.jsonl` under `runs`, best and
    median of `rounds`, in microseconds per event. Compare checkouts by running this in
    separate processes, alternating (`PYTHONPATH=<checkout> python bench/detectors.py --cost
    DIR`)."""
    from mltrainer.detectors import DetectorContext, DetectorSubscriber, build_detectors
    from mltrainer.stream import read_stream

    streams = [read_stream(p) for p in sorted(runs.glob("*/metrics.jsonl"))]
    events = sum(len(s) for s in streams)
    per_event = []
    for _ in range(rounds):
        t0 = time.process_time()
        for stream in streams:
            start = stream[0] if stream and stream[0].get("type") == "start" else {}
            context = DetectorContext(task=start.get("task"), metric=start.get("metric"),
                                      greater_is_better=start.get("greater_is_better"),
                                      baseline=start.get("baseline"))
            subscriber = DetectorSubscriber(build_detectors(context))
            for event in stream:
                if subscriber.on_event(event):
                    break
        per_event.append((time.process_time() - t0) / events * 1e6)
    return (f"{len(streams)} streams, {events} events: {min(per_event):.2f} us per event "
            f"(best of {rounds}; median {statistics.median(per_event):.2f})")


def _run_one(scn: Scenario, workdir: Path) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)  # a shared 2-core machine; also what the timings assume
    record = run_scenario(scn, workdir)
    # only the stream is read again (--rejudge, --cost): checkpoints would fill a shared disk
    for path in sorted((workdir / scn.name).rglob("*"), reverse=True):
        if path.name != "metrics.jsonl":
            path.rmdir() if path.is_dir() else path.unlink()
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Benchmark mlt's online detectors on real training runs with injected "
        "faults and pathological configs (run by hand, not in CI).")
    parser.add_argument("--set", choices=("tuning", "heldout", "heldout2", "heldout3", "heldout4",
                                          "heldout5", "heldout6", "heldout7", "heldout8",
                                          "heldout9", "heldout10", "tuned", "all"),
                        default="all",
                        help="the tuning scenarios (scenarios.py), the old held-out ones "
                        "(heldout.py .. heldout9.py, tuning material since issue 11's second to "
                        "tenth passes), held-out v10 (heldout10.py, never tuned on), every set "
                        "tuned on (tuned: scenarios.py and heldout.py .. heldout9.py), or all "
                        "eleven (default), summarised apart")
    parser.add_argument("--brief", action="store_true",
                        help="print aggregate figures only (recall per finding, healthy FP "
                        "per task), nothing per scenario")
    parser.add_argument("--quick", action="store_true",
                        help="every scenario with one seed (about a third of the full run)")
    parser.add_argument("--out", type=Path, default=BENCH / "out",
                        help="where detectors.jsonl goes (default: bench/out, git-ignored)")
    parser.add_argument("--repeats", type=int, default=None, metavar="N",
                        help=f"seeds per scenario (default: {DEFAULT_REPEATS}; 1 with --quick)")
    parser.add_argument("--only", metavar="REGEX", help="only the scenarios whose name matches")
    parser.add_argument("--jobs", type=int, default=2, metavar="N",
                        help="runs in parallel, one torch thread each (default 2)")
    parser.add_argument("--summarize", type=Path, metavar="JSONL",
                        help="print the summary of an earlier detectors.jsonl; run nothing")
    parser.add_argument("--rejudge", type=Path, metavar="JSONL",
                        help="judge the kept runs of an earlier --keep-runs run again with "
                        "this checkout's detectors (offline, event by event) and print the "
                        "summary; train nothing")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="print every run's findings as it finishes (stderr)")
    parser.add_argument("--cost", type=Path, metavar="RUNS",
                        help="time the detectors (CPU per event) over the kept runs in RUNS "
                        "(OUT/runs of a --keep-runs run); train nothing")
    parser.add_argument("--keep-runs", action="store_true",
                        help="keep each run's metrics.jsonl in OUT/runs/<scenario>/ (its "
                        "checkpoints and other files are deleted as the run ends)")
    args = parser.parse_args(argv)

    from mltrainer.detectors import FINDING_IDS

    if args.cost is not None:
        print(detector_cost(args.cost))
        return 0
    if args.rejudge is not None:
        records = rejudge(args.rejudge)
        if args.only:
            records = [r for r in records if re.search(args.only, r["scenario"])]
        (args.out / "rejudged.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in records))
        print(summarize_sets(records, FINDING_IDS, args.brief))
        return 0
    if args.summarize is not None:
        records = [json.loads(line) for line in args.summarize.read_text().splitlines()]
        print(summarize_sets(records, FINDING_IDS, args.brief))
        return 0
    repeats = args.repeats or (1 if args.quick else DEFAULT_REPEATS)
    scenarios: list[Scenario] = []
    if args.set in ("tuning", "tuned", "all"):
        scenarios += build_scenarios(repeats)
    if args.set in ("heldout", "tuned", "all"):
        scenarios += build_heldout(repeats)
    if args.set in ("heldout2", "tuned", "all"):
        scenarios += build_heldout2(repeats)
    if args.set in ("heldout3", "tuned", "all"):
        scenarios += build_heldout3(repeats)
    if args.set in ("heldout4", "tuned", "all"):
        scenarios += build_heldout4(repeats)
    if args.set in ("heldout5", "tuned", "all"):
        scenarios += build_heldout5(repeats)
    if args.set in ("heldout6", "tuned", "all"):
        scenarios += build_heldout6(repeats)
    if args.set in ("heldout7", "tuned", "all"):
        scenarios += build_heldout7(repeats)
    if args.set in ("heldout8", "tuned", "all"):
        scenarios += build_heldout8(repeats)
    if args.set in ("heldout9", "tuned", "all"):
        scenarios += build_heldout9(repeats)
    if args.set in ("heldout10", "all"):
        scenarios += build_heldout10(repeats)
    if args.only:
        scenarios = [s for s in scenarios if re.search(args.only, s.name)]
    args.out.mkdir(parents=True, exist_ok=True)
    out_path = args.out / "detectors.jsonl"
    records: list[dict[str, Any]] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mlt-detector-bench-") as tmp, \
            open(out_path, "w", encoding="utf-8") as out:
        workdir = Path(tmp)
        if args.keep_runs:
            workdir = args.out / "runs"
            shutil.rmtree(workdir, ignore_errors=True)
        if args.jobs > 1:
            from concurrent.futures import ProcessPoolExecutor

            pool = ProcessPoolExecutor(args.jobs)
            results: Any = pool.map(_run_one, scenarios, [workdir] * len(scenarios))
        else:
            pool = None
            results = (_run_one(scn, workdir) for scn in scenarios)
        for index, (scn, record) in enumerate(zip(scenarios, results, strict=True), start=1):
            records.append(record)
            out.write(json.dumps(record, default=str) + "\n")
            out.flush()
            mark = "" if scn.label == HEALTHY else (" ok" if record["detected"] else " MISSED")
            if args.verbose or (mark == " MISSED" and not args.brief):
                print(f"[{index}/{len(scenarios)}] {scn.name:<40} {scn.label:<19} onset "
                      f"s{record['onset']['step']} {record['fit_s']:.1f}s "
                      f"end={record['end_reason']}{mark}: {_fired(record)}",
                      file=sys.stderr, flush=True)
            elif index % 20 == 0:
                print(f"[{index}/{len(scenarios)}] {time.perf_counter() - started:.0f} s",
                      file=sys.stderr, flush=True)
        if pool is not None:
            pool.shutdown()
    elapsed = time.perf_counter() - started
    n_h = sum(r["label"] == HEALTHY for r in records)
    print(f"{len(records)} runs ({n_h} healthy, {repeats} seed(s) per scenario) in "
          f"{elapsed:.0f} s; per-run results in {out_path}\n")
    print(summarize_sets(records, FINDING_IDS, args.brief))
    return 0


SET_TITLES = (
    ("tuning", "TUNING SET (scenarios.py: the rules were tuned here)"),
    ("heldout", "OLD HELD-OUT, NOW TUNING (heldout.py: its misses were analysed in issue 11's "
                "first pass)"),
    ("heldout2", "OLD HELD-OUT v2, NOW TUNING (heldout2.py: its misses were read after issue "
                 "11's second pass)"),
    ("heldout3", "OLD HELD-OUT v3, NOW TUNING (heldout3.py: its misses were read after issue "
                 "11's third pass)"),
    ("heldout4", "OLD HELD-OUT v4, NOW TUNING (heldout4.py: read per case after issue 11's "
                 "fourth pass)"),
    ("heldout5", "OLD HELD-OUT v5, NOW TUNING (heldout5.py: read per case after issue 11's "
                 "fifth pass)"),
    ("heldout6", "OLD HELD-OUT v6, NOW TUNING (heldout6.py: read per case after issue 11's "
                 "sixth pass)"),
    ("heldout7", "OLD HELD-OUT v7, NOW TUNING (heldout7.py: read per case after issue 11's "
                 "seventh pass)"),
    ("heldout8", "OLD HELD-OUT v8, NOW TUNING (heldout8.py: read per case after issue 11's "
                 "eighth pass)"),
    ("heldout9", "OLD HELD-OUT v9, NOW TUNING (heldout9.py: read per case after issue 11's "
                 "ninth pass)"),
    ("heldout10", "HELD-OUT v10 (heldout10.py: written before the tenth pass's rule changes, "
                  "never tuned on)"),
)


def summarize_sets(records: list[dict[str, Any]], finding_ids: tuple[str, ...],
                   aggregate_only: bool = False) -> str:
    """One summary per set, never pooled: the held-out v2 numbers are the ones that say how
    the detectors do on data they were not tuned on. `aggregate_only`: recall per finding and
    healthy FP per task, nothing per scenario (what a held-out set may show while rules are
    still being changed)."""
    parts = []
    for name, title in SET_TITLES:
        rows = [r for r in records if r.get("set", "tuning") == name]
        if not rows:
            continue
        if aggregate_only:
            parts.append(f"=== {title}: {len(rows)} runs ===\n" + brief(rows, finding_ids))
            continue
        healthy = [r for r in rows if r["label"] == HEALTHY]
        missed_goal = [r["scenario"] for r in healthy if r.get("goal_met") is False]
        note = (f"\nhealthy runs that missed their goal (a label to doubt, not a detector "
                f"result): {len(missed_goal)}/{len(healthy)}"
                + (f": {', '.join(missed_goal)}" if missed_goal else ""))
        parts.append(f"=== {title}: {len(rows)} runs, {len(healthy)} healthy ===\n"
                     + summarize(rows, finding_ids) + note)
    return "\n\n".join(parts)


if __name__ == "__main__":
    sys.exit(main())
