"""A throw-away single-node Slurm cluster for tests: munged, slurmctld and slurmd from Debian's
slurm-wlm packages, every file (config, keys, sockets, spool, state, logs, pids) in one folder.

Ports and the munge socket are private to the instance, so two test sessions on one machine
do not meet. There is no accounting database: jobs are looked up with `squeue`, which sees a
finished job for MinJobAge seconds (set to an hour here).

    cluster = SlurmCluster(tmp_path / "slurm")
    cluster.start()          # raises ClusterUnavailable with the reason and the daemon logs
    subprocess.run([...], env=cluster.env())
    cluster.stop()           # scancel what is left, then stop every daemon it started
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

# What a test needs on PATH, and the Debian packages that provide it.
BINARIES = ["munged", "slurmctld", "slurmd", "sinfo", "sbatch", "squeue", "scancel", "srun", "scontrol"]
PACKAGES = ["slurm-wlm", "munge"]
INSTALL_HINT = "apt-get update && apt-get install -y " + " ".join(PACKAGES)


class ClusterUnavailable(RuntimeError):
    """Slurm could not be set up here; the message says why (and shows the daemon logs)."""


def missing_binaries() -> list[str]:
    return [b for b in BINARIES if shutil.which(b) is None and not Path("/usr/sbin", b).exists()]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _which(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def _tail(path: Path, n: int = 15) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()[-n:]
    except OSError:
        return f"  ({path.name}: no log)"
    return "\n".join(f"  {path.name}: {line}" for line in lines)


class SlurmCluster:
    """One node (this host, `cpus` CPUs, `memory_mb` MB), one partition `partition`."""

    def __init__(self, root: Path, cpus: int = 2, memory_mb: int = 4000, partition: str = "debug"):
        self.root = Path(root).resolve()
        self.cpus = cpus
        self.memory_mb = memory_mb
        self.partition = partition
        self.host = socket.gethostname().split(".")[0]
        self.conf = self.root / "slurm.conf"
        self.procs: dict[str, subprocess.Popen] = {}

    # -- set-up -------------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        """The environment for Slurm clients (sbatch, squeue, snakemake) talking to this cluster."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_"))}
        env["SLURM_CONF"] = str(self.conf)
        env["PATH"] = f"{self.root / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        return env

    def _write_files(self) -> None:
        for sub in ("bin", "munge", "spool", f"spool/slurmd-{self.host}", "state", "log", "run"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        # Inside a job, the plugin's jobstep executor starts the rule with `srun` after removing
        # every SLURM_* variable, SLURM_CONF included; a real cluster's srun finds its config at
        # /etc/slurm/slurm.conf, this one's is here.
        srun = self.root / "bin" / "srun"
        conf, real_srun = shlex.quote(str(self.conf)), shlex.quote(_which("srun"))
        srun.write_text(f'#!/bin/sh\nSLURM_CONF={conf} exec {real_srun} "$@"\n')
        srun.chmod(0o755)
        # munged refuses keys and sockets in folders that others can write to.
        os.chmod(self.root, 0o711)
        os.chmod(self.root / "munge", 0o711)
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(128))
        os.chmod(key, 0o400)
        self.munge_socket = self.root / "munge" / "munge.socket"
        ctld_port, slurmd_port = _free_port(), _free_port()
        r = self.root
        self.conf.write_text(f"""\
ClusterName=dmlbenchtest
SlurmctldHost={self.host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket}
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool/slurmd-%n
SlurmctldPidFile={r}/run/slurmctld.pid
SlurmdPidFile={r}/run/slurmd-%n.pid
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups: this may be a container or a VM without a delegated cgroup tree.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# No accounting database: finished jobs stay visible to squeue for an hour.
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={r}/log/jobcomp.txt
MinJobAge=3600
# A job that asks for no memory gets this much, not the whole node.
DefMemPerCPU=500
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
MpiDefault=none
InactiveLimit=0
KillWait=5
Waittime=0
NodeName={self.host} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.memory_mb} State=UNKNOWN
PartitionName={self.partition} Nodes={self.host} Default=YES MaxTime=INFINITE State=UP
""")

    def _start(self, name: str, cmd: list[str]) -> None:
        # in the foreground (-D, --foreground) the daemons log to stderr
        # own session: a Ctrl-C on the test does not reach the daemons before the finalizer does
        with open(self.root / "log" / f"{name}.log", "wb") as log:
            self.procs[name] = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env(), start_new_session=True
            )
        time.sleep(0.5)
        if self.procs[name].poll() is not None:
            raise ClusterUnavailable(f"{name} exited at once (code {self.procs[name].returncode}).\n" + self.logs())

    def start(self, timeout: float = 60) -> None:
        """Start munged, slurmctld, slurmd; return when the node is idle. Stops what it started
        and raises ClusterUnavailable if that does not happen within `timeout` seconds."""
        if os.geteuid() != 0:
            raise ClusterUnavailable("the Slurm daemons must run as root (slurmd starts jobs as their user)")
        missing = missing_binaries()
        if missing:
            raise ClusterUnavailable(f"not installed: {', '.join(missing)} - run: {INSTALL_HINT}")
        self._write_files()
        r = self.root
        try:
            self._start(
                "munged",
                [
                    _which("munged"),
                    "--foreground",
                    "--force",
                    f"--socket={self.munge_socket}",
                    f"--key-file={r}/munge/munge.key",
                    f"--pid-file={r}/run/munged.pid",
                    f"--seed-file={r}/munge/munged.seed",
                ],
            )
            self._wait_for(lambda: self.munge_socket.exists(), 10, "munged did not open its socket")
            self._start("slurmctld", [_which("slurmctld"), "-D", "-i", "-f", str(self.conf)])
            self._start("slurmd", [_which("slurmd"), "-D", "-f", str(self.conf)])
            self._wait_for(self._node_idle, timeout, f"node {self.host} did not become idle in {timeout:.0f} s")
        except BaseException:
            self.stop()
            raise

    def _node_idle(self) -> bool:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise ClusterUnavailable(f"{name} exited (code {proc.returncode}).\n" + self.logs())
        out = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], env=self.env(), capture_output=True, text=True)
        return out.returncode == 0 and out.stdout.strip() == "idle"

    def _wait_for(self, ready, timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if ready():
                return
            time.sleep(0.5)
        raise ClusterUnavailable(f"{what}.\n" + self.logs())

    def logs(self) -> str:
        """The last lines of every daemon log (for skip and failure messages)."""
        logs = sorted((self.root / "log").glob("*")) if (self.root / "log").exists() else []
        return "\n".join(_tail(p) for p in logs if p.stat().st_size)

    # -- tear-down ----------------------------------------------------------------------------
    def stop(self) -> None:
        """Cancel every job of this cluster, then stop the daemons this object started."""
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            subprocess.run(["scancel", "--full", "--user", "root"], env=self.env(), capture_output=True, timeout=30)
            # give slurmd a moment to kill the jobs' processes before it goes itself
            end = time.monotonic() + 15
            while time.monotonic() < end:
                q = subprocess.run(
                    ["squeue", "-h", "-t", "RUNNING,COMPLETING,PENDING", "-o", "%i"],
                    env=self.env(),
                    capture_output=True,
                    text=True,
                    timeout=30,
                )
                if q.returncode != 0 or not q.stdout.strip():
                    break
                time.sleep(0.5)
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
