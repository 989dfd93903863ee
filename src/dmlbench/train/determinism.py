"""`training.deterministic`: the switches that make a GPU run repeat bit for bit, and back.

PyTorch's GPU defaults trade repeatability for speed: cuDNN autotunes its convolution algorithms
(dmlbench.train.device turns ``cudnn.benchmark`` on) and picks non-deterministic ones, some
kernels (index_add, scatter) add with atomics in whatever order threads finish, cuBLAS splits
work by a workspace whose size varies, and Inductor benchmarks kernel variants on the device. With
``training.deterministic: true`` a run sets (https://pytorch.org/docs/stable/notes/randomness.html):

- ``torch.use_deterministic_algorithms(True)``: deterministic kernels, and an error naming the
  operation where none exists (the job stops, rather than run non-deterministically);
- ``cudnn.benchmark = False`` and ``cudnn.deterministic = True``;
- ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` (cuBLAS reads it when it creates its handle, so the train job
  sets it before CUDA starts: :func:`prepare_environment`);
- Inductor's deterministic mode (``torch._inductor.config.deterministic``; set through
  ``TORCHINDUCTOR_DETERMINISTIC`` before Inductor is imported, on the module once it is).

On the CPU the train job is deterministic already (warn-only, dmlbench.train.device); the flag
makes an operation without a deterministic implementation an error there too.
"""

from __future__ import annotations

import os
import sys

import torch

#: cuBLAS's deterministic workspace: 8 buffers of 4096 KiB (the setting PyTorch's notes give).
CUBLAS_WORKSPACE = ":4096:8"
CUBLAS_ENV = "CUBLAS_WORKSPACE_CONFIG"
INDUCTOR_ENV = "TORCHINDUCTOR_DETERMINISTIC"
#: The variables this process set (not the user's): :func:`apply` removes them again when off.
_set_here: set[str] = set()


def wanted(specs: list[dict]) -> bool:
    """Does any run of the job ask for ``training.deterministic``?"""
    return any(spec.get("training", {}).get("deterministic", False) for spec in specs)


def prepare_environment(specs: list[dict]) -> None:
    """Before CUDA and Inductor start: the environment that deterministic runs need (a value the
    user set is kept). Called by `dmlbench train` after ``import torch``, before the CUDA context."""
    if wanted(specs):
        for name, value in ((CUBLAS_ENV, CUBLAS_WORKSPACE), (INDUCTOR_ENV, "1")):
            if name not in os.environ:
                os.environ[name] = value
                _set_here.add(name)


def apply(dev: torch.device, on: bool) -> None:
    """Switch deterministic training on, or (on a CUDA device) back to the fast defaults that
    dmlbench.train.device.setup_device set. Global torch state: call before a run trains."""
    inductor = sys.modules.get("torch._inductor.config")  # set where loaded; never imported here (seconds)
    if inductor is not None and not hasattr(inductor, "deterministic"):  # a torch without the switch
        inductor = None
    if on:
        prepare_environment([{"training": {"deterministic": True}}])
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        if inductor is not None:
            inductor.deterministic = True
    elif dev.type == "cuda":
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.deterministic = False
        for name in list(_set_here):
            os.environ.pop(name, None)
            _set_here.discard(name)
        if inductor is not None:
            inductor.deterministic = os.environ.get(INDUCTOR_ENV) == "1"  # the user's own setting


def state() -> dict:
    """The switches as they are now (for run.json and the tests)."""
    inductor = sys.modules.get("torch._inductor.config")
    return {
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "cublas_workspace_config": os.environ.get(CUBLAS_ENV),
        "inductor_deterministic": None if inductor is None else bool(inductor.deterministic),
    }
