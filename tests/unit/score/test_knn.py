"""dmlbench.score.knn: kNN distance scores against a brute-force numpy/scipy reference."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from dmlbench.errors import ConfigError
from dmlbench.score.knn import knn_scores, score_columns

ROOT = Path(__file__).resolve().parents[3]
KS = (1, 3, 7, "all")


def brute_force(test, ref, distance, ks):
    """Full float64 distance matrix, sorted rows, mean of the first k; argmin for nn."""
    t = np.asarray(test, dtype=np.float64)
    r = np.asarray(ref, dtype=np.float64)
    d = cdist(t, r, metric=distance)
    s = np.sort(d, axis=1)
    out = {}
    for k in ks:
        out[f"{distance}_k{k}"] = d.mean(axis=1) if k == "all" else s[:, :k].mean(axis=1)
    out[f"{distance}_nn"] = d.argmin(axis=1)
    return out, d


def tol(distance):
    # cosine distances are O(1); euclidean ones are O(sqrt(2 * dim)) ~ 6 here
    return dict(rtol=1e-5, atol=2e-6) if distance == "cosine" else dict(rtol=1e-5, atol=5e-5)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Numerics do not depend on the thread count; one thread keeps these many tiny blocks
    fast on a shared machine (two threads wait on each other when a core is taken)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1234)
    return rng.standard_normal((50, 16)).astype(np.float32), rng.standard_normal((83, 16)).astype(np.float32)


# --------------------------------------------------------------------------- vs brute force


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize(
    "chunks",
    [(7, 13), (None, None), (1000, 1000), (5, 2), (3, 1), (50, 83)],
    ids=["7x13", "default", "larger-than-data", "5x2", "3x1", "exact"],
)
def test_matches_brute_force(data, dtype, chunks):
    test, ref = (x.astype(dtype) for x in data)
    shapes: list = []
    res = knn_scores(test, ref, ks=KS, chunk_size=chunks[0], ref_chunk_size=chunks[1], _block_shapes=shapes)
    assert list(res) == score_columns(("cosine", "euclidean"), KS)
    for distance in ("cosine", "euclidean"):
        want, _ = brute_force(test, ref, distance, KS)  # float16 values are exact in float64
        for k in KS:
            got = res[f"{distance}_k{k}"]
            assert got.dtype == np.float32 and got.shape == (50,)
            np.testing.assert_allclose(
                got, want[f"{distance}_k{k}"], **tol(distance), err_msg=f"{distance} k={k} chunks={chunks}"
            )
        nn = res[f"{distance}_nn"]
        assert nn.dtype == np.int64
        np.testing.assert_array_equal(nn, want[f"{distance}_nn"])
    cs = min(chunks[0] or 10**9, 50)
    rcs = min(chunks[1] or 10**9, 83)
    assert max(r for r, _ in shapes) <= cs and max(c for _, c in shapes) <= rcs
    assert sum(r * c for r, c in shapes) == 50 * 83  # every pair scored exactly once


@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
def test_single_distance_torch_input(data, distance):
    test, ref = (torch.from_numpy(x).to(torch.float16) for x in data)
    res = knn_scores(test, ref, distances=[distance], ks=(2, "all"), chunk_size=11, ref_chunk_size=9)
    assert list(res) == [f"{distance}_k2", f"{distance}_kall", f"{distance}_nn"]
    want, _ = brute_force(test.float().numpy(), ref.float().numpy(), distance, (2, "all"))
    for key in (f"{distance}_k2", f"{distance}_kall"):
        np.testing.assert_allclose(res[key], want[key], **tol(distance))
    np.testing.assert_array_equal(res[f"{distance}_nn"], want[f"{distance}_nn"])


def test_scaled_and_offset_data_euclidean():
    """Non-centred data with larger norms: the |a|^2+|b|^2-2ab expansion stays accurate."""
    rng = np.random.default_rng(7)
    ref = (rng.standard_normal((300, 32)) * 3 + 5).astype(np.float32)
    test = (rng.standard_normal((40, 32)) * 3 + 5).astype(np.float32)
    res = knn_scores(test, ref, ks=(1, 10, "all"), chunk_size=16, ref_chunk_size=64)
    for distance in ("cosine", "euclidean"):
        want, _ = brute_force(test, ref, distance, (1, 10, "all"))
        for k in (1, 10, "all"):
            np.testing.assert_allclose(res[f"{distance}_k{k}"], want[f"{distance}_k{k}"], rtol=1e-4, atol=1e-5)


def test_only_all_still_gives_nearest(data):
    test, ref = data
    res = knn_scores(test, ref, ks=["all"], ref_chunk_size=10)
    assert list(res) == ["cosine_kall", "cosine_nn", "euclidean_kall", "euclidean_nn"]
    for distance in ("cosine", "euclidean"):
        want, _ = brute_force(test, ref, distance, ["all"])
        np.testing.assert_array_equal(res[f"{distance}_nn"], want[f"{distance}_nn"])


def test_k_equal_to_reference_size_is_the_mean(data):
    test, ref = data
    res = knn_scores(test, ref[:9], ks=(9, "all"), ref_chunk_size=4)
    for distance in ("cosine", "euclidean"):
        np.testing.assert_allclose(res[f"{distance}_k9"], res[f"{distance}_kall"], rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- worked by hand

# reference: (1,0), (0,1), (-1,0), (3,4)
REF_2D = np.array([[1, 0], [0, 1], [-1, 0], [3, 4]], dtype=np.float32)
# test: (2,0), (0,2), (0,0) zero vector, (-2,0)
TEST_2D = np.array([[2, 0], [0, 2], [0, 0], [-2, 0]], dtype=np.float32)
S5, S13, S17, S41 = math.sqrt(5), math.sqrt(13), math.sqrt(17), math.sqrt(41)
HAND = {
    # (2,0): euclid 1, sqrt5, 3, sqrt17      cosine 0, 1, 2, 1-3/5=0.4
    # (0,2): euclid sqrt5, 1, sqrt5, sqrt13  cosine 1, 0, 1, 1-4/5=0.2
    # (0,0): euclid 1, 1, 1, 5               cosine 1, 1, 1, 1 (zero vector: cos = 0)
    # (-2,0): euclid 3, sqrt5, 1, sqrt41     cosine 2, 1, 0, 1+3/5=1.6
    "euclidean_k1": [1, 1, 1, 1],
    "euclidean_k2": [(1 + S5) / 2, (1 + S5) / 2, 1, (1 + S5) / 2],
    "euclidean_kall": [(1 + S5 + 3 + S17) / 4, (S5 + 1 + S5 + S13) / 4, 2, (3 + S5 + 1 + S41) / 4],
    "euclidean_nn": [0, 1, 0, 2],
    "cosine_k1": [0, 0, 1, 0],
    "cosine_k2": [0.2, 0.1, 1, 0.5],
    "cosine_kall": [3.4 / 4, 2.2 / 4, 1, 4.6 / 4],
    "cosine_nn": [0, 1, 0, 2],
}


@pytest.mark.parametrize("chunks", [(None, None), (1, 1), (3, 3)])
def test_hand_worked_2d(chunks):
    res = knn_scores(TEST_2D, REF_2D, ks=(1, 2, "all"), chunk_size=chunks[0], ref_chunk_size=chunks[1])
    assert set(res) == set(HAND)
    for key, want in HAND.items():
        if key.endswith("_nn"):
            np.testing.assert_array_equal(res[key], want, err_msg=key)
        else:
            np.testing.assert_allclose(res[key], want, rtol=1e-6, atol=1e-6, err_msg=key)


def test_zero_vectors_give_finite_cosine():
    ref = np.array([[0, 0, 0], [1, 2, 3], [0, 0, 0]], dtype=np.float16)
    test = np.array([[0, 0, 0], [2, 4, 6]], dtype=np.float16)
    res = knn_scores(test, ref, distances="cosine", ks=(1, 2, "all"))
    for key in ("cosine_k1", "cosine_k2", "cosine_kall"):
        assert np.isfinite(res[key]).all(), key
    # zero test row: cos 0 with everything -> distance 1; (2,4,6) is parallel to (1,2,3)
    np.testing.assert_allclose(res["cosine_k1"], [1, 0], atol=1e-6)
    np.testing.assert_allclose(res["cosine_kall"], [1, 2 / 3], atol=1e-6)
    np.testing.assert_array_equal(res["cosine_nn"], [0, 1])


# --------------------------------------------------------------------------- ties


@pytest.mark.parametrize("ref_chunk", [1, 4, 7, 16, 13, 100])
@pytest.mark.parametrize("ks", [(1,), (3,), (7, "all"), ("all",)])
def test_ties_pick_lowest_reference_index(ref_chunk, ks):
    rng = np.random.default_rng(3)
    ref = rng.integers(-5, 6, size=(100, 8)).astype(np.float32)
    v = np.array([1, 2, 0, -1, 3, 1, 0, 2], dtype=np.float32)
    dupes = [17, 33, 50, 51, 52, 90]  # 6 identical rows: more than k_max=3 in a block
    ref[dupes] = v
    test = np.stack([2 * v, v, -v]).astype(np.float32)
    res = knn_scores(test, ref, ks=ks, chunk_size=2, ref_chunk_size=ref_chunk)
    for distance in ("cosine", "euclidean"):
        nn = res[f"{distance}_nn"]
        assert nn[0] == 17 and nn[1] == 17, (distance, nn)
        _, d = brute_force(test, ref, distance, ["all"])
        assert nn[2] == int(np.flatnonzero(np.isclose(d[2], d[2].min(), rtol=0, atol=1e-6))[0])


def test_torch_min_returns_first_minimum():
    """The documented torch behaviour the tie rule relies on, across vector-lane boundaries."""
    x = torch.ones(3, 1000)
    x[0, [5, 700, 999]] = 0
    x[1, [64, 65, 900]] = -1
    x[2, :] = 2
    assert torch.min(x, dim=1).indices.tolist() == [5, 64, 0]


# --------------------------------------------------------------------------- errors


def test_k_larger_than_reference_raises(data):
    test, ref = data
    with pytest.raises(ConfigError, match=r"k=84.*83"):
        knn_scores(test, ref, ks=(1, 84))


def test_unknown_distance_raises(data):
    test, ref = data
    with pytest.raises(ConfigError, match=r"manhattan.*cosine.*euclidean"):
        knn_scores(test, ref, distances=("cosine", "manhattan"))


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(test=np.zeros((0, 4)), reference=np.ones((3, 4))),
        dict(test=np.ones((2, 4)), reference=np.zeros((0, 4))),
        dict(test=np.ones((2, 0)), reference=np.ones((3, 0))),
        dict(test=np.ones((2, 4)), reference=np.ones((3, 5))),
        dict(test=np.ones(4), reference=np.ones((3, 4))),
        dict(test=np.ones((2, 4)), reference=np.ones((3, 4)), ks=(0,)),
        dict(test=np.ones((2, 4)), reference=np.ones((3, 4)), ks=("ten",)),
        dict(test=np.ones((2, 4)), reference=np.ones((3, 4)), ks=(True,)),
        dict(test=np.ones((2, 4)), reference=np.ones((3, 4)), ks=(2.5,)),
        dict(test=np.ones((2, 4)), reference=np.ones((3, 4)), distances=()),
        dict(test=np.ones((2, 4)), reference=np.ones((3, 4)), chunk_size=0),
        dict(test=np.ones((2, 4)), reference=np.ones((3, 4)), ref_chunk_size=-3),
        dict(test=np.array([[1.0, np.nan]]), reference=np.ones((3, 2))),
        dict(test=np.ones((2, 2)), reference=np.array([[np.inf, 1.0]], dtype=np.float16)),
    ],
    ids=[
        "empty-test",
        "empty-ref",
        "zero-dim",
        "dim-mismatch",
        "1-D",
        "k=0",
        "k=str",
        "k=bool",
        "k=float",
        "no-distance",
        "chunk=0",
        "ref-chunk<0",
        "nan",
        "inf",
    ],
)
def test_bad_arguments_raise_config_error(kwargs):
    with pytest.raises(ConfigError):
        knn_scores(**kwargs)


def test_read_only_input_no_warning(data):
    test, ref = (x.copy() for x in data)
    ref.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        knn_scores(test, ref, ks=(1,))


def test_score_columns_fixed_order():
    assert score_columns(["euclidean", "cosine"], [5, "all", 1, 5]) == [
        "cosine_k1",
        "cosine_k5",
        "cosine_kall",
        "cosine_nn",
        "euclidean_k1",
        "euclidean_k5",
        "euclidean_kall",
        "euclidean_nn",
    ]
    assert score_columns("cosine", (30, 1), include_nn=False) == ["cosine_k1", "cosine_k30"]
    assert score_columns()[:7] == [
        "cosine_k1",
        "cosine_k5",
        "cosine_k10",
        "cosine_k20",
        "cosine_k30",
        "cosine_kall",
        "cosine_nn",
    ]


# --------------------------------------------------------------------------- memory bound


def test_blocks_never_exceed_chunk_sizes(monkeypatch):
    """2,000 x 20,000 x 64-d with small chunks: every matrix product (seen by an instrumented
    torch.mm) and every top-k/min input is at most chunk_size x ref_chunk_size."""
    rng = np.random.default_rng(11)
    test = rng.standard_normal((2000, 64), dtype=np.float32).astype(np.float16)
    ref = rng.standard_normal((20000, 64), dtype=np.float32).astype(np.float16)
    cs, rcs = 300, 1500  # neither divides its size
    seen: dict[str, list] = {"mm": [], "topk": [], "min": []}
    real = {name: getattr(torch, name) for name in seen}

    def spy(name):
        def wrapper(x, *args, **kwargs):
            seen[name].append(tuple(x.shape) if name != "mm" else (x.shape[0], args[0].shape[1]))
            return real[name](x, *args, **kwargs)

        return wrapper

    for name in seen:
        monkeypatch.setattr(torch, name, spy(name))
    shapes: list = []
    res = knn_scores(test, ref, ks=(1, 5, 30, "all"), chunk_size=cs, ref_chunk_size=rcs, _block_shapes=shapes)
    monkeypatch.undo()

    n_blocks = math.ceil(2000 / cs) * math.ceil(20000 / rcs)
    assert len(shapes) == n_blocks and sum(r * c for r, c in shapes) == 2000 * 20000
    assert len(seen["mm"]) == n_blocks  # ONE matmul per block serves both distances
    for name, recorded in seen.items():
        for shape in recorded:
            assert len(shape) <= 2 and math.prod(shape) <= cs * rcs, (name, shape)
    assert max(r for r, _ in seen["mm"]) <= cs and max(c for _, c in seen["mm"]) <= rcs

    # and it is still right: spot-check 40 rows against brute force
    rows = np.arange(0, 2000, 50)
    for distance in ("cosine", "euclidean"):
        want, _ = brute_force(test[rows], ref, distance, (1, 5, 30, "all"))
        for k in (1, 5, 30, "all"):
            np.testing.assert_allclose(res[f"{distance}_k{k}"][rows], want[f"{distance}_k{k}"], rtol=1e-5, atol=5e-5)
        np.testing.assert_array_equal(res[f"{distance}_nn"][rows], want[f"{distance}_nn"])


# --------------------------------------------------------------------------- benchmark script


def test_bench_script_small_run(tmp_path):
    out = tmp_path / "speed.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.score_speed",
            "--n-test",
            "64",
            "--n-ref",
            "300",
            "--dim",
            "16",
            "--repeat",
            "1",
            "--threads",
            "1",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    rec = json.loads(out.read_text())
    for key in (
        "device",
        "threads",
        "n_test",
        "n_ref",
        "dim",
        "ks",
        "distances",
        "seconds_best",
        "seconds_first",
        "rows_per_second",
        "target_seconds",
        "meets_target",
    ):
        assert key in rec, key
    assert rec["n_test"] == 64 and rec["threads"] == 1 and rec["target_seconds"] == 15
    assert rec["ks"] == [1, 5, 10, 20, 30, "all"] and isinstance(rec["meets_target"], bool)
