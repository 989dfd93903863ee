"""L2-constrained softmax (Ranjan, Castillo & Chellappa 2017, arXiv:1703.09507)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from dmlbench.config.head_params import defaults
from dmlbench.heads.base import LinearSoftmaxHead


class L2SoftmaxHead(LinearSoftmaxHead):
    r"""Each *sample's* embedding is L2-normalised and scaled by a fixed alpha
    before Linear(in, C) with bias and cross-entropy:

    logits = W (alpha * x / ‖x‖) + b.   ``logits()`` uses the same path.

    Parameters: ``alpha`` (float > 0, default 16): the radius of the hypersphere
    (the paper's fixed-alpha variant).
    """

    NAME = "l2softmax"
    PARAMS = defaults(NAME)

    def __init__(self, in_features: int, n_classes: int, **params: Any) -> None:
        super().__init__(in_features, n_classes, **params)
        self.alpha = self.hparams["alpha"]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.alpha * F.normalize(x, dim=1)
