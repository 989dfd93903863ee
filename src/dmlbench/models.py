"""Backbones: image batch [B, C, H, W] float -> embedding [B, D].

ResNet18 with the CIFAR stem (3x3 conv, stride 1, no max-pool; 1 or 3 input channels),
global average pool -> 512-d, as in DESIGN section 2; and a small CNN for the demo and tests.
The classifier is not here: it is the method's head (dmlbench.heads).
"""

from __future__ import annotations

import torch
from torch import nn

from .errors import ConfigError


def resnet18_cifar(in_channels: int) -> nn.Module:
    from torchvision.models import resnet18

    net = resnet18(weights=None)
    net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    net.fc = nn.Identity()
    net.embedding_dim = 512
    return net


def _conv_bn(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class SmallCNN(nn.Module):
    """Three conv stages (32, 64, embedding_dim channels), global average pool: a few seconds
    an epoch on a laptop CPU for 16x16 digits."""

    def __init__(self, in_channels: int, embedding_dim: int = 64):
        super().__init__()
        self.embedding_dim = embedding_dim
        self.features = nn.Sequential(
            *_conv_bn(in_channels, 32), nn.MaxPool2d(2),
            *_conv_bn(32, 64), nn.MaxPool2d(2),
            *_conv_bn(64, embedding_dim),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def build_backbone(name: str, in_channels: int, embedding_dim: int = 64) -> nn.Module:
    if name == "resnet18":
        return resnet18_cifar(in_channels)
    if name == "small_cnn":
        return SmallCNN(in_channels, embedding_dim)
    raise ConfigError(f"backbone '{name}' is unknown; allowed values: resnet18, small_cnn")


class EmbeddingNet(nn.Module):
    """Backbone + method head. forward() returns the embedding; the loss and the logits are
    the head's (`head.loss`, `head.logits`), so fastai trains backbone and head together.

    Two switches set by the training code (dmlbench.training), neither part of the state dict:

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
