import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from dmlbench.errors import DmlbenchError
from dmlbench.metrics import (
    DETECTION_METRICS,
    aupr_in,
    aupr_out,
    auroc,
    average_precision,
    class_mean_scores,
    detection_metrics,
    fpr95,
    fpr_at_tpr,
    normalised_distances,
)


def test_auroc_worked_example_with_ties():
    # anomalies: 0.9, 0.5, 0.3 ; normals: 0.5, 0.2
    # pairs (anomaly > normal): 0.9>0.5 1, 0.9>0.2 1, 0.5=0.5 1/2, 0.5>0.2 1, 0.3<0.5 0, 0.3>0.2 1
    # = 4.5 of 6 pairs
    scores = np.array([0.9, 0.5, 0.3, 0.5, 0.2])
    is_anomaly = np.array([1, 1, 1, 0, 0], bool)
    assert auroc(scores, is_anomaly) == pytest.approx(4.5 / 6)


def test_auroc_extremes():
    assert auroc([1, 2, 3, 4], [0, 0, 1, 1]) == 1.0
    assert auroc([4, 3, 2, 1], [0, 0, 1, 1]) == 0.0
    assert auroc([1, 1, 1, 1], [0, 1, 0, 1]) == 0.5


@pytest.mark.parametrize("seed", range(5))
def test_auroc_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.random(300) < 0.3
    scores = np.round(rng.normal(size=300) + y, 1)  # rounding makes many ties
    assert auroc(scores, y) == pytest.approx(roc_auc_score(y, scores), abs=1e-12)


def test_auroc_needs_both_classes_and_finite_scores():
    with pytest.raises(DmlbenchError, match="both normal and anomalous"):
        auroc([0.1, 0.2], [1, 1])
    with pytest.raises(DmlbenchError, match="NaN"):
        auroc([0.1, np.nan], [0, 1])


def test_class_mean_scores_normalised_by_normal_mean():
    scores = np.array([1.0, 3.0, 2.0, 10.0, 8.0])
    labels = np.array([0, 0, 1, 2, 2])
    classes, means, normal_mean = class_mean_scores(scores, labels, normal_classes=[0, 1])
    assert classes.tolist() == [0, 1, 2]
    assert means.tolist() == [2.0, 2.0, 9.0]
    assert normal_mean == 2.0  # mean of the normal class means: (2 + 2) / 2
    assert (means / normal_mean).tolist() == [1.0, 1.0, 4.5]


def test_normalised_distance_divides_by_the_mean_of_the_normal_class_means_not_the_pooled_mean():
    """Normal classes with unequal test counts (as MNIST's): class 0 has four images at 1, class 1
    one at 3, anomaly class 2 two at 6. Normal level = (1 + 3) / 2 = 2, so class 2 sits at 3.0 and
    the normal classes at 0.5 and 1.5 (average 1); the pooled normal mean (7 / 5 = 1.4) would put
    class 2 at 4.29 and the normal classes at an average of 1.43."""
    scores = np.array([1.0, 1.0, 1.0, 1.0, 3.0, 6.0, 6.0])
    labels = np.array([0, 0, 0, 0, 1, 2, 2])
    classes, means, level, normalised = normalised_distances(scores, labels, [0, 1])
    assert classes.tolist() == [0, 1, 2] and means.tolist() == [1.0, 3.0, 6.0] and level == 2.0
    assert normalised.tolist() == [0.5, 1.5, 3.0]
    assert np.isnan(normalised_distances(-scores, labels, [0, 1])[3]).all()  # not a distance: no ratio


# --------------------------------------------------------------------------- AUPR


def test_aupr_worked_example_with_ties():
    scores = np.array([0.9, 0.8, 0.8, 0.3, 0.1])
    is_anomaly = np.array([1, 0, 1, 0, 1], bool)
    # AUPR-Out, thresholds descending: 0.9 -> P 1, R 1/3; 0.8 (tie, one step) -> P 2/3, R 2/3;
    # 0.3 -> R unchanged; 0.1 -> P 3/5, R 1.   AP = 1/3 + 1/3 * 2/3 + 1/3 * 3/5 = 34/45
    assert aupr_out(scores, is_anomaly) == pytest.approx(34 / 45)
    # AUPR-In (normals positive, by -score): -0.1 -> P 0; -0.3 -> P 1/2, R 1/2; -0.8 (tie) -> P 2/4, R 1
    assert aupr_in(scores, is_anomaly) == pytest.approx(1 / 2)
    assert average_precision([1, 1, 1], [1, 0, 0]) == pytest.approx(1 / 3)  # one tie group: P = prevalence


