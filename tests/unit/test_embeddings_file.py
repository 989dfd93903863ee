"""embeddings.npz: what the writer packs (keys, dtypes) is what the score stage reads."""

import json

import numpy as np
import pytest

from dmlbench.embeddings_file import CASE_ARRAYS, case_key, pack_case, pack_job
from dmlbench.score.run import score_run


def test_pack_case_keys_and_stored_dtypes():
    rng = np.random.default_rng(0)
    arrays = pack_case(
        3,
        reference=rng.normal(size=(5, 2)),
        reference_index=np.array([4, 0, 2, 7, 9], np.int32),
        reference_labels=np.array([1, 1, 2, 2, 1], np.uint8),
        test=rng.normal(size=(4, 2)),
        test_logits=rng.normal(size=(4, 2)),
        normal_classes=[1, 2],
    )
    assert list(arrays) == [f"case3_{name}" for name in CASE_ARRAYS]
    assert {k: v.dtype for k, v in arrays.items()} == {
        "case3_reference": np.float16,
        "case3_reference_index": np.int64,
        "case3_reference_labels": np.int64,
        "case3_test": np.float16,
        "case3_test_logits": np.float32,
        "case3_normal_classes": np.int64,
    }
    assert arrays["case3_normal_classes"].tolist() == [1, 2]
    with pytest.raises(ValueError, match="no per-case array 'logits'"):
        case_key(0, "logits")


def test_score_stage_reads_what_the_writer_packs(tmp_path):
    # Two test images, classes a, b, c; case 0: normal a, b (anomaly c). The reference set is
    # two points; test image 0 sits on reference row 1 (train index 7), test image 1 is nearest to
    # reference row 0 (train index 3).
    ref = np.array([[1.0, 0.0], [0.0, 1.0]])
    test = np.array([[0.0, 1.0], [3.0, 0.0]])
    logits = np.array([[0.1, 2.0], [3.0, 0.0]])  # head picks normal column 1 (= class b), then column 0 (= a)
    arrays = pack_job(np.array([1, 2]), ["a", "b", "c"])
    arrays |= pack_case(
        0,
        reference=ref,
        reference_index=np.array([3, 7]),
        reference_labels=np.array([0, 1]),
        test=test,
        test_logits=logits,
        normal_classes=[0, 1],
    )
    np.savez(tmp_path / "embeddings.npz", **arrays)
    (tmp_path / "run.json").write_text(json.dumps({"classes": ["a", "b", "c"], "cases": [{"case": 0}]}))
    df = score_run(tmp_path, {"distances": ["euclidean"], "k": [1], "scorers": ["msp"]})
    assert df["class_name"].tolist() == ["b", "c"] and df["is_anomaly"].tolist() == [False, True]
    assert df["head_pred"].tolist() == [1, 0]
    assert df["euclidean_nn"].tolist() == [7, 3]  # train-split indices, through case{k}_reference_index
    np.testing.assert_allclose(df["euclidean_k1"], [0.0, 2.0], atol=1e-3)  # |(3,0) - (1,0)|
