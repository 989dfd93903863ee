"""The report's inference measured by simulation: the coverage of its intervals at a handful of
cases, and the type-I error of each claim's test under a class-effect null (torch-free; numpy
and scipy only).

**Coverage.** Cases are drawn from a normal, an exponential (skewness 2) and a Beta(9, 1)
distribution (skewness −1.5: AUROCs near their ceiling), and the 95 % interval of the mean
that the summary reports (:func:`dmlbench.stats.mean_interval`) is checked against the true
mean; the t-interval and the percentile bootstrap the tables used before are measured beside it.

**Class-effect null.** A comparison's value in case k is the mean of effects of the case's
anomaly classes, plus noise of the case's own (seeds, training): y_k = mean_{c in A_k} e_c +
eps_k, with e_c ~ N(0, 1) per class and eps_k ~ N(0, NOISE^2), A_k = {(k + j) mod C : j <
n_anomaly} over C = 10 classes (the rotations of dmlbench's cases). The classes' mean effect is
0: a test that calls the comparison significant is wrong. Several methods share part of their
class effects (``SHARED``), as methods trained on the same classes do. Each claim's test is
simulated as the findings make it (:mod:`dmlbench.report.findings`): its comparisons per
condition, the overlap rule (:func:`dmlbench.stats.case_design`), the sign-flip p-values, Holm
across the condition's tests, and its outcome rule; the error rate is the share of simulated
runs in which any confirmatory test of the condition comes out significant. The naive rate
beside it is what a t-test over all cases, Holm-corrected, would give without the overlap rule.
"""

from __future__ import annotations

import numpy as np

from dmlbench import stats

N_CLASSES = 10
NOISE = 0.25  # case noise relative to the class effects: the class effects dominate, as in a class-effect null
SHARED = 0.5  # share of a method's class-effect variance common to every method
METHODS = 6  # the study's six heads
CONDITIONS = (1, 5, 8)
CLAIM4_PAIRS = ((1, 5), (5, 8))
CASES = (5, 10)
DISTRIBUTIONS = ("normal", "exponential", "beta(9, 1)")
# claim 5's band (AUROC points) and where its null sits: on the band's lower edge
BAND = (0.2, 1.2)
CHUNK = 1000  # simulated runs tested at once (memory: chunk x tests x 2^cases sums)


# --------------------------------------------------------------------------- coverage


def _draw(rng: np.random.Generator, distribution: str, size) -> tuple[np.ndarray, float]:
    if distribution == "normal":
        return rng.normal(size=size), 0.0
    if distribution == "exponential":
        return rng.exponential(size=size), 1.0
    if distribution == "beta(9, 1)":
        return rng.beta(9, 1, size=size), 0.9
    raise ValueError(f"unknown distribution {distribution!r}; known: {', '.join(DISTRIBUTIONS)}")


def _percentile_bootstrap(x: np.ndarray, level: float, resamples: int = 2000, seed: int = 0):
    """The interval the summary used before: percentile bootstrap of the mean (for comparison)."""
    idx = np.random.default_rng(seed).integers(0, x.shape[-1], size=(resamples, x.shape[-1]))
    lo, hi = np.empty(len(x)), np.empty(len(x))
    for start in range(0, len(x), CHUNK):
        means = x[start : start + CHUNK][:, idx].mean(axis=-1)
        lo[start : start + CHUNK] = np.quantile(means, (1 - level) / 2, axis=-1)
        hi[start : start + CHUNK] = np.quantile(means, (1 + level) / 2, axis=-1)
    return lo, hi


def coverage(n_cases: int, distribution: str, sims: int, seed: int = 0, level: float = stats.LEVEL) -> dict:
    """Share of ``sims`` samples of ``n_cases`` values whose interval holds the true mean, for the
    reported interval (``mean_interval``), the t-interval and the percentile bootstrap."""
    rng = np.random.default_rng(seed)
    x, mu = _draw(rng, distribution, (sims, n_cases))
    out = {}
    for name, (lo, hi) in (
        ("reported", stats.mean_interval(x, level)),
        ("t", stats.t_interval(x, level)),
        ("percentile bootstrap", _percentile_bootstrap(x, level)),
    ):
        out[name] = float(np.mean((lo <= mu) & (mu <= hi)))
    return out


