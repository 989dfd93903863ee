"""`training.deterministic` (dmlbench.train.determinism): the switches it sets and unsets, the
environment it needs before CUDA starts, the one-line error for an operation without a
deterministic implementation, and a CPU run trained with it equal to one without."""

import json
import os

import numpy as np
import pytest
import torch

from dmlbench.config import load_config
from dmlbench.errors import TrainingError
from dmlbench.train import determinism
from dmlbench.train.device import setup_device
from dmlbench.train.job import determinism_error
from tests.unit.train.test_run import _spec, _tiny_digits


@pytest.fixture(autouse=True)
def torch_state(monkeypatch):
    """Each test's global torch switches and environment are put back afterwards."""
    for name in (determinism.CUBLAS_ENV, determinism.INDUCTOR_ENV):
        monkeypatch.delenv(name, raising=False)
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
    )
    yield
    determinism._set_here.clear()
    torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved[2:]


def test_on_switches_everything_and_a_cuda_run_without_it_switches_back():
    cuda = torch.device("cuda")  # only flags are set: no GPU needed
    setup_device(cuda, deterministic=True)
    state = determinism.state()
    assert state["deterministic_algorithms"] and not state["warn_only"]
    assert not state["cudnn_benchmark"] and state["cudnn_deterministic"]
    assert os.environ[determinism.CUBLAS_ENV] == ":4096:8" and os.environ[determinism.INDUCTOR_ENV] == "1"
    setup_device(cuda, deterministic=False)
    state = determinism.state()
    assert not state["deterministic_algorithms"] and state["cudnn_benchmark"] and not state["cudnn_deterministic"]
    # the variables this process set are gone again
    assert determinism.CUBLAS_ENV not in os.environ and determinism.INDUCTOR_ENV not in os.environ


def test_on_the_cpu_it_makes_a_missing_deterministic_kernel_an_error_instead_of_a_warning():
    setup_device(torch.device("cpu"))
    assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
    setup_device(torch.device("cpu"), deterministic=True)
    assert not torch.is_deterministic_algorithms_warn_only_enabled()
    with pytest.raises(RuntimeError, match="does not have a deterministic implementation"):
        torch.zeros(3).put_(torch.tensor([0]), torch.tensor([1.0]))  # put_ has none (PyTorch's list)


def test_a_value_the_user_set_is_kept(monkeypatch):
    monkeypatch.setenv(determinism.CUBLAS_ENV, ":16:8")
    determinism.prepare_environment([_spec(deterministic=True)])
    assert os.environ[determinism.CUBLAS_ENV] == ":16:8"
    determinism.apply(torch.device("cuda"), False)
    assert os.environ[determinism.CUBLAS_ENV] == ":16:8"  # not ours to remove


def test_the_environment_is_set_only_for_a_job_that_asks():
    determinism.prepare_environment([_spec(), _spec()])
    assert determinism.CUBLAS_ENV not in os.environ
    determinism.prepare_environment([_spec(), _spec(deterministic=True)])
    assert os.environ[determinism.CUBLAS_ENV] == determinism.CUBLAS_WORKSPACE


def test_an_operation_without_a_deterministic_kernel_is_one_error_naming_the_key():
    torch.use_deterministic_algorithms(True)
    with pytest.raises(RuntimeError) as raised:
        torch.zeros(3).put_(torch.tensor([0]), torch.tensor([1.0]))
    error = determinism_error(_spec(deterministic=True), raised.value)
    assert isinstance(error, TrainingError)
    assert str(error).startswith("method 'conventional': training.deterministic is true, but put_ has no")
    assert "set training.deterministic: false" in str(error)
    assert determinism_error(_spec(), raised.value) is None  # not asked for: PyTorch's own error stands
    assert determinism_error(_spec(deterministic=True), RuntimeError("CUDA out of memory")) is None


def test_the_schema_declares_the_key_off_by_default():
    config = load_config({"datasets": {"d": {"source": "digits"}}, "conditions": [{"dataset": "d", "n_anomaly": [1]}]})
    assert config["training"]["deterministic"] is False
    config = load_config(
        {
            "datasets": {"d": {"source": "digits", "training": {"deterministic": True}}},
            "conditions": [{"dataset": "d", "n_anomaly": [1]}],
        }
    )
    assert config["datasets"]["d"]["training"]["deterministic"] is True


def test_a_cpu_run_is_the_same_with_and_without_it(tmp_path):
    """The CPU's kernels are deterministic already: the flag changes no number there."""
    from dmlbench.train.run import train_job

    ds = _tiny_digits()
    train_job(ds, _spec(), tmp_path / "off", device="cpu", threads=1)
    train_job(ds, _spec(deterministic=True), tmp_path / "on", device="cpu", threads=1)
    with np.load(tmp_path / "off" / "embeddings.npz") as off, np.load(tmp_path / "on" / "embeddings.npz") as on:
        assert all(np.array_equal(off[k], on[k]) for k in off.files)
    run = json.loads((tmp_path / "on" / "run.json").read_text())
    assert run["spec"]["training"]["deterministic"] is True
