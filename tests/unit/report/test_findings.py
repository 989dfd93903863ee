"""The study's claims: verdicts, effects, intervals and p-values on small tables worked out by hand.

Every test condition has 3 cases, so the per-case values are tested with 2 degrees of freedom,
where Student's t has a closed form: P(|T| > t) = 1 - t / sqrt(t^2 + 2), and the 97.5 %
quantile is (2q - 1) / sqrt(2 q (1 - q)) with q = 0.975 (4.3027). Two patterns of per-case
values recur:

- SIG: ``x - 0.01, x, x + 0.01`` with |x| = 0.1: t = 0.1 / (0.01 / sqrt 3) = 10 sqrt 3, t^2 = 300,
  p = 1 - sqrt(300 / 302) = 0.0033; significant after Holm over up to 15 tests.
- NOISE: ``x - 0.1, x, x + 0.1`` with |x| = 0.1: t = sqrt 3, p = 1 - sqrt(3 / 5) = 0.225.
"""

import math

import numpy as np
import pandas as pd
import pytest

from dmlbench.errors import DmlbenchError
from dmlbench.report.findings import (
    CLASS_DISTANCES_COLUMNS,
    CONTRADICTED,
    CONTRADICTS,
    FINDINGS_COLUMNS,
    METRICS_COLUMNS,
    MIXED,
    NOT_SIGNIFICANT,
    NOT_TESTABLE,
    SIGNIFICANT,
    SUPPORTED,
    SUPPORTS,
    TESTS_COLUMNS,
    UNDECIDED,
    VERDICTS,
    findings,
    findings_tests,
    mixup_runs,
)
from dmlbench.stats import holm
from tests.helpers.synthetic_tables import class_distances_frame, metrics_frame

IDS = [
    "no-method-best-everywhere",
    "cosine-beats-euclidean",
    "sphereface-euclidean-below-chance",
    "fewer-normal-larger-distance",
    "k10-beats-k1",
    "metric-learning-beats-conventional-small-samples",
]

P_SIG = 1 - math.sqrt(300 / 302)
P_NOISE = 1 - math.sqrt(3 / 5)
T975 = 0.95 / math.sqrt(2 * 0.975 * 0.025)  # t quantile, 2 df
HALF_SIG = T975 * 0.01 / math.sqrt(3)  # half-width of the interval of a SIG pattern


def sig(x):
    return [x - 0.01 * np.sign(x), x, x + 0.01 * np.sign(x)]


def noise(x):
    return [x - 0.1, x, x + 0.1]


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


