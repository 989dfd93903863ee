"""Statistics over runs: bootstrap confidence intervals, Friedman test with average ranks and the
Nemenyi critical difference, paired Wilcoxon tests against a baseline with Holm correction, and
the t-test of a mean with its interval (the findings' paired tests over cases).

Blocks are (case, seed) pairs: every method sees the same cases and seeds (paired design), so a
method comparison is made within a block. The bootstrap intervals resample cases (the seeds of a
case averaged first): seeds share a case's classes and test images, so they are not independent. Column meanings are in docs/tables.md and the
definitions in docs/metrics.md.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sst

from .errors import DmlbenchError
from .metrics import HIGHER_IS_BETTER

BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
BASELINE = "conventional"


# --------------------------------------------------------------------------- bootstrap


@functools.lru_cache(maxsize=16)
def _resample_index(n: int, resamples: int, seed: int) -> np.ndarray:
    """The ``[resamples, n]`` bootstrap index matrix of ``default_rng(seed)`` (cached: groups with
    the same number of values share it, which is what seeding per call gives anyway)."""
    idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    idx.setflags(write=False)
    return idx


def bootstrap_ci(
    values, level: float = 0.95, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean of ``values``.

    ``resamples`` resamples of ``len(values)`` values drawn with replacement (numpy
    ``default_rng(seed)``, one ``[resamples, n]`` index matrix, vectorised); the interval is the
    ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles (numpy's linear interpolation) of the
    resampled means. The generator is seeded per call, so a group's interval depends only on its
    values (and their order), not on the other groups. One value gives ``(value, value)``.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or len(x) == 0:
        raise ValueError("bootstrap_ci needs a non-empty 1-D array")
    if len(x) == 1:
        return float(x[0]), float(x[0])
    idx = _resample_index(len(x), resamples, seed)
    means = x[idx].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


# --------------------------------------------------------------------------- multiple tests


def holm(pvalues) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (step-down; NaN entries stay NaN and do not count).

    With the m valid p-values sorted ascending p_(1) <= ... <= p_(m):
    adj_(i) = min(1, max_{j <= i} (m - j + 1) p_(j)). Reject H_(i) at level alpha iff
    adj_(i) <= alpha, which is Holm's procedure.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = len(valid)
    if m == 0:
        return out
    order = valid[np.argsort(p[valid], kind="mergesort")]
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out[order] = adjusted
    return out


# --------------------------------------------------------------------------- ranks and tests


def average_ranks(values: np.ndarray, higher_is_better: bool = True) -> np.ndarray:
    """Mean over blocks (rows) of the rank of each method (column) within its block; rank 1 =
    the best value (the highest, e.g. AUROC, or with ``higher_is_better=False`` the lowest, e.g.
    FPR@95), ties get the average of the ranks they span."""
    values = np.asarray(values, dtype=np.float64)
    return sst.rankdata(-values if higher_is_better else values, axis=1).mean(axis=0)


def nemenyi_cd(k: int, n_blocks: int, alpha: float = 0.05) -> float:
    """Nemenyi critical difference of average ranks: ``q_alpha * sqrt(k (k + 1) / (6 N))`` with
    ``q_alpha = studentized_range.ppf(1 - alpha, k, inf) / sqrt(2)`` (Demsar 2006, table 5a:
    2.850 for k = 6, alpha = 0.05). Two methods differ significantly when their average ranks
    differ by more than CD."""
    if k < 2 or n_blocks < 1:
        return float("nan")
    q = sst.studentized_range.ppf(1 - alpha, k, np.inf) / np.sqrt(2)
    return float(q * np.sqrt(k * (k + 1) / (6.0 * n_blocks)))


def friedman(values: np.ndarray) -> tuple[float, float, str]:
    """Friedman test of ``values [n_blocks, k]`` (scipy.stats.friedmanchisquare, chi-square
    approximation with tie correction): ``(statistic, p, note)``; NaN with a note when it cannot
    be computed (fewer than 3 methods, fewer than 2 blocks, every block tied)."""
    n, k = values.shape
    if k < 3:
        return float("nan"), float("nan"), f"Friedman test needs at least 3 methods, got {k}"
    if n < 2:
        return float("nan"), float("nan"), f"Friedman test needs at least 2 complete (case, seed) blocks, got {n}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = sst.friedmanchisquare(*values.T)
    stat, p = float(res.statistic), float(res.pvalue)
    if not np.isfinite(stat):
        return float("nan"), float("nan"), "every block ties all methods: Friedman statistic undefined"
    return stat, p, ""


def wilcoxon_p(x: np.ndarray, y: np.ndarray) -> float:
    """Two-sided p-value of the paired Wilcoxon signed-rank test of x against y
    (scipy.stats.wilcoxon defaults: zero differences dropped, exact distribution for small
    samples without ties). All differences zero -> 1.0 (no evidence of a difference)."""
    d = np.asarray(x, dtype=np.float64) - np.asarray(y, dtype=np.float64)
    if len(d) == 0:
        return float("nan")
    if np.all(d == 0):
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (RuntimeWarning, UserWarning))
        return float(sst.wilcoxon(x, y).pvalue)


@dataclass(frozen=True)
class MeanTest:
    """A one-sample t-test of a mean: ``mean`` of the values, its ``ci_low``/``ci_high``
    t-interval, the ``statistic`` t of ``mean - null``, the two-sided ``p`` and the count ``n``."""

    mean: float
    ci_low: float
    ci_high: float
    statistic: float
    p: float
    n: int


def mean_test(values, null: float = 0.0, level: float = 0.95) -> MeanTest:
    """Two-sided one-sample t-test of ``mean(values) == null`` with the ``level`` t-interval of the mean.

    ``values`` is 1-D, one value per independent block (for a paired comparison: the per-case
    mean difference, seeds averaged within a case), at least 2 of them. With n values, mean m and
    standard deviation s (ddof 1): t = (m - null) / (s / sqrt(n)) on n - 1 degrees of freedom,
    p = 2 P(T > |t|), interval m -/+ t_{(1 + level) / 2, n - 1} s / sqrt(n). When every value is
    equal (s = 0) the interval is that value and p is 1 if it equals ``null``, else 0 (t infinite).
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or len(x) < 2:
        raise ValueError("mean_test needs a 1-D array of at least 2 values")
    n = len(x)
    mean = float(x.mean())
    if np.ptp(x) == 0:  # exactly equal values: no spread, and summation rounding would fake one
        mean = float(x[0])
        diff = mean - null
        return MeanTest(
            mean, mean, mean, 0.0 if diff == 0 else math.copysign(math.inf, diff), 1.0 if diff == 0 else 0.0, n
        )
    se = float(x.std(ddof=1)) / math.sqrt(n)
    half = float(sst.t.ppf((1 + level) / 2, n - 1)) * se
    t = (mean - null) / se
    return MeanTest(mean, mean - half, mean + half, float(t), float(2 * sst.t.sf(abs(t), n - 1)), n)


