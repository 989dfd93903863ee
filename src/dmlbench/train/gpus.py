"""One GPU per train job on a machine with several: which CUDA device a job takes.

Snakemake counts GPUs (each train job declares ``resources: gpu=1``; ``--resources gpu=N`` caps
how many run at once) but does not tell a job which GPU is its own (snakemake/snakemake#281), and
PyTorch's ``cuda`` is device 0 in every process: four jobs would share GPU 0 and leave three idle.
So a train job asked for ``--device auto`` or ``cuda`` picks a device it alone holds:

- It sees the devices its scheduler gave it: a ``CUDA_VISIBLE_DEVICES`` set by Slurm, Kubernetes'
  device plugin or the user is respected as it is (the device indices are positions in it).
- With one visible device it takes that one, without a lock: a scheduler that hands each job a GPU
  of its own (Slurm's ``--gpus=1``, Kubernetes' ``nvidia.com/gpu: 1``) has decided already, and
  jobs on a one-GPU workstation share it as they always did.
- With several, it takes the first whose lock it gets: an exclusive ``flock`` on
  ``<lock dir>/<host name>/gpu-<id>.lock``, where ``<id>`` is the device's entry in
  ``CUDA_VISIBLE_DEVICES`` (the same physical GPU under any ordering of the list), else its index.
  The lock lives as long as the process: the kernel drops it when the job ends, fails or is killed
  (SIGKILL, the OOM killer), so no dead job holds a GPU, and a lock file left behind holds nothing.
  The host name keeps machines apart where the lock folder is on a shared filesystem.
- When every device is held it waits for one to come free (with ``--resources gpu=N`` at most the
  number of GPUs, Snakemake starts no more jobs than there are devices, so nobody waits).

An explicit ``--device cuda:N`` or ``cpu`` is used as given. Standard library only: `dmlbench train`
picks the device before the CUDA context exists, so the context is made on the job's own GPU.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("dmlbench.train.gpus")

#: The lock folder's variable (default ``<results>/.locks``): point several workflows on one
#: machine at one folder to share its GPUs between them.
LOCK_DIR_ENV = "DMLBENCH_GPU_LOCKS"
POLL_SECONDS = 0.5
WAIT_LOG_SECONDS = 60.0


def default_lock_dir(results: str | os.PathLike = "results") -> Path:
    """$DMLBENCH_GPU_LOCKS, else ``<results>/.locks``: the workflow's own folder."""
    return Path(os.environ.get(LOCK_DIR_ENV) or Path(results) / ".locks")


def visible_ids(count: int, visible: str | None = None) -> list[str]:
    """The lock names of the ``count`` visible devices: their entries of ``CUDA_VISIBLE_DEVICES``
    (``visible``; default the environment's), physical indices or UUIDs, or 0..count-1 without it."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES") if visible is None else visible
    entries = [e.strip() for e in (visible or "").split(",") if e.strip()]
    if len(entries) >= count:
        return entries[:count]
    return [str(i) for i in range(count)]


@dataclass
class DeviceLock:
    """A device this process holds: its index among the visible devices, its lock name and file."""

    index: int
    name: str
    path: Path
    fd: int

    def release(self) -> None:
        """Let another job take the device (closing the file drops the lock)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _try_lock(path: Path) -> int | None:
    """The open file of ``path`` with an exclusive lock on it, or None when another process holds it."""
    # os.open's descriptors are close-on-exec: a command the job starts does not inherit the lock
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())  # who holds it, for a person looking
    return fd


def acquire(count: int, lock_dir: str | os.PathLike, *, poll_seconds: float = POLL_SECONDS) -> DeviceLock:
    """Lock one of ``count`` visible devices, the first free one in order; wait while all are held."""
    folder = Path(lock_dir) / socket.gethostname()
    folder.mkdir(parents=True, exist_ok=True)
    names = visible_ids(count)
    started, last_log = time.monotonic(), None
    while True:
        for index, name in enumerate(names):
            path = folder / f"gpu-{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.lock"
            fd = _try_lock(path)
            if fd is not None:
                if last_log is not None:
                    log.info("GPU %d (%s) came free after %.0f s", index, name, time.monotonic() - started)
                return DeviceLock(index, name, path, fd)
        if last_log is None or time.monotonic() - last_log >= WAIT_LOG_SECONDS:
            log.info("all %d GPUs are held by other jobs (locks in %s); waiting for one", count, folder)
            last_log = time.monotonic()
        time.sleep(poll_seconds)


#: The device this process holds, kept until it exits (the train job's whole life).
_held: DeviceLock | None = None


def job_device(requested: str, count: int, lock_dir: str | os.PathLike) -> str:
    """The device a train job uses: ``requested`` (auto, cpu, cuda or cuda:N) as given, unless it
    is auto or cuda with ``count`` > 1 visible CUDA devices: then ``cuda:<i>`` of a device this
    process alone holds, until it exits (one per process: a second call returns the same one)."""
    global _held
    if requested not in ("auto", "cuda") or count <= 1:
        return requested
    if _held is None:
        _held = acquire(count, lock_dir)
        log.info("GPU %d of %d (%s), held through %s", _held.index, count, _held.name, _held.path)
    return f"cuda:{_held.index}"


def held() -> DeviceLock | None:
    """The device lock this process holds, if any."""
    return _held
