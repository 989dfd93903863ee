"""The five-minute device check (issue 31): what a lent GPU must confirm, in one prepared run.

Run by ``bench/gpu_check.sh`` (which installs the carried wheels first); every step's outcome and
measurements go to ``<out>/gpu_check.json`` (``$OUT`` on the device machine), each step's log to
``<out>/logs/``. The steps, each in its own process under a time limit, so one that fails or
hangs still leaves the others' results:

1. ``cuda_tests``  the tests that skip without CUDA (found in tests/ by their
   ``skipif(not torch.cuda.is_available())``), through pytest: passed, failed, skipped by name;
2. ``compile``     one job's compile for 1- and 3-channel images (dynamo's graph count: 1 each,
   the warm-up's; the compile seconds), and for a pair loss's class-balanced batches;
3. ``epoch_log``   the epoch log's read order measured: seconds per epoch of a short fit reading
   each epoch's values at its end (lag 0) and through pinned memory a step later (lag 1);
4. ``train_speed`` ``python -m bench.train_speed`` at one batch size, eager and compiled;
5. ``demo``        the demo config (config/demo.yaml) through Snakemake to its tables, timed
   (``--until aggregate``: no Quarto on the device machines);
6. ``overhead``    ``python -m bench.overhead --loop-probe``.

``--device cpu`` runs the same steps at a tiny size (a test runs it: tests/unit/bench/), so the
script cannot rot before a GPU comes: the CUDA tests skip, the compile uses dynamo's eager
backend, the demo is a Snakemake dry run, the loop probe one case of one and two epochs.

    python -m bench.gpu_check --device cuda --out "$OUT"      # on the device machine (gpu_check.sh)
    python -m bench.gpu_check --device cpu --out /tmp/check   # here, in under a minute
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STEPS = ("cuda_tests", "compile", "epoch_log", "train_speed", "demo", "overhead")
#: Seconds each step may take on the device (the whole check: some 5-6 minutes expected, not yet
#: timed on a GPU; the limits add up to 13, so that a slow step is cut off, not the check: give the
#: device call timeout_s 540 and read gpu_check.json, written after every step, if it is cut).
LIMITS = {"cuda_tests": 120, "compile": 120, "epoch_log": 60, "train_speed": 150, "demo": 240, "overhead": 90}


def cuda_only_tests(root: Path = ROOT / "tests") -> list[str]:
    """pytest node ids of the test functions skipped without CUDA: decorated with a ``skipif`` whose
    condition mentions ``cuda.is_available``."""
    ids = []
    for path in sorted(root.rglob("test_*.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef):
                continue
            for dec in node.decorator_list:
                text = ast.unparse(dec)
                if "skipif" in text and "cuda.is_available" in text:
                    ids.append(f"{path.relative_to(root.parent)}::{node.name}")
                    break
    return ids


def junit_summary(path: Path) -> dict:
    """Counts and the names of the failed, errored and skipped tests of a pytest junit XML file."""
    root = ET.parse(path).getroot()
    cases = root.iter("testcase")
    out = {"passed": [], "failed": [], "skipped": []}
    for case in cases:
        name = f"{case.get('classname')}::{case.get('name')}"
        if case.find("failure") is not None or case.find("error") is not None:
            out["failed"].append(name)
        elif case.find("skipped") is not None:
            out["skipped"].append(name)
        else:
            out["passed"].append(name)
    return {"counts": {k: len(v) for k, v in out.items()}, **out}


# --------------------------------------------------------------------------- in-process measurements
def _digits(channels: int, per_class: int | None = None):
    import numpy as np

    from dmlbench.data.sources import Dataset, load_source

    ds = load_source({"source": "digits", "image_size": 16})
    if per_class:
        keep = np.concatenate([np.flatnonzero(ds.y_train == c)[:per_class] for c in range(10)])
        test = np.concatenate([np.flatnonzero(ds.y_test == c)[: max(per_class // 4, 2)] for c in range(10)])
        ds = Dataset(ds.x_train[keep], ds.y_train[keep], ds.x_test[test], ds.y_test[test], ds.classes)
    if channels == 3:
        ds = Dataset(
            np.repeat(ds.x_train, 3, axis=3), ds.y_train, np.repeat(ds.x_test, 3, axis=3), ds.y_test, ds.classes
        )
    return ds


def _spec(method: str = "conventional", **training) -> dict:
    spec = {
        "dataset": "digits",
        "source": "digits",
        "class_order": "canonical",
        "flip": True,
        "n_anomaly": 3,
        "method": method,
        "method_params": {"mixup": False},
        "n_per_class": "all",
        "seed": 0,
        "cases": 1,
        "model": {"backbone": "small_cnn", "embedding_dim": 16},
        "training": {
            "epochs": 1,
            "batch_size": 64,
            "lr": 0.005,
            "weight_decay": 0.01,
            "val_fraction": 0.1,
            "crop_padding": 2,
            **training,
        },
    }
    if method == "supcon":
        spec.update(head="pml", method_params={"mixup": False, "loss": "SupConLoss", "temperature": 0.1})
    return spec


def compile_counts(device: str, quick: bool) -> dict:
    """Graphs dynamo compiles for one case of a job (1 expected: the warm-up's), for 1- and
    3-channel images and for a pair loss's class-balanced batches (batch size 70: 7 classes x 10)."""
    import torch
    from torch._dynamo.utils import counters

    from dmlbench.data.splits import run_cases
    from dmlbench.train.device import resolve_device, setup_device
    from dmlbench.train.run import RunTrainer

    dev = resolve_device(device)
    setup_device(dev)
    options = {"backend": "eager"} if dev.type == "cpu" else {}
    out = {}
    cases = [("grey", 1, "conventional", 64), ("rgb", 3, "conventional", 64), ("pair_loss_grey", 1, "supcon", 70)]
    for name, channels, method, bs in cases:
        ds = _digits(channels, 20 if quick else None)
        spec = _spec(method, compile=True, batch_size=bs)
        torch._dynamo.reset()
        counters.clear()
        t0 = time.perf_counter()
        trainer = RunTrainer(ds, spec, dev, compile_options=options)
        warm = counters["stats"]["unique_graphs"]
        _, rows = trainer.train_case(run_cases(ds, spec)[0])
        out[name] = {
            "graphs_warm_up": warm,
            "graphs_total": counters["stats"]["unique_graphs"],
            "compiled": trainer.compiled,
            "fallback": trainer.compile_fallback,
            "compile_seconds": round(trainer.compile_seconds, 2),
            "case_seconds": round(time.perf_counter() - t0 - trainer.compile_seconds, 2),
            "precision": trainer.precision,
            "epoch_seconds": [round(r["seconds"], 4) for r in rows],
        }
    out["ok"] = all(v["graphs_total"] == 1 and v["fallback"] is None for v in out.values())
    return out


def epoch_log_lag(device: str, quick: bool) -> dict:
    """Seconds per epoch of the same fit (small CNN, digits) with the epoch log reading at lag 0
    and at lag 1 (pinned copy, read a step later): which is faster (issue 31, B)."""
    import statistics

    import torch

    from dmlbench.data.splits import run_cases
    from dmlbench.train.device import resolve_device, setup_device
    from dmlbench.train.fastai_parts import EpochLog
    from dmlbench.train.run import RunTrainer

    dev = resolve_device(device)
    setup_device(dev)
    ds = _digits(1, 10 if quick else None)
    epochs = 2 if quick else 12
    spec = _spec(batch_size=32)
    trainer = RunTrainer(ds, spec, dev)
    case = run_cases(ds, spec)[0]
    walls: dict[int, list[float]] = {0: [], 1: []}
    for _ in range(1 if quick else 3):
        for lag in (0, 1):
            learn, _ = trainer.learner(case)
            rows: list[dict] = []
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            t0 = time.perf_counter()
            with learn.no_bar(), learn.no_logging():
                learn.fit_one_cycle(epochs, 0.005, cbs=[EpochLog("probe", 0, dev, rows, lag=lag)])
            walls[lag].append((time.perf_counter() - t0) / epochs)
    per_epoch = {f"lag{lag}": round(statistics.median(w), 5) for lag, w in walls.items()}
    return {"epochs": epochs, "batches_per_epoch": len(learn.dls.train), "seconds_per_epoch": per_epoch}


# --------------------------------------------------------------------------- the steps
def _run(cmd: list[str], log: Path, limit: float, env: dict | None = None, cwd: Path = ROOT) -> dict:
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        try:
            proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT, timeout=limit)
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    return {"rc": rc, "seconds": round(time.perf_counter() - t0, 1), "command": " ".join(cmd)}


