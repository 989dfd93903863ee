"""Anomaly scorers beyond the k-nearest-neighbour distances of :mod:`dmlbench.score.knn`.

Every scorer returns one float32 score per test row, **higher = more anomalous**, so that all
score columns of a scores table read the same way. Embeddings are unitless, so distances are
in embedding units; probabilities and logits keep the head's units (see each function).

* :func:`mahalanobis_scores` - Mahalanobis distance to the nearest class mean of the
  reference set, with one shared (tied) covariance, shrunk (Ledoit-Wolf or a fixed amount).
* :func:`msp_scores` - negated maximum softmax probability of the head's logits.
* :func:`maxlogit_scores` - negated maximum logit of the head.
* :func:`energy_scores` - the free energy ``-logsumexp`` of the head's logits (Liu et al. 2020).
* :func:`lof_scores` - Local Outlier Factor of each test row with respect to the reference set.
* :func:`knn_normalised_scores` - Euclidean distance of the L2-normalised embedding to its k-th
  nearest L2-normalised reference embedding (OpenOOD's KNN, Sun et al. 2022).

msp, maxlogit and energy read the head's logits (:data:`LOGIT_SCORERS`); a head without logits
(a pair or tuple loss) has no such scores: they are not applicable, never computed from
something else.

The names in :data:`SCORERS` are the score-column names written by ``dmlbench.score.run.score_run``.
"""

from __future__ import annotations

import numbers

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, cho_solve, pinvh
from sklearn.covariance import LedoitWolf, ShrunkCovariance
from sklearn.neighbors import LocalOutlierFactor

from dmlbench.config.scorers import DEFAULT_KNN_K, DEFAULT_LOF_NEIGHBORS
from dmlbench.errors import ConfigError, DmlbenchError

NORM_EPS = 1e-10  # OpenOOD's normaliser: x / (||x|| + 1e-10)
DEFAULT_CHUNK = 4096


class ScorerUnavailable(DmlbenchError):
    """A scorer cannot be computed for this run (e.g. too small a reference set); the score
    stage skips its column with a warning."""


