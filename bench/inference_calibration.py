"""Inference calibration: coverage of the summary's 95 % intervals at 5 cases, and the type-I
error of each finding's test under a class-effect null, at more simulations than the test suite
runs (dmlbench.calibration; tests/unit/test_calibration.py asserts the same at a smaller size).
Prints both tables and writes bench/results/inference_calibration.json.

    python bench/inference_calibration.py --sims 20000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from dmlbench import calibration  # noqa: E402
from dmlbench.io import write_json  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sims", type=int, default=20_000, help="simulations per coverage and per type-I cell")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "inference_calibration.json"))
    args = ap.parse_args()
    start = time.perf_counter()
    result = calibration.calibrate(args.sims, args.sims, seed=args.seed)
    result["settings"]["seconds"] = round(time.perf_counter() - start, 1)
    print(calibration.format_tables(result))
    write_json(args.out, result)
    print(f"\nwrote {args.out} ({result['settings']['seconds']} s)")


if __name__ == "__main__":
    main()
