"""Cases: which classes are normal and which anomalous, and the training images of a case.

Case k of a condition with C classes and n anomaly classes takes the classes at positions
(k + j) mod C, j < n, of the class order as anomalies; the others are normal. The training
set of a case is the dataset's train split (the official one, or a seeded draw for digits)
restricted to its normal classes, optionally subsampled to `n_per_class` images per class,
and a validation split for monitoring is carved from it (never from the test set). All random choices depend on (seed, case) only,
never on the method, so every method of a comparison sees the same images (paired).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from dmlbench.data.sources import Dataset
from dmlbench.errors import ConfigError


@dataclass(frozen=True)
class Case:
    case: int
    normal_classes: tuple[int, ...]  # dataset class indices, ascending
    anomaly_classes: tuple[int, ...]  # dataset class indices, ascending
    train_idx: np.ndarray  # indices into the train split: training images (reference set)
    val_idx: np.ndarray  # indices into `val_split`: held-out monitoring images
    #: the split val_idx indexes: "train" (dmlbench's carve-out) or "test" (the original
    #: implementation's validate_on_test: the test split's images of the normal classes)
    val_split: str = "train"


def class_order(classes: list[str], order: str) -> list[int]:
    """Dataset class indices in rotation order: canonical (as stored) or alphabetical by name."""
    if order == "canonical":
        return list(range(len(classes)))
    if order == "alphabetical":
        return sorted(range(len(classes)), key=lambda i: classes[i])
    raise ConfigError(f"class_order '{order}' is unknown; allowed values: canonical, alphabetical")


def anomaly_classes(n_classes: int, case: int, n_anomaly: int, order: list[int] | None = None) -> tuple[int, ...]:
    """Dataset class indices that are anomalies in `case`: positions (case + j) mod C, j < n_anomaly.

    n_anomaly = 0 is the closed-set model trained on all classes (t-SNE, accuracy checks)."""
    if not 0 <= n_anomaly < n_classes:
        raise ConfigError(f"n_anomaly {n_anomaly} is impossible with {n_classes} classes: use 1..{n_classes - 1}")
    if not 0 <= case < n_classes:
        raise ConfigError(f"case {case} is out of range for {n_classes} classes: cases must be <= {n_classes}")
    order = list(range(n_classes)) if order is None else order
    return tuple(sorted(order[(case + j) % n_classes] for j in range(n_anomaly)))


def case_rng(seed: int, case: int, purpose: str) -> np.random.Generator:
    """Independent, reproducible stream per (seed, case, purpose); the method never enters."""
    return np.random.default_rng([seed, case, sum(purpose.encode())])


def subsample(
    y: np.ndarray,
    classes: tuple[int, ...],
    n_per_class: int | str,
    rng: np.random.Generator,
    class_names: list[str] | None = None,
) -> np.ndarray:
    """Indices of up to `n_per_class` images of each class in `classes` (all when 'all'), sorted."""
    picked = []
    for c in classes:
        idx = np.flatnonzero(y == c)
        if n_per_class != "all":
            if n_per_class > len(idx):
                name = class_names[c] if class_names else str(c)
                raise ConfigError(
                    f"n_per_class {n_per_class} is larger than class '{name}' has ({len(idx)} training "
                    f"images); use n_per_class <= {len(idx)} or 'all'"
                )
            idx = np.sort(rng.choice(idx, size=n_per_class, replace=False))
        picked.append(idx)
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)


def carve_validation(
    y: np.ndarray, idx: np.ndarray, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Split `idx` into (train, val), stratified: round(fraction * n_c) per class, at least one
    image kept for training in each class."""
    if fraction <= 0:
        return idx, np.zeros(0, dtype=np.int64)
    train, val = [], []
    for c in np.unique(y[idx]):
        members = idx[y[idx] == c]
        n_val = min(int(round(fraction * len(members))), len(members) - 1)
        perm = rng.permutation(len(members))
        val.append(members[perm[:n_val]])
        train.append(members[perm[n_val:]])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def make_case(
    y_train: np.ndarray,
    classes: list[str],
    case: int,
    n_anomaly: int,
    *,
    order: str = "canonical",
    n_per_class: int | str = "all",
    seed: int = 0,
    val_fraction: float = 0.1,
) -> Case:
    """The normal/anomaly classes and training/validation images of one case."""
    n_classes = len(classes)
    anomalies = anomaly_classes(n_classes, case, n_anomaly, class_order(classes, order))
    normals = tuple(c for c in range(n_classes) if c not in anomalies)
    idx = subsample(y_train, normals, n_per_class, case_rng(seed, case, "subsample"), classes)
    for c in normals:
        if not np.any(y_train[idx] == c):
            raise ConfigError(f"class '{classes[c]}' has no training images; check the dataset")
    train_idx, val_idx = carve_validation(y_train, idx, val_fraction, case_rng(seed, case, "validation"))
    return Case(case, normals, anomalies, train_idx, val_idx)


def test_validation(y_test: np.ndarray, case: Case, n_per_class: int | str, seed: int) -> Case:
    """The original implementation's ``validate_on_test`` (docs/original.md): ``case`` with its
    validation images taken from the test split, ``n_per_class`` images of each normal class
    (all when 'all' or when the class has fewer), as the original's create_test_data copied
    them into each case's ``valid`` folder. Seeded by (seed, case) only, like every draw here."""
    rng = case_rng(seed, case.case, "test-validation")
    picked = []
    for c in case.normal_classes:
        idx = np.flatnonzero(y_test == c)
        if n_per_class != "all" and n_per_class < len(idx):
            idx = np.sort(rng.choice(idx, size=n_per_class, replace=False))
        picked.append(idx)
    val_idx = np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)
    return replace(case, val_idx=val_idx, val_split="test")


def run_cases(ds: Dataset, spec: dict) -> list[Case]:
    """The cases of a run: ``spec["cases"]`` cases of the dataset, each with its normal and anomaly
    classes, its subsampled training images and validation carve-out (a run spec: config.train_spec).

    With the switch ``validate_on_test`` in the spec's method parameters, nothing is carved out of
    the training images and the validation images come from the test split (:func:`test_validation`)."""
    n_classes = len(ds.classes)
    if spec["cases"] > n_classes:
        raise ConfigError(f"cases {spec['cases']} exceeds the {n_classes} classes of dataset '{spec['dataset']}'")
    on_test = bool(spec.get("method_params", {}).get("validate_on_test"))
    cases = [
        make_case(
            ds.y_train,
            ds.classes,
            k,
            spec["n_anomaly"],
            order=spec["class_order"],
            n_per_class=spec["n_per_class"],
            seed=spec["seed"],
            val_fraction=0.0 if on_test else spec["training"]["val_fraction"],
        )
        for k in range(spec["cases"])
    ]
    if on_test:
        cases = [test_validation(ds.y_test, c, spec["n_per_class"], spec["seed"]) for c in cases]
    return cases
