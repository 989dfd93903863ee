"""Class-balanced batches for pair losses (dmlbench.train.sampling), on cases worked out by hand."""

from __future__ import annotations

import numpy as np
import torch

from dmlbench.train.batches import DeviceBatches
from dmlbench.train.sampling import ClassBalancedBatches, balanced_order


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_every_class_fits_every_batch():
    """15 images of 3 classes (6, 6, 3), batches of 6, at least 2 per class: c = min(3, 6 // 2) = 3
    classes of m = 6 // 3 = 2 images. Two batches take 4 images of each class: the 6-image
    classes give 4 distinct ones, the 3-image class all 3 once and one of them again."""
    labels = torch.tensor([0] * 6 + [1] * 6 + [2] * 3)
    order = balanced_order(labels, n_batches=2, batch_size=6, gen=_gen(), min_per_class=2)
    assert order.shape == (2, 6)
    for row in order:
        assert sorted(labels[row].tolist()) == [0, 0, 1, 1, 2, 2]
    for cls in (0, 1):
        taken = order[labels[order] == cls].tolist()
        assert len(taken) == 4 and len(set(taken)) == 4
    taken = order[labels[order] == 2].tolist()
    assert set(taken) == {12, 13, 14} and len(taken) == 4


def test_more_classes_than_fit_take_distinct_random_classes():
    """10 classes of 8 images, batches of 8, at least 4 per class: c = 8 // 4 = 2 distinct classes,
    4 images each, in every batch."""
    labels = torch.arange(10).repeat_interleave(8)
    order = balanced_order(labels, n_batches=10, batch_size=8, gen=_gen(1), min_per_class=4)
    assert order.shape == (10, 8)
    chosen = set()
    for row in order:
        counts = torch.bincount(labels[row], minlength=10)
        assert sorted(counts[counts > 0].tolist()) == [4, 4]
        chosen |= set(torch.nonzero(counts).squeeze(1).tolist())
    assert len(chosen) > 2  # the classes vary from batch to batch


def test_the_order_repeats_with_the_seed():
    labels = torch.arange(5).repeat_interleave(7)
    a = balanced_order(labels, 4, 10, _gen(3))
    b = balanced_order(labels, 4, 10, _gen(3))
    c = balanced_order(labels, 4, 10, _gen(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_balanced_batches_keep_the_base_loaders_length_and_pixels():
    """The wrapper yields as many batches as the plain loader, each balanced; its images are the
    base loader's normalised pixels of the indexed images (no augmentation asked here)."""
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 256, (30, 4, 4, 1), dtype=np.uint8))
    labels = torch.tensor([0, 1, 2] * 10)
    idx = np.arange(2, 30)  # 28 training images
    mean, std = torch.full((1, 1, 1, 1), 0.5), torch.full((1, 1, 1, 1), 0.25)
    base = DeviceBatches(images, labels, idx, 12, mean=mean, std=std, shuffle=True, seed=5, drop_last=True)
    balanced = ClassBalancedBatches(base)
    batches = list(balanced)
    assert len(batches) == len(base) == 2  # 28 // 12
    for x, y in batches:  # 3 classes fit (12 // 4 = 3): 4 images each
        assert x.shape == (12, 1, 4, 4) and sorted(torch.bincount(y).tolist()) == [4, 4, 4]
        assert x.is_contiguous(memory_format=torch.channels_last)
    # each image is a training image of its label, normalised as (v / 255 - 0.5) / 0.25
    normalised = (images.permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.25
    for x, y in batches:
        for image, label in zip(x, y):
            match = [j for j in idx if torch.allclose(normalised[j], image, atol=1e-5)]
            assert match and all(int(labels[j]) == int(label) for j in match)
    # a second epoch draws a different order (the base's epoch counter advances)
    again = list(balanced)
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(batches, again))
