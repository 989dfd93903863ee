"""config/test.yaml without a shared filesystem, as on a cloud executor: every job runs in an
empty folder of its own (tests/storage/fake_scheduler.py behind snakemake-executor-plugin-
cluster-generic) and finds its inputs and leaves its outputs only in the default storage
provider (`--shared-fs-usage none`, sources deployed through storage). The tables equal a local
run's (the wall-time columns aside).

- fs storage (snakemake-storage-plugin-fs, which needs rsync): a folder stands for the bucket.
- S3 (snakemake-storage-plugin-s3) against a moto server started here. The S3 stack conflicts
  with envs/requirements.txt (botocore needs python-dateutil<3), so it lives in .venv-s3
  (`make venv-s3`); skipped, saying why, where neither that venv nor this one has it.
"""

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.storage.fake_scheduler import kill_all
from tests.workflow.conftest import ROOT, clean_env

pytestmark = pytest.mark.slow

SCHEDULER = Path(__file__).with_name("fake_scheduler.py")
S3_VENV_PYTHON = ROOT / ".venv-s3" / "bin" / "python"
#: Tables that hold no measured time: equal to a local run's byte for byte (as DataFrames).
EXACT_TABLES = ["metrics", "class_distances", "summary", "ranking", "worst_misses", "tsne", "closed_set"]
#: runs.parquet without wall time and code identity (a node has no git checkout).
RUNS_COLUMNS = [
    "dataset",
    "n_anomaly",
    "method",
    "n_per_class",
    "seed",
    "device",
    "threads",
    "precision",
    "compiled",
    "torch",
    "epochs",
    "batch_size",
    "lr",
]


def workflow_copy(dest: Path) -> Path:
    """The workflow's sources and config/test.yaml in ``dest``: Snakemake ships the folder it
    runs in to the jobs (a source archive in storage), so it runs in a copy of the workflow."""
    dest.mkdir(parents=True)
    shutil.copy2(ROOT / "Snakefile", dest / "Snakefile")
    for name in ("rules", "profiles", "envs", "report"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("_output", ".quarto", "*_files"))
    (dest / "config").mkdir()
    shutil.copy2(ROOT / "config" / "test.yaml", dest / "config" / "test.yaml")
    return dest


def run_without_shared_fs(root: Path, python: str, storage_args: list[str], env: dict[str, str]) -> float:
    """snakemake on config/test.yaml with no shared filesystem; returns its wall time in seconds."""
    work, scheduler = workflow_copy(root / "work"), root / "scheduler"
    env = {**clean_env(**env), "FAKE_SCHEDULER_DIR": str(scheduler), "FAKE_SCHEDULER_PYTHON": python}
    cmd = [
        python,
        "-m",
        "snakemake",
        "--configfile",
        "config/test.yaml",
        "--executor",
        "cluster-generic",
        "--cluster-generic-submit-cmd",
        f"{python} {SCHEDULER} submit",
        "--cluster-generic-status-cmd",
        f"{python} {SCHEDULER} status",
        "--jobs",
        "2",
        "--shared-fs-usage",
        "none",
        "--job-deploy-sources",
        "--seconds-between-status-checks",
        "1",
        "--latency-wait",
        "5",
        *storage_args,
    ]
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=1200)
    finally:
        kill_all(scheduler)
    if proc.returncode != 0:
        logs = "\n".join(f"--- {p}\n{p.read_text()[-1500:]}" for p in sorted((scheduler / "nodes").glob("*/job.log")))
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stderr[-5000:]}\n{logs[-6000:]}")
    # no job wrote into the folder Snakemake runs in: every output went to storage
    assert not (work / "results").exists()
    nodes = list((scheduler / "nodes").iterdir())
    # one fresh folder per job; the local rules (snapshot, closed_set, the spec rules) run where Snakemake does
    assert len(nodes) >= 9 and all((n / "job.log").is_file() for n in nodes)
    return time.monotonic() - start


