"""The tuning objective of one case: what a trial's parameters are worth, judged on the case's
normal training classes alone - never the test split, never an anomaly class.

- A case with three or more normal classes: leave-one-normal-class-out folds. In a fold one
  normal class plays the anomaly: the model trains on the case's training images of the other
  normal classes (the case's own images, seeds and validation carve-out), and the fold scores the
  validation images of those classes (normal) and every training image of the held-out class
  (anomalous) by the cosine distance to their nearest training embedding; the fold's value is the
  AUROC. The trial's value is the mean over the first ``folds`` classes of a seeded order of the
  case's normal classes (the same folds for every method and trial: paired).
- A case with two normal classes (CIFAR-10 at 8 anomaly classes) cannot train a fold on one class:
  the model trains on the case's training images and the value is the closed-set MAP@R of its
  validation images against its training images, cosine neighbours (pytorch-metric-learning's
  AccuracyCalculator).

Every image this module reads is named by :func:`fold_images` and :func:`closed_set_images`:
indices into the train split, of the case's normal classes only. tests/unit/tune/test_objective.py
poisons the test split and the anomaly classes' training images and checks every trial's value
is unchanged, bit for bit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np
import optuna
import torch
from pytorch_metric_learning.distances import CosineSimilarity
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
from pytorch_metric_learning.utils.inference import CustomKNN

from dmlbench.config.tuning import measure_for, with_params
from dmlbench.data.sources import Dataset
from dmlbench.data.splits import Case, case_rng
from dmlbench.errors import TrainingError
from dmlbench.metrics import auroc
from dmlbench.train.batches import JobData
from dmlbench.train.run import RunTrainer


def fold_classes(case: Case, seed: int, folds: int | str) -> list[int]:
    """The held-out classes of the case's folds: a seeded order of its normal classes (by
    (seed, case) only, never the method), the first ``folds`` of them (``all``: every one)."""
    order = case_rng(seed, case.case, "tuning folds").permutation(len(case.normal_classes))
    held = [case.normal_classes[i] for i in order]
    return held if folds == "all" else held[: int(folds)]


def fold_case(case: Case, y_train: np.ndarray, held_out: int) -> Case:
    """The case a fold trains on: the case without the held-out class (its images dropped from
    the training and the validation images; the class joins the anomalies)."""
    return replace(
        case,
        normal_classes=tuple(c for c in case.normal_classes if c != held_out),
        anomaly_classes=tuple(sorted((*case.anomaly_classes, held_out))),
        train_idx=case.train_idx[y_train[case.train_idx] != held_out],
        val_idx=case.val_idx[y_train[case.val_idx] != held_out],
    )


def fold_images(ds: Dataset, case: Case, held_out: int) -> tuple[str, np.ndarray, np.ndarray]:
    """The images a fold scores: their split ("train"), their indices there, and whether each is
    the fold's anomaly: the validation images of the other normal classes, then every training and
    validation image of the held-out class. All of them belong to the case's normal classes."""
    y = ds.y_train
    normal = case.val_idx[y[case.val_idx] != held_out]
    pool = np.concatenate([case.train_idx, case.val_idx])
    anomalous = np.sort(pool[y[pool] == held_out])
    idx = np.concatenate([normal, anomalous])
    return "train", idx, np.r_[np.zeros(len(normal), bool), np.ones(len(anomalous), bool)]


def closed_set_images(case: Case) -> tuple[np.ndarray, np.ndarray]:
    """The closed-set measure's query (validation) and reference (training) images, as indices
    into the train split."""
    return case.val_idx, case.train_idx


