"""The study's claims: verdicts, effects, intervals and p-values on small tables worked out by hand.

Every condition has N = 10 cases at one anomaly class (disjoint cases: every test is
confirmatory) unless a test says otherwise. The tests are exact sign-flip tests, so the p-values
have closed forms:

- SIG: ten per-case values of one sign: only the observed pattern and its mirror image reach
  |sum|, p = 2 / 2^10 = 0.00195; significant after Holm over up to 25 tests.
- NOISE: values x + 0.1, x − 0.1, ... around a small x: signs mixed, far from significant.
"""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dmlbench.errors import DmlbenchError
from dmlbench.report.findings import (
    CLASS_DISTANCES_COLUMNS,
    CONFLICTING,
    CONTRADICTED,
    CONTRADICTED_SOME,
    CONTRADICTS,
    EXPLORATORY,
    EXPLORATORY_TEST,
    FINDINGS_COLUMNS,
    METRICS_COLUMNS,
    NOT_SIGNIFICANT,
    NOT_TESTABLE,
    SIGNIFICANT,
    SUPPORTED,
    SUPPORTED_SOME,
    SUPPORTS,
    TESTS_COLUMNS,
    UNDECIDED,
    VERDICT_MEANINGS,
    VERDICTS,
    findings,
    findings_tests,
    verdict_of,
)
from dmlbench.stats import holm, mean_interval, signflip_p
from tests.helpers.synthetic_tables import class_distances_frame, metrics_frame

ROOT = Path(__file__).resolve().parents[3]
IDS = [
    "no-method-best-everywhere",
    "cosine-beats-euclidean",
    "sphereface-euclidean-below-chance",
    "fewer-normal-larger-distance",
    "k10-beats-k1",
    "metric-learning-beats-conventional-small-samples",
]
N = 10
P_SIG = 2 / 2**N


def sig(x, n=N):
    """n values of x's sign, spread around x (mean x)."""
    return [x * (1 + 0.2 * (i - (n - 1) / 2) / n) for i in range(n)]


def noise(x, n=N):
    """n values x + 0.1, x − 0.1, ... (mean x for even n): mixed signs for |x| < 0.1."""
    return [x + 0.1 * (-1) ** i for i in range(n)]


# --------------------------------------------------------------------------- builders


def m(
    value,
    dataset="d",
    n_anomaly=1,
    method="conventional",
    n_per_class="all",
    seed=0,
    case=0,
    scorer="cosine_k1",
    metric="auroc",
):
    return dict(
        dataset=dataset,
        n_anomaly=n_anomaly,
        method=method,
        n_per_class=n_per_class,
        seed=seed,
        case=case,
        scorer=scorer,
        metric=metric,
        value=value,
    )


def per_case(values, spread=0.0, cases=None, **keys):
    """One AUROC row per case (case i gets values[i]); with ``spread``, two seeds at value ± spread
    (their mean is the case's value: seeds are averaged within a case)."""
    cases = list(range(len(values))) if cases is None else cases
    if not spread:
        return [m(v, case=k, **keys) for k, v in zip(cases, values)]
    return [
        m(v + s, case=k, seed=seed, **keys) for k, v in zip(cases, values) for seed, s in enumerate((spread, -spread))
    ]


def cd(
    normalised,
    dataset="d",
    n_anomaly=1,
    role="anomaly",
    method="conventional",
    n_per_class="all",
    seed=0,
    case=0,
    scorer="cosine_k1",
    class_index=0,
):
    return dict(
        dataset=dataset,
        n_anomaly=n_anomaly,
        method=method,
        n_per_class=n_per_class,
        seed=seed,
        case=case,
        scorer=scorer,
        class_index=class_index,
        role=role,
        normalised=normalised,
    )


def metrics_df(rows):
    return pd.DataFrame(rows, columns=METRICS_COLUMNS)


def distances_df(rows=()):
    return pd.DataFrame(list(rows), columns=CLASS_DISTANCES_COLUMNS)


def claim(metrics_rows, claim_id, distance_rows=(), **kw):
    df = findings(metrics_df(metrics_rows), distances_df(distance_rows), **kw)
    assert list(df["id"]) == IDS
    return df.set_index("id").loc[claim_id]


def found_tests(metrics_rows, claim_id, distance_rows=(), **kw):
    df = findings_tests(metrics_df(metrics_rows), distances_df(distance_rows), **kw)
    return df[df["id"] == claim_id].reset_index(drop=True)


# --------------------------------------------------------------------------- table shape and verdicts


