"""Shared runs and helpers of the reliability suite.

Every snakemake run here is expensive (about 25 s on two cores), so the runs are session
fixtures that several tests read:

- ``test_run`` (from tests/conftest.py): the reference run of config/test.yaml.
- ``locked_run``: a second, untouched run of config/test.yaml in a fresh folder, during which a
  second snakemake on the same folder was started (and refused by the lock). It is also the
  "same seeds again" run of the repeatability test.
- ``seed_run``: config/test.yaml with another seed.

Killed-job tests start from ``trained_copy``: a copy of the reference run's folder (Snakemake
metadata included) without scores, tables and figures, so only score and aggregate run again.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from tests.workflow.conftest import BIN, ROOT, clean_env, snakemake

JOB = "digits/a3/conventional/nall/s0"
TABLES = ["results/tables/metrics.parquet", "results/tables/class_distances.parquet", "results/tables/runtime.parquet"]
#: Tables whose bytes depend only on the config and seeds (runtime.parquet holds measured times).
DETERMINISTIC_TABLES = [
    "metrics.parquet",
    "class_distances.parquet",
    "summary.parquet",
    "ranking.parquet",
    "worst_misses.parquet",
]


def sm_env(extra_pythonpath: Path | None = None, **env) -> dict:
    """The environment of a test's snakemake: no `dmlbench` on PATH (the rules run the one of
    snakemake's interpreter), ``extra_pythonpath`` first on PYTHONPATH."""
    if extra_pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(extra_pythonpath), os.environ.get("PYTHONPATH")]))
    return clean_env(**env)


def sm_cmd(workdir: Path, *args: str) -> list[str]:
    return [str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "--directory", str(workdir), *args]


def write_config(path: Path, mutate=None) -> Path:
    """config/test.yaml, optionally changed by ``mutate(cfg)``, written to ``path``."""
    cfg = yaml.safe_load((ROOT / "config" / "test.yaml").read_text())
    if mutate is not None:
        mutate(cfg)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def wait_for(predicate, proc: subprocess.Popen | None, what: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"snakemake ended (status {proc.returncode}) before {what}")
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


# --------------------------------------------------------------------------------------------
# a `dmlbench` that stalls right before renaming one output into place

STALL_HOOK = textwrap.dedent("""\
    # Test double, loaded by every Python of the test's snakemake (PYTHONPATH): the rules' dmlbench
    # (`python -m dmlbench`) is identical, except that the rename of the output whose name ends
    # with $RELIABILITY_STALL_ON into place is held back: the output is then complete under its
    # temporary name, the worst moment for a kill. Snakemake itself renames no such file.
    import os, time
    _replace = os.replace
    def _stalling_replace(src, dst, *args, **kwargs):
        if os.environ.get("RELIABILITY_STALL_ON") and str(dst).endswith(os.environ["RELIABILITY_STALL_ON"]):
            with open(os.environ["RELIABILITY_MARK"], "w") as fh:
                fh.write(f"{os.getpid()}\\n{src}\\n{dst}\\n")
            time.sleep(300)
        return _replace(src, dst, *args, **kwargs)
    os.replace = _stalling_replace
    """)


def stall_hook_dir(tmp: Path) -> Path:
    """A folder with the stalling hook as ``sitecustomize.py``, for PYTHONPATH."""
    hook_dir = tmp / "stall-hook"
    hook_dir.mkdir(parents=True, exist_ok=True)
    (hook_dir / "sitecustomize.py").write_text(STALL_HOOK)
    return hook_dir


