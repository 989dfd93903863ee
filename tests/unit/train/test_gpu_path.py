"""The CUDA paths of the train stage, checked on the CPU where their mechanism shows there
(issue 31): no device tensor built from Python values inside a training step, the device a job
was given used for everything (not GPU 0), and the epoch log's read order."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

import dmlbench
from dmlbench.errors import ConfigError

SRC = Path(dmlbench.__file__).parent

# --------------------------------------------------------------------------- A: no host-to-device copy per step
#: Modules whose code runs inside a training step (batches, mixup, forward, loss, metrics, the
#: recorder): building a device tensor there from host values is a blocking copy, a host sync.
STEP_MODULES = [
    "train/fastai_parts.py",
    "train/sampling.py",
    "train/batches.py",
    "train/learner.py",
    "train/compiled.py",
    "train/models.py",
    *sorted(str(p.relative_to(SRC)) for p in (SRC / "heads").glob("*.py")),
]
#: Functions of those modules that run once per job, run or case, outside any epoch: building
#: the loaders, their statistics and the models.
ONCE_PER_CASE = {
    ("train/batches.py", "__init__"),  # DeviceBatches: the case's indices, once
    ("train/batches.py", "channel_stats"),
    ("train/batches.py", "case_inputs"),  # ImageNet's constants, once per case
    ("train/batches.py", "case_loaders"),
    ("train/batches.py", "JobData.__init__"),
    ("train/sampling.py", "__init__"),  # the class members, once per loader
}
#: Calls that copy host values (Python numbers, lists, numpy arrays) to a new tensor.
HOST_TO_DEVICE = {"tensor", "as_tensor", "from_numpy", "scalar_tensor", "new_tensor", "cuda"}


def _qualified_functions(tree: ast.Module):
    """(qualified name, node) of every function, methods as Class.method."""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    yield f"{node.name}.{item.name}", item


def _host_copies(path: str, root: Path = SRC) -> list[str]:
    tree = ast.parse((root / path).read_text())
    found = []
    for name, fn in _qualified_functions(tree):
        if (path, name) in ONCE_PER_CASE or (path, name.split(".")[-1]) in ONCE_PER_CASE:
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                if node.func.attr in HOST_TO_DEVICE:
                    found.append(f"{path}:{node.lineno} {name}: .{node.func.attr}(...)")
    return found


def test_the_training_step_builds_no_device_tensor_from_host_values():
    """torch.tensor(alpha, device=cuda) in MixUp's first batch was a blocking copy: on a GPU the
    sync test (test_no_cuda_synchronisation_inside_an_epoch[conventional-mixup]) raises. Device
    constants come from torch.full / zeros / arange (fill kernels, no copy)."""
    found = [hit for path in STEP_MODULES for hit in _host_copies(path)]
    assert not found, "host-to-device copies in the training step:\n" + "\n".join(found)


def test_the_static_check_sees_a_copy_where_there_is_one(tmp_path):
    (tmp_path / "bad.py").write_text(
        "import torch\nclass M:\n    def before_batch(self, x):\n        return torch.tensor(0.4, device=x.device)\n"
    )
    assert _host_copies("bad.py", tmp_path) == ["bad.py:4 M.before_batch: .tensor(...)"]


# --------------------------------------------------------------------------- H: test isolation
def test_h_a_cpu_training_test_switches_deterministic_mode_on():
    from dmlbench.train.device import setup_device

    setup_device(torch.device("cpu"))
    assert torch.are_deterministic_algorithms_enabled()


def test_h_the_next_test_finds_it_off_again():
    """The root conftest's torch_switches fixture put it back (the order of these two tests is
    the file's: pytest runs a module's tests in order)."""
    assert not torch.are_deterministic_algorithms_enabled()
    assert not torch.backends.cudnn.benchmark


# --------------------------------------------------------------------------- G: cuda:N with N != 0
@pytest.fixture
def two_gpus(monkeypatch):
    """Two CUDA devices faked (as tests/unit/train/test_gpus.py does): GPU 0 a Turing card without
    bf16 cores, GPU 1 an Ampere one. Records set_device and the streams events are recorded on."""
    seen = {"set_device": [], "streams": []}
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    current = {"index": 0}

    def index_of(device=None):
        device = torch.device("cuda", current["index"]) if device is None else torch.device(device)
        return current["index"] if device.index is None else device.index

    def set_device(device):
        seen["set_device"].append(str(device))
        current["index"] = index_of(device)

    capability = {0: (7, 5), 1: (8, 0)}
    monkeypatch.setattr(torch.cuda, "set_device", set_device)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: current["index"])
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability[index_of(device)])
    # PyTorch's own check asks the current device (GPU 0 here)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: capability[current["index"]] >= (8, 0))

    class Stream:
        def __init__(self, device):
            self.device = torch.device("cuda", index_of(device))

    class Event:
        def __init__(self, **kwargs):
            self.stream = None

        def record(self, stream=None):
            stream = Stream(None) if stream is None else stream
            seen["streams"].append(str(stream.device))

    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: Stream(device))
    monkeypatch.setattr(torch.cuda, "Event", Event)
    return seen


def test_setup_device_makes_cuda_n_the_current_device(two_gpus):
    from dmlbench.train.device import setup_device

    setup_device(torch.device("cuda:1"))
    assert two_gpus["set_device"] == ["cuda:1"] and torch.cuda.current_device() == 1
    setup_device(torch.device("cuda"))  # no index: the current device stays
    assert two_gpus["set_device"] == ["cuda:1"]


def test_bf16_is_asked_of_the_job_s_own_gpu(two_gpus):
    from dmlbench.train.device import resolve_precision

    assert torch.cuda.current_device() == 0  # not set: PyTorch's check would answer for GPU 0
    assert resolve_precision("auto", torch.device("cuda:1")) == "bf16"
    assert resolve_precision("auto", torch.device("cuda:0")) == "fp32"
    with pytest.raises(ConfigError, match="cuda:0 has no bf16 support"):
        resolve_precision("bf16", torch.device("cuda:0"))


def test_the_epoch_events_are_recorded_on_the_job_s_gpu(two_gpus):
    from dmlbench.train.fastai_parts import EpochLog

    log = EpochLog("conventional", 0, torch.device("cuda:1"), [])
    log._mark()
    assert two_gpus["streams"] == ["cuda:1"]  # the current device is still GPU 0


# --------------------------------------------------------------------------- B: the epoch log's read order
class _LoggedRows(list):
    def __init__(self, trace):
        super().__init__()
        self.trace = trace

    def append(self, row):
        self.trace.append(f"row {row['epoch']}")
        super().append(row)


def _fake_cuda_events(monkeypatch, trace, buffers=None):
    """CUDA events and streams faked on the CPU: each event says what it marks (an epoch's start and
    end, a copy of its values) when it is recorded and when the host waits for it."""
    from dmlbench.train.fastai_parts import EpochLog

    class Event:
        def __init__(self, enable_timing=False, **kwargs):
            self.timing = enable_timing

        def record(self, stream=None):
            self.name = "timing" if self.timing else "copy"
            trace.append(f"record {self.name}")

        def synchronize(self):
            trace.append(f"wait {self.name}")

        def elapsed_time(self, end):
            return 1000.0

    monkeypatch.setattr(torch.cuda, "Event", Event)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: None)
    buffers = [] if buffers is None else buffers

    def host_buffer():  # no pinned memory without CUDA
        buffers.append(torch.empty(3))
        return buffers[-1]

    monkeypatch.setattr(EpochLog, "_host_buffer", staticmethod(host_buffer), raising=False)


def test_on_cuda_an_epoch_s_values_are_copied_at_its_end_and_read_a_step_later(monkeypatch):
    """The read order (issue 31, B): at the end of epoch e the values start to the host (a copy
    and an event behind it), then the host waits for epoch e - 1's copy - never for a device
    tensor of epoch e - and writes epoch e - 1's row."""
    from dmlbench.train.fastai_parts import EpochLog
    from tests.unit.train.test_training_speed import _learner_for

    trace: list[str] = []
    buffers: list[torch.Tensor] = []
    _fake_cuda_events(monkeypatch, trace, buffers)
    reads = []
    original = torch.Tensor.__float__

    def traced_float(self):  # which epoch's host copy a number is read from (None: not a copy)
        ptr = self.untyped_storage().data_ptr()
        reads.append(next((i for i, b in enumerate(buffers) if b.untyped_storage().data_ptr() == ptr), None))
        return original(self)

    learn = _learner_for(32, False, "cosface")
    rows = _LoggedRows(trace)
    log = EpochLog("cosface", 0, torch.device("cuda"), rows)  # lag 1 by default on CUDA
    assert log.lag == 1
    monkeypatch.setattr(torch.Tensor, "__float__", traced_float)
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(3, 0.01, cbs=[log])
    monkeypatch.setattr(torch.Tensor, "__float__", original)
    epoch_end = ["record timing", "record copy"]  # the end event, then the copy's event behind it
    assert trace == [
        "record timing",  # epoch 0 starts
        *epoch_end,
        "record timing",  # epoch 1 starts
        *epoch_end,
        "wait copy",  # epoch 0's copy, queued before epoch 1's kernels
        "row 0",
        "record timing",
        *epoch_end,
        "wait copy",
        "row 1",
        "wait copy",  # the fit's end: the last epoch
        "row 2",
    ]
    # the numbers come from the host copy's elements, never from the recorder's device tensors
    assert reads == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert [r["seconds"] for r in rows] == [1.0, 1.0, 1.0]


