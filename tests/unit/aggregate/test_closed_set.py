"""Closed-set models: test accuracy and t-SNE coordinates from a0 run folders (dmlbench.aggregate.closed_set)."""

import json

import numpy as np
import pytest

from dmlbench.aggregate.closed_set import (
    CLOSED_SET_COLUMNS,
    TSNE_COLUMNS,
    closed_set_tables,
    stratified_sample,
)
from dmlbench.errors import DmlbenchError
from dmlbench.io import write_npz


def _run(root, method="arcface", seed=3, n_anomaly=0, labels=None, logits=None, emb=None, epochs=7):
    run_dir = root / "runs" / "toy" / f"a{n_anomaly}" / method / "nall" / f"s{seed}"
    write_npz(
        run_dir / "embeddings.npz",
        test_labels=labels,
        classes=np.array(["cat", "dog", "eel"]),
        case0_test=emb.astype(np.float16),
        case0_test_logits=logits.astype(np.float32),
        case0_normal_classes=np.array([0, 1, 2]),
    )
    (run_dir / "run.json").write_text(json.dumps({"spec": {"training": {"epochs": epochs}}}))
    return run_dir


def _toy(n_per_class=20, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1, 2], n_per_class)
    centres = np.eye(3, 8) * 5
    emb = centres[labels] + rng.normal(0, 0.3, (len(labels), 8))
    return labels, emb


def test_accuracy_is_the_heads_argmax_against_the_labels(tmp_path):
    labels, emb = _toy()
    logits = np.eye(3)[labels]
    logits[:6] = np.eye(3)[(labels[:6] + 1) % 3]  # 6 of 60 wrong
    run = _run(tmp_path, labels=labels, logits=logits, emb=emb)
    tsne, closed = closed_set_tables([run], points=30, perplexity=5)
    assert list(closed.columns) == CLOSED_SET_COLUMNS
    assert closed.iloc[0].to_dict() == {
        "dataset": "toy",
        "method": "arcface",
        "seed": 3,
        "n_test": 60,
        "accuracy": pytest.approx(54 / 60),
        "epochs": 7,
    }
    assert list(tsne.columns) == TSNE_COLUMNS
    assert len(tsne) == 30 and tsne.groupby("label").size().tolist() == [10, 10, 10]
    assert (tsne["class_name"] == tsne["label"].map({0: "cat", 1: "dog", 2: "eel"})).all()
    assert np.isfinite(tsne[["x", "y"]]).all().all()


def test_tsne_keeps_well_separated_classes_apart_and_is_seeded(tmp_path):
    labels, emb = _toy()
    run = _run(tmp_path, labels=labels, logits=np.eye(3)[labels], emb=emb)
    first, _ = closed_set_tables([run], points=60, perplexity=10)
    again, _ = closed_set_tables([run], points=60, perplexity=10)
    np.testing.assert_array_equal(first[["x", "y"]], again[["x", "y"]])
    centres = first.groupby("label")[["x", "y"]].mean().to_numpy()
    spread = first.groupby("label")[["x", "y"]].std().to_numpy().max()
    gaps = [np.linalg.norm(centres[i] - centres[j]) for i in range(3) for j in range(i + 1, 3)]
    assert min(gaps) > 3 * spread


def test_stratified_sample_keeps_the_class_shares():
    labels = np.array([0] * 600 + [1] * 300 + [2] * 100)
    idx = stratified_sample(labels, 100, seed=1)
    assert np.bincount(labels[idx]).tolist() == [60, 30, 10]
    assert (np.diff(idx) > 0).all()
    np.testing.assert_array_equal(idx, stratified_sample(labels, 100, seed=1))
    assert stratified_sample(labels, 5000, seed=1).tolist() == list(range(1000))


def test_a_run_with_anomaly_classes_is_refused(tmp_path):
    labels, emb = _toy()
    run = _run(tmp_path, n_anomaly=2, labels=labels, logits=np.eye(3)[labels], emb=emb)
    with pytest.raises(DmlbenchError, match="not a closed-set run"):
        closed_set_tables([run])


def test_a_damaged_embeddings_file_names_the_run(tmp_path):
    labels, emb = _toy()
    run = _run(tmp_path, labels=labels, logits=np.eye(3)[labels], emb=emb)
    (run / "embeddings.npz").write_bytes(b"not a zip")
    with pytest.raises(DmlbenchError, match=r"a0/arcface/nall/s3/embeddings.npz.*rerun `dmlbench train`"):
        closed_set_tables([run])


def test_stratified_sample_gives_exactly_n_with_uneven_classes():
    labels = np.array([0] * 45 + [1] * 44 + [2] * 46)  # quotas 33.3, 32.6, 34.1 of 100
    idx = stratified_sample(labels, 100, seed=0)
    assert len(idx) == 100 and np.bincount(labels[idx]).tolist() == [33, 33, 34]
