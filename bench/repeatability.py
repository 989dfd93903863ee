"""Run-to-run repeatability: the same config twice, AUROC compared per (run, case, scorer).

On the CPU the two runs must be identical; on a GPU (non-deterministic kernels) the
target is a maximum AUROC difference of 0.005. Prints a table and writes
bench/results/repeatability-<device>.json.

    python bench/repeatability.py --config config/test.yaml --device cuda
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from dmlbench.io import write_json  # noqa: E402


def run(workdir: Path, config: Path, device: str, cores: int) -> pd.DataFrame:
    env = {
        **os.environ,
        "DMLBENCH_DEVICE": device,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    subprocess.run(
        [
            str(Path(sys.executable).parent / "snakemake"),
            "results/tables/metrics.parquet",
            "-s",
            str(ROOT / "Snakefile"),
            "--directory",
            str(workdir),
            "--configfile",
            str(config),
            "--cores",
            str(cores),
            "--resources",
            "gpu=1",
        ],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    return pd.read_parquet(workdir / "results/tables/metrics.parquet")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "config" / "test.yaml"))
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda (passed as DMLBENCH_DEVICE)")
    ap.add_argument("--cores", type=int, default=2)
    args = ap.parse_args()
    import torch

    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device
    label = torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu"
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        first = run(Path(a), Path(args.config), device, args.cores)
        second = run(Path(b), Path(args.config), device, args.cores)
    keys = ["dataset", "n_anomaly", "method", "n_per_class", "seed", "case", "scorer", "metric"]
    both = first.merge(second, on=keys, suffixes=("_1", "_2"))
    auroc = both[both.metric == "auroc"]
    diff = (auroc["value_1"] - auroc["value_2"]).abs()
    per_method = auroc.assign(diff=diff).groupby("method")["diff"].max()
    target = 0.0 if device == "cpu" else 0.005
    result = {
        "device": label,
        "config": str(args.config),
        "n_values": int(len(auroc)),
        "max_abs_auroc_difference": float(diff.max()),
        "mean_abs_auroc_difference": float(diff.mean()),
        "max_by_method": {k: float(v) for k, v in per_method.items()},
        "target": target,
        "meets_target": bool(diff.max() <= target),
    }
    print("| method | max |ΔAUROC| |\n|---|---|")
    for method, value in per_method.items():
        print(f"| {method} | {value:.6f} |")
    print(
        f"\nmax {result['max_abs_auroc_difference']:.6f} over {len(auroc)} AUROC values (target {target}) "
        f"on {label}: {'met' if result['meets_target'] else 'NOT met'}"
    )
    out = ROOT / "bench" / "results" / f"repeatability-{label.replace(' ', '_')}.json"
    write_json(out, result)
    print(f"written: {out}")


if __name__ == "__main__":
    main()