def test_columns_ids_and_types_on_the_synthetic_tables():
    claims = findings(metrics_frame(), class_distances_frame())
    assert list(claims.columns) == FINDINGS_COLUMNS
    assert list(claims["id"]) == IDS and list(claims["number"]) == [1, 2, 3, 4, 5, 6]
    assert set(claims["verdict"]) <= set(VERDICTS)
    assert (claims["evidence"].str.len() > 0).all() and (claims["rule"].str.len() > 0).all()
    tests = findings_tests(metrics_frame(), class_distances_frame())
    assert list(tests.columns) == TESTS_COLUMNS
    assert tests["p_holm"].dtype == np.float64 and tests["n_cases"].dtype == np.int64
    counted = tests.groupby("id").size().reindex(IDS, fill_value=0)
    assert claims["n_tests"].tolist() == counted.tolist()
    assert ((claims["n_tests"] == 0) == (claims["verdict"] == NOT_TESTABLE)).all()
    v = claims.set_index("id")
    # synthetic tables: 3 cases, so no sign-flip test can reach 0.05 (smallest p 2/8), and says so;
    # fashion a2 (4 classes: cases {0,1}, {1,2}, {2,3}) shares anomaly classes: exploratory
    assert v.loc[IDS[1], "verdict"] == NOT_SIGNIFICANT
    assert (
        "With 3 cases no test of this claim can be significant: the smallest sign-flip p is 0.25"
        in (v.loc[IDS[1], "evidence"])
    )
    cos = tests[tests["id"] == IDS[1]]
    assert cos["effect"].tolist() == pytest.approx([0.1] * 6) and cos["p_value"].tolist() == pytest.approx([0.25] * 6)
    assert cos["outcome"].tolist() == [UNDECIDED] * 3 + [EXPLORATORY_TEST] * 3
    assert cos["p_holm"].isna().tolist() == [False] * 3 + [True] * 3
    assert v.loc[IDS[2], "verdict"] == NOT_TESTABLE and v.loc[IDS[3], "verdict"] == NOT_TESTABLE
    assert v.loc[IDS[4], "verdict"] == NOT_TESTABLE and v.loc[IDS[5], "n_per_class"] == "50"


def test_missing_columns_are_named():
    good = metrics_df([m(0.5)])
    with pytest.raises(DmlbenchError, match="'value'"):
        findings(good.drop(columns="value"), distances_df())
    with pytest.raises(DmlbenchError, match=r"\['role', 'normalised'\]"):
        findings(good, distances_df().drop(columns=["role", "normalised"]))


@pytest.mark.parametrize(
    ("outcomes", "verdict"),
    [
        ([], NOT_TESTABLE),
        ([SUPPORTS, SUPPORTS], SUPPORTED),
        ([SUPPORTS, UNDECIDED], SUPPORTED_SOME),
        ([SUPPORTS, EXPLORATORY_TEST], SUPPORTED_SOME),  # an exploratory condition is not shown to support
        ([SUPPORTS, CONTRADICTS, UNDECIDED], CONFLICTING),
        ([CONTRADICTS, UNDECIDED], CONTRADICTED_SOME),
        ([CONTRADICTS, CONTRADICTS], CONTRADICTED),
        ([UNDECIDED, EXPLORATORY_TEST], NOT_SIGNIFICANT),
        ([EXPLORATORY_TEST, EXPLORATORY_TEST], EXPLORATORY),
    ],
)
def test_each_verdict_from_its_tests(outcomes, verdict):
    assert verdict_of(outcomes) == verdict


def test_every_verdict_is_defined_in_the_report_text():
    """The findings section defines each verdict word in the words of VERDICT_MEANINGS."""
    text = " ".join((ROOT / "report" / "sections" / "_findings.qmd").read_text().split())
    assert set(VERDICT_MEANINGS) == set(VERDICTS)
    for verdict, meaning in VERDICT_MEANINGS.items():
        assert f"*{verdict}*: {meaning}" in text, verdict
    assert "mixed" not in text  # the old word lumped conflict with "supported here, not significant there"


# --------------------------------------------------------------------------- 2. cosine vs euclidean


def cos_euc(diffs_by_dataset, methods=("conventional", "arcface"), spread=0.02):
    """Per dataset (a condition at one anomaly class), per method: cosine = euclidean + the
    method's per-case difference (a list for every method, or a dict method -> list)."""
    rows = []
    for dataset, diffs in diffs_by_dataset.items():
        for method in methods:
            d = diffs[method] if isinstance(diffs, dict) else diffs
            rows += per_case([0.7] * len(d), spread, dataset=dataset, method=method, scorer="euclidean_k1")
            rows += per_case([0.7 + x for x in d], spread, dataset=dataset, method=method, scorer="cosine_k1")
    return rows


