"""The run and its trainer: one method trained on every case of one condition, size and seed.

A train job (dmlbench.train.job) trains several runs in one process; each run builds on the job's
images on the device (dmlbench.train.batches) and trains each case with a fastai Learner
(dmlbench.train.learner):

- the model (backbone + head) and its torch.compile'd training forward (dmlbench.train.compiled)
  are built once per run; each case re-initialises the weights from a freshly seeded CPU build
  (exactly what building afresh would give), so compilation is paid once per job, not per case;
- the backbone runs under bf16 autocast (``training.precision``) in channels_last; the heads
  compute their margins and losses in float32;
- no host synchronisation per step or at an epoch's end: fastai's loss and metric averages
  call ``.cpu()`` on every batch (``to_detach``), its Recorder ``.item()`` after the training
  and the validation pass of every epoch, and its MixUp draws its weights on the CPU and
  copies them over; all are replaced by versions that stay on the device
  (dmlbench.train.fastai_parts), and the epoch's values are read one epoch late (EpochLog), so
  the host waits for the device once per case (its embeddings).

The components: RunTrainer (model, learner and training per case), train_run (the cases of a
run), write_run (its three files), train_job (both).

Per run it writes, each file atomically, run.json last:
  embeddings.npz  per case: reference (training) and test embeddings (float16), test logits
                  (keys and dtypes: dmlbench.embeddings_file)
  train_log.csv   per case and epoch: train loss, validation loss and accuracy, seconds
  run.json        the spec, versions (every package that can change a number, CUDA, cuDNN), device
                  (the GPU's name and index), precision, compilation, the phases and wall
                  time of training it (its writing not counted: run.json is what is being
                  written, dmlbench.train.job writes it in the background), the
                  pretrained weights (torchvision enum member, or null), per case its classes,
                  sizes and the head's state after training (`head_state`: SphereFace's λ at
                  the last step, the steps counted and the run's length), and the code: git
                  commit, dirty flag, package source hash (dmlbench.provenance)

A pretrained backbone is fine-tuned as fastai's `fine_tune` does (dmlbench.train.learner.fine_tune).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from dmlbench.config import training_defaults
from dmlbench.config.methods import ENTRY_KEYS
from dmlbench.config.model_options import model_options, weights_name
from dmlbench.config.switches import switches_on, train_switches
from dmlbench.config.tuning import case_spec
from dmlbench.data.sources import Dataset
from dmlbench.data.splits import Case, run_cases
from dmlbench.embeddings_file import pack_case, pack_job
from dmlbench.errors import ConfigError, TrainingError
from dmlbench.heads import build_head
from dmlbench.io import write_csv, write_json, write_npz
from dmlbench.phases import NoClock, PhaseClock
from dmlbench.provenance import code_provenance
from dmlbench.train.batches import DeviceBatches, JobData, case_inputs, case_loaders, case_seed
from dmlbench.train.compiled import CompiledBackbone, resolve_compile
from dmlbench.train.device import device_name, resolve_device, resolve_precision, setup_device, versions
from dmlbench.train.fastai_parts import BestEpoch, EpochLog
from dmlbench.train.learner import build_learner, fine_tune, fine_tune_groups, set_frozen
from dmlbench.train.models import EmbeddingNet, build_backbone
from dmlbench.train.progress import RunProgress
from dmlbench.train.sampling import balanced_batch_size
from dmlbench.train.seeded_memo import seeded_memo, seeded_state_memo

log = logging.getLogger("dmlbench.train")

#: A case's fresh backbone depends only on its arguments and the seeded random state, and every
#: method of a job has the same cases and seeds: each run's model is made once, at its start,
#: with the first case's seed, and all runs but the first copy that build (seeded_memo).
memoised_backbone = seeded_memo(build_backbone)
#: A case's fresh backbone weights, kept on the training device once built: every later method of
#: the job re-initialises from them with one device-to-device copy (RunTrainer.reset). Built past
#: seeded_memo: the state memo keeps the build itself, and a second CPU copy would only cost a deep
#: copy and memory.
initial_backbone_state = seeded_state_memo(build_backbone)


@torch.no_grad()
def embed(model: EmbeddingNet, batches: DeviceBatches) -> tuple[np.ndarray, np.ndarray | None]:
    """Embeddings [N, D] float32 and head logits [N, n_normal] float32, in index order (logits
    None for a head without them: a pair or tuple loss).

    Always in float32, whatever ``training.precision``: bf16 autocast is a training speed-up (the
    weights are float32), and its 8-bit mantissa would round every stored embedding by up to
    0.4 %, eight times what embeddings.npz's float16 keeps, before the kNN distances that rank
    the test images. It costs some 3 % of a job's compute (one forward pass over the train and
    test images per case, against epochs of forward and backward passes); docs/methods.md."""
    model.eval()
    with_logits = getattr(model.head, "has_logits", True)
    embs, logits = [], []
    saved, model.autocast_dtype = model.autocast_dtype, None
    try:
        for x, _ in batches:
            e = model(x).float()
            embs.append(e)
            if with_logits:
                logits.append(model.head.logits(e).float())
    finally:
        model.autocast_dtype = saved
    return torch.cat(embs).cpu().numpy(), torch.cat(logits).cpu().numpy() if with_logits else None


class RunTrainer:
    """Model, head and compiled training forward of one run, reused by all its cases.

    `train_case(case)` re-initialises every parameter and buffer (batch-norm statistics,
    SphereFace's iteration counter, CenterLoss's centres) from a model built on the CPU with
    the case's seed — bit for bit what a fresh build gives — by copying into the existing
    tensors, so the compiled module and its kernels stay valid. The backbone's built weights
    are kept on the device per seed (initial_backbone_state), so the job's later methods copy
    them device to device. Copying a fresh build rather
    than calling reset_parameters(): torchvision's ResNet re-initialises its convolutions and
    batch norms in its constructor (kaiming_normal, fan_out), which reset_parameters() does
    not reproduce.

    ``build_backbone``: the backbone's builder, ``build_backbone(name, in_channels, embedding_dim,
    **options) -> nn.Module`` (default: dmlbench.train.models.build_backbone, memoised); another
    builder (bench.overhead's idle backbone) gets a memo of its kept weights of its own.
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
        build_backbone: Callable[..., nn.Module] | None = None,
    ):
        self.ds, self.spec, self.device = ds, spec, device
        if build_backbone is None:
            self._build_backbone, self._initial_state = memoised_backbone, initial_backbone_state
        else:
            self._build_backbone, self._initial_state = build_backbone, seeded_state_memo(build_backbone)
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
        # the head's own parameters: not mixup, not the original implementation's switches
        self.head_params = {k: v for k, v in spec["method_params"].items() if k not in ENTRY_KEYS}
        self.switches = train_switches(spec["method_params"])
        #: the epoch kept by the switch select_best_epoch in the last case trained (None: the last)
        self.kept_epoch: int | None = None
        # Built with the first case's seed, which every run of the job shares: a later run copies
        # the memoised build (some 40 ms for ResNet18) instead of building anew (0.17 s); the
        # weights are re-initialised per case anyway (reset).
        torch.manual_seed(case_seed(int(spec["seed"]), 0))
        self.model = self.build_model().to(device).to(memory_format=torch.channels_last)
        self.model.autocast_dtype = torch.bfloat16 if self.precision == "bf16" else None
        self.compiled_backbone = CompiledBackbone(self.model, compile_options)
        if resolve_compile(self.training.get("compile", "auto"), device, train_images):
            # Warmed up in the shapes and states training will use: no training step recompiles.
            bs = warm_up_batch_size or self.training["batch_size"]
            if getattr(self.model.head, "balanced_batches", False):
                bs = balanced_batch_size(self.n_normal, bs)  # c classes x m images
            states = ()
            if self.fine_tunes and self.freeze_epochs:
                groups = fine_tune_groups(self.model)
                states = (lambda: set_frozen(self.model, groups, True), lambda: set_frozen(self.model, groups, False))
            with self.clock.phase("compile"):
                self.compiled_backbone.compile((bs, self.in_channels, *self.input_hw), device, states)

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
        return build_head(
            self.spec.get("head", self.spec["method"]),
            embedding_dim,
            self.n_normal,
            switches=self.switches,
            **self.head_params,
        )

    def build_model(self) -> EmbeddingNet:
        """A fresh backbone + head on the CPU, initialised from the global RNG (a pretrained
        body: its ImageNet weights, read from the torch hub cache)."""
        args, kwargs = self._backbone_args()
        backbone = self._build_backbone(*args, **kwargs)
        return EmbeddingNet(backbone, self._build_head(backbone.embedding_dim))

    def fine_tune_settings(self) -> tuple[int, float]:
        """(freeze_epochs, lr_mult) of fine-tuning: the recipe's, or the config schema's defaults
        for a spec written without them; the run length (SphereFace's λ) and the training read
        the same values."""
        defaults = training_defaults()
        return (
            int(self.training.get("freeze_epochs", defaults["freeze_epochs"])),
            float(self.training.get("lr_mult", defaults["lr_mult"])),
        )

    @property
    def fine_tunes(self) -> bool:
        """Pretrained: fastai's fine_tune (frozen body first, then discriminative learning rates)."""
        return self.weights is not None

    @property
    def freeze_epochs(self) -> int:
        """Epochs of fine-tuning with the body frozen (``training.freeze_epochs``; the schema's
        default where a spec lacks it); 0 for a model trained from scratch."""
        return self.fine_tune_settings()[0] if self.fine_tunes else 0

    def reset(self, seed: int) -> None:
        """Seed the global RNGs and re-initialise the model as a fresh build with `seed` would be:
        the backbone from :data:`initial_backbone_state` (built on the CPU at the seed's first
        use in this process, kept on the device), the head built afresh from the random state
        the backbone's build left, both copied into the existing tensors."""
        torch.manual_seed(seed)
        args, kwargs = self._backbone_args()
        self.model.backbone.load_state_dict(self._initial_state(self.device, *args, **kwargs))
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
        epochs = self.training["epochs"] + self.freeze_epochs
        self.model.head.set_run_length(epochs * len(train_dl))
        return learn, local

    def train_case(self, case: Case, progress=None, position: int = 0) -> tuple[dict, list[dict]]:
        """Train one case; returns its arrays for embeddings.npz and its train_log rows.
        ``progress`` (a RunProgress) and ``position`` (the case's place among the run's cases):
        the per-epoch log line with the time left."""
        local, rows = self.fit(case, progress, position)
        return self.case_arrays(case, local), rows

    def fit(self, case: Case, progress=None, position: int = 0) -> tuple[torch.Tensor, list[dict]]:
        """Train the model on one case (re-initialised with the case's seed); returns the train
        split's labels remapped to the case's normal classes and the case's train_log rows.
        The tune stage trains its folds with it, and embeds only training images (:meth:`embed_train`)."""
        learn, local = self.learner(case)
        rows: list[dict] = []
        lr, epochs = self.training["lr"], self.training["epochs"]
        watch = {"progress": progress, "position": position}
        freeze, lr_mult = self.fine_tune_settings() if self.fine_tunes else (0, 1.0)
        # the switch select_best_epoch: the main fit ends on its epoch of lowest validation loss
        best = [BestEpoch(freeze)] if self.switches.get("select_best_epoch") else []
        with learn.no_bar(), learn.no_logging():
            if self.fine_tunes:
                fine_tune(
                    learn,
                    self.model,
                    epochs,
                    lr,
                    freeze,
                    lr_mult,
                    lambda offset: EpochLog(self.spec["method"], case.case, self.device, rows, offset, **watch),
                    cbs=best,
                )
            else:
                learn.fit_one_cycle(
                    epochs, lr, cbs=[EpochLog(self.spec["method"], case.case, self.device, rows, **watch), *best]
                )
        self.kept_epoch = best[0].kept_epoch if best else None
        return local, rows

    def embed_train(self, local: torch.Tensor, idx: np.ndarray, images: torch.Tensor | None = None) -> np.ndarray:
        """Embeddings [len(idx), D] float32 of the train split's images ``idx`` (after :meth:`fit`;
        ``images``: other images on the device instead, unlabelled)."""
        if images is None:
            images = self.data.x_train
        else:
            local = torch.zeros(len(images), dtype=torch.long, device=images.device)
        batches = DeviceBatches(images, local, idx, self.training["batch_size"], **self.inputs)
        return embed(self.model, batches)[0]

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
    runs writes a run in the background while the next one trains (dmlbench.train.job)."""
    t_start = time.perf_counter()
    clock = clock or NoClock()
    booked = clock.snapshot()
    if threads:
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    setup_device(dev, spec["training"].get("deterministic", False))
    cases = run_cases(ds, spec)
    bs, epochs = spec["training"]["batch_size"], spec["training"]["epochs"]
    train_images = sum(
        epochs * (len(c.train_idx) // bs * bs if len(c.train_idx) > bs else len(c.train_idx)) for c in cases
    )
    if data is None:
        with clock.phase("data"):
            data = JobData(ds, dev)
    # A tuned run (dmlbench.config.tuning) trains each case with its own best parameters: one
    # trainer per distinct set of them (a head's parameters are fixed when it is built).
    trainers: dict[str, RunTrainer] = {}

    def trainer_for(case: Case) -> RunTrainer:
        cspec = case_spec(spec, case.case)
        key = json.dumps([cspec["method_params"], cspec["training"]], sort_keys=True)
        if key not in trainers:
            with clock.phase("build"):
                trainer = RunTrainer(
                    ds,
                    cspec,
                    dev,
                    data=data,
                    warm_up_batch_size=min(bs, len(cases[0].train_idx)),
                    train_images=train_images,
                    clock=clock,
                )
            # A case's Learner set-up is build, its embeddings are embedding, the rest of it (the fit) training.
            trainer.learner = clock.timed("build", trainer.learner)
            trainer.case_arrays = clock.timed("embedding", trainer.case_arrays)
            trainers[key] = trainer
        return trainers[key]

    trainer = trainer_for(cases[0])
    arrays: dict[str, np.ndarray] = pack_job(ds.y_test, ds.classes)
    log_rows: list[dict] = []
    case_info = []
    # the per-epoch line in the job's log: epoch n/N, losses, the time left in this run
    progress = RunProgress(spec["method"], len(cases), epochs + trainer.freeze_epochs)
    for position, case in enumerate(cases):
        trainer = trainer_for(case)
        t0 = time.perf_counter()
        with clock.phase("training"):
            case_arrays, rows = trainer.train_case(case, progress, position)
        arrays.update(case_arrays)
        log_rows.extend(rows)
        case_info.append(
            {
                "case": case.case,
                "normal_classes": list(case.normal_classes),
                "anomaly_classes": list(case.anomaly_classes),
                "n_train": int(len(case.train_idx)),
                "n_val": int(len(case.val_idx)),
                "val_split": case.val_split,
                # the epoch the switch select_best_epoch kept (absent: the last one)
                **({"kept_epoch": trainer.kept_epoch} if trainer.kept_epoch is not None else {}),
                "head_state": trainer.model.head.state_summary(),
                **({"tuned_params": spec["case_params"].get(str(case.case))} if spec.get("case_params") else {}),
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
        # which GPU: its index among the visible ones, and the scheduler's list they index into
        "device_index": (torch.cuda.current_device() if dev.index is None else dev.index)
        if dev.type == "cuda"
        else None,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "threads": torch.get_num_threads(),
        **code_provenance(),
        "pretrained_weights": trainer.weights,
        # the original implementation's switches this run has on (docs/original.md)
        "switches": switches_on(spec["method_params"]),
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
