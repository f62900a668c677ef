"""How long a gate report takes to render (run by hand; the timing that used to sit in
tests/test_report.py): a digits project through plan and train-baseline, then the baseline
report rendered warm N times, and the two curve figures drawn from a 20 000-step stream.

    python bench/report.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    from mltrainer.config import load_config
    from mltrainer.fingerprints import current_fingerprints
    from mltrainer.project import Project
    from mltrainer.reporting import _plots, render_phase_report
    from mltrainer.reporting._curves import Marker, RunCurves
    from mltrainer.state import load_state

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "proj"
        mlt = [sys.executable, "-c", "from mltrainer.cli import main; main()"]
        subprocess.run([*mlt, "init", str(root), "--example", "digits"], check=True,
                       capture_output=True)
        for phase in ("plan", "train-baseline"):
            subprocess.run([*mlt, phase, "-C", str(root)], check=True, capture_output=True)
        p = Project.at(root)
        state, fps = load_state(p), current_fingerprints(p, load_config(p.config_path))
        render_phase_report(p, state, "baseline", fps)  # warm: matplotlib imported once
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            render_phase_report(p, state, "baseline", fps)
            times.append(time.perf_counter() - start)
    print(f"baseline report (markdown + html + figures), warm: median "
          f"{statistics.median(times):.3f} s over {args.repeats}")

    n = 20_000
    c = RunCurves(metric="rmse", greater_is_better=False, grad_clip=1.0, goal=0.5)
    c.epochs, c.train_loss, c.val_loss = [1.0, 2.0, 3.0], [1.0, 0.8, 0.7], [1.2, 0.9, 0.95]
    c.val_metric, c.train_metric, c.epoch_lr = [0.9, 0.8, 0.7], [math.nan] * 3, [1e-3] * 3
    c.step_x = [3 * (i + 1) / n for i in range(n)]
    c.step_loss = [1.0 / (1 + i) for i in range(n)]
    c.step_lr = [1e-3 * (1 - i / n) for i in range(n)]
    c.step_grad = [0.5 + (i % 50) for i in range(n)]
    c.markers = [Marker(2.0, "best epoch (2)", "best")]
    start = time.perf_counter()
    _plots.training_curves(c)
    _plots.optimizer_curves(c)
    print(f"curves from a {n}-step stream: {time.perf_counter() - start:.3f} s")


if __name__ == "__main__":
    main()
