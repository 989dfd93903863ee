"""Training: on-device batches and augmentation, every head parameter trained through the
fastai Learner as the pipeline builds it, mixup for every method, NaN losses refused."""

import json

import numpy as np
import pytest
import torch

from dmlbench.data.sources import Dataset, load_source
from dmlbench.errors import TrainingError
from dmlbench.heads import HEADS, build_head
from dmlbench.train.batches import DeviceBatches
from dmlbench.train.learner import build_learner
from dmlbench.train.models import EmbeddingNet, build_backbone
from dmlbench.train.run import train_job

TRAINING = {"epochs": 1, "batch_size": 16, "lr": 0.01, "weight_decay": 0.01, "val_fraction": 0.1, "crop_padding": 1}


def _batches(n=40, shuffle=True, **kw):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 8, 8, 1), generator=g, dtype=torch.uint8)
    labels = torch.arange(n) % 3
    return DeviceBatches(
        images,
        labels,
        np.arange(n),
        16,
        mean=torch.zeros(1, 1, 1, 1),
        std=torch.ones(1, 1, 1, 1),
        shuffle=shuffle,
        **kw,
    )


def test_batches_cover_every_index_once_and_repeat_with_the_seed():
    dl = _batches(flip=False, crop_padding=0, seed=3)
    assert len(dl) == 3
    seen = torch.cat([y for _, y in dl])
    assert len(seen) == 40
    assert sorted(seen.tolist()) == sorted((torch.arange(40) % 3).tolist())
    first = [x for x, _ in _batches(flip=True, crop_padding=2, seed=3)]
    second = [x for x, _ in _batches(flip=True, crop_padding=2, seed=3)]
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    third = [x for x, _ in _batches(flip=True, crop_padding=2, seed=4)]
    assert not all(torch.equal(a, b) for a, b in zip(first, third))


def test_evaluation_batches_are_in_order_and_unaugmented():
    dl = _batches(shuffle=False, flip=True, crop_padding=2)
    x = torch.cat([x for x, _ in dl])
    np.testing.assert_allclose(x[:, 0].numpy(), dl.images[..., 0].float().numpy() / 255, rtol=1e-6)


def test_crop_is_a_shifted_window_of_the_zero_padded_image():
    dl = _batches(flip=False, crop_padding=2)
    x = torch.arange(64, dtype=torch.float32).view(1, 1, 8, 8) + 1
    gen = torch.Generator().manual_seed(1)
    out = dl._augment(x.repeat(50, 1, 1, 1), gen)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))[0, 0]
    windows = {(dy, dx): padded[dy : dy + 8, dx : dx + 8] for dy in range(5) for dx in range(5)}
    found = set()
    for img in out[:, 0]:
        match = [k for k, w in windows.items() if torch.equal(w, img)]
        assert match, "crop is not a window of the padded image"
        found.add(match[0])
    assert len(found) > 5  # offsets really vary


def test_flip_mirrors_about_half_of_the_batch():
    dl = _batches(flip=True, crop_padding=0)
    x = torch.arange(64, dtype=torch.float32).view(1, 1, 8, 8).repeat(200, 1, 1, 1)
    out = dl._augment(x, torch.Generator().manual_seed(0))
    flipped = torch.tensor([torch.equal(o, x[0].flip(2)) for o in out])
    same = torch.tensor([torch.equal(o, x[0]) for o in out])
    assert torch.all(flipped ^ same)
    assert 60 < int(flipped.sum()) < 140


def _learner(method, mixup=False, seed=0):
    torch.manual_seed(seed)
    backbone = build_backbone("small_cnn", 1, 8)
    head = build_head(method, backbone.embedding_dim, 3)
    model = EmbeddingNet(backbone, head)
    train_dl = _batches(flip=False, crop_padding=0, seed=seed)
    valid_dl = _batches(shuffle=False)
    return build_learner(model, train_dl, valid_dl, TRAINING, {"mixup": mixup, "mixup_alpha": 0.4})


@pytest.mark.parametrize("method", list(HEADS))
@pytest.mark.parametrize("mixup", [False, True])
def test_one_step_through_the_learner_trains_every_head_parameter(method, mixup):
    learn = _learner(method, mixup)
    head = learn.model.head
    before = {n: t.detach().clone() for n, t in list(head.named_parameters()) + list(head.named_buffers())}
    learn.fit(1, lr=0.05)  # 3 optimiser steps through fastai, as the pipeline builds it
    changed = {n: not torch.equal(before[n], t) for n, t in list(head.named_parameters()) + list(head.named_buffers())}
    trained = [n for n, p in head.named_parameters() if p.requires_grad]
    assert trained, f"{method} has no trainable parameters"
    assert all(changed[n] for n in trained), f"{method}: untrained {[n for n in trained if not changed[n]]}"
    if method == "centerloss":
        assert changed["centers"], "CenterLoss centres never moved"
    if method == "sphereface":
        assert int(head.iteration) == 3  # counts the 3 training steps, not the validation pass
    assert np.isfinite(float(learn.recorder.values[-1][0]))


