"""A batch scheduler without a shared filesystem, for snakemake-executor-plugin-cluster-generic.

    python fake_scheduler.py submit <jobscript>   prints a job id
    python fake_scheduler.py status <job id>      prints running, success or failed

Each job runs in a fresh, empty folder of its own ("a node") under $FAKE_SCHEDULER_DIR/nodes,
with a bare environment: PATH holds only a `python` (the interpreter of $FAKE_SCHEDULER_PYTHON,
as a container image would provide it) and /usr/bin:/bin, so no `dmlbench` command. What a job
reads and writes outside the storage provider stays on its node, as on a cloud executor.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path


def node_path(root: Path) -> str:
    """PATH of a node: a `python` that runs $FAKE_SCHEDULER_PYTHON, then the system's folders."""
    bin_dir = root / "node-bin"
    python = bin_dir / "python"
    if not python.exists():
        bin_dir.mkdir(parents=True, exist_ok=True)
        tmp = bin_dir / f".python.{os.getpid()}"
        tmp.write_text(f'#!/bin/sh\nexec {os.environ["FAKE_SCHEDULER_PYTHON"]} "$@"\n')
        tmp.chmod(0o755)
        os.replace(tmp, python)
    return f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin"


def submit(jobscript: str) -> None:
    root = Path(os.environ["FAKE_SCHEDULER_DIR"])
    (root / "state").mkdir(parents=True, exist_ok=True)
    (root / "nodes").mkdir(parents=True, exist_ok=True)
    job_id = uuid.uuid4().hex[:12]
    node = Path(tempfile.mkdtemp(prefix=f"{job_id}-", dir=root / "nodes"))
    shutil.copy(jobscript, node / "job.sh")
    env = {"HOME": os.environ.get("HOME", str(node)), "PATH": node_path(root), "LANG": "C.UTF-8", "TMPDIR": str(node)}
    exit_file, tmp_exit = root / "state" / f"{job_id}.exit", root / "state" / f".{job_id}.exit"
    script = f"bash job.sh > job.log 2>&1; echo $? > {tmp_exit} && mv {tmp_exit} {exit_file}"
    proc = subprocess.Popen(
        ["bash", "-c", script],
        cwd=node,
        env=env,
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    (root / "state" / f"{job_id}.pid").write_text(str(proc.pid))  # its process group, for kill_all()
    print(job_id)


def status(job_id: str) -> None:
    exit_file = Path(os.environ["FAKE_SCHEDULER_DIR"]) / "state" / f"{job_id}.exit"
    if not exit_file.exists():
        print("running")
    else:
        print("success" if exit_file.read_text().strip() == "0" else "failed")


def kill_all(root: Path) -> None:
    """End every job still running (each is the leader of its own process group)."""
    import signal

    for pid_file in (Path(root) / "state").glob("*.pid"):
        if not (pid_file.parent / f"{pid_file.stem}.exit").exists():
            try:
                os.killpg(int(pid_file.read_text()), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass


if __name__ == "__main__":
    {"submit": submit, "status": status}[sys.argv[1]](sys.argv[-1])
