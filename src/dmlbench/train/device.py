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


def _native_bf16() -> bool:
    """bf16 tensor cores (Ampere and later); PyTorch also reports emulated bf16 as supported."""
    try:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # torch < 2.3 has no including_emulation and reports native support only
        return torch.cuda.is_bf16_supported()


def resolve_precision(precision: str | None, device: torch.device) -> str:
    """'bf16' or 'fp32' for `training.precision` on `device`.

    auto: bf16 autocast on a CUDA device that supports it, float32 otherwise — on the CPU so
    CPU runs stay bit-repeatable and fast (CPU bf16 convolutions are slower than float32)."""
    precision = precision or "auto"
    if precision not in PRECISIONS:
        raise ConfigError(f"training.precision '{precision}' is unknown; allowed values: {', '.join(PRECISIONS)}")
    bf16_ok = device.type == "cpu" or (device.type == "cuda" and _native_bf16())
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
    """CPU: deterministic kernels (runs repeat bit for bit). CUDA: cuDNN autotuning — batch
    shapes are fixed within a job, so the fastest convolution algorithms are found once.
    ``deterministic`` (training.deterministic): dmlbench.train.determinism's switches instead."""
    if dev.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    elif dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    determinism.apply(dev, deterministic)  # training.deterministic, after the defaults above
