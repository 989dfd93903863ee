"""Training: one job trains every case of a (dataset, n_anomaly, method, n_per_class, seed).

The dataset is moved to the device once, as uint8; batches are cut from it by index,
augmented (random crop with zero padding, horizontal flip) and normalised per batch on the
device, so there is no per-image Python in the loop. fastai's Learner runs the one-cycle
schedule; the model's forward returns the embedding and the method's head supplies the loss,
so every head parameter is in the optimiser.

Per job it writes (DESIGN section 4), each file atomically:
  embeddings.npz  per case: reference (training) and test embeddings (float16), test logits
  train_log.csv   per case and epoch: train loss, validation loss and accuracy, seconds
  run.json        the spec, versions, device, git commit, wall time, per-case classes
"""

from __future__ import annotations

import logging
import math
import platform
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from . import __version__
from .datasets import Dataset
from .errors import ConfigError, TrainingError
from .heads import build_head
from .io import write_csv, write_json, write_npz
from .models import EmbeddingNet, build_backbone
from .splits import Case, make_case

log = logging.getLogger("dmlbench.train")


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device '{device}' was asked for but CUDA is not available; use --device cpu or auto")
    return torch.device(device)


def case_seed(seed: int, case: int) -> int:
    return seed * 1000 + case


class DeviceBatches:
    """Batches (x float [B,C,H,W], y int64 [B]) cut from a uint8 NHWC tensor on the device.

    `labels` are already mapped to 0..n_normal-1. The order is drawn from a torch Generator
    seeded per epoch, so runs repeat; augmentation draws from the same generator on the device.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, idx: np.ndarray, batch_size: int, *,
                 mean: torch.Tensor, std: torch.Tensor, shuffle: bool = False, flip: bool = False,
                 crop_padding: int = 0, seed: int = 0, drop_last: bool = False):
        self.images, self.labels = images, labels
        self.idx = torch.as_tensor(idx, dtype=torch.long, device=images.device)
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.flip, self.crop_padding = flip, crop_padding
        self.mean, self.std = mean, std
        self.seed, self.epoch = seed, 0
        self.device = images.device

    def __len__(self) -> int:
        n = len(self.idx)
        return n // self.batch_size if self.drop_last and n >= self.batch_size else math.ceil(n / self.batch_size)

    def to(self, device):  # fastai moves loaders; ours already live where the data is
        return self

    def _augment(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        b, _, h, w = x.shape
        if self.crop_padding:
            p = self.crop_padding
            padded = nn.functional.pad(x, (p, p, p, p))
            dy = torch.randint(0, 2 * p + 1, (b,), generator=gen, device=x.device)
            dx = torch.randint(0, 2 * p + 1, (b,), generator=gen, device=x.device)
            rows = (dy[:, None] + torch.arange(h, device=x.device)[None, :])[:, None, :, None]
            cols = (dx[:, None] + torch.arange(w, device=x.device)[None, :])[:, None, None, :]
            bi = torch.arange(b, device=x.device)[:, None, None, None]
            ci = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
            x = padded[bi, ci, rows, cols]
        if self.flip:
            mask = torch.rand(b, generator=gen, device=x.device) < 0.5
            x = torch.where(mask[:, None, None, None], x.flip(3), x)
        return x

    def __iter__(self):
        gen = torch.Generator(device=self.device)
        gen.manual_seed(self.seed * 100_003 + self.epoch)
        self.epoch += 1
        order = self.idx
        if self.shuffle:
            order = self.idx[torch.randperm(len(self.idx), generator=gen, device=self.device)]
        for i in range(len(self)):
            ix = order[i * self.batch_size:(i + 1) * self.batch_size]
            x = self.images[ix].permute(0, 3, 1, 2).float().div_(255)
            x = (x - self.mean) / self.std
            if self.shuffle:  # training batches are augmented, evaluation ones never
                x = self._augment(x, gen)
            yield x.contiguous(memory_format=torch.channels_last), self.labels[ix]


class HeadLoss:
    """fastai loss function around the head: `reduction` and `y_int` let MixUp combine the two
    label terms of the method's own loss (fastai's NoneReduce sets reduction='none')."""

    y_int = True

    def __init__(self, head: nn.Module):
        self.head, self.reduction = head, "mean"

    def __call__(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.head.loss(embeddings, labels, reduction=self.reduction)


def head_accuracy(head: nn.Module):
    def accuracy(embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return (head.logits(embeddings).argmax(dim=1) == labels).float().mean()
    return accuracy


def _head_mixup():
    from fastai.callback.mixup import MixUp

    class HeadMixUp(MixUp):
        """fastai's MixUp (inputs mixed, lam >= 0.5 on the batch's own labels), with the two
        label terms combined by the head's own `mixup_loss`: one call per step, so stateful
        heads (SphereFace's annealing counter, CenterLoss's centres) advance once, not twice."""

        def lf(self, pred, *yb):
            if not self.training:
                return self.old_lf(pred, *yb)
            return self.old_lf.head.mixup_loss(pred, yb[0], self.yb1[0], self.lam)

    return HeadMixUp


def build_learner(model: EmbeddingNet, train_dl: DeviceBatches, valid_dl: DeviceBatches, training: dict,
                  method_params: dict):
    """The fastai Learner the pipeline trains with (tests take optimiser steps through it)."""
    import fastai.callback.progress  # noqa: F401  (adds Learner.no_bar)
    import fastai.callback.schedule  # noqa: F401  (adds Learner.fit_one_cycle)
    from fastai.data.core import DataLoaders
    from fastai.learner import Learner

    dls = DataLoaders(train_dl, valid_dl, device=train_dl.device)
    cbs = [_head_mixup()(method_params.get("mixup_alpha", 0.4))] if method_params.get("mixup") else []
    return Learner(dls, model, loss_func=HeadLoss(model.head), metrics=[head_accuracy(model.head)],
                   wd=training["weight_decay"], cbs=cbs)


@torch.no_grad()
def embed(model: EmbeddingNet, batches: DeviceBatches) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings [N, D] float32 and head logits [N, n_normal] float32, in index order."""
    model.eval()
    embs, logits = [], []
    for x, _ in batches:
        e = model(x)
        embs.append(e.float())
        logits.append(model.head.logits(e).float())
    return torch.cat(embs).cpu().numpy(), torch.cat(logits).cpu().numpy()


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict:
    import fastai

    return {"dmlbench": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "fastai": fastai.__version__, "numpy": np.__version__}


