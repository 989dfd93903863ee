"""Training: one job trains every case of a (dataset, n_anomaly, method, n_per_class, seed).

The GPU is kept busy the way the fast CIFAR trainers do it (airbench, hlb-CIFAR10):

- the dataset is moved to the device once, as uint8; batches are cut from it by index, and
  random crop (zero = black padding) and horizontal flip are one gather on the uint8 batch,
  followed by a fused normalisation — no per-image Python, no host-to-device copies per step;
- the backbone runs under bf16 autocast (``training.precision``) in channels_last; the heads
  compute their margins and losses in float32;
- no host synchronisation per step or at an epoch's end: fastai's loss and metric averages
  call ``.cpu()`` on every batch (``to_detach``), its Recorder ``.item()`` after the training
  and the validation pass of every epoch, and its MixUp draws its weights on the CPU and
  copies them over; all are replaced by versions that stay on the device, and the epoch's
  values are read one epoch late (EpochLog), so the host waits for the device once per case
  (its embeddings);
- the optimiser is PyTorch's fused AdamW (or SGD) wrapped for fastai: fastai's own Adam runs
  a Python loop of some 8 small kernels for each of ResNet18's ~60 parameter tensors, more
  host time per step than the GPU needs for the step;
- the model (backbone + head) and its torch.compile'd training forward are built once per job;
  each case re-initialises the weights from a freshly seeded CPU build (exactly what building
  afresh would give), so compilation is paid once per job, not per case — and only for jobs
  large enough to repay it (`training.compile` auto). Evaluation runs the eager backbone.

fastai's Learner stays the training loop: one-cycle schedule, callbacks, MixUp; the model's
forward returns the embedding and the method's head supplies the loss, so every head
parameter is in the optimiser. The fastai-dependent classes (device-side averages, MixUp,
optimiser wrapper, the epoch log) live in dmlbench.fastai_parts, imported on first use.

The components, top to bottom: DeviceBatches (batches cut on the device), HeadLoss,
build_learner, JobData (a job's images on the device), CompiledBackbone (the compile life
cycle), case_loaders (a case's batches), JobTrainer (model, learner and training per case),
train_run (the cases of a job), write_run (its three files), train_job (both).

Per job it writes (DESIGN section 4), each file atomically, run.json last:
  embeddings.npz  per case: reference (training) and test embeddings (float16), test logits
                  (keys and dtypes: dmlbench.embeddings_file)
  train_log.csv   per case and epoch: train loss, validation loss and accuracy, seconds
  run.json        the spec, versions, device, precision, compilation, the phases and wall
                  time of training it (its writing not counted: run.json is what is being
                  written, dmlbench.jobs writes it in the background), the
                  pretrained weights (torchvision enum member, or null), per case its classes,
                  sizes and the head's state after training (`head_state`: SphereFace's λ at
                  the last step, the steps counted and the run's length), and the code: git
                  commit, dirty flag, package source hash (dmlbench.provenance)

Inputs: per case, the images are normalised with the mean and standard deviation of the case's
own training images (its normal classes: the anomaly classes are no part of what the model may
see), or with ImageNet's constants for a pretrained backbone (`case_inputs`). A pretrained
backbone is fine-tuned as fastai's `fine_tune` does (`fine_tune`).
"""

from __future__ import annotations

import copy
import logging
import math
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from dmlbench import __version__
from dmlbench.config.model_options import IMAGENET_MEAN, IMAGENET_STD, model_options, weights_name
from dmlbench.data.sources import Dataset
from dmlbench.data.splits import Case, make_case
from dmlbench.embeddings_file import pack_case, pack_job
from dmlbench.errors import ConfigError, TrainingError
from dmlbench.heads import build_head
from dmlbench.io import write_csv, write_json, write_npz
from dmlbench.models import EmbeddingNet, build_backbone
from dmlbench.phases import NoClock, PhaseClock
from dmlbench.provenance import code_provenance
from dmlbench.sampling import ClassBalancedBatches
from dmlbench.seeded_memo import seeded_memo, seeded_state_memo

log = logging.getLogger("dmlbench.train")

#: A case's fresh backbone depends only on its arguments and the seeded random state, and every
#: method of a job has the same cases and seeds: each run's model is made once, at its start,
#: with the first case's seed, and all runs but the first copy that build (seeded_memo).
build_backbone = seeded_memo(build_backbone)