def nearest_cosine_distance(queries: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """1 - the largest cosine similarity of each query to the reference rows (float64)."""
    q = torch.nn.functional.normalize(torch.from_numpy(queries).double(), dim=1)
    r = torch.nn.functional.normalize(torch.from_numpy(reference).double(), dim=1)
    return (1.0 - (q @ r.T).max(dim=1).values).numpy()


def _finite(arr: np.ndarray, what: str) -> np.ndarray:
    if not np.isfinite(arr).all():
        raise TrainingError(f"{what}: embeddings are not finite (training diverged)")
    return arr


@dataclass
class CaseObjective:
    """The objective of one case of a tune job: :meth:`__call__` takes a trial's parameters and
    returns (value, per-fold values)."""

    ds: Dataset
    data: JobData
    case: Case
    spec: dict  # the tune job's spec (dmlbench.config.tuning.tune_spec)
    device: torch.device
    timeout: float | None = None

    @property
    def measure(self) -> str:
        return measure_for(len(self.case.normal_classes))

    @property
    def folds(self) -> list[int]:
        if self.measure != "lofo_auroc":
            return []
        return fold_classes(self.case, int(self.spec["seed"]), self.spec["tuning"]["folds"])

    def _trainer(self, spec: dict, n_anomaly: int) -> RunTrainer:
        return RunTrainer(self.ds, {**spec, "n_anomaly": n_anomaly}, self.device, data=self.data)

    def fold_value(self, spec: dict, held_out: int) -> float:
        """One fold: train without ``held_out``, score the fold's images, AUROC."""
        fcase = fold_case(self.case, self.ds.y_train, held_out)
        trainer = self._trainer(spec, len(fcase.anomaly_classes))
        local, _ = trainer.fit(fcase)
        reference = _finite(trainer.embed_train(local, fcase.train_idx), f"fold without class {held_out}")
        split, idx, is_anomaly = fold_images(self.ds, self.case, held_out)
        images = None if split == "train" else self.data.x_test
        queries = _finite(trainer.embed_train(local, idx, images), f"fold without class {held_out}")
        return float(auroc(nearest_cosine_distance(queries, reference), is_anomaly))

    def closed_set_value(self, spec: dict) -> float:
        """Train on the case; MAP@R of its validation images against its training images."""
        trainer = self._trainer(spec, len(self.case.anomaly_classes))
        local, _ = trainer.fit(self.case)
        query_idx, ref_idx = closed_set_images(self.case)
        query = _finite(trainer.embed_train(local, query_idx), "closed-set model")
        reference = _finite(trainer.embed_train(local, ref_idx), "closed-set model")
        y = self.ds.y_train
        # cosine neighbours, as the anomaly scores use, found by torch (PML's default kNN needs faiss)
        calc = AccuracyCalculator(
            include=("mean_average_precision_at_r",), k="max_bin_count", knn_func=CustomKNN(CosineSimilarity()),
            device=torch.device("cpu"),
        )  # fmt: skip
        acc = calc.get_accuracy(
            query=torch.from_numpy(query),
            query_labels=torch.from_numpy(y[query_idx]),
            reference=torch.from_numpy(reference),
            reference_labels=torch.from_numpy(y[ref_idx]),
            ref_includes_query=False,
        )
        return float(acc["mean_average_precision_at_r"])

    def __call__(self, params: dict) -> tuple[float, list[float]]:
        """The value of ``params`` (a trial's parameters, dmlbench.config.tuning.split_params'
        names) and its per-fold values. A trial still running past ``timeout`` seconds after a
        fold is pruned (optuna.TrialPruned); a diverged one too (TrainingError)."""
        spec = with_params(self.spec, params)
        start = time.perf_counter()
        if self.measure != "lofo_auroc":
            value = self.closed_set_value(spec)
            return value, [value]
        values = []
        for i, held in enumerate(self.folds):
            values.append(self.fold_value(spec, held))
            elapsed = time.perf_counter() - start
            if self.timeout is not None and elapsed > self.timeout and i + 1 < len(self.folds):
                raise optuna.TrialPruned(
                    f"past tuning.timeout_per_trial ({self.timeout:g} s) after {i + 1} of {len(self.folds)} folds"
                )
        return float(np.mean(values)), values
