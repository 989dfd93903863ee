"""Inference calibration: coverage of the summary's 95 % intervals at 5 cases, and the type-I
error of each finding's test under a class-effect null, at more simulations than the test suite
runs (dmlbench.calibration; tests/unit/test_calibration.py asserts the same at a smaller size).
Prints both tables and writes bench/results/inference_calibration.json.

    python -m bench.inference_calibration --sims 20000
"""

from __future__ import annotations

import argparse
import time

from bench.common import RESULTS, write_result
from dmlbench import calibration


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sims", type=int, default=20_000, help="simulations per coverage and per type-I cell")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(RESULTS / "inference_calibration.json"))
    args = ap.parse_args()
    start = time.perf_counter()
    result = calibration.calibrate(args.sims, args.sims, seed=args.seed)
    result["settings"]["seconds"] = round(time.perf_counter() - start, 1)
    print(calibration.format_tables(result))
    write_result(args.out, result, f" ({result['settings']['seconds']} s)")


if __name__ == "__main__":
    main()