def test_cosine_beats_euclidean_supported_on_average_and_per_method():
    rows = cos_euc({"d": sig(0.1), "e": sig(0.1)})
    r, t = claim(rows, IDS[1]), found_tests(rows, IDS[1])
    assert r["verdict"] == SUPPORTED and (r["n_tests"], r["n_supporting"]) == (6, 6)
    assert (
        t["comparison"].tolist()
        == [
            "cosine_k1 − euclidean_k1, mean over methods",
            "cosine_k1 − euclidean_k1, conventional",
            "cosine_k1 − euclidean_k1, arcface",
        ]
        * 2
    )
    assert t["condition"].tolist() == ["d a1"] * 3 + ["e a1"] * 3 and (t["n_cases"] == N).all()
    assert t["effect"].tolist() == pytest.approx([0.1] * 6)
    assert t["p_value"].tolist() == pytest.approx([P_SIG] * 6)
    assert t["p_holm"].tolist() == pytest.approx([6 * P_SIG] * 6)  # Holm, six equal p: all 6p
    lo, hi = mean_interval(np.array(sig(0.1)))
    assert (t.loc[0, "ci_low"], t.loc[0, "ci_high"]) == (pytest.approx(lo), pytest.approx(hi))
    assert "Supports: d a1 mean over methods +0.100 [" in r["evidence"]


def test_one_method_does_not_decide_the_cosine_claim():
    """The issue's case: one method's large gain carries the average, the other's is noise. On
    average the claim holds; per method it does not, so the claim is supported in some tests only."""
    rows = cos_euc({"d": {"conventional": sig(0.3), "arcface": noise(0.0)}})
    r, t = claim(rows, IDS[1]), found_tests(rows, IDS[1])
    assert t["outcome"].tolist() == [SUPPORTS, SUPPORTS, UNDECIDED]
    assert r["verdict"] == SUPPORTED_SOME
    assert "Not significant: d a1 arcface" in r["evidence"]


def test_cosine_contradicted_conflicting_and_not_significant():
    r = claim(cos_euc({"d": sig(-0.1), "e": sig(-0.1)}), IDS[1])
    assert r["verdict"] == CONTRADICTED and r["n_contradicting"] == 6
    assert "Contradicts: d a1 mean over methods -0.100 [" in r["evidence"]
    r = claim(cos_euc({"d": sig(0.1), "e": sig(-0.1)}), IDS[1])
    assert r["verdict"] == CONFLICTING
    assert (
        "Supports: d a1 mean over methods" in r["evidence"] and "Contradicts: e a1 mean over methods" in r["evidence"]
    )
    assert claim(cos_euc({"d": noise(0.0), "e": noise(0.0)}), IDS[1])["verdict"] == NOT_SIGNIFICANT


def test_sign_flip_p_decides_and_holm_spans_the_claim():
    """Nine positive cases and one small negative one: the sign-flip p counts the patterns whose
    |sum| reaches the observed one; Holm multiplies across the claim's tests."""
    values = [0.05] * 9 + [-0.01]
    rows = cos_euc({"d": values}, methods=("conventional",))
    t = found_tests(rows, IDS[1])
    # only the observed pattern, the one with the -0.01 flipped, and their mirror images: 4 / 1024
    assert t["p_value"].tolist() == pytest.approx([4 / 1024])
    assert t["p_t"].iloc[0] < t["p_value"].iloc[0]  # the t-test, shown beside it, is more optimistic here
    rows = cos_euc({"d": sig(0.1), "e": values, "f": noise(0.0)}, methods=("conventional",))
    t = found_tests(rows, IDS[1])
    np.testing.assert_allclose(t["p_holm"], holm(t["p_value"]))
    assert t["outcome"].tolist() == [SUPPORTS, SUPPORTS, UNDECIDED]


def test_cosine_vs_euclidean_uses_the_report_k_and_pairs_by_run():
    rows = [dict(r, scorer=r["scorer"].replace("_k1", "_k10")) for r in cos_euc({"d": sig(0.1)})]
    rows += cos_euc({"d": sig(-0.1)})  # k = 1 says the opposite
    assert claim(rows, IDS[1], scorer="cosine_k10")["verdict"] == SUPPORTED
    assert claim(rows, IDS[1], scorer="euclidean_k10")["scorer"] == "cosine_k10, euclidean_k10"
    r = claim(rows, IDS[1], scorer="msp")  # not a kNN scorer: k = 1, and says so
    assert r["verdict"] == CONTRADICTED and "k = 1: the report's scorer msp is not a kNN distance" in r["evidence"]
    r = claim(per_case([0.7, 0.7], scorer="cosine_k1") + per_case([0.6], scorer="euclidean_k1"), IDS[1])
    assert r["verdict"] == NOT_TESTABLE and "1 case with both sides" in r["evidence"]
    r = claim(per_case([0.7, 0.7, 0.7]), IDS[1])
    assert r["verdict"] == NOT_TESTABLE and "euclidean_k1" in r["evidence"]