def test_the_copied_values_are_the_recorder_s(monkeypatch):
    from dmlbench.train.fastai_parts import EpochLog
    from tests.unit.train.test_training_speed import _learner_for

    rows = {}
    for device in ("cpu", "cuda"):
        if device == "cuda":
            _fake_cuda_events(monkeypatch, [])
        learn = _learner_for(32, False, "arcface")
        rows[device] = []
        with learn.no_bar(), learn.no_logging():
            learn.fit_one_cycle(2, 0.01, cbs=[EpochLog("arcface", 0, torch.device(device), rows[device])])
    for a, b in zip(rows["cpu"], rows["cuda"], strict=True):
        assert {k: v for k, v in a.items() if k != "seconds"} == {k: v for k, v in b.items() if k != "seconds"}


# --------------------------------------------------------------------------- C, E: one compile per job
def _grey_or_colour(ds, channels: int):
    import numpy as np

    from dmlbench.data.sources import Dataset

    if channels == 1:
        return ds
    rgb = (np.repeat(ds.x_train, 3, axis=3), np.repeat(ds.x_test, 3, axis=3))
    return Dataset(rgb[0], ds.y_train, rgb[1], ds.y_test, ds.classes)


def _pml_spec(loss="TripletMarginLoss", **training):
    from tests.unit.train.test_training_speed import _spec

    spec = _spec("triplet", **training)
    return {**spec, "head": "pml", "method_params": {"mixup": False, "loss": loss}}


