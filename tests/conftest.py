"""Session fixtures shared by every test folder (one instance per test session)."""

import shutil
import sys
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


@pytest.fixture(autouse=True)
def torch_switches():
    """Each test leaves torch's global switches as it found them: a CPU training test turns
    deterministic algorithms on (dmlbench.train.device.setup_device), which would otherwise stay on
    for the CUDA tests that follow (filling every new tensor, warning on atomics). Tests that never
    import torch pay nothing."""
    torch = sys.modules.get("torch")
    saved = None
    if torch is not None:
        saved = _torch_switches(torch)
    yield
    torch = sys.modules.get("torch")
    if torch is None:
        return
    if saved is None:  # imported during the test: the defaults it found then
        saved = (False, False, False, False)
    torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved[2:]


def _torch_switches(torch) -> tuple[bool, bool, bool, bool]:
    return (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
    )