RANKING_COLUMNS = [
    "dataset",
    "n_anomaly",
    "n_per_class",
    "scorer",
    "method",
    "avg_rank",
    "friedman_statistic",
    "friedman_p",
    "cd",
    "n_blocks",
    "n_methods",
    "wilcoxon_p",
    "wilcoxon_p_holm",
    "note",
]


def ranking_table(
    metrics: pd.DataFrame, metric: str = "auroc", baseline: str = BASELINE, alpha: float = 0.05
) -> pd.DataFrame:
    """One row per (dataset, n_anomaly, n_per_class, scorer, method) from a tidy metrics table.

    Within each (dataset, n_anomaly, n_per_class, scorer) the blocks are the (case, seed) pairs
    with a value of ``metric`` for EVERY method of the group (incomplete blocks are dropped, as
    the tests are paired). Rank 1 is the best method in a block: the highest value, or the
    lowest for a lower-is-better metric (fpr95; dmlbench.metrics.HIGHER_IS_BETTER). Columns: see
    ``RANKING_COLUMNS`` and docs/tables.md.
    """
    if metric not in HIGHER_IS_BETTER:
        raise DmlbenchError(
            f"ranking_table: metric {metric!r} is unknown; known metrics: {', '.join(sorted(HIGHER_IS_BETTER))}"
        )
    higher = HIGHER_IS_BETTER[metric]
    m = metrics[metrics["metric"] == metric]
    rows = []
    group_keys = ["dataset", "n_anomaly", "n_per_class", "scorer"]
    for key, grp in m.groupby(group_keys, sort=True):
        wide = grp.pivot_table(index=["case", "seed"], columns="method", values="value", aggfunc="first")
        methods = sorted(wide.columns)
        wide = wide[methods].dropna(axis=0, how="any").sort_index()
        values = wide.to_numpy(dtype=np.float64)
        n, k = values.shape
        notes = []
        if n == 0:
            ranks = np.full(k, np.nan)
            notes.append("no (case, seed) block has every method")
        else:
            ranks = average_ranks(values, higher)
        stat, p, note = friedman(values) if n else (np.nan, np.nan, "")
        if note:
            notes.append(note)
        cd = nemenyi_cd(k, n, alpha)
        wil = np.full(k, np.nan)
        if baseline in methods and n:
            b = values[:, methods.index(baseline)]
            for j, method in enumerate(methods):
                if method != baseline:
                    wil[j] = wilcoxon_p(values[:, j], b)
        elif baseline not in methods:
            notes.append(f"no {baseline} runs: no Wilcoxon tests")
        wil_holm = holm(wil)
        for j, method in enumerate(methods):
            rows.append(
                dict(zip(group_keys, key))
                | {
                    "method": method,
                    "avg_rank": float(ranks[j]),
                    "friedman_statistic": stat,
                    "friedman_p": p,
                    "cd": cd,
                    "n_blocks": n,
                    "n_methods": k,
                    "wilcoxon_p": float(wil[j]),
                    "wilcoxon_p_holm": float(wil_holm[j]),
                    "note": "; ".join(notes),
                }
            )
    df = pd.DataFrame(rows, columns=RANKING_COLUMNS)
    df = df.astype(
        {
            "dataset": "str",
            "n_anomaly": "int64",
            "n_per_class": "str",
            "scorer": "str",
            "method": "str",
            "avg_rank": "float64",
            "friedman_statistic": "float64",
            "friedman_p": "float64",
            "cd": "float64",
            "n_blocks": "int64",
            "n_methods": "int64",
            "wilcoxon_p": "float64",
            "wilcoxon_p_holm": "float64",
            "note": "str",
        }
    )
    return df.sort_values(group_keys + ["method"], kind="mergesort").reset_index(drop=True)


