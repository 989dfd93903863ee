"""Backbones and embedding layers: pretrained ImageNet ResNets loaded by torchvision from the torch
hub cache (offline: files written into a temporary cache), the ImageNet stem and inputs, the
embedding layers between the pooled features and the head."""

from __future__ import annotations

import urllib.error

import numpy as np
import pytest
import torch
from torch import nn

from dmlbench.config import load_schema, model_options, validate
from dmlbench.errors import ConfigError, DmlbenchError
from dmlbench.train.batches import DeviceBatches
from dmlbench.train.models import build_backbone, hub_checkpoint

MINIMAL = {"datasets": {"digits": {"source": "digits"}}, "conditions": [{"dataset": "digits", "n_anomaly": [3]}]}


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A temporary, empty torch hub cache; downloads fail as they do without internet."""
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))

    def offline(url, dst, *args, **kwargs):
        raise urllib.error.URLError(f"no network in this test ({url})")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    yield tmp_path / "hub"
    torch.hub.set_dir(old)


def _weights(name: str, weights: str):
    from torchvision import models

    return models.get_model_weights(name)[weights]


def test_weight_names_are_torchvisions():
    """The torch-free table the config check uses equals torchvision's weight enums; `true` takes
    torchvision's DEFAULT."""
    from torchvision import models

    for name, names in model_options.PRETRAINED_WEIGHTS.items():
        enum = models.get_model_weights(name)
        assert set(names) == {w.name for w in enum}, name
        assert enum[names[0]] is enum.DEFAULT, name
        assert enum.DEFAULT.transforms().mean == list(model_options.IMAGENET_MEAN)
        assert enum.DEFAULT.transforms().std == list(model_options.IMAGENET_STD)


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50"])
def test_pretrained_weights_are_the_file_in_the_hub_cache(hub, name):
    """A weights file written where torchvision's enum expects it (hub/checkpoints/<file of its
    url>) is the one loaded: every tensor of the body equals the file's."""
    from torchvision import models

    weights = model_options.weights_name(name, True)
    path = hub_checkpoint(_weights(name, weights))
    assert path.parent == hub / "checkpoints" and path.name == _weights(name, weights).url.rsplit("/", 1)[1]
    torch.manual_seed(123)
    saved = getattr(models, name)(weights=None).state_dict()  # random: nothing like a fresh init
    path.parent.mkdir(parents=True)
    torch.save(saved, path)
    torch.manual_seed(0)
    backbone = build_backbone(name, 3, pretrained=True, embedding="linear_bn")
    loaded = backbone.body.net.state_dict()
    body_keys = [k for k in saved if not k.startswith("fc.")]
    assert set(loaded) == set(body_keys)
    for key in body_keys:
        assert torch.equal(loaded[key], saved[key]), key
    # the ImageNet stem: 7x7 stride-2 convolution and max-pool, 3 input channels
    net = backbone.body.net
    assert net.conv1.kernel_size == (7, 7) and net.conv1.stride == (2, 2) and isinstance(net.maxpool, nn.MaxPool2d)
    out = backbone.eval()(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 2048 if name == "resnet50" else 512)


def test_from_scratch_keeps_the_cifar_stem():
    net = build_backbone("resnet18", 1).body.net
    assert net.conv1.kernel_size == (3, 3) and net.conv1.stride == (1, 1) and net.conv1.in_channels == 1
    assert isinstance(net.maxpool, nn.Identity)


def test_missing_weights_fail_with_one_message_saying_where_to_put_the_file(hub):
    with pytest.raises(DmlbenchError) as err:
        build_backbone("resnet18", 3, pretrained=True)
    msg = str(err.value)
    path = hub / "checkpoints" / "resnet18-f37072fd.pth"
    assert f"put it at {path}" in msg and "https://download.pytorch.org/models/resnet18-f37072fd.pth" in msg
    assert "ResNet18_Weights.IMAGENET1K_V1" in msg and "\n" not in msg
    assert not path.exists()  # nothing half-written left for a later run to trust


