"""Center loss (Wen, Zhang, Li & Qiao 2016, ECCV, "A Discriminative Feature
Learning Approach for Deep Face Recognition")."""

from __future__ import annotations

from typing import Any

import torch

from dmlbench.config.head_params import defaults
from dmlbench.heads.base import LinearSoftmaxHead


class CenterLossHead(LinearSoftmaxHead):
    r"""Softmax (Linear(in, C) with bias + CE) plus ``weight``/2 · ‖x − c_y‖², both
    on the same embedding x, per sample (so the mean over the batch keeps the
    paper's ratio L_S + λ L_C).

    Centres c (C × D) are a **buffer**, initialised to **zeros**, updated inside
    ``loss()`` (training mode only, under ``torch.no_grad()``) by the paper's rule
    with the batch's detached embeddings, *after* the loss has been computed with
    the current centres:

        Δc_j = Σ_{i: y_i = j} (c_j − x_i) / (1 + n_j),     c_j ← c_j − alpha · Δc_j

    Why a buffer and not ``nn.Parameter(requires_grad=False)``: a buffer is not in
    ``parameters()``, so no optimiser, weight decay or fastai freeze/unfreeze
    (which flips ``requires_grad`` on every parameter of the param groups) can
    ever touch the centres; it is still saved in the state dict and follows
    ``.to(device)``.  Zeros: the paper's Algorithm 1 does not fix an
    initialisation; zeros are deterministic and the update rule moves each
    centre towards its class mean within a few steps.

    Parameters: ``weight`` (the paper's λ, float >= 0, default 0.003) and
    ``alpha`` (centre learning rate, 0 < alpha <= 1, default 0.5; dmlbench.config.head_params
    declares both).
    """

    NAME = "centerloss"
    PARAMS = defaults(NAME)

    def __init__(self, in_features: int, n_classes: int, **params: Any) -> None:
        super().__init__(in_features, n_classes, **params)
        self.lam, self.alpha = self.hparams["weight"], self.hparams["alpha"]
        self.register_buffer("centers", torch.zeros(self.n_classes, self.in_features))
        #: the paper's update rule; off under the original implementation's untrained_centres
        self.update_centres = True

    def leave_centres_untrained(self) -> None:
        """The original implementation's ``untrained_centres`` (docs/original.md): centres drawn
        from N(0, 1) with the global RNG (as pytorch-center-loss's ``torch.randn``), never updated."""
        with torch.no_grad():
            self.centers.normal_()
        self.update_centres = False

    def _extra_loss(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        diff = x - self.centers.float()[labels]
        return 0.5 * self.lam * (diff * diff).sum(dim=1)

    def _post_step(self, x: torch.Tensor, labels: torch.Tensor) -> None:
        if not self.update_centres:
            return
        centers = self.centers.float()
        delta = torch.zeros_like(centers).index_add_(0, labels, centers[labels] - x)
        # index_add_, not bincount: bincount reads the largest label back to the host on CUDA.
        counts = torch.zeros(self.n_classes, dtype=centers.dtype, device=centers.device).index_add_(
            0, labels, torch.ones_like(labels, dtype=centers.dtype)
        )
        delta = delta / (1.0 + counts).unsqueeze(1)
        self.centers.copy_(centers - self.alpha * delta)
