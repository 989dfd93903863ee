"""Base classes shared by every classification / metric-learning head.

A *head* sits on top of the embedding network.  It owns everything the method
optimises (class weights, margins, centres, schedules) and exposes:

``loss(embeddings, labels, reduction="mean", *, update=True)``
    the training objective.  ``reduction="none"`` gives one loss per sample, so
    MixUp can combine two label terms of the method's *own* loss
    (``lam * loss(e, y1, "none") + (1 - lam) * loss(e, y2, "none")``); see also
    :meth:`Head.mixup_loss`, which does this while advancing the training state
    (SphereFace's iteration counter, CenterLoss's centres) only once.
``logits(embeddings)``
    inference logits without any margin, for accuracy and softmax-based
    anomaly scores.
``margin_logits(embeddings, labels)``
    the logits the loss is computed from (margin applied to the target class);
    never changes the training state.  Useful for tests and diagnostics.

All maths is done in float32 with autocast disabled, so bf16 embeddings (or a
bf16 autocast region around the call) give float32 losses and logits.

Training state (SphereFace's iteration counter, CenterLoss's centres) advances
inside ``loss()`` only when ``self.training`` is True and ``update`` is True, so
validation passes run under ``model.eval()`` never touch it.
"""

from __future__ import annotations

import abc
import contextlib
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from dmlbench.config import head_params
from dmlbench.config.head_params import Param
from dmlbench.errors import ConfigError, HeadInputError

_AUTOCAST_DEVICES = {"cpu", "cuda", "xpu", "mps", "hpu"}
_REDUCTIONS = ("mean", "sum", "none")
_LABEL_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def fp32(tensor: torch.Tensor):
    """Context in which autocast is off for ``tensor``'s device (float32 maths)."""
    if tensor.device.type in _AUTOCAST_DEVICES:
        return torch.autocast(device_type=tensor.device.type, enabled=False)
    return contextlib.nullcontext()


