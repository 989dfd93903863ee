"""Backbones: image batch [B, C, H, W] float -> embedding [B, D].

A backbone is a body (image -> feature map [B, F, h, w]) and an embedding layer (feature map
-> embedding [B, D]), as docs/methods.md describes them:

- bodies: torchvision's ResNet18/34/50, from scratch with the CIFAR stem (3x3 conv, stride 1,
  no max-pool; 1 or 3 input channels), or pretrained on ImageNet with their own stem and
  torchvision's weights (downloaded into the torch hub cache on first use); a small CNN for
  the demo and tests;
- embedding layers (`model.embedding`): none (global average pool: the pooled features, after
  the body's last ReLU), linear_bn (average pool, Linear, BatchNorm1d: the papers'), fastai
  (the head of fastai's vision_learner without its last Linear: the study's).

The classifier is not here: it is the method's head (dmlbench.heads).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import torch
from fastai.torch_core import apply_init
from fastai.vision.learner import create_head
from torch import nn
from torchvision import models
from torchvision.models import resnet18

from dmlbench.config.model_options import BACKBONES, EMBEDDINGS, weights_name
from dmlbench.errors import ConfigError, DmlbenchError

RESNETS = ("resnet18", "resnet34", "resnet50")


def resnet18_cifar(in_channels: int) -> nn.Module:
    """torchvision's ResNet18 with the CIFAR stem and no classifier: image -> pooled 512-d."""
    net = resnet18(weights=None)
    net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    net.fc = nn.Identity()
    net.embedding_dim = 512
    return net


def hub_checkpoint(weights) -> Path:
    """Where torchvision looks for (and downloads) the file of a weight enum member: the torch
    hub cache's checkpoints folder ($TORCH_HOME/hub, default ~/.cache/torch/hub)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name


def imagenet_resnet(name: str, weights: str) -> nn.Module:
    """torchvision's `name` with its ImageNet weights `weights` (a member of its weight enum,
    e.g. IMAGENET1K_V1), through torchvision's own loading: the file in the torch hub cache, or
    downloaded there first. DmlbenchError naming the file and where to put it when it is
    neither there nor downloadable, or when the cached file cannot be read."""
    enum = models.get_model_weights(name)[weights]
    path = hub_checkpoint(enum)
    try:
        return getattr(models, name)(weights=enum)
    except Exception as exc:
        if path.is_file():  # there, but torch.load or load_state_dict refused it
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            raise DmlbenchError(
                f"model.pretrained: {path} is not a readable {name} weights file ({type(exc).__name__}: {first}); "
                f"delete it so it is downloaded again, or replace it with {enum.url}"
            ) from None
        if isinstance(exc, OSError):  # urllib's URLError, timeouts, an unwritable cache
            raise DmlbenchError(
                f"model.pretrained: the ImageNet weights {type(enum).__name__}.{weights} of {name} are not in the "
                f"torch hub cache and could not be downloaded from {enum.url} ({type(exc).__name__}: {exc}); "
                f"download that file where there is internet access and put it at {path} (the cache is "
                f"$TORCH_HOME/hub, default ~/.cache/torch/hub), then rerun"
            ) from None
        raise


class ResNetBody(nn.Module):
    """A torchvision ResNet up to its last stage: image [B, C, H, W] -> feature map [B, F, h, w]
    (F = 512 for ResNet18/34, 2048 for ResNet50). The ResNet stays whole as ``net`` (its
    average pool and classifier unused), so its state dict keeps torchvision's names."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.features = net.fc.in_features
        net.avgpool, net.fc = nn.Identity(), nn.Identity()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.net
        x = n.maxpool(n.relu(n.bn1(n.conv1(x))))
        return n.layer4(n.layer3(n.layer2(n.layer1(x))))

    def groups(self) -> list[list[nn.Parameter]]:
        """fastai's split of a ResNet for discriminative learning rates (``_resnet_split``): the
        stem with stages 1-2, then stages 3-4."""
        n = self.net
        first = [n.conv1, n.bn1, n.layer1, n.layer2]
        return [[p for m in first for p in m.parameters()], [p for m in (n.layer3, n.layer4) for p in m.parameters()]]


def resnet_body(name: str, in_channels: int, pretrained: bool | str = False) -> ResNetBody:
    """ResNet `name` from scratch with the CIFAR stem, or with its ImageNet weights and stem
    (`pretrained`: true or a weight name; 3 input channels: grey images are repeated)."""
    weights = weights_name(name, pretrained)
    if weights is not None:
        if in_channels != 3:
            raise ConfigError(f"a pretrained {name} takes 3 input channels, got {in_channels}")
        return ResNetBody(imagenet_resnet(name, weights))

    net = getattr(models, name)(weights=None)
    net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    return ResNetBody(net)


