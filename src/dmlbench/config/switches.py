"""The study's original implementation as switches: their names, declared once and without torch.

Each switch turns on one thing the original code (github.com/daisukelab/metric_learning) did
differently from dmlbench's corrected protocol. A switch is a boolean key of a method entry
(`methods.<label>.<switch>: true`), so the variant machinery compares the original against the
fixed behaviour in one run, paired by case and seed (`arcface_orig: {head: arcface,
untrained_weights: true}`). docs/original.md cites the original's file and line for each.

This module is the one list that the config check, the trainer, the scorer and the report's
Reproduction section read. Every switch defaults to off (dmlbench's corrected behaviour).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Switch", "SWITCHES", "switches_on"]


@dataclass(frozen=True)
class Switch:
    """One difference of the original implementation.

    ``heads``: the heads the switch applies to (None = every head); ``stage``: the stage that
    acts on it (train or score); ``original``: what the original did, one sentence;
    ``matters``: why it can move a result, one sentence."""

    name: str
    stage: str
    heads: tuple[str, ...] | None
    original: str
    matters: str


SWITCHES: dict[str, Switch] = {}


def _add(switch: Switch) -> None:
    SWITCHES[switch.name] = switch


_add(
    Switch(
        "untrained_weights",
        "train",
        ("arcface", "cosface", "sphereface"),
        "the margin heads' class weights were never handed to the optimiser, so they kept their initial values",
        "the embedding is pulled towards fixed random class directions instead of learned ones",
    )
)
_add(
    Switch(
        "untrained_centres",
        "train",
        ("centerloss",),
        "CenterLoss's class centres were never updated, so they kept their initial values",
        "the centre term pulls every embedding towards a fixed random point of its class",
    )
)
_add(
    Switch(
        "validate_on_test",
        "train",
        None,
        "each case's validation set was the test split's images of the normal classes",
        "anything chosen on validation (the kept epoch) is chosen on test images",
    )
)
_add(
    Switch(
        "unpaired_subsample",
        "score",
        None,
        "the test and reference sets were random 50 % subsamples drawn afresh for every method",
        "methods are scored on different images, so their differences carry subsampling noise",
    )
)


def switches_on(entry: dict) -> list[str]:
    """The switches a method entry turns on, in declaration order."""
    return [name for name in SWITCHES if entry.get(name) is True]