# --------------------------------------------------------------------------- cases: too few, overlapping


def test_five_cases_cannot_be_significant_and_the_evidence_says_how_many_could():
    rows = cos_euc({"d": sig(0.1, 5)}, methods=("conventional",))
    r, t = claim(rows, IDS[1]), found_tests(rows, IDS[1])
    assert t["p_value"].tolist() == pytest.approx([0.0625]) and t["outcome"].tolist() == [UNDECIDED]
    assert r["verdict"] == NOT_SIGNIFICANT
    assert (
        "With 5 cases no test of this claim can be significant: the smallest sign-flip p is 0.0625 "
        "(6 cases could reach 0.05)." in r["evidence"]
    )
    # three tests (the mean and two methods): Holm asks 0.0167 of the first; 6 cases give 0.031 at best
    rows = cos_euc({"d": sig(0.1, 6)})
    r = claim(rows, IDS[1])
    assert "above the 0.0167 Holm asks of the first of 3 tests (6 cases could reach 0.05, 7 with Holm" in r["evidence"]


def test_overlapping_cases_make_a_condition_exploratory():
    """At a5 the five rotations of 10 classes share anomaly classes (no two of them are disjoint):
    no test holds its level there. Its effect is shown, but it is no verdict and takes no part in
    Holm."""
    classes = [cd(1.0, dataset="d", n_anomaly=5, class_index=i, role="normal") for i in range(10)]
    rows = cos_euc({"d": sig(0.1, 5)}, methods=("conventional",))
    rows = [dict(r, n_anomaly=5) for r in rows]
    r, t = claim(rows, IDS[1], classes), found_tests(rows, IDS[1], classes)
    assert r["verdict"] == EXPLORATORY and t["outcome"].tolist() == [EXPLORATORY_TEST]
    assert np.isnan(t["p_holm"].iloc[0]) and t["p_value"].iloc[0] == pytest.approx(0.0625)
    assert "Exploratory (d a5): the 5 cases share anomaly classes, so no test there holds its level" in r["evidence"]
    # a confirmatory condition beside it decides alone, and its Holm counts only itself
    rows += cos_euc({"e": sig(0.1)}, methods=("conventional",))
    r, t = claim(rows, IDS[1], classes), found_tests(rows, IDS[1], classes)
    assert t["outcome"].tolist() == [EXPLORATORY_TEST, SUPPORTS] and t["p_holm"].iloc[1] == pytest.approx(P_SIG)
    assert r["verdict"] == SUPPORTED_SOME


def test_overlapping_cases_with_enough_disjoint_ones_are_tested_on_those():
    """20 rotations at a3 over 20 classes: cases 0, 3, ..., 15 are disjoint (6 of them), enough
    for p < 0.05 (2/64): the test uses them, and says so."""
    classes = [cd(1.0, dataset="d", n_anomaly=3, class_index=i, role="normal") for i in range(20)]
    values = [0.1 if k % 3 == 0 else -0.5 for k in range(20)]  # the disjoint cases all positive
    rows = [dict(r, n_anomaly=3) for r in cos_euc({"d": values}, methods=("conventional",))]
    r, t = claim(rows, IDS[1], classes), found_tests(rows, IDS[1], classes)
    assert (t["n_cases"].iloc[0], t["n_tested"].iloc[0]) == (20, 6)
    assert t["effect"].iloc[0] == pytest.approx(0.1) and t["p_value"].iloc[0] == pytest.approx(2 / 64)
    assert r["verdict"] == SUPPORTED
    assert "Tested on the 6 of 20 cases whose anomaly classes are disjoint." in r["evidence"]


# --------------------------------------------------------------------------- 3. sphereface + euclidean


def sphere(aurocs_by_dataset, scorer="euclidean_k1", method="sphereface"):
    return [
        row
        for dataset, values in aurocs_by_dataset.items()
        for row in per_case(values, 0.01, dataset=dataset, method=method, scorer=scorer)
    ]


