"""bench/full_study.py --estimate's model of a config's GPU time, torch-free so that the workflow
uses it too: a full-study start on a machine without a GPU prints one warning line with it
(rules/common.smk, :func:`no_gpu_warning`). The images each run trains on and evaluates, from the
config's plan (:func:`train_job_specs`, the train jobs the workflow makes) and the built-in
sources' sizes, converted to GPU seconds with assumed throughputs (:data:`ASSUMED`, one
H100/H200-class GPU) plus the overheads per process, case seed, run, case and epoch.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from dmlbench.config.specs import annex_sizes, closed_set_jobs, group_path, train_jobs, train_spec

#: dmlbench.train.compiled.COMPILE_MIN_IMAGES (compile 'auto' compiles a run that trains on at least this
#: many images), repeated here so the estimate imports no torch.
COMPILE_MIN_IMAGES = 2_000_000
#: Train-split images per class and test-split size of the built-in sources, and their input kind.
SOURCE_SIZES = {
    "cifar10": ([5000] * 10, 10000, "rgb32"),
    "mnist": ([5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949], 10000, "grey28"),
    "fashion_mnist": ([6000] * 10, 10000, "grey28"),
}
#: Assumed when no measurement is given (--speed-json, --overhead-json), for one H100/H200-class
#: GPU. Training: ResNet18 images/s (bf16, compiled, batch 512), an evaluated image costing 0.4 of a
#: trained one (forward only). What is not training, as the GPU waits for it:
ASSUMED = {
    "images_per_second": {"rgb32": 50000.0, "grey28": 65000.0},
    "eval_cost": 0.4,
    "startup_s": 9.0,
    "data_s": 1.0,
    "compile_cold_s": 40.0,
    "compile_warm_s": 4.0,
    "case_build_s": 0.17,
    "model_copy_s": 0.04,
    "run_overhead_s": 0.05,
    "write_s": 0.5,
    "case_overhead_s": 0.01,
    "epoch_overhead_s": 0.001,
}


def job_images(spec: dict, per_class: list[int], n_test: int) -> dict:
    """Images one run trains on (steps x batch size), and evaluates (validation passes,
    reference and test embeddings), over all its cases; class sizes averaged over the cases."""
    t = spec["training"]
    n_classes = len(per_class)
    mean_count = sum(per_class) / len(per_class)
    n = mean_count if spec["n_per_class"] == "all" else min(mean_count, spec["n_per_class"])
    n_val_per_class = 0 if t["val_fraction"] <= 0 else min(round(t["val_fraction"] * n), n - 1)
    n_normal = n_classes - spec["n_anomaly"]
    n_train, n_val = n_normal * (n - n_val_per_class), n_normal * n_val_per_class
    bs = t["batch_size"]
    steps = math.floor(n_train / bs) if n_train > bs else 1
    trained = steps * min(bs, n_train) * t["epochs"]
    evaluated = t["epochs"] * max(n_val, 1) + n_train + n_test
    return {
        "cases": spec["cases"],
        "epochs": t["epochs"] * spec["cases"],
        "train_images": trained * spec["cases"],
        "eval_images": evaluated * spec["cases"],
    }


def job_group(spec: dict) -> str:
    if spec["n_anomaly"] == 0:
        return "closed_set"
    return "grid" if spec["n_per_class"] == "all" else "annex"


def compiles(spec: dict, train_images: int) -> bool:
    """Whether a run compiles on a GPU (dmlbench.train.compiled.resolve_compile with a CUDA device)."""
    value = spec["training"].get("compile", "auto")
    if value in (None, "auto"):
        return train_images >= COMPILE_MIN_IMAGES
    return str(value).lower() == "true"


OVERHEADS = ("startup", "data", "compile", "build", "run", "write", "case", "epoch")


def layout_seconds(jobs: list[list[dict]], profiles: dict, speed: dict, per_run: bool) -> dict:
    """GPU seconds of a config's train jobs, split into training (train images), evaluation (eval
    images) and the overheads of :data:`OVERHEADS`, per (group, dataset). ``per_run``: one process
    per run, each compiling anew, building every case's backbone and writing its files before it
    ends (the layout before issue 16); else one process per job as given (a job's later runs reuse
    its compiled code, copy the backbones built for its first method, and write in the background
    while the next run trains)."""
    processes = [[spec] for job in jobs for spec in job] if per_run else jobs
    compiled_kinds: set[str] = set()
    groups: dict[tuple[str, str], dict] = {}
    for runs in processes:
        cost = dict.fromkeys(("train", "eval", *OVERHEADS), 0.0)
        kinds, compiled, builds = set(), False, set()
        for spec in runs:
            per_class, n_test, kind = profiles[spec["dataset"]]
            work = job_images(spec, per_class, n_test)
            ips = speed["images_per_second"].get(kind) or speed["images_per_second"].get(
                "rgb32" if kind.startswith("rgb") else "grey28"
            )
            cost["train"] += work["train_images"] / ips
            cost["eval"] += speed["eval_cost"] * work["eval_images"] / ips
            cost["run"] += speed["run_overhead_s"]
            cost["case"] += work["cases"] * speed["case_overhead_s"]
            cost["epoch"] += work["epochs"] * speed["epoch_overhead_s"]
            cost["build"] += speed["model_copy_s"]
            # a case's backbone is built once per process (its seed and model), then copied
            model = json.dumps(spec.get("model", {}), sort_keys=True)
            builds |= {(model, spec["seed"], k) for k in range(spec["cases"])}
            compiled = compiled or compiles(spec, work["train_images"])
            kinds.add(kind)
        cost["build"] += len(builds) * speed["case_build_s"]
        cost["startup"], cost["data"] = speed["startup_s"], speed["data_s"]
        cost["write"] = speed["write_s"]  # the last run's; the earlier ones overlap the next run's training
        if compiled:
            kind = min(kinds)
            cost["compile"] = speed["compile_warm_s"] if kind in compiled_kinds else speed["compile_cold_s"]
            compiled_kinds.add(kind)
        first = runs[0]
        g = groups.setdefault(
            (job_group(first), first["dataset"]),
            {
                "processes": 0,
                "runs": 0,
                "train_images": 0,
                "eval_images": 0,
                "input": profiles[first["dataset"]][2],
                **{f"{k}_s": 0.0 for k in ("train", "eval", *OVERHEADS)},
                "recipe": {k: first["training"][k] for k in ("epochs", "batch_size", "lr") if k in first["training"]},
            },
        )
        g["processes"] += 1
        g["runs"] += len(runs)
        for spec in runs:
            per_class, n_test, _ = profiles[spec["dataset"]]
            work = job_images(spec, per_class, n_test)
            g["train_images"] += work["train_images"]
            g["eval_images"] += work["eval_images"]
        for k, v in cost.items():
            g[f"{k}_s"] += v
    rows = []
    for (grp, ds), g in groups.items():
        overhead = sum(g[f"{k}_s"] for k in OVERHEADS)
        rows.append(
            {
                "group": grp,
                "dataset": ds,
                **g,
                "overhead_s": overhead,
                "minutes": (g["train_s"] + g["eval_s"] + overhead) / 60,
            }
        )
    totals = {k: sum(r[f"{k}_s"] for r in rows) for k in ("train", "eval", *OVERHEADS)}
    overhead = sum(totals[k] for k in OVERHEADS)
    total = totals["train"] + totals["eval"] + overhead
    startup = totals["startup"] + totals["data"] + totals["compile"]
    return {
        "rows": rows,
        "seconds": {k: round(v, 1) for k, v in totals.items()},
        "total_minutes": round(total / 60, 1),
        "processes": len(processes),
        "overhead_share": round(overhead / total, 4) if total else None,
        "startup_share": round(startup / total, 4) if total else None,
    }


def train_job_specs(config: dict) -> list[list[dict]]:
    """The runs (specs) of every train job of a validated config, one list per job (process), as
    the workflow's spec rules write them: a grid job's every method of its size, an annex job's
    every annex size and method, the closed-set models' jobs last."""
    jobs: dict[str, dict] = {}
    for job in train_jobs(config) + closed_set_jobs(config):
        jobs.setdefault(group_path(config, job), job)
    annex = annex_sizes(config)
    out = []
    for group, job in jobs.items():
        sizes = annex if str(job["n_per_class"]) in annex else [str(job["n_per_class"])]
        out.append(
            [
                train_spec(config, job["dataset"], int(job["n_anomaly"]), method, size, int(job["seed"]))
                for size in sizes
                for method in config["methods"]
            ]
        )
    return out


