"""The scorers by name: what the config, the score stage and the report agree on (torch-free).

The scorers' computation is the score stage's (dmlbench.score.scorers); these are the names of the
score columns it writes (results/scores/....parquet), which scorers read the head's logits, and the
defaults of their settings (``scoring.*`` in the config schema; a test keeps them equal).
"""

from __future__ import annotations

#: Scorer names in the order of their score columns.
SCORERS = ("mahalanobis", "msp", "maxlogit", "energy", "lof", "knn_normalised")
#: Scorers computed from the head's logits: not applicable to a head without logits.
LOGIT_SCORERS = ("msp", "maxlogit", "energy")
DEFAULT_SHRINKAGE = "ledoit_wolf"
DEFAULT_LOF_NEIGHBORS = 20
DEFAULT_KNN_K = 50  # OpenOOD's K for CIFAR-10 (configs/postprocessors/knn.yml)

#: Columns of a scores table that are no score: the keys of a test image, and the head's prediction.
KEY_COLUMNS = ("case", "test_index", "label", "class_name", "is_anomaly", "head_pred")


def scorer_columns(scores) -> list[str]:
    """The anomaly-score columns of a scores table (a DataFrame: everything that is not a key
    (:data:`KEY_COLUMNS`) or a nearest-reference index, ``{distance}_nn``)."""
    return [c for c in scores.columns if c not in KEY_COLUMNS and not c.endswith("_nn")]
