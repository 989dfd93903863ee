"""What `training.deterministic: true` costs, and whether runs then repeat bit for bit.

Trains one run (every case of one method) with the flag off and on, alternating, each in a fresh
process (the switches are process-wide, and cuBLAS and Inductor read theirs at start-up, as in a
train job), ``--repeats`` times each. Reports the median training seconds per mode (run.json's
``training`` phase: the fits, without start-up and embeddings), their ratio and the median of the
ratios of each back-to-back pair, and whether the embeddings of repeated runs are identical (a
SHA-256 over every array of embeddings.npz).

On the CPU the default is config/test.yaml's first run (small CNN on 12x12 digits); on a GPU pass
a config whose run is large enough to time, or use the default GPU setting: ResNet18 on the digits
upscaled to 32x32, 5 epochs (no download needed). Writes bench/results/deterministic-<device>.json.

    python -m bench.deterministic                     # CPU, config/test.yaml
    python -m bench.deterministic --device cuda       # GPU: ResNet18, digits at 32x32
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from bench.common import RESULTS, ROOT, snakemake_env, write_result

#: The GPU default: a run whose fits take seconds, on data that ships with scikit-learn.
GPU_OVERRIDES = {"model": {"backbone": "resnet18", "embedding_dim": 512}, "image_size": 32, "epochs": 5}


def _config(path: str, device: str, epochs: int | None) -> dict:
    import yaml

    from dmlbench.config import read_config_file

    raw = read_config_file(path)
    if device.startswith("cuda") and path == str(ROOT / "config" / "test.yaml"):
        raw = yaml.safe_load(yaml.safe_dump(raw))
        raw["model"] = {**raw.get("model", {}), **GPU_OVERRIDES["model"]}
        for entry in raw["datasets"].values():
            if entry["source"] == "digits":
                entry["image_size"] = GPU_OVERRIDES["image_size"]
        raw.setdefault("training", {})["epochs"] = GPU_OVERRIDES["epochs"]
    if epochs is not None:
        raw.setdefault("training", {})["epochs"] = epochs
    return raw


def child(args) -> None:
    """One run in this process, with training.deterministic as asked; prints its timing as JSON."""
    import torch

    from dmlbench.config import train_spec, validate
    from dmlbench.train import determinism

    config = validate(_config(args.config, args.device, args.epochs), args.config)
    cond = config["conditions"][0]
    method = args.method or next(iter(config["methods"]))
    spec = train_spec(
        config, cond["dataset"], cond["n_anomaly"][0], method, config["n_per_class"][0], config["seeds"][0]
    )
    spec["training"]["deterministic"] = bool(args.deterministic)
    determinism.prepare_environment([spec])  # as `dmlbench train` does: before CUDA and Inductor start
    from dmlbench.data.sources import load_source
    from dmlbench.phases import PhaseClock
    from dmlbench.train.run import train_run

    if args.threads:
        torch.set_num_threads(args.threads)
    ds = load_source(config["datasets"][cond["dataset"]])
    run = train_run(ds, spec, device=args.device, threads=args.threads, clock=PhaseClock())
    digest = hashlib.sha256()
    for key in sorted(run.arrays):
        digest.update(key.encode() + run.arrays[key].tobytes())
    print(
        json.dumps(
            {
                "training_s": run.meta["phases"]["training"]["wall_s"],
                "wall_s": run.meta["wall_seconds"],
                "device": run.meta["device"],
                "compiled": run.meta["compiled"],
                "precision": run.meta["precision"],
                "epochs": spec["training"]["epochs"],
                "cases": len(run.meta["cases"]),
                "embeddings_sha256": digest.hexdigest(),
                "switches": determinism.state(),
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "config" / "test.yaml"))
    ap.add_argument("--method", help="method label of the config (default: its first)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--repeats", type=int, default=3, help="runs per mode (alternating off, on)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=int, help="override training.epochs")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--deterministic", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    runs: dict[str, list[dict]] = {"off": [], "on": []}
    for i in range(args.repeats):
        for mode in ("off", "on"):
            cmd = [sys.executable, "-m", "bench.deterministic", "--child", "--deterministic", str(int(mode == "on"))]
            cmd += ["--config", args.config, "--device", args.device, "--threads", str(args.threads)]
            cmd += ["--method", args.method] if args.method else []
            cmd += ["--epochs", str(args.epochs)] if args.epochs else []
            # the run writes nothing: its arrays are hashed in memory
            out = subprocess.run(cmd, cwd=ROOT, env=snakemake_env(), capture_output=True, text=True, check=False)
            if out.returncode != 0:
                raise SystemExit(f"bench.deterministic: the {mode} run failed:\n{out.stderr[-3000:]}")
            runs[mode].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"repeat {i + 1} {mode}: training {runs[mode][-1]['training_s']:.3f} s", flush=True)
    median = {mode: statistics.median(r["training_s"] for r in rs) for mode, rs in runs.items()}
    digests = {mode: sorted({r["embeddings_sha256"] for r in rs}) for mode, rs in runs.items()}
    device = runs["off"][0]["device"]
    result = {
        "device": device,
        "config": str(Path(args.config).relative_to(ROOT) if Path(args.config).is_relative_to(ROOT) else args.config),
        "overrides": GPU_OVERRIDES if args.device.startswith("cuda") else None,
        "method": args.method,
        "threads": args.threads,
        "repeats": args.repeats,
        "training_s": {mode: [r["training_s"] for r in rs] for mode, rs in runs.items()},
        "median_training_s": median,
        "on_over_off": median["on"] / median["off"],
        # each repeat's on/off pair ran back to back: its ratio is less at the mercy of a load that drifts
        "paired_on_over_off": [on["training_s"] / off["training_s"] for off, on in zip(runs["off"], runs["on"])],
        "median_paired_on_over_off": statistics.median(
            on["training_s"] / off["training_s"] for off, on in zip(runs["off"], runs["on"])
        ),
        "load_average_1min_at_end": os.getloadavg()[0],
        "epochs": runs["off"][0]["epochs"],
        "cases": runs["off"][0]["cases"],
        "compiled": runs["off"][0]["compiled"],
        "precision": runs["off"][0]["precision"],
        # repeatable: every repeat of a mode gave the same embeddings
        "repeatable": {mode: len(d) == 1 for mode, d in digests.items()},
        "on_equals_off": digests["on"] == digests["off"],
        "switches_on": runs["on"][0]["switches"],
    }
    print(
        f"\n{device}: training median {median['off']:.3f} s off, {median['on']:.3f} s on "
        f"(x{result['on_over_off']:.3f}; paired median x{result['median_paired_on_over_off']:.3f}); repeatable off {result['repeatable']['off']}, "
        f"on {result['repeatable']['on']}; on == off {result['on_equals_off']}"
    )
    label = "cpu" if device.startswith("cpu") else device.replace(" ", "_")
    write_result(RESULTS / f"deterministic-{label}.json", result)


if __name__ == "__main__":
    main()
