"""A job's images on the device and a case's batches cut from them, the way the fast CIFAR trainers
do it (airbench, hlb-CIFAR10): the dataset moves to the device once, as uint8 (:class:`JobData`);
batches are cut from it by index, and random crop (zero = black padding) and horizontal flip are
one gather on the uint8 batch, followed by a fused normalisation (:class:`DeviceBatches`) - no
per-image Python, no host-to-device copies per step.

Inputs: per case, the images are normalised with the mean and standard deviation of the case's
own training images (its normal classes: the anomaly classes are no part of what the model may
see), or with ImageNet's constants for a pretrained backbone (:func:`case_inputs`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from dmlbench.config.model_options import IMAGENET_MEAN, IMAGENET_STD, model_options, weights_name
from dmlbench.data.sources import Dataset
from dmlbench.data.splits import Case
from dmlbench.train.sampling import ClassBalancedBatches


def case_seed(seed: int, case: int) -> int:
    return seed * 1000 + case


class DeviceBatches:
    """Batches (x float [B,C,H,W] channels_last, y int64 [B]) cut from a uint8 NHWC tensor on the
    device.

    `labels` are already mapped to 0..n_normal-1. The order is drawn from a torch Generator
    seeded per epoch, so runs repeat; augmentation draws from the same generator on the device.
    Training batches (shuffle=True) are augmented on the uint8 pixels — random crop of the image
    padded with `crop_padding` black pixels (as torchvision's RandomCrop(padding=p) does) and a
    horizontal flip with probability 1/2 — then normalised with the per-channel `mean` and `std`
    (fractions of 255, shape [1,C,1,1]). Evaluation batches are never augmented.

    For an ImageNet backbone (`model.pretrained`): `channels` 3 repeats a grey image's channel
    (before the normalisation, so `mean` and `std` have 3 channels), and `size` resizes every
    batch to `size` x `size` (bilinear, antialiased when shrinking; `model.input_size`) after the
    augmentation. None leaves the channels or the size as they are.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        idx: np.ndarray,
        batch_size: int,
        *,
        mean: torch.Tensor,
        std: torch.Tensor,
        shuffle: bool = False,
        flip: bool = False,
        crop_padding: int = 0,
        seed: int = 0,
        drop_last: bool = False,
        channels: int | None = None,
        size: int | None = None,
    ):
        self.images, self.labels = images, labels
        self.idx = torch.as_tensor(idx, dtype=torch.long, device=images.device)
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.flip, self.crop_padding = flip, crop_padding
        self.channels = channels if channels and channels != images.shape[3] else None
        self.size = size if size and tuple(images.shape[1:3]) != (size, size) else None
        self.mean, self.std = mean, std
        # x / 255 then (x - mean) / std as one multiply-subtract on the device.
        self.scale = (1.0 / (255.0 * std)).to(images.device, torch.float32)
        self.shift = (mean / std).to(images.device, torch.float32)
        self.seed, self.epoch = seed, 0
        self.device = images.device

    def __len__(self) -> int:
        n = len(self.idx)
        return n // self.batch_size if self.drop_last and n >= self.batch_size else math.ceil(n / self.batch_size)

    def to(self, device):  # fastai moves loaders; ours already live where the data is
        return self

    def _augment_nhwc(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Random crop (zero padding) and flip of an NHWC batch, as one gather."""
        b, h, w, _ = x.shape
        p = self.crop_padding
        if not p and not self.flip:
            return x
        dev = x.device
        rows = torch.arange(h, device=dev).expand(b, h)
        cols = torch.arange(w, device=dev).expand(b, w)
        if p:
            x = nn.functional.pad(x, (0, 0, p, p, p, p))
            rows = rows + torch.randint(0, 2 * p + 1, (b, 1), generator=gen, device=dev)
            cols = cols + torch.randint(0, 2 * p + 1, (b, 1), generator=gen, device=dev)
        if self.flip:
            # A flipped crop reads its window's columns right to left.
            mirror = torch.rand(b, 1, generator=gen, device=dev) < 0.5
            cols = torch.where(mirror, cols.flip(1), cols)
        bi = torch.arange(b, device=dev)[:, None, None]
        return x[bi, rows[:, :, None], cols[:, None, :]]

    def _augment(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """The training augmentation of an NCHW batch (any dtype), NCHW out."""
        return self._augment_nhwc(x.permute(0, 2, 3, 1), gen).permute(0, 3, 1, 2)

    def __iter__(self):
        gen = torch.Generator(device=self.device)
        gen.manual_seed(self.seed * 100_003 + self.epoch)
        self.epoch += 1
        order = self.idx
        if self.shuffle:
            order = self.idx[torch.randperm(len(self.idx), generator=gen, device=self.device)]
        for i in range(len(self)):
            ix = order[i * self.batch_size : (i + 1) * self.batch_size]
            x = self.images[ix]
            if self.shuffle:  # training batches are augmented, evaluation ones never
                x = self._augment_nhwc(x, gen)
            yield self._to_input(x), self.labels[ix]

    def _to_input(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 NHWC batch -> normalised float NCHW, channels_last (channels repeated, resized)."""
        # NHWC memory seen as NCHW is channels_last already: the float copy keeps the strides.
        x = x.permute(0, 3, 1, 2).float()
        if self.channels:
            x = x.expand(-1, self.channels, -1, -1).contiguous(memory_format=torch.channels_last)
        x = x.mul_(self.scale).sub_(self.shift)
        if self.size:
            x = nn.functional.interpolate(
                x,
                size=(self.size, self.size),
                mode="bilinear",
                align_corners=False,
                antialias=self.size < max(x.shape[2:]),
            )
        return x.contiguous(memory_format=torch.channels_last)


class JobData:
    """A job's images on the device, once: train/test uint8 NHWC and labels."""

    def __init__(self, ds: Dataset, device: torch.device):
        self.ds, self.device = ds, device
        self.x_train = torch.from_numpy(ds.x_train).to(device)
        self.x_test = torch.from_numpy(ds.x_test).to(device)
        self.y_train = torch.from_numpy(ds.y_train.astype(np.int64)).to(device)
        self.y_test = torch.from_numpy(ds.y_test.astype(np.int64)).to(device)


#: Images per chunk of the normalisation statistics (bounded memory on the device).
STATS_CHUNK = 4096


def channel_stats(images: torch.Tensor, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation (ddof 1, at least 1e-3) of the uint8 NHWC
    `images[idx]`, as fractions of 255, each [1, C, 1, 1] float32 on the images' device.
    Summed in float64 in chunks, without a host read."""
    index = torch.as_tensor(idx, dtype=torch.long, device=images.device)
    total = torch.zeros(images.shape[3], dtype=torch.float64, device=images.device)
    squares = torch.zeros_like(total)
    for start in range(0, len(index), STATS_CHUNK):
        x = images[index[start : start + STATS_CHUNK]].double()
        total += x.sum(dim=(0, 1, 2))
        squares += x.square().sum(dim=(0, 1, 2))
    n = len(index) * images.shape[1] * images.shape[2]
    mean = total / n
    var = (squares - n * mean.square()) / max(n - 1, 1)
    std = var.clamp_min(0).sqrt()
    return ((mean / 255).float().view(1, -1, 1, 1), (std / 255).float().clamp_min(1e-3).view(1, -1, 1, 1))


def case_inputs(data: JobData, case: Case, model: dict) -> dict:
    """How a case's images become model inputs: DeviceBatches' `mean`, `std`, `channels` and
    `size` arguments.

    From scratch: the per-channel mean and standard deviation of the case's training images —
    normal classes only, the anomaly classes are no part of what the model may see. Pretrained:
    ImageNet's constants, grey images repeated to 3 channels. Either way `model.input_size`
    (None: as they are)."""
    m = model_options(model)
    if weights_name(m["backbone"], m["pretrained"]) is not None:
        mean = torch.tensor(IMAGENET_MEAN, device=data.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=data.device).view(1, 3, 1, 1)
        return {"mean": mean, "std": std, "channels": 3, "size": m["input_size"]}
    mean, std = channel_stats(data.x_train, case.train_idx)
    return {"mean": mean, "std": std, "channels": None, "size": m["input_size"]}


def case_loaders(
    data: JobData, case: Case, spec: dict, inputs: dict | None = None, *, balanced: bool = False
) -> tuple[torch.Tensor, DeviceBatches | ClassBalancedBatches, DeviceBatches]:
    """Labels of the train split remapped to the case's normal classes (0..n_normal-1, -1 for
    the anomaly classes) [n_train] int64, and the case's training and validation batches.

    Training batches are shuffled, augmented and seeded by the case (class-balanced when
    ``balanced``: pair and tuple losses need several images per class in a batch); the
    validation batches are the case's validation carve-out (its first training batch when the
    carve-out is empty), or its test-split images under the switch validate_on_test
    (``case.val_split == "test"``). `inputs`: the case's normalisation and input shape (default:
    :func:`case_inputs`)."""
    training, bs = spec["training"], spec["training"]["batch_size"]
    device, normals = data.device, list(case.normal_classes)
    remap = torch.full((len(data.ds.classes),), -1, dtype=torch.long, device=device)
    remap[torch.as_tensor(normals, device=device)] = torch.arange(len(normals), device=device)
    local = remap[data.y_train]
    common = inputs if inputs is not None else case_inputs(data, case, spec["model"])
    train_dl = DeviceBatches(
        data.x_train,
        local,
        case.train_idx,
        bs,
        shuffle=True,
        flip=spec["flip"],
        crop_padding=training["crop_padding"],
        seed=case_seed(spec["seed"], case.case),
        drop_last=len(case.train_idx) > bs,
        **common,
    )
    if balanced:
        train_dl = ClassBalancedBatches(train_dl)
    if case.val_split == "test":  # the original implementation's validate_on_test
        valid_dl = DeviceBatches(data.x_test, remap[data.y_test], case.val_idx, bs, **common)
    else:
        valid_idx = case.val_idx if len(case.val_idx) else case.train_idx[:bs]
        valid_dl = DeviceBatches(data.x_train, local, valid_idx, bs, **common)
    return local, train_dl, valid_dl