def kill_when_stalled(workdir: Path, config: Path, stall_on: str, targets: list[str]) -> dict:
    """Run snakemake in ``workdir`` with the stalling hook; SIGKILL snakemake, its jobs
    (the process group) and the stalled job once the output ending with ``stall_on`` is
    complete under its temporary name. Returns the marker: pid, temporary path, final path."""
    mark = workdir.parent / f"{workdir.name}.stall-mark"
    mark.unlink(missing_ok=True)
    env = sm_env(stall_hook_dir(workdir.parent), RELIABILITY_STALL_ON=stall_on, RELIABILITY_MARK=str(mark))
    out = workdir.parent / f"{workdir.name}.stalled-run.out"
    with open(out, "w") as fh:
        proc = subprocess.Popen(
            sm_cmd(workdir, "--configfile", str(config), "--cores", "2", *targets),
            cwd=workdir,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    try:
        wait_for(
            lambda: mark.exists() and len(mark.read_text().splitlines()) == 3,
            proc,
            f"the job writing {stall_on} to stall before its rename",
        )
        pid, tmp, dst = mark.read_text().splitlines()
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        # the job itself, whichever group it is in: it must not wake up and rename later
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    # the job runs in workdir: its paths are relative to it
    return {"pid": int(pid), "tmp": workdir / tmp, "dst": workdir / dst, "output": out.read_text()}


# --------------------------------------------------------------------------------------------
# session runs


@pytest.fixture(scope="session")
def locked_run(tmp_path_factory) -> dict:
    """Snakemake A runs config/test.yaml in a fresh folder; while A holds the folder's lock,
    snakemake B is started on the same folder. Returns A's folder and status and B's result."""
    workdir = tmp_path_factory.mktemp("locked")
    config = write_config(workdir.parent / f"{workdir.name}.yaml")
    a = subprocess.Popen(
        sm_cmd(workdir, "--configfile", str(config), "--cores", "2", *TABLES),
        cwd=workdir,
        env=sm_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    locks = workdir / ".snakemake" / "locks"
    try:
        # A holds the lock from before its first job until its end; the train log exists only
        # while A is running jobs
        wait_for(
            lambda: locks.is_dir() and any(locks.iterdir()) and (workdir / "logs" / "prepare").exists(),
            a,
            "snakemake A to lock the folder",
        )
        b = subprocess.run(
            sm_cmd(workdir, "--configfile", str(config), "--cores", "1", *TABLES),
            cwd=workdir,
            env=sm_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        a_running_after_b = a.poll() is None
        a_out, _ = a.communicate(timeout=1800)  # a safety net, not a speed check
    finally:
        if a.poll() is None:
            a.kill()
            a.wait()
    return {
        "workdir": workdir,
        "a_returncode": a.returncode,
        "a_output": a_out,
        "b": b,
        "a_running_after_b": a_running_after_b,
    }


@pytest.fixture(scope="session")
def seed_run(tmp_path_factory, test_run) -> Path:
    """config/test.yaml with seeds [1] instead of [0], up to the tables. It starts from a copy
    of the reference run's folder so the (seed-independent) prepare job is not repeated."""
    workdir = tmp_path_factory.mktemp("seed1")
    _copy_run(test_run, workdir, drop=("results/runs", "results/scores", "results/tables", "results/figures"))
    config = write_config(workdir.parent / f"{workdir.name}.yaml", lambda c: c.update(seeds=[1]))
    snakemake(workdir, "--configfile", str(config), "--cores", "2", *TABLES)
    return workdir


def _copy_run(src: Path, dst: Path, drop: tuple[str, ...]) -> None:
    """Copy a run's folder (Snakemake metadata included, mtimes kept), without ``drop``."""
    shutil.copytree(src, dst, symlinks=True, dirs_exist_ok=True, ignore=shutil.ignore_patterns("locks"))
    for sub in drop:
        path = dst / sub
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


@pytest.fixture
def trained_copy(tmp_path, test_run) -> tuple[Path, Path]:
    """(folder, config): the reference run up to training, Snakemake's metadata included."""
    workdir = tmp_path / "work"
    _copy_run(
        test_run,
        workdir,
        drop=(
            "results/scores",
            "results/tables",
            "results/figures",
            "logs/score",
            "logs/aggregate.log",
            "logs/figures.log",
        ),
    )
    config = write_config(tmp_path / "config.yaml")
    return workdir, config
