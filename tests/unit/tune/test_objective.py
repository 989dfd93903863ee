"""The tuning objective never sees the test split or an anomaly class: poisoning both leaves every
trial's value unchanged, bit for bit; pointed at the test split, the same check fails."""

import numpy as np
import pytest
import torch

from dmlbench.config.tuning import tune_spec
from dmlbench.data.sources import Dataset, load_source
from dmlbench.data.splits import run_cases
from dmlbench.errors import TrainingError
from dmlbench.train.batches import JobData
from dmlbench.tune import objective as objective_module
from dmlbench.tune.objective import CaseObjective, fold_case, fold_classes, fold_images
from tests.helpers.tuning import tuning_config

PARAMS = [{"training.lr": 0.004, "scale": 12.0}, {"training.lr": 0.01, "scale": 40.0}]


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_source({"source": "digits", "image_size": 8})


def poisoned(ds: Dataset, anomaly_classes, *, nan_test: bool) -> Dataset:
    """The test split NaN (or noise) with its labels shuffled, and every training image of the
    anomaly classes noise with its labels shuffled among them."""
    rng = np.random.default_rng(123)
    if nan_test:
        x_test = np.full(ds.x_test.shape, np.nan, dtype=np.float32)
    else:
        x_test = rng.integers(0, 256, ds.x_test.shape, dtype=np.uint8)
    x_train, y_train = ds.x_train.copy(), ds.y_train.copy()
    bad = np.isin(y_train, anomaly_classes)
    x_train[bad] = rng.integers(0, 256, x_train[bad].shape, dtype=np.uint8)
    y_train[bad] = rng.permutation(y_train[bad])
    return Dataset(x_train, y_train, x_test, rng.permutation(ds.y_test), list(ds.classes))


def values(ds: Dataset, spec: dict, case_index: int) -> list[tuple[float, list[float]]]:
    dev = torch.device("cpu")
    case = run_cases(ds, spec)[case_index]
    objective = CaseObjective(ds, JobData(ds, dev), case, spec, dev)
    return [objective(p) for p in PARAMS]


@pytest.mark.parametrize("n_anomaly", [3, 8], ids=["folds", "closed-set"])
def test_poisoning_the_test_split_and_the_anomaly_classes_changes_no_trial(digits, n_anomaly):
    """Case 1 (its anomaly classes are normal in case 0: poisoning them is a per-case matter)."""
    spec = tune_spec(tuning_config(n_anomaly), "digits", n_anomaly, "arcface", "all", 0)
    case = run_cases(digits, spec)[1]
    clean = values(digits, spec, 1)
    assert all(np.isfinite(v) and 0 <= v <= 1 for v, _ in clean)
    assert clean[0] != clean[1]  # the parameters matter: the check below is not vacuous
    dirty = values(poisoned(digits, case.anomaly_classes, nan_test=True), spec, 1)
    assert dirty == clean  # floats compared exactly: bit for bit


def test_the_check_fails_when_the_objective_reads_the_test_split(digits, monkeypatch):
    """The same objective with each fold scoring the test split (the case's anomaly classes as
    anomalies): poisoning the test split now changes the values, so the check above has power."""

    def test_split(ds, case, held_out):
        return "test", np.arange(len(ds.y_test)), np.isin(ds.y_test, case.anomaly_classes)

    monkeypatch.setattr(objective_module, "fold_images", test_split)
    spec = tune_spec(tuning_config(3), "digits", 3, "arcface", "all", 0)
    case = run_cases(digits, spec)[0]
    clean = values(digits, spec, 0)
    try:
        dirty = values(poisoned(digits, case.anomaly_classes, nan_test=False), spec, 0)
    except TrainingError:
        dirty = None
    assert dirty != clean


def test_folds_hold_out_normal_classes_only_and_score_training_images(digits):
    spec = tune_spec(tuning_config(3), "digits", 3, "arcface", "all", 0)
    case = run_cases(digits, spec)[1]
    held = fold_classes(case, 0, 2)
    assert len(held) == 2 and set(held) <= set(case.normal_classes)
    assert held == fold_classes(case, 0, 2)  # seeded by (seed, case) alone: the same for every method
    assert fold_classes(case, 0, "all") == fold_classes(case, 0, 7)[:7] and len(fold_classes(case, 0, "all")) == 7
    fold = fold_case(case, digits.y_train, held[0])
    assert held[0] not in fold.normal_classes and held[0] in fold.anomaly_classes
    assert not np.isin(digits.y_train[fold.train_idx], [held[0], *case.anomaly_classes]).any()
    split, idx, is_anomaly = fold_images(digits, case, held[0])
    assert split == "train"
    assert np.isin(digits.y_train[idx], case.normal_classes).all()  # no anomaly class, no test image
    assert (digits.y_train[idx][is_anomaly] == held[0]).all()
    assert (digits.y_train[idx][~is_anomaly] != held[0]).all()
    assert not np.isin(idx[~is_anomaly], fold.train_idx).any()  # normal queries are validation images
