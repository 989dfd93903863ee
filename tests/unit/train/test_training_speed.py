"""The fast training path, checked on the CPU: on-device augmentation (crop padding, mirror,
normalisation), weights re-initialised per case exactly as a fresh build, torch.compile with
its eager fallback, precision resolution and bf16 autocast with float32 head losses, no host
synchronisation per step or at an epoch's end (the epoch log reads an epoch late), and the
optimiser that replaces fastai's."""

import json
import logging

import numpy as np
import pytest
import torch
from fastai.callback.core import Callback

from dmlbench.data.sources import Dataset, load_source
from dmlbench.data.splits import run_cases
from dmlbench.errors import ConfigError, TrainingError
from dmlbench.heads import HEADS, build_head
from dmlbench.train.batches import DeviceBatches
from dmlbench.train.compiled import COMPILE_MIN_IMAGES, resolve_compile
from dmlbench.train.device import resolve_precision
from dmlbench.train.fastai_parts import EpochLog
from dmlbench.train.learner import HeadLoss, build_learner, optimizer_func
from dmlbench.train.models import EmbeddingNet, build_backbone
from dmlbench.train.run import RunTrainer, train_job

CPU = torch.device("cpu")
TRAINING = {"epochs": 1, "batch_size": 16, "lr": 0.01, "weight_decay": 0.01, "val_fraction": 0.1, "crop_padding": 1}


# --------------------------------------------------------------------------- augmentation
def _loader(images, labels=None, **kw):
    n, _, _, c = images.shape
    labels = torch.zeros(n, dtype=torch.long) if labels is None else labels
    kw.setdefault("mean", torch.zeros(1, c, 1, 1))
    kw.setdefault("std", torch.ones(1, c, 1, 1))
    return DeviceBatches(images, labels, np.arange(n), kw.pop("batch_size", n), **kw)


def test_crop_pads_with_black_pixels_before_normalisation():
    # White images: whatever is not 1.0 after cropping came from the padding, which must be
    # black (pixel 0) — i.e. -mean/std after normalisation, not the mean colour.
    images = torch.full((64, 6, 6, 3), 255, dtype=torch.uint8)
    mean, std = torch.tensor([0.2, 0.4, 0.6]).view(1, 3, 1, 1), torch.tensor([0.5, 0.25, 0.2]).view(1, 3, 1, 1)
    dl = _loader(images, shuffle=True, crop_padding=2, seed=1, mean=mean, std=std)
    ((x, _),) = list(dl)
    white, black = (1 - mean) / std, (0 - mean) / std
    is_white = torch.isclose(x, white.expand_as(x), atol=1e-5)
    is_black = torch.isclose(x, black.expand_as(x), atol=1e-5)
    assert torch.all(is_white | is_black)
    shifts = set()
    for img in is_black[:, 0]:
        rows, cols = img.all(dim=1), img.all(dim=0)
        # the black part is whole border rows and columns: |dy - p| rows at the top or bottom,
        # |dx - p| columns at the left or right, nothing inside
        n_rows, n_cols = int(rows.sum()), int(cols.sum())
        assert n_rows <= 2 and n_cols <= 2
        assert torch.equal(img, rows[:, None] | cols[None, :])
        if n_rows:
            assert bool(rows[:n_rows].all()) or bool(rows[-n_rows:].all())
        shifts.add((n_rows, n_cols))
    assert len(shifts) > 4  # the offsets vary


