"""Detection metrics on anomaly scores (higher score = more anomalous, anomaly = positive)."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from dmlbench.errors import DmlbenchError


def _checked(scores, is_anomaly, metric: str) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    pos = np.asarray(is_anomaly, dtype=bool)
    if scores.shape != pos.shape or scores.ndim != 1:
        raise DmlbenchError(
            f"{metric}: scores and labels must be 1-D of the same length, got {scores.shape} and {pos.shape}"
        )
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        raise DmlbenchError(
            f"{metric} needs both normal and anomalous test images (got {n_pos} anomalies, {n_neg} normal)"
        )
    if not np.isfinite(scores).all():
        raise DmlbenchError(f"{metric} got NaN or infinite scores; the embeddings are broken (retrain the run)")
    return scores, pos


def auroc(scores: np.ndarray, is_anomaly: np.ndarray) -> float:
    """Area under the ROC curve with anomalies as positives.

    Computed as the Mann-Whitney statistic with average ranks, so tied scores count one half:
    AUROC = (sum of anomaly ranks - n_a (n_a + 1) / 2) / (n_a * n_n).
    """
    scores, pos = _checked(scores, is_anomaly, "AUROC")
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    ranks = rankdata(scores)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_precision(scores: np.ndarray, positive: np.ndarray) -> float:
    """Average precision of ``scores`` ranking ``positive`` rows first (higher = more positive).

    AP = sum over distinct thresholds t (descending) of (R(t) - R(t_prev)) * P(t), where
    P(t), R(t) are precision and recall of "score >= t". Tied scores enter together (one
    step), so the value does not depend on the order of tied rows. This is the step-wise
    definition of :func:`sklearn.metrics.average_precision_score`, not the trapezoidal area
    (which interpolates linearly and is optimistic).
    """
    scores, pos = _checked(scores, positive, "average precision")
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], pos[order]
    tp = np.cumsum(y)
    last = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]  # last row of each tie group
    tp = tp[last].astype(np.float64)
    precision = tp / (last + 1)
    recall = tp / tp[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def aupr_in(scores: np.ndarray, is_anomaly: np.ndarray) -> float:
    """AUPR-In: average precision with the NORMAL images as positives, ranked by -score."""
    return average_precision(-np.asarray(scores, dtype=np.float64), ~np.asarray(is_anomaly, dtype=bool))


def aupr_out(scores: np.ndarray, is_anomaly: np.ndarray) -> float:
    """AUPR-Out: average precision with the anomalies as positives, ranked by score."""
    return average_precision(scores, is_anomaly)


def fpr_at_tpr(scores: np.ndarray, is_anomaly: np.ndarray, tpr_percent: int = 95) -> float:
    """Share of anomalies accepted when ``tpr_percent`` % of the normal test images are accepted.

    Threshold t = the smallest normal score such that at least ``tpr_percent`` % of normal
    scores are <= t: the ``ceil(tpr_percent / 100 * n_normal)``-th smallest normal score
    (integer arithmetic, no rounding error). An image is accepted (called normal) when its
    score <= t. Ties at t: every image scoring exactly t is accepted, normal or anomaly, so the
    accepted share of normals can exceed ``tpr_percent`` % and anomalies tied with t count as
    accepted (false positives). Returns (anomalies with score <= t) / n_anomalies.
    """
    scores, pos = _checked(scores, is_anomaly, "FPR@95")
    normal = np.sort(scores[~pos])
    rank = (tpr_percent * len(normal) + 99) // 100  # ceil(tpr_percent / 100 * n)
    threshold = normal[max(rank, 1) - 1]
    return float(np.mean(scores[pos] <= threshold))


def fpr95(scores: np.ndarray, is_anomaly: np.ndarray) -> float:
    """FPR at 95 % TPR (normal = positive for the TPR); see :func:`fpr_at_tpr`."""
    return fpr_at_tpr(scores, is_anomaly, 95)


#: Detection metrics per (case, scorer), by name in the metrics table.
DETECTION_METRICS = {"aupr_in": aupr_in, "aupr_out": aupr_out, "auroc": auroc, "fpr95": fpr95}
#: Direction of every metric of the metrics table: True when a higher value is better.
HIGHER_IS_BETTER = {"accuracy": True, "aupr_in": True, "aupr_out": True, "auroc": True, "fpr95": False}


def detection_metrics(scores: np.ndarray, is_anomaly: np.ndarray) -> dict[str, float]:
    """Every metric of :data:`DETECTION_METRICS` for one score column of one case."""
    return {name: fn(scores, is_anomaly) for name, fn in DETECTION_METRICS.items()}


def class_mean_scores(scores: np.ndarray, labels: np.ndarray, normal_classes) -> tuple[np.ndarray, np.ndarray, float]:
    """Per test class: (class indices ascending, mean score of the class's test images); plus the
    normal level: the mean of the normal classes' mean scores (each normal class weighs the same,
    whatever its number of test images). See :func:`normalised_distances`."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    classes = np.unique(labels)
    means = np.array([scores[labels == c].mean() for c in classes])
    is_normal = np.isin(classes, list(normal_classes))
    if not is_normal.any():
        raise DmlbenchError("normalised distances need at least one normal test class")
    return classes, means, float(means[is_normal].mean())


def normalised_distances(
    scores: np.ndarray, labels: np.ndarray, normal_classes
) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """The normalised distance of every test class of a case (docs/metrics.md, the one definition):

        normalised(c) = mean score of class c / normal level,
        normal level  = mean over the normal classes n of (mean score of class n),

    so the normal classes' normalised distances average exactly 1 ("an anomaly class at 3 lies
    three times as far from the reference set as a normal class, on average"). NaN for every
    class when the normal level is not positive (scores that are not distances: msp, maxlogit).

    ``scores`` [N] (higher = more anomalous), ``labels`` [N] test classes, ``normal_classes`` the
    case's normal class indices. Returns (classes ascending, class means, normal level,
    normalised), the arrays [n_classes]."""
    classes, means, level = class_mean_scores(scores, labels, normal_classes)
    normalised = means / level if level > 0 else np.full(len(means), np.nan)
    return classes, means, level, normalised
