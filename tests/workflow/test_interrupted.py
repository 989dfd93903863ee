"""A train job killed half way leaves nothing a rerun trusts; the rerun completes."""

import os
import signal
import subprocess
import time

import pandas as pd
import pytest
import yaml

from tests.workflow.conftest import BIN, ROOT, clean_env, snakemake

pytestmark = pytest.mark.slow
JOB = "digits/a3/conventional/nall/s0"


def test_sigkill_during_training_then_rerun(tmp_path, test_run):
    cfg = yaml.safe_load((ROOT / "config" / "test.yaml").read_text())
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    env = clean_env()
    cmd = [str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "--configfile", str(config), "--cores", "2"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    log = tmp_path / "logs" / "train" / f"{JOB}.log"
    deadline = time.monotonic() + 300
    try:
        # kill the whole process group (snakemake and the train job) once case 0 has finished
        while time.monotonic() < deadline:
            if log.exists() and "case 0 epoch 0" in log.read_text():
                break
            if proc.poll() is not None:
                pytest.fail("snakemake ended before the train job could be killed")
            time.sleep(0.05)
        else:
            pytest.fail("the train job never reached case 0's first epoch")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    run = tmp_path / "results" / "runs" / JOB
    written = sorted(p.name for p in run.glob("*")) if run.exists() else []
    assert not {"embeddings.npz", "train_log.csv", "run.json"} & set(written), written
    # The lock of the killed run is stale: unlock as the user would, then rerun.
    snakemake(tmp_path, "--configfile", str(config), "--unlock")
    snakemake(tmp_path, "--configfile", str(config), "--cores", "2")
    assert (run / "run.json").exists()
    fresh = pd.read_parquet(tmp_path / "results/tables/metrics.parquet")
    reference = pd.read_parquet(test_run / "results/tables/metrics.parquet")
    pd.testing.assert_frame_equal(fresh, reference)