def test_crop_and_flip_give_windows_or_mirrored_windows_of_the_padded_image():
    x = (torch.arange(64, dtype=torch.uint8).view(1, 8, 8, 1) + 1).repeat(300, 1, 1, 1)
    dl = _loader(x, shuffle=True, crop_padding=2, flip=True)
    out = dl._augment_nhwc(x, torch.Generator().manual_seed(0))[..., 0]
    assert out.dtype == torch.uint8  # augmented on the raw pixels
    padded = torch.nn.functional.pad(x[0, :, :, 0], (2, 2, 2, 2))
    windows = {(dy, dx): padded[dy : dy + 8, dx : dx + 8] for dy in range(5) for dx in range(5)}
    plain = mirrored = 0
    for img in out:
        hit = [k for k, w in windows.items() if torch.equal(w, img)]
        hit_mirror = [k for k, w in windows.items() if torch.equal(w.flip(1), img)]
        assert hit or hit_mirror, "neither a window nor a mirrored window of the padded image"
        plain += bool(hit)
        mirrored += bool(hit_mirror)
    assert 90 < mirrored < 210 and plain + mirrored == 300


def test_flip_alone_is_an_exact_mirror():
    x = torch.randint(0, 256, (200, 5, 7, 3), generator=torch.Generator().manual_seed(2), dtype=torch.uint8)
    dl = _loader(x, shuffle=True, flip=True)
    out = dl._augment_nhwc(x, torch.Generator().manual_seed(0))
    same = torch.tensor([torch.equal(o, i) for o, i in zip(out, x)])
    mirror = torch.tensor([torch.equal(o, i.flip(1)) for o, i in zip(out, x)])  # W axis of HWC
    assert torch.all(same ^ mirror) and 60 < int(mirror.sum()) < 140


def test_normalisation_values_and_channels_last_layout():
    g = torch.Generator().manual_seed(3)
    images = torch.randint(0, 256, (10, 4, 5, 3), generator=g, dtype=torch.uint8)
    mean, std = torch.tensor([0.49, 0.48, 0.45]).view(1, 3, 1, 1), torch.tensor([0.25, 0.24, 0.26]).view(1, 3, 1, 1)
    ((x, _),) = list(_loader(images, mean=mean, std=std))
    expected = (images.permute(0, 3, 1, 2).double() / 255 - mean.double()) / std.double()
    assert x.dtype == torch.float32 and x.shape == (10, 3, 4, 5)
    assert x.is_contiguous(memory_format=torch.channels_last)
    np.testing.assert_allclose(x.double().numpy(), expected.numpy(), rtol=0, atol=2e-6)


