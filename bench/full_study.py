"""Wall time of a whole study on one machine: the config's snakemake run, timed per rule.

Runs the repository's Snakefile on a config (default config/config.yaml: the full grid, the
annex A.2 sizes and the closed-set models) in a scratch folder, from nothing:

    snakemake --snakefile Snakefile --directory <scratch> --configfile <config> --cores N --resources gpu=1

then reads Snakemake's benchmark files (benchmarks/<rule>/...tsv) for the time of every rule's
jobs, the jobs' run.json for precision and compilation, and results/tables/closed_set.parquet
for the closed-set test accuracy of Conventional trained on all classes. Writes
bench/results/full_study-<device>.json (…-<config>.json for a config other than config.yaml)
and prints a table. Targets on one H100: the whole config in <= 30 minutes; closed-set
accuracy >= 92 % on CIFAR-10, >= 99.3 % on MNIST, >= 93 % on Fashion-MNIST, with the same
recipe.

    python -m bench.full_study --cores 16                     # config/config.yaml on a GPU
    python -m bench.full_study --configfile config/test.yaml --cores 2   # CPU smoke run
    python -m bench.full_study --estimate                     # no run: images and minutes

Relative dataset roots in the config (data/cifar10, ...) resolve inside the scratch folder;
--link puts folders there (default: the repository's data/ when it exists), e.g.
--link /data/cifar10-jpg=data/cifar10-jpg.

--estimate runs no training: it takes every train job's runs (their specs) from a snakemake dry
run, counts the images each run trains on and evaluates, and converts them to GPU seconds with
training throughputs (images/s per input kind; default: assumptions stated in the output, or the
compiled (c) rates of a bench/train_speed.py result with --speed-json). It adds what is not
training, per process (start-up, data, compile: cold for the first compiled job of an input
kind, warm after it, the last run's files written), per case seed (the backbone's build), per
run (its model copied, its files handed to the background writer), per case (set-up) and per
epoch (bookkeeping) - the assumptions printed with the result, or measured ones from a
bench/overhead.py result (--overhead-json) - and prints their share of the GPU time, and that
share with single assumptions changed (SENSITIVITY), for the workflow's layout (one
process per condition: every method of a (dataset, n_anomaly, n_per_class, seed), and of annex A.2
every size and method of a (dataset, n_anomaly, seed)) and, for
comparison, one process per run (the layout before issue 16).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from bench.common import RESULTS, ROOT, snakemake_cmd, snakemake_env, write_result

# The model itself, shared with the workflow's no-GPU warning (torch-free).
from dmlbench.config.estimate import (  # noqa: F401 (re-exported: the tests and bench/overhead.py use them here)
    ASSUMED,
    COMPILE_MIN_IMAGES,
    OVERHEADS,
    SOURCE_SIZES,
    compiles,
    job_group,
    job_images,
    layout_seconds,
    train_job_specs,
)

TARGET_MINUTES = 30.0
#: Start-up and overhead (everything but training steps and evaluation) at most this share of the GPU time.
TARGET_OVERHEAD_SHARE = 0.10
#: Closed-set test accuracy targets for Conventional trained on all classes, by dataset source.
ACCURACY_TARGETS = {"cifar10": 0.92, "mnist": 0.993, "fashion_mnist": 0.93}

# --------------------------------------------------------------------------- estimate
#: Where each assumption comes from (printed with the estimate).
ASSUMPTION_NOTES = {
    "startup_s": "per process: Python, torch, fastai and torch._dynamo imports (6.1 s wall per train process "
    "in bench/overhead.py's start-up probe on the 2-core CPU, near idle; 4.6 s of it imports; a GPU "
    "node's faster cores would take less) and the CUDA context (about 2 s, assumed)",
    "data_s": "per process: the dataset npz read and moved to the GPU (CIFAR-10: 180 MB)",
    "compile_cold_s": "per process, first compiled job of an input kind: torch.compile with empty caches "
    "(issue 16: 36 s measured, forced on)",
    "compile_warm_s": "per later compiled process: Inductor's caches warm (issue 16: 3-4 s); later runs of a "
    "process reuse the compiled code (0 s)",
    "case_build_s": "per process and case seed: the case's fresh backbone built once on the CPU (ResNet18's "
    "initialisation: 0.18 s measured on the 2-core CPU) and moved to the GPU, where the job's "
    "other methods copy it from (dmlbench.train.seeded_memo.seeded_state_memo); before issue 16 "
    "(one process per run) per case",
    "model_copy_s": "per run: its model made at the start from the memoised build of the first case's backbone "
    "(a deep copy: 40 ms measured for ResNet18 on the 2-core CPU)",
    "run_overhead_s": "per run: the embeddings packed (float16) and handed to the writer thread, run.json's record",
    "write_s": "per process: the last run's embeddings.npz (up to 560 MB for CIFAR-10), train_log.csv, run.json "
    "and the run cache link; every earlier run's files are written while the next run trains "
    "(a background writer); before issue 16 per run",
    "case_overhead_s": "per case: Learner and batches set up (the loop probe: 3-11 ms on the 2-core CPU with an "
    "idle backbone, varying with the machine's load), the backbone's weights copied on the "
    "GPU from the kept build (one copy of 131 tensors) and the head built",
    "epoch_overhead_s": "per epoch: what the GPU waits for the host at an epoch's boundary. No host sync in an "
    "epoch or at its end (issue 16: the Recorder's averages stay on the device, the epoch "
    "log reads an epoch late), so fastai's per-epoch callbacks (the loop probe: 8-19 ms per "
    "epoch of 4 batches and a validation pass on the 2-core CPU, the batches' own launches "
    "included) run while the GPU works through the queued batches; 1 ms assumed for where "
    "the host falls behind. Not measured on a GPU: if annex A.2's eager batches of 128 are "
    "launch-bound, the host's whole per-epoch time is GPU idle (see the sensitivity line)",
}
#: The loop before issue 16, for the per-run layout's comparison: a host sync at every epoch's end
#: (5 ms assumed) and every case's weights built on the CPU and moved over (50 ms assumed).
BEFORE_ISSUE_16 = {"epoch_overhead_s": 0.005, "case_overhead_s": 0.05}
#: Alternative assumptions whose overhead share the estimate also prints (how much rides on them).
SENSITIVITY = {"epoch_overhead_s": 0.005, "startup_s": 12.0}


def train_jobs_from_dry_run(configfile: Path) -> list[list[dict]]:
    """The runs (specs) of every train job of a config, as the workflow's spec rules write them
    (dmlbench.config.estimate.train_job_specs, the workflow's own plan): one list per job, i.e. per
    process. (The name is from when they were read off a dry run's printed commands.)"""
    from dmlbench.config import load_config

    return train_job_specs(load_config(str(configfile)))


def dataset_profile(spec: dict, config: dict, workdir: Path | None) -> tuple[list[int], int, str] | None:
    """(train images per class, test images, input kind) of a job's dataset."""
    if spec["source"] in SOURCE_SIZES:
        return SOURCE_SIZES[spec["source"]]
    if workdir is not None and (workdir / "results" / "data" / f"{spec['dataset']}.npz").exists():
        with np.load(workdir / "results" / "data" / f"{spec['dataset']}.npz") as npz:
            y, shape = npz["y_train"], npz["x_train"].shape
            n_test = len(npz["y_test"])
        return np.bincount(y).tolist(), n_test, f"{'rgb' if shape[3] == 3 else 'grey'}{shape[1]}"
    root = config["datasets"][spec["dataset"]].get("root")
    if spec["source"] == "folder" and root and (Path(root) / "train").is_dir():
        train = sorted(p for p in (Path(root) / "train").iterdir() if p.is_dir())
        counts = [sum(1 for _ in d.iterdir()) for d in train]
        n_test = sum(sum(1 for _ in d.iterdir()) for d in (Path(root) / "test").iterdir() if d.is_dir())
        from PIL import Image

        first = next(f for f in train[0].iterdir())
        with Image.open(first) as im:
            kind = f"{'grey' if im.mode in ('L', '1') else 'rgb'}{im.size[1]}"
        return counts, n_test, kind
    return None


def estimate(configfile: Path, speed: dict, workdir: Path | None = None) -> dict:
    """GPU minutes of a config's train jobs, their split into training, evaluation, start-up and
    overhead, for the workflow's layout and the per-run one."""
    config = yaml.safe_load(configfile.read_text())
    jobs = train_jobs_from_dry_run(configfile)
    profiles, unknown = {}, set()
    for job in jobs:
        for spec in job:
            if spec["dataset"] not in profiles and spec["dataset"] not in unknown:
                profile = dataset_profile(spec, config, workdir)
                if profile is None:
                    unknown.add(spec["dataset"])
                else:
                    profiles[spec["dataset"]] = profile
    jobs = [[s for s in job if s["dataset"] in profiles] for job in jobs]
    jobs = [job for job in jobs if job]
    now, before = (
        layout_seconds(jobs, profiles, speed, per_run=False),
        layout_seconds(jobs, profiles, {**speed, **BEFORE_ISSUE_16}, per_run=True),
    )
    sensitivity = {
        f"{k}={v:g}": layout_seconds(jobs, profiles, {**speed, k: v}, per_run=False)["overhead_share"]
        for k, v in SENSITIVITY.items()
    }
    seeds = config.get("seeds", [0])
    return {
        "config": str(configfile),
        "train_jobs": now["processes"],
        "runs": sum(len(j) for j in jobs),
        "seeds": seeds,
        "assumptions": speed,
        "assumption_notes": ASSUMPTION_NOTES,
        "rows": now["rows"],
        "total_minutes": now["total_minutes"],
        "seconds": now["seconds"],
        "overhead_share": now["overhead_share"],
        "startup_share": now["startup_share"],
        "per_run_layout": {
            k: before[k] for k in ("processes", "total_minutes", "seconds", "overhead_share", "startup_share")
        },
        "target_overhead_share": TARGET_OVERHEAD_SHARE,
        "sensitivity": sensitivity,
        "total_train_images": int(sum(r["train_images"] for r in now["rows"])),
        "total_eval_images": int(sum(r["eval_images"] for r in now["rows"])),
        "datasets_without_size": sorted(unknown),
    }


def speed_from_json(path: Path, batch_size: int = 512) -> dict:
    """Compiled (c) images/s per input kind from a bench/train_speed.py result, at the batch size
    closest to `batch_size`."""
    data = json.loads(path.read_text())
    ips = {}
    for kind, variants in data["images_per_second"].items():
        rates = {int(bs): v for bs, v in variants.get("compiled", {}).items()}
        if rates:
            ips[kind] = rates[min(rates, key=lambda b: abs(b - batch_size))]
    return {**ASSUMED, "images_per_second": {**ASSUMED["images_per_second"], **ips}, "source": str(path)}


def overheads_from_json(path: Path, speed: dict) -> dict:
    """The measured overheads of a bench/overhead.py result (its ``per_unit``) in place of the
    assumed ones; those it did not measure stay assumed."""
    try:
        measured = json.loads(path.read_text()).get("per_unit", {})
    except (OSError, json.JSONDecodeError, AttributeError) as exc:
        raise SystemExit(
            f"--overhead-json {path}: not a readable bench/overhead.py result ({exc}); give the JSON "
            "that bench/overhead.py wrote (bench/results/overhead-*.json)"
        ) from None
    known = {k: float(v) for k, v in measured.items() if k in ASSUMED and k != "images_per_second" and v is not None}
    source = f"{path} ({', '.join(sorted(known)) or 'nothing'} measured)"
    if speed.get("overhead_source"):
        source = f"{speed['overhead_source']}; {source}"
    return {**speed, **known, "overhead_source": source}


def print_estimate(est: dict) -> None:
    print(
        f"config: {est['config']}: {est['runs']} runs in {est['train_jobs']} train jobs (processes), "
        f"seeds {est['seeds']}"
    )
    print(
        "| group | dataset | input | processes | runs | epochs / lr / bs | train images (M) | eval images (M) "
        "| training min | start-up + overhead min | minutes |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in est["rows"]:
        rec = r["recipe"]
        print(
            f"| {r['group']} | {r['dataset']} | {r['input']} | {r['processes']} | {r['runs']} | "
            f"{rec.get('epochs')} / {rec.get('lr')} / {rec.get('batch_size')} | {r['train_images'] / 1e6:.1f} | "
            f"{r['eval_images'] / 1e6:.1f} | {(r['train_s'] + r['eval_s']) / 60:.1f} | {r['overhead_s'] / 60:.1f} | "
            f"{r['minutes']:.1f} |"
        )
    sec, before = est["seconds"], est["per_run_layout"]
    work = sec["train"] + sec["eval"]
    print(
        f"total: {est['total_train_images'] / 1e6:.1f} M training images, {est['total_eval_images'] / 1e6:.1f} M "
        f"evaluated: about {est['total_minutes']:.0f} minutes on one GPU (target {TARGET_MINUTES:g}); grid and "
        f"annex scale with the number of seeds"
    )
    print(
        f"GPU time: training steps {sec['train'] / 60:.1f} min, evaluation (validation, embeddings) "
        f"{sec['eval'] / 60:.1f} min; start-up and overhead {sum(sec[k] for k in OVERHEADS) / 60:.1f} min = "
        f"{est['overhead_share']:.1%} of the GPU time (target at most {est['target_overhead_share']:.0%}): "
        + ", ".join(f"{k} {sec[k]:.0f} s" for k in OVERHEADS)
        + f"; process start-up, data and compile alone {est['startup_share']:.1%}"
    )
    print(
        f"one process per run instead (before issue 16): {before['processes']} processes, "
        f"{before['total_minutes']:.0f} minutes, start-up and overhead {before['overhead_share']:.1%}"
    )
    if est.get("sensitivity"):
        print(
            "sensitivity: start-up and overhead share with one assumption changed: "
            + ", ".join(f"{k} s: {v:.1%}" for k, v in est["sensitivity"].items())
        )
    a = est["assumptions"]
    print(
        f"assumptions: {a['images_per_second']} training images/s"
        + (f" (from {a['source']})" if "source" in a else " (assumed, not measured)")
        + f", an evaluated image = {a['eval_cost']} of a trained one; "
        + (f"overheads from {a['overhead_source']}" if "overhead_source" in a else "overheads assumed")
        + ":"
    )
    for key, note in est["assumption_notes"].items():
        print(f"  {key} = {a[key]:g}: {note}")
    print(f"  work done: {work / 60:.1f} min; everything else is in 'start-up and overhead'")
    if est["datasets_without_size"]:
        print(f"not counted (size unknown before `prepare`): {', '.join(est['datasets_without_size'])}")


# --------------------------------------------------------------------------- measured run
def rule_minutes(workdir: Path) -> tuple[dict, dict, dict]:
    """Per rule: summed job minutes and job counts from benchmarks/<rule>/**.tsv; train minutes
    split into the main grid, the annex sizes and the closed-set models."""
    minutes: dict[str, float] = {}
    jobs: dict[str, int] = {}
    train_groups: dict[str, float] = {}
    root = workdir / "benchmarks"
    for tsv in sorted(root.rglob("*.tsv")):
        rel = tsv.relative_to(root)
        rule = rel.parts[0]
        seconds = float(pd.read_csv(tsv, sep="\t")["s"].sum())
        minutes[rule] = minutes.get(rule, 0.0) + seconds / 60
        jobs[rule] = jobs.get(rule, 0) + 1
        # benchmarks/train/{dataset}/a{n}/n{N}/s{seed}.tsv (a job of every method; before: .../a{n}/{method}/n{N}/...)
        a = next((part for part in rel.parts[2:] if re.fullmatch(r"a\d+", part)), None)
        n = next((part for part in rel.parts[3:] if re.fullmatch(r"n(all|\d+)", part)), None)
        if rule == "train" and a and n:
            group = "closed_set" if a == "a0" else ("grid" if n == "nall" else "annex")
            train_groups[group] = train_groups.get(group, 0.0) + seconds / 60
    return ({k: round(v, 2) for k, v in minutes.items()}, jobs, {k: round(v, 2) for k, v in train_groups.items()})


def run_summary(workdir: Path) -> dict:
    runs = [json.loads(p.read_text()) for p in sorted((workdir / "results" / "runs").rglob("run.json"))]
    if not runs:
        return {"train_jobs": 0}
    fallbacks = sorted({r["compile_fallback"] for r in runs if r.get("compile_fallback")})
    caches = [r["compile_cache"]["cache"] for r in runs if r.get("compile_cache")]
    return {
        "train_jobs": len(runs),
        "precision": sorted({str(r.get("precision")) for r in runs}),
        "compile_cache": {c: caches.count(c) for c in sorted(set(caches))},
        "compiled_jobs": sum(bool(r.get("compiled")) for r in runs),
        "compile_fallbacks": fallbacks,
        "compile_minutes": round(sum(r.get("compile_seconds", 0.0) for r in runs) / 60, 2),
        "train_wall_minutes": round(sum(r.get("wall_seconds", 0.0) for r in runs) / 60, 2),
        "devices": sorted({r.get("device", "?") for r in runs}),
    }


def closed_set_accuracy(workdir: Path, config: dict) -> tuple[dict, str | None]:
    """Mean closed-set test accuracy of Conventional per dataset (over its seeds)."""
    path = workdir / "results" / "tables" / "closed_set.parquet"
    if not path.exists():
        return {}, (
            f"{path.relative_to(workdir)} was not produced (the config trains no closed-set models, "
            f"or this workflow version has no closed_set rule): no accuracy to report"
        )
    table = pd.read_parquet(path)
    missing = {"dataset", "method", "accuracy"} - set(table.columns)
    if missing:
        return {}, f"{path.name} lacks the columns {sorted(missing)}"
    conv = table[table["method"] == "conventional"]
    if conv.empty:
        return {}, f"{path.name} has no conventional rows (conventional is not among the config's methods)"
    out = {}
    for dataset, rows in conv.groupby("dataset"):
        source = config["datasets"].get(dataset, {}).get("source")
        target = ACCURACY_TARGETS.get(source)
        acc = float(rows["accuracy"].mean())
        out[dataset] = {
            "accuracy": round(acc, 4),
            "seeds": sorted(int(s) for s in rows.get("seed", pd.Series([])).unique()),
            "source": source,
            "target": target,
            "meets_target": None if target is None else bool(acc >= target),
        }
    return out, None


def device_label(cores: int) -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return f"cpu-{cores}cores"


def link_inputs(workdir: Path, links: list[str]) -> list[str]:
    made = []
    for item in links:
        src, _, dest = item.partition("=")
        src_path = Path(src).expanduser().resolve()
        dest_path = workdir / (dest or Path(src).name)
        if not src_path.exists():
            raise SystemExit(f"--link {item}: {src_path} does not exist")
        dest_path.parent.mkdir(parents=True, exist_ok=True)
        if not dest_path.exists():
            dest_path.symlink_to(src_path, target_is_directory=src_path.is_dir())
        made.append(f"{dest_path.relative_to(workdir)} -> {src_path}")
    return made


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configfile", type=Path, default=ROOT / "config" / "config.yaml")
    p.add_argument("--cores", type=int, default=os.cpu_count() or 1, help="snakemake --cores (default: all)")
    p.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="scratch folder for the run (default: a new temp dir, removed unless --keep)",
    )
    p.add_argument("--keep", action="store_true", help="keep the scratch folder (results, logs, benchmarks)")
    p.add_argument(
        "--link",
        action="append",
        default=None,
        metavar="SRC[=DEST]",
        help="symlink SRC into the scratch folder as DEST (default: the repository's data/ if present)",
    )
    p.add_argument("--snakemake-args", default="", help="extra snakemake arguments, one string")
    p.add_argument("--estimate", action="store_true", help="no run: images to process and estimated minutes")
    p.add_argument(
        "--speed-json",
        type=Path,
        default=None,
        help="--estimate: take the compiled images/s from this bench/train_speed.py result",
    )
    p.add_argument(
        "--images-per-second",
        nargs="*",
        default=[],
        metavar="KIND=RATE",
        help="--estimate: training rates, e.g. rgb32=60000 grey28=80000",
    )
    p.add_argument(
        "--overhead-json",
        type=Path,
        nargs="+",
        default=[],
        help="--estimate: the measured overheads of bench/overhead.py results (their per_unit; "
        "a later file's keys over an earlier's)",
    )
    p.add_argument(
        "--out", type=Path, default=None, help="JSON path (default bench/results/full_study-<device>[-<config>].json)"
    )
    args = p.parse_args(argv)
    configfile = args.configfile.resolve()
    config = yaml.safe_load(configfile.read_text())
    stem = "" if configfile.name == "config.yaml" else f"-{configfile.stem}"

    if args.estimate:
        speed = speed_from_json(args.speed_json) if args.speed_json else dict(ASSUMED)
        for path in args.overhead_json:
            speed = overheads_from_json(path, speed)
        for item in args.images_per_second:
            kind, _, rate = item.partition("=")
            speed["images_per_second"] = {**speed["images_per_second"], kind: float(rate)}
        est = estimate(configfile, speed)
        print_estimate(est)
        out = args.out or RESULTS / f"full_study-estimate{stem}.json"
        write_result(out, est)
        return 0

    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="dmlbench-full-study-"))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    if any((workdir / d).exists() for d in ("results", "benchmarks")):
        raise SystemExit(
            f"{workdir} holds results/ or benchmarks/ from an earlier run; the study is timed from "
            f"nothing: give an empty --workdir"
        )
    links = args.link if args.link is not None else ([str(ROOT / "data")] if (ROOT / "data").is_dir() else [])
    linked = link_inputs(workdir, links)
    cmd = snakemake_cmd(
        workdir, configfile, "--cores", str(args.cores), "--resources", "gpu=1", *shlex.split(args.snakemake_args)
    )
    print("running:", shlex.join(cmd), flush=True)
    log_path = workdir / "full_study.snakemake.log"
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.run(cmd, cwd=workdir, env=snakemake_env(), stdout=log, stderr=subprocess.STDOUT)
    total_s = time.perf_counter() - t0
    tail = log_path.read_text().splitlines()[-40:]
    if proc.returncode != 0:
        print("\n".join(tail))
        print(f"snakemake failed with exit status {proc.returncode}; log: {log_path}")

    minutes, jobs, train_groups = rule_minutes(workdir)
    accuracy, accuracy_note = closed_set_accuracy(workdir, config)
    runs = run_summary(workdir)
    from dmlbench.config import load_config, training_recipe

    try:
        recipes = {d: training_recipe(load_config(str(configfile)), d, "all") for d in config["datasets"]}
    except Exception as exc:  # the recipe is documentation here; never lose the timing for it
        recipes = {"error": str(exc)}
    label = device_label(args.cores)
    total_min = total_s / 60
    result = {
        "device": label,
        "config": str(configfile),
        "cores": args.cores,
        "snakemake_exit_status": proc.returncode,
        "total_minutes": round(total_min, 2),
        "minutes_per_rule": minutes,
        "minutes_per_rule_note": "sum of the wall times of the rule's jobs (Snakemake benchmark files); jobs of "
        "different rules run in parallel, so the sum over rules can exceed total_minutes",
        "jobs_per_rule": jobs,
        "train_minutes_by_group": train_groups,
        "runs": runs,
        "accuracy": {d: v["accuracy"] for d, v in accuracy.items()},
        "accuracy_detail": accuracy,
        "accuracy_note": accuracy_note,
        "recipe_per_dataset": recipes,
        "target_minutes": TARGET_MINUTES,
        "meets_time_target": bool(total_min <= TARGET_MINUTES) if proc.returncode == 0 else False,
        # None where no dataset of the config has a target (digits, a user's folder)
        "meets_accuracy_targets": (
            all(checked)
            if (checked := [v["meets_target"] for v in accuracy.values() if v["meets_target"] is not None])
            else None
        ),
        "linked": linked,
        "workdir": str(workdir) if args.keep else None,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
    }
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_")
    out = args.out or RESULTS / f"full_study-{slug}{stem}.json"
    print(f"\ndevice: {label}; config: {configfile.name}; total {total_min:.1f} min (target {TARGET_MINUTES:g})")
    print("| rule | jobs | minutes (sum over jobs) |\n|---|---|---|")
    for rule in sorted(minutes, key=minutes.get, reverse=True):
        print(f"| {rule} | {jobs[rule]} | {minutes[rule]:.2f} |")
    if train_groups:
        print("train minutes by group: " + ", ".join(f"{k} {v:.2f}" for k, v in train_groups.items()))
    if accuracy:
        for d, v in accuracy.items():
            verdict = (
                ""
                if v["target"] is None
                else f" (target {v['target']:.3f}: {'met' if v['meets_target'] else 'NOT met'})"
            )
            print(f"closed-set accuracy, conventional, {d}: {v['accuracy']:.4f}{verdict}")
    else:
        print(f"closed-set accuracy: {accuracy_note}")
    write_result(out, result)
    if not args.keep and args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
