"""Any pytorch-metric-learning loss as a head (method entries with ``head: pml``)."""

from __future__ import annotations

from typing import Any

import torch

from dmlbench.config import pml_params
from dmlbench.errors import ConfigError
from dmlbench.heads.base import Head, fp32


class PmlHead(Head):
    r"""A loss of ``pytorch_metric_learning.losses`` (``loss``: its class name) with its keyword
    arguments, and optionally a miner (``miner``: ``{"name": <class>, <argument>: ...}``) whose
    pairs or triplets the loss is computed on.

    Classification losses (ArcFaceLoss, SubCenterArcFaceLoss, NormalizedSoftmaxLoss,
    ProxyAnchorLoss, SoftTripleLoss, ...) are built with ``num_classes`` = the normal classes
    and ``embedding_size`` = the embedding width; their class weights or proxies are parameters
    of this module, so they are in the optimiser and trained with the backbone. Their
    ``get_logits`` are the inference logits (for MSP, max logit, energy, the head's accuracy).
    Pair and tuple losses (TripletMarginLoss, MultiSimilarityLoss, SupConLoss,
    ContrastiveLoss, ...) train the embedding alone: ``has_logits`` is False, ``logits()``
    refuses, and the trainer feeds them class-balanced batches (``balanced_batches``).

    PML reduces the loss over the batch itself (its reducers), so there is no per-sample loss:
    ``reduction="none"`` and mixup are refused (the config check refuses ``mixup: true``).
    Losses are computed in float32 whatever the backbone's precision, as for every head.
    """

    NAME = "pml"
    PARAMS: dict[str, Any] = {}

    def __init__(
        self, in_features: int, n_classes: int, *, loss: str, miner: dict | str | None = None, **arguments: Any
    ) -> None:
        super().__init__(in_features, n_classes)
        from pytorch_metric_learning import losses, miners

        where = f"head 'pml' ({loss})"
        filled = pml_params.check_arguments("loss", loss, arguments, where)
        supplied = {
            "num_classes": self.n_classes,
            "embedding_size": self.in_features,
            "descriptors_dim": self.in_features,
        }
        build = {name: supplied[name] for name in pml_params.supplied(loss)}
        try:
            self.loss_fn = getattr(losses, loss)(**build, **filled)
        except (TypeError, ValueError, AssertionError) as exc:
            raise ConfigError(f"{where}: pytorch-metric-learning refuses the arguments {filled}: {exc}") from None
        self.miner = None
        if miner is not None:
            miner = {"name": miner} if isinstance(miner, str) else dict(miner)
            name = miner.pop("name")
            miner_args = pml_params.check_arguments("miner", name, miner, f"{where} miner")
            try:
                self.miner = getattr(miners, name)(**miner_args)
            except (TypeError, ValueError, AssertionError) as exc:
                raise ConfigError(
                    f"{where}: pytorch-metric-learning refuses the miner {name}{miner_args}: {exc}"
                ) from None
        self.loss_name = loss
        self.has_logits = pml_params.has_logits(loss)
        #: pair and tuple losses need several images per class in a batch
        self.balanced_batches = not self.has_logits
        self.hparams = {"loss": loss, **filled, **({"miner": {"name": name, **miner_args}} if self.miner else {})}

    @classmethod
    def resolve_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        return dict(params)  # checked against PML's constructors in __init__

    def _pml_loss(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        indices = self.miner(x, labels) if self.miner is not None else None
        value = self.loss_fn(x, labels, indices)
        # A batch without a valid pair or triplet gives PML's constant zero, which has no graph;
        # adding 0 * x keeps the backward pass (and the optimiser step) well defined.
        return value + 0.0 * x.sum()

    def loss(
        self, embeddings: torch.Tensor, labels: torch.Tensor, reduction: str = "mean", *, update: bool = True
    ) -> torch.Tensor:
        """The PML loss of the batch (float32, a scalar: PML's reducer averages it). ``sum``
        multiplies that mean by the batch size; ``none`` is refused (no per-sample loss)."""
        if reduction not in ("mean", "sum"):
            raise ConfigError(
                f"head 'pml' ({self.loss_name}) gives the batch's loss only, not one per sample "
                f"(reduction {reduction!r}); mixup is not available for it"
            )
        with fp32(embeddings):
            value = self._pml_loss(embeddings.float(), labels.long())
        return value * embeddings.shape[0] if reduction == "sum" else value

    def mixup_loss(self, embeddings, labels_a, labels_b, lam, reduction: str = "mean") -> torch.Tensor:
        raise ConfigError(
            f"head 'pml' ({self.loss_name}): mixup needs a per-sample loss, which "
            f"pytorch-metric-learning losses do not give"
        )

    def _per_sample_loss(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        raise ConfigError(f"head 'pml' ({self.loss_name}) has no per-sample loss")

    def logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        """``get_logits`` of a classification loss, [B, C] float32; refused for a pair loss."""
        if not self.has_logits:
            raise ConfigError(f"head 'pml' ({self.loss_name}) is a pair or tuple loss: it has no logits")
        with fp32(embeddings):
            return self.loss_fn.get_logits(embeddings.float()).float()

    def margin_logits(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.logits(embeddings)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, n_classes={self.n_classes}, {self.hparams}"