def test_sphereface_below_chance_every_verdict():
    below, above = [0.5 + v for v in sig(-0.1)], [0.5 + v for v in sig(0.1)]
    r, t = claim(sphere({"d": below, "e": below}), IDS[2]), found_tests(sphere({"d": below, "e": below}), IDS[2])
    assert r["verdict"] == SUPPORTED and t["comparison"].tolist() == ["AUROC − 0.5, sphereface"] * 2
    assert t["effect"].tolist() == pytest.approx([-0.1, -0.1]) and t["p_value"].tolist() == pytest.approx([P_SIG] * 2)
    assert "d a1 0.400, e a1 0.400" in r["evidence"]
    assert claim(sphere({"d": above, "e": above}), IDS[2])["verdict"] == CONTRADICTED
    r = claim(sphere({"d": below, "e": above}), IDS[2])
    assert r["verdict"] == CONFLICTING and "Supports: d a1" in r["evidence"] and "Contradicts: e a1" in r["evidence"]
    assert claim(sphere({"d": [0.5 + v for v in noise(0.0)]}), IDS[2])["verdict"] == NOT_SIGNIFICANT


# --------------------------------------------------------------------------- 4. fewer normal classes


def balance(distance_diffs, auroc_diffs, trap=50.0, n_classes=40):
    """Classes 0..n_classes-1, n_anomaly 1 and 2, cases 0, 2, 4, ... (disjoint at a2), one method
    and seed. Case k's anomaly at a1 is class k; at a2 classes k and k + 1. Class k's normalised
    distance at a1 is 3.0, at a2 3.0 + the case's distance difference; class k + 1 at a2 sits at
    ``trap`` (a different class: comparing all anomaly classes would see it). AUROC: 0.9 at a1,
    0.9 + the difference at a2."""
    dist, rows = [], []
    for i, k in enumerate(range(0, 2 * len(distance_diffs), 2)):
        dist += [
            cd(3.0, case=k, class_index=k),
            cd(1.0, case=k, class_index=n_classes - 1, role="normal"),
            cd(3.0 + distance_diffs[i], n_anomaly=2, case=k, class_index=k),
            cd(trap, n_anomaly=2, case=k, class_index=k + 1),
        ]
        rows += [m(0.9, case=k), m(0.9 + auroc_diffs[i], n_anomaly=2, case=k)]
    dist += [cd(1.0, case=0, class_index=c, role="normal") for c in range(n_classes)]  # every class has a row
    return rows, dist


def test_fewer_normal_classes_supported_on_the_same_class():
    rows, dist = balance(sig(1.0), sig(-0.1))
    r, t = claim(rows, IDS[3], dist), found_tests(rows, IDS[3], dist)
    assert r["verdict"] == SUPPORTED and r["scorer"] == "cosine_k1"
    assert t["comparison"].tolist() == ["anomaly distance a2 − a1 (same class)", "AUROC a2 − a1"]
    assert t["condition"].tolist() == ["d a1→a2"] * 2 and t["unit"].tolist() == ["× normal", "AUROC"]
    assert t["effect"].tolist() == pytest.approx([1.0, -0.1])
    assert t["p_value"].tolist() == pytest.approx([P_SIG, P_SIG])
    assert "distance d a1→a2 3.00 → 4.00" in r["evidence"] and "AUROC d a1→a2 0.900 → 0.800" in r["evidence"]


