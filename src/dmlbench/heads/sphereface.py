"""SphereFace / A-Softmax (Liu et al. 2017, arXiv:1704.08063)."""

from __future__ import annotations

import math
from typing import Any

import torch

from ..head_params import defaults
from .base import CosineMarginHead


class SphereFaceHead(CosineMarginHead):
    r"""A-Softmax with the reference implementation's λ annealing (docs/methods.md).

    W normalised (no bias), x not.  ψ(θ) = (−1)^k cos(mθ) − 2k on [kπ/m, (k+1)π/m],
    cos(mθ) = T_m(cos θ) (Chebyshev), k = floor(m·acos(cos θ)/π) clamped to m−1.
    Target logit ‖x‖(λ cos θ_y + ψ(θ_y))/(1 + λ); others and ``logits()``: ‖x‖ cos θ.
    λ = max(lambda_min, base·(1 + gamma·iteration)^(−power)); the ``iteration``
    buffer (int64, in the state dict) is incremented at the start of each
    training-mode ``loss()`` call (first step: iteration = 1, as the reference
    code); eval-mode calls never count.

    Parameters: ``margin`` (int >= 1, default 4), ``base`` (1000), ``gamma``
    (0.12), ``power`` (1), ``lambda_min`` (5); all >= 0.
    """

    NAME = "sphereface"
    PARAMS = defaults(NAME)

    def __init__(self, in_features: int, n_classes: int, **params: Any) -> None:
        super().__init__(in_features, n_classes, **params)
        self.m = self.hparams["margin"]
        self.register_buffer("iteration", torch.zeros((), dtype=torch.int64))

    def current_lambda(self) -> torch.Tensor:
        """λ as a 0-d tensor on the head's device: computed there, so a training step never
        waits for the GPU to hand the iteration counter to the host."""
        p = self.hparams
        annealed = p["base"] * (1.0 + p["gamma"] * self.iteration.double()) ** (-p["power"])
        return annealed.clamp_min(p["lambda_min"]).float()

    def _pre_step(self) -> None:
        self.iteration += 1

    def psi(self, cos: torch.Tensor) -> torch.Tensor:
        """ψ(θ) as a function of cos θ (differentiable, finite gradients at ±1)."""
        t_prev, t = torch.ones_like(cos), cos  # Chebyshev: T_{n+1} = 2c T_n − T_{n−1}
        for _ in range(self.m - 1):
            t_prev, t = t, 2 * cos * t - t_prev
        with torch.no_grad():
            theta = torch.acos(cos.clamp(-1.0, 1.0))
            k = torch.floor(self.m * theta / math.pi).clamp(0, self.m - 1)
            sign = 1.0 - 2.0 * torch.remainder(k, 2)
        return sign * t - 2.0 * k

    def target_cosine(self, cos_target: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        lam = self.current_lambda()
        return (lam * cos_target + self.psi(cos_target)) / (1.0 + lam)

    def scale(self, x: torch.Tensor) -> torch.Tensor:
        return x.norm(dim=1, keepdim=True)
