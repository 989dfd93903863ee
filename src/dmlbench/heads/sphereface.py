"""SphereFace / A-Softmax (Liu et al. 2017, arXiv:1704.08063)."""

from __future__ import annotations

import math
from typing import Any

import torch

from dmlbench.config import head_params
from dmlbench.config.head_params import defaults
from dmlbench.heads.base import CosineMarginHead


class SphereFaceHead(CosineMarginHead):
    r"""A-Softmax with λ annealing (docs/methods.md).

    W normalised (no bias), x not.  ψ(θ) = (−1)^k cos(mθ) − 2k on [kπ/m, (k+1)π/m],
    cos(mθ) = T_m(cos θ) (Chebyshev), k = floor(m·acos(cos θ)/π) clamped to m−1.
    Target logit ‖x‖(λ cos θ_y + ψ(θ_y))/(1 + λ); others and ``logits()``: ‖x‖ cos θ.

    λ at training step t (the ``iteration`` buffer, int64, in the state dict, incremented at the
    start of each training-mode ``loss()`` call: first step t = 1, as the reference code;
    eval-mode calls never count):

    - ``lambda_schedule: run`` (default): λ = max(λ_min, base·(1 + c·t/(f·T))^(−power)) with
      c = (base/λ_min)^(1/power) − 1, so λ falls from base to λ_min at step f·T and stays there;
      T = the run's training steps (``set_run_length``, called by the trainer), f =
      ``anneal_fraction``. The shape is the reference schedule's, stretched to the run. Until
      the run's length is set (a head used outside the trainer) the reference schedule applies.
    - ``lambda_schedule: reference``: λ = max(λ_min, base·(1 + gamma·t)^(−power)), the
      reference code's per-iteration schedule (λ_min at t = 1659 with the defaults).

    Parameters: ``margin`` (int >= 1, default 4), ``base`` (1000), ``gamma`` (0.12, reference
    schedule only), ``power`` (1), ``lambda_min`` (5), ``lambda_schedule`` (run),
    ``anneal_fraction`` (0.06, run schedule only, in (0, 1]).
    """

    NAME = "sphereface"
    PARAMS = defaults(NAME)

    def __init__(self, in_features: int, n_classes: int, **params: Any) -> None:
        super().__init__(in_features, n_classes, **params)
        self.m = self.hparams["margin"]
        self.register_buffer("iteration", torch.zeros((), dtype=torch.int64))
        self.run_steps = 0

    @classmethod
    def _validate(cls, p: dict[str, Any]) -> dict[str, Any]:
        p = super()._validate(p)
        head_params.check_combination(cls.NAME, p)
        return p

    def set_run_length(self, steps: int) -> None:
        """The number of training steps of the run (optimiser steps, i.e. training ``loss()``
        calls): the run schedule reaches λ_min at ``anneal_fraction`` of them."""
        self.run_steps = int(steps)

    def uses_run_schedule(self) -> bool:
        return self.hparams["lambda_schedule"] == "run" and self.run_steps > 0

    def current_lambda(self) -> torch.Tensor:
        """λ as a 0-d tensor on the head's device: computed there, so a training step never
        waits for the GPU to hand the iteration counter to the host."""
        p = self.hparams
        t = self.iteration.double()
        if not self.uses_run_schedule():
            annealed = p["base"] * (1.0 + p["gamma"] * t) ** (-p["power"])
            return annealed.clamp_min(p["lambda_min"]).float()
        if p["base"] <= p["lambda_min"] or p["power"] == 0:
            return torch.full_like(t, max(p["base"], p["lambda_min"])).float()
        c = (p["base"] / p["lambda_min"]) ** (1.0 / p["power"]) - 1.0
        progress = t / (p["anneal_fraction"] * self.run_steps)
        annealed = p["base"] * (1.0 + c * progress) ** (-p["power"])
        # exactly lambda_min from step f*T on (the power above rounds to a hair above it)
        return torch.where(
            progress >= 1, torch.full_like(t, p["lambda_min"]), annealed.clamp_min(p["lambda_min"])
        ).float()

    def state_summary(self) -> dict[str, Any]:
        """What run.json records of the head after training: λ at the last step and the steps
        counted (one host read)."""
        return {"lambda": float(self.current_lambda()), "steps": int(self.iteration), "run_steps": self.run_steps}

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