@pytest.mark.parametrize("seed", range(5))
def test_aupr_matches_sklearn_average_precision(seed):
    rng = np.random.default_rng(seed)
    y = rng.random(400) < 0.3
    scores = np.round(rng.normal(size=400) + y, 1)  # many ties
    assert aupr_out(scores, y) == pytest.approx(average_precision_score(y, scores), abs=1e-12)
    assert aupr_in(scores, y) == pytest.approx(average_precision_score(~y, -scores), abs=1e-12)


def test_aupr_does_not_depend_on_the_order_of_tied_rows():
    scores = np.array([0.5, 0.5, 0.5, 0.2])
    assert aupr_out(scores, [1, 0, 0, 1]) == aupr_out(scores, [0, 0, 1, 1])


# --------------------------------------------------------------------------- FPR@95


def _fpr95_sweep(scores, is_anomaly):
    """Brute force: the lowest threshold (over every score) that accepts >= 95 % of normals."""
    scores, pos = np.asarray(scores, float), np.asarray(is_anomaly, bool)
    for t in np.unique(scores):
        if np.mean(scores[~pos] <= t) >= 0.95:
            return np.mean(scores[pos] <= t)
    raise AssertionError("unreachable")


def test_fpr95_worked_example_with_ties_at_the_threshold():
    normal = np.arange(1, 21, dtype=float)  # 20 normals: 95 % = 19 of them -> threshold 19
    anomaly = np.array([18.5, 19.0, 19.5, 25.0])  # 18.5 and 19 (tied with t) are accepted
    scores = np.r_[normal, anomaly]
    y = np.r_[np.zeros(20, bool), np.ones(4, bool)]
    assert fpr95(scores, y) == 0.5
    # ties among normals: 19 of 20 normals at 1.0 -> t = 1.0; the anomaly at 1.0 is accepted
    scores = np.r_[np.ones(19), 5.0, 1.0, 2.0]
    y = np.r_[np.zeros(20, bool), True, True]
    assert fpr95(scores, y) == 0.5
    # 10 normals: ceil(9.5) = 10 -> threshold = the largest normal score
    assert fpr95(np.r_[np.arange(10.0), 9.0, 9.5], np.r_[np.zeros(10, bool), True, True]) == 0.5
    assert fpr_at_tpr([1, 2, 3, 4, 10, 0], [0, 0, 0, 0, 1, 1], tpr_percent=50) == 0.5  # t = 2nd smallest = 2


@pytest.mark.parametrize("seed", range(8))
def test_fpr95_matches_a_brute_force_threshold_sweep(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 300))
    y = rng.random(n) < 0.4
    y[:2] = [True, False]
    scores = np.round(rng.normal(size=n) + 1.5 * y, int(rng.integers(0, 3)))
    assert fpr95(scores, y) == _fpr95_sweep(scores, y)


def test_detection_metrics_extremes():
    perfect = detection_metrics([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1])
    assert perfect == {"aupr_in": 1.0, "aupr_out": 1.0, "auroc": 1.0, "fpr95": 0.0}
    worst = detection_metrics([0.8, 0.9, 0.1, 0.2], [0, 0, 1, 1])
    assert worst["auroc"] == 0.0 and worst["fpr95"] == 1.0
    assert sorted(DETECTION_METRICS) == ["aupr_in", "aupr_out", "auroc", "fpr95"]


@pytest.mark.parametrize("fn", [aupr_in, aupr_out, fpr95])
def test_new_metrics_need_both_classes_and_finite_scores(fn):
    with pytest.raises(DmlbenchError, match="both normal and anomalous"):
        fn([0.1, 0.2], [1, 1])
    with pytest.raises(DmlbenchError, match="NaN"):
        fn([0.1, np.inf], [0, 1])
