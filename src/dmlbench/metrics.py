"""Detection metrics on anomaly scores (higher score = more anomalous, anomaly = positive)."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from .errors import DmlbenchError


def auroc(scores: np.ndarray, is_anomaly: np.ndarray) -> float:
    """Area under the ROC curve with anomalies as positives.

    Computed as the Mann-Whitney statistic with average ranks, so tied scores count one half:
    AUROC = (sum of anomaly ranks - n_a (n_a + 1) / 2) / (n_a * n_n).
    """
    scores = np.asarray(scores, dtype=np.float64)
    pos = np.asarray(is_anomaly, dtype=bool)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        raise DmlbenchError(f"AUROC needs both normal and anomalous test images (got {n_pos} anomalies, {n_neg} normal)")
    if not np.isfinite(scores).all():
        raise DmlbenchError("AUROC got NaN or infinite scores; the embeddings are broken (retrain the run)")
    ranks = rankdata(scores)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def class_mean_scores(scores: np.ndarray, labels: np.ndarray, normal_classes) -> tuple[np.ndarray, np.ndarray, float]:
    """Per test class: (class indices, mean score); plus the mean score of all normal test images.

    The normalised distance of a class is its mean score divided by the normal mean (normal = 1.0).
    """
    scores = np.asarray(scores, dtype=np.float64)
    classes = np.unique(labels)
    means = np.array([scores[labels == c].mean() for c in classes])
    normal_mask = np.isin(labels, list(normal_classes))
    return classes, means, float(scores[normal_mask].mean())
