"""The original implementation's train-stage switches (docs/original.md), each shown to act:
untrained_weights, untrained_centres, validate_on_test and select_best_epoch."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from dmlbench.data.sources import Dataset, load_source
from dmlbench.data.splits import run_cases
from dmlbench.heads import build_head
from dmlbench.train.batches import DeviceBatches, JobData, case_loaders
from dmlbench.train.fastai_parts import BestEpoch
from dmlbench.train.learner import build_learner
from dmlbench.train.models import EmbeddingNet, build_backbone
from dmlbench.train.run import RunTrainer, train_job

TRAINING = {"epochs": 1, "batch_size": 16, "lr": 0.01, "weight_decay": 0.01, "val_fraction": 0.1, "crop_padding": 1}


def _batches(n=48, shuffle=True, seed=0):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 8, 8, 1), generator=g, dtype=torch.uint8)
    return DeviceBatches(
        images,
        torch.arange(n) % 3,
        np.arange(n),
        16,
        mean=torch.zeros(1, 1, 1, 1),
        std=torch.ones(1, 1, 1, 1),
        shuffle=shuffle,
        flip=False,
        crop_padding=0,
        seed=seed,
    )


def _learner(method, switches):
    torch.manual_seed(0)
    backbone = build_backbone("small_cnn", 1, 8)
    model = EmbeddingNet(backbone, build_head(method, backbone.embedding_dim, 3, switches=switches))
    return build_learner(model, _batches(), _batches(shuffle=False), TRAINING, {"mixup": False})


def _snapshot(module):
    return {n: t.detach().clone() for n, t in list(module.named_parameters()) + list(module.named_buffers())}


@pytest.mark.parametrize("method", ["arcface", "cosface", "sphereface"])
def test_untrained_weights_keep_the_margin_heads_class_weights_bit_for_bit_while_the_body_trains(method):
    learn = _learner(method, {"untrained_weights": True})
    head, body = learn.model.head, learn.model.backbone
    w0, b0 = head.weight.detach().clone(), _snapshot(body)
    learn.fit(1, lr=0.05)  # 3 optimiser steps through fastai, as the pipeline builds it
    assert torch.equal(head.weight, w0), "the class weights moved"
    assert any(not torch.equal(b0[n], p) for n, p in body.named_parameters()), "the body did not train"
    learn.create_opt()
    assert all(p is not head.weight for group in learn.opt.param_lists for p in group)


@pytest.mark.parametrize("method", ["arcface", "cosface", "sphereface"])
def test_without_the_switch_the_class_weights_train(method):
    learn = _learner(method, {})
    w0 = learn.model.head.weight.detach().clone()
    learn.fit(1, lr=0.05)
    assert not torch.equal(learn.model.head.weight, w0)


def test_untrained_centres_are_random_and_never_move():
    learn = _learner("centerloss", {"untrained_centres": True})
    head = learn.model.head
    c0 = head.centers.clone()
    # drawn from N(0, 1) (the original's torch.randn), not dmlbench's zeros
    assert c0.abs().sum() > 0 and 0.5 < float(c0.std()) < 1.5
    learn.fit(2, lr=0.05)
    assert torch.equal(head.centers, c0), "the centres moved"
    # the centre term still acts: the loss is the softmax term plus weight/2 |x - c_y|^2
    x, y = torch.randn(4, head.in_features), torch.tensor([0, 1, 2, 0])
    expected = torch.nn.functional.cross_entropy(head.logits(x), y, reduction="none") + 0.5 * head.lam * (
        (x - c0[y]) ** 2
    ).sum(1)
    torch.testing.assert_close(head.loss(x, y, reduction="none", update=False), expected)


def test_without_the_switch_the_centres_move_from_zero():
    learn = _learner("centerloss", {})
    assert torch.equal(learn.model.head.centers, torch.zeros_like(learn.model.head.centers))
    learn.fit(1, lr=0.05)
    assert learn.model.head.centers.abs().sum() > 0


# --------------------------------------------------------------------------- validate_on_test


def _tiny_digits():
    ds = load_source({"source": "digits", "image_size": 8})
    keep_tr, keep_te = np.arange(0, len(ds.y_train), 4), np.arange(0, len(ds.y_test), 2)
    return Dataset(ds.x_train[keep_tr], ds.y_train[keep_tr], ds.x_test[keep_te], ds.y_test[keep_te], ds.classes)


def _spec(method_params=None, n_per_class=20, **training):
    return {
        "dataset": "digits",
        "source": "digits",
        "class_order": "canonical",
        "flip": False,
        "n_anomaly": 3,
        "method": "conventional",
        "method_params": {"mixup": False, "mixup_alpha": 0.4, **(method_params or {})},
        "n_per_class": n_per_class,
        "seed": 0,
        "cases": 2,
        "model": {"backbone": "small_cnn", "embedding_dim": 8, "embedding": "none"},
        "training": {**TRAINING, **training},
    }


def test_validate_on_test_validates_on_n_per_class_test_images_of_each_normal_class():
    ds = _tiny_digits()
    plain = run_cases(ds, _spec())
    cases = run_cases(ds, _spec({"validate_on_test": True}))
    for case, base in zip(cases, plain):
        assert case.val_split == "test" and base.val_split == "train"
        # the test split's images of the normal classes, n_per_class (20) of each
        labels = ds.y_test[case.val_idx]
        assert set(labels) == set(case.normal_classes)
        assert np.bincount(labels, minlength=10)[list(case.normal_classes)].tolist() == [20] * 7
        # nothing carved out of the training images: all 20 per class train
        assert len(case.train_idx) == 7 * 20 and len(base.train_idx) == 7 * 18
        np.testing.assert_array_equal(np.sort(np.concatenate([base.train_idx, base.val_idx])), case.train_idx)
    # the validation batches are exactly those test images, normalised as the training ones
    data = JobData(ds, torch.device("cpu"))
    spec = _spec({"validate_on_test": True})
    _, _, valid_dl = case_loaders(data, cases[1], spec)
    x = torch.cat([x for x, _ in valid_dl])
    y = torch.cat([y for _, y in valid_dl])
    raw = torch.from_numpy(ds.x_test[cases[1].val_idx]).permute(0, 3, 1, 2).float() / 255
    mean, std = valid_dl.mean.reshape(1, -1, 1, 1), valid_dl.std.reshape(1, -1, 1, 1)
    torch.testing.assert_close(x, (raw - mean) / std)
    normals = list(cases[1].normal_classes)
    assert y.tolist() == [normals.index(c) for c in ds.y_test[cases[1].val_idx]]


def test_validate_on_test_with_all_images_takes_the_whole_test_split_of_the_normal_classes():
    ds = _tiny_digits()
    (case, _) = run_cases(ds, _spec({"validate_on_test": True}, n_per_class="all"))
    np.testing.assert_array_equal(case.val_idx, np.flatnonzero(np.isin(ds.y_test, case.normal_classes)))


# --------------------------------------------------------------------------- select_best_epoch


class _FakeRecorder:
    def __init__(self):
        self.values = []


class _FakeLearn:
    def __init__(self, model):
        self.model, self.recorder = model, _FakeRecorder()


def test_best_epoch_restores_the_state_of_the_epoch_of_lowest_validation_loss():
    model = torch.nn.BatchNorm1d(2)  # a parameter and integer buffers
    cb = BestEpoch(epoch_offset=1)
    cb.learn = _FakeLearn(model)
    cb.before_fit()
    states = []
    for epoch, loss in enumerate([3.0, 1.0, 2.0, float("nan")]):
        with torch.no_grad():
            model.weight.fill_(epoch)
            model.num_batches_tracked.fill_(10 * epoch)
        states.append(_snapshot(model))
        cb.epoch = epoch
        cb.learn.recorder.values.append([torch.tensor(0.5), torch.tensor(loss), torch.tensor(0.0)])
        cb.after_epoch()
    cb.after_fit()
    assert cb.kept_epoch == 1 + 1
    for name, value in _snapshot(model).items():
        assert torch.equal(value, states[1][name]), name


def test_select_best_epoch_on_test_images_keeps_the_epoch_best_on_the_test_images(tmp_path):
    """Both switches, as the original ran: the kept model is the one whose validation loss on
    the test images is the lowest of the run's epochs (train_log.csv), not the last epoch's."""
    ds = _tiny_digits()
    spec = _spec({"validate_on_test": True, "select_best_epoch": True}, n_per_class=3, epochs=8, lr=0.05)
    trainer = RunTrainer(ds, spec, torch.device("cpu"))
    cases = run_cases(ds, spec)
    arrays, rows = trainer.train_case(cases[0])
    log = pd.DataFrame(rows)
    best = int(log.valid_loss.idxmin())
    assert trainer.kept_epoch == int(log.epoch[best])
    assert best != len(log) - 1, "the last epoch is the best: this setting cannot tell kept from last"
    # the model as kept: its loss on the test images is the best epoch's
    _, _, valid_dl = case_loaders(trainer.data, cases[0], spec, trainer.inputs)
    model = trainer.model.eval()
    with torch.no_grad():
        losses = [model.head.loss(model(x).float(), y, reduction="sum", update=False) for x, y in valid_dl]
    kept_loss = float(sum(losses)) / len(cases[0].val_idx)
    assert kept_loss == pytest.approx(log.valid_loss[best], rel=1e-4)
    assert kept_loss != pytest.approx(log.valid_loss.iloc[-1], rel=1e-4)


def test_run_json_records_the_switches_the_val_split_and_the_kept_epoch(tmp_path):
    ds = _tiny_digits()
    spec = _spec({"validate_on_test": True, "select_best_epoch": True}, n_per_class=10, epochs=2)
    train_job(ds, spec, tmp_path, device="cpu", threads=1)
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["switches"] == ["validate_on_test", "select_best_epoch"]
    assert [c["val_split"] for c in run["cases"]] == ["test", "test"]
    assert all(c["kept_epoch"] in (0, 1) and c["n_val"] == 70 for c in run["cases"])
    train_job(ds, _spec(n_per_class=10, epochs=1), tmp_path / "plain", device="cpu", threads=1)
    plain = json.loads((tmp_path / "plain" / "run.json").read_text())
    assert plain["switches"] == [] and "kept_epoch" not in plain["cases"][0]