def test_fewer_normal_classes_contradicted_conflicting_and_overlapping():
    rows, dist = balance(sig(-1.0), sig(0.1))
    assert claim(rows, IDS[3], dist)["verdict"] == CONTRADICTED
    # the other class at a2 (50) would make the mean anomaly distance grow: it must not count
    rows, dist = balance(sig(-1.0), sig(-0.1))
    r = claim(rows, IDS[3], dist)
    assert r["verdict"] == CONFLICTING
    assert "Supports: AUROC d a1→a2" in r["evidence"] and "Contradicts: distance d a1→a2" in r["evidence"]
    # cases 0..9 at a2 over 10 classes share classes as they do at a2: 5 disjoint, exploratory
    rows = [dict(x, case=x["case"] // 2) for x in balance(sig(1.0), sig(-0.1))[0]]
    dist = [dict(x, case=x["case"] // 2) for x in balance(sig(1.0), sig(-0.1), n_classes=10)[1]]
    dist = [dict(x, class_index=x["class_index"] % 10) for x in dist]
    assert claim(rows, IDS[3], dist)["verdict"] == EXPLORATORY


def test_fewer_normal_classes_falls_back_to_a_distance_scorer():
    rows, dist = balance(sig(1.0), sig(-0.1))
    msp = [dict(d, scorer="msp", normalised=np.nan) for d in dist]
    r = claim(rows, IDS[3], dist + msp, scorer="msp")
    assert r["verdict"] == SUPPORTED and r["scorer"] == "cosine_k1"
    assert "cosine_k1 (the report's scorer msp has no normalised distances)" in r["evidence"]
    r = claim([m(0.9)], IDS[3], [cd(2.0), cd(3.0, dataset="e", n_anomaly=2)])
    assert r["verdict"] == NOT_TESTABLE and "two or more values of n_anomaly" in r["evidence"]


# --------------------------------------------------------------------------- 5. k of the k-nearest mean


def knn(gains, ratios, k1=0.9, dist="cosine"):
    """k = 1 at ``k1``; k = 10 at k1 + the case's gain; all at k1 × the case's ratio."""
    rows = per_case([k1] * len(gains), 0.0, scorer=f"{dist}_k1")
    rows += per_case([k1 + g for g in gains], 0.0, scorer=f"{dist}_k10")
    rows += per_case([k1 * r for r in ratios], 0.0, scorer=f"{dist}_kall")
    return rows


def test_k10_claim_tests_the_stated_sizes():
    """+0.7 points and -10 %, each well inside its band (0.2 to 1.2 points; -15 to -5 %): both sizes
    supported, each by two one-sided tests whose larger p is 1 / 2^10."""
    rows = knn([0.007 + 0.0001 * (i - 4.5) for i in range(N)], [0.9 + 0.001 * (i - 4.5) for i in range(N)])
    r, t = claim(rows, IDS[4]), found_tests(rows, IDS[4])
    assert r["claim"] == (
        "The mean of the 10 smallest distances beats the minimum (k = 1) by +0.7 ± 0.5 points of AUROC; "
        "the mean of all distances is 10 ± 5 % worse."
    )
    assert r["verdict"] == SUPPORTED
    assert t["comparison"].tolist() == ["100 (cosine_k10 − cosine_k1)", "100 (cosine_kall / cosine_k1 − 1)"]
    assert t["unit"].tolist() == ["AUROC points", "% of k = 1"]
    assert t["effect"].tolist() == pytest.approx([0.7, -10.0])
    assert t["p_value"].tolist() == pytest.approx([1 / 2**N] * 2)
    assert "k = 10 +0.70 points [" in r["evidence"] and "(claimed +0.7 ± 0.5)" in r["evidence"]
    assert "mean of all -10 % [" in r["evidence"] and "(claimed -10 ± 5 %), AUROC 0.810" in r["evidence"]


def test_k10_claim_the_demos_sizes_contradict_it():
    """The demo's pattern: k = 10 a little worse (-0.3 points) and the mean of all 72 % below k = 1.
    Both are outside their bands: contradicted, though the mean of all is "worse" as the sign says."""
    rows = knn(sig(-0.003), sig(0.28))
    r, t = claim(rows, IDS[4]), found_tests(rows, IDS[4])
    assert t["outcome"].tolist() == [CONTRADICTS, CONTRADICTS] and r["verdict"] == CONTRADICTED
    assert t["effect"].tolist() == pytest.approx([-0.3, -72.0])
    assert t["p_value"].tolist() == pytest.approx([2 * 1 / 2**N] * 2)  # twice the one-sided p: outside either way
    assert "AUROC 0.252, below chance" in r["evidence"]
    # a gain of +0.9 points that wanders in and out of the band: not significant either way
    r = claim(knn([0.009 + 0.02 * (-1) ** i for i in range(N)], [0.9] * N), IDS[4])
    assert found_tests(knn([0.009 + 0.02 * (-1) ** i for i in range(N)], [0.9] * N), IDS[4])["outcome"].tolist() == [
        UNDECIDED,
        SUPPORTS,
    ]
    assert r["verdict"] == SUPPORTED_SOME


def test_k10_follows_the_scorer_distance_and_names_missing_k():
    good = knn([0.007] * N, [0.9] * N, dist="euclidean")
    bad = knn(sig(-0.05), sig(1.1))
    assert claim(good + bad, IDS[4], scorer="euclidean_k5")["verdict"] == SUPPORTED
    assert claim(good + bad, IDS[4])["verdict"] == CONTRADICTED
    r = claim(good + bad, IDS[4], scorer="mahalanobis")
    assert r["verdict"] == CONTRADICTED
    assert "Distance cosine (the report's scorer mahalanobis is not a kNN distance)" in r["evidence"]
    r = claim([m(0.8, scorer="cosine_k1"), m(0.81, scorer="cosine_k5"), m(0.7, scorer="cosine_kall")], IDS[4])
    assert r["verdict"] == NOT_TESTABLE
    assert "cosine_k10" in r["evidence"] and "k values of cosine in the tables: 1, 5, all" in r["evidence"]


# --------------------------------------------------------------------------- 6. small samples


def small(diffs_by_method, n_per_class="10", base=0.7, baseline="conventional"):
    rows = per_case([base] * N, 0.01, n_per_class=n_per_class, method=baseline)
    for method, diffs in diffs_by_method.items():
        rows += per_case([base + d for d in diffs], 0.01, n_per_class=n_per_class, method=method)
    return rows


def test_metric_learning_small_samples_every_verdict():
    sup = small({"arcface": sig(0.1), "sphereface": sig(0.1)})
    r, t = claim(sup, IDS[5]), found_tests(sup, IDS[5])
    assert r["verdict"] == SUPPORTED and r["n_per_class"] == "10"
    assert t["comparison"].tolist() == ["arcface − conventional", "sphereface − conventional"]
    assert t["p_holm"].tolist() == pytest.approx([2 * P_SIG] * 2)
    assert claim(small({"arcface": sig(-0.1), "sphereface": sig(-0.1)}), IDS[5])["verdict"] == CONTRADICTED
    r = claim(
        small({"arcface": sig(0.1), "cosface": sig(0.1), "l2softmax": noise(0.0), "sphereface": sig(-0.1)}), IDS[5]
    )
    assert r["verdict"] == CONFLICTING
    assert "Supports: l2softmax" not in r["evidence"] and "Supports: l2softmax at 10" not in r["evidence"]
    assert (
        "Contradicts: sphereface at 10 -0.100" in r["evidence"]
        and "Not significant: l2softmax at 10" in (r["evidence"])
    )
    assert claim(small({"arcface": noise(0.0)}), IDS[5])["verdict"] == NOT_SIGNIFICANT


def test_small_samples_test_every_size():
    rows = small({"arcface": sig(0.1)}, "10") + small({"arcface": sig(-0.1)}, "30")
    rows += small({"arcface": sig(-0.3)}, "all")  # the main runs do not count
    r, t = claim(rows, IDS[5]), found_tests(rows, IDS[5])
    assert r["verdict"] == CONFLICTING and r["n_per_class"] == "10, 30"
    assert t["n_per_class"].tolist() == ["10", "30"] and t["outcome"].tolist() == [SUPPORTS, CONTRADICTS]
    assert "Mixup" not in r["evidence"]


def test_small_samples_not_testable():
    r = claim(per_case([0.6] * 3) + per_case([0.7] * 3, method="arcface"), IDS[5])
    assert r["verdict"] == NOT_TESTABLE and "Every run uses all training images" in r["evidence"]
    r = claim(per_case([0.7] * 3, method="arcface", n_per_class="10"), IDS[5])
    assert r["verdict"] == NOT_TESTABLE and "no method with the Conventional head" in r["evidence"]


# --------------------------------------------------------------------------- 1. no method best everywhere


def methods_table(by_dataset):
    """Per condition (dataset at a1), per method, the per-case AUROC."""
    return [
        row
        for dataset, methods in by_dataset.items()
        for method, values in methods.items()
        for row in per_case(values, 0.01, dataset=dataset, method=method)
    ]


TOP = [0.8] * N


def below(pattern):
    return [a - d for a, d in zip(TOP, pattern)]


def test_best_everywhere_tests_every_pair_once_corrected():
    """All pairs in every condition, one Holm correction: no top method is picked from the data."""
    rows = methods_table(
        {
            "d": {"arcface": TOP, "cosface": below(sig(0.1)), "sphereface": below(sig(0.2))},
            "e": {"cosface": TOP, "arcface": below(sig(0.1)), "sphereface": below(sig(0.2))},
        }
    )
    r, t = claim(rows, IDS[0]), found_tests(rows, IDS[0])
    assert r["verdict"] == SUPPORTED
    assert t["comparison"].tolist() == ["arcface − cosface", "arcface − sphereface", "cosface − sphereface"] * 2
    assert t["p_holm"].tolist() == pytest.approx([6 * P_SIG] * 6) and (t["outcome"] == SIGNIFICANT).all()
    assert (
        "Every method is significantly beaten somewhere: arcface (e a1), cosface (d a1), sphereface (d a1, e a1)"
        in (r["evidence"])
    )


def test_best_everywhere_contradicted_and_not_significant():
    everywhere = {"arcface": TOP, "cosface": below(sig(0.1)), "sphereface": below(sig(0.2))}
    r = claim(methods_table({"d": everywhere, "e": everywhere}), IDS[0])
    assert r["verdict"] == CONTRADICTED
    assert "arcface is significantly better than every other method in every condition" in r["evidence"]
    # d: arcface beats sphereface only; e: nothing significant -> arcface and cosface never lose
    rows = methods_table(
        {
            "d": {"arcface": TOP, "cosface": below(noise(0.0)), "sphereface": below(sig(0.1))},
            "e": {"cosface": TOP, "arcface": below(noise(0.01)), "sphereface": below(noise(0.01))},
        }
    )
    r = claim(rows, IDS[0])
    assert r["verdict"] == NOT_SIGNIFICANT
    assert "Never significantly beaten (each could still be best everywhere): arcface, cosface." in r["evidence"]
    assert "d a1: top by mean" in r["evidence"] and "e a1: top by mean cosface, no pair significant" in r["evidence"]


def test_best_everywhere_groups_variants_of_a_head():
    methods = {"arcface_a": {"head": "arcface"}, "arcface_b": {"head": "arcface"}, "cosface": {"head": "cosface"}}
    rows = methods_table(
        {d: {"arcface_a": TOP, "arcface_b": below(sig(0.2)), "cosface": below(sig(0.3))} for d in ("d", "e")}
    )
    t = found_tests(rows, IDS[0], methods=methods)
    assert t["comparison"].tolist() == ["arcface − cosface"] * 2
    assert t["effect"].tolist() == pytest.approx([0.2, 0.2])  # (0.8 + 0.6) / 2 − 0.5


def test_best_everywhere_needs_two_conditions_and_complete_cases():
    rows = methods_table({"d": {"arcface": TOP, "cosface": below(sig(0.1))}})
    r = claim(rows, IDS[0])
    assert r["verdict"] == NOT_TESTABLE and "Only one condition" in r["evidence"]
    assert claim(per_case(TOP) + per_case(TOP, dataset="e"), IDS[0])["verdict"] == NOT_TESTABLE
    rows = methods_table({d: {"arcface": TOP, "cosface": below(sig(0.1))} for d in ("d", "e")})
    rows.append(m(0.99, dataset="e", method="arcface", case=N))  # a case without every method
    assert found_tests(rows, IDS[0])["n_cases"].tolist() == [N, N]


# --------------------------------------------------------------------------- the main images per class


def test_claims_use_the_main_n_per_class():
    rows = cos_euc({"d": sig(0.1), "e": sig(0.1)})
    only_500 = [dict(r, n_per_class="500") for r in rows]
    assert claim(only_500, IDS[1])["verdict"] == SUPPORTED
    assert claim(only_500, IDS[1])["n_per_class"] == "500"
    mixed_sizes = only_500 + [dict(r, n_per_class="all", value=1 - r["value"]) for r in rows]
    assert claim(mixed_sizes, IDS[1])["verdict"] == CONTRADICTED  # "all": cosine now lower
    assert claim(mixed_sizes, IDS[1], n_per_class="500")["verdict"] == SUPPORTED


def test_evidence_effects_are_those_of_the_tests_table():
    rows = small({"arcface": sig(0.1), "cosface": sig(0.2)})
    r, t = claim(rows, IDS[5]), found_tests(rows, IDS[5])
    for row in t.itertuples():
        assert re.search(
            re.escape(f"{row.comparison.split(' − ')[0]} at 10 {row.effect:+.3f} [{row.ci_low:+.3f}, "), r["evidence"]
        )
    assert t["p_value"].tolist() == pytest.approx([signflip_p(np.array(sig(0.1)))] * 2)


def _cases_metrics(counts: dict) -> pd.DataFrame:
    return pd.DataFrame(
        [{"dataset": d, "n_anomaly": a, "case": k} for (d, a), n in counts.items() for k in range(n) for _ in (0, 1)]
    )


def test_cases_sentence_reads_the_cases_run_so_cases_all_works():
    from dmlbench.report.findings import cases_sentence

    # `cases: all` on digits: 10 cases each, p down to 2/1024
    ten = cases_sentence(_cases_metrics({("digits", 1): 10, ("digits", 5): 10}))
    assert ten.startswith(
        "This run has 10 cases per condition: the smallest sign-flip p is 0.002, so a test can reach 0.05"
    )
    five = cases_sentence(_cases_metrics({("digits", 1): 5}))
    assert (
        "5 cases per condition: the smallest sign-flip p is 0.0625, so no test there can be significant; 6 cases"
        in five
    )
    # two datasets of 10 and 4 classes under `cases: all`: the fewest decide
    mixed = cases_sentence(_cases_metrics({("digits", 1): 10, ("toy", 1): 4}))
    assert mixed.startswith("This run has 4 to 10 cases per condition: the smallest sign-flip p with 4 is 0.125")


def test_the_test_is_called_exact_only_where_every_sign_pattern_was_counted():
    """Above 16 cases (`cases: all` on a folder of 20 classes) the sign-flip p comes from 10,000
    random sign patterns: the findings table does not call it exact there."""

    def rows(n):
        return per_case(sig(0.9, n), scorer="cosine_k1") + per_case(sig(0.8, n), scorer="euclidean_k1")

    assert claim(rows(16), IDS[1])["test"] == "exact sign-flip test over cases"
    assert claim(rows(20), IDS[1])["test"] == (
        "sign-flip test over cases; every sign pattern up to 16 cases, 10,000 random ones above"
    )
