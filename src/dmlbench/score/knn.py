"""Anomaly scores from embedding distances: mean distance to the k nearest reference rows.

A test embedding far from every embedding of the (normal) reference set is anomalous. For
every test row and every requested ``k`` this module gives the mean of its ``k`` smallest
distances to the reference set (``k=1``: the nearest-neighbour distance; ``"all"``: the mean
distance to the whole reference set), and the index of the nearest reference row.

Distances (unitless: embeddings have no physical unit, so distances are in embedding units)

* ``cosine``: ``1 - cos(a, b)`` with ``cos(a, b) = a.b / (max(|a|, eps) * max(|b|, eps))``,
  ``eps = 1e-8``; in ``[0, 2]``. A zero vector has ``cos = 0`` with everything, i.e. distance
  1, never NaN.
* ``euclidean``: ``sqrt(max(|a|^2 + |b|^2 - 2 a.b, 0))``. This expansion is what makes the
  matrix-product formulation possible; its price is float32 cancellation for near-identical
  points (a distance that should be 0 can come out around ``1e-3 * |a|``), which does not
  matter for ranking anomalies.

How it is computed: the test set is cut into chunks of ``chunk_size`` rows and the reference
set into chunks of ``ref_chunk_size`` rows. Each pair of chunks costs ONE float32 matrix
product, a "block" ``G`` of ``chunk_size x ref_chunk_size``, that serves both distances: the
reference side of the product is ``-b_hat = -b / max(|b|, eps)``, so ``G = -|a| cos(a, b)``
is the cosine ranking key as it comes out, and one fused in-place pass turns it into the
Euclidean key ``|b|^2 - 2 a.b = |b|^2 + 2 max(|b|, eps) G``. Both keys are their distance up
to a monotone per-test-row transform, which is applied only to the survivors. A running
top-``k_max`` (smallest; ``torch.topk``) of each key is merged across reference chunks, so
memory is one block plus ``n_test x k_max`` plus the float32 reference, whatever the sizes;
the full ``n_test x n_ref`` matrix never exists. ``"all"`` needs no top-k: for cosine it is
exact in closed form, ``1 - a_hat . mean(b_hat)``; for Euclidean the block's distances are
summed row-wise (float32 within a block, float64 across blocks).

Ties: the nearest index is the LOWEST reference index among the reference rows whose
computed key equals the minimum. Within a block it is read off the top-k survivors when they
provably hold every minimal entry, else from ``torch.min(dim=1)``, which returns the first
minimum (documented torch behaviour, checked by the tests); a later reference chunk replaces
the running nearest only when strictly closer. Ties among the k nearest need no rule: equal
distances give the same mean whichever rows are taken.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Iterable, Sequence

import numpy as np
import torch

from dmlbench.errors import ConfigError

DISTANCES = ("cosine", "euclidean")
DEFAULT_KS = (1, 5, 10, 20, 30, "all")
EPS = 1e-8

# Default block: DEFAULT_BLOCK_ELEMENTS float32 = 64 MiB (the only block-sized buffer).
DEFAULT_BLOCK_ELEMENTS = 16 * 1024 * 1024
DEFAULT_REF_CHUNK = 16384


# --------------------------------------------------------------------------- arguments


def _normalise_distances(distances) -> list[str]:
    if isinstance(distances, str):
        distances = (distances,)
    out: list[str] = []
    for d in distances:
        if d not in DISTANCES:
            raise ConfigError(f"unknown distance {d!r}: choose from {', '.join(DISTANCES)}")
        if d not in out:
            out.append(d)
    if not out:
        raise ConfigError(f"no distance requested: choose from {', '.join(DISTANCES)}")
    # fixed order whatever the order asked for
    return [d for d in DISTANCES if d in out]


def _normalise_ks(ks) -> list[int | str]:
    if isinstance(ks, (str, numbers.Integral)):
        ks = (ks,)
    ints: set[int] = set()
    want_all = False
    for k in ks:
        if isinstance(k, str):
            if k != "all":
                raise ConfigError(f"k must be a positive integer or 'all', got {k!r}")
            want_all = True
        elif isinstance(k, numbers.Integral) and not isinstance(k, (bool, np.bool_)):
            if int(k) < 1:
                raise ConfigError(f"k must be a positive integer or 'all', got k={int(k)}")
            ints.add(int(k))
        else:
            raise ConfigError(f"k must be a positive integer or 'all', got {k!r}")
    return sorted(ints) + (["all"] if want_all else [])


def score_columns(
    distances: Iterable[str] = DISTANCES, ks: Iterable[int | str] = DEFAULT_KS, include_nn: bool = True
) -> list[str]:
    """Column names of :func:`knn_scores`'s result, in a fixed order.

    Distances in the order ``cosine, euclidean``; per distance the integer ks ascending, then
    ``"all"``, then (``include_nn``) the nearest-index column. Duplicates are dropped, e.g.
    ``score_columns(["euclidean", "cosine"], [5, "all", 1])`` ->
    ``["cosine_k1", "cosine_k5", "cosine_kall", "cosine_nn",
    "euclidean_k1", "euclidean_k5", "euclidean_kall", "euclidean_nn"]``.
    """
    cols = []
    for d in _normalise_distances(distances):
        cols += [f"{d}_k{k}" for k in _normalise_ks(ks)]
        if include_nn:
            cols.append(f"{d}_nn")
    return cols


def _positive_int_or_none(value, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < 1:
        raise ConfigError(f"{name} must be a positive integer or None, got {value!r}")
    return int(value)


def _as_tensor(x, name: str, device: torch.device) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        arr = np.asarray(x)
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise ConfigError(f"{name} must be a numeric array, got dtype {arr.dtype}")
        with warnings.catch_warnings():  # read-only arrays (memmaps) are fine: never written
            warnings.simplefilter("ignore", UserWarning)
            t = torch.as_tensor(arr)
    if t.is_complex():
        raise ConfigError(f"{name} must be real-valued, got dtype {t.dtype}")
    if t.ndim != 2:
        raise ConfigError(f"{name} must be 2-D [rows, dim], got shape {tuple(t.shape)}")
    if t.shape[0] == 0 or t.shape[1] == 0:
        raise ConfigError(f"{name} is empty (shape {tuple(t.shape)}): nothing to score")
    t = t.to(device)
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).any(dim=1).sum())
        raise ConfigError(f"{name} has non-finite values (NaN or inf) in {bad} row(s)")
    return t


# --------------------------------------------------------------------------- scoring


def _smallest(w: torch.Tensor, kk: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Row-wise ``kk`` smallest values of a block ``w [n, m]`` (unordered, ``[n, kk]``), the
    row minimum ``[n]`` and the LOWEST column index holding it ``[n]``.

    The index comes from the top-k result when that provably contains every minimal entry
    (fewer than ``kk`` of the survivors equal the minimum, or ``kk == m``); rows where all
    ``kk`` survivors tie (more equal entries may lie outside) fall back to ``torch.min(dim)``,
    which returns the first minimum - so the answer never depends on topk's tie order.
    """
    m = w.shape[1]
    if kk == 1:
        v, ix = torch.min(w, dim=1)
        return v[:, None], v, ix
    tv, ti = torch.topk(w, kk, dim=1, largest=False, sorted=False)
    vmin = tv.amin(dim=1)
    is_min = tv == vmin[:, None]
    ix = torch.where(is_min, ti, m).amin(dim=1)
    if kk < m:
        saturated = is_min.all(dim=1)
        if bool(saturated.any()):
            rows = saturated.nonzero().squeeze(1)
            ix[rows] = torch.min(w[rows], dim=1).indices
    return tv, vmin, ix


