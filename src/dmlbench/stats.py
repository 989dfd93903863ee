"""Statistics over runs: intervals of a mean that keep their coverage over a handful of cases,
exact sign-flip (randomisation) tests of paired case-level differences, Holm's correction, the
Friedman test with average ranks and the Nemenyi critical difference, Wilcoxon signed-rank tests
against a baseline, and the rule that decides when overlapping cases leave a test exploratory.

The unit of every interval and test is the **case**: seeds of one case share its anomaly
classes and test images, so they are repeated measures; a case's seeds are averaged first. Cases
are not always independent either: with n_anomaly > 1, case k and case k + 1 share n_anomaly − 1
anomaly classes (:func:`independent_cases`). Column meanings are in docs/tables.md and the
definitions in docs/metrics.md.
"""

from __future__ import annotations

import functools
import itertools
import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sst

from .errors import DmlbenchError
from .metrics import HIGHER_IS_BETTER

ALPHA = 0.05
LEVEL = 0.95
BASELINE = "conventional"
#: Up to this many cases every sign pattern is enumerated (2^16 = 65,536); above, Monte Carlo.
SIGNFLIP_EXACT_MAX = 16
#: Monte Carlo draws (sign patterns, permutations, bootstrap resamples) and their seed: a table's
#: numbers depend only on its values.
RESAMPLES = 10_000
SEED = 0
#: Studentised bootstrap from this many cases on (below, its resamples are too few and its
#: width erratic: the interval is the t-interval); every distinct resample enumerated up to
#: BOOTSTRAP_EXACT_MAX cases (C(15, 8) = 6,435 resamples), Monte Carlo above.
BOOTSTRAP_MIN_CASES = 5
BOOTSTRAP_EXACT_MAX = 8
#: The studentised bootstrap's se* is never taken below this share of the sample's se.
SE_FLOOR = 0.15


# --------------------------------------------------------------------------- intervals of a mean


def _as_rows(values) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim == 0 or x.shape[-1] == 0:
        raise ValueError("an interval or test of a mean needs at least one value (a 1-D array, or rows of values)")
    return x