def test_training_batches_are_augmented_with_the_seeded_generator_only():
    images = torch.randint(0, 256, (40, 8, 8, 1), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    a = [x for x, _ in _loader(images, shuffle=True, flip=True, crop_padding=2, seed=5, batch_size=16)]
    torch.manual_seed(123)  # the global RNG plays no part
    b = [x for x, _ in _loader(images, shuffle=True, flip=True, crop_padding=2, seed=5, batch_size=16)]
    assert all(torch.equal(u, v) for u, v in zip(a, b))


# --------------------------------------------------------------------------- jobs on tiny digits
def _tiny_digits():
    ds = load_source({"source": "digits", "image_size": 8})
    keep_tr, keep_te = np.arange(0, len(ds.y_train), 4), np.arange(0, len(ds.y_test), 3)
    return Dataset(ds.x_train[keep_tr], ds.y_train[keep_tr], ds.x_test[keep_te], ds.y_test[keep_te], ds.classes)


def _spec(method="conventional", mixup=False, **training):
    return {
        "dataset": "digits",
        "source": "digits",
        "class_order": "canonical",
        "flip": True,
        "n_anomaly": 3,
        "method": method,
        "method_params": {"mixup": mixup, "mixup_alpha": 0.4},
        "n_per_class": "all",
        "seed": 0,
        "cases": 2,
        "model": {"backbone": "small_cnn", "embedding_dim": 8},
        "training": {**TRAINING, **training},
    }


@pytest.fixture(scope="module")
def digits():
    return _tiny_digits()


def _equal_arrays(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.mark.parametrize("method,mixup", [("conventional", False), ("sphereface", False), ("centerloss", True)])
def test_reused_model_trains_case_k_bit_for_bit_as_a_fresh_model(digits, method, mixup, monkeypatch):
    spec = _spec(method, mixup)
    cases = run_cases(digits, spec)
    torch.manual_seed(99)  # the job model's own construction draws are irrelevant
    reused = RunTrainer(digits, spec, CPU)
    reused.train_case(cases[0])  # moves weights, batch-norm statistics, optimiser, head state
    second, rows = reused.train_case(cases[1])

    def rebuild(self, seed):  # what the pipeline did before: a new model per case
        torch.manual_seed(seed)
        self.model = self.build_model().to(self.device).to(memory_format=torch.channels_last)

    monkeypatch.setattr(RunTrainer, "reset", rebuild)
    fresh = RunTrainer(digits, spec, CPU)
    alone, rows_alone = fresh.train_case(cases[1])
    assert fresh.model is not reused.model
    _equal_arrays(second, alone)
    assert [r["train_loss"] for r in rows] == [r["train_loss"] for r in rows_alone]


def test_reset_restores_every_parameter_and_buffer_of_a_fresh_build(digits):
    spec = _spec("sphereface")
    trainer = RunTrainer(digits, spec, CPU)
    trainer.train_case(run_cases(digits, spec)[0])
    assert int(trainer.model.head.iteration) > 0
    trainer.reset(1234)
    torch.manual_seed(1234)
    fresh = trainer.build_model()
    live, ref = trainer.model.state_dict(), fresh.state_dict()
    assert live.keys() == ref.keys()
    assert all(torch.equal(live[k], ref[k]) for k in ref)
    # the live tensors are the same objects as before (a compiled module stays valid)
    assert trainer.model.backbone.body.layers[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_training_a_case_leaves_the_kept_initial_weights_as_built(digits):
    """reset copies from the weights kept per seed (on the device); training must not write
    through to them, or the job's next method would start from trained weights."""
    from dmlbench.train.batches import case_seed
    from dmlbench.train.run import initial_backbone_state

    spec = _spec("arcface")
    trainer = RunTrainer(digits, spec, CPU)
    case = run_cases(digits, spec)[0]
    trainer.train_case(case)
    args, kwargs = trainer._backbone_args()
    torch.manual_seed(case_seed(spec["seed"], case.case))
    kept = initial_backbone_state(CPU, *args, **kwargs)
    torch.manual_seed(case_seed(spec["seed"], case.case))
    want = build_backbone(*args, **kwargs).state_dict()
    assert all(torch.equal(kept[k], want[k]) for k in want)
    live = trainer.model.backbone.state_dict()
    assert not all(torch.equal(live[k], want[k]) for k in want)  # the live model did train


def test_centerloss_centres_are_reset_per_case(digits):
    spec = _spec("centerloss")
    trainer = RunTrainer(digits, spec, CPU)
    trainer.train_case(run_cases(digits, spec)[0])
    assert trainer.model.head.centers.abs().sum() > 0
    trainer.reset(1)
    assert trainer.model.head.centers.abs().sum() == 0


# --------------------------------------------------------------------------- compilation
def test_compile_auto_is_cuda_only_and_values_are_checked():
    assert resolve_compile("auto", CPU) is False
    assert resolve_compile("auto", torch.device("cuda")) is True
    # auto skips jobs too small to repay the compilation
    assert resolve_compile("auto", torch.device("cuda"), train_images=COMPILE_MIN_IMAGES) is True
    assert resolve_compile("auto", torch.device("cuda"), train_images=COMPILE_MIN_IMAGES - 1) is False
    assert resolve_compile(True, torch.device("cuda"), train_images=10) is True
    assert resolve_compile(True, CPU) is True and resolve_compile(False, torch.device("cuda")) is False
    with pytest.raises(ConfigError, match="training.compile"):
        resolve_compile("sometimes", CPU)


def _fails_when_compiling(*args, **kwargs):
    raise RuntimeError("inductor is unavailable here")


def _fails_when_called(module, **kwargs):
    def call(x):
        raise RuntimeError("backend compiler failed\nlong traceback")

    return call


def _fails_on_third_call(module, **kwargs):
    calls = {"n": 0}

    def call(x):
        calls["n"] += 1
        if calls["n"] >= 3:
            raise RuntimeError("recompilation failed")
        return module(x)

    return call


@pytest.mark.parametrize("fake_compile", [_fails_when_compiling, _fails_when_called, _fails_on_third_call])
def test_compile_failure_falls_back_to_eager_with_one_warning(digits, monkeypatch, caplog, fake_compile):
    spec = _spec(compile=True)
    cases = run_cases(digits, spec)
    eager = RunTrainer(digits, _spec(compile=False), CPU)
    expected, _ = eager.train_case(cases[0])
    assert eager.compiled is False and eager.compile_fallback is None

    monkeypatch.setattr(torch, "compile", fake_compile)
    with caplog.at_level(logging.WARNING, logger="dmlbench.train"):
        trainer = RunTrainer(digits, spec, CPU)
        got, _ = trainer.train_case(cases[0])
        trainer.train_case(cases[1])
    warnings = [r for r in caplog.records if "torch.compile failed" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
    assert trainer.compiled is False and "RuntimeError" in trainer.compile_fallback
    assert "\n" not in trainer.compile_fallback
    if fake_compile is not _fails_on_third_call:  # the other two fail before any training step
        _equal_arrays(got, expected)


def test_train_job_records_precision_and_the_compile_fallback(digits, tmp_path, monkeypatch):
    monkeypatch.setattr(torch, "compile", _fails_when_compiling)
    train_job(digits, _spec(compile=True), tmp_path, device="cpu", threads=1)
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["precision"] == "fp32" and run["compiled"] is False
    assert run["compile_fallback"].startswith("RuntimeError: inductor is unavailable")
    assert (tmp_path / "train_log.csv").read_text().splitlines()[
        0
    ] == "case,epoch,train_loss,valid_loss,valid_accuracy,seconds"


def test_compiled_training_step_through_dynamo_matches_eager(digits):
    # backend="eager": dynamo traces the backbone (graph capture, guards, the training-only
    # compiled forward) without generating code, so this runs in seconds on any CPU.
    spec = _spec(compile=True)
    case = run_cases(digits, spec)[0]
    compiled = RunTrainer(digits, spec, CPU, compile_options={"backend": "eager"})
    assert compiled.compiled is True and compiled.compile_fallback is None
    got, rows = compiled.train_case(case)
    expected, rows_eager = RunTrainer(digits, _spec(compile=False), CPU).train_case(case)
    for key in expected:
        np.testing.assert_allclose(
            got[key].astype(np.float64), expected[key].astype(np.float64), rtol=1e-3, atol=1e-3, err_msg=key
        )
    np.testing.assert_allclose(rows[0]["train_loss"], rows_eager[0]["train_loss"], rtol=1e-4)


# --------------------------------------------------------------------------- precision
def test_precision_auto_is_fp32_on_the_cpu_and_bf16_on_cuda(monkeypatch):
    assert resolve_precision("auto", CPU) == "fp32"
    assert resolve_precision("bf16", CPU) == "bf16" and resolve_precision("fp32", CPU) == "fp32"
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: (8, 0))  # Ampere: bf16 cores
    assert resolve_precision("auto", torch.device("cuda")) == "bf16"
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: (7, 5))  # Turing: none
    assert resolve_precision("auto", torch.device("cuda")) == "fp32"
    with pytest.raises(ConfigError, match="no bf16 support"):
        resolve_precision("bf16", torch.device("cuda"))
    with pytest.raises(ConfigError, match="training.precision"):
        resolve_precision("fp16", CPU)


def test_bf16_autocast_training_on_the_cpu_gives_finite_losses(digits, tmp_path):
    spec = _spec("arcface", precision="bf16", epochs=2)
    trainer = RunTrainer(digits, spec, CPU)
    assert trainer.precision == "bf16" and trainer.model.autocast_dtype == torch.bfloat16
    x = torch.randn(4, 1, 8, 8).contiguous(memory_format=torch.channels_last)
    trainer.model.train()
    assert trainer.model(x).dtype == torch.bfloat16  # the backbone really runs in bf16
    arrays, rows = trainer.train_case(run_cases(digits, spec)[0])
    assert all(np.isfinite([r["train_loss"], r["valid_loss"]]).all() for r in rows)
    assert np.isfinite(arrays["case0_test"].astype(np.float32)).all()
    train_job(digits, spec, tmp_path, device="cpu", threads=1)
    assert json.loads((tmp_path / "run.json").read_text())["precision"] == "bf16"


@pytest.mark.parametrize("method", list(HEADS))
def test_head_losses_are_float32_under_bf16_autocast(method):
    torch.manual_seed(0)
    head = build_head(method, 16, 5).train()
    emb = (torch.randn(12, 16) * 3).to(torch.bfloat16)
    labels = torch.arange(12) % 5
    state = {k: v.clone() for k, v in head.state_dict().items()}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = HeadLoss(head)(emb, labels)
        logits = head.logits(emb)
    assert loss.dtype == torch.float32 and logits.dtype == torch.float32
    head.load_state_dict(state)  # same training state (SphereFace's counter, centres) for the reference
    reference = HeadLoss(head)(emb.float(), labels)
    torch.testing.assert_close(loss, reference, rtol=1e-6, atol=1e-6)


# --------------------------------------------------------------------------- no host sync per step
# Reads of tensors that are on the host whatever the device: fastai's one-cycle schedule does
# its position arithmetic on CPU tensors, and PyTorch's single-tensor AdamW (the CPU path; the
# fused CUDA one keeps its step counter on the device) reads its CPU step counter.
HOST_ONLY_SITES = ("fastai/callback/schedule.py", "torch/optim/")


def _count_host_reads(monkeypatch):
    import traceback

    counter = {"n": 0, "sites": []}
    for name in ("item", "cpu", "tolist", "__float__", "__int__", "__index__", "__bool__", "numpy"):
        original = getattr(torch.Tensor, name)

        def wrapped(self, *a, _original=original, _name=name, **k):
            caller = traceback.extract_stack(limit=3)[0]
            if not any(site in caller.filename.replace("\\", "/") for site in HOST_ONLY_SITES):
                counter["n"] += 1
                counter["sites"].append(f"{_name} {caller.filename}:{caller.lineno}")
            return _original(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, wrapped)
    return counter


def _learner_for(n_images, mixup, method="centerloss", device=CPU):
    torch.manual_seed(0)
    images = torch.randint(0, 256, (n_images, 8, 8, 1), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    images, labels = images.to(device), (torch.arange(n_images) % 3).to(device)
    common = dict(mean=torch.full((1, 1, 1, 1), 0.5, device=device), std=torch.full((1, 1, 1, 1), 0.25, device=device))
    train = DeviceBatches(
        images, labels, np.arange(n_images), 8, shuffle=True, flip=True, crop_padding=1, drop_last=True, **common
    )
    valid = DeviceBatches(images, labels, np.arange(16), 8, **common)
    backbone = build_backbone("small_cnn", 1, 8)
    model = EmbeddingNet(backbone, build_head(method, 8, 3)).to(device).to(memory_format=torch.channels_last)
    return build_learner(model, train, valid, TRAINING, {"mixup": mixup, "mixup_alpha": 0.4})


HEAD_CASES = [pytest.param(m, False) for m in HEADS]
HEAD_CASES += [pytest.param("centerloss", True, id="centerloss-mixup")]


@pytest.mark.parametrize("method,mixup", HEAD_CASES)
def test_no_host_reads_per_training_step(monkeypatch, method, mixup):
    # Values read back to the host (item, cpu, float, int, bool, ...) during a fit must not grow
    # with the number of steps: fastai's loss averages and MixUp did one or more per step.
    counts, sites = [], []
    for n_images in (32, 96):  # 4 and 12 steps per epoch
        learn = _learner_for(n_images, mixup, method)
        with learn.no_bar(), learn.no_logging():
            counter = _count_host_reads(monkeypatch)
            learn.fit_one_cycle(2, 0.01)
            monkeypatch.undo()
        counts.append(counter["n"])
        sites.append(counter["sites"])
        assert all(bool(torch.isfinite(v)) for v in learn.recorder.values[-1])
    assert counts[0] == counts[1], f"host reads grow with the steps: {counts}; {sites[1][:12]}"
    assert counts[1] <= 12  # a few per epoch (train loss, valid loss, accuracy) and per fit


def test_no_host_reads_per_epoch_without_the_epoch_log(monkeypatch):
    # fastai's Recorder read the epoch's loss and metric averages back (.item()) after the
    # training and the validation pass of every epoch, draining the device's queue; ours keeps
    # them on the device, so host reads do not grow with the epochs either.
    counts = []
    for epochs in (2, 5):
        learn = _learner_for(32, False, "arcface")
        with learn.no_bar(), learn.no_logging():
            counter = _count_host_reads(monkeypatch)
            learn.fit_one_cycle(epochs, 0.01)
            monkeypatch.undo()
        counts.append(counter["n"])
        assert len(learn.recorder.values) == epochs
        assert all(isinstance(v, torch.Tensor) for v in learn.recorder.values[-1])
    assert counts[0] == counts[1], f"host reads grow with the epochs: {counts}"


class _RowsAtEpochEnd(Callback):
    """How many rows the epoch log holds at each epoch's end, after it ran."""

    order = 70

    def __init__(self, rows):
        super().__init__()
        self.rows, self.seen = rows, []

    def after_epoch(self):
        self.seen.append(len(self.rows))


def test_the_epoch_log_reads_an_epoch_late_with_the_same_rows():
    logs = {}
    for lag in (0, 1):
        learn = _learner_for(32, False, "cosface")
        rows: list[dict] = []
        probe = _RowsAtEpochEnd(rows)
        with learn.no_bar(), learn.no_logging():
            learn.fit_one_cycle(4, 0.01, cbs=[EpochLog("cosface", 0, CPU, rows, lag=lag), probe])
        logs[lag] = rows
        # lag 0: epoch e's row is there at its end; lag 1: at the end of epoch e + 1, the last at the fit's end
        assert probe.seen == ([1, 2, 3, 4] if lag == 0 else [0, 1, 2, 3])
    assert [r["epoch"] for r in logs[1]] == [0, 1, 2, 3]
    for a, b in zip(logs[0], logs[1]):
        assert {k: v for k, v in a.items() if k != "seconds"} == {k: v for k, v in b.items() if k != "seconds"}


@pytest.mark.parametrize("epochs", [1, 3])
def test_a_nan_loss_read_an_epoch_late_names_the_epoch_it_appeared_in(epochs):
    learn = _learner_for(32, False, "conventional")
    with learn.no_bar(), learn.no_logging(), pytest.raises(TrainingError, match=r"case 0, epoch 0: the loss became"):
        learn.fit_one_cycle(epochs, 1e12, cbs=[EpochLog("conventional", 0, CPU, [], lag=1)])


CUDA_CASES = [pytest.param(m, False) for m in HEADS]
CUDA_CASES += [pytest.param("conventional", True, id="conventional-mixup")]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("method,mixup", CUDA_CASES)
def test_no_cuda_synchronisation_inside_an_epoch(method, mixup):
    # From the start to the end of each epoch — batch cutting, augmentation, mixup, forward,
    # loss, backward, optimiser step, the validation pass, fastai's callbacks and the Recorder's
    # averages — any synchronising CUDA call raises (the guard's after_epoch, order 55, runs after
    # the Recorder's, 50, and before the epoch log's read of the epoch before, 60).
    from fastai.callback.core import Callback

    class SyncGuard(Callback):
        order = 0

        def before_epoch(self):
            torch.cuda.set_sync_debug_mode("error")

    class SyncGuardEnd(Callback):
        order = 55

        def after_epoch(self):
            torch.cuda.set_sync_debug_mode("default")

    learn = _learner_for(96, mixup, method, device=torch.device("cuda"))
    rows: list[dict] = []
    try:
        with learn.no_bar(), learn.no_logging():
            learn.fit_one_cycle(
                3, 0.01, cbs=[SyncGuard(), SyncGuardEnd(), EpochLog(method, 0, torch.device("cuda"), rows)]
            )
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert [r["epoch"] for r in rows] == [0, 1, 2]
    assert all(np.isfinite(r["train_loss"]) and r["seconds"] > 0 for r in rows)


# --------------------------------------------------------------------------- optimiser
def test_weight_decay_spares_normalisation_and_bias_parameters():
    learn = _learner_for(32, False, method="conventional")
    learn.create_opt()
    decay, no_decay = learn.opt.opt.param_groups
    assert decay["weight_decay"] == TRAINING["weight_decay"] and no_decay["weight_decay"] == 0.0
    bn = learn.model.backbone.body.layers[1]
    ids = {id(p) for p in no_decay["params"]}
    assert id(bn.weight) in ids and id(bn.bias) in ids and id(learn.model.head.bias) in ids
    assert id(learn.model.head.weight) not in ids
    assert id(learn.model.backbone.body.layers[0].weight) not in ids


def test_adamw_steps_like_fastais_adam():
    # The replacement optimiser keeps fastai's Adam maths (decoupled wd, betas 0.9/0.99, eps 1e-5,
    # no decay on normalisation and bias parameters), so recipes keep their meaning.
    from fastai.learner import Learner

    ours = _learner_for(32, False, method="conventional")
    theirs_model = _learner_for(32, False, method="conventional").model
    theirs = Learner(ours.dls, theirs_model, loss_func=HeadLoss(theirs_model.head), wd=TRAINING["weight_decay"])
    for learn in (ours, theirs):
        for dl in learn.dls.loaders:
            dl.epoch = 0
        with learn.no_bar(), learn.no_logging():
            learn.fit(1, lr=0.01)
    for (name, p), q in zip(ours.model.named_parameters(), theirs.model.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=name)


def test_sgd_optimizer_trains(digits):
    spec = _spec(optimizer="sgd", lr=0.05, weight_decay=5e-4)
    trainer = RunTrainer(digits, spec, CPU)
    learn, _ = trainer.learner(run_cases(digits, spec)[0])
    learn.create_opt()
    assert isinstance(learn.opt.opt, torch.optim.SGD) and learn.opt.opt.param_groups[0]["nesterov"]
    before = trainer.model.backbone.body.layers[0].weight.detach().clone()
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(1, 0.05)
    assert not torch.equal(before, trainer.model.backbone.body.layers[0].weight)
    assert np.isfinite(learn.recorder.values[-1]).all()
    with pytest.raises(ConfigError, match="training.optimizer"):
        RunTrainer(digits, _spec(optimizer="lamb"), CPU).learner(run_cases(digits, spec)[0])


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_fast_hypers_are_fastais_hypers(optimizer):
    from fastai.optimizer import OptimWrapper

    learn = _learner_for(32, False, method="conventional")
    learn.opt_func = optimizer_func({**TRAINING, "optimizer": optimizer}, CPU)
    learn.create_opt()
    learn.opt.set_hyper("mom", 0.85)
    learn.opt.set_hyper("lr", [0.1, 0.2])
    assert learn.opt.hypers == OptimWrapper.hypers.fget(learn.opt)
    assert [h["mom"] for h in learn.opt.hypers] == [0.85, 0.85]
    assert [g["lr"] for g in learn.opt.opt.param_groups] == [0.1, 0.2]
