"""Session fixtures shared by every test folder (one instance per test session)."""

import shutil
from pathlib import Path

import pytest

from tests.workflow.conftest import BIN, ROOT, snakemake


@pytest.fixture(scope="session")
def test_run(tmp_path_factory) -> Path:
    """A finished run of config/test.yaml (2 cases, small CNN, one epoch) in a temp folder."""
    if shutil.which("snakemake", path=str(BIN)) is None:
        pytest.fail(
            "snakemake is not installed next to this Python: run `make test` (it installs envs/requirements.txt)"
        )
    workdir = tmp_path_factory.mktemp("e2e")
    snakemake(workdir, "--configfile", str(ROOT / "config" / "test.yaml"), "--cores", "2")
    return workdir