def per_case(values, spread=0.0, **keys):
    """One AUROC row per case (case i gets values[i]); with ``spread``, two seeds at value ± spread
    (their mean is the case's value: seeds are averaged within a case)."""
    if not spread:
        return [m(v, case=i, **keys) for i, v in enumerate(values)]
    return [
        m(v + s, case=i, seed=seed, **keys) for i, v in enumerate(values) for seed, s in enumerate((spread, -spread))
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


# --------------------------------------------------------------------------- table shape


def test_columns_ids_and_types_on_the_synthetic_tables():
    claims = findings(metrics_frame(), class_distances_frame())
    assert list(claims.columns) == FINDINGS_COLUMNS
    assert list(claims["id"]) == IDS and list(claims["number"]) == [1, 2, 3, 4, 5, 6]
    assert set(claims["verdict"]) <= set(VERDICTS)
    assert (claims["evidence"].str.len() > 0).all() and (claims["rule"].str.len() > 0).all()
    tests = findings_tests(metrics_frame(), class_distances_frame())
    assert list(tests.columns) == TESTS_COLUMNS
    assert tests["p_holm"].dtype == np.float64 and tests["n_cases"].dtype == np.int64
    # the claims count their tests
    counted = tests.groupby("id").size().reindex(IDS, fill_value=0)
    assert claims["n_tests"].tolist() == counted.tolist()
    assert ((claims["n_tests"] == 0) == (claims["verdict"] == NOT_TESTABLE)).all()
    # synthetic tables: cosine 0.1 above euclidean in every run, so the paired difference has no spread
    v = claims.set_index("id")
    assert v.loc[IDS[1], "verdict"] == SUPPORTED
    cos = tests[tests["id"] == IDS[1]]
    assert cos["effect"].tolist() == pytest.approx([0.1, 0.1]) and (cos["p_value"] < 1e-10).all()
    # one n_anomaly per dataset; no k10; no sphereface; at n = 50 arcface is 0.2 above conventional
    assert v.loc[IDS[2], "verdict"] == NOT_TESTABLE and v.loc[IDS[3], "verdict"] == NOT_TESTABLE
    assert v.loc[IDS[4], "verdict"] == NOT_TESTABLE
    assert v.loc[IDS[5], "verdict"] == SUPPORTED and v.loc[IDS[5], "n_per_class"] == "50"


def test_missing_columns_are_named():
    good = metrics_df([m(0.5)])
    with pytest.raises(DmlbenchError, match="'value'"):
        findings(good.drop(columns="value"), distances_df())
    with pytest.raises(DmlbenchError, match=r"\['role', 'normalised'\]"):
        findings(good, distances_df().drop(columns=["role", "normalised"]))


def test_mixup_runs_follow_the_annex_override():
    config = {
        "n_per_class": ["all", 500],
        "methods": {"arcface": {"mixup": True}, "conventional": {}},
        "annex": {"sample_size": [10, 500], "mixup": False},
    }
    # 500 is a main-grid size: the methods' own mixup; 10 is annex only: annex.mixup overrides
    assert mixup_runs(config) == {
        ("arcface", "500"): True,
        ("arcface", "10"): False,
        ("conventional", "500"): False,
        ("conventional", "10"): False,
    }
    config["annex"]["mixup"] = None
    assert mixup_runs(config)[("arcface", "10")] is True


# --------------------------------------------------------------------------- 2. cosine vs euclidean


def cos_euc(diffs_by_condition, spread=0.02):
    """Two methods, two seeds: cosine = euclidean + the condition's per-case difference."""
    rows = []
    for n_anomaly, diffs in diffs_by_condition.items():
        for method in ("conventional", "arcface"):
            rows += per_case([0.7] * len(diffs), spread, n_anomaly=n_anomaly, method=method, scorer="euclidean_k1")
            rows += per_case([0.7 + d for d in diffs], spread, n_anomaly=n_anomaly, method=method, scorer="cosine_k1")
    return rows


def test_cosine_beats_euclidean_supported_with_effect_interval_and_holm():
    rows = cos_euc({1: sig(0.1), 2: sig(0.1)})
    r, t = claim(rows, IDS[1]), found_tests(rows, IDS[1])
    assert r["verdict"] == SUPPORTED and (r["n_tests"], r["n_supporting"]) == (2, 2)
    assert t["condition"].tolist() == ["d a1", "d a2"] and t["n_cases"].tolist() == [3, 3]
    assert t["effect"].tolist() == pytest.approx([0.1, 0.1])
    assert t["ci_low"].tolist() == pytest.approx([0.1 - HALF_SIG] * 2)
    assert t["ci_high"].tolist() == pytest.approx([0.1 + HALF_SIG] * 2)
    assert t["p_value"].tolist() == pytest.approx([P_SIG] * 2)
    assert t["p_holm"].tolist() == pytest.approx([2 * P_SIG] * 2)  # Holm, two equal p: both 2p
    assert t["outcome"].tolist() == [SUPPORTS, SUPPORTS]
    assert "d a1 +0.100 [+0.075, +0.125]" in r["evidence"] and "d a1 2 of 2" in r["evidence"]


def test_cosine_beats_euclidean_contradicted():
    r = claim(cos_euc({1: sig(-0.1), 2: sig(-0.1)}), IDS[1])
    assert r["verdict"] == CONTRADICTED and r["n_contradicting"] == 2
    assert "Contradicts: d a1 -0.100 [-0.125, -0.075]; d a2" in r["evidence"]


def test_cosine_beats_euclidean_mixed_names_the_conditions_each_way():
    rows = cos_euc({1: sig(0.1), 5: sig(-0.1)})
    r, t = claim(rows, IDS[1]), found_tests(rows, IDS[1])
    assert r["verdict"] == MIXED
    assert t["outcome"].tolist() == [SUPPORTS, CONTRADICTS]
    assert "Supports: d a1 +0.100" in r["evidence"] and "Contradicts: d a5 -0.100" in r["evidence"]
    assert "d a1 2 of 2; d a5 0 of 2" in r["evidence"]


def test_cosine_beats_euclidean_not_significant_and_holm_decides():
    r = claim(cos_euc({1: noise(0.1), 2: noise(0.1)}), IDS[1])
    assert r["verdict"] == NOT_SIGNIFICANT
    # each of three conditions at p = 1 - sqrt(48/50) = 0.0202 < 0.05, but Holm over three: 0.0606
    rows = cos_euc({1: [0.03, 0.04, 0.05], 2: [0.03, 0.04, 0.05], 3: [0.03, 0.04, 0.05]})
    t = found_tests(rows, IDS[1])
    assert t["p_value"].tolist() == pytest.approx([1 - math.sqrt(48 / 50)] * 3)
    assert t["p_holm"].tolist() == pytest.approx([3 * (1 - math.sqrt(48 / 50))] * 3)
    assert claim(rows, IDS[1])["verdict"] == NOT_SIGNIFICANT


def test_cosine_vs_euclidean_uses_the_report_k_and_pairs_by_run():
    rows = [dict(r, scorer=r["scorer"].replace("_k1", "_k10")) for r in cos_euc({1: sig(0.1)})]
    rows += cos_euc({1: sig(-0.1)})  # k = 1 says the opposite
    assert claim(rows, IDS[1], scorer="cosine_k10")["verdict"] == SUPPORTED
    assert claim(rows, IDS[1], scorer="euclidean_k10")["scorer"] == "cosine_k10, euclidean_k10"
    r = claim(rows, IDS[1], scorer="msp")  # not a kNN scorer: k = 1, and says so
    assert r["verdict"] == CONTRADICTED and "k = 1: the report's scorer msp is not a kNN distance" in r["evidence"]
    # a case with one side only is dropped; one case left -> no test
    r = claim(per_case([0.7, 0.7], scorer="cosine_k1") + per_case([0.6], scorer="euclidean_k1"), IDS[1])
    assert r["verdict"] == NOT_TESTABLE and "1 case with both sides" in r["evidence"]
    r = claim(per_case([0.7, 0.7, 0.7]), IDS[1])
    assert r["verdict"] == NOT_TESTABLE and "euclidean_k1" in r["evidence"]
    # a condition with one case is left out, and the evidence says so
    rows = cos_euc({1: sig(0.1), 2: [0.1]})
    r = claim(rows, IDS[1])
    assert r["verdict"] == SUPPORTED and r["n_tests"] == 1
    assert r["evidence"].endswith("Not tested: d a2: 1 case with both sides, a test needs 2.")


# --------------------------------------------------------------------------- 3. sphereface + euclidean


def sphere(aurocs_by_condition, scorer="euclidean_k1"):
    return [
        row
        for n_anomaly, values in aurocs_by_condition.items()
        for row in per_case(values, 0.01, n_anomaly=n_anomaly, method="sphereface", scorer=scorer)
    ]


def test_sphereface_below_chance_every_verdict():
    below, above = [0.5 + v for v in sig(-0.1)], [0.5 + v for v in sig(0.1)]
    r = claim(sphere({1: below, 2: below}), IDS[2])
    t = found_tests(sphere({1: below, 2: below}), IDS[2])
    assert r["verdict"] == SUPPORTED and t["comparison"].tolist() == ["AUROC − 0.5"] * 2
    assert t["effect"].tolist() == pytest.approx([-0.1, -0.1]) and t["p_value"].tolist() == pytest.approx([P_SIG] * 2)
    assert "d a1 0.400, d a2 0.400" in r["evidence"]
    assert claim(sphere({1: above, 2: above}), IDS[2])["verdict"] == CONTRADICTED
    r = claim(sphere({1: below, 2: above}), IDS[2])
    assert r["verdict"] == MIXED and "Supports: d a1" in r["evidence"] and "Contradicts: d a2" in r["evidence"]
    r = claim(sphere({1: [0.3, 0.4, 0.5], 2: [0.4, 0.5, 0.6]}), IDS[2])
    t = found_tests(sphere({1: [0.3, 0.4, 0.5], 2: [0.4, 0.5, 0.6]}), IDS[2])
    assert r["verdict"] == NOT_SIGNIFICANT
    assert t["p_value"].tolist() == pytest.approx([P_NOISE, 1.0])  # mean 0.4: t = -sqrt 3; mean 0.5: t = 0


def test_sphereface_uses_the_report_k_and_ignores_other_rows():
    below = [0.5 + v for v in sig(-0.1)]
    rows = sphere({1: below}, "euclidean_k10") + sphere({1: [0.9, 0.9, 0.9]})
    rows += per_case([0.1, 0.1, 0.1], method="sphereface", scorer="euclidean_k10", n_per_class="50")
    assert claim(rows, IDS[2], scorer="cosine_k10")["verdict"] == SUPPORTED
    assert claim(rows, IDS[2])["verdict"] == CONTRADICTED  # k = 1: 0.9
    r = claim(per_case([0.4] * 3, method="arcface", scorer="euclidean_k1"), IDS[2])
    assert r["verdict"] == NOT_TESTABLE and "sphereface" in r["evidence"]


# --------------------------------------------------------------------------- 4. fewer normal classes


def balance(distance_diffs, auroc_diffs, trap=50.0):
    """Dataset with classes 0..3, n_anomaly 1 and 2, 3 cases, one method and seed. Case k's anomaly
    at a1 is class k; at a2 classes k and k + 1. Class k's normalised distance at a1 is 3.0, at a2
    3.0 + the case's distance difference; class k + 1 at a2 sits at ``trap`` (a different class:
    comparing all anomaly classes would see it). AUROC: 0.9 at a1, 0.9 + the difference at a2."""
    dist, rows = [], []
    for k in range(3):
        dist += [
            cd(3.0, case=k, class_index=k),
            cd(1.0, case=k, class_index=(k + 1) % 4, role="normal"),
            cd(3.0 + distance_diffs[k], n_anomaly=2, case=k, class_index=k),
            cd(trap, n_anomaly=2, case=k, class_index=(k + 1) % 4),
        ]
        rows += [m(0.9, case=k), m(0.9 + auroc_diffs[k], n_anomaly=2, case=k)]
    return rows, dist


def test_fewer_normal_classes_supported_on_the_same_class():
    rows, dist = balance([0.9, 1.0, 1.1], sig(-0.1))
    r, t = claim(rows, IDS[3], dist), found_tests(rows, IDS[3], dist)
    assert r["verdict"] == SUPPORTED and r["scorer"] == "cosine_k1"
    assert t["comparison"].tolist() == ["anomaly distance a2 − a1 (same class)", "AUROC a2 − a1"]
    assert t["condition"].tolist() == ["d a1→a2"] * 2 and t["unit"].tolist() == ["× normal", "AUROC"]
    assert t["effect"].tolist() == pytest.approx([1.0, -0.1])
    # distance: sd 0.1, t = 1 / (0.1 / sqrt 3) = 10 sqrt 3 as SIG
    assert t["p_value"].tolist() == pytest.approx([P_SIG, P_SIG])
    assert "distance d a1→a2 3.00 → 4.00" in r["evidence"] and "AUROC d a1→a2 0.900 → 0.800" in r["evidence"]


def test_fewer_normal_classes_contradicted_mixed_and_not_significant():
    rows, dist = balance([-0.9, -1.0, -1.1], sig(0.1))
    assert claim(rows, IDS[3], dist)["verdict"] == CONTRADICTED
    # the other class at a2 (50) would make the mean anomaly distance grow: it must not count
    rows, dist = balance([-0.9, -1.0, -1.1], sig(-0.1))
    r = claim(rows, IDS[3], dist)
    assert r["verdict"] == MIXED
    assert "Supports: AUROC d a1→a2" in r["evidence"] and "Contradicts: distance d a1→a2" in r["evidence"]
    rows, dist = balance([-1.0, 0.0, 1.0], noise(-0.1))
    assert claim(rows, IDS[3], dist)["verdict"] == NOT_SIGNIFICANT


def test_fewer_normal_classes_falls_back_to_a_distance_scorer():
    rows, dist = balance([0.9, 1.0, 1.1], sig(-0.1))
    msp = [dict(d, scorer="msp", normalised=np.nan) for d in dist]
    r = claim(rows, IDS[3], dist + msp, scorer="msp")
    assert r["verdict"] == SUPPORTED and r["scorer"] == "cosine_k1"
    assert "cosine_k1 (the report's scorer msp has no normalised distances)" in r["evidence"]
    r = claim([m(0.9)], IDS[3], [cd(2.0), cd(3.0, dataset="e", n_anomaly=2)])
    assert r["verdict"] == NOT_TESTABLE and "two or more values of n_anomaly" in r["evidence"]


# --------------------------------------------------------------------------- 5. k of the k-nearest mean


def knn(gains, losses, k1=0.9, n_anomaly=1, dist="cosine"):
    """k = 1 at ``k1``; k = 10 and all at k1 + the case's gain or loss."""
    rows = per_case([k1] * 3, 0.01, n_anomaly=n_anomaly, scorer=f"{dist}_k1")
    rows += per_case([k1 + g for g in gains], 0.01, n_anomaly=n_anomaly, scorer=f"{dist}_k10")
    rows += per_case([k1 + x for x in losses], 0.01, n_anomaly=n_anomaly, scorer=f"{dist}_kall")
    return rows


def test_k10_beats_k1_supported_and_sizes_compared_with_the_study():
    rows = knn([0.006, 0.007, 0.008], sig(-0.1))  # +0.7 points, as the study; all 0.8 = -11 % of 0.9
    r, t = claim(rows, IDS[4]), found_tests(rows, IDS[4])
    assert r["verdict"] == SUPPORTED
    assert t["comparison"].tolist() == ["cosine_k10 − cosine_k1", "cosine_kall − cosine_k1"]
    # gain: t = 0.007 / (0.001 / sqrt 3), t^2 = 147; Holm: 2 * P_SIG, then max(that, p_gain)
    p_gain = 1 - math.sqrt(147 / 149)
    assert t["p_value"].tolist() == pytest.approx([p_gain, P_SIG])
    assert t["p_holm"].tolist() == pytest.approx([max(p_gain, 2 * P_SIG), 2 * P_SIG])
    half = T975 * 0.001 / math.sqrt(3) * 100
    assert f"k = 10 +0.70 points [{0.7 - half:+.2f}, {0.7 + half:+.2f}] (the study's +0.7 is inside)" in r["evidence"]
    assert "mean of all -11 % against k = 1 (the study's -10 %), AUROC 0.800" in r["evidence"]
    assert "below chance" not in r["evidence"]


def test_k10_contradicted_mixed_and_not_significant():
    assert claim(knn(sig(-0.1), sig(0.05)), IDS[4])["verdict"] == CONTRADICTED
    r = claim(knn(sig(-0.1), sig(-0.7)), IDS[4])  # the demo's pattern: k10 worse, all far worse
    assert r["verdict"] == MIXED
    assert "Supports: mean of all in d a1. Contradicts: k = 10 in d a1." in r["evidence"]
    assert "mean of all -78 % against k = 1" in r["evidence"] and "AUROC 0.200, below chance" in r["evidence"]
    assert "(the study's +0.7 is outside)" in r["evidence"]
    assert claim(knn(noise(0.0), noise(0.0)), IDS[4])["verdict"] == NOT_SIGNIFICANT


def test_k10_follows_the_scorer_distance_and_names_missing_k():
    rows = knn(sig(0.1), sig(-0.1), dist="euclidean") + knn(sig(-0.1), sig(0.1))
    assert claim(rows, IDS[4], scorer="euclidean_k5")["verdict"] == SUPPORTED
    assert claim(rows, IDS[4])["verdict"] == CONTRADICTED
    r = claim(rows, IDS[4], scorer="mahalanobis")
    assert (
        r["verdict"] == CONTRADICTED
        and "Distance cosine (the report's scorer mahalanobis is not a kNN distance)" in r["evidence"]
    )
    r = claim([m(0.8, scorer="cosine_k1"), m(0.81, scorer="cosine_k5"), m(0.7, scorer="cosine_kall")], IDS[4])
    assert r["verdict"] == NOT_TESTABLE
    assert "cosine_k10" in r["evidence"] and "k values of cosine in the tables: 1, 5, all" in r["evidence"]


# --------------------------------------------------------------------------- 6. small samples


def small(diffs_by_method, n_per_class="10", base=0.7):
    rows = per_case([base] * 3, 0.01, n_per_class=n_per_class)
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
    # the pattern: some methods better, one worse, one no different
    r = claim(
        small({"arcface": sig(0.1), "cosface": sig(0.1), "l2softmax": noise(0.0), "sphereface": sig(-0.1)}), IDS[5]
    )
    assert r["verdict"] == MIXED
    assert "Supports: l2softmax" not in r["evidence"] and "Supports: arcface at 10 +0.100" in r["evidence"]
    assert (
        "Contradicts: sphereface at 10 -0.100" in r["evidence"] and "Not significant: l2softmax at 10" in r["evidence"]
    )
    assert claim(small({"arcface": noise(0.1)}), IDS[5])["verdict"] == NOT_SIGNIFICANT


def test_small_samples_test_every_size_and_say_whether_mixup_was_on():
    rows = small({"arcface": sig(0.1)}, "10") + small({"arcface": sig(-0.1)}, "30")
    rows += small({"arcface": sig(-0.3)}, "all")  # the main runs do not count
    mix = {
        ("arcface", "10"): True,
        ("conventional", "10"): True,
        ("arcface", "30"): True,
        ("conventional", "30"): False,
    }
    r = claim(rows, IDS[5], mixup=mix)
    t = found_tests(rows, IDS[5], mixup=mix)
    assert r["verdict"] == MIXED and r["n_per_class"] == "10, 30"
    assert t["n_per_class"].tolist() == ["10", "30"] and t["outcome"].tolist() == [SUPPORTS, CONTRADICTS]
    assert "Mixup was on for conventional at 10, arcface at 10, arcface at 30 only." in r["evidence"]
    assert "Mixup was on for every method." in claim(rows, IDS[5], mixup={k: True for k in mix})["evidence"]
    assert "Mixup" not in claim(rows, IDS[5])["evidence"]


def test_small_samples_not_testable():
    r = claim(per_case([0.6] * 3) + per_case([0.7] * 3, method="arcface"), IDS[5])
    assert r["verdict"] == NOT_TESTABLE and "Every run uses all training images" in r["evidence"]
    r = claim(per_case([0.7] * 3, method="arcface", n_per_class="10"), IDS[5])
    assert r["verdict"] == NOT_TESTABLE and "no conventional" in r["evidence"]


# --------------------------------------------------------------------------- 1. no method best everywhere


def methods_table(by_condition):
    """Per condition, per method, the per-case AUROC."""
    return [
        row
        for n_anomaly, methods in by_condition.items()
        for method, values in methods.items()
        for row in per_case(values, 0.01, n_anomaly=n_anomaly, method=method)
    ]


TOP = [0.8, 0.8, 0.8]


def below(pattern):
    return [a - d for a, d in zip(TOP, pattern)]


def test_best_everywhere_supported_when_every_method_loses_somewhere():
    rows = methods_table(
        {
            1: {"arcface": TOP, "cosface": below(sig(0.1)), "sphereface": below(sig(0.1))},
            2: {"cosface": TOP, "arcface": below(sig(0.1)), "sphereface": below(sig(0.1))},
        }
    )
    r, t = claim(rows, IDS[0]), found_tests(rows, IDS[0])
    assert r["verdict"] == SUPPORTED
    assert t["comparison"].tolist() == [
        "arcface − cosface",
        "arcface − sphereface",
        "cosface − arcface",
        "cosface − sphereface",
    ]
    assert t["effect"].tolist() == pytest.approx([0.1] * 4) and t["p_holm"].tolist() == pytest.approx([4 * P_SIG] * 4)
    assert (t["outcome"] == SIGNIFICANT).all()
    assert "arcface (d a2), cosface (d a1), sphereface (d a1, d a2)" in r["evidence"]


def test_best_everywhere_contradicted_mixed_and_not_significant():
    everywhere = {"arcface": TOP, "cosface": below(sig(0.1)), "sphereface": below(sig(0.1))}
    r = claim(methods_table({1: everywhere, 2: everywhere}), IDS[0])
    assert r["verdict"] == CONTRADICTED
    assert "arcface is significantly better than every other method in every condition" in r["evidence"]
    # a1: arcface beats sphereface only; a2: nothing significant -> arcface and cosface never lose
    rows = methods_table(
        {
            1: {"arcface": TOP, "cosface": below(noise(0.1)), "sphereface": below(sig(0.1))},
            2: {"cosface": TOP, "arcface": below(noise(0.1)), "sphereface": below(noise(0.1))},
        }
    )
    r = claim(rows, IDS[0])
    assert r["verdict"] == MIXED
    assert "could still be best everywhere): arcface, cosface; beaten: sphereface (d a1)" in r["evidence"]
    # the case: a different best by mean in each condition, but no method shown to lose
    rows = methods_table(
        {
            1: {"arcface": TOP, "cosface": below(noise(0.001)), "sphereface": below(noise(0.1))},
            2: {"cosface": TOP, "arcface": below(noise(0.001)), "sphereface": below(noise(0.1))},
        }
    )
    r = claim(rows, IDS[0])
    assert r["verdict"] == NOT_SIGNIFICANT and "d a1: top arcface" in r["evidence"]


def test_best_everywhere_needs_two_conditions_and_complete_cases():
    rows = methods_table({1: {"arcface": TOP, "cosface": below(sig(0.1))}})
    r = claim(rows, IDS[0])
    assert r["verdict"] == NOT_TESTABLE and "Only one condition" in r["evidence"]
    assert claim(per_case(TOP) + per_case(TOP, n_anomaly=2), IDS[0])["verdict"] == NOT_TESTABLE
    # a case without every method is left out of that condition's tests
    rows = methods_table(
        {1: {"arcface": TOP, "cosface": below(sig(0.1))}, 2: {"arcface": TOP, "cosface": below(sig(0.1))}}
    )
    rows.append(m(0.99, n_anomaly=2, method="arcface", case=3))
    assert found_tests(rows, IDS[0])["n_cases"].tolist() == [3, 3]


# --------------------------------------------------------------------------- the main images per class


def test_claims_use_the_main_n_per_class():
    rows = cos_euc({1: sig(0.1), 2: sig(0.1)})
    only_500 = [dict(r, n_per_class="500") for r in rows]
    # default: "all" when present, else the largest size
    assert claim(only_500, IDS[1])["verdict"] == SUPPORTED
    assert claim(only_500, IDS[1])["n_per_class"] == "500"
    mixed_sizes = only_500 + [dict(r, n_per_class="all", value=1 - r["value"]) for r in rows]
    assert claim(mixed_sizes, IDS[1])["verdict"] == CONTRADICTED  # "all": cosine now lower
    assert claim(mixed_sizes, IDS[1], n_per_class="500")["verdict"] == SUPPORTED


def test_holm_is_taken_across_the_claims_tests():
    rows = small({"arcface": [0.03, 0.04, 0.05], "cosface": sig(0.1), "sphereface": noise(0.0)})
    t = found_tests(rows, IDS[5])
    np.testing.assert_allclose(t["p_holm"], holm(t["p_value"]))
    assert t["outcome"].tolist() == [SUPPORTS, SUPPORTS, UNDECIDED]
