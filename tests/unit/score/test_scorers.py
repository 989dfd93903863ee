"""Scorers beyond kNN: Mahalanobis, MSP, max logit, energy, LOF, OpenOOD's KNN; and their columns in
score_run."""

import json
import logging

import numpy as np
import pytest
from sklearn.covariance import ledoit_wolf
from sklearn.neighbors import LocalOutlierFactor

from dmlbench.errors import ConfigError
from dmlbench.score.run import score_run
from dmlbench.score.scorers import (
    ScorerUnavailable,
    energy_scores,
    knn_normalised_scores,
    lof_scores,
    mahalanobis_scores,
    maxlogit_scores,
    msp_scores,
    tied_covariance,
    tied_precision,
)


def _gaussian_classes(seed=0, n=300, d=8, c=3):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    centres = rng.normal(scale=3, size=(c, d))
    a = rng.normal(size=(d, d))
    ref = centres[labels] + rng.normal(size=(n, d)) @ a
    test = rng.normal(scale=4, size=(57, d))
    return test, ref, labels


def _numpy_mahalanobis(test, ref, labels, shrinkage):
    classes = np.unique(labels)
    means = np.stack([ref[labels == c].mean(axis=0) for c in classes])
    centred = ref - means[np.searchsorted(classes, labels)]
    s = centred.T @ centred / len(ref)
    mu = np.trace(s) / s.shape[0]
    cov = (1 - shrinkage) * s + shrinkage * mu * np.eye(s.shape[0])
    p = np.linalg.inv(cov)
    d2 = np.array([[(x - m) @ p @ (x - m) for m in means] for x in test])
    return np.sqrt(d2.min(axis=1))


@pytest.mark.parametrize("shrinkage", [0.0, 0.3])
def test_mahalanobis_matches_numpy_reference_fixed_shrinkage(shrinkage):
    test, ref, labels = _gaussian_classes()
    got = mahalanobis_scores(test, ref, labels, shrinkage=shrinkage, chunk_size=10)  # several chunks
    assert got.dtype == np.float32 and got.shape == (57,)
    np.testing.assert_allclose(got, _numpy_mahalanobis(test, ref, labels, shrinkage), rtol=1e-5)


def test_mahalanobis_ledoit_wolf_uses_the_ledoit_wolf_shrinkage():
    test, ref, labels = _gaussian_classes(seed=1)
    classes = np.unique(labels)
    means = np.stack([ref[labels == c].mean(axis=0) for c in classes])
    _, a = ledoit_wolf(ref - means[labels], assume_centered=True)
    got = mahalanobis_scores(test, ref.astype(np.float16), labels)  # float16 as stored
    want = _numpy_mahalanobis(test, ref.astype(np.float16).astype(np.float64), labels, a)
    np.testing.assert_allclose(got, want, rtol=1e-4)


def test_mahalanobis_is_zero_at_a_class_mean_and_handles_more_dims_than_rows():
    rng = np.random.default_rng(2)
    ref = rng.normal(size=(6, 20))  # D > n: the plain covariance is singular
    labels = np.array([0, 0, 0, 1, 1, 1])
    means = np.stack([ref[:3].mean(0), ref[3:].mean(0)])
    got = mahalanobis_scores(means, ref, labels)
    assert np.all(np.isfinite(got)) and np.allclose(got, 0, atol=1e-3)
    classes, m, cov = tied_covariance(ref, labels, 0.5)
    assert classes.tolist() == [0, 1] and np.allclose(m, means) and cov.shape == (20, 20)


def test_tied_precision_is_the_inverse_by_cholesky_when_shrunk_and_the_pseudo_inverse_when_not():
    """Shrunk (a > 0): positive definite, its Cholesky inverse times the covariance is the identity and
    equals the eigendecomposition's pseudo-inverse. Unshrunk with fewer rows than dimensions (rank 4 of
    10): no inverse; the pseudo-inverse (P C P = P) is what Mahalanobis uses, not a Cholesky of noise."""
    from scipy.linalg import pinvh

    rng = np.random.default_rng(5)
    ref, labels = rng.normal(size=(60, 24)), np.arange(60) % 3
    _, _, cov, a = tied_covariance(ref, labels, "ledoit_wolf", return_shrinkage=True)
    assert 0 < a < 1
    precision = tied_precision(cov, a)
    np.testing.assert_allclose(precision @ cov, np.eye(24), atol=1e-10)
    np.testing.assert_allclose(precision, pinvh(cov), rtol=1e-9, atol=1e-12)
    assert np.array_equal(precision, precision.T)
    ref = rng.normal(size=(6, 10))
    _, _, cov, a = tied_covariance(ref, np.array([0, 0, 0, 1, 1, 1]), 0.0, return_shrinkage=True)
    assert a == 0.0 and np.linalg.matrix_rank(cov) == 4
    precision = tied_precision(cov, a)
    np.testing.assert_allclose(precision, pinvh(cov))
    np.testing.assert_allclose(precision @ cov @ precision, precision, atol=1e-8)