def _python_step(name: str, device: str, quick: bool, out: Path, limit: float) -> dict:
    """One in-process measurement in a process of its own: its JSON lands in <out>/<name>.json."""
    target = out / f"{name}.json"
    cmd = [sys.executable, "-m", "bench.gpu_check", "--device", device, "--only", name, "--result", str(target)]
    if quick:
        cmd.append("--quick")
    step = _run(cmd, out / "logs" / f"{name}.log", limit)
    if target.exists():
        step["result"] = json.loads(target.read_text())
    return step


def run_step(name: str, device: str, quick: bool, out: Path) -> dict:
    limit = LIMITS[name]
    logs = out / "logs"
    py = sys.executable
    if name == "cuda_tests":
        xml = out / "cuda_tests.xml"
        ids = cuda_only_tests()
        cmd = [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", f"--junitxml={xml}", *ids]
        step = _run(cmd, logs / "cuda_tests.log", limit)
        step["tests"] = ids
        if xml.exists():
            step["result"] = junit_summary(xml)
        step["ok"] = step["rc"] == 0
        return step
    if name in ("compile", "epoch_log"):
        step = _python_step(name, device, quick, out, limit)
        step["ok"] = step["rc"] == 0 and step.get("result", {}).get("ok", True)
        return step
    if name == "train_speed":
        target = out / "train_speed.json"
        cmd = [py, "-m", "bench.train_speed", "--device", device, "--out", str(target)]
        if quick:
            cmd += ["--quick", "--inputs", "grey28", "--variants", "b"]
        else:
            # one input and batch size: one cold ResNet18 compile (about a minute)
            cmd += [
                "--inputs",
                "rgb32",
                "--variants",
                "b",
                "c",
                "--batch-sizes",
                "512",
                "--warmup",
                "5",
                "--steps",
                "20",
            ]
        step = _run(cmd, logs / "train_speed.log", limit)
        if target.exists():
            step["result"] = json.loads(target.read_text())
        step["ok"] = step["rc"] == 0
        return step
    if name == "demo":
        work = out / "demo"
        work.mkdir(parents=True, exist_ok=True)
        cmd = [py, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(work)]
        cmd += ["--configfile", str(ROOT / "config" / "demo.yaml"), "--until", "aggregate"]
        cmd += ["--cores", str(os.cpu_count() or 2)]
        if quick:
            cmd.append("--dry-run")
        env = {**os.environ, "DMLBENCH_DEVICE": device}
        step = _run(cmd, logs / "demo.log", limit, env=env, cwd=work)
        step["ok"] = step["rc"] == 0
        step["wall_seconds"] = step["seconds"]
        runs = sorted(work.glob("results/runs/**/run.json"))
        if runs:
            metas = [json.loads(p.read_text()) for p in runs]
            step["runs"] = len(metas)
            step["devices"] = sorted({m["device"] for m in metas})
            step["precisions"] = sorted({m["precision"] for m in metas})
            step["training_seconds"] = round(sum(m["phases"].get("training", 0.0) for m in metas), 1)
        # the run folders are big and not needed back: their summary is above
        for path in sorted(work.rglob("*.npz")):
            path.unlink()
        return step
    if name == "overhead":
        target = out / "overhead_loop.json"
        if quick:  # the probe itself at a tiny size (the CLI's default is some 40 fits)
            step = _python_step("overhead", device, quick, out, limit)
        else:
            cmd = [py, "-m", "bench.overhead", "--loop-probe", "--device", device, "--out", str(target)]
            step = _run(cmd, logs / "overhead.log", limit)
            if target.exists():
                step["result"] = json.loads(target.read_text()).get("loop_probe")
        step["ok"] = step["rc"] == 0
        return step
    raise ValueError(name)


def environment() -> dict:
    import torch

    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "cpu_count": os.cpu_count(),
    }
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
        env["capability"] = list(torch.cuda.get_device_capability(0))
    return env


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", help="cuda (the device machine) or cpu (the smoke run here)")
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu_check")))
    p.add_argument("--quick", action="store_true", help="tiny sizes (implied by --device cpu)")
    p.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS))
    p.add_argument("--only", choices=("compile", "epoch_log", "overhead"), help=argparse.SUPPRESS)
    p.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    quick = args.quick or args.device == "cpu"
    if args.only:  # one in-process measurement (run_step's child process)
        if args.only == "compile":
            result = compile_counts(args.device, quick)
        elif args.only == "epoch_log":
            result = epoch_log_lag(args.device, quick)
        else:
            from bench.overhead import loop_probe

            result = loop_probe(args.device, n_per_class=10, epochs=(1, 2), cases=1)
        args.result.write_text(json.dumps(result, indent=1))
        return 0
    out = args.out.resolve()
    (out / "logs").mkdir(parents=True, exist_ok=True)
    summary = {"device": args.device, "quick": quick, "environment": environment(), "steps": {}}
    t0 = time.perf_counter()
    for name in args.steps:
        print(f"gpu_check: {name} ...", flush=True)
        summary["steps"][name] = step = run_step(name, args.device, quick, out)
        print(f"gpu_check: {name} {'ok' if step['ok'] else 'FAILED'} ({step['seconds']} s)", flush=True)
        summary["seconds"] = round(time.perf_counter() - t0, 1)
        (out / "gpu_check.json").write_text(json.dumps(summary, indent=1, default=str))
    summary["ok"] = all(s["ok"] for s in summary["steps"].values())
    (out / "gpu_check.json").write_text(json.dumps(summary, indent=1, default=str))
    print(json.dumps({k: {"ok": v["ok"], "seconds": v["seconds"]} for k, v in summary["steps"].items()}))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
