"""fastai glue: the Learner a case trains with - the head as its loss, the optimiser, the parameter
groups, and fastai's ``fine_tune`` for a pretrained backbone.

fastai's Learner stays the training loop (one-cycle schedule, callbacks, MixUp); the model's
forward returns the embedding and the method's head supplies the loss, so every head parameter
is in the optimiser. The optimiser is PyTorch's fused AdamW (or SGD) wrapped for fastai: fastai's
own Adam runs a Python loop of some 8 small kernels for each of ResNet18's ~60 parameter tensors,
more host time per step than the GPU needs for the step. The fastai classes that keep the loop's
averages on the device are in dmlbench.train.fastai_parts.
"""

from __future__ import annotations

from dataclasses import dataclass

import fastai.callback.progress  # noqa: F401  (adds Learner.no_bar)
import fastai.callback.schedule  # noqa: F401  (adds Learner.fit_one_cycle)
import numpy as np
import torch
from fastai.data.core import DataLoaders
from fastai.learner import Learner
from fastai.torch_core import norm_bias_params
from torch import nn

from dmlbench.errors import ConfigError
from dmlbench.train.batches import DeviceBatches
from dmlbench.train.fastai_parts import DeviceAvgMetric, DeviceRecorder, FastOptimWrapper, HeadMixUp
from dmlbench.train.models import EmbeddingNet

OPTIMIZERS = ("adam", "sgd")
#: fastai's Adam defaults (fastai.optimizer.Adam), kept for the fused AdamW that replaces it so
#: a recipe's lr and weight_decay mean what they meant with fastai's own optimiser.
ADAM_BETAS, ADAM_EPS = (0.9, 0.99), 1e-5
SGD_MOMENTUM = 0.9


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

        return FastOptimWrapper(opt=opt)

    return opt_func


def decay_groups(model: nn.Module) -> list[list[nn.Parameter]]:
    """fastai splitter: [weights, normalisation and bias parameters] (trainable only)."""
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
    learn, model: EmbeddingNet, epochs: int, lr: float, freeze_epochs: int, lr_mult: float, epoch_log, cbs=()
) -> None:
    """fastai's ``Learner.fine_tune`` on our parameter groups: `freeze_epochs` epochs of one-cycle
    (pct_start 0.99) with every level but the last frozen (learning rate `lr` there), then
    `epochs` epochs of one-cycle (pct_start 0.3, div 5) on the whole model with discriminative
    learning rates from lr/2/lr_mult (earliest level) to lr/2 (embedding layer and head), evenly
    spaced on a log scale. `epoch_log(offset)` makes the epoch logger of a phase; `cbs`: further
    callbacks of the second phase (the switch select_best_epoch's BestEpoch)."""
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
    learn.fit_one_cycle(epochs, lrs, pct_start=0.3, div=5.0, cbs=[epoch_log(freeze_epochs), *cbs])


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