def _compiles(ds, spec) -> dict:
    """Graphs dynamo captured while a RunTrainer compiles (backend 'eager': dynamo's tracing and
    guards without code generation) and trains one case."""
    from torch._dynamo.utils import counters

    from dmlbench.data.splits import run_cases
    from dmlbench.train.run import RunTrainer

    torch._dynamo.reset()
    counters.clear()
    trainer = RunTrainer(ds, spec, torch.device("cpu"), compile_options={"backend": "eager"})
    warm = counters["stats"]["unique_graphs"]
    trainer.train_case(run_cases(ds, spec)[0])
    assert trainer.compiled and trainer.compile_fallback is None
    return {"warm-up": warm, "total": counters["stats"]["unique_graphs"]}


@pytest.fixture(scope="module")
def digits():
    from tests.unit.train.test_training_speed import _tiny_digits

    return _tiny_digits()


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("mixup", [False, True], ids=["plain", "mixup"])
def test_grey_and_colour_images_compile_once(digits, channels, mixup):
    """1-channel batches have stride 1 on their channel, the warm-up's random batch had H*W:
    torch.compile guards on strides, so the first training step compiled again (C)."""
    from tests.unit.train.test_training_speed import _spec

    assert _compiles(_grey_or_colour(digits, channels), _spec(mixup=mixup, compile=True)) == {"warm-up": 1, "total": 1}


