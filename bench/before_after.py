"""Mean AUROC per method of two runs of one config, before and after a change of the code.

Reads each run's results/tables/metrics.parquet (one row per condition, method, seed, case, scorer
and metric), keeps the main grid (`--n-per-class`), the scorer (`--scorer`) and, with `--cases`,
the first cases only (a case's classes, subsets and training seed depend on its index alone, so
the first 5 cases of a 10-case run are a 5-case run). The mean AUROC of a method is the mean over
conditions of its mean over cases and seeds, as the summary table has it. Prints the table and
adds it under `--name` to bench/results/faithful-before-after.json.

    python -m bench.before_after --name demo --before /tmp/faithful/demo_before \\
        --after "/tmp/faithful/emb/model.embedding=linear_bn/results"
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from bench.common import RESULTS, write_result

OUT = RESULTS / "faithful-before-after.json"


def mean_auroc(results: Path, scorer: str, n_per_class: str, cases: int | None) -> tuple[pd.Series, pd.DataFrame]:
    """Per method: mean AUROC over conditions (each the mean over its cases and seeds), and the
    per-condition means [method x condition]."""
    metrics = pd.read_parquet(Path(results) / "tables" / "metrics.parquet")
    rows = metrics[
        (metrics.metric == "auroc") & (metrics.scorer == scorer) & (metrics.n_per_class.astype(str) == n_per_class)
    ]
    if cases is not None:
        rows = rows[rows.case < cases]
    if rows.empty:
        raise SystemExit(f"{results}: no AUROC rows for scorer {scorer}, n_per_class {n_per_class}")
    rows = rows.assign(condition=rows.dataset + "/a" + rows.n_anomaly.astype(str))
    by_condition = rows.groupby(["method", "condition"])["value"].mean().unstack("condition")
    return by_condition.mean(axis=1), by_condition


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", required=True, help="key of this comparison in the JSON (e.g. demo)")
    ap.add_argument("--before", required=True, help="results folder of the run with the old code")
    ap.add_argument("--after", required=True, help="results folder of the run with the new code")
    ap.add_argument("--scorer", default="cosine_k1")
    ap.add_argument("--n-per-class", default="all")
    ap.add_argument("--cases", type=int, help="only cases 0 .. CASES-1 of both runs")
    ap.add_argument("--note", default="", help="what was run, with the commands")
    args = ap.parse_args()

    before, before_cond = mean_auroc(Path(args.before), args.scorer, args.n_per_class, args.cases)
    after, after_cond = mean_auroc(Path(args.after), args.scorer, args.n_per_class, args.cases)
    table = pd.DataFrame({"before": before, "after": after})
    table["change"] = table["after"] - table["before"]
    table.loc["mean over methods"] = table.mean()
    print(
        f"{args.name}: mean AUROC ({args.scorer}, n_per_class {args.n_per_class}"
        f"{f', cases 0-{args.cases - 1}' if args.cases else ''})"
    )
    print(table.round(4).to_markdown())

    report = json.loads(OUT.read_text()) if OUT.exists() else {}
    report[args.name] = {
        "before": str(args.before),
        "after": str(args.after),
        "scorer": args.scorer,
        "n_per_class": args.n_per_class,
        "cases": args.cases,
        "note": args.note,
        "mean_auroc": {m: {k: float(v) for k, v in row.items()} for m, row in table.iterrows()},
        "by_condition": {"before": before_cond.to_dict(orient="index"), "after": after_cond.to_dict(orient="index")},
    }
    write_result(OUT, report)


if __name__ == "__main__":
    main()