# --------------------------------------------------------------------------- class-effect null


def rotation_weights(n_cases: int, n_anomaly: int, n_classes: int = N_CLASSES) -> np.ndarray:
    """``[n_cases, n_classes]``: row k averages the effects of case k's anomaly classes."""
    w = np.zeros((n_cases, n_classes))
    for k in range(n_cases):
        for c in stats.anomaly_positions(k, n_anomaly, n_classes):
            w[k, c] = 1.0 / n_anomaly
    return w


def _series(rng, sims: int, n_series: int, weights: np.ndarray) -> np.ndarray:
    """``[sims, n_series, n_cases]`` case values of ``n_series`` methods under the null."""
    n_cases, n_classes = weights.shape
    common = rng.normal(size=(sims, 1, n_classes))
    own = rng.normal(size=(sims, n_series, n_classes))
    effects = np.sqrt(SHARED) * common + np.sqrt(1 - SHARED) * own
    return effects @ weights.T + NOISE * rng.normal(size=(sims, n_series, n_cases))


def _claim_values(claim: int, rng, sims: int, weights: np.ndarray) -> tuple[np.ndarray, tuple | None]:
    """The per-case values ``[sims, tests, n_cases]`` of one condition's tests of ``claim``, and
    its band (claim 5) or None (a two-sided test of 0)."""
    if claim == 1:  # every pair of methods
        m = _series(rng, sims, METHODS, weights)
        pairs = [(i, j) for i in range(METHODS) for j in range(i + 1, METHODS)]
        return np.stack([m[:, i] - m[:, j] for i, j in pairs], axis=1), None
    if claim == 2:  # cosine − Euclidean per method, and their mean
        d = _series(rng, sims, METHODS, weights)
        return np.concatenate([d.mean(axis=1, keepdims=True), d], axis=1), None
    if claim == 3:  # one SphereFace's AUROC − 0.5
        return _series(rng, sims, 1, weights), None
    if claim == 4:  # distance and AUROC, case k at b − at a
        return _series(rng, sims, 2, weights), None
    if claim == 5:  # the k = 10 gain and the mean-of-all loss, true value on the band's edge
        return BAND[0] + _series(rng, sims, 2, weights), BAND
    if claim == 6:  # each metric-learning method − conventional
        m = _series(rng, sims, METHODS, weights)
        return m[:, 1:] - m[:, :1], None
    raise ValueError(f"claim {claim}: the claims are 1-6")


def type_one_error(
    claim: int, n_cases: int, n_anomaly: int, sims: int, seed: int = 0, n_classes: int = N_CLASSES
) -> dict:
    """Type-I error of ``claim``'s tests in one condition with ``n_cases`` rotations at
    ``n_anomaly`` (claim 4: the larger n_anomaly of its pair) of ``n_classes`` classes under the
    class-effect null.

    Returns ``rate`` (share of runs with a significant confirmatory test: what the report would
    claim wrongly), ``naive`` (a t-test over all cases, Holm, no overlap rule), ``exploratory``
    (the overlap rule left the condition exploratory) and ``n_tested`` (cases behind each p).
    """
    rng = np.random.default_rng([seed, claim, n_cases, n_anomaly, n_classes])
    weights = rotation_weights(n_cases, n_anomaly, n_classes)
    values, band = _claim_values(claim, rng, sims, weights)
    design = stats.case_design(range(n_cases), n_anomaly, n_classes)
    if band is None:
        naive_p = stats._t_p(values, 0.0, "two-sided")
    else:
        naive_p, _ = stats.band_p(values, *band, test="t")
    naive = float(np.mean((stats.holm(naive_p.reshape(sims, -1)) < stats.ALPHA).any(axis=1)))
    if design.exploratory:
        rate = 0.0
    else:
        tested = values[..., list(design.tested)]
        hits = 0
        for start in range(0, sims, CHUNK):  # the sign patterns of a chunk: [chunk, tests, 2^n]
            part = tested[start : start + CHUNK]
            p = stats.signflip_p(part) if band is None else stats.band_p(part, *band)[0]
            hits += int((stats.holm(np.asarray(p).reshape(len(part), -1)) < stats.ALPHA).any(axis=1).sum())
        rate = hits / sims
    return {"rate": rate, "naive": naive, "exploratory": design.exploratory, "n_tested": len(design.tested)}


