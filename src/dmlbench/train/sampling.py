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


def balanced_batch_size(n_classes: int, batch_size: int, min_per_class: int = MIN_PER_CLASS) -> int:
    """Images in a class-balanced batch: ``c * m`` with ``c = min(C, batch_size // min_per_class)``
    classes (at least 1) of ``m = batch_size // c`` images each; ``batch_size`` or fewer."""
    c = max(1, min(n_classes, batch_size // min_per_class))
    return c * max(1, batch_size // c)


class ClassMembers:
    """The classes present in ``labels`` ([N] int64, on the device) and each one's positions,
    found once per loader: ``torch.unique`` and a ``nonzero`` per class each wait for the device
    (a host sync), so an epoch's draw (:func:`balanced_order`) uses these instead."""

    def __init__(self, labels: torch.Tensor):
        self.device = labels.device
        self.classes = torch.unique(labels)
        self.members = [(labels == cls).nonzero().squeeze(1) for cls in self.classes]
        self.counts = [len(m) for m in self.members]  # host integers


def balanced_order(
    labels: torch.Tensor | ClassMembers,
    n_batches: int,
    batch_size: int,
    gen: torch.Generator,
    min_per_class: int = MIN_PER_CLASS,
) -> torch.Tensor:
    """Positions into ``labels`` ([N] int64, class of each training image, on the device; or their
    :class:`ClassMembers`) for ``n_batches`` class-balanced batches: a ``[n_batches, c * m]`` int64
    tensor, each row one batch of ``c = min(C, batch_size // min_per_class)`` classes (at least 1)
    with ``m = batch_size // c`` images each, where ``C`` is the number of classes present. Within
    a class, positions follow one random permutation after another (a class smaller than what the
    epoch takes of it is repeated, each image once per pass): the k-th batch holding a class takes
    the k-th run of ``m`` positions of its stream.

    No host sync given ClassMembers: every size is known on the host (each class's stream is as
    long as the epoch could take of it, ``n_batches * m``: a class is in a batch at most once)."""
    members = labels if isinstance(labels, ClassMembers) else ClassMembers(labels)
    device, n_classes = members.device, len(members.counts)
    c = max(1, min(n_classes, batch_size // min_per_class))
    m = max(1, batch_size // c)
    if c == n_classes:
        chosen = torch.arange(n_classes, device=device).expand(n_batches, c)
    else:  # c distinct classes per batch, uniformly at random (positions into members.classes)
        scores = torch.rand(n_batches, n_classes, generator=gen, device=device)
        chosen = scores.argsort(dim=1)[:, :c]
    need = n_batches * m
    streams = torch.stack(
        [
            torch.cat([pos[torch.randperm(n, generator=gen, device=device)] for _ in range(math.ceil(need / n))])[:need]
            for pos, n in zip(members.members, members.counts)
        ]
    )  # [C, need]
    slots = chosen.reshape(-1)  # (batch, column) in batch order
    seen = (slots[:, None] == torch.arange(n_classes, device=device)).cumsum(0)
    rank = seen.gather(1, slots[:, None]) - 1  # earlier batches holding the same class
    order = streams[slots[:, None], rank * m + torch.arange(m, device=device)]
    return order.view(n_batches, c * m)


class ClassBalancedBatches:
    """The training batches of a :class:`dmlbench.train.batches.DeviceBatches` (``base``, shuffled and
    augmented), cut in class-balanced order (:func:`balanced_order`) instead of a plain shuffle.
    Everything else - augmentation, the base loader's input conversion (normalisation, a grey
    image's channel repeated for a 3-channel backbone, ``model.input_size``'s resize,
    channels_last), the per-epoch seed, the number of batches - is the base loader's. The classes
    and their members are found once, here (:class:`ClassMembers`): an epoch waits for nothing."""

    def __init__(self, base, min_per_class: int = MIN_PER_CLASS):
        self.base, self.min_per_class = base, min_per_class
        self.members = ClassMembers(base.labels[base.idx])

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
        rows = balanced_order(self.members, len(b), size, gen, self.min_per_class)
        for positions in rows:
            ix = b.idx[positions]
            yield b._to_input(b._augment_nhwc(b.images[ix], gen)), b.labels[ix]
