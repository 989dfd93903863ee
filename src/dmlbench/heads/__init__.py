"""Classification / deep-metric-learning heads and their registry.

``build_head(name, in_features, n_classes, **params)`` returns a :class:`Head`;
``HEADS`` maps the study's six heads to their classes and ``PARAMS`` maps them to their
parameters' defaults (the config schema is checked against it); ``pml`` builds any
pytorch-metric-learning loss (:class:`PmlHead`). See docs/methods.md for the definitions.
"""

from __future__ import annotations

from typing import Any

from dmlbench.errors import ConfigError
from dmlbench.heads.arcface import ArcFaceHead
from dmlbench.heads.base import CosineMarginHead, Head, LinearSoftmaxHead
from dmlbench.heads.centerloss import CenterLossHead
from dmlbench.heads.conventional import ConventionalHead
from dmlbench.heads.cosface import CosFaceHead
from dmlbench.heads.l2softmax import L2SoftmaxHead
from dmlbench.heads.pml import PmlHead
from dmlbench.heads.sphereface import SphereFaceHead

HEADS: dict[str, type[Head]] = {
    cls.NAME: cls for cls in (ConventionalHead, L2SoftmaxHead, ArcFaceHead, CosFaceHead, SphereFaceHead, CenterLossHead)
}

PARAMS: dict[str, dict[str, Any]] = {name: dict(cls.PARAMS) for name, cls in HEADS.items()}


def head_class(name: str) -> type[Head]:
    """The class of head ``name``: one of :data:`HEADS`, or ``pml`` (:class:`PmlHead`)."""
    if name == PmlHead.NAME:
        return PmlHead
    try:
        return HEADS[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown head method {name!r}; known methods: {', '.join(sorted(HEADS))}, {PmlHead.NAME}"
        ) from None


def build_head(name: str, in_features: int, n_classes: int, switches: dict | None = None, **params: Any) -> Head:
    """The head ``name`` for ``in_features``-dim embeddings and ``n_classes`` classes, with the
    original implementation's train-stage ``switches`` (name -> True) that act on a head applied
    (:func:`apply_switches`).

    Raises ConfigError for an unknown method, an unknown parameter or a bad value.
    """
    return apply_switches(head_class(name)(in_features, n_classes, **params), switches or {})


def apply_switches(head: Head, switches: dict) -> Head:
    """``untrained_weights`` (the margin heads' class weights out of the optimiser) and
    ``untrained_centres`` (CenterLoss's centres random and fixed); the other switches act on the
    trainer or the scorer. A switch on a head it does not apply to is a ConfigError (the config
    check refuses it first, dmlbench.config.methods)."""
    if switches.get("untrained_weights"):
        if not isinstance(head, CosineMarginHead):
            raise ConfigError(f"switch untrained_weights applies to the margin heads only, not head {head.NAME!r}")
        head.leave_weights_untrained()
    if switches.get("untrained_centres"):
        if not isinstance(head, CenterLossHead):
            raise ConfigError(f"switch untrained_centres applies to head centerloss only, not head {head.NAME!r}")
        head.leave_centres_untrained()
    return head


__all__ = [
    "HEADS",
    "PARAMS",
    "build_head",
    "apply_switches",
    "head_class",
    "Head",
    "LinearSoftmaxHead",
    "CosineMarginHead",
    "ConventionalHead",
    "L2SoftmaxHead",
    "ArcFaceHead",
    "CosFaceHead",
    "SphereFaceHead",
    "CenterLossHead",
    "PmlHead",
]
