"""The workflow through snakemake-executor-plugin-slurm on a real single-node Slurm cluster
(tests/slurm/cluster.py): the tables equal those of a local run, and a job that fails on the
cluster is reported with its log files and Slurm's verdict.

Needs root and Debian's slurm-wlm and munge packages; skipped, saying why, where either is
missing - except under CI (CI=true), where .ci/run installs the packages and a missing one
fails the test.
"""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.slurm.cluster import INSTALL_HINT, ClusterUnavailable, SlurmCluster, missing_binaries
from tests.workflow.conftest import clean_env

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
JOB = "digits/a3/nall/s0"  # the train job of every method of (digits, 3 anomaly classes, all, seed 0)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A running single-node Slurm cluster; every daemon it started and every job is gone after
    the module."""
    if os.environ.get("CI", "").lower() == "true" and os.geteuid() == 0 and missing_binaries():
        pytest.fail(
            f"CI: Slurm is not installed ({', '.join(missing_binaries())}); .ci/run should have run: {INSTALL_HINT}"
        )
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
    except ClusterUnavailable as exc:
        pytest.skip(f"no Slurm cluster could be started here: {exc}")
    yield cluster
    cluster.stop()


def cluster_profile(folder: Path, cluster: SlurmCluster) -> Path:
    """profiles/slurm/config.yaml fitted to the one test node: its partition, no GPU, 1-2 CPUs,
    little memory, quick status checks. Every other key is the real profile's."""
    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    profile["default-resources"].update(
        slurm_partition=cluster.partition, slurm_account="dmlbench", mem_mb=800, runtime=10
    )
    for res in profile["set-resources"].values():
        res.update(cpus_per_task=1, mem_mb=800)
        res.pop("gpu_model", None)
        res.pop("runtime", None)
    profile["set-resources"]["train"]["gpu"] = 0  # the test node has no GPU
    profile["set-resources"]["score"]["cpus_per_task"] = 2
    profile.pop("set-threads")  # the local run's thread counts: same threads, same floating-point sums
    # No accounting database here, so no sacct: squeue sees finished jobs for MinJobAge.
    profile.update(
        {
            "slurm-status-command": "squeue",
            "slurm-init-seconds-before-status-checks": 2,
            "seconds-between-status-checks": 2,
            "latency-wait": 5,
        }
    )
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(profile))
    return folder


class Run:
    """snakemake on the repository's Snakefile in `workdir`, started in the background, up to
    the figures (the report rule needs quarto, which is not what this test is about)."""

    def __init__(self, workdir: Path, configfile: Path, *args: str, env: dict[str, str]):
        self.workdir = workdir
        workdir.mkdir(parents=True)
        # no `dmlbench` on PATH: the jobs find it through the interpreter that runs Snakemake
        env = clean_env(env)
        cmd = [
            str(BIN / "snakemake"),
            "-s",
            str(ROOT / "Snakefile"),
            "--directory",
            str(workdir),
            "--configfile",
            str(configfile),
            "--until",
            "figures",
            *args,
        ]
        self.output_file = workdir.parent / f"{workdir.name}.out"
        with open(self.output_file, "w") as out:
            self.proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT)

    def wait(self, timeout: float) -> "Run":
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.terminate()  # snakemake cancels its Slurm jobs on SIGTERM
            self.proc.wait(timeout=60)
            raise
        self.output = self.output_file.read_text()
        return self


@pytest.fixture(scope="module")
def runs(tmp_path_factory, cluster):
    """Three runs at once (most of a cluster run is waiting for the next status check):
    the core of config/test.yaml on the cluster and locally, and on the cluster the same config
    with a learning rate that makes training fail."""
    root = tmp_path_factory.mktemp("runs")
    # The core of config/test.yaml (one method, no annex A.2, no closed-set models): what is
    # tested here is the cluster's execution, and three runs share two cores.
    config = yaml.safe_load((ROOT / "config" / "test.yaml").read_text())
    config["methods"] = {"conventional": {}}
    config.pop("annex")
    config["tsne"] = {"enabled": False}
    test_yaml = root / "core.yaml"
    test_yaml.write_text(yaml.safe_dump(config))
    config["training"]["lr"] = 1e12  # the loss turns NaN: dmlbench train exits non-zero
    bad = root / "bad-lr.yaml"
    bad.write_text(yaml.safe_dump(config))
    profile = str(cluster_profile(root / "profile", cluster))
    started = {
        "slurm": Run(root / "slurm", test_yaml, "--profile", profile, env=cluster.env()),
        "bad_lr": Run(root / "bad-lr", bad, "--profile", profile, env=cluster.env()),
        "local": Run(root / "local", test_yaml, "--cores", "2", env=dict(os.environ)),
    }
    return {name: run.wait(timeout=280) for name, run in started.items()}


def test_tables_equal_a_local_run(runs, cluster):
    run, local = runs["slurm"], runs["local"]
    assert local.returncode == 0, local.output[-4000:]
    assert run.returncode == 0, f"snakemake on Slurm failed:\n{run.output[-6000:]}\n{cluster.logs()}"
    assert "has been submitted with SLURM jobid" in run.output
    for table in ("metrics", "class_distances"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(run.workdir / f"results/tables/{table}.parquet"),
            pd.read_parquet(local.workdir / f"results/tables/{table}.parquet"),
        )
    assert (run.workdir / "results/figures/fig-auroc-box.svg").is_file()


def test_a_failed_job_names_its_logs_and_slurms_verdict(runs):
    run = runs["bad_lr"]
    out = run.output
    assert run.returncode != 0, out[-4000:]
    assert "Error in rule train" in out, out[-6000:]
    # Slurm's verdict on the job ...
    assert "failed, SLURM status is: 'FAILED'" in out, out[-6000:]
    # ... Slurm's log of the job, which exists ...
    slurm_logs = list((run.workdir / ".snakemake/slurm_logs/rule_train").rglob("*.log"))
    assert len(slurm_logs) == 1 and str(slurm_logs[0]) in out, out[-6000:]
    # ... and the rule's own log, with dmlbench's message in it
    assert f"logs/train/{JOB}.log" in out
    assert "NaN" in (run.workdir / f"logs/train/{JOB}.log").read_text()
