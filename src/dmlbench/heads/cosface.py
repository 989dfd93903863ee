"""CosFace / large margin cosine loss (Wang et al. 2018, arXiv:1801.09414)."""

from __future__ import annotations

from typing import Any

import torch

from dmlbench.config.head_params import defaults
from dmlbench.heads.base import CosineMarginHead


class CosFaceHead(CosineMarginHead):
    r"""Target logit s·(cos θ_y − m); other logits s·cos θ_j.  ``logits()`` = s·cos θ.

    Parameters: ``scale`` s (float > 0, default 30), ``margin`` m (float >= 0,
    default 0.4).
    """

    NAME = "cosface"
    PARAMS = defaults(NAME)

    def __init__(self, in_features: int, n_classes: int, **params: Any) -> None:
        super().__init__(in_features, n_classes, **params)
        self.s, self.m = self.hparams["scale"], self.hparams["margin"]

    def target_cosine(self, cos_target: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return cos_target - self.m

    def scale(self, x: torch.Tensor) -> float:
        return self.s
