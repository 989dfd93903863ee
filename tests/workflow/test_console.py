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
