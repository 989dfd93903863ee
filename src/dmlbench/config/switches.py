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

__all__ = ["Switch", "SWITCHES", "STAGE_SWITCHES", "applies", "switches_on", "train_switches"]


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
        "the margin heads' class weights were added after fastai had split the model into the "
        "layer groups its optimiser is built from, so they were never stepped and kept their "
        "random initial values",
        "the embedding is pulled towards fixed random class directions instead of learned ones",
    )
)
_add(
    Switch(
        "untrained_centres",
        "train",
        ("centerloss",),
        "CenterLoss's centres (an nn.Parameter drawn from N(0, 1)) lived in the loss function, "
        "outside the optimiser, so they were never updated",
        "the centre term pulls every embedding of a class towards a fixed random point instead "
        "of towards its class's mean",
    )
)
_add(
    Switch(
        "validate_on_test",
        "train",
        None,
        "each case's validation set was n_per_class images of each normal class drawn from the "
        "test split, and the training images were not split",
        "anything chosen on validation (the kept epoch) is chosen on the images that are then scored",
    )
)
_add(
    Switch(
        "select_best_epoch",
        "train",
        None,
        "fastai's SaveModelCallback kept the epoch of lowest validation loss of each one-cycle fit",
        "with validate_on_test, the kept model is selected on test images, an optimistic bias",
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


def applies(name: str, head: str) -> bool:
    """Does switch ``name`` apply to a method of head ``head``?"""
    heads = SWITCHES[name].heads
    return heads is None or head in heads


def switches_on(entry: dict) -> list[str]:
    """The switches a method entry turns on, in declaration order."""
    return [name for name in SWITCHES if entry.get(name) is True]


def train_switches(params: dict) -> dict[str, bool]:
    """The train-stage switches that a run's method parameters turn on (name -> True)."""
    return {n: True for n, sw in SWITCHES.items() if sw.stage == "train" and params.get(n) is True}


#: stage -> the names of its switches
STAGE_SWITCHES: dict[str, tuple[str, ...]] = {
    stage: tuple(n for n, sw in SWITCHES.items() if sw.stage == stage) for stage in ("train", "score")
}
