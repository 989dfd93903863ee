"""The end-to-end run of config/test.yaml through snakemake, shared by the workflow tests."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def snakemake(workdir: Path, *args: str, check: bool = True, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run the repository's Snakefile in `workdir` (its results/, logs/, benchmarks/ land there)."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    cmd = [str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "--directory", str(workdir), *args]
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


@pytest.fixture(scope="session")
def test_run(tmp_path_factory) -> Path:
    """A finished run of config/test.yaml (2 cases, small CNN, one epoch) in a temp folder."""
    if shutil.which("snakemake", path=str(BIN)) is None:
        pytest.fail("snakemake is not installed next to this Python: run `make test` (it installs envs/requirements.txt)")
    workdir = tmp_path_factory.mktemp("e2e")
    snakemake(workdir, "--configfile", str(ROOT / "config" / "test.yaml"), "--cores", "2")
    return workdir
