"""How long Snakemake takes to parse the workflow and build its DAG (`snakemake -n`), which every
cluster or cloud job repeats, and which heavy packages that imports.

Runs `snakemake -n --configfile <config>` --repeat times for the working tree and, with --rev, for
a git revision of this repository (its Snakefile, rules and src/ exported to a temp folder), one
after the other in turn so both see the same machine load. Prints a table (median wall and CPU
seconds, peak memory, heavy packages imported) and writes bench/results/parse_time.json.

    python -m bench.parse_time --rev 33f5515 --repeat 5
"""

from __future__ import annotations

import argparse
import io
import os
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from bench.common import RESULTS, ROOT, write_result

HEAVY = ("torch", "torchvision", "fastai", "altair", "vl_convert", "sklearn", "matplotlib", "scipy", "pandas")


def export(rev: str, dest: Path) -> Path:
    """The Snakefile, rules/, config/, profiles/, schemas/ and src/ of ``rev`` under ``dest``."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "Snakefile", "rules", "config", "profiles", "schemas", "src"],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def one_parse(tree: Path, config: str, workdir: Path) -> dict:
    """One `snakemake -n` of the workflow in ``tree``: wall and CPU seconds, peak RSS, heavy imports."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tree / "src"), os.environ.get("PYTHONPATH")]))}
    cmd = [
        sys.executable,
        "-X",
        "importtime",
        "-m",
        "snakemake",
        "-s",
        str(tree / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(tree / config),
        "-n",
        "--quiet",
        "rules",
    ]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"snakemake -n failed for {tree}:\n{stderr[-3000:]}")
    modules = re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)$", stderr, re.M)
    heavy = sorted({m.split(".")[0] for m in modules if m.split(".")[0] in HEAVY})
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "max_rss_mb": usage.ru_maxrss / 1024,
        "heavy_imports": heavy,
    }


def summary(runs: list[dict]) -> dict:
    return {
        "wall_s_median": statistics.median(r["wall_s"] for r in runs),
        "cpu_s_median": statistics.median(r["cpu_s"] for r in runs),
        "max_rss_mb": max(r["max_rss_mb"] for r in runs),
        "heavy_imports": runs[0]["heavy_imports"],
        "runs": runs,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="config/config.yaml", help="config, relative to the repository")
    ap.add_argument("--rev", help="git revision to compare with (e.g. the commit before a change)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"working tree": ROOT}
        if args.rev:
            trees[f"rev {args.rev}"] = export(args.rev, Path(tmp) / "rev")
        runs = {name: [] for name in trees}
        for i in range(args.repeat):  # interleaved: both see the same load
            for name, tree in trees.items():
                runs[name].append(one_parse(tree, args.config, Path(tmp) / f"work{i}"))
    result = {
        "config": args.config,
        "repeat": args.repeat,
        "cpus": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
        "trees": {name: summary(r) for name, r in runs.items()},
    }
    print(
        f"`snakemake -n --configfile {args.config}`, median of {args.repeat}, load average "
        f"{result['load_average_1min']:.1f} on {result['cpus']} CPUs\n"
    )
    print("| tree | wall s | CPU s | peak MB | heavy packages imported |\n|---|---|---|---|---|")
    for name, s in result["trees"].items():
        print(
            f"| {name} | {s['wall_s_median']:.2f} | {s['cpu_s_median']:.2f} | {s['max_rss_mb']:.0f} | "
            f"{', '.join(s['heavy_imports']) or '-'} |"
        )
    out = RESULTS / "parse_time.json"
    write_result(out, result)
    print(f"\nwritten: {out}")


if __name__ == "__main__":
    main()
