"""The training device: which one, at what precision, set up how; and what run.json records of it
(its name, the versions of the packages that trained)."""

from __future__ import annotations

import platform

import torch

from dmlbench.errors import ConfigError
from dmlbench.provenance import package_versions
from dmlbench.train import determinism

PRECISIONS = ("auto", "bf16", "fp32")


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device '{device}' was asked for but CUDA is not available; use --device cpu or auto")
    return torch.device(device)


def _native_bf16(device: torch.device) -> bool:
    """bf16 tensor cores (Ampere and later, compute capability 8) on ``device`` itself: PyTorch's
    ``is_bf16_supported`` asks the current device (GPU 0 unless set), and reports emulated bf16
    as supported too."""
    if torch.version.hip:  # ROCm: PyTorch's own answer (its devices report no CUDA capability)
        return torch.cuda.is_bf16_supported()
    return torch.cuda.get_device_capability(device)[0] >= 8


def resolve_precision(precision: str | None, device: torch.device) -> str:
    """'bf16' or 'fp32' for `training.precision` on `device`.

    auto: bf16 autocast on a CUDA device that supports it, float32 otherwise — on the CPU so
    CPU runs stay bit-repeatable and fast (CPU bf16 convolutions are slower than float32)."""
    precision = precision or "auto"
    if precision not in PRECISIONS:
        raise ConfigError(f"training.precision '{precision}' is unknown; allowed values: {', '.join(PRECISIONS)}")
    bf16_ok = device.type == "cpu" or (device.type == "cuda" and _native_bf16(device))
    if precision == "auto":
        return "bf16" if device.type == "cuda" and bf16_ok else "fp32"
    if precision == "bf16" and not bf16_ok:
        raise ConfigError(
            f"training.precision 'bf16' was asked for but device {device} has no bf16 support; "
            f"use precision 'fp32' or 'auto'"
        )
    return precision


def versions() -> dict:
    """What trained, for run.json and the run cache's key: dmlbench, Python and every package that
    can change a number (dmlbench.provenance.PACKAGES), then the CUDA and cuDNN versions torch was
    built with (None without them). The GPU's name is run.json's ``device``."""
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {**package_versions(), "cuda": torch.version.cuda, "cudnn": None if cudnn is None else str(cudnn)}


def device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"cpu ({platform.processor() or platform.machine()})"


def setup_device(dev: torch.device, deterministic: bool = False) -> None:
    """CPU: deterministic kernels (runs repeat bit for bit). CUDA: ``dev`` becomes the current
    device (``cuda:N``: its streams, events and the context are N's, not GPU 0's), and cuDNN
    autotunes — batch shapes are fixed within a job, so the fastest convolution algorithms are
    found once.
    ``deterministic`` (training.deterministic): dmlbench.train.determinism's switches instead."""
    if dev.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    elif dev.type == "cuda":
        if dev.index is not None:
            torch.cuda.set_device(dev)
        torch.backends.cudnn.benchmark = True
    determinism.apply(dev, deterministic)  # training.deterministic, after the defaults above
