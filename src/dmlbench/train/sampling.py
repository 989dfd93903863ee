"""Class-balanced training batches for pair and tuple losses.

A pair loss (triplet, contrastive, multi-similarity, supervised contrastive) learns only from
the pairs a batch holds: an image whose class has no other image in the batch gives no
positive pair. So its batches hold several images of each class in them, as
pytorch-metric-learning's ``MPerClassSampler`` does: a batch of ``B`` images holds
``c = min(C, B // MIN_PER_CLASS)`` classes (all of them when they fit), ``B // c`` images of
each, drawn without replacement from a per-class random order that starts again when a class
runs out. The epoch has as many batches as
the plain shuffled order would have, so ``training.epochs`` means the same for every method.
Everything is drawn on the device from the loader's seeded generator: no per-image Python,
runs repeat.
"""

from __future__ import annotations

import math

import torch

#: Images of one class a batch holds at least when it cannot hold every class.
MIN_PER_CLASS = 4


def balanced_order(
    labels: torch.Tensor, n_batches: int, batch_size: int, gen: torch.Generator, min_per_class: int = MIN_PER_CLASS
) -> torch.Tensor:
    """Positions into ``labels`` ([N] int64, class of each training image, on the device) for
    ``n_batches`` class-balanced batches: a ``[n_batches, c * m]`` int64 tensor, each row one
    batch of ``c = min(C, batch_size // min_per_class)`` classes (at least 1) with
    ``m = batch_size // c`` images each, where ``C`` is the number of classes present. Within a
    class, positions follow one random permutation after another (a class smaller than what the
    epoch takes of it is repeated, each image once per pass)."""
    device = labels.device
    classes = torch.unique(labels)
    n_classes = len(classes)
    c = max(1, min(n_classes, batch_size // min_per_class))
    m = max(1, batch_size // c)
    if c == n_classes:
        chosen = classes.expand(n_batches, c)
    else:  # c distinct classes per batch, uniformly at random
        scores = torch.rand(n_batches, n_classes, generator=gen, device=device)
        chosen = classes[scores.argsort(dim=1)[:, :c]]
    order = torch.empty(n_batches, c, m, dtype=torch.long, device=device)
    for cls in classes:
        members = (labels == cls).nonzero().squeeze(1)
        slots = (chosen == cls).nonzero()  # (batch, column) where cls is taken
        need = len(slots) * m
        if need == 0:
            continue
        passes = math.ceil(need / len(members))
        stream = torch.cat(
            [members[torch.randperm(len(members), generator=gen, device=device)] for _ in range(passes)]
        )[:need]
        order[slots[:, 0], slots[:, 1]] = stream.view(len(slots), m)
    return order.view(n_batches, c * m)


class ClassBalancedBatches:
    """The training batches of a :class:`dmlbench.train.batches.DeviceBatches` (``base``, shuffled and
    augmented), cut in class-balanced order (:func:`balanced_order`) instead of a plain shuffle.
    Everything else - augmentation, normalisation, channels_last, the per-epoch seed, the number
    of batches - is the base loader's. ``labels`` are the case's remapped labels of the whole
    train split (as the base loader holds them)."""

    def __init__(self, base, min_per_class: int = MIN_PER_CLASS):
        self.base, self.min_per_class = base, min_per_class

    def __len__(self) -> int:
        return len(self.base)

    def __getattr__(self, name):  # device, batch_size, ... are the base loader's
        return getattr(self.base, name)

    def to(self, device):  # fastai moves loaders; this one already lives where the data is
        return self

    def __iter__(self):
        b = self.base
        gen = torch.Generator(device=b.device)
        gen.manual_seed(b.seed * 100_003 + b.epoch)
        b.epoch += 1
        size = min(b.batch_size, len(b.idx))
        rows = balanced_order(b.labels[b.idx], len(b), size, gen, self.min_per_class)
        for positions in rows:
            ix = b.idx[positions]
            x = b._augment_nhwc(b.images[ix], gen)
            x = x.permute(0, 3, 1, 2).float().mul_(b.scale).sub_(b.shift)
            yield x.contiguous(memory_format=torch.channels_last), b.labels[ix]