def t_interval(values, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """Student-t interval of the mean over the last axis: m -/+ t_{(1 + level) / 2, n − 1} s / sqrt(n)
    (s with ddof 1). NaN for one value; the value itself when all values are equal."""
    x = _as_rows(values)
    n = x.shape[-1]
    m = x.mean(axis=-1)
    if n < 2:
        return np.full(m.shape, np.nan), np.full(m.shape, np.nan)
    se = x.std(axis=-1, ddof=1) / math.sqrt(n)
    half = float(sst.t.ppf((1 + level) / 2, n - 1)) * se
    return m - half, m + half


@functools.lru_cache(maxsize=32)
def _resamples(n: int, resamples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap resamples of n values as ``(counts [M, n], weights [M])``: how often each value is
    drawn, and the resample's probability. Up to BOOTSTRAP_EXACT_MAX values every distinct
    resample (the C(2n − 1, n) compositions of n, multinomial weights), so the bootstrap
    distribution is exact and needs no seed; above, ``resamples`` draws of ``default_rng(seed)``."""
    if n <= BOOTSTRAP_EXACT_MAX:
        counts = np.array([c for c in itertools.product(range(n + 1), repeat=n) if sum(c) == n], dtype=np.float64)
        log_w = math.lgamma(n + 1) - np.sum([[math.lgamma(k + 1) for k in row] for row in counts], axis=1)
        weights = np.exp(log_w - n * math.log(n))
    else:
        counts = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float64)
        weights = np.full(resamples, 1.0 / resamples)
    counts.setflags(write=False)
    weights.setflags(write=False)
    return counts, weights


def _weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> np.ndarray:
    """Per row of ``values [R, M]``, the smallest value whose cumulative weight reaches ``q``."""
    order = np.argsort(values, axis=-1, kind="mergesort")
    v = np.take_along_axis(values, order, axis=-1)
    cw = np.cumsum(weights[order], axis=-1)
    cw /= cw[..., -1:]
    i = np.minimum((cw < q - 1e-12).sum(axis=-1), values.shape[-1] - 1)
    return np.take_along_axis(v, i[..., None], axis=-1)[..., 0]


def studentised_bootstrap_interval(
    values, level: float = LEVEL, resamples: int = RESAMPLES, seed: int = SEED
) -> tuple[np.ndarray, np.ndarray]:
    """Equal-tailed studentised (percentile-t) bootstrap interval of the mean over the last axis.

    With mean m and standard error se = s / sqrt(n): every resample gives t* = (m* − m) / se*,
    and the interval is [m − t*_{(1 + level) / 2} se, m − t*_{(1 − level) / 2} se], the quantiles
    of the bootstrap distribution of t* (:func:`_resamples`: exact up to BOOTSTRAP_EXACT_MAX
    values), with se* floored at SE_FLOOR x se. Unlike the percentile bootstrap it widens the
    side a skewed sample leans to.
    """
    x = _as_rows(values)
    n = x.shape[-1]
    counts, weights = _resamples(n, resamples, seed)
    m = x.mean(axis=-1)
    se = x.std(axis=-1, ddof=1) / math.sqrt(n)
    mb = x @ counts.T / n
    seb = np.sqrt(np.maximum((x**2 @ counts.T / n - mb**2) * n / (n - 1), 0.0) / n)
    # A resample of a few near-equal cases has a tiny se*, and its t* explodes (an AUROC interval
    # reaching 4.9 on the demo); a floor at SE_FLOOR x se bounds the interval at about 2.5 times the
    # t-interval's width and keeps the coverage (bench.inference_calibration).
    seb = np.maximum(seb, SE_FLOOR * se[..., None])
    diff = mb - m[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        tb = np.where(seb > 0, diff / np.where(seb > 0, seb, 1.0), np.sign(diff) * np.inf)
    tb = np.where(np.isnan(tb), 0.0, tb)
    upper = _weighted_quantile(tb, weights, (1 + level) / 2)
    lower = _weighted_quantile(tb, weights, (1 - level) / 2)
    with np.errstate(invalid="ignore"):  # equal values (se 0, t* inf): mean_interval gives the value itself
        return m - upper * se, m - lower * se


def mean_interval(values, level: float = LEVEL) -> tuple[float, float] | tuple[np.ndarray, np.ndarray]:
    """The ``level`` confidence interval of the mean of ``values`` (one per case; rows of them
    give one interval per row) that the tables report.

    From BOOTSTRAP_MIN_CASES (5) values on: the studentised bootstrap interval, widened where
    needed to contain the t-interval. The bootstrap follows a skewed sample; the t-interval keeps
    the coverage where the bootstrap's few distinct resamples make it too narrow. In simulation
    at 5 cases this keeps 95 % intervals at >= 93 % coverage on normal, exponential and
    beta-shaped (AUROC near 1) values, where the percentile bootstrap covers 78-84 %
    (tests/unit/test_calibration.py, bench.inference_calibration); it is at most about 2.5 times
    as wide as the t-interval. With 2-4 values: the
    t-interval (normal theory: with so few values no resampling can judge the shape); one value:
    NaN (no interval); equal values: that value.
    """
    x = _as_rows(values)
    n = x.shape[-1]
    lo, hi = t_interval(x, level)
    if n >= BOOTSTRAP_MIN_CASES:
        blo, bhi = studentised_bootstrap_interval(x, level)
        lo, hi = np.minimum(lo, blo), np.maximum(hi, bhi)
    if n >= 2:  # exactly equal values: no spread (summation rounding would fake one)
        same = np.ptp(x, axis=-1) == 0
        lo, hi = np.where(same, x[..., 0], lo), np.where(same, x[..., 0], hi)
    if x.ndim == 1:
        return float(lo), float(hi)
    return lo, hi


def median_interval(values, level: float = LEVEL) -> tuple[float, float]:
    """A distribution-free ``level`` interval of the median of ``values`` (one per case): the order
    statistics (x_(j), x_(n+1-j)) with the largest j whose coverage P(j <= B <= n - j), B ~
    Binomial(n, 1/2), is at least ``level`` (10 cases: x_(2) to x_(9), 97.9 %). Below 6 values no
    pair reaches 95 % and the interval is the range, min to max (coverage 1 - 2^(1-n)); one value:
    NaN."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    n = len(x)
    if n < 2:
        return float("nan"), float("nan")
    j = 1
    for cand in range(2, n // 2 + 1):
        if sst.binom.cdf(n - cand, n, 0.5) - sst.binom.cdf(cand - 1, n, 0.5) < level:
            break
        j = cand
    return float(x[j - 1]), float(x[n - j])


def spearman(x, y) -> float:
    """Spearman's rank correlation of two equally long sequences (average ranks for ties); NaN
    below 3 pairs or when either side is constant."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(sst.spearmanr(x, y).statistic)


# --------------------------------------------------------------------------- sign-flip tests


@functools.lru_cache(maxsize=8)
def _sign_patterns(n: int, resamples: int, seed: int) -> np.ndarray:
    """``[P, n]`` signs ±1: all 2^n patterns up to SIGNFLIP_EXACT_MAX, else ``resamples`` random
    ones (``default_rng(seed)``)."""
    if n <= SIGNFLIP_EXACT_MAX:
        signs = 1.0 - 2.0 * ((np.arange(2**n)[:, None] >> np.arange(n)) & 1)
    else:
        signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=(resamples, n))
    signs.setflags(write=False)
    return signs


ALTERNATIVES = ("two-sided", "greater", "less")


def signflip_p(
    values, null: float = 0.0, alternative: str = "two-sided", resamples: int = RESAMPLES, seed: int = SEED
) -> float | np.ndarray:
    """Sign-flip (randomisation) p-value of ``mean(values) == null`` over the last axis.

    Under H0 each case's difference d_i = value_i − null is as likely to be +d_i as −d_i
    (symmetry; paired differences of exchangeable sides). The statistic is the sum of the d_i;
    its null distribution is that of sum(s_i d_i) over every sign pattern s (all 2^n up to
    SIGNFLIP_EXACT_MAX cases: exact), else ``resamples`` random patterns with the observed one
    counted, p = (1 + #{T* >= T}) / (1 + resamples). Two-sided: |T*| >= |T|. "greater": the
    alternative mean > null. Zero differences count as either sign. The smallest p n cases
    allow is :func:`min_signflip_p`: 2 / 2^n two-sided, 0.0625 for 5 cases.
    """
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {ALTERNATIVES}, got {alternative!r}")
    d = _as_rows(values) - null
    n = d.shape[-1]
    signs = _sign_patterns(n, resamples, seed)
    t = d.sum(axis=-1)
    tb = d @ signs.T
    scale = np.abs(d).sum(axis=-1, keepdims=True)
    tol = 1e-9 * np.maximum(scale, 1e-300)  # equal sums up to rounding count as equal
    if alternative == "two-sided":
        hits = (np.abs(tb) >= np.abs(t)[..., None] - tol).sum(axis=-1)
    elif alternative == "greater":
        hits = (tb >= t[..., None] - tol).sum(axis=-1)
    else:
        hits = (tb <= t[..., None] + tol).sum(axis=-1)
    p = hits / len(signs) if n <= SIGNFLIP_EXACT_MAX else (1 + hits) / (1 + len(signs))
    p = np.minimum(p, 1.0)
    return float(p) if d.ndim == 1 else p


def min_signflip_p(n: int, alternative: str = "two-sided") -> float:
    """The smallest p-value a sign-flip test over n cases can give: 2 / 2^n two-sided, 1 / 2^n
    one-sided (every difference of one sign); 1 without cases."""
    if n < 1:
        return 1.0
    return min(1.0, (2.0 if alternative == "two-sided" else 1.0) / 2.0**n)


def cases_to_reach(alpha: float = ALPHA, alternative: str = "two-sided") -> int:
    """The fewest cases whose sign-flip test can give p <= ``alpha``: 6 for a two-sided 0.05
    (2 / 64 = 0.031; 5 cases: 0.0625), 8 for 0.05 / 6 (Holm's first step over 6 tests:
    2 / 256 = 0.0078)."""
    n = 1
    while min_signflip_p(n, alternative) > alpha:
        n += 1
    return n


# --------------------------------------------------------------------------- overlapping cases


def anomaly_positions(case: int, n_anomaly: int, n_classes: int | None = None) -> frozenset[int]:
    """Positions in the class order of case ``case``'s anomaly classes: (case + j) mod C, j <
    n_anomaly (without C: case + j, which finds every overlap of cases less than C apart)."""
    return frozenset((case + j) % n_classes if n_classes else case + j for j in range(int(n_anomaly)))


def independent_cases(cases, n_anomaly: int, n_classes: int | None = None) -> list[int]:
    """The largest set of ``cases`` whose anomaly classes are pairwise disjoint, in case order.

    Under a class-effect model - a comparison's difference in a case is the mean of effects of
    its anomaly classes - cases that share classes are correlated, and a test that takes them as
    independent rejects far too often (a t-test over 5 rotations of 10 classes: 30 % at a5 and
    35 % at a8 where 5 % is asked; dmlbench.calibration). Disjoint cases are independent. The anomaly classes are arcs of n_anomaly
    positions on a circle of C; picking greedily the next case clear of the last, from each
    start in turn, finds a largest set (ties: the one starting at the smallest case).
    """
    cases = sorted({int(c) for c in cases})
    sets = {c: anomaly_positions(c, n_anomaly, n_classes) for c in cases}
    best: list[int] = []
    for i in range(len(cases)):
        chosen, used = [], set()
        for c in cases[i:] + cases[:i]:
            if not sets[c] & used:
                chosen.append(c)
                used |= sets[c]
        if len(chosen) > len(best):
            best = chosen
    return sorted(best)


def cases_overlap(cases, n_anomaly: int, n_classes: int | None = None) -> bool:
    """Do any two of ``cases`` share an anomaly class?"""
    cases = sorted({int(c) for c in cases})
    return len(independent_cases(cases, n_anomaly, n_classes)) < len(cases)


@dataclass(frozen=True)
class Design:
    """Which cases a test uses: ``tested`` (all of them when they are disjoint; else the largest
    disjoint set when it has enough cases to reach ``alpha``; else all, and the test is
    ``exploratory``), ``n_cases`` with a value, ``n_independent`` disjoint ones among them."""

    tested: tuple[int, ...]
    n_cases: int
    n_independent: int
    exploratory: bool

    @property
    def note(self) -> str:
        if self.exploratory:
            return (
                f"exploratory: the {self.n_cases} cases share anomaly classes and only {self.n_independent} "
                f"are disjoint, too few for a sign-flip p below {ALPHA:g}"
            )
        if len(self.tested) < self.n_cases:
            return f"on the {len(self.tested)} of {self.n_cases} cases whose anomaly classes are disjoint"
        return ""


def case_design(
    cases, n_anomaly: int, n_classes: int | None = None, alpha: float = ALPHA, alternative: str = "two-sided"
) -> Design:
    """The rule for overlapping cases (:func:`independent_cases`): a test holds its level on cases
    with disjoint anomaly classes. When the cases overlap, the test uses the largest disjoint set
    if a sign-flip test on it can reach ``alpha`` (:func:`cases_to_reach`); otherwise no test
    holds its level, and the test on all cases is **exploratory** (reported, never a verdict)."""
    cases = sorted({int(c) for c in cases})
    disjoint = independent_cases(cases, n_anomaly, n_classes)
    if len(disjoint) == len(cases):
        return Design(tuple(cases), len(cases), len(cases), False)
    if min_signflip_p(len(disjoint), alternative) <= alpha:
        return Design(tuple(disjoint), len(cases), len(disjoint), False)
    return Design(tuple(cases), len(cases), len(disjoint), True)


# --------------------------------------------------------------------------- multiple tests


def holm(pvalues) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (step-down; NaN entries stay NaN and do not count); rows
    of p-values (a 2-D array) are adjusted row by row.

    With the m valid p-values sorted ascending p_(1) <= ... <= p_(m):
    adj_(i) = min(1, max_{j <= i} (m - j + 1) p_(j)). Reject H_(i) at level alpha iff
    adj_(i) <= alpha, which is Holm's procedure.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim == 2 and p.shape[1] and not np.isnan(p).any():  # rows of complete p-values at once
        m = p.shape[1]
        order = np.argsort(p, axis=1, kind="mergesort")
        adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * np.take_along_axis(p, order, 1), 1))
        out = np.empty_like(p)
        np.put_along_axis(out, order, adjusted, axis=1)
        return out
    if p.ndim == 2:
        return np.array([holm(row) for row in p]).reshape(p.shape)
    out = np.full(p.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = len(valid)
    if m == 0:
        return out
    order = valid[np.argsort(p[valid], kind="mergesort")]
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out[order] = adjusted
    return out


# --------------------------------------------------------------------------- a paired case-level test


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


def mean_test(values, null: float = 0.0, level: float = LEVEL) -> MeanTest:
    """Two-sided one-sample t-test of ``mean(values) == null`` with the ``level`` t-interval of the mean.

    ``values`` is 1-D, one value per independent block, at least 2 of them. With n values, mean m
    and standard deviation s (ddof 1): t = (m - null) / (s / sqrt(n)) on n - 1 degrees of
    freedom, p = 2 P(T > |t|), interval m -/+ t_{(1 + level) / 2, n - 1} s / sqrt(n). When every
    value is equal (s = 0) the interval is that value and p is 1 if it equals ``null``, else 0.
    The findings report it beside the sign-flip p (:func:`case_test`), which decides.
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


def _t_p(values, null: float, alternative: str):
    """The t-test's p of ``mean == null`` over the last axis (NaN below 2 values; equal values:
    0 when they lie on the alternative's side of ``null``, else 1)."""
    x = _as_rows(values)
    n = x.shape[-1]
    if n < 2:
        p = np.full(x.shape[:-1], np.nan)
        return float(p) if x.ndim == 1 else p
    diff = x.mean(axis=-1) - null
    se = x.std(axis=-1, ddof=1) / math.sqrt(n)
    flat = np.ptp(x, axis=-1) == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(flat, 0.0, diff / np.where(flat, 1.0, se))
    if alternative == "two-sided":
        p, side = 2 * sst.t.sf(np.abs(t), n - 1), diff != 0
    elif alternative == "greater":
        p, side = sst.t.sf(t, n - 1), diff > 0
    else:
        p, side = sst.t.cdf(t, n - 1), diff < 0
    p = np.where(flat, np.where(side, 0.0, 1.0), np.minimum(p, 1.0))
    return float(p) if x.ndim == 1 else p


@dataclass(frozen=True)
class CaseTest:
    """A test over cases (:func:`case_test`): the ``effect`` (mean of the tested cases' values −
    null) and its ``ci_low``/``ci_high`` (:func:`mean_interval`, minus null), the sign-flip ``p``
    (the one that decides), the t-test's ``p_t`` beside it, the smallest p these cases allow
    (``min_p``), the ``design`` (which cases, exploratory or not) and, for a claimed size
    (``band``), whether the effect lies ``inside`` it."""

    effect: float
    ci_low: float
    ci_high: float
    statistic: float
    p: float
    p_t: float
    min_p: float
    design: Design
    inside: bool | None = None

    @property
    def n(self) -> int:
        return len(self.design.tested)


def case_test(
    values: pd.Series,
    n_anomaly: int,
    n_classes: int | None = None,
    null: float = 0.0,
    band: tuple[float, float] | None = None,
    level: float = LEVEL,
    alpha: float = ALPHA,
) -> CaseTest:
    """Test per-case values (a Series indexed by case; a case's seeds already averaged) under the
    overlap rule of :func:`case_design`: two-sided ``mean == null``, or with ``band = (low,
    high)`` a claimed size (:func:`band_p`; the effect is then the mean itself).

    ``p`` is the sign-flip p-value (:func:`signflip_p`: exact up to 16 cases, seeded Monte Carlo
    above), ``p_t`` the t-test's on the same cases, ``statistic`` the t statistic of ``mean ==
    null``. Needs 1 case or more (an interval needs 2).
    """
    values = values.dropna()
    if len(values) == 0:
        raise ValueError("case_test needs at least one case with a value")
    design = case_design(values.index, n_anomaly, n_classes, alpha, "two-sided")
    x = values.groupby(level=0).mean().loc[list(design.tested)].to_numpy(dtype=np.float64)
    lo, hi = mean_interval(x, level)
    statistic = float("nan")
    if len(x) >= 2 and np.ptp(x) > 0:
        statistic = float((x.mean() - null) / (x.std(ddof=1) / math.sqrt(len(x))))
    inside = None
    if band is None:
        p, p_t, min_p = signflip_p(x, null), _t_p(x, null, "two-sided"), min_signflip_p(len(x))
    else:
        (p, inside), (p_t, _) = band_p(x, *band), band_p(x, *band, test="t")
        min_p = min_signflip_p(len(x), "greater" if inside else "two-sided")
    return CaseTest(
        effect=float(x.mean() - null),
        ci_low=lo - null,
        ci_high=hi - null,
        statistic=statistic,
        p=p,
        p_t=p_t,
        min_p=min_p,
        design=design,
        inside=inside,
    )


def band_p(values, low: float, high: float, test: str = "signflip") -> tuple:
    """p-value and side of a claimed size ``low <= mean <= high`` (a value "about" the study's,
    with its margin), over the last axis: ``(p, inside)``.

    When the mean of the values lies in the band, ``p`` tests equivalence (two one-sided tests:
    H0 mean <= low and H0 mean >= high, p the larger of the two): a small p **supports** the
    size. When it lies outside, ``p`` tests that the mean is outside (H0 low <= mean <= high:
    twice the smaller one-sided p of mean < low and mean > high): a small p **contradicts** it.
    ``test``: "signflip" (:func:`signflip_p`, one-sided) or "t" (the t-test's, beside it).
    """
    x = _as_rows(values)
    if test == "signflip":

        def one(null, alternative):
            return np.asarray(signflip_p(x, null, alternative))
    else:

        def one(null, alternative):
            return np.asarray(_t_p(x, null, alternative))

    est = x.mean(axis=-1)
    inside = (low <= est) & (est <= high)
    p_in = np.maximum(one(low, "greater"), one(high, "less"))
    p_out = np.minimum(1.0, 2 * np.minimum(one(low, "less"), one(high, "greater")))
    p = np.where(inside, p_in, p_out)
    if x.ndim == 1:
        return float(p), bool(inside)
    return p, inside


# --------------------------------------------------------------------------- ranks and tests


def average_ranks(values: np.ndarray, higher_is_better: bool = True) -> np.ndarray:
    """Mean over blocks (rows) of the rank of each method (column) within its block; rank 1 =
    the best value (the highest, e.g. AUROC, or with ``higher_is_better=False`` the lowest, e.g.
    FPR@95), ties get the average of the ranks they span."""
    values = np.asarray(values, dtype=np.float64)
    return sst.rankdata(-values if higher_is_better else values, axis=1).mean(axis=0)


def nemenyi_cd(k: int, n_blocks: int, alpha: float = ALPHA) -> float:
    """Nemenyi critical difference of average ranks: ``q_alpha * sqrt(k (k + 1) / (6 N))`` with
    ``q_alpha = studentized_range.ppf(1 - alpha, k, inf) / sqrt(2)`` (Demsar 2006, table 5a:
    2.850 for k = 6, alpha = 0.05). After a significant Friedman test, two methods whose average
    ranks differ by more than CD differ significantly; a smaller difference is not shown to be
    a difference, which does not make the two methods equal."""
    if k < 2 or n_blocks < 1:
        return float("nan")
    q = sst.studentized_range.ppf(1 - alpha, k, np.inf) / np.sqrt(2)
    return float(q * np.sqrt(k * (k + 1) / (6.0 * n_blocks)))


#: Up to this many rank arrangements the Friedman test enumerates them all, else Monte Carlo.
FRIEDMAN_EXACT_MAX = 50_000


def friedman(values: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED) -> tuple[float, float, str]:
    """Friedman test of ``values [n_blocks, k]``: ``(statistic, p, note)``.

    ``statistic`` is Friedman's chi-square with tie correction (scipy.stats.friedmanchisquare).
    ``p`` is a permutation p-value, not the chi-square approximation (which is poor at the 5
    blocks of a demo): under H0 every arrangement of a block's ranks is equally likely, and
    S = sum_j (R_j − n (k + 1) / 2)^2 of the rank sums R_j is compared with its value over every
    arrangement of the blocks after the first ((k!)^(n−1) up to FRIEDMAN_EXACT_MAX), else over
    ``resamples`` random ones (``default_rng(seed)``), p = (1 + #{S* >= S}) / (1 + resamples).
    Ties within a block keep their mid-ranks. NaN with a note when it cannot be computed (fewer
    than 3 methods, fewer than 2 blocks, every block tied)."""
    values = np.asarray(values, dtype=np.float64)
    n, k = values.shape
    if k < 3:
        return float("nan"), float("nan"), f"Friedman test needs at least 3 methods, got {k}"
    if n < 2:
        return float("nan"), float("nan"), f"Friedman test needs at least 2 complete cases, got {n}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = sst.friedmanchisquare(*values.T)
    stat = float(res.statistic)
    if not np.isfinite(stat):
        return float("nan"), float("nan"), "every case ties all methods: Friedman statistic undefined"
    ranks = sst.rankdata(values, axis=1)
    centre = n * (k + 1) / 2.0

    def spread(sums):
        return ((sums - centre) ** 2).sum(axis=-1)

    observed = spread(ranks.sum(axis=0))
    tol = 1e-9 * max(observed, 1.0)
    if math.factorial(k) ** (n - 1) <= FRIEDMAN_EXACT_MAX:
        perms = np.array(list(itertools.permutations(range(k))))
        sums = np.zeros((1, k)) + ranks[0]
        for row in ranks[1:]:  # every arrangement of the later blocks (the first fixed: symmetry)
            sums = (sums[:, None, :] + row[perms][None, :, :]).reshape(-1, k)
        p = float((spread(sums) >= observed - tol).mean())
    else:
        rng = np.random.default_rng(seed)
        shuffled = rng.permuted(np.broadcast_to(ranks, (resamples, n, k)), axis=2)
        hits = int((spread(shuffled.sum(axis=1)) >= observed - tol).sum())
        p = (1 + hits) / (1 + resamples)
    return stat, p, ""


def wilcoxon_p(x: np.ndarray, y: np.ndarray) -> float:
    """Two-sided p-value of the paired Wilcoxon signed-rank test of x against y, exact: zero
    differences dropped, the |differences| ranked (ties: mid-ranks), and the sum of signed ranks
    compared with its value under every sign pattern (:func:`signflip_p` of the signed ranks;
    with 5 pairs the smallest p is 0.0625). All differences zero -> 1.0."""
    d = np.asarray(x, dtype=np.float64) - np.asarray(y, dtype=np.float64)
    if len(d) == 0:
        return float("nan")
    d = d[d != 0]
    if len(d) == 0:
        return 1.0
    return signflip_p(np.sign(d) * sst.rankdata(np.abs(d)))


RANKING_COLUMNS = [
    "dataset",
    "n_anomaly",
    "n_per_class",
    "scorer",
    "method",
    "avg_rank",
    "friedman_statistic",
    "friedman_p",
    "friedman_p_holm",
    "cd",
    "n_blocks",
    "n_methods",
    "wilcoxon_p",
    "wilcoxon_p_holm",
    "cases_overlap",
    "note",
]


def case_means(values, cases) -> np.ndarray:
    """The mean of ``values`` within each case (seeds of one case share its classes and test
    images), in ascending case order."""
    frame = pd.DataFrame({"case": np.asarray(cases), "value": np.asarray(values, dtype=np.float64)})
    return frame.groupby("case", sort=True)["value"].mean().to_numpy()


def ranking_table(
    metrics: pd.DataFrame, metric: str = "auroc", baseline: str = BASELINE, alpha: float = ALPHA
) -> pd.DataFrame:
    """One row per (dataset, n_anomaly, n_per_class, scorer, method) from a tidy metrics table.

    Within each (dataset, n_anomaly, n_per_class, scorer) the **blocks are cases**: each
    method's value in a case is the mean over its seeds, and only cases with a value for EVERY
    method of the group count (the tests are paired). Rank 1 is the best method in a case: the
    highest value, or the lowest for a lower-is-better metric (fpr95;
    dmlbench.metrics.HIGHER_IS_BETTER). Friedman's p is a permutation p (:func:`friedman`),
    Wilcoxon's exact (:func:`wilcoxon_p`). Holm's correction is taken within each table a
    reader sees, the conditions of one (n_per_class, scorer): ``friedman_p_holm`` over its
    Friedman tests, ``wilcoxon_p_holm`` over all its Wilcoxon tests. ``cases_overlap``: two of
    the cases share an anomaly class (n_anomaly > 1 and case numbers less than n_anomaly apart),
    so no test of the group holds its level (:func:`independent_cases`): read it as
    exploratory. Columns: see ``RANKING_COLUMNS`` and docs/tables.md.
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
        wide = grp.pivot_table(index="case", columns="method", values="value", aggfunc="mean")
        methods = sorted(wide.columns)
        wide = wide[methods].dropna(axis=0, how="any").sort_index()
        values = wide.to_numpy(dtype=np.float64)
        n, k = values.shape
        notes = []
        if n == 0:
            ranks = np.full(k, np.nan)
            notes.append("no case has every method")
        else:
            ranks = average_ranks(values, higher)
        stat, p, note = friedman(values) if n else (np.nan, np.nan, "")
        if note:
            notes.append(note)
        overlap = cases_overlap(wide.index, int(key[1]))
        if overlap:
            notes.append("cases share anomaly classes: the tests are exploratory")
        cd = nemenyi_cd(k, n, alpha)
        wil = np.full(k, np.nan)
        if baseline in methods and n:
            b = values[:, methods.index(baseline)]
            for j, method in enumerate(methods):
                if method != baseline:
                    wil[j] = wilcoxon_p(values[:, j], b)
        elif baseline not in methods:
            notes.append(f"no {baseline} runs: no Wilcoxon tests")
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
                    "cases_overlap": overlap,
                    "note": "; ".join(notes),
                }
            )
    df = pd.DataFrame(rows, columns=[c for c in RANKING_COLUMNS if not c.endswith("_holm")])
    # Holm within a table: the conditions of one (n_per_class, scorer); Friedman once per condition
    df["friedman_p_holm"] = np.nan
    df["wilcoxon_p_holm"] = np.nan
    for _, part in df.groupby(["n_per_class", "scorer"], sort=False):
        first = part.drop_duplicates(["dataset", "n_anomaly"])
        adjusted = dict(zip(zip(first["dataset"], first["n_anomaly"]), holm(first["friedman_p"])))
        df.loc[part.index, "friedman_p_holm"] = [adjusted[k] for k in zip(part["dataset"], part["n_anomaly"])]
        df.loc[part.index, "wilcoxon_p_holm"] = holm(part["wilcoxon_p"])
    df = df[RANKING_COLUMNS].astype(
        {
            "dataset": "str",
            "n_anomaly": "int64",
            "n_per_class": "str",
            "scorer": "str",
            "method": "str",
            "avg_rank": "float64",
            "friedman_statistic": "float64",
            "friedman_p": "float64",
            "friedman_p_holm": "float64",
            "cd": "float64",
            "n_blocks": "int64",
            "n_methods": "int64",
            "wilcoxon_p": "float64",
            "wilcoxon_p_holm": "float64",
            "cases_overlap": "bool",
            "note": "str",
        }
    )
    return df.sort_values(group_keys + ["method"], kind="mergesort").reset_index(drop=True)


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


def summary_table(metrics: pd.DataFrame, level: float = LEVEL) -> pd.DataFrame:
    """Per (dataset, n_anomaly, method, n_per_class, scorer, metric): the mean over cases of the
    case means (seeds averaged within a case; the plain mean over cases x seeds when every case
    has the same seeds), the standard deviation of the n values (ddof 1; NaN for one value), n
    (cases x seeds), n_cases, and the ``level`` interval of the mean over cases
    (:func:`mean_interval` of the case means: studentised bootstrap and t-interval; NaN for one
    case). Deterministic: exact up to 8 cases, seeded above."""
    keys = ["dataset", "n_anomaly", "method", "n_per_class", "scorer", "metric"]
    rows = []
    m = metrics.sort_values(keys + ["case", "seed"], kind="mergesort")
    for key, grp in m.groupby(keys, sort=True):
        v = grp["value"].to_numpy(dtype=np.float64)
        per_case = case_means(v, grp["case"].to_numpy())
        lo, hi = mean_interval(per_case, level)
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
