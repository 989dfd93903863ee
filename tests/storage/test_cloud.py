"""The cloud set-up that cannot run here: profiles/cloud (Kubernetes executor, GCS storage) and
the Dockerfile its jobs run in. The profile is checked by a dry run (every key an option of the
installed plugins, the train jobs' GPU resources as the Kubernetes plugin needs them); the image
is built where a container engine runs and otherwise checked statically."""

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from tests.storage.test_no_shared_fs import workflow_copy
from tests.workflow.conftest import BIN, ROOT, clean_env
from tests.workflow.test_install import runtime_files

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
    # the Kubernetes plugin refuses a GPU job without a manufacturer; Kubernetes a GPU request without a limit
    assert profile["set-resources"]["train"]["gpu"] == 1
    assert profile["set-resources"]["train"]["gpu_manufacturer"] == "nvidia"
    assert profile["set-resources"]["train"]["scale"] == 0
    # annex A.2's jobs (rules train_annex, score_annex) get what train and score get
    assert profile["set-resources"]["train_annex"] == profile["set-resources"]["train"]
    assert profile["set-resources"]["score_annex"] == profile["set-resources"]["score"]


def dry_run_train_resources(work, tmp_path) -> tuple[list[dict], str]:
    """`snakemake --profile profiles/cloud -n` in the workflow copy ``work``, with the bucket
    replaced by a local fs storage (GCS wants credentials even for a dry run): the train jobs'
    resources as the executor gets them (Snakemake's printout; the job's threads as ``_cores``),
    and the whole output."""
    cmd = [
        str(BIN / "snakemake"),
        "--profile",
        "profiles/cloud",
        # Snakemake's own console, whose job blocks list the resources (the workflow profile's
        # logger prints one line per job)
        "--workflow-profile",
        "none",
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
    jobs = []
    for block in out.split("\n\n"):
        if "rule train:" not in block and "rule train_annex:" not in block:
            continue
        printed = re.search(r"^\s*resources: (.*)$", block, re.M).group(1)
        resources = dict(item.split("=", 1) for item in printed.split(", "))
        resources = {k: int(v) if v.isdigit() else v for k, v in resources.items()}
        cores = int(re.search(r"--threads (\d+)", block).group(1))  # the job's threads: the pod's CPUs
        jobs.append({**resources, "_cores": cores, "_nodes": 1})
    return jobs, out


class _Captured:
    """The Kubernetes batch API the plugin submits to: keeps the job body, submits nothing."""

    def __init__(self):
        self.bodies = []

    def create_namespaced_job(self, namespace, body):
        self.bodies.append(body)
        return body


def pod_of(resources: dict):
    """The pod spec that snakemake-executor-plugin-kubernetes (installed) builds for a job with
    these resources: its own run_job, with only the cluster API and Snakemake's job object faked."""
    import logging
    from types import SimpleNamespace

    from snakemake_executor_plugin_kubernetes import Executor

    executor = object.__new__(Executor)  # no cluster: skip __post_init__'s kubeconfig
    api = _Captured()
    executor.__dict__.update(
        logger=logging.getLogger("test.kubernetes"),
        run_namespace="run",
        container_image="registry/dmlbench:test",
        persistent_volumes=[],
        k8s_service_account_name=None,
        secret_envvars={},
        k8s_cpu_scalar=0.95,
        privileged=False,
        namespace="ns",
        batchapi=api,
        workflow=SimpleNamespace(deployment_settings=SimpleNamespace(deployment_method=[])),
        format_job_exec=lambda job: "python -m snakemake ...",
        _kubernetes_retry=lambda call: call(),
        report_job_submission=lambda info: None,
    )
    job = SimpleNamespace(resources=resources, jobid=1, attempt=0, is_containerized=False)
    executor.run_job(job)
    (body,) = api.bodies
    return body.spec.template.spec


def assert_valid_for_kubernetes(pod) -> None:
    """What the API server checks of extended resources (GPUs): a request has a limit, equal to
    it (kubernetes.io/docs/tasks/manage-gpus/scheduling-gpus: "You cannot specify GPU requests
    without specifying limits")."""
    (container,) = pod.containers
    for name, value in container.resources.requests.items():
        if "/" in name:  # nvidia.com/gpu, amd.com/gpu: not overcommitable
            assert (container.resources.limits or {}).get(name) == value, f"{name} requested without an equal limit"


def test_cloud_profile_with_gpus(tmp_path):
    """The profile as shipped: each train job's pod asks for one NVIDIA GPU (with its limit),
    tolerates the GPU nodes' taint and selects the GPU node pool; every other job asks for none."""
    work = workflow_copy(tmp_path / "work")
    jobs, out = dry_run_train_resources(work, tmp_path)
    # config/test.yaml: the scored job (nall), the annex job (n20) and the closed-set models' job
    assert len(jobs) == 3 and out.count("rule train_annex:") == 1
    for resources in jobs:
        assert {k: resources[k] for k in ("gpu", "gpu_manufacturer", "scale")} == {
            "gpu": 1,
            "gpu_manufacturer": "nvidia",
            "scale": 0,
        }
        pod = pod_of(resources)
        assert_valid_for_kubernetes(pod)
        assert pod.containers[0].resources.requests["nvidia.com/gpu"] == "1"
        assert [t.key for t in pod.tolerations] == ["nvidia.com/gpu"]
        assert pod.node_selector == {"node.kubernetes.io/instance-type": "<gpu instance type>"}
    # everything but train runs without a GPU
    assert not [b for b in out.split("\n\n") if "gpu=" in b and "rule train" not in b]


def test_cloud_profile_without_gpus_as_its_text_says(tmp_path):
    """The profile's own advice for a cluster without GPUs (gpu: 0, no machine_type, the rest
    kept) gives pods the plugin builds and Kubernetes schedules on any node; the advice it used to
    give (remove the gpu lines) stops the run in the plugin."""
    from snakemake_interface_common.exceptions import WorkflowError

    work = workflow_copy(tmp_path / "work")
    profile_file = work / "profiles" / "cloud" / "config.yaml"
    profile = yaml.safe_load(profile_file.read_text())
    train = profile["set-resources"]["train"]
    train["gpu"] = 0
    del train["machine_type"]
    profile["set-resources"]["train_annex"] = train
    profile_file.write_text(yaml.safe_dump(profile))
    jobs, _ = dry_run_train_resources(work, tmp_path)
    assert len(jobs) == 3
    for resources in jobs:
        pod = pod_of(resources)
        assert_valid_for_kubernetes(pod)
        assert pod.containers[0].resources.requests["nvidia.com/gpu"] == "0"
        assert pod.node_selector == {}
    old_advice = {k: v for k, v in jobs[0].items() if k not in ("gpu_manufacturer", "machine_type")}
    with pytest.raises(WorkflowError, match="GPU requested but no manufacturer set"):
        pod_of(old_advice)
    # and without scale 0, the GPU request would have no limit, which the API server refuses
    pod = pod_of({k: v for k, v in jobs[0].items() if k != "scale"})
    with pytest.raises(AssertionError, match="requested without an equal limit"):
        assert_valid_for_kubernetes(pod)


DOCKERFILE = ROOT / "Dockerfile"


def _steps() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_dockerfile_installs_the_pinned_requirements_and_a_wheel_of_this_package():
    """Static check: the image is built from envs/requirements.txt and a wheel of the package's own
    source, installed non-editable, the sources removed, the schema loaded from another folder."""
    steps = _steps()
    base = next(s for s in steps if s.startswith("FROM "))
    assert re.match(r"FROM python:3\.11[.\d]*-slim", base)  # requirements.txt: Python 3.11, Linux x86_64
    copy_req = steps.index("COPY envs/requirements.txt envs/requirements.txt")
    install_req = next(i for i, s in enumerate(steps) if s.startswith("RUN pip install -r envs/requirements.txt"))
    copy_src = steps.index("COPY src ./src")
    build = next(i for i, s in enumerate(steps) if s.startswith("RUN pip wheel --no-deps -w /tmp/dist ."))
    assert copy_req < install_req < copy_src < build
    commands = [c.strip() for c in steps[build].removeprefix("RUN ").split("&&")]
    assert commands[1] == "pip install --no-deps /tmp/dist/dmlbench-*.whl"  # the wheel, not `pip install -e`
    assert "src" in commands[2].split() and commands[3] == "cd /"  # then no source tree to fall back on
    assert "load_schema()" in commands[4]
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


def test_the_image_would_find_the_schema(tmp_path):
    """The build context the Dockerfile's COPY lines make (less .dockerignore's folders), built
    into a wheel as its RUN line does (offline here: no build isolation): the wheel holds the
    schema, with the bytes of schemas/config.schema.yaml, and every other file of the package."""
    ignored = {line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()}
    context = tmp_path / "opt-dmlbench"
    context.mkdir()
    for step in _steps():
        if not step.startswith("COPY ") or "envs/requirements.txt" in step:
            continue
        *sources, dest = step.split()[1:]
        for source in sources:
            assert source not in ignored, f"{source} is copied but .dockerignore leaves it out of the context"
            target = context / dest / Path(source).name if dest.endswith("/") else context / dest
            if (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, target, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(ROOT / source, target)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", "dist", "."],
        cwd=context,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (wheel,) = (context / "dist").glob("dmlbench-*.whl")
    with zipfile.ZipFile(wheel) as whl:
        assert whl.read("dmlbench/config/config.schema.yaml") == (ROOT / "schemas/config.schema.yaml").read_bytes()
        assert set(runtime_files()) <= set(whl.namelist())


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
