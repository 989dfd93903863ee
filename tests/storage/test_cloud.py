"""The cloud set-up that cannot run here: profiles/cloud (Kubernetes executor, GCS storage) and
the Dockerfile its jobs run in. The profile is checked by a dry run (every key an option of the
installed plugins, the train jobs' GPU resources as the Kubernetes plugin needs them); the image
is built where a container engine runs and otherwise checked statically."""

import re
import shutil
import subprocess

import pytest
import yaml

from tests.storage.test_no_shared_fs import workflow_copy
from tests.workflow.conftest import BIN, ROOT, clean_env

PROFILE = ROOT / "profiles" / "cloud" / "config.yaml"


def test_every_cluster_value_of_the_cloud_profile_is_a_commented_placeholder():
    lines = PROFILE.read_text().splitlines()
    placeholders = [line for line in lines if not line.lstrip().startswith("#") and "<" in line]
    keys = {line.split(":")[0].strip() for line in placeholders}
    assert {
        "container-image",
        "kubernetes-namespace",
        "default-storage-prefix",
        "storage-gcs-project",
        "machine_type",
    } <= keys
    uncommented = [line for line in placeholders if "#" not in line.split(":", 1)[1]]
    assert not uncommented, f"placeholders without a comment saying what to put there: {uncommented}"
    profile = yaml.safe_load(PROFILE.read_text())
    assert profile["executor"] == "kubernetes" and profile["default-storage-provider"] == "gcs"
    # the Kubernetes plugin refuses a GPU job without a manufacturer
    assert profile["set-resources"]["train"]["gpu"] == 1
    assert profile["set-resources"]["train"]["gpu_manufacturer"] == "nvidia"
    # annex A.2's jobs (rules train_annex, score_annex) get what train and score get
    assert profile["set-resources"]["train_annex"] == profile["set-resources"]["train"]
    assert profile["set-resources"]["score_annex"] == profile["set-resources"]["score"]


def test_cloud_profile_dry_run(tmp_path):
    """`snakemake --profile profiles/cloud -n` with the bucket replaced by a local fs storage (GCS
    wants credentials even for a dry run): the profile's keys are options of the installed
    executor and storage plugins, and each train job asks for one NVIDIA GPU."""
    work = workflow_copy(tmp_path / "work")
    cmd = [
        str(BIN / "snakemake"),
        "--profile",
        "profiles/cloud",
        "--configfile",
        "config/test.yaml",
        "-n",
        "--default-storage-provider",
        "fs",
        "--default-storage-prefix",
        str(tmp_path / "bucket"),
    ]
    proc = subprocess.run(cmd, cwd=work, env=clean_env(), capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    blocks = out.split("\n\n")
    train = [b for b in blocks if "rule train:" in b or "rule train_annex:" in b]
    # config/test.yaml: the scored job (nall), the annex job (n20) and the closed-set models' job
    assert len(train) == 3 and sum("rule train_annex:" in b for b in train) == 1
    assert all("gpu=1, gpu_manufacturer=nvidia, machine_type=<gpu instance type>" in b for b in train)
    # everything but train runs without a GPU
    assert not [b for b in blocks if "gpu=" in b and b not in train]


DOCKERFILE = ROOT / "Dockerfile"


def test_dockerfile_installs_the_pinned_requirements_and_this_package():
    """Static check: the image is built from envs/requirements.txt and the package's own source."""
    steps = [line for line in DOCKERFILE.read_text().splitlines() if line and not line.startswith("#")]
    base = next(s for s in steps if s.startswith("FROM "))
    assert re.match(r"FROM python:3\.11[.\d]*-slim", base)  # requirements.txt: Python 3.11, Linux x86_64
    copy_req = steps.index("COPY envs/requirements.txt envs/requirements.txt")
    install_req = next(i for i, s in enumerate(steps) if s.startswith("RUN pip install -r envs/requirements.txt"))
    copy_src = steps.index("COPY src ./src")
    install_pkg = next(i for i, s in enumerate(steps) if s.startswith("RUN pip install --no-deps ."))
    assert copy_req < install_req < copy_src < install_pkg
    assert "COPY pyproject.toml README.md ./" in steps[:install_pkg]
    assert steps[-1] == "WORKDIR /workdir"  # where the Kubernetes plugin runs the jobs
    # the packages the jobs need are pinned in what the image installs
    pinned = {
        line.split("==")[0].lower()
        for line in (ROOT / "envs" / "requirements.txt").read_text().splitlines()
        if "==" in line
    }
    assert {"snakemake", "snakemake-storage-plugin-gcs", "torch", "fastai"} <= pinned
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert {".venv", "results", "data", ".git"} <= set(ignored)


def test_docker_build(tmp_path):
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker command here: the image build is checked statically only")
    info = subprocess.run([docker, "info"], capture_output=True, text=True, timeout=60)
    if info.returncode != 0:
        pytest.skip(
            f"docker cannot reach a container engine here ({info.stderr.strip().splitlines()[-1]}): "
            "the image build is checked statically only"
        )
    tag = "dmlbench-test:latest"
    subprocess.run([docker, "build", "-t", tag, str(ROOT)], check=True, timeout=3600)
    probe = (
        "import dmlbench, snakemake, snakemake_storage_plugin_gcs, torch; "
        "from dmlbench.layout import TABLE_NAMES; print(len(TABLE_NAMES))"
    )
    out = subprocess.run(
        [docker, "run", "--rm", tag, "python", "-c", probe], capture_output=True, text=True, check=True, timeout=600
    )
    assert out.stdout.strip() == "7"
