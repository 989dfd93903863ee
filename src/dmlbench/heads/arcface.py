"""ArcFace: additive angular margin (Deng et al. 2019, arXiv:1801.07698)."""

from __future__ import annotations

import math
from typing import Any

import torch

from dmlbench.config.head_params import defaults
from dmlbench.heads.base import CosineMarginHead

SIN_EPS = 1e-12  # sin θ = sqrt(max(1 - cos²θ, eps)): finite gradients at θ = 0, π


class ArcFaceHead(CosineMarginHead):
    r"""Target logit s·cos(θ_y + m); other logits s·cos θ_j.  ``logits()`` = s·cos θ.

    As insightface's reference code (easy_margin=False): where θ + m > π, i.e.
    cos θ <= cos(π − m), the target cosine is cos θ − sin(π − m)·m instead, which
    keeps it monotonically decreasing in θ.  cos(θ + m) is computed as
    cos θ cos m − sin θ sin m with sin θ = sqrt(clamp(1 − cos²θ, min=1e-12)).

    Parameters: ``scale`` s (float > 0, default 30), ``margin`` m in radians
    (0 <= m < π, default 0.5).
    """

    NAME = "arcface"
    PARAMS = defaults(NAME)

    def __init__(self, in_features: int, n_classes: int, **params: Any) -> None:
        super().__init__(in_features, n_classes, **params)
        self.s, self.m = self.hparams["scale"], self.hparams["margin"]
        self.cos_m, self.sin_m = math.cos(self.m), math.sin(self.m)
        self.threshold = math.cos(math.pi - self.m)
        self.fallback = math.sin(math.pi - self.m) * self.m

    def target_cosine(self, cos_target: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        sin = torch.sqrt(torch.clamp(1.0 - cos_target * cos_target, min=SIN_EPS))
        phi = cos_target * self.cos_m - sin * self.sin_m
        return torch.where(cos_target > self.threshold, phi, cos_target - self.fallback)

    def scale(self, x: torch.Tensor) -> float:
        return self.s
