import numpy as np
import pytest

from dmlbench.data.splits import (
    anomaly_classes,
    carve_validation,
    case_rng,
    class_order,
    make_case,
    subsample,
)
from dmlbench.errors import ConfigError


def test_rotation_worked_example():
    # C = 10, n_anomaly = 3: case k takes classes k, k+1, k+2 (mod 10) as anomalies.
    assert anomaly_classes(10, 0, 3) == (0, 1, 2)
    assert anomaly_classes(10, 4, 3) == (4, 5, 6)
    assert anomaly_classes(10, 8, 3) == (0, 8, 9)  # wraps around
    assert anomaly_classes(10, 9, 1) == (9,)
    # CIFAR-10 with 8 anomaly classes, case 5: everything but classes 3 and 4 is anomalous.
    assert set(range(10)) - set(anomaly_classes(10, 5, 8)) == {3, 4}


def test_alphabetical_order_changes_which_classes_rotate():
    classes = ["zebra", "apple", "mango"]  # alphabetical: apple(1), mango(2), zebra(0)
    order = class_order(classes, "alphabetical")
    assert order == [1, 2, 0]
    assert anomaly_classes(3, 0, 1, order) == (1,)
    assert anomaly_classes(3, 1, 1, order) == (2,)
    assert anomaly_classes(3, 2, 1, order) == (0,)
    assert class_order(classes, "canonical") == [0, 1, 2]
    with pytest.raises(ConfigError, match="canonical, alphabetical"):
        class_order(classes, "random")


@pytest.mark.parametrize("n", [-1, 10, 11])
def test_impossible_n_anomaly_is_refused(n):
    with pytest.raises(ConfigError, match=f"n_anomaly {n}"):
        anomaly_classes(10, 0, n)


def test_zero_anomaly_classes_is_the_closed_set():
    assert anomaly_classes(10, 3, 0) == ()


def test_case_out_of_range_is_refused():
    with pytest.raises(ConfigError, match="case 10"):
        anomaly_classes(10, 10, 1)


def _labels():
    return np.repeat(np.arange(4), [50, 30, 20, 40])


def test_subsample_counts_and_reproducibility():
    y = _labels()
    idx = subsample(y, (0, 2, 3), 7, case_rng(0, 1, "subsample"))
    assert np.bincount(y[idx], minlength=4).tolist() == [7, 0, 7, 7]
    assert len(np.unique(idx)) == len(idx) and np.all(np.diff(idx) > 0)
    again = subsample(y, (0, 2, 3), 7, case_rng(0, 1, "subsample"))
    np.testing.assert_array_equal(idx, again)
    other_seed = subsample(y, (0, 2, 3), 7, case_rng(1, 1, "subsample"))
    assert not np.array_equal(idx, other_seed)
    other_case = subsample(y, (0, 2, 3), 7, case_rng(0, 2, "subsample"))
    assert not np.array_equal(idx, other_case)


def test_subsample_all_and_too_many():
    y = _labels()
    assert len(subsample(y, (1, 2), "all", case_rng(0, 0, "s"))) == 50
    with pytest.raises(ConfigError, match="n_per_class 21 is larger than class 'c2' has \\(20"):
        subsample(y, (1, 2), 21, case_rng(0, 0, "s"), class_names=["c0", "c1", "c2", "c3"])


def test_validation_is_carved_from_training_and_stratified():
    y = _labels()
    idx = np.flatnonzero(y != 1)
    train, val = carve_validation(y, idx, 0.1, case_rng(0, 0, "validation"))
    assert set(train) | set(val) == set(idx) and not set(train) & set(val)
    assert np.bincount(y[val], minlength=4).tolist() == [5, 0, 2, 4]
    train0, val0 = carve_validation(y, idx, 0.0, case_rng(0, 0, "validation"))
    np.testing.assert_array_equal(train0, idx)
    assert len(val0) == 0


def test_make_case_is_paired_across_calls_and_uses_only_normal_classes():
    y = np.repeat(np.arange(5), 40)
    classes = ["a", "b", "c", "d", "e"]
    a = make_case(y, classes, 3, 2, n_per_class=10, seed=4, val_fraction=0.2)
    b = make_case(y, classes, 3, 2, n_per_class=10, seed=4, val_fraction=0.2)
    assert a.anomaly_classes == (3, 4) and a.normal_classes == (0, 1, 2)
    np.testing.assert_array_equal(a.train_idx, b.train_idx)
    np.testing.assert_array_equal(a.val_idx, b.val_idx)
    assert set(y[a.train_idx]) == {0, 1, 2} and set(y[a.val_idx]) == {0, 1, 2}
    assert np.bincount(y[a.train_idx], minlength=5).tolist() == [8, 8, 8, 0, 0]
    assert np.bincount(y[a.val_idx], minlength=5).tolist() == [2, 2, 2, 0, 0]


def _spec(cases, n_anomaly=2):
    return {
        "dataset": "toy",
        "cases": cases,
        "n_anomaly": n_anomaly,
        "class_order": "canonical",
        "n_per_class": "all",
        "seed": 0,
        "training": {"val_fraction": 0.0},
    }


def test_run_cases_all_is_every_rotation_each_class_an_anomaly_n_anomaly_times():
    from dmlbench.data.sources import Dataset
    from dmlbench.data.splits import run_cases

    y = np.repeat(np.arange(4), 5)
    ds = Dataset(np.zeros((20, 4, 4, 1), np.uint8), y, np.zeros((20, 4, 4, 1), np.uint8), y, list("abcd"))
    cases = run_cases(ds, _spec("all"))
    assert [c.anomaly_classes for c in cases] == [(0, 1), (1, 2), (2, 3), (0, 3)]
    assert np.bincount([a for c in cases for a in c.anomaly_classes]).tolist() == [2, 2, 2, 2]
    assert [c.anomaly_classes for c in run_cases(ds, _spec(2))] == [(0, 1), (1, 2)]
    with pytest.raises(
        ConfigError, match=r"cases 5 exceeds the 4 classes of dataset 'toy'; use cases <= 4 or `cases: all`"
    ):
        run_cases(ds, _spec(5))