def test_a_damaged_weights_file_is_named(hub):
    path = hub / "checkpoints" / "resnet18-f37072fd.pth"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(DmlbenchError, match=f"{path} is not a readable resnet18 weights file"):
        build_backbone("resnet18", 3, pretrained=True)


def test_embedding_layers():
    """none: the pooled features after the last ReLU (never negative); linear_bn: Linear + BatchNorm1d
    (the papers; negative coordinates); fastai: fastai's vision head without its last Linear."""
    from fastai.vision.learner import create_head

    torch.manual_seed(0)
    x = torch.randn(16, 1, 16, 16)
    none = build_backbone("small_cnn", 1, 8, embedding="none").train()
    assert none.embedding_dim == 8 and (none(x) >= 0).all()
    linear = build_backbone("small_cnn", 1, 8, embedding="linear_bn", embedding_size=5).train()
    layers = list(linear.embedding)
    assert isinstance(layers[-2], nn.Linear) and isinstance(layers[-1], nn.BatchNorm1d)
    out = linear(x)
    assert out.shape == (16, 5) and (out < 0).any()
    # batch norm in training mode: every coordinate has mean 0 and variance 1 over the batch
    torch.testing.assert_close(out.mean(0), torch.zeros(5), atol=1e-5, rtol=0)
    fastai = build_backbone("small_cnn", 1, 8, embedding="fastai")
    reference = create_head(8, 3)
    assert [type(m) for m in fastai.embedding] == [type(m) for m in reference][:-1]
    assert fastai.embedding_dim == 512 and fastai.eval()(x).shape == (16, 512)
    assert build_backbone("small_cnn", 1, 8, embedding="fastai", embedding_size=32).embedding_dim == 32
    with pytest.raises(ConfigError, match="embedding_size needs an embedding layer"):
        build_backbone("small_cnn", 1, 8, embedding="none", embedding_size=4)