def _fresh_backbone(*args, **kwargs):
    """A build for the kept weights, past seeded_memo: the state memo keeps it itself, and a second
    CPU copy in seeded_memo would only cost a deep copy and memory. Looked up at call time
    (bench/overhead.py swaps build_backbone)."""
    return getattr(build_backbone, "__wrapped__", build_backbone)(*args, **kwargs)


#: A case's fresh backbone weights, kept on the training device once built: every later method of
#: the job re-initialises from them with one device-to-device copy (JobTrainer.reset).
initial_backbone_state = seeded_state_memo(_fresh_backbone)

PRECISIONS = ("auto", "bf16", "fp32")
OPTIMIZERS = ("adam", "sgd")
#: fastai's Adam defaults (fastai.optimizer.Adam), kept for the fused AdamW that replaces it so
#: a recipe's lr and weight_decay mean what they meant with fastai's own optimiser.
ADAM_BETAS, ADAM_EPS = (0.9, 0.99), 1e-5
SGD_MOMENTUM = 0.9
#: compile 'auto' compiles a job only when it trains on at least this many images (cases x
#: epochs x images per epoch): compilation costs ~10 s (warm inductor cache) to ~60 s (cold) per
#: job process, and saves some 20-30 % of the step time, so smaller jobs finish sooner eager.
COMPILE_MIN_IMAGES = 2_000_000


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device '{device}' was asked for but CUDA is not available; use --device cpu or auto")
    return torch.device(device)


def _native_bf16() -> bool:
    """bf16 tensor cores (Ampere and later); PyTorch also reports emulated bf16 as supported."""
    try:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # torch < 2.3 has no including_emulation and reports native support only
        return torch.cuda.is_bf16_supported()


def resolve_precision(precision: str | None, device: torch.device) -> str:
    """'bf16' or 'fp32' for `training.precision` on `device`.

    auto: bf16 autocast on a CUDA device that supports it, float32 otherwise — on the CPU so
    CPU runs stay bit-repeatable and fast (CPU bf16 convolutions are slower than float32)."""
    precision = precision or "auto"
    if precision not in PRECISIONS:
        raise ConfigError(f"training.precision '{precision}' is unknown; allowed values: {', '.join(PRECISIONS)}")
    bf16_ok = device.type == "cpu" or (device.type == "cuda" and _native_bf16())
    if precision == "auto":
        return "bf16" if device.type == "cuda" and bf16_ok else "fp32"
    if precision == "bf16" and not bf16_ok:
        raise ConfigError(
            f"training.precision 'bf16' was asked for but device {device} has no bf16 support; "
            f"use precision 'fp32' or 'auto'"
        )
    return precision


def resolve_compile(value, device: torch.device, train_images: int | None = None) -> bool:
    """`training.compile`: auto compiles on CUDA only, and only a job that trains on at least
    COMPILE_MIN_IMAGES images (when `train_images` is known); true/false force it on or off."""
    if value in (None, "auto"):
        return device.type == "cuda" and (train_images is None or train_images >= COMPILE_MIN_IMAGES)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if isinstance(value, bool):
        return value
    raise ConfigError(f"training.compile {value!r} is unknown; allowed values: auto, true, false")


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


