"""What each method costs in a finished run, and what a sweep adds: job seconds per method label
from the rules' benchmark files (benchmarks/{train,score}/...tsv).

A sweep of k values turns one method into k variants; the k - 1 variants beyond the first are
what it adds. Job seconds are summed over the method's train and score jobs (main grid, annex
A.2, closed-set models); on a machine running `cores` jobs at once, the wall time they add is
about that sum / cores. Prints a table and writes bench/results/method_cost-<name>.json.

    python -m bench.method_cost --run /tmp/demo --config config/demo.yaml --cores 2
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from bench.common import RESULTS, write_result
from dmlbench.aggregate.tables import runtime_table
from dmlbench.config import load_config
from dmlbench.config.methods import sweeps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="folder of a finished run (holds benchmarks/ and results/)")
    ap.add_argument("--config", default=None, help="its config (default: <run>/results/config.yaml)")
    ap.add_argument("--cores", type=int, default=2, help="jobs the run ran at once (snakemake --cores)")
    ap.add_argument("--name", default=None, help="name in the JSON file (default: the run folder's name)")
    ap.add_argument("--wall-seconds", type=float, default=None, help="the run's measured wall time, for the share")
    args = ap.parse_args()
    run = Path(args.run)
    config = load_config(args.config or run / "results" / "config.yaml")
    bench = sorted((run / "benchmarks").rglob("*.tsv"))
    table = runtime_table(bench, run / "benchmarks")
    jobs = table.dropna(subset=["method"])
    per_method = jobs.groupby(["method", "rule"])["seconds"].agg(["sum", "count"]).unstack("rule", fill_value=0)
    per_method.columns = [f"{rule}_{what}" for what, rule in per_method.columns]
    per_method["seconds"] = jobs.groupby("method")["seconds"].sum()
    total = float(table["seconds"].sum())
    added = {}
    for group, sweep in sweeps(config["methods"]).items():
        extra = sweep["labels"][1:]  # one variant would have run anyway
        seconds = float(per_method.loc[per_method.index.isin(extra), "seconds"].sum())
        added[group] = {
            "variants": sweep["labels"],
            "added_variants": extra,
            "added_job_seconds": seconds,
            "added_wall_seconds_estimate": seconds / args.cores,
        }
    print("| method | train jobs | train s | score jobs | score s | total s |\n|---|---|---|---|---|---|")
    for method, row in per_method.iterrows():
        print(
            f"| {method} | {int(row.get('train_count', 0))} | {row.get('train_sum', 0):.0f} | "
            f"{int(row.get('score_count', 0))} | {row.get('score_sum', 0):.0f} | {row['seconds']:.0f} |"
        )
    print(f"\nall jobs: {total:.0f} job seconds ({len(table)} jobs with a benchmark file)")
    for group, info in added.items():
        share = (
            (
                f", {100 * info['added_wall_seconds_estimate'] / args.wall_seconds:.0f} % of the "
                f"{args.wall_seconds:.0f} s wall time"
            )
            if args.wall_seconds
            else ""
        )
        print(
            f"sweep {group}: {len(info['added_variants'])} variants beyond one add {info['added_job_seconds']:.0f} "
            f"job seconds, about {info['added_wall_seconds_estimate']:.0f} s wall on {args.cores} cores{share}"
        )
    name = args.name or run.name
    out = RESULTS / f"method_cost-{name}.json"
    write_result(
        out,
        {
            "run": str(run),
            "cores": args.cores,
            "wall_seconds": args.wall_seconds,
            "job_seconds_total": total,
            "per_method": {m: {k: float(v) for k, v in row.items()} for m, row in per_method.iterrows()},
            "sweeps": added,
        },
    )


if __name__ == "__main__":
    pd.set_option("display.width", 160)
    main()