def conditions(claim: int) -> list[tuple[str, int]]:
    """(label, n_anomaly of the design) of the conditions a claim is simulated at."""
    if claim == 4:
        return [(f"a{a}→a{b}", b) for a, b in CLAIM4_PAIRS]
    return [(f"a{a}", a) for a in CONDITIONS]


#: A design where overlapping cases still leave a confirmatory test: 20 rotations at a3 over 20
#: classes, whose 6 disjoint cases can reach p < 0.05 (2 / 64).
SUBSET = (20, 3, 20)  # cases, n_anomaly, classes


def calibrate(sims_coverage: int, sims_type_one: int, seed: int = 0, cases=CASES) -> dict:
    """Coverage at 5 cases per distribution, and the type-I error of every claim per condition
    and number of cases (10 classes), and at ``SUBSET``: ``{"coverage": {distribution: {...}},
    "type_one": [rows]}``."""
    cover = {d: coverage(5, d, sims_coverage, seed) for d in DISTRIBUTIONS}
    rows = []
    for claim in range(1, 7):
        for label, n_anomaly in conditions(claim):
            for n in cases:
                rows.append(
                    {"claim": claim, "condition": label, "n_cases": n, "n_classes": N_CLASSES}
                    | type_one_error(claim, n, n_anomaly, sims_type_one, seed)
                )
        n, a, c = SUBSET
        rows.append(
            {"claim": claim, "condition": f"a{a}", "n_cases": n, "n_classes": c}
            | type_one_error(claim, n, a, sims_type_one, seed, c)
        )
    return {
        "coverage": cover,
        "type_one": rows,
        "settings": {
            "sims_coverage": sims_coverage,
            "sims_type_one": sims_type_one,
            "seed": seed,
            "n_classes": N_CLASSES,
            "noise": NOISE,
            "shared": SHARED,
            "methods": METHODS,
            "alpha": stats.ALPHA,
        },
    }


def format_tables(result: dict) -> str:
    """The coverage and type-I tables as plain text."""
    lines = ["Coverage of 95 % intervals at 5 cases", f"{'distribution':<14}{'reported':>10}{'t':>8}{'pct boot':>10}"]
    for d, c in result["coverage"].items():
        lines.append(f"{d:<14}{c['reported']:>10.3f}{c['t']:>8.3f}{c['percentile bootstrap']:>10.3f}")
    lines += [
        "",
        "Type-I error under a class-effect null (rotations 0..n-1 of C classes; rate: a confirmatory test",
        "significant after Holm; naive: a t-test over all cases, Holm, no overlap rule)",
        f"{'claim':<7}{'condition':<10}{'C':>4}{'cases':>6}{'tested':>8}{'rate':>8}{'naive t':>9}  design",
    ]
    for r in result["type_one"]:
        design = "exploratory" if r["exploratory"] else "confirmatory"
        lines.append(
            f"{r['claim']:<7}{r['condition']:<10}{r['n_classes']:>4}{r['n_cases']:>6}{r['n_tested']:>8}"
            f"{r['rate']:>8.3f}{r['naive']:>9.3f}  {design}"
        )
    return "\n".join(lines)
