"""Run the bad-input table (tests/adversarial/cases.py) and print its counts.

    python bench/adversarial.py [--fixture DIR] [--only SUBSTRING] [-v]

cases: rows run · clean: everything as the contract says · wrong exit: another exit code ·
state changed: the project tree changed where it must not · lost: a file the project had is
gone, or the state no longer loads. `--fixture DIR` reuses (or creates) the prepared project.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "adversarial"))
sys.path.insert(0, str(HERE.parent))

from cases import CASES  # noqa: E402
from harness import prepare_fixture, run_case  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixture", type=Path, default=None)
    ap.add_argument("--only", default=None)
    ap.add_argument("-v", action="store_true")
    args = ap.parse_args()
    t0 = time.monotonic()
    if args.fixture is not None and (args.fixture / ".mlt" / "state.json").exists():
        fixture = args.fixture
    else:
        fixture = args.fixture or Path(tempfile.mkdtemp()) / "p"
        prepare_fixture(fixture)
    t1 = time.monotonic()
    counts: Counter[str] = Counter()
    by_group: Counter[str] = Counter()
    for case in CASES:
        if args.only and args.only not in case.id:
            continue
        t = time.monotonic()
        v = run_case(case, fixture)
        counts["cases"] += 1
        by_group[case.group] += 1
        counts["clean"] += v.clean
        counts["wrong exit"] += v.exit != case.exit
        counts["state changed"] += bool(v.changed)
        counts["lost"] += bool(v.lost)
        if not v.clean:
            print(f"NOT CLEAN {v.explain() if args.v else v.explain().splitlines()[0]}")
        elif args.v:
            print(f"clean {case.id} ({time.monotonic() - t:.1f}s)")
    print(f"fixture {t1 - t0:.1f}s, cases {time.monotonic() - t1:.1f}s; groups "
          + ", ".join(f"{g} {n}" for g, n in by_group.items()))
    print(" · ".join(f"{k}: {counts[k]}" for k in ("cases", "clean", "wrong exit",
                                                   "state changed", "lost")))
    return 0 if counts["clean"] == counts["cases"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