def test_every_head_parameter_is_in_the_optimiser():
    learn = _learner("arcface")
    learn.create_opt()
    in_opt = {id(p) for group in learn.opt.param_lists for p in group}
    assert all(id(p) in in_opt for p in learn.model.parameters() if p.requires_grad)


def _tiny_digits():
    ds = load_source({"source": "digits", "image_size": 8})
    keep_tr, keep_te = np.arange(0, len(ds.y_train), 4), np.arange(0, len(ds.y_test), 3)
    return Dataset(ds.x_train[keep_tr], ds.y_train[keep_tr], ds.x_test[keep_te], ds.y_test[keep_te], ds.classes)


def _spec(**training):
    return {
        "dataset": "digits",
        "source": "digits",
        "class_order": "canonical",
        "flip": False,
        "n_anomaly": 3,
        "method": "conventional",
        "method_params": {"mixup": False, "mixup_alpha": 0.4},
        "n_per_class": "all",
        "seed": 0,
        "cases": 2,
        "model": {"backbone": "small_cnn", "embedding_dim": 8, "embedding": "none"},
        "training": {**TRAINING, **training},
    }


def test_train_job_writes_the_contracts_and_repeats_on_the_cpu(tmp_path):
    ds = _tiny_digits()
    train_job(ds, _spec(), tmp_path / "a", device="cpu", threads=1)
    train_job(ds, _spec(), tmp_path / "b", device="cpu", threads=1)
    with np.load(tmp_path / "a" / "embeddings.npz") as a, np.load(tmp_path / "b" / "embeddings.npz") as b:
        assert set(a.files) == {"test_labels", "classes"} | {
            f"case{k}_{n}"
            for k in (0, 1)
            for n in ("reference", "reference_index", "reference_labels", "test", "test_logits", "normal_classes")
        }
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key])
        assert a["case0_test"].dtype == np.float16 and a["case0_test"].shape == (len(ds.y_test), 8)
        assert a["case1_test_logits"].shape == (len(ds.y_test), 7)
        assert a["case1_normal_classes"].tolist() == [0, 4, 5, 6, 7, 8, 9]
        ref_labels = ds.y_train[a["case0_reference_index"]]
        np.testing.assert_array_equal(a["case0_reference_labels"], ref_labels)
        assert set(ref_labels) == set(range(3, 10))
    run = json.loads((tmp_path / "a" / "run.json").read_text())
    assert run["cases"][1]["anomaly_classes"] == [1, 2, 3] and run["spec"]["method"] == "conventional"
    assert {"torch", "fastai", "dmlbench"} <= set(run["versions"])
    log = (tmp_path / "a" / "train_log.csv").read_text().splitlines()
    assert log[0] == "case,epoch,train_loss,valid_loss,valid_accuracy,seconds" and len(log) == 3


def test_nan_loss_is_refused_naming_method_case_epoch_and_writes_nothing(tmp_path):
    with pytest.raises(TrainingError, match=r"method 'conventional', case 0, epoch 0: the loss became (NaN|infinite)"):
        train_job(_tiny_digits(), _spec(lr=1e12), tmp_path / "run", device="cpu", threads=1)
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


@pytest.mark.parametrize("method", list(HEADS))
def test_every_method_learns_the_digits_well_above_chance(tmp_path, method):
    ds = load_source({"source": "digits", "image_size": 12})
    spec = {
        **_spec(epochs=4, batch_size=64, lr=0.005),
        "method": method,
        "cases": 1,
        "method_params": {"mixup": False, "mixup_alpha": 0.4},
    }
    spec["model"]["embedding_dim"] = 16
    train_job(ds, spec, tmp_path, device="cpu", threads=2)
    with np.load(tmp_path / "embeddings.npz") as npz:
        normals = npz["case0_normal_classes"]
        pred = normals[npz["case0_test_logits"].argmax(1)]
    normal = np.isin(ds.y_test, normals)
    accuracy = (pred[normal] == ds.y_test[normal]).mean()
    assert accuracy > 0.6, f"{method}: closed-set accuracy {accuracy:.3f} (chance {1 / len(normals):.3f})"


# --------------------------------------------------------------------------- faithful to the papers