def test_mahalanobis_rejects_bad_arguments():
    test, ref, labels = _gaussian_classes()
    with pytest.raises(ConfigError, match="shrinkage"):
        mahalanobis_scores(test, ref, labels, shrinkage="oas")
    with pytest.raises(ConfigError, match="shrinkage"):
        mahalanobis_scores(test, ref, labels, shrinkage=1.5)
    with pytest.raises(ConfigError, match="one label per reference row"):
        mahalanobis_scores(test, ref, labels[:-1])
    with pytest.raises(ConfigError, match="dimension mismatch"):
        mahalanobis_scores(test[:, :3], ref, labels)


def test_msp_and_maxlogit_by_hand():
    logits = np.array([[0.0, 0.0], [np.log(3.0), 0.0], [1000.0, -5.0], [-1.0, 2.0]])
    # softmax max: 1/2, 3/4, 1 (no overflow), e^2/(e^-1+e^2)
    np.testing.assert_allclose(
        msp_scores(logits), [-0.5, -0.75, -1.0, -np.exp(2) / (np.exp(-1) + np.exp(2))], rtol=1e-6
    )
    np.testing.assert_array_equal(maxlogit_scores(logits), np.float32([-0.0, -np.log(3.0), -1000.0, -2.0]))
    assert msp_scores(logits).dtype == np.float32 and maxlogit_scores(logits).dtype == np.float32


def test_energy_by_hand():
    """E = -log sum_j exp(l_j): for (1, 2, 3) -log(e + e^2 + e^3) = -(3 + log(1 + e^-1 + e^-2)) = -3.40760596;
    for (0, 0, 0) -log 3; for (1000, -5, 0) -1000 (no overflow: the maximum is taken out first)."""
    logits = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [1000.0, -5.0, 0.0]])
    got = energy_scores(logits)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, [-3.40760596, -np.log(3.0), -1000.0], rtol=1e-6)
    # larger logits, lower energy: shifting every logit by c shifts the energy by -c
    np.testing.assert_allclose(energy_scores(logits[:2] + 2.5), got[:2] - 2.5, rtol=1e-6)


def test_knn_normalised_by_hand():
    """Reference (1, 0), (0, 2), (-3, 0) normalise to (1, 0), (0, 1), (-1, 0). Test (2, 0) -> (1, 0) is at
    0, sqrt 2, 2 from them; test (0, -0.5) -> (0, -1) at sqrt 2, 2, sqrt 2. The score is the k-th of
    these, not a mean; the length of a vector does not matter."""
    ref = np.array([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]])
    test = np.array([[2.0, 0.0], [0.0, -0.5]])
    r2 = np.sqrt(2.0)
    np.testing.assert_allclose(knn_normalised_scores(test, ref, k=1), [0.0, r2], atol=1e-6)
    np.testing.assert_allclose(knn_normalised_scores(test, ref, k=2), [r2, r2], atol=1e-6)
    np.testing.assert_allclose(knn_normalised_scores(test, ref, k=3, chunk_size=1), [2.0, 2.0], atol=1e-6)
    np.testing.assert_allclose(knn_normalised_scores(test * 7, ref * 0.1, k=2), [r2, r2], atol=1e-6)
    assert knn_normalised_scores(test, ref, k=1).dtype == np.float32


def test_knn_normalised_is_a_monotone_map_of_the_cosine_kth_distance():
    """Between unit vectors ||a - b|| = sqrt(2 - 2 cos) = sqrt(2 * cosine distance): the k-th nearest by
    one is the k-th nearest by the other (a check against brute force)."""
    rng = np.random.default_rng(7)
    ref, test = rng.normal(size=(60, 5)), rng.normal(size=(9, 5))
    cos = (
        1 - (test / np.linalg.norm(test, axis=1, keepdims=True)) @ (ref / np.linalg.norm(ref, axis=1, keepdims=True)).T
    )
    kth = np.sort(cos, axis=1)[:, 4]
    np.testing.assert_allclose(knn_normalised_scores(test, ref, k=5), np.sqrt(2 * kth), rtol=1e-5)
    with pytest.raises(ScorerUnavailable, match="at least k=61 reference rows, got 60"):
        knn_normalised_scores(test, ref, k=61)
    with pytest.raises(ConfigError, match="positive integer"):
        knn_normalised_scores(test, ref, k=0)


def test_score_run_without_logits_has_no_logit_scores(tmp_path, caplog):
    """A pair loss writes no logits: MSP, max logit, energy and the head's prediction are not in
    its scores (not applicable), the distance scorers are."""
    import zipfile

    arrays = _fake_run(tmp_path, with_labels=True)
    np.savez(tmp_path / "embeddings.npz", **{k: v for k, v in arrays.items() if not k.endswith("_test_logits")})
    with caplog.at_level(logging.INFO):
        df = score_run(tmp_path, SPEC | {"knn_normalised_k": 10})
    assert list(df.columns) == ["case", "test_index", "label", "class_name", "is_anomaly"] + KNN + [
        "mahalanobis",
        "lof",
        "knn_normalised",
        "cosine_nn",
        "euclidean_nn",
    ]
    assert "msp scorer not applicable: the head gives no logits" in caplog.text
    assert zipfile.is_zipfile(tmp_path / "embeddings.npz")


