"""Where the pipeline's time goes: the share of train-job time spent in training, start-up per
process, score-job seconds, imports per process, compile seconds cold and warm - and, with
--baseline, the same pipeline run by another checkout side by side.

    # the demo on the CPU, this checkout against the code before issue 16, both at the same time
    git worktree add /tmp/base 0c24b25 && /work/mkvenv.sh /tmp/base        # (or any checkout + venv)
    python -m bench.overhead --baseline /tmp/base --cores 2
    # a finished run (e.g. bench/full_study.py --keep on a GPU), analysed only
    python -m bench.overhead --workdir /path/to/workdir
    # two finished runs made side by side (each `/usr/bin/time -v -o FILE snakemake ...` in its
    # own checkout), compared: wall and CPU from the time files, tables, train share, start-up
    python -m bench.overhead --workdir . --time-file after.time \
        --baseline-workdir /path/to/old-checkout --baseline-time-file before.time
    # torch.compile cold and warm: two train jobs on an empty cache folder (a GPU: --device cuda)
    python -m bench.overhead --compile-check --device cuda
    # the training loop's own cost per epoch and per case, the model's work taken out (--device cuda)
    python -m bench.overhead --loop-probe --device cpu

A run is `snakemake --cores N --configfile <config>` (default config/demo.yaml, what `make demo`
runs) from nothing in a scratch folder, timed by wall clock and by the CPU time of Snakemake and
all its jobs (os.wait4: less sensitive to other load on the machine than wall time). With
--baseline the two checkouts run at the same time (--sequential: one after the other), each
with its own interpreter (<checkout>/.venv/bin/python), so both see the same machine load;
their tables are compared (metrics.parquet equal or not). The analysis reads Snakemake's
benchmark files, the jobs' records (results/jobs/, where the checkout writes them) and run.json.

Train share = the train jobs' time in training (fastai fits: steps, per-epoch validation and
bookkeeping) over their wall time (Snakemake's benchmark). Where a checkout writes no job records
(before issue 16), training time is the sum of the epochs' seconds of train_log.csv, which
leaves out each fit's set-up: an upper bound. Start-up per process is measured by starting the
imports a train or score process does, --probes times, in a fresh interpreter of each checkout
(with its exit: the checkout before issue 16 tears the interpreter down, this one does not).

Writes bench/results/overhead-<device>[-<config>].json with per_unit: the measured per-process,
per-run, per-case overheads that `bench/full_study.py --estimate --overhead-json` takes (and
--loop-probe overhead-loop-<device>.json: per epoch and per case).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from bench.common import RESULTS, ROOT, write_result

#: Packages counted as heavy in a process's imports.
HEAVY = (
    "torch",
    "torchvision",
    "fastai",
    "pandas",
    "pyarrow",
    "scipy",
    "sklearn",
    "matplotlib",
    "PIL",
    "altair",
    "vl_convert",
)
#: What a train and a score process import before their work (both checkouts: the same modules;
#: this one imports them up front, the one before issue 16 on first use). A dmlbench module that a
#: checkout does not have (dmlbench.train.fastai_parts before issue 16) is skipped.
PROBES = {
    "train": (
        "dmlbench.cli",
        "dmlbench.train.run",
        "dmlbench.train.fastai_parts",
        "fastai.callback.schedule",
        "fastai.callback.progress",
        "torch._dynamo",
    ),
    "score": (
        "dmlbench.cli",
        "dmlbench.score.run",
        "dmlbench.score.knn",
        "dmlbench.io",
        "sklearn.covariance",
        "sklearn.neighbors",
    ),
}
#: Compile check: a CIFAR-10-shaped dataset (random pixels: compile time does not depend on them).
COMPILE_SHAPE = (32, 32, 3)


# --------------------------------------------------------------------------- running
def python_of(checkout: Path) -> Path:
    exe = checkout / ".venv" / "bin" / "python"
    if not exe.exists():
        raise SystemExit(f"{exe} does not exist: make a venv for {checkout} (e.g. /work/mkvenv.sh {checkout})")
    return exe


def run_pipeline(
    checkout: Path, python: Path, config: Path, workdir: Path, cores: int, targets: list[str] = ()
) -> dict:
    """snakemake of ``checkout`` on ``config`` in the empty ``workdir``: wall and CPU seconds (of
    Snakemake and every job it ran), exit status, load average before and after."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = f"{python.parent}{os.pathsep}{env.get('PATH', '')}"
    cmd = [
        str(python),
        "-m",
        "snakemake",
        "-s",
        str(checkout / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(config),
        "--cores",
        str(cores),
        *targets,
    ]
    load_before = os.getloadavg()
    start = time.perf_counter()
    with open(workdir / "snakemake.out", "w") as out:
        proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    return {
        "checkout": str(checkout),
        "workdir": str(workdir),
        "command": " ".join(cmd),
        "exit_status": os.waitstatus_to_exitcode(status),
        "wall_s": round(wall, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "max_rss_mb": round(usage.ru_maxrss / 1024),
        "load_before": [round(x, 1) for x in load_before],
        "load_after": [round(x, 1) for x in os.getloadavg()],
    }


def probe_startup(python: Path, kind: str, probes: int, fast_exit: bool) -> dict:
    """Start a fresh interpreter ``probes`` times doing the imports of a ``kind`` process: median
    wall and CPU seconds (exit included), modules loaded, heavy packages among them."""
    code = (
        f"import importlib, json, sys\nfor m in {PROBES[kind]!r}:\n"
        "    try:\n        importlib.import_module(m)\n"
        "    except ModuleNotFoundError as exc:\n        if exc.name != m or not m.startswith('dmlbench.'):\n"
        "            raise\n"
        "print(json.dumps([len(sys.modules), sorted({m.split('.')[0] for m in sys.modules})]))\n"
        "sys.stdout.flush()\n" + ("import os; os._exit(0)\n" if fast_exit else "")
    )
    walls, cpus, modules, heavy = [], [], 0, []
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    for _ in range(probes):
        start = time.perf_counter()
        proc = subprocess.Popen(
            [str(python), "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True
        )
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        walls.append(time.perf_counter() - start)
        cpus.append(usage.ru_utime + usage.ru_stime)
        if os.waitstatus_to_exitcode(status) != 0 or not out.strip():
            raise SystemExit(f"start-up probe ({kind}) failed in {python}: {python} -c {code!r}")
        n, packages = json.loads(out.strip().splitlines()[-1])
        modules, heavy = n, [p for p in HEAVY if p in packages]
    return {
        "wall_s": round(statistics.median(walls), 2),
        "cpu_s": round(statistics.median(cpus), 2),
        "modules": modules,
        "heavy_imports": heavy,
        "probes": probes,
    }


def fast_exits(checkout: Path) -> bool:
    """Whether the checkout's `python -m dmlbench` skips the interpreter's teardown (issue 16)."""
    main = checkout / "src" / "dmlbench" / "__main__.py"
    return main.exists() and "run()" in main.read_text()


# --------------------------------------------------------------------------- analysis
def _bench(workdir: Path, rule: str) -> dict[str, pd.Series]:
    root = workdir / "benchmarks" / rule
    return (
        {
            p.relative_to(root).with_suffix("").as_posix(): pd.read_csv(p, sep="\t").iloc[-1]
            for p in sorted(root.rglob("*.tsv"))
        }
        if root.exists()
        else {}
    )


def _records(workdir: Path, rule: str) -> dict[str, dict]:
    root = workdir / "results" / "jobs" / rule
    return (
        {
            p.relative_to(root).with_suffix("").as_posix(): json.loads(p.read_text())
            for p in sorted(root.rglob("*.json"))
        }
        if root.exists()
        else {}
    )


def analyse(workdir: Path) -> dict:
    """Train share, start-up, per-rule seconds, imports and compile outcomes of a finished run."""
    out: dict = {"workdir": str(workdir)}
    for rule in ("train", "score"):
        bench, records = _bench(workdir, rule), _records(workdir, rule)
        wall = float(sum(b["s"] for b in bench.values()))
        cpu_times = [pd.to_numeric(b.get("cpu_time", np.nan), errors="coerce") for b in bench.values()]
        row = {
            "jobs": len(bench),
            "wall_s": round(wall, 1),
            "mean_job_s": round(wall / len(bench), 2) if bench else None,
            "benchmark_cpu_s": round(float(np.nansum(cpu_times)), 1),
        }
        if records:
            phases: dict[str, dict[str, float]] = {}
            for rec in records.values():
                for name, v in rec["phases"].items():
                    p = phases.setdefault(name, {"wall_s": 0.0, "cpu_s": 0.0})
                    p["wall_s"] += v["wall_s"]
                    p["cpu_s"] += v["cpu_s"]
            cpu = sum(r["cpu_s"] for r in records.values())
            row.update(
                {
                    "source": "job records (results/jobs)",
                    "runs": sum(len(r["runs"]) for r in records.values()),
                    "process_cpu_s": round(cpu, 1),
                    "phases": {k: {kk: round(vv, 2) for kk, vv in v.items()} for k, v in phases.items()},
                    "startup_per_process": {
                        "wall_s": round(phases["startup"]["wall_s"] / len(records), 2),
                        "cpu_s": round(phases["startup"]["cpu_s"] / len(records), 2),
                    },
                    "imports_per_process": max((r["imports"] for r in records.values()), key=lambda i: i["modules"]),
                }
            )
            if rule == "train":
                row["training_share_wall"] = round(phases.get("training", {}).get("wall_s", 0.0) / wall, 4)
                row["training_share_cpu"] = round(phases.get("training", {}).get("cpu_s", 0.0) / cpu, 4)
        elif rule == "train" and bench:
            epochs = 0.0
            for job in bench:
                log = workdir / "results" / "runs" / job / "train_log.csv"
                if log.exists():
                    epochs += float(pd.read_csv(log)["seconds"].sum())
            row.update(
                {
                    "source": "train_log.csv epochs (no job records): an upper bound of the training share",
                    "runs": len(bench),
                    "training_share_wall": round(epochs / wall, 4) if wall else None,
                }
            )
        out[rule] = row
    runs = [json.loads(p.read_text()) for p in sorted((workdir / "results" / "runs").rglob("run.json"))]
    compiled = [r for r in runs if r.get("compiled")]
    out["compile"] = [{"seconds": r.get("compile_seconds"), **(r.get("compile_cache") or {})} for r in compiled]
    out["per_unit"] = per_unit(workdir, out)
    return out


def per_unit(workdir: Path, analysis: dict) -> dict:
    """Measured overheads per process, run and case (the keys of full_study.ASSUMED), from job records."""
    train = analysis.get("train", {})
    if "phases" not in train:
        return {}
    records = _records(workdir, "train")
    cases = 0
    for rec in records.values():
        for run in rec["runs"]:
            meta = Path(run["run"])
            meta = meta if meta.is_absolute() else workdir / meta
            if (meta / "run.json").exists():
                cases += len(json.loads((meta / "run.json").read_text())["cases"])
    ph, n = train["phases"], len(records)
    runs = train["runs"]
    cold = [c["seconds"] for c in analysis["compile"] if c.get("cache") == "cold"]
    warm = [c["seconds"] for c in analysis["compile"] if c.get("cache") == "warm"]
    return {
        "startup_s": round(ph["startup"]["wall_s"] / n, 2),
        "data_s": round(ph.get("data", {}).get("wall_s", 0) / n, 2),
        "run_overhead_s": round(
            (
                ph.get("writing", {}).get("wall_s", 0)
                + ph.get("restore", {}).get("wall_s", 0)
                + ph.get("other", {}).get("wall_s", 0)
            )
            / runs,
            3,
        ),
        "case_overhead_s": round(ph.get("build", {}).get("wall_s", 0) / cases, 4) if cases else None,
        "compile_cold_s": round(statistics.median(cold), 1) if cold else None,
        "compile_warm_s": round(statistics.median(warm), 1) if warm else None,
    }


#: The study's tables compared between two runs (runtime and runs hold measured times: never equal).
COMPARED_TABLES = ("metrics", "class_distances", "summary", "ranking", "worst_misses")


def tables_equal(before: Path, after: Path, rtol: float = 1e-9) -> dict:
    """Per table of :data:`COMPARED_TABLES` under ``<run>/results/tables``: ``identical`` (same
    bytes), ``equal`` (same columns, rows and values; floats within ``rtol``), ``missing`` or
    ``differs: ...``; for metrics also the largest absolute AUROC difference over the rows."""
    out = {}
    for name in COMPARED_TABLES:
        pa, pb = (root / "results" / "tables" / f"{name}.parquet" for root in (before, after))
        if not (pa.exists() and pb.exists()):
            out[name] = "missing"
            continue
        if pa.read_bytes() == pb.read_bytes():
            out[name] = "identical"
            continue
        a, b = pd.read_parquet(pa), pd.read_parquet(pb)
        try:
            pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=rtol, atol=0.0)
            out[name] = "equal"
        except AssertionError as exc:
            out[name] = "differs: " + " ".join(str(exc).split())[:300]
    ma, mb = (root / "results" / "tables" / "metrics.parquet" for root in (before, after))
    if ma.exists() and mb.exists():
        a, b = pd.read_parquet(ma), pd.read_parquet(mb)
        if len(a) == len(b) and "auroc" in a and "auroc" in b:
            out["metrics_rows"] = len(a)
            out["max_abs_auroc_difference"] = float(np.abs(a["auroc"].to_numpy() - b["auroc"].to_numpy()).max())
    return out


def time_file(path: Path) -> dict:
    """Wall and CPU seconds and peak memory of a command from GNU time's ``-v`` report (the
    command's children included: Snakemake and all its jobs)."""
    text = path.read_text()

    def field(label):
        m = re.search(rf"^\s*{re.escape(label)}: (.+)$", text, re.MULTILINE)
        if m is None:
            raise SystemExit(f"{path}: no '{label}' line; give the output of /usr/bin/time -v -o FILE")
        return m.group(1).strip()

    wall = 0.0
    for part in field("Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":"):
        wall = wall * 60 + float(part)
    cpu = float(field("User time (seconds)")) + float(field("System time (seconds)"))
    return {
        "time_file": str(path),
        "command": field("Command being timed").strip('"'),
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "max_rss_mb": round(int(field("Maximum resident set size (kbytes)")) / 1024),
        "exit_status": int(field("Exit status")),
    }


# --------------------------------------------------------------------------- training loop
def loop_probe(
    device: str = "cpu",
    n_per_class: int = 50,
    epochs: tuple[int, int] = (2, 12),
    cases: int = 4,
    configfile: Path = ROOT / "config" / "demo.yaml",
) -> dict:
    """The training loop's own cost per epoch and per case, the model's work taken out: the job's
    trainer (dmlbench.train.run.RunTrainer: its batches, augmentation, fastai Learner, one-cycle fit,
    EpochLog's reads of the epoch's values) on the demo's digits at ``n_per_class`` images per class
    (annex A.2's few batches per epoch), with a backbone that does almost nothing (average pooling
    and one linear layer). Each of ``cases`` cases is set up (re-seeded weights, Learner, batches)
    and fitted for ``epochs[0]`` and for ``epochs[1]`` epochs: per epoch = the slope, per case = the
    set-up plus the fit's intercept. On a GPU this is the host's time per epoch and case: the device
    waits for a case's set-up, and for an epoch's only where the host falls behind the queued
    batches (no sync within or between epochs); the bench/full_study.py estimate's
    ``epoch_overhead_s`` and ``case_overhead_s``."""
    import torch
    from torch import nn

    from dmlbench.config import load_config, train_spec
    from dmlbench.data.sources import load_source
    from dmlbench.data.splits import run_cases
    from dmlbench.train.device import resolve_device
    from dmlbench.train.fastai_parts import EpochLog
    from dmlbench.train.run import RunTrainer

    class Idle(nn.Module):  # the backbone: next to no work, so what is timed is the loop
        def __init__(self, in_channels: int, dim: int = 8):
            super().__init__()
            self.embedding_dim = dim
            self.f = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_channels, dim))

        def forward(self, x):
            return self.f(x)

    torch.set_num_threads(1)
    config = load_config(configfile)
    dataset = next(iter(config["datasets"]))
    ds = load_source(config["datasets"][dataset])
    spec = train_spec(config, dataset, 1, "conventional", str(n_per_class), 0)
    spec = {**spec, "cases": cases + 1, "model": {**spec["model"], "embedding": "none"}}
    dev = resolve_device(device)
    trainer = RunTrainer(ds, spec, dev, build_backbone=lambda name, in_channels, *args, **kwargs: Idle(in_channels))
    all_cases = run_cases(ds, spec)
    trainer.train_case(all_cases[0])  # warm-up: first-call costs are start-up, not per case
    setups, fits = [], {e: [] for e in epochs}
    for case in all_cases[1:]:
        for n_epochs in epochs:
            t0 = time.perf_counter()
            learn, _ = trainer.learner(case)
            t1 = time.perf_counter()
            with learn.no_bar(), learn.no_logging():
                learn.fit_one_cycle(n_epochs, spec["training"]["lr"], cbs=[EpochLog("probe", case.case, dev, [])])
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            setups.append(t1 - t0)
            fits[n_epochs].append(time.perf_counter() - t1)
    lo, hi = (statistics.median(fits[e]) for e in epochs)
    per_epoch = (hi - lo) / (epochs[1] - epochs[0])
    per_case = statistics.median(setups) + max(lo - epochs[0] * per_epoch, 0.0)
    batches = -(-len(all_cases[1].train_idx) // spec["training"]["batch_size"])
    return {
        "device": str(dev),
        "dataset": dataset,
        "n_per_class": n_per_class,
        "train_images": len(all_cases[1].train_idx),
        "batches_per_epoch": batches,
        "epochs": list(epochs),
        "cases": cases,
        "fit_s": {str(e): round(statistics.median(fits[e]), 4) for e in epochs},
        "setup_s": round(statistics.median(setups), 4),
        "per_unit": {"epoch_overhead_s": round(per_epoch, 5), "case_overhead_s": round(per_case, 4)},
    }


# --------------------------------------------------------------------------- compile check
def compile_check(python: Path, device: str, workdir: Path, backbone: str = "resnet18", n_train: int = 5000) -> dict:
    """Two train jobs in turn on one empty cache folder, compile forced on, 1 case of 1 epoch of a
    CIFAR-10-shaped dataset (``n_train`` random images) and the full study's recipe with
    ``backbone``: the first compiles cold, the second warm. Their run.json compile fields."""
    from dmlbench.config import load_config, train_spec
    from dmlbench.data.sources import Dataset, save_npz

    rng = np.random.default_rng(0)
    n_test = n_train // 5
    ds = Dataset(
        x_train=rng.integers(0, 256, (n_train, *COMPILE_SHAPE), dtype=np.uint8),
        y_train=np.arange(n_train) % 10,
        x_test=rng.integers(0, 256, (n_test, *COMPILE_SHAPE), dtype=np.uint8),
        y_test=np.arange(n_test) % 10,
        classes=[f"c{i}" for i in range(10)],
    )
    data = workdir / "data.npz"
    save_npz(ds, data)
    config = load_config(str(ROOT / "config" / "config.yaml"))
    spec = train_spec(config, "cifar10", 1, "conventional", "all", 0)
    spec.update(cases=1)
    spec["model"]["backbone"] = backbone
    spec["training"].update(epochs=1, compile="true")
    out = {}
    env = {**os.environ, "DMLBENCH_CACHE_DIR": str(workdir / "cache"), "DMLBENCH_RUN_CACHE": "off"}
    for attempt in ("first", "second"):
        run = workdir / attempt
        cmd = [
            str(python),
            "-m",
            "dmlbench",
            "train",
            "--spec",
            json.dumps(spec),
            "--data",
            str(data),
            "--out",
            str(run),
            "--device",
            device,
            "--job",
            str(workdir / f"{attempt}.job.json"),
        ]
        proc = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"compile check: the {attempt} train job failed:\n{proc.stderr[-3000:]}")
        meta = json.loads((run / "run.json").read_text())
        out[attempt] = {
            "compiled": meta["compiled"],
            "seconds": meta["compile_seconds"],
            "fallback": meta.get("compile_fallback"),
            **(meta.get("compile_cache") or {}),
        }
    return out


# --------------------------------------------------------------------------- output
def device_label(cores: int) -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return re.sub(r"[^A-Za-z0-9_.-]+", "_", torch.cuda.get_device_name(0))
    except ImportError:
        pass
    return f"cpu-{cores}cores"


def print_comparison(result: dict) -> None:
    sides = [("before", result.get("baseline")), ("after", result.get("this"))]
    sides = [(name, side) for name, side in sides if side]
    print("| | " + " | ".join(name for name, _ in sides) + " |")
    print("|---" * (len(sides) + 1) + "|")

    def line(label, fn):
        cells = []
        for _, side in sides:
            try:
                cells.append(fn(side))
            except (KeyError, TypeError, ZeroDivisionError):
                cells.append("—")
        print(f"| {label} | " + " | ".join(cells) + " |")

    line("pipeline wall (s)", lambda s: f"{s['run']['wall_s']:.0f}")
    line("pipeline CPU (s, all jobs)", lambda s: f"{s['run']['cpu_s']:.0f}")
    line("train jobs (runs)", lambda s: f"{s['analysis']['train']['jobs']} ({s['analysis']['train']['runs']})")
    line("train-job wall in training", lambda s: f"{s['analysis']['train']['training_share_wall']:.0%}")
    line("train-job CPU in training", lambda s: f"{s['analysis']['train']['training_share_cpu']:.0%}")
    line(
        "start-up per train process (s wall / CPU, probe)",
        lambda s: f"{s['startup']['train']['wall_s']:.1f} / {s['startup']['train']['cpu_s']:.1f}",
    )
    line(
        "start-up per run (s CPU)",
        lambda s: (
            f"{s['startup']['train']['cpu_s'] * s['analysis']['train']['jobs'] / s['analysis']['train']['runs']:.2f}"
        ),
    )
    line(
        "score jobs, mean s per job (runs)",
        lambda s: f"{s['analysis']['score']['mean_job_s']:.1f} ({s['analysis']['score']['jobs']} jobs)",
    )
    line(
        "imports per train process (modules; heavy)",
        lambda s: f"{s['startup']['train']['modules']}; {', '.join(s['startup']['train']['heavy_imports'])}",
    )
    line(
        "imports per score process (modules; heavy)",
        lambda s: f"{s['startup']['score']['modules']}; {', '.join(s['startup']['score']['heavy_imports'])}",
    )
    if "tables_equal" in result:
        print(f"tables before vs after: {result['tables_equal']}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configfile", type=Path, default=ROOT / "config" / "demo.yaml")
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--baseline", type=Path, help="another checkout (with .venv) to run side by side")
    p.add_argument(
        "--sequential", action="store_true", help="run the baseline after this checkout, not at the same time"
    )
    p.add_argument("--workdir", type=Path, help="analyse this finished run instead of running one")
    p.add_argument("--baseline-workdir", type=Path, help="with --workdir: a finished run of the baseline, compared")
    p.add_argument("--time-file", type=Path, help="with --workdir: `/usr/bin/time -v -o FILE` of its snakemake run")
    p.add_argument("--baseline-time-file", type=Path, help="the same for --baseline-workdir")
    p.add_argument("--note", help="how the runs were made (stored in the JSON)")
    p.add_argument("--scratch", type=Path, help="folder for the runs (default: a new temp folder, kept)")
    p.add_argument("--probes", type=int, default=3, help="start-up probes per process kind")
    p.add_argument(
        "--loop-probe",
        action="store_true",
        help="the training loop's own seconds per epoch and per case (an idle backbone; --device)",
    )
    p.add_argument("--compile-check", action="store_true", help="compile seconds cold and warm (two train jobs)")
    p.add_argument("--device", default="auto", help="--compile-check: cpu, cuda or auto")
    p.add_argument("--compile-backbone", default="resnet18", help="--compile-check: resnet18 or small_cnn (CPU smoke)")
    p.add_argument("--compile-images", type=int, default=5000, help="--compile-check: training images")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    me = ROOT
    label = device_label(args.cores)
    stem = "" if args.configfile.name == "demo.yaml" else f"-{args.configfile.stem}"
    result: dict = {
        "config": str(args.configfile),
        "cores": args.cores,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "device": label,
    }

    def probe_done(key: str, name: str) -> int:
        """Print the probe's result, write the whole result to --out or bench/results/overhead-<name>-<device>.json."""
        print(json.dumps(result[key], indent=1))
        out = args.out or RESULTS / f"overhead-{name}-{label}.json"
        write_result(out, result)
        return 0

    if args.loop_probe:
        result["loop_probe"] = loop_probe(args.device)
        result["per_unit"] = result["loop_probe"]["per_unit"]
        return probe_done("loop_probe", "loop")

    if args.compile_check:
        scratch = Path(tempfile.mkdtemp(prefix="dmlbench-compile-"))
        result["compile_check"] = compile_check(
            python_of(me) if (me / ".venv").exists() else Path(sys.executable),
            args.device,
            scratch,
            args.compile_backbone,
            args.compile_images,
        )
        return probe_done("compile_check", "compile")

    if args.workdir:
        # finished runs, analysed only; with --baseline-workdir both, side by side
        sides = {"this": (args.workdir.resolve(), args.time_file)}
        if args.baseline_workdir:
            sides["baseline"] = (args.baseline_workdir.resolve(), args.baseline_time_file)
        for name, (workdir, timing) in sides.items():
            result[name] = {"analysis": analyse(workdir)}
            if timing:
                result[name]["run"] = time_file(timing)
            if args.probes and (workdir / ".venv").exists():  # the workdir is a checkout: its start-up
                result[name]["startup"] = {
                    kind: probe_startup(python_of(workdir), kind, args.probes, fast_exits(workdir)) for kind in PROBES
                }
        if "baseline" in sides:
            result["tables_equal"] = tables_equal(sides["baseline"][0], sides["this"][0])
            if "run" in result["this"] and "run" in result["baseline"]:
                result["wall_ratio"] = round(result["this"]["run"]["wall_s"] / result["baseline"]["run"]["wall_s"], 3)
                result["cpu_ratio"] = round(result["this"]["run"]["cpu_s"] / result["baseline"]["run"]["cpu_s"], 3)
            if args.note:
                result["note"] = args.note
            print_comparison(result)
            if "wall_ratio" in result:
                print(f"wall after/before: {result['wall_ratio']:.2f}; CPU after/before: {result['cpu_ratio']:.2f}")
        else:
            print(json.dumps(result["this"]["analysis"], indent=1, default=str))
        result["per_unit"] = result["this"]["analysis"]["per_unit"]
        out = args.out or RESULTS / f"overhead-{label}{stem}.json"
        write_result(out, result)
        return 0

    scratch = (args.scratch or Path(tempfile.mkdtemp(prefix="dmlbench-overhead-"))).resolve()
    sides = {"this": me}
    if args.baseline:
        sides["baseline"] = args.baseline.resolve()
    pythons = {
        name: python_of(path) if (path / ".venv").exists() else Path(sys.executable) for name, path in sides.items()
    }
    for name in sides:
        if (scratch / name).exists():
            raise SystemExit(f"{scratch / name} exists: give an empty --scratch")

    def go(name):
        return run_pipeline(sides[name], pythons[name], args.configfile.resolve(), scratch / name, args.cores)

    if args.sequential or len(sides) == 1:
        runs = {name: go(name) for name in sides}
    else:
        with ThreadPoolExecutor(len(sides)) as pool:
            futures = {name: pool.submit(go, name) for name in sides}
            runs = {name: f.result() for name, f in futures.items()}
    for name, path in sides.items():
        run = runs[name]
        if run["exit_status"] != 0:
            print(f"{name}: snakemake failed ({run['exit_status']}); see {scratch / name / 'snakemake.out'}")
        result[name] = {
            "run": run,
            "analysis": analyse(scratch / name),
            "startup": {kind: probe_startup(pythons[name], kind, args.probes, fast_exits(path)) for kind in PROBES},
        }
    if "baseline" in sides:
        result["tables_equal"] = tables_equal(scratch / "baseline", scratch / "this")
        result["wall_ratio"] = round(runs["this"]["wall_s"] / runs["baseline"]["wall_s"], 3)
        result["cpu_ratio"] = round(runs["this"]["cpu_s"] / runs["baseline"]["cpu_s"], 3)
    result["per_unit"] = result["this"]["analysis"]["per_unit"]
    print_comparison(result)
    if "wall_ratio" in result:
        print(
            f"wall after/before: {result['wall_ratio']:.2f}; CPU after/before: {result['cpu_ratio']:.2f} "
            f"({'at the same time' if not args.sequential else 'one after the other'}; load average "
            f"{result['this']['run']['load_before']} at the start)"
        )
    out = args.out or RESULTS / f"overhead-{label}{stem}.json"
    write_result(out, result, f"; runs kept in {scratch}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