def assert_tables_equal(local: Path, remote: Path) -> None:
    for name in EXACT_TABLES:
        pd.testing.assert_frame_equal(
            pd.read_parquet(remote / f"{name}.parquet"), pd.read_parquet(local / f"{name}.parquet"), obj=name
        )
    runs_local, runs_remote = (pd.read_parquet(d / "runs.parquet")[RUNS_COLUMNS] for d in (local, remote))
    pd.testing.assert_frame_equal(runs_remote, runs_local, obj="runs")
    keys = ["rule", "job", "dataset", "n_anomaly", "method", "n_per_class", "seed"]
    runtime_local, runtime_remote = (pd.read_parquet(d / "runtime.parquet") for d in (local, remote))
    pd.testing.assert_frame_equal(runtime_remote[keys], runtime_local[keys], obj="runtime")
    assert (runtime_remote["seconds"] > 0).all()
    figures = sorted(p.name for p in (local.parent / "figures").iterdir())
    assert sorted(p.name for p in (remote.parent / "figures").iterdir()) == figures


def test_fs_storage_without_shared_filesystem(tmp_path, test_run):
    if shutil.which("rsync") is None:
        pytest.skip("rsync is not installed; snakemake-storage-plugin-fs copies with it (apt-get install rsync)")
    bucket = tmp_path / "bucket"
    seconds = run_without_shared_fs(
        tmp_path, sys.executable, ["--default-storage-provider", "fs", "--default-storage-prefix", str(bucket)], env={}
    )
    print(f"fs storage run: {seconds:.0f} s")
    assert_tables_equal(test_run / "results" / "tables", bucket / "results" / "tables")


# ------------------------------------------------------------------------------------------
# S3


def s3_python() -> str:
    """An interpreter with snakemake, the S3 storage plugin and moto: this one or .venv-s3's."""
    probe = "import snakemake, snakemake_storage_plugin_s3, moto.server, boto3, dmlbench"
    for python in (sys.executable, str(S3_VENV_PYTHON)):
        if Path(python).exists() and subprocess.run([python, "-c", probe], capture_output=True).returncode == 0:
            return python
    pytest.skip(
        "no Python with snakemake-storage-plugin-s3 and moto here: run `make venv-s3` (they need "
        "python-dateutil<3, which envs/requirements.txt does not allow in .venv)"
    )


@pytest.fixture
def s3_server(tmp_path):
    """A moto S3 server on a free local port: (interpreter, endpoint URL)."""
    python = s3_python()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(tmp_path / "moto.log", "w")
    proc = subprocess.Popen(
        [python, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.skip(f"the moto S3 server did not start: {(tmp_path / 'moto.log').read_text()[-500:]}")
                time.sleep(0.2)
        yield python, endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


DOWNLOAD = """
import sys, boto3
from pathlib import Path
endpoint, bucket, prefix, dest = sys.argv[1:]
s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test",
                  region_name="us-east-1")
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
    for obj in page.get("Contents", []):
        path = Path(dest) / obj["Key"]
        path.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, obj["Key"], str(path))
"""


def test_s3_storage_without_shared_filesystem(tmp_path, test_run, s3_server):
    python, endpoint = s3_server
    credentials = {
        "SNAKEMAKE_STORAGE_S3_ACCESS_KEY": "test",
        "SNAKEMAKE_STORAGE_S3_SECRET_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    seconds = run_without_shared_fs(
        tmp_path,
        python,
        [
            "--default-storage-provider",
            "s3",
            "--default-storage-prefix",
            "s3://dmlbench-test",
            "--storage-s3-endpoint-url",
            endpoint,
        ],
        env=credentials,
    )
    print(f"S3 storage run: {seconds:.0f} s")
    local = tmp_path / "from-s3"
    subprocess.run([python, "-c", DOWNLOAD, endpoint, "dmlbench-test", "results/", str(local)], check=True)
    assert_tables_equal(test_run / "results" / "tables", local / "results" / "tables")
