"""One GPU per train job (dmlbench.train.gpus), with the device count faked: real processes take
the locks, as concurrent train jobs of one Snakemake run do, and one is killed holding its GPU."""

import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dmlbench.train import gpus

ROOT = Path(__file__).resolve().parents[3]
#: A train job's device choice and nothing else: print the device, then hold it until stdin closes.
JOB = (
    "import sys; from dmlbench.train import gpus; "
    "print(gpus.job_device(sys.argv[1], int(sys.argv[2]), sys.argv[3]), flush=True); sys.stdin.read()"
)


def start(lock_dir: Path, count: int = 4, requested: str = "auto", visible: str | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    if visible is not None:
        env["CUDA_VISIBLE_DEVICES"] = visible
    return subprocess.Popen(
        [sys.executable, "-c", JOB, requested, str(count), str(lock_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def device_of(job: subprocess.Popen, timeout: float = 60.0) -> str | None:
    """The device the job printed, or None if it printed none within ``timeout`` seconds."""
    ready, _, _ = select.select([job.stdout], [], [], timeout)
    return job.stdout.readline().strip() if ready else None


@pytest.fixture
def jobs():
    started: list[subprocess.Popen] = []
    yield started
    for job in started:
        if job.poll() is None:
            job.kill()
        job.wait()


def test_four_concurrent_jobs_take_four_different_gpus_and_a_killed_job_frees_its_own(tmp_path, jobs):
    jobs += [start(tmp_path) for _ in range(4)]
    devices = [device_of(job) for job in jobs]
    assert sorted(devices) == ["cuda:0", "cuda:1", "cuda:2", "cuda:3"]
    # a fifth job finds every GPU held and waits ...
    jobs.append(start(tmp_path))
    assert device_of(jobs[4], timeout=3.0) is None and jobs[4].poll() is None
    # ... until the job on cuda:2 is killed (no clean-up of its own: the kernel drops the lock)
    victim = jobs[devices.index("cuda:2")]
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert device_of(jobs[4]) == "cuda:2"
    # the lock files stay behind and hold nothing
    assert len(list((tmp_path / os.uname().nodename).glob("gpu-*.lock"))) == 4


def test_a_job_that_ends_frees_its_gpu_for_the_next(tmp_path, jobs):
    jobs += [start(tmp_path, count=2) for _ in range(2)]
    devices = [device_of(job) for job in jobs]
    assert sorted(devices) == ["cuda:0", "cuda:1"]
    jobs[0].stdin.close()  # the first job ends normally
    jobs[0].wait()
    jobs.append(start(tmp_path, count=2))
    assert device_of(jobs[2]) == devices[0]


def test_the_scheduler_s_visible_devices_name_the_locks(tmp_path, jobs):
    """CUDA_VISIBLE_DEVICES is respected: a device is its entry there, the same physical GPU in
    either order of the list. GPU 7 held through "7,5" is held for a job that sees "5,7" too."""
    jobs.append(start(tmp_path, count=2, visible="7,5"))
    assert device_of(jobs[0]) == "cuda:0"  # physical 7
    jobs.append(start(tmp_path, count=2, visible="5,7"))
    assert device_of(jobs[1]) == "cuda:0"  # physical 5: free, though 7 is index 0 of the other job
    jobs.append(start(tmp_path, count=2, visible="5,7"))
    assert device_of(jobs[2], timeout=3.0) is None  # 5 and 7 both held
    assert gpus.visible_ids(2, "GPU-a1,GPU-b2,GPU-c3") == ["GPU-a1", "GPU-b2"]
    assert gpus.visible_ids(3, "") == ["0", "1", "2"]


def test_one_visible_device_an_explicit_device_and_the_cpu_take_no_lock(tmp_path):
    assert gpus.job_device("auto", 1, tmp_path) == "auto"  # the scheduler's one GPU, shared as before
    assert gpus.job_device("cuda", 0, tmp_path) == "cuda"
    assert gpus.job_device("cuda:3", 4, tmp_path) == "cuda:3"
    assert gpus.job_device("cpu", 4, tmp_path) == "cpu"
    assert not tmp_path.joinpath(os.uname().nodename).exists()


def test_the_lock_folder_is_the_workflow_s_unless_set(tmp_path, monkeypatch):
    monkeypatch.delenv(gpus.LOCK_DIR_ENV, raising=False)
    assert gpus.default_lock_dir("results") == Path("results/.locks")
    monkeypatch.setenv(gpus.LOCK_DIR_ENV, str(tmp_path))
    assert gpus.default_lock_dir("results") == tmp_path


def test_the_lock_is_dropped_when_the_holder_closes_it(tmp_path):
    lock = gpus.acquire(1, tmp_path)
    assert lock.path.read_text().strip() == str(os.getpid())
    assert gpus._try_lock(lock.path) is None  # held: a second open file of this process is refused too
    lock.release()
    fd = gpus._try_lock(lock.path)
    assert fd is not None
    os.close(fd)


def test_dmlbench_train_trains_on_the_gpu_it_holds_and_makes_its_context_there(tmp_path, monkeypatch, jobs):
    """`dmlbench train` with four CUDA devices faked and GPU 0 held by another job: the job takes
    GPU 1, makes the CUDA context there (not on GPU 0) and hands cuda:1 to its runs."""
    import json

    import torch

    from dmlbench import cli
    from dmlbench.train import job

    locks = tmp_path / "locks"
    jobs.append(start(locks))
    assert device_of(jobs[0]) == "cuda:0"
    for name in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR"):
        monkeypatch.setenv(name, str(tmp_path / name))  # what configure() would set: kept out of later tests
    seen = {}
    zeros = torch.zeros
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.cuda, "set_device", lambda dev: seen.setdefault("set_device", str(dev)))
    monkeypatch.setattr(
        torch,
        "zeros",
        lambda *a, **k: seen.setdefault("context", str(k["device"])) if "device" in k else zeros(*a, **k),
    )
    monkeypatch.setattr(job, "train_runs", lambda *a, **k: seen.setdefault("runs", k["device"]))
    monkeypatch.setattr(gpus, "_held", None)
    spec = json.dumps([{"dataset": "digits", "method": "conventional", "training": {}}])
    argv = ["--results", str(tmp_path / "results"), "train", "--spec", spec, "--data", "x.npz"]
    try:
        assert cli.main([*argv, "--out", str(tmp_path / "run"), "--gpu-locks", str(locks)]) == 0
    finally:
        if gpus.held() is not None:
            gpus.held().release()
    assert seen == {"set_device": "cuda:1", "context": "cuda:1", "runs": "cuda:1"}
