"""Run-to-run repeatability: the same config twice, AUROC compared per (run, case, scorer).

On the CPU the two runs must be identical; on a GPU (non-deterministic kernels) the
target is a maximum AUROC difference of 0.005. Prints a table and writes
bench/results/repeatability-<device>.json.

    python -m bench.repeatability --config config/test.yaml --device cuda
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

import pandas as pd

from bench.common import RESULTS, ROOT, snakemake_cmd, snakemake_env, write_result


def run(workdir: Path, config: Path, device: str, cores: int) -> pd.DataFrame:
    cmd = snakemake_cmd(
        workdir, config, "--cores", str(cores), "--resources", "gpu=1", targets=("results/tables/metrics.parquet",)
    )
    subprocess.run(cmd, check=True, env=snakemake_env(DMLBENCH_DEVICE=device), stdout=subprocess.DEVNULL)
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
    out = RESULTS / f"repeatability-{label.replace(' ', '_')}.json"
    write_result(out, result)
    print(f"written: {out}")


if __name__ == "__main__":
    main()
