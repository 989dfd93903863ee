"""Conventional softmax classifier: Linear(in, C) with bias + cross-entropy."""

from __future__ import annotations

from dmlbench.config.head_params import defaults
from dmlbench.heads.base import LinearSoftmaxHead


class ConventionalHead(LinearSoftmaxHead):
    r"""Plain softmax head.

    logits = W x + b  (W: [C, D] xavier-uniform, b: zeros);  loss = CE(logits, y).
    No parameters.
    """

    NAME = "conventional"
    PARAMS = defaults(NAME)