def _matrix(x, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ConfigError(f"{name} must be a non-empty 2-D array [rows, dim], got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise ConfigError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if not np.isfinite(arr).all():
        raise ConfigError(f"{name} has NaN or infinite values")
    return arr


def tied_covariance(
    reference: np.ndarray, labels: np.ndarray, shrinkage="ledoit_wolf", *, return_shrinkage: bool = False
) -> tuple[np.ndarray, ...]:
    """Class means and the shared (within-class, pooled) covariance of the reference set.

    Returns ``(classes [C], means [C, D], covariance [D, D])`` (float64), and the shrinkage ``a``
    used when ``return_shrinkage``. The covariance is that of
    the reference rows centred on their own class mean (maximum-likelihood, divided by n_ref),
    shrunk towards ``mu * I`` (``mu`` = mean variance): ``(1 - a) * S + a * mu * I`` with
    ``a`` from Ledoit-Wolf (``shrinkage="ledoit_wolf"``, :class:`sklearn.covariance.LedoitWolf`)
    or the given number ``a`` in ``[0, 1]`` (:class:`sklearn.covariance.ShrunkCovariance`).
    """

    ref = _matrix(reference, "reference")
    labels = np.asarray(labels)
    if labels.shape != (ref.shape[0],):
        raise ConfigError(
            f"reference_labels must have one label per reference row ({ref.shape[0]}), got shape {labels.shape}"
        )
    classes, inverse = np.unique(labels, return_inverse=True)
    counts = np.bincount(inverse, minlength=len(classes)).astype(np.float64)
    means = np.zeros((len(classes), ref.shape[1]))
    np.add.at(means, inverse, ref)
    means /= counts[:, None]
    centred = ref - means[inverse]
    if isinstance(shrinkage, str):
        if shrinkage != "ledoit_wolf":
            raise ConfigError(f"mahalanobis shrinkage must be 'ledoit_wolf' or a number in [0, 1], got {shrinkage!r}")
        est = LedoitWolf(assume_centered=True, store_precision=False)
    elif isinstance(shrinkage, numbers.Real) and not isinstance(shrinkage, bool) and 0 <= shrinkage <= 1:
        est = ShrunkCovariance(shrinkage=float(shrinkage), assume_centered=True, store_precision=False)
    else:
        raise ConfigError(f"mahalanobis shrinkage must be 'ledoit_wolf' or a number in [0, 1], got {shrinkage!r}")
    cov = est.fit(centred).covariance_
    if return_shrinkage:
        return classes, means, cov, float(est.shrinkage_ if isinstance(shrinkage, str) else shrinkage)
    return classes, means, cov


def tied_precision(cov: np.ndarray, shrinkage: float) -> np.ndarray:
    """The inverse of a tied covariance ``(1 - a) S + a mu I`` shrunk by ``a = shrinkage``.

    With ``a > 0`` every eigenvalue is at least ``a mu`` and at most ``trace = D mu``, so the
    condition number is at most ``D / a``: the matrix is positive definite and well conditioned, and
    the inverse comes from its Cholesky factor (about ten times faster than an eigendecomposition
    at D = 512, and the same matrix: the pseudo-inverse truncates nothing at that condition).
    Unshrunk (``a = 0``: S itself, singular when there are fewer reference rows than dimensions)
    or where the factorisation fails, the pseudo-inverse (``scipy.linalg.pinvh``)."""

    if shrinkage > 1e-6:
        try:
            factor = cho_factor(cov, lower=True, check_finite=False)
        except LinAlgError:
            return pinvh(cov)
        precision = cho_solve(factor, np.eye(cov.shape[0]), check_finite=False)
        return (precision + precision.T) / 2.0  # exactly symmetric
    return pinvh(cov)  # symmetric; pinv is safe if singular


def mahalanobis_scores(
    test, reference, reference_labels, shrinkage="ledoit_wolf", chunk_size: int = DEFAULT_CHUNK
) -> np.ndarray:
    """Mahalanobis distance of each test row to the nearest class mean of the reference set.

    Parameters
    ----------
    test : ``[n_test, D]`` embeddings (any real dtype; computed in float64).
    reference : ``[n_ref, D]`` embeddings of the reference (normal training) set.
    reference_labels : ``[n_ref]`` class label of each reference row.
    shrinkage : ``"ledoit_wolf"`` or a fixed shrinkage in ``[0, 1]`` (see :func:`tied_covariance`).
    chunk_size : test rows per chunk; memory is ``O(chunk_size * (D + C) + D^2)``.

    Returns
    -------
    float32 ``[n_test]``: ``min_c sqrt((x - mu_c)^T P (x - mu_c))`` with ``P`` the
    (pseudo-)inverse of the tied covariance, in embedding units (a distance, not its square).
    """
    x = _matrix(test, "test")
    classes, means, cov, a = tied_covariance(reference, reference_labels, shrinkage, return_shrinkage=True)
    if x.shape[1] != means.shape[1]:
        raise ConfigError(f"dimension mismatch: test has {x.shape[1]} columns, reference has {means.shape[1]}")
    precision = tied_precision(cov, a)
    mu_p = means @ precision  # [C, D]
    mu_term = np.einsum("cd,cd->c", mu_p, means)  # [C]  mu^T P mu
    out = np.empty(x.shape[0], dtype=np.float32)
    for i0 in range(0, x.shape[0], max(1, int(chunk_size))):
        xc = x[i0 : i0 + chunk_size]
        xp = xc @ precision  # [n, D]
        d2 = np.einsum("nd,nd->n", xp, xc)[:, None] - 2.0 * (xc @ mu_p.T) + mu_term[None, :]
        out[i0 : i0 + len(xc)] = np.sqrt(np.maximum(d2.min(axis=1), 0.0))
    return out


def msp_scores(logits) -> np.ndarray:
    """Negated maximum softmax probability: ``-max_j softmax(l)_j`` for logits ``[n_test, n_normal]``.

    Returns float32 ``[n_test]`` in ``[-1, -1/n_normal]`` (a probability, negated so that a
    confident prediction gives a low score). Softmax computed stably:
    ``max softmax = 1 / sum_j exp(l_j - max l)``.
    """
    z = _matrix(logits, "logits")
    z = z - z.max(axis=1, keepdims=True)
    return (-1.0 / np.exp(z).sum(axis=1)).astype(np.float32)


def maxlogit_scores(logits) -> np.ndarray:
    """Negated maximum logit: ``-max_j l_j`` for logits ``[n_test, n_normal]``; float32
    ``[n_test]`` in the head's logit units (margin heads scale cosines by ``s``)."""
    return (-_matrix(logits, "logits").max(axis=1)).astype(np.float32)


def energy_scores(logits) -> np.ndarray:
    """The free energy at temperature 1, ``E = -log sum_j exp(l_j)``, of logits ``[n_test, n_normal]``
    (Liu et al. 2020, "Energy-based Out-of-distribution Detection"): normal images get large logits
    and so a low energy, so the energy itself is the anomaly score. Computed stably in float64 as
    ``-(max l + log sum_j exp(l_j - max l))``; float32 ``[n_test]`` in the head's logit units.
    Inference logits carry no margin (``Head.logits``)."""
    z = _matrix(logits, "logits")
    top = z.max(axis=1, keepdims=True)
    return (-(top[:, 0] + np.log(np.exp(z - top).sum(axis=1)))).astype(np.float32)


def knn_normalised_scores(test, reference, k: int = DEFAULT_KNN_K, chunk_size: int = DEFAULT_CHUNK) -> np.ndarray:
    """OpenOOD's KNN (Sun et al. 2022, "Out-of-Distribution Detection with Deep Nearest Neighbors"):
    every row is L2-normalised (``x / (||x|| + 1e-10)``), and a test row's score is the Euclidean
    distance to its ``k``-th nearest normalised reference row - the k-th distance itself, not a mean
    of the k smallest. Float32 ``[n_test]`` in [0, 2] (a distance between unit vectors,
    ``sqrt(2 - 2 cos)``). Computed in float64 by chunks of ``chunk_size`` test rows (memory
    ``O(chunk_size * n_ref)``).

    Raises :class:`ScorerUnavailable` when the reference set has fewer than ``k`` rows.
    """
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ConfigError(f"knn_normalised k must be a positive integer, got {k!r}")
    ref = _matrix(reference, "reference")
    x = _matrix(test, "test")
    if ref.shape[0] < k:
        raise ScorerUnavailable(f"knn_normalised needs at least k={k} reference rows, got {ref.shape[0]}")
    if x.shape[1] != ref.shape[1]:
        raise ConfigError(f"dimension mismatch: test has {x.shape[1]} columns, reference has {ref.shape[1]}")
    ref = ref / (np.linalg.norm(ref, axis=1, keepdims=True) + NORM_EPS)
    x = x / (np.linalg.norm(x, axis=1, keepdims=True) + NORM_EPS)
    ref_sq = (ref * ref).sum(axis=1)
    out = np.empty(x.shape[0], dtype=np.float32)
    for i0 in range(0, x.shape[0], max(1, int(chunk_size))):
        xc = x[i0 : i0 + chunk_size]
        d2 = (xc * xc).sum(axis=1)[:, None] + ref_sq[None, :] - 2.0 * (xc @ ref.T)
        kth = np.partition(d2, k - 1, axis=1)[:, k - 1]
        out[i0 : i0 + len(xc)] = np.sqrt(np.maximum(kth, 0.0))
    return out


def lof_scores(test, reference, n_neighbors: int = DEFAULT_LOF_NEIGHBORS) -> np.ndarray:
    """Local Outlier Factor of each test row w.r.t. the reference set (Euclidean distance).

    :class:`sklearn.neighbors.LocalOutlierFactor` with ``novelty=True`` and ``n_neighbors`` is
    fitted on ``reference [n_ref, D]``; the score is ``-score_samples(test)``, i.e. the LOF
    itself (unitless ratio of local densities, about 1 for an inlier, larger = more anomalous).
    Returns float32 ``[n_test]``.

    Raises :class:`ScorerUnavailable` when the reference set has ``n_ref <= n_neighbors`` rows
    (the neighbourhoods would not be of the requested size).
    """

    if isinstance(n_neighbors, bool) or not isinstance(n_neighbors, numbers.Integral) or n_neighbors < 1:
        raise ConfigError(f"lof n_neighbors must be a positive integer, got {n_neighbors!r}")
    ref = _matrix(reference, "reference").astype(np.float32)
    x = _matrix(test, "test").astype(np.float32)
    if ref.shape[0] <= n_neighbors:
        raise ScorerUnavailable(f"LOF needs more than n_neighbors={n_neighbors} reference rows, got {ref.shape[0]}")
    if x.shape[1] != ref.shape[1]:
        raise ConfigError(f"dimension mismatch: test has {x.shape[1]} columns, reference has {ref.shape[1]}")
    lof = LocalOutlierFactor(n_neighbors=int(n_neighbors), novelty=True).fit(ref)
    return (-lof.score_samples(x)).astype(np.float32)