def train_case(ds: Dataset, images: torch.Tensor, labels_all: torch.Tensor, case: Case, spec: dict,
               device: torch.device) -> tuple[dict, list[dict]]:
    """Train one case; returns its arrays for embeddings.npz and its train_log rows."""
    from fastai.callback.core import Callback

    training, method = spec["training"], spec["method"]
    torch.manual_seed(case_seed(spec["seed"], case.case))
    normals = list(case.normal_classes)
    # Labels of the head: position of the class among the case's normal classes.
    remap = torch.full((len(ds.classes),), -1, dtype=torch.long, device=device)
    remap[torch.as_tensor(normals, device=device)] = torch.arange(len(normals), device=device)
    local = remap[labels_all]

    x_train = images["train"]
    common = dict(mean=images["mean"], std=images["std"])
    bs = training["batch_size"]
    seed = case_seed(spec["seed"], case.case)
    train_dl = DeviceBatches(x_train, local, case.train_idx, bs, shuffle=True, flip=spec["flip"],
                             crop_padding=training["crop_padding"], seed=seed,
                             drop_last=len(case.train_idx) > bs, **common)
    valid_idx = case.val_idx if len(case.val_idx) else case.train_idx[:bs]
    valid_dl = DeviceBatches(x_train, local, valid_idx, bs, **common)

    in_channels = ds.x_train.shape[3]
    backbone = build_backbone(spec["model"]["backbone"], in_channels, spec["model"]["embedding_dim"])
    params = {k: v for k, v in spec["method_params"].items() if k not in ("mixup", "mixup_alpha")}
    head = build_head(method, backbone.embedding_dim, len(normals), **params)
    model = EmbeddingNet(backbone, head).to(device).to(memory_format=torch.channels_last)
    learn = build_learner(model, train_dl, valid_dl, training, spec["method_params"])

    rows: list[dict] = []

    class EpochLog(Callback):
        order = 60  # after the Recorder has its epoch values

        def before_epoch(self):
            if device.type == "cuda":
                torch.cuda.synchronize()
            self.t0 = time.perf_counter()

        def after_epoch(self):
            if device.type == "cuda":
                torch.cuda.synchronize()
            train_loss, valid_loss, accuracy = (float(v) for v in self.learn.recorder.values[-1])
            if not (math.isfinite(train_loss) and math.isfinite(valid_loss)):
                raise TrainingError(
                    f"method '{method}', case {case.case}, epoch {self.epoch}: the loss became "
                    f"{'NaN' if math.isnan(train_loss) or math.isnan(valid_loss) else 'infinite'} "
                    f"(train {train_loss}, validation {valid_loss}); lower training.lr or check the "
                    f"method's parameters. No embeddings were written."
                )
            rows.append({"case": case.case, "epoch": self.epoch, "train_loss": train_loss,
                         "valid_loss": valid_loss, "valid_accuracy": accuracy,
                         "seconds": time.perf_counter() - self.t0})
            log.info("case %d epoch %d: train loss %.4f, valid loss %.4f, valid acc %.4f, %.1fs",
                     case.case, self.epoch, train_loss, valid_loss, accuracy, rows[-1]["seconds"])

    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(training["epochs"], training["lr"], cbs=[EpochLog()])

    ref_emb, _ = embed(model, DeviceBatches(x_train, local, case.train_idx, bs, **common))
    test_emb, test_logits = embed(model, DeviceBatches(images["test"], images["y_test"],
                                                      np.arange(len(ds.y_test)), bs, **common))
    for name, arr in (("reference", ref_emb), ("test", test_emb), ("logits", test_logits)):
        if not np.isfinite(arr).all():
            raise TrainingError(f"method '{method}', case {case.case}: {name} embeddings contain NaN or "
                                f"infinite values after training; lower training.lr. No embeddings were written.")
    k = case.case
    arrays = {
        f"case{k}_reference": ref_emb.astype(np.float16),
        f"case{k}_reference_index": case.train_idx.astype(np.int64),
        f"case{k}_reference_labels": ds.y_train[case.train_idx].astype(np.int64),
        f"case{k}_test": test_emb.astype(np.float16),
        f"case{k}_test_logits": test_logits.astype(np.float32),
        f"case{k}_normal_classes": np.asarray(normals, dtype=np.int64),
    }
    return arrays, rows