def reduce_loss(per_sample: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    if reduction == "none":
        return per_sample
    raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-sample softmax cross-entropy, [B]."""
    return F.cross_entropy(logits, labels, reduction="none")


# --------------------------------------------------------------------------- params
def number(
    method: str,
    key: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    integer: bool = False,
) -> float | int:
    """Check one numeric value of a head outside its declared parameters (``in_features``,
    ``n_classes``); raise ConfigError naming it otherwise. The parameters themselves are
    declared in dmlbench.config.head_params."""
    param = Param(0, low=low, high=high, low_open=low_open, high_open=high_open, integer=integer)
    return head_params.number(f"head {method!r} parameter {key!r}", value, param)


class Head(nn.Module, metaclass=abc.ABCMeta):
    """Base class: subclasses set ``NAME`` and ``PARAMS`` (name -> default) and implement
    ``_per_sample_loss`` and ``margin_logits``. A head of dmlbench declares its parameters'
    defaults and ranges in dmlbench.config.head_params (``PARAMS = head_params.defaults(NAME)``),
    which ``_validate`` checks; a head declared elsewhere overrides ``_validate``.

    Hooks for training state: ``_pre_step()`` runs before the loss is computed
    and ``_post_step(x, labels)`` after it (with detached float32 embeddings),
    both only in training mode.
    """

    NAME: ClassVar[str] = "head"
    PARAMS: ClassVar[dict[str, Any]] = {}

    def __init__(self, in_features: int, n_classes: int, **params: Any) -> None:
        super().__init__()
        self.in_features = number(self.NAME, "in_features", in_features, low=1, integer=True)
        self.n_classes = number(self.NAME, "n_classes", n_classes, low=1, integer=True)
        self.hparams: dict[str, Any] = self.resolve_params(params)

    # ---- parameters
    @classmethod
    def resolve_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        """Defaults merged with ``params``, validated; ConfigError on unknown keys
        or bad values."""
        unknown = sorted(set(params) - set(cls.PARAMS))
        if unknown:
            allowed = ", ".join(sorted(cls.PARAMS)) or "(none)"
            raise ConfigError(f"unknown parameter {unknown[0]!r} for head {cls.NAME!r}; allowed parameters: {allowed}")
        merged = {**cls.PARAMS, **params}
        return cls._validate(merged)

    @classmethod
    def _validate(cls, p: dict[str, Any]) -> dict[str, Any]:
        """Every parameter checked against its declaration in dmlbench.config.head_params (the ranges
        the config check refuses values with, too)."""
        if cls.NAME not in head_params.HEAD_PARAMS:
            return p
        return {key: head_params.check_value(cls.NAME, key, value) for key, value in p.items()}

    # ---- the API
    @abc.abstractmethod
    def _per_sample_loss(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Per-sample loss [B] of float32 embeddings x [B, D]."""

    @abc.abstractmethod
    def margin_logits(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Logits [B, C] with the margin applied to each sample's target class."""

    @abc.abstractmethod
    def logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Inference logits [B, C], no margin."""

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.logits(embeddings)

    def _pre_step(self) -> None:
        pass

    def set_run_length(self, steps: int) -> None:
        """The run's number of training steps, given by the trainer before the first step (a
        schedule over the run, e.g. SphereFace's λ, needs it); ignored by other heads."""

    def state_summary(self) -> dict[str, Any]:
        """What run.json records of the head's training state after a case ({} for a head
        without one; SphereFace: λ at the last step)."""
        return {}

    def _post_step(self, x: torch.Tensor, labels: torch.Tensor) -> None:
        pass

    # ---- input checks
    def _check_inputs(self, embeddings: torch.Tensor, **labels: torch.Tensor) -> None:
        """HeadInputError naming what is wrong unless ``embeddings`` is [B, in_features] and every
        ``labels`` tensor holds B integer classes in 0..n_classes-1.

        Shapes and dtypes are host metadata: checked in Python, they never wait for the device.
        The class range needs the values: see :meth:`_check_range`."""
        where = f"head {self.NAME!r}"
        if embeddings.ndim != 2 or embeddings.shape[1] != self.in_features:
            raise HeadInputError(
                f"{where}: embeddings must be [batch, {self.in_features}] (in_features "
                f"{self.in_features}), got shape {tuple(embeddings.shape)}"
            )
        rows = embeddings.shape[0]
        for name, y in labels.items():
            if y.dtype not in _LABEL_DTYPES:
                raise HeadInputError(f"{where}: {name} must be integer class indices, got dtype {y.dtype}")
            if y.ndim != 1:
                raise HeadInputError(f"{where}: {name} must be 1-D [batch], got shape {tuple(y.shape)}")
            if y.shape[0] != rows:
                raise HeadInputError(f"{where}: {name} has {y.shape[0]} entries but embeddings has {rows} rows")
            self._check_range(name, y)

    def _check_range(self, name: str, y: torch.Tensor) -> None:
        """0 <= y < n_classes, without a host sync: ``torch._assert_async`` checks on the device,
        in stream order. On the CPU it checks at once and its RuntimeError becomes a HeadInputError
        with the offending range. On CUDA a failure is a device-side assert, reported at the next
        synchronisation (CUDA asserts carry no message to the host), which stops the job as the
        cross-entropy's own assert would, but for every head and before any state is updated.
        Other devices (no asynchronous assert there) are not range-checked."""
        if y.device.type not in ("cpu", "cuda"):
            return
        message = (
            f"head {self.NAME!r}: {name} must be class indices in 0..{self.n_classes - 1} "
            f"(the head has {self.n_classes} classes)"
        )
        in_range = ((y >= 0) & (y < self.n_classes)).all()
        if y.device.type == "cuda":
            torch._assert_async(in_range, message)
            return
        try:
            torch._assert_async(in_range, message)
        except RuntimeError:
            raise HeadInputError(f"{message}, got values from {int(y.min())} to {int(y.max())}") from None

    # ---- the training step
    def _step(self, embeddings: torch.Tensor, labels: torch.Tensor, per_sample_loss, step: bool) -> torch.Tensor:
        """The sequence shared by :meth:`loss` and :meth:`mixup_loss`: ``_pre_step()`` (when
        ``step``), ``per_sample_loss(x)`` [B] on float32 embeddings ``x`` with autocast off, then
        ``_post_step(x, labels)`` under no_grad with the detached ``x`` (when ``step``)."""
        if step:
            self._pre_step()
        with fp32(embeddings):
            x = embeddings.float()
            per_sample = per_sample_loss(x)
            if step:
                with torch.no_grad():
                    self._post_step(x.detach(), labels)
        return per_sample

    def loss(
        self, embeddings: torch.Tensor, labels: torch.Tensor, reduction: str = "mean", *, update: bool = True
    ) -> torch.Tensor:
        """The method's loss (float32).  ``update=False`` computes it without
        advancing training state even in training mode.

        ``embeddings`` [B, in_features] (any float dtype), ``labels`` [B] integer classes in
        0..n_classes-1; anything else raises HeadInputError before any state changes."""
        self._check_inputs(embeddings, labels=labels)
        labels = labels.long()
        per_sample = self._step(
            embeddings, labels, lambda x: self._per_sample_loss(x, labels), self.training and update
        )
        return reduce_loss(per_sample, reduction)

    def mixup_loss(
        self,
        embeddings: torch.Tensor,
        labels_a: torch.Tensor,
        labels_b: torch.Tensor,
        lam: float | torch.Tensor,
        reduction: str = "mean",
    ) -> torch.Tensor:
        """``lam * loss(e, a) + (1 - lam) * loss(e, b)`` per sample, then reduced.

        ``lam`` is a float or a [B] tensor.  Training state advances once per
        call (not twice); CenterLoss updates its centres with ``labels_a``, so
        pass the dominant label first (fastai's MixUp does: lam >= 0.5).
        Inputs are checked as in :meth:`loss`.
        """
        self._check_inputs(embeddings, labels_a=labels_a, labels_b=labels_b)
        if isinstance(lam, torch.Tensor) and lam.dim() > 0 and tuple(lam.shape) != (embeddings.shape[0],):
            raise HeadInputError(
                f"head {self.NAME!r}: lam must be a number or [batch] = [{embeddings.shape[0]}], "
                f"got shape {tuple(lam.shape)}"
            )
        labels_a, labels_b = labels_a.long(), labels_b.long()

        def mixed(x: torch.Tensor) -> torch.Tensor:
            w = lam.float().to(x.device) if isinstance(lam, torch.Tensor) else lam
            return w * self._per_sample_loss(x, labels_a) + (1 - w) * self._per_sample_loss(x, labels_b)

        return reduce_loss(self._step(embeddings, labels_a, mixed, self.training), reduction)

    def extra_repr(self) -> str:
        ps = ", ".join(f"{k}={v}" for k, v in self.hparams.items())
        return f"in_features={self.in_features}, n_classes={self.n_classes}" + (f", {ps}" if ps else "")


class LinearSoftmaxHead(Head):
    """Linear(in, C) with bias on ``features(x)``, then cross-entropy.

    Subclasses override ``features`` (L2-softmax) or ``_extra_loss`` (CenterLoss).
    Weight: xavier-uniform; bias: zeros.
    """

    def __init__(self, in_features: int, n_classes: int, **params: Any) -> None:
        super().__init__(in_features, n_classes, **params)
        self.weight = nn.Parameter(torch.empty(self.n_classes, self.in_features))
        self.bias = nn.Parameter(torch.zeros(self.n_classes))
        nn.init.xavier_uniform_(self.weight)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def _extra_loss(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor | None:
        return None

    def _linear(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.features(x), self.weight.float(), self.bias.float())

    def logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        with fp32(embeddings):
            return self._linear(embeddings.float())

    def margin_logits(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.logits(embeddings)

    def _per_sample_loss(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        per_sample = cross_entropy(self._linear(x), labels)
        extra = self._extra_loss(x, labels)
        return per_sample if extra is None else per_sample + extra


class CosineMarginHead(Head):
    """Cosine-margin family (pytorch-metric-learning style).

    cos θ_j = <x/‖x‖, W_j/‖W_j‖>  (W: [C, D], no bias, xavier-uniform init);
    the target class's cosine is replaced by ``target_cosine(cos θ_y, x)``, every
    logit is multiplied by ``scale(x)`` and softmax cross-entropy is applied.
    Inference logits are ``scale(x) * cos θ`` (no margin).
    """

    def __init__(self, in_features: int, n_classes: int, **params: Any) -> None:
        super().__init__(in_features, n_classes, **params)
        self.weight = nn.Parameter(torch.empty(self.n_classes, self.in_features))
        nn.init.xavier_uniform_(self.weight)

    def leave_weights_untrained(self) -> None:
        """The original implementation's ``untrained_weights`` (docs/original.md): the class
        weights take no gradient, so no optimiser group (they are built from the parameters that
        require one) holds them and they keep their initial values."""
        self.weight.requires_grad_(False)

    def cosine(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(F.normalize(x.float(), dim=1), F.normalize(self.weight.float(), dim=1))

    @abc.abstractmethod
    def target_cosine(self, cos_target: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The method's modified target cosine (margin applied), same shape as cos_target."""

    @abc.abstractmethod
    def scale(self, x: torch.Tensor) -> float | torch.Tensor:
        """Scale of the logits: a constant s, or the embedding norm [B, 1]."""

    def _margin_logits(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cos = self.cosine(x)
        index = labels.view(-1, 1)
        target = self.target_cosine(cos.gather(1, index), x)
        is_target = F.one_hot(labels, self.n_classes).bool()
        return torch.where(is_target, target, cos) * self.scale(x)

    def margin_logits(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        with fp32(embeddings):
            return self._margin_logits(embeddings.float(), labels.long())

    def logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        with fp32(embeddings):
            x = embeddings.float()
            return self.cosine(x) * self.scale(x)

    def _per_sample_loss(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return cross_entropy(self._margin_logits(x, labels), labels)
