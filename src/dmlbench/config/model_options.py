"""The model's options, declared without torch: backbones, embedding layers, ImageNet weights.

The config check (dmlbench.config) refuses a `model` no job could build with these
declarations before any job, and must not import torch (the workflow parses its config with
it), so they live here; dmlbench.train.models builds what they name, and a test keeps the weight
names equal to torchvision's enums.
"""

from __future__ import annotations

from typing import Any

from dmlbench.errors import ConfigError

BACKBONES = ("resnet18", "resnet34", "resnet50", "small_cnn")
#: What sits between the pooled features and the head (docs/methods.md, "Embedding layer").
EMBEDDINGS = ("none", "linear_bn", "fastai")
#: torchvision's ImageNet weights per backbone (the members of its weight enums, e.g.
#: ResNet50_Weights.IMAGENET1K_V2); `model.pretrained: true` takes the first, torchvision's DEFAULT.
PRETRAINED_WEIGHTS = {
    "resnet18": ("IMAGENET1K_V1",),
    "resnet34": ("IMAGENET1K_V1",),
    "resnet50": ("IMAGENET1K_V2", "IMAGENET1K_V1"),
}
#: ImageNet's per-channel normalisation (fractions of 255), as torchvision's weights expect.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: The model keys' defaults, as in schemas/config.schema.yaml (a test keeps them equal), for a
#: train spec written by hand without them.
DEFAULTS: dict[str, Any] = {
    "backbone": "resnet18",
    "embedding_dim": 64,
    "embedding": "fastai",
    "embedding_size": None,
    "pretrained": False,
    "input_size": None,
}


def model_options(model: dict) -> dict[str, Any]:
    """`model` with the defaults of the keys it lacks."""
    return {**DEFAULTS, **model}


def weights_name(backbone: str, pretrained: bool | str) -> str | None:
    """The torchvision weight enum member `model.pretrained` names for `backbone` (None: from
    scratch); ConfigError for a small CNN or a name torchvision does not have."""
    if pretrained is False or pretrained is None:
        return None
    allowed = PRETRAINED_WEIGHTS.get(backbone)
    if allowed is None:
        raise ConfigError(
            f"model.pretrained needs an ImageNet backbone ({', '.join(PRETRAINED_WEIGHTS)}); "
            f"backbone '{backbone}' has no pretrained weights: set model.pretrained: false"
        )
    if pretrained is True:
        return allowed[0]
    if pretrained not in allowed:
        raise ConfigError(
            f"model.pretrained '{pretrained}' is not a weight set of {backbone}; "
            f"use true (= {allowed[0]}) or one of {', '.join(allowed)}"
        )
    return pretrained


def check_model(model: dict) -> None:
    """Refuse what the schema cannot: pretrained weights of a backbone without them, and an
    embedding size without an embedding layer to have it."""
    m = model_options(model)
    weights_name(m["backbone"], m["pretrained"])
    if m["embedding"] == "none" and m["embedding_size"] is not None:
        raise ConfigError(
            "model.embedding_size needs an embedding layer (model.embedding linear_bn or fastai); "
            "with embedding none the embedding is the pooled features: remove model.embedding_size"
        )
