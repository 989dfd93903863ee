import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from dmlbench.errors import DmlbenchError
from dmlbench.metrics import auroc, class_mean_scores


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
    assert normal_mean == 2.0  # mean over all normal images: (1 + 3 + 2) / 3
    assert (means / normal_mean).tolist() == [1.0, 1.0, 4.5]