def test_pair_loss_batches_compile_once(digits):
    """Batch size 18 with 7 normal classes: class-balanced batches hold 4 classes x 4 images = 16
    (dmlbench.train.sampling.balanced_batch_size), and the warm-up is at 16, not 18 (E)."""
    from dmlbench.train.sampling import balanced_batch_size

    assert balanced_batch_size(7, 18) == 16 and balanced_batch_size(3, 18) == 18 and balanced_batch_size(7, 3) == 3
    assert _compiles(digits, _pml_spec(batch_size=18, compile=True)) == {"warm-up": 1, "total": 1}


def test_the_channels_last_view_gives_one_layout_without_copying():
    from dmlbench.train.compiled import channels_last_view

    nhwc = torch.randn(4, 5, 6, 1).permute(0, 3, 1, 2)  # how batches are made: stride 1 on C
    made = torch.randn(4, 1, 5, 6).contiguous(memory_format=torch.channels_last)  # a no-op for C = 1
    assert nhwc.stride() == (30, 1, 6, 1) and made.stride() == (30, 30, 6, 1)
    for x in (nhwc, made):
        view = channels_last_view(x)
        assert view.stride() == (30, 1, 6, 1) and view.data_ptr() == x.data_ptr() and torch.equal(view, x)
    plain = torch.randn(2, 3, 4, 4)  # not channels_last: left alone
    assert channels_last_view(plain) is plain


@pytest.fixture
def pretrained_hub(tmp_path, monkeypatch):
    """A torch hub cache holding a ResNet18 'ImageNet' weights file (random weights), where
    torchvision looks for it: a pretrained backbone without a download."""
    from torchvision import models

    from dmlbench.train.models import hub_checkpoint

    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    path = hub_checkpoint(models.ResNet18_Weights.IMAGENET1K_V1)
    path.parent.mkdir(parents=True)
    torch.manual_seed(5)
    torch.save(models.resnet18(weights=None).state_dict(), path)
    yield path
    torch.hub.set_dir(old)


@pytest.fixture(scope="module")
def few_digits(digits):
    """A third of the tiny digits (some 100 training images): a ResNet18 on the CPU in seconds."""
    from dmlbench.data.sources import Dataset

    tr, te = slice(0, None, 3), slice(0, None, 3)
    return Dataset(digits.x_train[tr], digits.y_train[tr], digits.x_test[te], digits.y_test[te], digits.classes)


def _pretrained(spec, **model):
    return {**spec, "model": {"backbone": "resnet18", "pretrained": True, "embedding_dim": 8, **model}}


@pytest.mark.slow
def test_fine_tuning_compiles_once_across_freezing(few_digits, pretrained_hub):
    """fine_tune's frozen body flips requires_grad, which the compiled graph is keyed on: the
    warm-up runs frozen and unfrozen (E)."""
    from tests.unit.train.test_training_speed import _spec

    spec = _pretrained(_spec(compile=True, freeze_epochs=1, batch_size=8))
    assert _compiles(few_digits, spec) == {"warm-up": 2, "total": 2}  # one graph per state, none later