def test_imagenet_inputs_repeat_grey_resize_and_normalise():
    """A grey 8x8 image of constant value v becomes 3 channels at 16x16, each (v/255 - mean_c)/std_c."""
    images = torch.full((2, 8, 8, 1), 128, dtype=torch.uint8)
    mean = torch.tensor(model_options.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(model_options.IMAGENET_STD).view(1, 3, 1, 1)
    x, _ = next(
        iter(
            DeviceBatches(
                images, torch.zeros(2, dtype=torch.long), np.arange(2), 2, mean=mean, std=std, channels=3, size=16
            )
        )
    )
    assert x.shape == (2, 3, 16, 16) and x.is_contiguous(memory_format=torch.channels_last)
    expected = (128 / 255 - mean) / std
    torch.testing.assert_close(x, expected.expand(2, 3, 16, 16), atol=1e-6, rtol=1e-6)
    # a real resize: a left/right split image keeps its halves
    split = torch.zeros((1, 8, 8, 1), dtype=torch.uint8)
    split[:, :, 4:] = 255
    x, _ = next(
        iter(
            DeviceBatches(
                split,
                torch.zeros(1, dtype=torch.long),
                np.arange(1),
                1,
                mean=torch.zeros(1, 1, 1, 1),
                std=torch.ones(1, 1, 1, 1),
                size=16,
            )
        )
    )
    assert x.shape == (1, 1, 16, 16) and x[0, 0, :, :7].max() == 0 and x[0, 0, :, 9:].min() == 1


def test_model_defaults_are_the_schemas():
    schema = load_schema()["properties"]["model"]["properties"]
    assert {k: schema[k]["default"] for k in schema} == model_options.DEFAULTS


@pytest.mark.parametrize(
    "model, message",
    [
        ({"backbone": "small_cnn", "pretrained": True}, "backbone 'small_cnn' has no pretrained weights"),
        ({"backbone": "resnet18", "pretrained": "IMAGENET1K_V2"}, "not a weight set of resnet18"),
        (
            {"backbone": "resnet18", "embedding": "none", "embedding_size": 16},
            "embedding_size needs an embedding layer",
        ),
    ],
)
def test_config_refuses_a_model_no_job_could_build(model, message):
    with pytest.raises(ConfigError, match=message):
        validate({**MINIMAL, "model": model})


def test_fine_tuning_keys_are_refused_from_scratch_and_taken_when_pretrained():
    with pytest.raises(ConfigError, match="training.freeze_epochs is read only with model.pretrained"):
        validate({**MINIMAL, "training": {"freeze_epochs": 3}})
    with pytest.raises(ConfigError, match=r"datasets.digits.training.lr_mult is read only"):
        validate({**MINIMAL, "datasets": {"digits": {"source": "digits", "training": {"lr_mult": 10}}}})
    ok = validate(
        {
            **MINIMAL,
            "model": {"backbone": "resnet50", "pretrained": "IMAGENET1K_V1"},
            "training": {"freeze_epochs": 3, "lr_mult": 10},
        }
    )
    assert ok["training"]["freeze_epochs"] == 3


def test_study_config_is_the_studys_setting(hub):
    """config/study.yaml: a pretrained ResNet18 under fastai's head, fine-tuned, on the study's grid
    with the study's annex (A.1 and A.2 on CIFAR-10 at 8 anomaly classes, N = 50 to 500, mixup on
    Conventional and L2-softmax only); its jobs build that model (weights from the hub cache) and feed it
    ImageNet-normalised 3-channel inputs at 64 px, MNIST's grey digits included."""
    from pathlib import Path

    from torchvision.models import resnet18

    from dmlbench.config import load_config, train_spec
    from dmlbench.data.sources import Dataset
    from dmlbench.data.splits import make_case
    from dmlbench.train.batches import JobData, case_inputs
    from dmlbench.train.run import RunTrainer

    config = load_config(Path(__file__).resolve().parents[3] / "config" / "study.yaml")
    assert config["model"]["backbone"] == "resnet18" and config["model"]["pretrained"] is True
    assert config["model"]["embedding"] == "fastai" and config["training"]["freeze_epochs"] == 1
    annex = config["annex"]
    assert annex["sample_size"] == [50, 100, 200, 300, 400, 500] and annex["mixup"] == ["conventional", "l2softmax"]
    assert [(c["dataset"], c["n_anomaly"]) for c in annex["conditions"]] == [("cifar10", [8])]
    assert config["scoring"]["k"] == [1, 5, 10, 20, 30, "all"]  # A.1's K = 5, 10, 20, 30 and all
    assert [(c["dataset"], c["n_anomaly"]) for c in config["conditions"]] == [("cifar10", [1, 5, 8]), ("mnist", [7, 5])]
    (hub / "checkpoints").mkdir(parents=True)
    torch.save(resnet18().state_dict(), hub / "checkpoints" / "resnet18-f37072fd.pth")
    spec = train_spec(config, "mnist", 5, "arcface", 100, 0)
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(10), 3)
    ds = Dataset(
        rng.integers(0, 256, (30, 28, 28, 1), dtype=np.uint8),
        y,
        rng.integers(0, 256, (10, 28, 28, 1), dtype=np.uint8),
        np.arange(10),
        [str(i) for i in range(10)],
    )
    trainer = RunTrainer(ds, spec, torch.device("cpu"))
    assert trainer.weights == "IMAGENET1K_V1" and trainer.fine_tunes and trainer.in_channels == 3
    assert trainer.model.backbone.embedding_dim == 512
    inputs = case_inputs(JobData(ds, torch.device("cpu")), make_case(y, ds.classes, 0, 5), spec["model"])
    assert inputs["channels"] == 3 and inputs["size"] == 64
    assert inputs["mean"].flatten().tolist() == pytest.approx(list(model_options.IMAGENET_MEAN))