def test_lof_matches_sklearn_and_is_higher_for_outliers():
    rng = np.random.default_rng(3)
    ref = rng.normal(size=(200, 5)).astype(np.float32)
    test = np.vstack([rng.normal(size=(20, 5)), rng.normal(size=(5, 5)) + 8]).astype(np.float32)
    want = -LocalOutlierFactor(n_neighbors=20, novelty=True).fit(ref).score_samples(test)
    got = lof_scores(test, ref)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert got[20:].min() > got[:20].max()
    np.testing.assert_allclose(
        lof_scores(test, ref, n_neighbors=5),
        -LocalOutlierFactor(n_neighbors=5, novelty=True).fit(ref).score_samples(test),
        rtol=1e-6,
    )


def test_lof_too_small_reference_set():
    rng = np.random.default_rng(4)
    with pytest.raises(ScorerUnavailable, match="more than n_neighbors=20 reference rows, got 20"):
        lof_scores(rng.normal(size=(3, 4)), rng.normal(size=(20, 4)))
    with pytest.raises(ConfigError, match="positive integer"):
        lof_scores(rng.normal(size=(3, 4)), rng.normal(size=(30, 4)), n_neighbors=0)


def _fake_run(tmp_path, with_labels: bool, n_ref=40):
    rng = np.random.default_rng(5)
    y_test = np.arange(30) % 4
    arrays = {"test_labels": y_test}
    cases = []
    for k in range(2):
        normals = np.array([c for c in range(4) if c != k])
        ref_index = np.sort(rng.choice(500, n_ref, replace=False))
        arrays |= {
            f"case{k}_reference": rng.normal(size=(n_ref, 6)).astype(np.float16),
            f"case{k}_reference_index": ref_index,
            f"case{k}_test": rng.normal(size=(30, 6)).astype(np.float16),
            f"case{k}_test_logits": rng.normal(size=(30, 3)).astype(np.float32),
            f"case{k}_normal_classes": normals,
        }
        if with_labels:
            arrays[f"case{k}_reference_labels"] = normals[np.arange(n_ref) % 3]
        cases.append({"case": k, "anomaly_classes": [k]})
    np.savez(tmp_path / "embeddings.npz", **arrays)
    (tmp_path / "run.json").write_text(json.dumps({"classes": list("abcd"), "cases": cases}))
    return arrays


SPEC = {"distances": ["cosine", "euclidean"], "k": [1, "all"]}
FIXED = ["case", "test_index", "label", "class_name", "is_anomaly", "head_pred"]
KNN = ["cosine_k1", "cosine_kall", "euclidean_k1", "euclidean_kall"]


def test_score_run_adds_every_scorer_column(tmp_path):
    arrays = _fake_run(tmp_path, with_labels=True)
    df = score_run(tmp_path, SPEC | {"knn_normalised_k": 10})
    assert list(df.columns) == FIXED + KNN + [
        "mahalanobis",
        "msp",
        "maxlogit",
        "energy",
        "lof",
        "knn_normalised",
        "cosine_nn",
        "euclidean_nn",
    ]
    c1 = df[df.case == 1]
    np.testing.assert_array_equal(c1["msp"], msp_scores(arrays["case1_test_logits"]))
    np.testing.assert_array_equal(c1["energy"], energy_scores(arrays["case1_test_logits"]))
    np.testing.assert_array_equal(
        c1["knn_normalised"], knn_normalised_scores(arrays["case1_test"], arrays["case1_reference"], k=10)
    )
    np.testing.assert_array_equal(c1["lof"], lof_scores(arrays["case1_test"], arrays["case1_reference"]))
    np.testing.assert_array_equal(
        c1["mahalanobis"],
        mahalanobis_scores(arrays["case1_test"], arrays["case1_reference"], arrays["case1_reference_labels"]),
    )
    assert all(df[c].dtype == np.float32 for c in ["mahalanobis", "msp", "maxlogit", "energy", "lof", "knn_normalised"])


def test_score_run_skips_what_it_cannot_compute_with_a_warning(tmp_path, caplog):
    _fake_run(tmp_path, with_labels=False, n_ref=15)
    with caplog.at_level(logging.WARNING):
        df = score_run(tmp_path, SPEC)
    assert list(df.columns) == FIXED + KNN + ["msp", "maxlogit", "energy", "cosine_nn", "euclidean_nn"]
    assert "mahalanobis scorer skipped" in caplog.text and "lof scorer skipped" in caplog.text
    assert "knn_normalised scorer skipped: a case has only 15 reference images" in caplog.text
    df = score_run(tmp_path, SPEC | {"scorers": ["maxlogit"], "lof_neighbors": 5})
    assert list(df.columns) == FIXED + KNN + ["maxlogit", "cosine_nn", "euclidean_nn"]
    df = score_run(tmp_path, SPEC | {"lof_neighbors": 5})
    assert "lof" in df.columns