# --------------------------------------------------------------------------- D: pair losses' batches
def test_pair_loss_batches_are_converted_as_every_other_batch():
    """Class-balanced batches go through the base loader's conversion: a grey image's channel
    repeated for a 3-channel backbone, the resize to model.input_size, the normalisation."""
    import numpy as np

    from dmlbench.train.batches import DeviceBatches
    from dmlbench.train.sampling import ClassBalancedBatches

    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (30, 8, 8, 1), generator=g, dtype=torch.uint8)
    labels = torch.tensor([0, 1, 2] * 10)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    common = dict(mean=mean, std=std, channels=3, size=12)
    base = DeviceBatches(images, labels, np.arange(30), 12, shuffle=True, seed=1, drop_last=True, **common)
    plain = DeviceBatches(images, labels, np.arange(30), 30, **common)  # every image, converted
    ((converted, _),) = list(plain)
    for x, y in ClassBalancedBatches(base):
        assert x.shape == (12, 3, 12, 12) and x.is_contiguous(memory_format=torch.channels_last)
        for image, label in zip(x, y):
            match = [j for j in range(30) if torch.allclose(converted[j], image, atol=1e-5)]
            assert match and all(int(labels[j]) == int(label) for j in match)


@pytest.mark.slow
def test_a_pair_loss_trains_a_3_channel_backbone_on_grey_images(few_digits, pretrained_hub):
    """It crashed: 'output with shape [16, 1, 8, 8] doesn't match the broadcast shape [16, 3, 8, 8]'."""
    from dmlbench.data.splits import run_cases
    from dmlbench.train.run import RunTrainer

    spec = _pretrained(_pml_spec(freeze_epochs=1))
    assert few_digits.x_train.shape[3] == 1
    trainer = RunTrainer(few_digits, spec, torch.device("cpu"))
    arrays, rows = trainer.train_case(run_cases(few_digits, spec)[0])
    assert len(rows) == 2 and all(r["train_loss"] == r["train_loss"] for r in rows)  # finite, not NaN


def test_a_pair_loss_trains_at_model_input_size(digits):
    """Training batches were left at the native 8 x 8 while validation and embeddings were
    resized to model.input_size."""
    from dmlbench.data.splits import run_cases
    from dmlbench.train.run import RunTrainer

    spec = _pml_spec()
    spec = {**spec, "model": {**spec["model"], "input_size": 12}}
    trainer = RunTrainer(digits, spec, torch.device("cpu"))
    seen = {True: set(), False: set()}
    trainer.model.backbone.register_forward_pre_hook(lambda m, args: seen[m.training].add(tuple(args[0].shape[1:])))
    trainer.train_case(run_cases(digits, spec)[0])
    assert seen == {True: {(1, 12, 12)}, False: {(1, 12, 12)}}