def train_job(ds: Dataset, spec: dict, out_dir: str | Path, device: str = "auto", threads: int | None = None) -> None:
    """Train all cases of one job and write embeddings.npz, train_log.csv and run.json to out_dir."""
    t_start = time.perf_counter()
    if threads:
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    if dev.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    n_classes = len(ds.classes)
    if spec["cases"] > n_classes:
        raise ConfigError(f"cases {spec['cases']} exceeds the {n_classes} classes of dataset '{spec['dataset']}'")
    cases = [make_case(ds.y_train, ds.classes, k, spec["n_anomaly"], order=spec["class_order"],
                       n_per_class=spec["n_per_class"], seed=spec["seed"],
                       val_fraction=spec["training"]["val_fraction"]) for k in range(spec["cases"])]
    images = {"train": torch.from_numpy(ds.x_train).to(dev), "test": torch.from_numpy(ds.x_test).to(dev),
              "y_test": torch.from_numpy(ds.y_test).to(dev)}
    # Per-channel normalisation from the whole train split: the same for every case, computed once.
    pixels = images["train"].float()
    images["mean"] = pixels.mean(dim=(0, 1, 2)).div(255).view(1, -1, 1, 1)
    images["std"] = pixels.std(dim=(0, 1, 2)).div(255).clamp_min(1e-3).view(1, -1, 1, 1)
    del pixels
    labels_all = torch.from_numpy(ds.y_train.astype(np.int64)).to(dev)

    arrays: dict[str, np.ndarray] = {"test_labels": ds.y_test.astype(np.int64),
                                     "classes": np.asarray(ds.classes)}
    log_rows: list[dict] = []
    case_info = []
    for case in cases:
        t0 = time.perf_counter()
        case_arrays, rows = train_case(ds, images, labels_all, case, spec, dev)
        arrays.update(case_arrays)
        log_rows.extend(rows)
        case_info.append({"case": case.case, "normal_classes": list(case.normal_classes),
                          "anomaly_classes": list(case.anomaly_classes), "n_train": int(len(case.train_idx)),
                          "n_val": int(len(case.val_idx)), "seconds": time.perf_counter() - t0})

    out = Path(out_dir)
    # run.json last: the three files appear together at the end, never a partial job.
    write_npz(out / "embeddings.npz", **arrays)
    write_csv(out / "train_log.csv", pd.DataFrame(log_rows))
    write_json(out / "run.json", {
        "spec": spec, "classes": list(ds.classes), "cases": case_info, "versions": versions(),
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({platform.processor() or platform.machine()})",
        "threads": torch.get_num_threads(), "git_commit": git_commit(),
        "wall_seconds": time.perf_counter() - t_start,
    })