def gpu_minutes(config: dict, speed: dict | None = None) -> float | None:
    """The estimated GPU minutes of a validated config's train jobs on datasets of known size
    (:data:`SOURCE_SIZES`); None where none is known (digits, folder datasets)."""
    jobs = [[s for s in job if s["source"] in SOURCE_SIZES] for job in train_job_specs(config)]
    jobs = [job for job in jobs if job]
    if not jobs:
        return None
    profiles = {s["dataset"]: SOURCE_SIZES[s["source"]] for job in jobs for s in job}
    return layout_seconds(jobs, profiles, speed or ASSUMED, per_run=False)["total_minutes"]


#: Below this estimate (GPU minutes) a start without a GPU gets no warning: a CPU does it too.
WARN_MINUTES = 5.0


def no_gpu_warning(config: dict) -> str | None:
    """The one warning line for a start without a GPU, or None for a config a CPU does in minutes."""
    minutes = gpu_minutes(config)
    if minutes is None or minutes < WARN_MINUTES:
        return None
    runs = sum(len(job) for job in train_job_specs(config))
    return (
        f"dmlbench: warning: no GPU found, and this config trains {runs} runs: about {minutes:.0f} min on one "
        f"H100-class GPU (bench/full_study.py --estimate's model), many times that on this machine's CPU; "
        f"stop it (Ctrl-C) and run where a GPU is, or try config/demo.yaml"
    )


def gpu_visible() -> bool:
    """Whether this machine shows an NVIDIA GPU to the jobs, asked without torch (the workflow's
    parse stays light): DMLBENCH_DEVICE=cpu or an empty CUDA_VISIBLE_DEVICES hides it; else a
    device node or the driver's GPU list."""
    if os.environ.get("DMLBENCH_DEVICE", "").lower() == "cpu" or os.environ.get("CUDA_VISIBLE_DEVICES") == "":
        return False
    return any(Path("/dev").glob("nvidia[0-9]*")) or Path("/proc/driver/nvidia/gpus").is_dir()