def _steps(ds, spec) -> list[int]:
    """Optimiser steps of each case of a job, counted by hand: epochs x full batches (the last
    partial batch is dropped when a case has more images than a batch)."""
    from dmlbench.data.splits import run_cases

    bs = spec["training"]["batch_size"]
    return [spec["training"]["epochs"] * (len(c.train_idx) // bs) for c in run_cases(ds, spec)]


@pytest.mark.parametrize(
    "params, expected",
    [
        ({}, lambda steps: 5.0),  # run schedule: λ_min from 6 % of the run on
        ({"lambda_schedule": "reference"}, lambda steps: max(5.0, 1000 / (1 + 0.12 * steps))),
    ],
)
def test_sphereface_job_records_lambda_at_the_last_step(tmp_path, params, expected):
    """A short SphereFace job (2 epochs of some 12 steps): run.json records each case's λ after
    training. The run schedule has reached λ_min = 5 (the reference schedule written for 28,000
    iterations would still be at 1000 / (1 + 0.12 * 24) = 258), and the runs table carries it."""
    from dmlbench.aggregate.tables import runs_table

    ds = _tiny_digits()
    spec = {**_spec(epochs=2), "method": "sphereface", "method_params": {"mixup": False, **params}}
    out = tmp_path / "digits" / "a3" / "sphereface" / "nall" / "s0"
    train_job(ds, spec, out, device="cpu", threads=1)
    run = json.loads((out / "run.json").read_text())
    steps = _steps(ds, spec)
    assert [c["head_state"]["steps"] for c in run["cases"]] == steps
    for case, n in zip(run["cases"], steps):
        assert case["head_state"]["run_steps"] == n
        assert case["head_state"]["lambda"] == pytest.approx(expected(n), rel=1e-6)
    assert runs_table([out / "run.json"])["final_lambda"].tolist() == pytest.approx([max(expected(n) for n in steps)])


def test_methods_table_shows_the_final_lambda():
    import pandas as pd

    from dmlbench.report.setup import with_final_lambda

    methods = pd.DataFrame({"method": ["conventional", "sphereface"], "parameters": ["—", "margin=4"]})
    runs = pd.DataFrame(
        {"method": ["conventional", "sphereface", "sphereface"], "final_lambda": [float("nan"), 5.0, 8.74]}
    )
    assert with_final_lambda(methods, runs)["lambda_final"].tolist() == ["—", "5–8.74"]
    assert with_final_lambda(methods, runs.iloc[[0, 1]])["lambda_final"].tolist() == ["—", "5"]
    assert "lambda_final" not in with_final_lambda(methods, runs.iloc[[0]])


def test_normalisation_statistics_come_from_the_normal_classes_only():
    """Anomaly class 0 is white (255), the normal classes 1 and 2 are 40 and 80: the case's
    inputs are normalised with the normal classes' mean 60 / 255 and standard deviation 20 / 255
    (ddof 1 over their pixels), as if the anomaly class did not exist."""
    from dmlbench.data.splits import make_case
    from dmlbench.train.batches import JobData, case_loaders

    y = np.repeat([0, 1, 2], 10)
    x = np.zeros((30, 4, 4, 1), np.uint8)
    x[y == 0], x[y == 1], x[y == 2] = 255, 40, 80
    ds = Dataset(x, y, x, y, ["a", "b", "c"])
    case = make_case(y, ds.classes, 0, 1, val_fraction=0.0)
    spec = {**_spec(batch_size=64), "n_anomaly": 1, "cases": 1}  # one validation batch: every normal image
    _, train_dl, valid_dl = case_loaders(JobData(ds, torch.device("cpu")), case, spec)
    pixels = np.r_[np.full(160, 40.0), np.full(160, 80.0)]
    assert float(train_dl.mean) == pytest.approx(60 / 255)
    assert float(train_dl.std) == pytest.approx(pixels.std(ddof=1) / 255)
    batch = torch.cat([xb for xb, _ in valid_dl])
    assert batch.mean().item() == pytest.approx(0.0, abs=1e-5)  # the normal images are centred


def test_fine_tuning_freezes_the_pretrained_body_then_trains_it_with_discriminative_rates(tmp_path):
    """fastai's fine_tune on a ResNet18 whose 'ImageNet' weights are a file in a temporary hub
    cache: during the frozen epoch the body's convolutions stay as loaded while its batch norms,
    the embedding layer and the head train; then every level trains, at lr/2/100, lr/2/10 and lr/2
    (earliest layers to head), and SphereFace's λ spans both phases."""
    from torchvision.models import resnet18

    from dmlbench.data.splits import run_cases
    from dmlbench.train.learner import fine_tune
    from dmlbench.train.run import RunTrainer

    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    try:
        (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
        torch.save(resnet18().state_dict(), tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth")
        ds = _tiny_digits()
        spec = {
            **_spec(epochs=1, freeze_epochs=1, lr=0.01),
            "method": "sphereface",
            "cases": 1,
            "method_params": {},
            "model": {"backbone": "resnet18", "pretrained": True, "input_size": 16, "embedding": "linear_bn"},
        }
        trainer = RunTrainer(ds, spec, torch.device("cpu"))
        case = run_cases(ds, spec)[0]
        learn, _ = trainer.learner(case)
        model = trainer.model
        loaded = {n: p.detach().clone() for n, p in model.named_parameters()}
        seen = {}

        from fastai.callback.core import Callback

        class Watch(Callback):
            def __init__(self, offset):
                self.offset = offset

            def after_fit(self):
                seen[self.offset] = (
                    {n: not torch.equal(loaded[n], p) for n, p in model.named_parameters()},
                    [h["lr"] for h in learn.opt.hypers],
                    [g.level for g in learn.splitter.groups],
                )

        with learn.no_bar(), learn.no_logging():
            fine_tune(learn, model, 1, 0.01, 1, 100, Watch)
    finally:
        torch.hub.set_dir(old)
    changed, _, _ = seen[0]
    assert not changed["backbone.body.net.conv1.weight"] and not changed["backbone.body.net.layer4.1.conv2.weight"]
    assert changed["backbone.body.net.bn1.weight"] and changed["backbone.embedding.2.weight"]
    assert changed["head.weight"]
    changed, lrs, levels = seen[1]
    assert changed["backbone.body.net.conv1.weight"] and changed["backbone.body.net.layer4.1.conv2.weight"]
    top = lrs[levels.index(2)]
    for lr, level in zip(lrs, levels):
        assert lr == pytest.approx(top * (1 / 100, 1 / 10, 1)[level], rel=1e-9)
    steps = len(learn.dls.train) * 2
    assert int(model.head.iteration) == steps and model.head.run_steps == steps
    assert float(model.head.current_lambda()) == 5.0


def test_a_spec_without_freeze_epochs_counts_the_frozen_epoch_it_trains(tmp_path):
    """A run spec written by hand without `freeze_epochs` or `lr_mult` fine-tunes with the config
    schema's defaults (1 frozen epoch, lr_mult 100), and SphereFace's run length counts that
    frozen epoch (before: the length counted 0 frozen epochs while the training ran 1)."""
    from torchvision.models import resnet18

    from dmlbench.config import training_defaults
    from dmlbench.data.splits import run_cases
    from dmlbench.train.run import RunTrainer

    assert (training_defaults()["freeze_epochs"], training_defaults()["lr_mult"]) == (1, 100)
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    try:
        (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
        torch.save(resnet18().state_dict(), tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth")
        ds = _tiny_digits()
        spec = {
            **_spec(epochs=2, lr=0.01),  # no freeze_epochs, no lr_mult
            "method": "sphereface",
            "cases": 1,
            "method_params": {},
            "model": {"backbone": "resnet18", "pretrained": True, "input_size": 16, "embedding": "linear_bn"},
        }
        trainer = RunTrainer(ds, spec, torch.device("cpu"))
        learn, _ = trainer.learner(run_cases(ds, spec)[0])
    finally:
        torch.hub.set_dir(old)
    assert trainer.model.head.run_steps == (2 + 1) * len(learn.dls.train)
    assert trainer.fine_tune_settings() == (1, 100.0)


def test_the_job_log_has_one_line_per_epoch_with_epoch_n_of_n_and_the_time_left(tmp_path, caplog):
    """Issue 28: each epoch of each run and case is one line of the train job's log (its console
    output), naming the method, the case, epoch n/N, the losses and the time left in the run."""
    import logging
    import re

    ds = _tiny_digits()
    with caplog.at_level(logging.INFO, logger="dmlbench"):
        train_job(ds, _spec(epochs=2), tmp_path / "a", device="cpu", threads=1)
    lines = [r.getMessage() for r in caplog.records if "epoch " in r.getMessage()]
    pattern = (
        r"conventional case (\d) \((\d)/2\): epoch (\d)/2, loss \d+\.\d{4}, val loss \d+\.\d{4}, "
        r"val acc [01]\.\d{3}, \d+\.\ds; ~\S+ left in this run"
    )
    got = [re.fullmatch(pattern, line) for line in lines]
    assert all(got) and len(got) == 4, lines
    assert [(m[2], m[3]) for m in got] == [("1", "1"), ("1", "2"), ("2", "1"), ("2", "2")]
    assert lines[-1].endswith("~0s left in this run")
