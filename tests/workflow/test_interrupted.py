"""A train job killed half way leaves nothing a rerun trusts; the rerun completes, taking the runs
the killed job had finished from the run cache instead of training them again."""

import json
import os
import signal
import subprocess
import time

import pandas as pd
import pytest
import yaml

from dmlbench.config import load_config
from tests.workflow.conftest import BIN, ROOT, clean_env, snakemake

pytestmark = pytest.mark.slow
JOB = "digits/a3/nall/s0"  # its runs: the config's methods (conventional and arcface), in config order


def test_sigkill_during_training_then_rerun(tmp_path, test_run):
    cfg = yaml.safe_load((ROOT / "config" / "test.yaml").read_text())
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))  # methods in the order the job trains them
    env = clean_env()
    cmd = [str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "--configfile", str(config), "--cores", "2"]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    log = tmp_path / "logs" / "train" / f"{JOB}.log"

    methods = list(load_config(config)["methods"])  # the labels, sweeps expanded, in training order
    first, second = methods[:2]

    def second_run_training() -> bool:
        text = log.read_text() if log.exists() else ""
        done = f"run 1/{len(methods)} {first}: trained"
        # the second run's first epoch line: "<method> case 0 (1/<cases>): epoch 1/<epochs>, loss ..."
        return done in text and f"{second} case 0 (1/" in text.split(done, 1)[1]

    deadline = time.monotonic() + 300
    try:
        # kill the whole process group (snakemake and the train job) once the job's first run has
        # finished and its second is training
        while time.monotonic() < deadline:
            if second_run_training():
                break
            if proc.poll() is not None:
                pytest.fail("snakemake ended before the train job could be killed")
            time.sleep(0.05)
        else:
            pytest.fail("the train job never reached its second run")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    killed = tmp_path / "results" / "runs" / "digits" / "a3" / second / "nall" / "s0"
    written = sorted(p.name for p in killed.glob("*")) if killed.exists() else []
    assert not {"embeddings.npz", "train_log.csv", "run.json"} & set(written), written
    assert not (tmp_path / "results" / "jobs" / "train" / f"{JOB}.json").exists()
    # The lock of the killed run is stale: unlock as the user would, then rerun. Snakemake takes
    # the killed job as incomplete and runs it again; its finished run comes from the run cache.
    snakemake(tmp_path, "--configfile", str(config), "--unlock")
    snakemake(tmp_path, "--configfile", str(config), "--cores", "2")
    record = json.loads((tmp_path / "results" / "jobs" / "train" / f"{JOB}.json").read_text())
    assert [(r["method"], r["status"]) for r in record["runs"]] == (
        [(first, "restored")] + [(m, "trained") for m in methods[1:]]
    )
    assert (killed / "run.json").exists()
    fresh = pd.read_parquet(tmp_path / "results/tables/metrics.parquet")
    reference = pd.read_parquet(test_run / "results/tables/metrics.parquet")
    pd.testing.assert_frame_equal(fresh, reference)