class HeadLoss:
    """fastai loss function around the head: `reduction` and `y_int` let MixUp combine the two
    label terms of the method's own loss (fastai's NoneReduce sets reduction='none').
    The embeddings are cast to float32 here (bf16 under autocast): margins and losses are
    computed in float32, whatever the backbone's precision."""

    y_int = True

    def __init__(self, head: nn.Module):
        self.head, self.reduction = head, "mean"

    def __call__(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.head.loss(embeddings.float(), labels, reduction=self.reduction)


def head_accuracy(head: nn.Module):
    def accuracy(embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if not getattr(head, "has_logits", True):  # a pair loss predicts no class
            return torch.full((), float("nan"), device=embeddings.device)
        return (head.logits(embeddings.float()).argmax(dim=1) == labels).float().mean()

    return accuracy


def optimizer_func(training: dict, device: torch.device, decay: list[bool] | None = None):
    """fastai `opt_func` building PyTorch's AdamW (fused on CUDA) or SGD with Nesterov momentum.

    The splitter gives two groups: weights with `training.weight_decay`, and normalisation and
    bias parameters without (what fastai's default wd_bn_bias=False does; its mechanism, a
    per-parameter `do_wd` flag, only works with fastai's own optimisers). adam: decoupled
    decay (p -= lr * wd * p), betas (0.9, 0.99), eps 1e-5 as fastai's Adam; sgd: L2 penalty
    added to the gradient (torch.optim.SGD), the convention of the SGD literature values.
    fastai's one-cycle schedule drives lr and momentum (Adam's beta1 / SGD's momentum).
    `decay`: which of the splitter's groups get the weight decay (default: the first of two).
    """
    name = training.get("optimizer", "adam")
    if name not in OPTIMIZERS:
        raise ConfigError(f"training.optimizer '{name}' is unknown; allowed values: {', '.join(OPTIMIZERS)}")
    wd = float(training["weight_decay"])

    def opt_func(param_groups, lr):
        decays = [wd if d else 0.0 for d in (decay or (True, False))]
        groups = [{"params": list(ps), "weight_decay": w} for ps, w in zip(param_groups, decays) if len(ps)]
        if name == "adam":
            opt = torch.optim.AdamW(groups, lr=lr, betas=ADAM_BETAS, eps=ADAM_EPS, fused=device.type == "cuda")
        else:
            opt = torch.optim.SGD(groups, lr=lr, momentum=SGD_MOMENTUM, nesterov=True)
        from dmlbench.fastai_parts import FastOptimWrapper

        return FastOptimWrapper(opt=opt)

    return opt_func


def decay_groups(model: nn.Module) -> list[list[nn.Parameter]]:
    """fastai splitter: [weights, normalisation and bias parameters] (trainable only)."""
    from fastai.torch_core import norm_bias_params

    no_decay = {id(p) for p in norm_bias_params(model, with_bias=True)}
    params = [p for p in model.parameters() if p.requires_grad]
    return [[p for p in params if id(p) not in no_decay], [p for p in params if id(p) in no_decay]]


@dataclass(frozen=True)
class ParamGroup:
    """One optimiser group of fine-tuning: its parameters, whether they get weight decay, and its
    `level` (0 = the earliest layers of the body; the last level is the embedding layer and head)."""

    params: list
    decay: bool
    level: int


def fine_tune_groups(model: EmbeddingNet) -> list[ParamGroup]:
    """fastai's split of a pretrained model (``_resnet_split``): the body's stem and stages 1-2,
    its stages 3-4, then the embedding layer with the head — each split into weights (with
    weight decay) and normalisation and bias parameters (without); empty groups left out."""
    from fastai.torch_core import norm_bias_params

    no_decay = {id(p) for p in norm_bias_params(model, with_bias=True)}
    levels = [*model.backbone.groups()[:-1], [*model.backbone.embedding.parameters(), *model.head.parameters()]]
    groups = []
    for level, params in enumerate(levels):
        params = [p for p in params if p.requires_grad]
        for decay in (True, False):
            chosen = [p for p in params if (id(p) not in no_decay) == decay]
            if chosen:
                groups.append(ParamGroup(chosen, decay, level))
    return groups


class GroupSplitter:
    """fastai splitter returning fixed parameter groups."""

    def __init__(self, groups: list[ParamGroup]):
        self.groups = groups

    def __call__(self, model: nn.Module) -> list[list[nn.Parameter]]:
        return [g.params for g in self.groups]


def set_frozen(model: EmbeddingNet, groups: list[ParamGroup], frozen: bool) -> None:
    """Freeze (or unfreeze) every level but the last, batch-norm parameters excepted, as fastai's
    ``freeze`` with ``train_bn=True``: the pretrained body's weights stay, its batch norms adapt."""
    from fastai.torch_core import norm_bias_params

    norms = {id(p) for p in norm_bias_params(model, with_bias=False)}
    last = max(g.level for g in groups)
    for g in groups:
        for p in g.params:
            p.requires_grad_(not frozen or g.level == last or id(p) in norms)


def even_mults(start: float, stop: float, n: int) -> np.ndarray:
    """n values from start to stop, evenly spaced on a log scale (fastai's even_mults)."""
    if n == 1:
        return np.array([stop])
    return start * (stop / start) ** (np.arange(n) / (n - 1))


def fine_tune(
    learn, model: EmbeddingNet, epochs: int, lr: float, freeze_epochs: int, lr_mult: float, epoch_log
) -> None:
    """fastai's ``Learner.fine_tune`` on our parameter groups: `freeze_epochs` epochs of one-cycle
    (pct_start 0.99) with every level but the last frozen (learning rate `lr` there), then
    `epochs` epochs of one-cycle (pct_start 0.3, div 5) on the whole model with discriminative
    learning rates from lr/2/lr_mult (earliest level) to lr/2 (embedding layer and head), evenly
    spaced on a log scale. `epoch_log(offset)` makes the epoch logger of a phase."""
    groups = learn.splitter.groups
    levels = np.array([g.level for g in groups])
    n = levels.max() + 1
    if freeze_epochs:
        set_frozen(model, groups, True)
        # fastai's slice(lr): lr/10 on the frozen levels (their norms still train), lr on the last
        frozen_lrs = np.where(levels == n - 1, lr, lr / 10)
        learn.fit_one_cycle(freeze_epochs, frozen_lrs, pct_start=0.99, cbs=[epoch_log(0)])
    set_frozen(model, groups, False)
    lrs = even_mults(lr / 2 / lr_mult, lr / 2, n)[levels]
    learn.fit_one_cycle(epochs, lrs, pct_start=0.3, div=5.0, cbs=[epoch_log(freeze_epochs)])


def build_learner(
    model: EmbeddingNet,
    train_dl: DeviceBatches,
    valid_dl: DeviceBatches,
    training: dict,
    method_params: dict,
    device: torch.device | None = None,
    groups: list[ParamGroup] | None = None,
):
    """The fastai Learner the pipeline trains with (tests take optimiser steps through it).
    `groups`: the optimiser's parameter groups (default: :func:`decay_groups`' two)."""
    import fastai.callback.progress  # noqa: F401  (adds Learner.no_bar)
    import fastai.callback.schedule  # noqa: F401  (adds Learner.fit_one_cycle)
    from fastai.data.core import DataLoaders
    from fastai.learner import Learner

    from dmlbench.fastai_parts import DeviceAvgMetric, DeviceRecorder, HeadMixUp

    device = device or train_dl.device
    dls = DataLoaders(train_dl, valid_dl, device=train_dl.device)
    cbs = [HeadMixUp(method_params.get("mixup_alpha", 0.4))] if method_params.get("mixup") else []
    metric = DeviceAvgMetric(head_accuracy(model.head), name="accuracy")
    # wd=None: the optimiser's groups carry the weight decay (see optimizer_func); a Learner wd
    # would be set on every group, normalisation and bias parameters included.
    if groups is None:
        opt_func, splitter = optimizer_func(training, device), decay_groups
    else:
        opt_func = optimizer_func(training, device, [g.decay for g in groups])
        splitter = GroupSplitter(groups)
    learn = Learner(
        dls,
        model,
        loss_func=HeadLoss(model.head),
        metrics=[metric],
        wd=None,
        opt_func=opt_func,
        splitter=splitter,
        cbs=cbs,
    )
    # fastai's Recorder, with its averages kept on the device (no host sync per epoch)
    beta = learn.recorder.smooth_loss.beta
    learn.remove_cb(learn.recorder)
    learn.add_cb(DeviceRecorder(beta=beta))
    return learn


@torch.no_grad()
def embed(model: EmbeddingNet, batches: DeviceBatches) -> tuple[np.ndarray, np.ndarray | None]:
    """Embeddings [N, D] float32 and head logits [N, n_normal] float32, in index order (logits
    None for a head without them: a pair or tuple loss)."""
    model.eval()
    with_logits = getattr(model.head, "has_logits", True)
    embs, logits = [], []
    for x, _ in batches:
        e = model(x).float()
        embs.append(e)
        if with_logits:
            logits.append(model.head.logits(e).float())
    return torch.cat(embs).cpu().numpy(), torch.cat(logits).cpu().numpy() if with_logits else None


def versions() -> dict:
    import fastai

    return {
        "dmlbench": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "fastai": fastai.__version__,
        "numpy": np.__version__,
    }


def device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"cpu ({platform.processor() or platform.machine()})"


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


class CompiledBackbone:
    """The torch.compile'd backbone of a job's model, used for its training steps, and its life
    cycle: compiled once per job, warmed up, and replaced by the eager backbone at its first
    failure.

    `compile(batch_shape)` compiles the backbone, installs this object as the model's training
    forward and runs one forward and backward on a random batch of `batch_shape` [B, C, H, W],
    so that compilation (AOTAutograd compiles the backward at the first backward) happens — and
    fails, if it fails — before any case. A failure at any point (the compile call, the warm-up,
    or a later training step: compile errors surface at the first call, as any type) falls back
    to the eager backbone for the rest of the job and logs one warning.

    What run.json records: `compiled` (the compiled forward is in use), `fallback` (the failure
    as 'Type: first line', or None), `seconds` (compile and warm-up wall time) and `cache` (what
    the compile found in Inductor's caches, dmlbench.compile_cache.outcome; None when nothing was
    compiled).
    """

    def __init__(self, model: EmbeddingNet, options: dict | None = None):
        self.model, self.options = model, options or {}
        self.compiled, self.fallback, self.seconds = False, None, 0.0
        self.cache: dict | None = None
        self._forward = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self._forward is not None:
            try:
                return self._forward(x)
            except Exception as exc:  # compile errors surface at the first call, as any type
                self._forward = None
                self._failed(exc)
        return self.model.backbone(x)

    def compile(self, batch_shape: tuple[int, int, int, int], device: torch.device) -> None:
        from dmlbench import compile_cache

        t0 = time.perf_counter()
        before = compile_cache.counters()
        try:
            self._forward = torch.compile(self.model.backbone, **self.options)
        except Exception as exc:
            self._failed(exc)
            return
        self.model.set_train_forward(self)
        self.compiled = True
        self._warm_up(batch_shape, device)
        self.seconds = time.perf_counter() - t0
        self.cache = compile_cache.outcome(before, compile_cache.counters())
        if self.compiled:
            log.info("backbone compiled in %.1fs (forward and backward; caches %s)", self.seconds, self.cache["cache"])

    def _failed(self, exc: BaseException) -> None:
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        self.fallback = f"{type(exc).__name__}: {first}"
        self.compiled = False
        self._forward = None
        self.model.set_train_forward(None)
        log.warning("torch.compile failed (%s); training continues in eager mode", self.fallback)

    def _warm_up(self, batch_shape: tuple[int, int, int, int], device: torch.device) -> None:
        """One forward and backward at the training batch shape; the weights are reset per case
        anyway."""
        gen = torch.Generator(device=device).manual_seed(0)
        x = torch.randn(*batch_shape, generator=gen, device=device).contiguous(memory_format=torch.channels_last)
        self.model.train()
        try:
            out = self.model(x)
            if self.compiled:
                out.float().square().mean().backward()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
        except Exception as exc:
            if not self.compiled:
                raise
            self._failed(exc)
        finally:
            self.model.zero_grad(set_to_none=True)


def case_loaders(
    data: JobData, case: Case, spec: dict, inputs: dict | None = None, *, balanced: bool = False
) -> tuple[torch.Tensor, DeviceBatches | ClassBalancedBatches, DeviceBatches]:
    """Labels of the train split remapped to the case's normal classes (0..n_normal-1, -1 for
    the anomaly classes) [n_train] int64, and the case's training and validation batches.

    Training batches are shuffled, augmented and seeded by the case (class-balanced when
    ``balanced``: pair and tuple losses need several images per class in a batch); the
    validation batches are the case's validation carve-out (its first training batch when the
    carve-out is empty). `inputs`: the case's normalisation and input shape (default:
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
    valid_idx = case.val_idx if len(case.val_idx) else case.train_idx[:bs]
    valid_dl = DeviceBatches(data.x_train, local, valid_idx, bs, **common)
    return local, train_dl, valid_dl


class JobTrainer:
    """Model, head and compiled training forward of one job, reused by all its cases.

    `train_case(case)` re-initialises every parameter and buffer (batch-norm statistics,
    SphereFace's iteration counter, CenterLoss's centres) from a model built on the CPU with
    the case's seed — bit for bit what a fresh build gives — by copying into the existing
    tensors, so the compiled module and its kernels stay valid. The backbone's built weights
    are kept on the device per seed (initial_backbone_state), so the job's later methods copy
    them device to device. Copying a fresh build rather
    than calling reset_parameters(): torchvision's ResNet re-initialises its convolutions and
    batch norms in its constructor (kaiming_normal, fan_out), which reset_parameters() does
    not reproduce.
    """

    def __init__(
        self,
        ds: Dataset,
        spec: dict,
        device: torch.device,
        *,
        data: JobData | None = None,
        compile_options: dict | None = None,
        warm_up_batch_size: int | None = None,
        train_images: int | None = None,
        clock: PhaseClock | None = None,
    ):
        self.ds, self.spec, self.device = ds, spec, device
        self.clock = clock or NoClock()  # the compile is timed here; the caller times the rest
        self.training = spec["training"]
        self.data = data or JobData(ds, device)
        self.precision = resolve_precision(self.training.get("precision", "auto"), device)
        self.n_normal = len(ds.classes) - int(spec["n_anomaly"])
        self.model_options = model_options(spec["model"])
        self.weights = weights_name(self.model_options["backbone"], self.model_options["pretrained"])
        # An ImageNet backbone sees 3 channels (grey images repeated) at model.input_size.
        self.in_channels = 3 if self.weights else int(ds.x_train.shape[3])
        size = self.model_options["input_size"]
        self.input_hw = (size, size) if size else tuple(ds.x_train.shape[1:3])
        self.head_params = {k: v for k, v in spec["method_params"].items() if k not in ("mixup", "mixup_alpha")}
        # Built with the first case's seed, which every run of the job shares: a later run copies
        # the memoised build (some 40 ms for ResNet18) instead of building anew (0.17 s); the
        # weights are re-initialised per case anyway (reset).
        torch.manual_seed(case_seed(int(spec["seed"]), 0))
        self.model = self.build_model().to(device).to(memory_format=torch.channels_last)
        self.model.autocast_dtype = torch.bfloat16 if self.precision == "bf16" else None
        self.compiled_backbone = CompiledBackbone(self.model, compile_options)
        if resolve_compile(self.training.get("compile", "auto"), device, train_images):
            bs = warm_up_batch_size or self.training["batch_size"]
            with self.clock.phase("compile"):
                self.compiled_backbone.compile((bs, self.in_channels, *self.input_hw), device)

    # run.json's compile fields
    @property
    def compiled(self) -> bool:
        return self.compiled_backbone.compiled

    @property
    def compile_fallback(self) -> str | None:
        return self.compiled_backbone.fallback

    @property
    def compile_seconds(self) -> float:
        return self.compiled_backbone.seconds

    def _backbone_args(self) -> tuple[tuple, dict]:
        m = self.model_options
        return (
            (m["backbone"], self.in_channels, m["embedding_dim"]),
            {"embedding": m["embedding"], "embedding_size": m["embedding_size"], "pretrained": m["pretrained"]},
        )

    def _build_head(self, embedding_dim: int) -> nn.Module:
        return build_head(self.spec.get("head", self.spec["method"]), embedding_dim, self.n_normal, **self.head_params)

    def build_model(self) -> EmbeddingNet:
        """A fresh backbone + head on the CPU, initialised from the global RNG (a pretrained
        body: its ImageNet weights, read from the torch hub cache)."""
        args, kwargs = self._backbone_args()
        backbone = build_backbone(*args, **kwargs)
        return EmbeddingNet(backbone, self._build_head(backbone.embedding_dim))

    @property
    def fine_tunes(self) -> bool:
        """Pretrained: fastai's fine_tune (frozen body first, then discriminative learning rates)."""
        return self.weights is not None

    def reset(self, seed: int) -> None:
        """Seed the global RNGs and re-initialise the model as a fresh build with `seed` would be:
        the backbone from :data:`initial_backbone_state` (built on the CPU at the seed's first
        use in this process, kept on the device), the head built afresh from the random state
        the backbone's build left, both copied into the existing tensors."""
        torch.manual_seed(seed)
        args, kwargs = self._backbone_args()
        self.model.backbone.load_state_dict(initial_backbone_state(self.device, *args, **kwargs))
        self.model.head.load_state_dict(self._build_head(self.model.backbone.embedding_dim).state_dict())
        self.model.zero_grad(set_to_none=True)

    def learner(self, case: Case, *, reset: bool = True):
        """The case's fastai Learner on the job's model (re-initialised with the case's seed), and
        the train split's labels remapped to the case's normal classes."""
        if reset:
            self.reset(case_seed(self.spec["seed"], case.case))
        if len(case.normal_classes) != self.n_normal:
            raise ConfigError(
                f"case {case.case} has {len(case.normal_classes)} normal classes, the job's model {self.n_normal}"
            )
        self.inputs = case_inputs(self.data, case, self.spec["model"])
        local, train_dl, valid_dl = case_loaders(
            self.data, case, self.spec, self.inputs, balanced=getattr(self.model.head, "balanced_batches", False)
        )
        groups = fine_tune_groups(self.model) if self.fine_tunes else None
        learn = build_learner(
            self.model, train_dl, valid_dl, self.training, self.spec["method_params"], self.device, groups=groups
        )
        # A schedule over the run (SphereFace's λ) counts the optimiser steps of every phase.
        epochs = self.training["epochs"] + (self.training.get("freeze_epochs", 0) if self.fine_tunes else 0)
        self.model.head.set_run_length(epochs * len(train_dl))
        return learn, local

    def train_case(self, case: Case) -> tuple[dict, list[dict]]:
        """Train one case; returns its arrays for embeddings.npz and its train_log rows."""
        from dmlbench.fastai_parts import EpochLog

        learn, local = self.learner(case)
        rows: list[dict] = []
        lr, epochs = self.training["lr"], self.training["epochs"]
        with learn.no_bar(), learn.no_logging():
            if self.fine_tunes:
                fine_tune(
                    learn,
                    self.model,
                    epochs,
                    lr,
                    self.training.get("freeze_epochs", 1),
                    self.training.get("lr_mult", 100),
                    lambda offset: EpochLog(self.spec["method"], case.case, self.device, rows, offset),
                )
            else:
                learn.fit_one_cycle(epochs, lr, cbs=[EpochLog(self.spec["method"], case.case, self.device, rows)])
        return self.case_arrays(case, local), rows

    def case_arrays(self, case: Case, local: torch.Tensor) -> dict[str, np.ndarray]:
        """The trained model's reference and test embeddings and test logits, checked finite,
        packed under the case's embeddings.npz keys."""
        d, bs, method = self.data, self.training["batch_size"], self.spec["method"]
        common = self.inputs
        ref_emb, _ = embed(self.model, DeviceBatches(d.x_train, local, case.train_idx, bs, **common))
        test_emb, test_logits = embed(
            self.model, DeviceBatches(d.x_test, d.y_test, np.arange(len(self.ds.y_test)), bs, **common)
        )
        for name, arr in (("reference", ref_emb), ("test", test_emb), ("logits", test_logits)):
            if arr is not None and not np.isfinite(arr).all():
                raise TrainingError(
                    f"method '{method}', case {case.case}: {name} embeddings contain NaN or "
                    f"infinite values after training; lower training.lr. No embeddings were written."
                )
        return pack_case(
            case.case,
            reference=ref_emb,
            reference_index=case.train_idx,
            reference_labels=self.ds.y_train[case.train_idx],
            test=test_emb,
            test_logits=test_logits,
            normal_classes=case.normal_classes,
        )


def job_cases(ds: Dataset, spec: dict) -> list[Case]:
    n_classes = len(ds.classes)
    if spec["cases"] > n_classes:
        raise ConfigError(f"cases {spec['cases']} exceeds the {n_classes} classes of dataset '{spec['dataset']}'")
    return [
        make_case(
            ds.y_train,
            ds.classes,
            k,
            spec["n_anomaly"],
            order=spec["class_order"],
            n_per_class=spec["n_per_class"],
            seed=spec["seed"],
            val_fraction=spec["training"]["val_fraction"],
        )
        for k in range(spec["cases"])
    ]


def setup_device(dev: torch.device) -> None:
    """CPU: deterministic kernels (runs repeat bit for bit). CUDA: cuDNN autotuning — batch
    shapes are fixed within a job, so the fastest convolution algorithms are found once."""
    if dev.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    elif dev.type == "cuda":
        torch.backends.cudnn.benchmark = True


@dataclass
class TrainedRun:
    """A trained run's outputs, held in memory until :func:`write_run` writes them.

    ``arrays``: embeddings.npz's arrays (dmlbench.embeddings_file); ``log_rows``: train_log.csv's
    rows (per case and epoch); ``meta``: run.json."""

    arrays: dict[str, np.ndarray]
    log_rows: list[dict]
    meta: dict


def train_run(
    ds: Dataset,
    spec: dict,
    device: str = "auto",
    threads: int | None = None,
    *,
    data: JobData | None = None,
    clock: PhaseClock | None = None,
) -> TrainedRun:
    """Train all cases of one run; returns its files' contents, written by :func:`write_run`.

    ``data``: the images already on the device (a job of several runs moves them once);
    ``clock``: books the run's phases (data, build, compile, training, embedding;
    dmlbench.phases), which run.json lists under ``phases``, with ``wall_seconds`` their wall
    time. Neither counts the writing: run.json is what is being written, and a job of several
    runs writes a run in the background while the next one trains (dmlbench.jobs)."""
    t_start = time.perf_counter()
    clock = clock or NoClock()
    booked = clock.snapshot()
    if threads:
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    setup_device(dev)
    cases = job_cases(ds, spec)
    bs, epochs = spec["training"]["batch_size"], spec["training"]["epochs"]
    train_images = sum(
        epochs * (len(c.train_idx) // bs * bs if len(c.train_idx) > bs else len(c.train_idx)) for c in cases
    )
    if data is None:
        with clock.phase("data"):
            data = JobData(ds, dev)
    with clock.phase("build"):
        trainer = JobTrainer(
            ds,
            spec,
            dev,
            data=data,
            warm_up_batch_size=min(bs, len(cases[0].train_idx)),
            train_images=train_images,
            clock=clock,
        )
    # A case's Learner set-up is build, its embeddings are embedding, the rest of it (the fit) training.
    trainer.learner = clock.timed("build", trainer.learner)
    trainer.case_arrays = clock.timed("embedding", trainer.case_arrays)

    arrays: dict[str, np.ndarray] = pack_job(ds.y_test, ds.classes)
    log_rows: list[dict] = []
    case_info = []
    for case in cases:
        t0 = time.perf_counter()
        with clock.phase("training"):
            case_arrays, rows = trainer.train_case(case)
        arrays.update(case_arrays)
        log_rows.extend(rows)
        case_info.append(
            {
                "case": case.case,
                "normal_classes": list(case.normal_classes),
                "anomaly_classes": list(case.anomaly_classes),
                "n_train": int(len(case.train_idx)),
                "n_val": int(len(case.val_idx)),
                "head_state": trainer.model.head.state_summary(),
                "seconds": time.perf_counter() - t0,
            }
        )

    # A copy of the spec: the run may be written on another thread while the caller goes on.
    meta = {
        "spec": copy.deepcopy(spec),
        "classes": list(ds.classes),
        "cases": case_info,
        "versions": versions(),
        "device": device_name(dev),
        "threads": torch.get_num_threads(),
        **code_provenance(),
        "pretrained_weights": trainer.weights,
        "precision": trainer.precision,
        "compiled": trainer.compiled,
        "compile_fallback": trainer.compile_fallback,
        "compile_seconds": round(trainer.compile_seconds, 3),
        "compile_cache": trainer.compiled_backbone.cache,
        "phases": clock.since(booked),
        "wall_seconds": time.perf_counter() - t_start,
    }
    return TrainedRun(arrays, log_rows, meta)


def write_run(out_dir: str | Path, run: TrainedRun) -> None:
    """Write a trained run's embeddings.npz, train_log.csv and run.json to ``out_dir``, each
    atomically; run.json last, so the three files appear together, never a partial run (a
    folder without run.json is unfinished). Touches no torch state and no clock: safe on a
    writer thread."""
    out = Path(out_dir)
    write_npz(out / "embeddings.npz", **run.arrays)
    write_csv(out / "train_log.csv", pd.DataFrame(run.log_rows))
    write_json(out / "run.json", run.meta)


def train_job(
    ds: Dataset,
    spec: dict,
    out_dir: str | Path,
    device: str = "auto",
    threads: int | None = None,
    *,
    data: JobData | None = None,
    clock: PhaseClock | None = None,
) -> None:
    """Train all cases of one run and write embeddings.npz, train_log.csv and run.json to out_dir
    before returning (:func:`train_run`, then :func:`write_run`; the writing is booked on
    ``clock`` as ``writing``, not in run.json's phases)."""
    clock = clock or NoClock()
    run = train_run(ds, spec, device, threads, data=data, clock=clock)
    with clock.phase("writing"):
        write_run(out_dir, run)
