"""The switch unpaired_subsample (docs/original.md): each method scored on its own random half of
the test images against its own random half of the reference set, the same on every rerun."""

import json

import numpy as np

from dmlbench.score.run import score_run
from dmlbench.score.subsample import half_per_class, subsample_rng, unpaired_subsample

N_TEST, N_REF, D = 40, 24, 5


def _run(folder, method, switch=True, seed=0):
    """A run of two cases: 40 test images of 4 classes (10 each), 24 reference rows of the 3
    normal classes (8 each)."""
    folder.mkdir()
    rng = np.random.default_rng(3)  # the same embeddings for every method: only the draw differs
    y_test = np.arange(N_TEST) % 4
    arrays = {"test_labels": y_test, "classes": np.array(list("abcd"))}
    cases = []
    for k in range(2):
        normals = np.array([c for c in range(4) if c != k])
        arrays |= {
            f"case{k}_reference": rng.normal(size=(N_REF, D)).astype(np.float16),
            f"case{k}_reference_index": np.arange(N_REF) * 2,
            f"case{k}_reference_labels": normals[np.arange(N_REF) % 3],
            f"case{k}_test": rng.normal(size=(N_TEST, D)).astype(np.float16),
            f"case{k}_test_logits": rng.normal(size=(N_TEST, 3)).astype(np.float32),
            f"case{k}_normal_classes": normals,
        }
        cases.append({"case": k, "anomaly_classes": [k]})
    np.savez(folder / "embeddings.npz", **arrays)
    params = {"unpaired_subsample": True} if switch else {}
    spec = {"method": method, "seed": seed, "method_params": params}
    (folder / "run.json").write_text(json.dumps({"classes": list("abcd"), "cases": cases, "spec": spec}))
    return arrays


SPEC = {"distances": ["cosine"], "k": [1], "scorers": []}


def _cosine_k1(test, ref):
    a = test.astype(np.float64) / np.linalg.norm(test.astype(np.float64), axis=1, keepdims=True)
    b = ref.astype(np.float64) / np.linalg.norm(ref.astype(np.float64), axis=1, keepdims=True)
    return (1 - a @ b.T).min(axis=1)


def test_two_methods_score_different_halves_of_the_test_images_the_same_on_every_rerun(tmp_path):
    arrays = _run(tmp_path / "arcface", "arcface")
    _run(tmp_path / "arcface_orig", "arcface_orig")
    a, b = score_run(tmp_path / "arcface", SPEC), score_run(tmp_path / "arcface_orig", SPEC)
    for k in (0, 1):
        ia, ib = a[a.case == k].test_index.to_numpy(), b[b.case == k].test_index.to_numpy()
        # half of each of the 4 test classes (10 images each): 5 per class
        assert len(ia) == len(ib) == N_TEST // 2
        assert np.bincount(arrays["test_labels"][ia], minlength=4).tolist() == [5, 5, 5, 5]
        assert not np.array_equal(ia, ib)  # unpaired across methods
    # the same draw on a rerun
    again = score_run(tmp_path / "arcface", SPEC)
    assert again.equals(a)
    # the other case of the same method draws afresh too
    assert not np.array_equal(a[a.case == 0].test_index, a[a.case == 1].test_index)


def test_the_scores_are_those_of_the_kept_test_images_against_the_kept_reference_half(tmp_path):
    arrays = _run(tmp_path / "run", "cosface", seed=2)
    df = score_run(tmp_path / "run", SPEC)
    for k in (0, 1):
        rng = subsample_rng(2, k, "cosface")
        test_rows = half_per_class(arrays["test_labels"], rng)
        ref_rows = half_per_class(arrays[f"case{k}_reference_labels"], rng)
        assert len(ref_rows) == N_REF // 2
        rows = df[df.case == k]
        np.testing.assert_array_equal(rows.test_index, test_rows)
        np.testing.assert_array_equal(rows.label, arrays["test_labels"][test_rows])
        expected = _cosine_k1(arrays[f"case{k}_test"][test_rows], arrays[f"case{k}_reference"][ref_rows])
        np.testing.assert_allclose(rows.cosine_k1, expected, atol=2e-3)
        # the nearest reference is one of the kept half, named by its train-split index
        assert set(rows.cosine_nn) <= set(arrays[f"case{k}_reference_index"][ref_rows])


def test_without_the_switch_every_test_image_is_scored(tmp_path):
    _run(tmp_path / "run", "arcface", switch=False)
    df = score_run(tmp_path / "run", SPEC)
    assert len(df) == 2 * N_TEST and df[df.case == 0].test_index.tolist() == list(range(N_TEST))


def test_half_per_class_keeps_int_half_of_each_class():
    labels = np.array([0] * 7 + [1] * 4 + [2])
    rows = half_per_class(labels, np.random.default_rng(0))
    assert np.bincount(labels[rows], minlength=3).tolist() == [3, 2, 0]
    cut, kept = unpaired_subsample(
        {"test_labels": labels, "case0_test": np.arange(12.0)[:, None], "case0_reference": np.zeros((4, 1))},
        0,
        0,
        "m",
    )
    assert cut["case0_test"][:, 0].tolist() == kept.tolist() and len(cut["case0_reference"]) == 2
