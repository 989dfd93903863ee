"""Running the repository's Snakefile in a temp folder (helpers for the workflow and reliability tests)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def without_dmlbench(path: str) -> str:
    """A PATH value without the folders that hold a `dmlbench` command."""
    return os.pathsep.join(p for p in path.split(os.pathsep) if p and shutil.which("dmlbench", path=p) is None)


def clean_env(env: dict[str, str] | None = None, **extra: str) -> dict[str, str]:
    """``env`` (default: this process's environment) without any `dmlbench` command on PATH and no
    activated venv: what a user's fresh shell gives ``.venv/bin/snakemake``. The rules must find
    dmlbench through the interpreter that runs Snakemake, not through PATH."""
    env = {k: v for k, v in (os.environ if env is None else env).items() if k != "VIRTUAL_ENV"}
    return {**env, "PATH": without_dmlbench(env.get("PATH", "")), **extra}


def snakemake(workdir: Path, *args: str, check: bool = True, timeout: int = 1800) -> subprocess.CompletedProcess:
    """Run the repository's Snakefile in `workdir` (its results/, logs/, benchmarks/ land there),
    with the venv's snakemake by its path and no `dmlbench` on PATH (see ``clean_env``). The
    timeout is a safety net for a hung run on a shared machine, not a speed check."""
    env = clean_env()
    cmd = [str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "--directory", str(workdir), *args]
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc
