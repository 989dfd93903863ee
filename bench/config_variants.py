"""One config key set to several values: the main grid of a config run once per value, mean AUROC
per method compared (the measurement behind a default, e.g. `model.embedding`).

Each variant is the config with `<key>` set to one value, annex A.2 and the closed-set models
left out (they do not enter the comparison), run through Snakemake up to the tables in its own
folder. Prints a table of mean AUROC (`--scorer`, over every condition, case and seed) per
method and value, with the mean over the conditions' 95 % intervals' half widths, and writes
bench/results/config_variants-<key>-<device>.json.

    python -m bench.config_variants --config config/demo.yaml --key model.embedding --values none linear_bn fastai
    python -m bench.config_variants --key methods.sphereface.anneal_fraction --values 0.06 0.5 --methods sphereface
"""

from __future__ import annotations

import argparse
import copy
import subprocess
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

from bench.common import RESULTS, ROOT, snakemake_cmd, snakemake_env, write_result


def parse_value(text: str):
    """A value as YAML reads it (0.5 -> float, none -> 'none', true -> True)."""
    value = yaml.safe_load(text)
    return "none" if value is None else value


def variant(config: dict, key: str, value, methods: list[str] | None) -> dict:
    cfg = copy.deepcopy(config)
    cfg["annex"] = {"sample_size": []}
    cfg["tsne"] = {"enabled": False}
    if methods:
        cfg["methods"] = {m: cfg["methods"].get(m, {}) for m in methods}
    node = cfg
    *parents, leaf = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return cfg


def run(workdir: Path, config: dict, device: str, cores: int) -> tuple[pd.DataFrame, float]:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = snakemake_cmd(
        workdir, path, "--cores", str(cores), "--resources", "gpu=1", targets=("results/tables/summary.parquet",)
    )
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=snakemake_env(DMLBENCH_DEVICE=device), stdout=subprocess.DEVNULL)
    return pd.read_parquet(workdir / "results/tables/summary.parquet"), time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "config" / "demo.yaml"))
    ap.add_argument("--key", required=True, help="dotted config key, e.g. model.embedding")
    ap.add_argument("--values", nargs="+", required=True)
    ap.add_argument("--methods", nargs="*", help="only these methods (default: the config's)")
    ap.add_argument("--scorer", default="cosine_k1")
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda (passed as DMLBENCH_DEVICE)")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--out", help="folder for the runs (default: a temporary one)")
    args = ap.parse_args()
    import torch

    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device
    label = torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu"
    config = yaml.safe_load(Path(args.config).read_text())
    rows, seconds = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.out or tmp)
        for text in args.values:
            value = parse_value(text)
            summary, seconds[str(value)] = run(
                base / f"{args.key}={value}", variant(config, args.key, value, args.methods), device, args.cores
            )
            auroc = summary[
                (summary.metric == "auroc")
                & (summary.scorer == args.scorer)
                & (summary.n_per_class == summary.n_per_class.iloc[0])
            ]
            for method, grp in auroc.groupby("method"):
                rows.append(
                    {
                        "value": str(value),
                        "method": method,
                        "mean_auroc": float(grp["mean"].mean()),
                        "mean_ci_half_width": float(((grp["ci_high"] - grp["ci_low"]) / 2).mean()),
                        "by_condition": {f"{r.dataset}/a{r.n_anomaly}": float(r.mean) for r in grp.itertuples()},
                    }
                )
    table = pd.DataFrame(rows)
    wide = table.pivot(index="method", columns="value", values="mean_auroc")[[str(parse_value(v)) for v in args.values]]
    wide.loc["mean over methods"] = wide.mean()
    print(f"mean AUROC ({args.scorer}), {args.key} = ...")
    print(wide.round(4).to_markdown())
    out = RESULTS / f"config_variants-{args.key}-{label.replace(' ', '_')}.json"
    write_result(
        out,
        {
            "device": label,
            "config": str(args.config),
            "key": args.key,
            "values": args.values,
            "scorer": args.scorer,
            "rows": rows,
            "mean_over_methods": wide.loc["mean over methods"].to_dict(),
            "seconds": seconds,
        },
    )


if __name__ == "__main__":
    main()
