"""Are two results folders the same study? Every table (results/tables/*.parquet and *.csv) and every
figure's data (the datasets of results/figures/*.vl.json) compared value for value, provenance and
timing left out: what a behaviour-neutral change (a refactoring, a new machine's run of the same
code) must keep identical.

    python -m bench.compare_results /path/to/before/results /path/to/after/results

Left out (:data:`PROVENANCE`, :data:`TIMING`): the versions and the code's identity (python, torch,
fastai, dmlbench, git_commit, git_dirty, code_hash) and every measured time or memory (columns
ending in ``seconds`` or ``minutes``, ``max_rss_mb``, and the runtime tables' ``share`` of time).
Tables are compared exactly: parquet values with their dtypes (NaN equal to NaN), CSVs as text.
A figure's data is each of its Vega-Lite datasets, as a multiset of records (Altair names a
dataset by its content's hash, so the names differ where only an ignored column does). Prints one
line per file and exits 1 when anything differs or is missing on one side.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import pandas as pd

#: The versions and the code identity: they name what ran, not what it found.
PROVENANCE = ("python", "torch", "fastai", "dmlbench", "numpy", "git_commit", "git_dirty", "code_hash")
#: Measured times and memory: never the same twice.
TIMING = re.compile(r"(seconds|minutes)$|^max_rss_mb$")
#: Tables of where the time went, whose ``share`` column is a share of time.
RUNTIME_TABLE = re.compile(r"(^|-)runtime")


def ignored(table: str, column: str) -> bool:
    """Is ``column`` of ``table`` (a file name without suffix) provenance or timing?"""
    return (
        column in PROVENANCE or bool(TIMING.search(column)) or (column == "share" and bool(RUNTIME_TABLE.search(table)))
    )


def compare_table(a: Path, b: Path) -> tuple[str | None, list[str]]:
    """(None if equal, else what differs; the columns left out) of two parquet or CSV tables."""
    if a.suffix == ".csv":
        left, right = (pd.read_csv(p, dtype=str, keep_default_na=False) for p in (a, b))
    else:
        left, right = pd.read_parquet(a), pd.read_parquet(b)
    skip = sorted({c for c in [*left.columns, *right.columns] if ignored(a.stem, c)})
    left, right = left.drop(columns=skip, errors="ignore"), right.drop(columns=skip, errors="ignore")
    if list(left.columns) != list(right.columns):
        return f"columns differ: {list(left.columns)} vs {list(right.columns)}", skip
    if left.shape != right.shape:
        return f"shape {left.shape} vs {right.shape}", skip
    try:
        pd.testing.assert_frame_equal(left, right, check_exact=True)
    except AssertionError as exc:
        return " ".join(str(exc).split())[:300], skip
    return None, skip


def figure_data(path: Path) -> list[str]:
    """The figure's datasets, each its records without ignored fields, as sorted canonical JSON."""
    spec = json.loads(path.read_text())
    datasets = list(spec.get("datasets", {}).values())

    def inline(node):  # data given in place ({"data": {"values": [...]}}) at any level
        if isinstance(node, dict):
            data = node.get("data")
            if isinstance(data, dict) and isinstance(data.get("values"), list):
                datasets.append(data["values"])
            for value in node.values():
                inline(value)
        elif isinstance(node, list):
            for value in node:
                inline(value)

    inline({k: v for k, v in spec.items() if k != "datasets"})
    cleaned = []
    for records in datasets:
        rows = [
            {k: v for k, v in r.items() if not ignored(path.name, k)} if isinstance(r, dict) else r for r in records
        ]
        cleaned.append(json.dumps(rows, sort_keys=True))
    return sorted(cleaned)


def compare(before: Path, after: Path) -> int:
    """Print the comparison of two results folders; the number of files that differ or are missing."""
    problems = 0
    groups = [("tables", ("*.parquet", "*.csv")), ("figures", ("*.vl.json",))]
    for folder, patterns in groups:
        names = sorted({p.name for root in (before, after) for pat in patterns for p in (root / folder).glob(pat)})
        for name in names:
            a, b = before / folder / name, after / folder / name
            if not (a.is_file() and b.is_file()):
                print(f"MISSING  {folder}/{name}: only in {before if a.is_file() else after}")
                problems += 1
                continue
            if folder == "tables":
                diff, skip = compare_table(a, b)
                note = f" (left out: {', '.join(skip)})" if skip else ""
            else:
                diff = None if figure_data(a) == figure_data(b) else "the figure's data differ"
                note = " (data values)"
            print(f"{'same' if diff is None else 'DIFFERS'}     {folder}/{name}{note}" + (f": {diff}" if diff else ""))
            problems += diff is not None
        print(f"{folder}: {len(names)} files compared")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before", type=Path, help="a results folder (holding tables/ and figures/)")
    ap.add_argument("after", type=Path, help="the results folder to compare with it")
    args = ap.parse_args(argv)
    for root in (args.before, args.after):
        if not (root / "tables").is_dir():
            ap.error(f"{root} has no tables/ folder: give a results folder")
    problems = compare(args.before, args.after)
    print("identical, provenance and timing left out" if not problems else f"{problems} file(s) differ or are missing")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
