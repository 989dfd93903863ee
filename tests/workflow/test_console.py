"""Issue 28: a readable console. The job specs travel by files Snakemake tracks (rules/specs.smk),
not on the printed command lines; the workflow's logger (src/snakemake_logger_plugin_dmlbench,
named in profiles/default) prints one short line per job; the full study's dry run fits 20 KB;
and a change of one method's settings reruns the spec rule of the jobs holding it, nothing else."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from snakemake_logger_plugin_dmlbench import job_line, short_command, short_reason
from tests.workflow.conftest import ROOT, snakemake

#: The issue's target for `snakemake -n` on config/config.yaml (it printed 177 KB before).
MAX_DRY_RUN_BYTES = 20_000


def test_job_line_is_one_line_with_rule_wildcards_first_output_and_short_reason():
    msg = {
        "rule_name": "train",
        "local": False,
        "is_checkpoint": False,
        "wildcards": {"dataset": "cifar10", "n_anomaly": "1", "n_per_class": "all", "seed": "0"},
        "output": [f"results/runs/cifar10/a1/m{i}/nall/s0/run.json" for i in range(19)],
        "reason": "Missing output files: a, b, c; Params have changed since last execution",
    }
    assert job_line(msg) == (
        "rule train: dataset=cifar10, n_anomaly=1, n_per_class=all, seed=0 -> "
        "results/runs/cifar10/a1/m0/nall/s0/run.json (+18 files) "
        "[Missing output files; Params have changed since last execution]"
    )
    assert short_reason("Input files updated by another job: x, y") == "Input files updated by another job"


def test_a_long_command_keeps_each_option_and_the_first_of_its_paths():
    paths = " ".join(f"results/scores/d/a1/m{i}/nall/s0.parquet" for i in range(30))
    cmd = f"Shell command: dmlbench aggregate --scores {paths} --out results/tables > logs/aggregate.log 2>&1"
    assert short_command(cmd) == (
        "Shell command: dmlbench aggregate --scores results/scores/d/a1/m0/nall/s0.parquet (+29 more) "
        "--out results/tables > logs/aggregate.log 2>&1"
    )
    assert short_command("dmlbench snapshot --spec x.json") == "dmlbench snapshot --spec x.json"  # short: as is


@pytest.mark.slow
def test_the_full_study_dry_run_prints_one_short_line_per_job(tmp_path):
    proc = snakemake(tmp_path, "-n", "--configfile", str(ROOT / "config" / "config.yaml"))
    out = proc.stdout + proc.stderr
    size = len(out.encode())
    assert size <= MAX_DRY_RUN_BYTES, f"{size} bytes"
    assert max(len(line) for line in out.splitlines()) <= 500
    total = int(re.search(r"^total\s+(\d+)$", out, re.M)[1])
    jobs = re.findall(r"^(?:local)?rule (\w+):", out, re.M)
    assert len(jobs) == total and "train" in jobs
    # no spec on a command line: each job reads its spec file
    commands = [line for line in out.splitlines() if line.startswith("Shell command:")]
    assert commands and not any("{" in c for c in commands)
    train = next(c for c in commands if "dmlbench train " in c)
    assert "--spec results/specs/train/" in train


@pytest.mark.slow
def test_a_method_change_reruns_only_the_spec_rules_that_hold_it(tmp_path):
    """The spec rules' params are the specs: changing arcface's margin reruns the spec of every train
    job (each holds every method), not the score or config specs' - except the config snapshot's,
    which holds the whole config; an unchanged config reruns nothing."""
    cfg = yaml.safe_load((ROOT / "config" / "test.yaml").read_text())
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    specs = ["results/specs/train/digits/a3/nall/s0.json", "results/specs/score.json", "results/specs/config.json"]
    snakemake(tmp_path, "--configfile", str(config), "--cores", "1", *specs)
    before = json.loads((tmp_path / specs[0]).read_text())
    assert [s["method"] for s in before] == list(
        yaml.safe_load((tmp_path / "results/specs/config.json").read_text())["methods"]
    )

    def planned():
        proc = snakemake(tmp_path, "-n", "--configfile", str(config), "--cores", "1", *specs)
        return sorted(re.findall(r"^(?:local)?rule (\w+):", proc.stdout + proc.stderr, re.M))

    assert planned() == []
    cfg["methods"]["arcface"]["margin"] = [0.3, 0.45]
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert planned() == ["spec_config", "spec_train"]


def test_a_finished_job_is_one_line_and_progress_has_an_estimate():
    from snakemake_logger_plugin_dmlbench import Formatter

    now = [0.0]
    f = Formatter(clock=lambda: now[0])
    info = {
        "rule_name": "train",
        "wildcards": {"dataset": "digits"},
        "output": ["a", "b"],
        "reason": "Missing output files: a",
    }
    assert (
        f.format_job_info({**info, "jobid": 4}) == "rule train: dataset=digits -> a (+1 files) [Missing output files]"
    )
    now[0] = 62.0
    assert f.format_job_finished({"job_id": 4}).endswith("] done rule train: dataset=digits in 1m02s")
    # 3 of 10 jobs in 62 s since the first started: 7 left at 62/3 s each -> 144.7 s
    assert f.format_progress({"done": 3, "total": 10}) == "3 of 10 steps (30%) done; ~2m25s left at this pace"
    assert f.format_progress({"done": 10, "total": 10}) == "10 of 10 steps (100%) done"


def test_the_no_gpu_warning_is_bench_full_studys_estimate():
    """The workflow's warning reuses bench/full_study.py --estimate's model (now in
    dmlbench.config.estimate): the full study's minutes are the stored estimate's."""
    from dmlbench.config import load_config
    from dmlbench.config.estimate import gpu_minutes, no_gpu_warning

    stored = json.loads((ROOT / "bench" / "results" / "full_study-estimate.json").read_text())
    config = load_config(ROOT / "config" / "config.yaml")
    assert gpu_minutes(config) == stored["total_minutes"]
    assert no_gpu_warning(config) == (
        f"dmlbench: warning: no GPU found, and this config trains {stored['runs']} runs: about "
        f"{stored['total_minutes']:.0f} min on one H100-class GPU (bench/full_study.py --estimate's model), "
        "many times that on this machine's CPU; stop it (Ctrl-C) and run where a GPU is, or try config/demo.yaml"
    )
    assert no_gpu_warning(load_config(ROOT / "config" / "demo.yaml")) is None  # a CPU config: no warning


@pytest.mark.slow
def test_a_full_study_start_without_a_gpu_prints_one_warning_line(tmp_path):
    """A real start (one local job: the score spec) of config/config.yaml with the GPU hidden."""
    import os
    import subprocess

    from tests.workflow.conftest import BIN, clean_env

    env = clean_env(DMLBENCH_DEVICE="cpu")
    cmd = [str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path)]
    cmd += ["--configfile", str(ROOT / "config" / "config.yaml"), "--cores", "1", "results/specs/score.json"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    warnings = [line for line in out.splitlines() if line.startswith("dmlbench: warning: no GPU found")]
    assert len(warnings) == 1 and "min on one H100-class GPU" in warnings[0], out[-3000:]
    assert os.path.exists(tmp_path / "results" / "specs" / "score.json")