# --------------------------------------------------------------------------- F: the sampler's syncs
def test_class_balanced_epochs_wait_for_nothing(monkeypatch):
    """torch.unique and a nonzero per class wait for the device; they run once per loader now,
    not per epoch (F). Each epoch's batches are still balanced."""
    import numpy as np

    from dmlbench.train.batches import DeviceBatches
    from dmlbench.train.sampling import ClassBalancedBatches

    images = torch.randint(0, 256, (60, 4, 4, 1), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    labels = torch.arange(60) % 6
    common = dict(mean=torch.zeros(1, 1, 1, 1), std=torch.ones(1, 1, 1, 1))
    base = DeviceBatches(images, labels, np.arange(60), 8, shuffle=True, drop_last=True, **common)
    loader = ClassBalancedBatches(base)  # 6 classes, 2 per batch (8 // 4), 4 images each
    calls = []
    for owner, name in [(torch, "unique"), (torch, "nonzero"), (torch.Tensor, "nonzero"), (torch.Tensor, "unique")]:
        original = getattr(owner, name)
        monkeypatch.setattr(owner, name, lambda *a, _o=original, _n=name, **k: calls.append(_n) or _o(*a, **k))
    for _ in range(3):
        for x, y in loader:
            assert sorted(torch.bincount(y, minlength=6).tolist()) == [0, 0, 0, 0, 4, 4]
    assert calls == []


# --------------------------------------------------------------------------- freeze_epochs' default
def test_a_spec_without_freeze_epochs_fits_and_counts_the_same_frozen_epochs(few_digits, pretrained_hub):
    """The fit used a default of 1 frozen epoch, the run length SphereFace's schedule counts a
    default of 0: the schedule ended an epoch early. Both take the schema's default now."""
    from dmlbench.config import load_schema
    from dmlbench.data.splits import run_cases
    from dmlbench.train.run import RunTrainer
    from tests.unit.train.test_training_speed import _spec

    default = load_schema()["properties"]["training"]["properties"]["freeze_epochs"]["default"]
    spec = _pretrained(_spec("sphereface", epochs=2))
    assert "freeze_epochs" not in spec["training"] and default == 1
    trainer = RunTrainer(few_digits, spec, torch.device("cpu"))
    assert trainer.freeze_epochs == default
    learn, _ = trainer.learner(run_cases(few_digits, spec)[0])
    assert trainer.model.head.run_steps == (2 + default) * len(learn.dls.train)


# --------------------------------------------------------------------------- precision of the embeddings
def test_embeddings_are_computed_in_float32_after_bf16_training(digits):
    """A bf16-trained model's stored embeddings and logits are its float32 forward pass (bf16
    rounds by up to 0.4 %); training and validation keep the bf16 autocast."""
    import numpy as np

    from dmlbench.data.splits import run_cases
    from dmlbench.train.batches import DeviceBatches
    from dmlbench.train.run import RunTrainer, embed
    from tests.unit.train.test_training_speed import _spec

    spec = _spec("arcface", precision="bf16")
    trainer = RunTrainer(digits, spec, torch.device("cpu"))
    case = run_cases(digits, spec)[0]
    _, local = trainer.learner(case)
    batches = DeviceBatches(trainer.data.x_test, trainer.data.y_test, np.arange(40), 16, **trainer.inputs)
    got, got_logits = embed(trainer.model, batches)
    assert trainer.model.autocast_dtype == torch.bfloat16  # put back for training
    trainer.model.autocast_dtype = None
    want, want_logits = embed(trainer.model, batches)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got_logits, want_logits)
    trainer.model.autocast_dtype = torch.bfloat16
    x = next(iter(batches))[0]
    with torch.no_grad():
        assert trainer.model.eval()(x).dtype == torch.bfloat16  # the model itself still runs bf16


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_class_balanced_epoch_on_cuda_makes_no_synchronising_call():
    """F on the device: drawing an epoch's class-balanced order and cutting its batches (the
    loader built, its class members found, before the guard) raises on any sync."""
    import numpy as np

    from dmlbench.train.batches import DeviceBatches
    from dmlbench.train.sampling import ClassBalancedBatches

    cuda = torch.device("cuda")
    images = torch.randint(0, 256, (120, 8, 8, 1), dtype=torch.uint8, device=cuda)
    labels = torch.arange(120, device=cuda) % 7
    common = dict(mean=torch.zeros(1, 3, 1, 1, device=cuda), std=torch.ones(1, 3, 1, 1, device=cuda))
    base = DeviceBatches(
        images,
        labels,
        np.arange(120),
        16,
        shuffle=True,
        flip=True,
        crop_padding=1,
        drop_last=True,
        channels=3,
        size=12,
        **common,
    )
    loader = ClassBalancedBatches(base)
    torch.cuda.synchronize()
    try:
        torch.cuda.set_sync_debug_mode("error")
        batches = [x for x, _ in loader]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert len(batches) == 7 and batches[0].shape == (16, 3, 12, 12)