def case_means(values, cases) -> np.ndarray:
    """The mean of ``values`` within each case (the clusters of the bootstrap: seeds of one case
    share its classes and test images), in ascending case order."""
    frame = pd.DataFrame({"case": np.asarray(cases), "value": np.asarray(values, dtype=np.float64)})
    return frame.groupby("case", sort=True)["value"].mean().to_numpy()


def cluster_bootstrap_ci(
    values, cases, level: float = 0.95, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean that resamples cases, not values: the values of a case
    (its seeds) are averaged first, then :func:`bootstrap_ci` resamples the case means. Repeating
    a case's seeds adds no information about new cases and leaves the interval as it was."""
    return bootstrap_ci(case_means(values, cases), level, resamples, seed)


SUMMARY_COLUMNS = [
    "dataset",
    "n_anomaly",
    "method",
    "n_per_class",
    "scorer",
    "metric",
    "mean",
    "std",
    "n",
    "n_cases",
    "ci_low",
    "ci_high",
]


def summary_table(
    metrics: pd.DataFrame, level: float = 0.95, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> pd.DataFrame:
    """Per (dataset, n_anomaly, method, n_per_class, scorer, metric): the mean over cases of the
    case means (seeds averaged within a case; the plain mean over cases x seeds when every case
    has the same seeds), the standard deviation of the n values (ddof 1; NaN for one value), n
    (cases x seeds), n_cases, and the percentile-bootstrap CI of the mean over cases
    (:func:`cluster_bootstrap_ci`). Case means enter the bootstrap in case order, so the
    interval is reproducible."""
    keys = ["dataset", "n_anomaly", "method", "n_per_class", "scorer", "metric"]
    rows = []
    m = metrics.sort_values(keys + ["case", "seed"], kind="mergesort")
    for key, grp in m.groupby(keys, sort=True):
        v = grp["value"].to_numpy(dtype=np.float64)
        per_case = case_means(v, grp["case"].to_numpy())
        lo, hi = bootstrap_ci(per_case, level, resamples, seed)
        rows.append(
            dict(zip(keys, key))
            | {
                "mean": float(per_case.mean()),
                "std": float(v.std(ddof=1)) if len(v) > 1 else float("nan"),
                "n": len(v),
                "n_cases": len(per_case),
                "ci_low": lo,
                "ci_high": hi,
            }
        )
    df = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    df = df.astype(
        {
            "dataset": "str",
            "n_anomaly": "int64",
            "method": "str",
            "n_per_class": "str",
            "scorer": "str",
            "metric": "str",
            "mean": "float64",
            "std": "float64",
            "n": "int64",
            "n_cases": "int64",
            "ci_low": "float64",
            "ci_high": "float64",
        }
    )
    return df.sort_values(keys, kind="mergesort").reset_index(drop=True)
