"""Speed of kNN anomaly scoring (dmlbench.score.knn.knn_scores) on CPU.

Scores random float16 embeddings (the dtype the pipeline stores) - by default 10,000 test x
50,000 reference x 512-d, both distances and k in (1, 5, 10, 20, 30, all) in one call - with
a fixed number of torch threads, and writes
``bench/results/score_speed-<host>.json``.

    python -m bench.score_speed                   # full size, 2 threads
    python -m bench.score_speed --n-test 1000 --n-ref 5000 --repeat 1

Target: the full-size run under 15 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import socket
import sys
import time
from pathlib import Path

import numpy as np
import torch

from bench.common import RESULTS, write_result
from dmlbench.score.knn import DEFAULT_KS, DISTANCES, knn_scores

TARGET_SECONDS = 15.0


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def host_label() -> str:
    label = socket.gethostname() or cpu_model()
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-") or "unknown"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-test", type=int, default=10_000)
    p.add_argument("--n-ref", type=int, default=50_000)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    p.add_argument("--repeat", type=int, default=3, help="timed runs after the first (default 3)")
    p.add_argument("--chunk-size", type=int, default=None, help="test rows per block (default: library)")
    p.add_argument("--ref-chunk-size", type=int, default=None, help="reference rows per block")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="JSON path (default bench/results/score_speed-<host>.json)")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    rng = np.random.default_rng(args.seed)
    test = rng.standard_normal((args.n_test, args.dim), dtype=np.float32).astype(np.float16)
    ref = rng.standard_normal((args.n_ref, args.dim), dtype=np.float32).astype(np.float16)
    ks = list(DEFAULT_KS)
    distances = list(DISTANCES)

    def once() -> float:
        t0 = time.perf_counter()
        knn_scores(
            test, ref, distances=distances, ks=ks, chunk_size=args.chunk_size, ref_chunk_size=args.ref_chunk_size
        )
        return time.perf_counter() - t0

    first = once()
    times = [once() for _ in range(max(0, args.repeat))]
    best = min(times) if times else first
    rows_per_s = args.n_test / best

    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    device = cpu_model()
    print(f"{'size (test x ref x dim)':<26}{'threads':>8}{'first s':>10}{'best s':>10}{'test rows/s':>13}")
    print(
        f"{f'{args.n_test} x {args.n_ref} x {args.dim}':<26}{args.threads:>8}"
        f"{first:>10.2f}{best:>10.2f}{rows_per_s:>13.0f}"
    )
    print(
        f"device: {device} ({os.cpu_count()} CPUs); runs: first {first:.2f} s, then "
        f"{', '.join(f'{t:.2f}' for t in times)} s; 1-min load average before/after: "
        f"{load_before}/{load_after} (other work on the machine slows the run)"
    )
    meets = best < TARGET_SECONDS
    print(
        f"target {TARGET_SECONDS:g} s: {'met' if meets else 'NOT met'}"
        + ("" if (args.n_test, args.n_ref, args.dim) == (10_000, 50_000, 512) else " (not the full-size problem)")
    )

    out = args.out or RESULTS / f"score_speed-{host_label()}.json"
    write_result(
        out,
        {
            "device": device,
            "threads": args.threads,
            "n_test": args.n_test,
            "n_ref": args.n_ref,
            "dim": args.dim,
            "ks": ks,
            "distances": distances,
            "chunk_size": args.chunk_size,
            "ref_chunk_size": args.ref_chunk_size,
            "seconds_best": round(best, 4),
            "seconds_first": round(first, 4),
            "seconds_all": [round(t, 4) for t in times],
            "rows_per_second": round(rows_per_s, 1),
            "target_seconds": TARGET_SECONDS,
            "meets_target": bool(meets),
            "cpu_count": os.cpu_count(),
            "load_average_1min_before": load_before,
            "load_average_1min_after": load_after,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