def _conv_bn(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class SmallCNN(nn.Module):
    """Three conv stages (32, 64, `width` channels): a few seconds an epoch on a laptop CPU for
    16x16 digits. Image -> feature map [B, width, H/4, W/4]."""

    def __init__(self, in_channels: int, width: int = 64):
        super().__init__()
        self.features = width
        self.layers = nn.Sequential(
            *_conv_bn(in_channels, 32),
            nn.MaxPool2d(2),
            *_conv_bn(32, 64),
            nn.MaxPool2d(2),
            *_conv_bn(64, width),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)

    def groups(self) -> list[list[nn.Parameter]]:
        return [list(self.parameters())]


def embedding_layer(kind: str, features: int, size: int | None = None) -> tuple[nn.Module, int]:
    """The embedding layer `kind` on a feature map of `features` channels, and its output width.

    none: average pool (width `features`); linear_bn: average pool, Linear(features, size), BatchNorm1d
    (width `size`, default `features`); fastai: fastai's create_head(features, ...) without its
    last Linear — concat pool (average and max), BN, dropout 0.25, Linear(2·features, size) without
    bias, ReLU, BN, dropout 0.5 — with its Kaiming-normal initialisation (width `size`, default 512)."""
    pool = [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    if kind == "none":
        if size is not None:
            raise ConfigError("model.embedding_size needs an embedding layer (model.embedding linear_bn or fastai)")
        return nn.Sequential(*pool), features
    if kind == "linear_bn":
        size = size or features
        return nn.Sequential(*pool, nn.Linear(features, size), nn.BatchNorm1d(size)), size
    if kind == "fastai":
        size = size or 512
        head = create_head(features, 1, lin_ftrs=[size])[:-1]  # its classifier is the method's head
        apply_init(head, nn.init.kaiming_normal_)  # as fastai's vision_learner does (add_head)
        return head, size
    raise ConfigError(f"model.embedding '{kind}' is unknown; allowed values: {', '.join(EMBEDDINGS)}")


class Backbone(nn.Module):
    """Image [B, C, H, W] -> embedding [B, embedding_dim]: ``body`` (feature map), then
    ``embedding`` (the embedding layer)."""

    def __init__(self, body: nn.Module, embedding: nn.Module, embedding_dim: int):
        super().__init__()
        self.body, self.embedding, self.embedding_dim = body, embedding, embedding_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedding(self.body(x))

    def groups(self) -> list[list[nn.Parameter]]:
        """Parameter groups for fine-tuning, pretrained first: the body's, then the embedding layer's."""
        return [*self.body.groups(), list(self.embedding.parameters())]


def build_backbone(
    name: str,
    in_channels: int,
    embedding_dim: int = 64,
    *,
    embedding: str = "none",
    embedding_size: int | None = None,
    pretrained: bool | str = False,
) -> Backbone:
    """Backbone `name` (model.backbone) with the embedding layer `embedding` (model.embedding).
    `embedding_dim` is the small CNN's last width; `embedding_size` the embedding layer's width;
    `pretrained` (model.pretrained) loads ImageNet weights into a ResNet."""
    if name in RESNETS:
        body = resnet_body(name, in_channels, pretrained)
    elif name == "small_cnn":
        weights_name(name, pretrained)  # refuses pretrained weights for it
        body = SmallCNN(in_channels, embedding_dim)
    else:
        raise ConfigError(f"backbone '{name}' is unknown; allowed values: {', '.join(BACKBONES)}")
    layer, dim = embedding_layer(embedding, body.features, embedding_size)
    return Backbone(body, layer, dim)


class EmbeddingNet(nn.Module):
    """Backbone + method head. forward() returns the embedding; the loss and the logits are
    the head's (`head.loss`, `head.logits`), so fastai trains backbone and head together.

    Two switches set by the training code (dmlbench.train.run), neither part of the state dict:

    ``autocast_dtype``
        ``torch.bfloat16`` runs the backbone under autocast (bf16 matmuls and convolutions);
        ``None`` (default) runs it in float32. The heads always compute in float32.
    ``train_forward``
        a callable used instead of the backbone in training mode: the torch.compile'd
        backbone. Evaluation (validation, embeddings) always runs the eager backbone, so
        eval-mode batch norm and the uneven last evaluation batch never trigger a recompile.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.autocast_dtype: torch.dtype | None = None
        self.set_train_forward(None)

    def set_train_forward(self, fn) -> None:
        # object.__setattr__: a compiled module assigned normally would become a submodule and
        # add its (shared) parameters to the state dict a second time under _orig_mod.
        object.__setattr__(self, "train_forward", fn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        run = self.train_forward if self.training and self.train_forward is not None else self.backbone
        if self.autocast_dtype is None:
            return run(x)
        with torch.autocast(device_type=x.device.type, dtype=self.autocast_dtype):
            return run(x)