def _checked_inputs(test, reference, distances, ks, chunk_size, ref_chunk_size, device):
    """knn_scores's arguments checked and normalised: (distances, ks, test rows per block,
    reference rows per block, test tensor, reference tensor), both tensors on ``device``."""
    dists = _normalise_distances(distances)
    kls = _normalise_ks(ks)
    chunk_size = _positive_int_or_none(chunk_size, "chunk_size")
    ref_chunk_size = _positive_int_or_none(ref_chunk_size, "ref_chunk_size")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"invalid device {device!r}: {exc}") from None

    test_t = _as_tensor(test, "test", device)
    ref_t = _as_tensor(reference, "reference", device)
    n_test, dim = test_t.shape
    n_ref = ref_t.shape[0]
    if ref_t.shape[1] != dim:
        raise ConfigError(f"dimension mismatch: test has {dim} columns, reference has {ref_t.shape[1]}")
    too_big = [k for k in kls if k != "all" and k > n_ref]
    if too_big:
        raise ConfigError(f"k={too_big[0]} is larger than the reference set ({n_ref} rows): use k <= {n_ref} or 'all'")
    rcs = min(n_ref, ref_chunk_size or DEFAULT_REF_CHUNK)
    cs = min(n_test, chunk_size or max(1, DEFAULT_BLOCK_ELEMENTS // rcs))
    return dists, kls, cs, rcs, test_t, ref_t


class _Reference:
    """The reference side of every block product, prepared once.

    ``mat`` [n_ref, D] float32: ``-b_hat = -b / max(|b|, eps)`` when cosine is asked for (its
    product with a test row is the cosine key ``-|a| cos(a, b)`` as it comes out of the matmul,
    and ``a.b = -G * max(|b|, eps)`` gives the Euclidean key with one fused pass, addcmul), else
    ``b``; ``nb2`` [n_ref] ``|b|^2``; ``two_scale_b`` [n_ref] ``2 max(|b|, eps)`` (cosine only);
    ``mean_b_hat`` [D] float64, the mean unit vector (cosine with ``"all"`` only).
    """

    def __init__(self, ref_t: torch.Tensor, dists: list[str], want_all: bool):
        ref = ref_t.to(torch.float32)
        self.n = ref.shape[0]
        self.nb2 = (ref * ref).sum(dim=1)  # [n_ref]  |b|^2
        self.with_cosine = "cosine" in dists
        self.two_scale_b = self.mean_b_hat = None
        if self.with_cosine:
            scale_b = self.nb2.sqrt().clamp_min(EPS)  # [n_ref] max(|b|, eps)
            self.mat = (ref / (-scale_b)[:, None]).contiguous()  # [n_ref, D] -b_hat
            self.two_scale_b = 2.0 * scale_b
            if want_all:
                # mean of the unit vectors: exact shortcut mean_b(1 - a_hat.b_hat) = 1 - a_hat.mean(b_hat)
                self.mean_b_hat = -self.mat.sum(dim=0, dtype=torch.float64) / self.n
        else:
            self.mat = ref.contiguous()

    def euclidean_key_(self, g: torch.Tensor, j0: int, j1: int) -> None:
        """Turn a block ``g`` of products with ``mat[j0:j1]`` into the Euclidean key
        ``|b|^2 - 2 a.b``, in place."""
        if self.with_cosine:
            torch.addcmul(self.nb2[j0:j1], g, self.two_scale_b[j0:j1], out=g)
        else:
            torch.add(self.nb2[j0:j1], g, alpha=-2.0, out=g)


class _RunningNearest:
    """One distance's running result over the reference chunks of one test chunk: the
    ``k_max`` smallest keys so far (``top``, unordered, when integer ks are asked for), the
    smallest key (``best_v``) and its lowest reference index (``best_i``)."""

    def __init__(self, k_max: int, keep_top: bool):
        self.k_max, self.keep_top = k_max, keep_top
        self.top = self.best_v = self.best_i = None

    def update(self, g: torch.Tensor, j0: int) -> None:
        """Merge a block of keys ``g [n, m]`` whose column 0 is reference row ``j0``."""
        tv, v, ix = _smallest(g, min(self.k_max, g.shape[1]))
        ix += j0
        if self.best_v is None:
            self.best_v, self.best_i = v, ix
        else:
            closer = v < self.best_v  # strict: earlier chunk wins ties
            self.best_v = torch.where(closer, v, self.best_v)
            self.best_i = torch.where(closer, ix, self.best_i)
        if self.keep_top:
            if self.top is not None:  # merge with the running top-k
                both = torch.cat([self.top, tv], dim=1)
                tv = torch.topk(both, min(self.k_max, both.shape[1]), dim=1, largest=False, sorted=False).values
            self.top = tv


def _scan_reference(
    a: torch.Tensor,
    na2: torch.Tensor,
    ref: _Reference,
    dists: list[str],
    k_max: int,
    keep_top: bool,
    want_all: bool,
    rcs: int,
    g_buf: torch.Tensor,
    block_shapes: list | None,
) -> tuple[dict[str, _RunningNearest], torch.Tensor | None]:
    """The per-block top-k loop of one test chunk ``a [n, D]`` (float32, ``na2 = |a|^2``) over the
    reference chunks of ``rcs`` rows: one matmul per block, whose result is the cosine key and,
    transformed in place, the Euclidean key. Returns the running nearest keys per distance and,
    for Euclidean with ``"all"``, the sum [n] float64 of each test row's distances."""
    n = a.shape[0]
    nearest = {d: _RunningNearest(k_max, keep_top) for d in dists}
    eu_sum = torch.zeros(n, dtype=torch.float64, device=a.device) if (want_all and "euclidean" in dists) else None
    for j0 in range(0, ref.n, rcs):
        j1 = min(j0 + rcs, ref.n)
        m = j1 - j0
        if block_shapes is not None:
            block_shapes.append((n, m))
        g = g_buf[: n * m].view(n, m)
        torch.mm(a, ref.mat[j0:j1].T, out=g)  # the one matmul per block
        for d in dists:  # cosine first: g is its key
            if d == "euclidean":
                ref.euclidean_key_(g, j0, j1)
            nearest[d].update(g, j0)
            if d == "euclidean" and eu_sum is not None:
                g.add_(na2[:, None]).clamp_min_(0.0).sqrt_()  # distances of the block
                eu_sum += g.sum(dim=1)  # float32 pairwise within a block
    return nearest, eu_sum


def _cosine_mean_all(a: torch.Tensor, mean_b_hat: torch.Tensor) -> torch.Tensor:
    """Mean cosine distance [n] float64 of test rows ``a [n, D]`` to the whole reference set,
    in closed form: ``1 - a_hat . mean(b_hat)``."""
    a64 = a.double()
    a_hat = a64 / torch.linalg.vector_norm(a64, dim=1).clamp_min(EPS)[:, None]
    return 1.0 - a_hat @ mean_b_hat


def _keys_to_distances(keys: torch.Tensor, distance: str, test_norm2: torch.Tensor) -> torch.Tensor:
    """The surviving ranking keys ``[n_test, k_max]`` turned into distances, sorted ascending
    per row, float64: cosine ``1 + key / max(|a|, eps)`` in [0, 2], Euclidean
    ``sqrt(max(key + |a|^2, 0))`` (``test_norm2 = |a|^2`` [n_test])."""
    if distance == "cosine":
        inv_na = 1.0 / test_norm2.sqrt().clamp_min(EPS)
        dist = (1.0 + keys * inv_na[:, None]).clamp_(0.0, 2.0)
    else:
        dist = (keys + test_norm2[:, None]).clamp_min_(0.0).sqrt_()
    return torch.sort(dist.double(), dim=1).values


def _k_means(sorted_dist: torch.Tensor, int_ks: list[int]) -> dict[int, torch.Tensor]:
    """Mean of the k smallest of each row of ``sorted_dist [n, k_max]`` (ascending), per k."""
    csum = sorted_dist.cumsum(dim=1)
    return {k: csum[:, k - 1] / k for k in int_ks}


class _Scores:
    """knn_scores's outputs for all test rows, filled one test chunk at a time: per distance
    the nearest reference index [n_test], the k_max smallest keys [n_test, k_max] and (``"all"``)
    the mean distance to the whole reference set [n_test] float64; and ``|a|^2`` [n_test]."""

    def __init__(self, n_test: int, k_max: int, dists: list[str], want_all: bool, device: torch.device):
        self.dists = dists
        self.top = {d: torch.empty(n_test, k_max, dtype=torch.float32, device=device) for d in dists}
        self.nn = {d: torch.empty(n_test, dtype=torch.int64, device=device) for d in dists}
        self.test_norm2 = torch.empty(n_test, dtype=torch.float32, device=device)  # |a|^2
        self.all = {}
        if want_all:
            self.all = {d: torch.empty(n_test, dtype=torch.float64, device=device) for d in dists}

    def store(
        self,
        i0: int,
        i1: int,
        nearest: dict[str, _RunningNearest],
        int_ks: list[int],
        a: torch.Tensor,
        ref: _Reference,
        eu_sum: torch.Tensor | None,
    ) -> None:
        """Keep test rows ``i0:i1``'s results (``a``: those rows, float32)."""
        for d in self.dists:
            self.nn[d][i0:i1] = nearest[d].best_i
            if int_ks:
                self.top[d][i0:i1] = nearest[d].top
            if self.all:
                self.all[d][i0:i1] = _cosine_mean_all(a, ref.mean_b_hat) if d == "cosine" else eu_sum / ref.n

    def result(self, kls: list[int | str]) -> dict[str, np.ndarray]:
        """The key-to-distance step on the survivors, then the means of the k smallest; the
        columns of :func:`knn_scores` as numpy arrays."""
        int_ks = [k for k in kls if k != "all"]
        result: dict[str, np.ndarray] = {}
        for d in self.dists:
            means = _k_means(_keys_to_distances(self.top[d], d, self.test_norm2), int_ks) if int_ks else {}
            for k in kls:
                if k == "all":
                    col = self.all[d].clamp(0.0, 2.0) if d == "cosine" else self.all[d]
                else:
                    col = means[k]
                result[f"{d}_k{k}"] = col.to(torch.float32).cpu().numpy()
            result[f"{d}_nn"] = self.nn[d].cpu().numpy()
        return result


def knn_scores(
    test: np.ndarray | torch.Tensor,
    reference: np.ndarray | torch.Tensor,
    distances: Sequence[str] = DISTANCES,
    ks: Sequence[int | str] = DEFAULT_KS,
    chunk_size: int | None = None,
    ref_chunk_size: int | None = None,
    device: str | torch.device = "cpu",
    _block_shapes: list | None = None,
) -> dict[str, np.ndarray]:
    """k-nearest-neighbour distance scores of ``test`` rows against ``reference`` rows.

    Parameters
    ----------
    test : array or tensor, shape ``[n_test, D]``
        Embeddings to score; any real dtype (float16 as stored by the pipeline is fine),
        the computation is float32.
    reference : array or tensor, shape ``[n_ref, D]``
        Embeddings of the reference (normal) set. Converted to float32 once (``n_ref * D * 4``
        bytes).
    distances : ``"cosine"`` and/or ``"euclidean"``.
    ks : positive integers (``<= n_ref``) and/or ``"all"``.
    chunk_size : test rows per block (default: ``DEFAULT_BLOCK_ELEMENTS // ref_chunk_size``,
        i.e. a 64 MiB float32 block).
    ref_chunk_size : reference rows per block (default ``min(n_ref, 16384)``).
    device : torch device to compute on (default CPU, using torch's intra-op threads).
    _block_shapes : for tests: when a list, ``(rows, cols)`` of every distance block is
        appended to it.

    Returns
    -------
    dict, keys in :func:`score_columns` order:
        ``f"{distance}_k{k}"`` (``"..._kall"`` for ``"all"``): float32 ``[n_test]``, mean of
        the k smallest distances of each test row (same unit as the distance);
        ``f"{distance}_nn"``: int64 ``[n_test]``, row index in ``reference`` of the nearest
        reference row (lowest index among ties).

    Memory: one float32 block of ``chunk_size * ref_chunk_size`` plus ``O(n_test * k_max)``
    and a float32 copy of ``reference`` (``-b_hat`` when cosine is asked for); never
    ``n_test * n_ref``.

    Raises
    ------
    ConfigError
        unknown distance, bad k (``k > n_ref`` names both), empty inputs, 1-D or mismatched
        dimensions, non-finite values, bad chunk sizes.
    """
    dists, kls, cs, rcs, test_t, ref_t = _checked_inputs(
        test, reference, distances, ks, chunk_size, ref_chunk_size, device
    )
    n_test = test_t.shape[0]
    int_ks = [k for k in kls if k != "all"]
    want_all = "all" in kls
    k_max = max(int_ks) if int_ks else 1  # top-1 is always kept: it gives the nearest index
    ref = _Reference(ref_t, dists, want_all)
    out = _Scores(n_test, k_max, dists, want_all, test_t.device)
    # one preallocated flat buffer; every block is a contiguous view of its front
    g_buf = torch.empty(cs * rcs, dtype=torch.float32, device=test_t.device)
    for i0 in range(0, n_test, cs):
        i1 = min(i0 + cs, n_test)
        a = test_t[i0:i1].to(torch.float32)
        na2 = (a * a).sum(dim=1)  # [n] |a|^2
        out.test_norm2[i0:i1] = na2
        nearest, eu_sum = _scan_reference(a, na2, ref, dists, k_max, bool(int_ks), want_all, rcs, g_buf, _block_shapes)
        out.store(i0, i1, nearest, int_ks, a, ref, eu_sum)
    return out.result(kls)
