"""The study's claims: verdicts and numbers on small tables worked out by hand."""

import math

import numpy as np
import pandas as pd
import pytest

from dmlbench.errors import DmlbenchError
from dmlbench.report.findings import (CLASS_DISTANCES_COLUMNS, FINDINGS_COLUMNS, METRICS_COLUMNS, NOT_SUPPORTED,
                               NOT_TESTABLE, SUPPORTED, findings, findings_markdown)
from tests.helpers.synthetic_tables import class_distances_frame, metrics_frame

IDS = ["no-method-best-everywhere", "cosine-beats-euclidean", "sphereface-euclidean-below-chance",
       "fewer-normal-larger-distance", "k10-beats-k1", "metric-learning-beats-conventional-small-samples"]


# --------------------------------------------------------------------------- builders


def m(value, dataset="d", n_anomaly=1, method="conventional", n_per_class="all", seed=0, case=0,
      scorer="cosine_k1", metric="auroc"):
    return dict(dataset=dataset, n_anomaly=n_anomaly, method=method, n_per_class=n_per_class, seed=seed,
                case=case, scorer=scorer, metric=metric, value=value)


def cd(normalised, dataset="d", n_anomaly=1, role="anomaly", method="conventional", n_per_class="all", seed=0,
       case=0, scorer="cosine_k1"):
    return dict(dataset=dataset, n_anomaly=n_anomaly, method=method, n_per_class=n_per_class, seed=seed, case=case,
                scorer=scorer, role=role, normalised=normalised)


def metrics_df(rows):
    return pd.DataFrame(rows, columns=METRICS_COLUMNS)


def distances_df(rows=()):
    return pd.DataFrame(list(rows), columns=CLASS_DISTANCES_COLUMNS)


def claim(metrics_rows, claim_id, distance_rows=(), scorer="cosine_k1"):
    df = findings(metrics_df(metrics_rows), distances_df(distance_rows), scorer=scorer)
    assert list(df["id"]) == IDS
    return df.set_index("id").loc[claim_id]


# --------------------------------------------------------------------------- table shape


def test_columns_ids_and_types_on_the_synthetic_tables():
    df = findings(metrics_frame(), class_distances_frame())
    assert list(df.columns) == FINDINGS_COLUMNS
    assert list(df["id"]) == IDS
    assert set(df["verdict"]) <= {SUPPORTED, NOT_SUPPORTED, NOT_TESTABLE}
    assert df["number"].dtype == np.float64 and df["n"].dtype == np.int64
    assert (df["evidence"].str.len() > 0).all() and (df["rule"].str.len() > 0).all()
    # not testable <=> NaN number
    assert (df["number"].isna() == (df["verdict"] == NOT_TESTABLE)).all()
    v = df.set_index("id")
    # arcface +0.2 wins both conditions; cosine is 0.1 above euclidean everywhere; no sphereface;
    # one n_anomaly per dataset; no k10; at n = 50 arcface beats conventional by 0.2
    assert (v.loc[IDS[0], "verdict"], v.loc[IDS[0], "number"]) == (NOT_SUPPORTED, 1.0)
    assert v.loc[IDS[1], "verdict"] == SUPPORTED and v.loc[IDS[1], "number"] == pytest.approx(0.1)
    assert v.loc[IDS[2], "verdict"] == NOT_TESTABLE
    assert v.loc[IDS[3], "verdict"] == NOT_TESTABLE
    assert v.loc[IDS[4], "verdict"] == NOT_TESTABLE
    assert v.loc[IDS[5], "verdict"] == SUPPORTED and v.loc[IDS[5], "number"] == pytest.approx(1.0)


def test_missing_columns_are_named():
    good = metrics_df([m(0.5)])
    with pytest.raises(DmlbenchError, match="'value'"):
        findings(good.drop(columns="value"), distances_df())
    with pytest.raises(DmlbenchError, match=r"\['role', 'normalised'\]"):
        findings(good, distances_df().drop(columns=["role", "normalised"]))
    with pytest.raises(DmlbenchError, match="'evidence'"):
        findings_markdown(pd.DataFrame({"verdict": [], "claim": []}))


def test_markdown_lists_every_claim_with_its_verdict_and_evidence():
    df = findings(metrics_frame(), class_distances_frame())
    text = findings_markdown(df)
    lines = text.strip().split("\n")
    assert len(lines) == 6
    for line, row in zip(lines, df.itertuples()):
        assert line == f"- **{row.verdict}** — {row.claim.rstrip('.')}: {row.evidence}"
    for c in df["claim"]:
        assert c.rstrip(".") in text
    assert "Cosine distance beats Euclidean distance" in text and "**not testable**" in text


# --------------------------------------------------------------------------- 1. no method best everywhere


def test_best_method_differs_between_conditions():
    rows = [m(0.88, method="arcface", case=0), m(0.92, method="arcface", case=1),       # a1: arcface 0.90
            m(0.80, case=0), m(0.80, case=1),                                           #     conventional 0.80
            m(0.70, n_anomaly=2, method="arcface"), m(0.85, n_anomaly=2)]               # a2: conventional 0.85
    r = claim(rows, IDS[0])
    assert r["verdict"] == SUPPORTED and r["number"] == 2 and r["n"] == 2
    assert "d a1 arcface 0.900" in r["evidence"] and "d a2 conventional 0.850" in r["evidence"]


def test_same_best_method_everywhere_is_not_supported_and_other_rows_do_not_count():
    rows = [m(0.9, method="arcface"), m(0.8), m(0.9, n_anomaly=2, method="arcface"), m(0.8, n_anomaly=2),
            # would make conventional best at a2 if n_per_class 50, another scorer or another metric counted
            m(0.99, n_anomaly=2, n_per_class="50"), m(0.99, n_anomaly=2, scorer="euclidean_k1"),
            m(0.99, n_anomaly=2, metric="aupr_out")]
    r = claim(rows, IDS[0])
    assert r["verdict"] == NOT_SUPPORTED and r["number"] == 1
    assert "arcface has the highest mean AUROC" in r["evidence"]
    # the scorer argument picks the scorer
    r = claim(rows + [m(0.5, method="arcface", n_anomaly=2, scorer="euclidean_k1"),
                      m(0.9, method="arcface", scorer="euclidean_k1"), m(0.8, scorer="euclidean_k1")],
              IDS[0], scorer="euclidean_k1")
    assert r["verdict"] == SUPPORTED and r["number"] == 2


def test_best_method_with_one_condition_is_not_testable():
    r = claim([m(0.9, method="arcface"), m(0.8)], IDS[0])
    assert r["verdict"] == NOT_TESTABLE and math.isnan(r["number"])
    assert "Only one condition (d a1)" in r["evidence"]
    r = claim([m(0.9), m(0.8, n_anomaly=2)], IDS[0])
    assert r["verdict"] == NOT_TESTABLE and "Only one method" in r["evidence"]


# --------------------------------------------------------------------------- 2. cosine vs euclidean


def test_cosine_better_in_nine_of_ten_pairs():
    rows = []
    for case in range(10):
        method = "arcface" if case < 5 else "conventional"
        rows += [m(0.80, method=method, case=case, scorer="euclidean_k1"),
                 m(0.76 if case == 9 else 0.86, method=method, case=case, scorer="cosine_k1")]
    r = claim(rows, IDS[1])
    # mean (9 * 0.06 - 0.04) / 10 = 0.05; exact Wilcoxon: W- = 1 of n = 10 -> p = 2 * 2 / 1024
    assert r["verdict"] == SUPPORTED and r["number"] == pytest.approx(0.05) and r["n"] == 10
    assert r["p_value"] == pytest.approx(4 / 1024)
    assert "90%" in r["evidence"] and "holds for every method" in r["evidence"]


def test_cosine_ahead_on_average_but_not_significant_names_the_method_where_it_fails():
    rows = []
    for case in range(5):
        rows += [m(0.80, method="arcface", case=case, scorer="euclidean_k1"),
                 m(0.90, method="arcface", case=case, scorer="cosine_k1"),
                 m(0.80, method="sphereface", case=case, scorer="euclidean_k1"),
                 m(0.78, method="sphereface", case=case, scorer="cosine_k1")]
    r = claim(rows, IDS[1])
    # mean (5 * 0.1 - 5 * 0.02) / 10 = 0.04 > 0, but W- = 1 + ... + 5 = 15 -> p = 0.21875
    assert r["verdict"] == NOT_SUPPORTED and r["number"] == pytest.approx(0.04)
    assert r["p_value"] == pytest.approx(0.21875)
    assert "does not hold for sphereface (-0.020)" in r["evidence"]


def test_cosine_worse_is_not_supported_and_unpaired_rows_are_dropped():
    rows = [m(0.7, case=c, scorer="cosine_k1") for c in range(6)]
    rows += [m(0.8, case=c, scorer="euclidean_k1") for c in range(7)]  # case 6 has no cosine partner
    r = claim(rows, IDS[1])
    assert r["verdict"] == NOT_SUPPORTED and r["number"] == pytest.approx(-0.1) and r["n"] == 6


def test_cosine_vs_euclidean_needs_both_scorers():
    r = claim([m(0.7, case=c) for c in range(3)], IDS[1])
    assert r["verdict"] == NOT_TESTABLE and math.isnan(r["number"]) and "euclidean_k1" in r["evidence"]


# --------------------------------------------------------------------------- 3. sphereface + euclidean


def test_sphereface_euclidean_below_chance():
    rows = [m(0.44, method="sphereface", scorer="euclidean_k1", case=0),
            m(0.46, method="sphereface", scorer="euclidean_k1", case=1),   # a1 mean 0.45
            m(0.60, method="sphereface", scorer="euclidean_k1", n_anomaly=2),
            m(0.10, method="sphereface", scorer="euclidean_k1", n_per_class="50"),  # ignored
            m(0.30, method="arcface", scorer="euclidean_k1")]                       # ignored
    r = claim(rows, IDS[2])
    assert r["verdict"] == SUPPORTED and r["number"] == pytest.approx(0.45) and r["n"] == 2
    assert "1 of 2 conditions" in r["evidence"] and "(d a1)" in r["evidence"]


def test_sphereface_euclidean_above_chance_and_untestable():
    rows = [m(0.55, method="sphereface", scorer="euclidean_k1"),
            m(0.60, method="sphereface", scorer="euclidean_k1", n_anomaly=2)]
    r = claim(rows, IDS[2])
    assert r["verdict"] == NOT_SUPPORTED and r["number"] == pytest.approx(0.55)
    r = claim([m(0.4, method="arcface", scorer="euclidean_k1")], IDS[2])
    assert r["verdict"] == NOT_TESTABLE and "sphereface" in r["evidence"]
    r = claim([m(0.4, method="sphereface")], IDS[2])
    assert r["verdict"] == NOT_TESTABLE and "euclidean_k1" in r["evidence"]


# --------------------------------------------------------------------------- 4. anomaly distances by n_anomaly


def test_distance_grows_with_n_anomaly():
    dist = [cd(1.5, case=0), cd(2.5, case=1, method="arcface"), cd(9.0, role="normal"),  # a1: anomalies 2.0
            cd(3.0, n_anomaly=5), cd(np.nan, n_anomaly=5, case=1),                      # a5: 3.0 (NaN dropped)
            cd(0.1, n_anomaly=5, scorer="euclidean_k1"), cd(0.1, n_anomaly=5, n_per_class="50")]
    r = claim([m(0.5)], IDS[3], dist)
    assert r["verdict"] == SUPPORTED and r["number"] == pytest.approx(1.5) and r["n"] == 1
    assert "a1 2.00, a5 3.00" in r["evidence"]


def test_distance_must_grow_in_every_dataset_and_number_is_the_lowest_ratio():
    dist = [cd(2.0), cd(3.0, n_anomaly=5),
            cd(1.0, dataset="e"), cd(1.2, dataset="e", n_anomaly=3),
            cd(7.0, dataset="single")]                      # one n_anomaly: skipped
    r = claim([m(0.5)], IDS[3], dist)
    assert r["verdict"] == SUPPORTED and r["number"] == pytest.approx(1.2) and r["n"] == 2
    assert "single" in r["detail"]
    # decreasing
    r = claim([m(0.5)], IDS[3], [cd(3.0), cd(2.0, n_anomaly=5)])
    assert r["verdict"] == NOT_SUPPORTED and r["number"] == pytest.approx(2 / 3)
    # up then down: the end points grow but the means are not monotone
    r = claim([m(0.5)], IDS[3], [cd(2.0), cd(3.0, n_anomaly=2), cd(2.5, n_anomaly=3)])
    assert r["verdict"] == NOT_SUPPORTED and r["number"] == pytest.approx(1.25)
    assert "not increasing" in r["evidence"]


def test_distance_with_one_n_anomaly_per_dataset_is_not_testable():
    r = claim([m(0.5)], IDS[3], [cd(2.0), cd(3.0, dataset="e", n_anomaly=2)])
    assert r["verdict"] == NOT_TESTABLE and math.isnan(r["number"]) and "two or more values" in r["evidence"]
    r = claim([m(0.5)], IDS[3], [])
    assert r["verdict"] == NOT_TESTABLE


# --------------------------------------------------------------------------- 5. k of the k-min mean


def test_k10_beats_k1_and_kall_is_worse():
    rows = []
    for case in range(2):
        rows += [m(0.80, case=case, scorer="cosine_k1"), m(0.81, case=case, scorer="cosine_k10"),
                 m(0.70, case=case, scorer="cosine_kall"),
                 m(0.50, case=case, scorer="euclidean_k10")]  # another distance: ignored
    r = claim(rows, IDS[4])
    assert r["verdict"] == SUPPORTED and r["number"] == pytest.approx(1.0) and r["n"] == 2
    assert "-10.00 points" in r["evidence"] and "close to the study's +0.7" in r["evidence"]


def test_k10_not_better_than_k1_and_the_distance_follows_the_scorer():
    rows = [m(0.80, scorer="euclidean_k1"), m(0.79, scorer="euclidean_k10"), m(0.70, scorer="euclidean_kall")]
    r = claim(rows, IDS[4], scorer="euclidean_k1")
    assert r["verdict"] == NOT_SUPPORTED and r["number"] == pytest.approx(-1.0)
    assert "euclidean_k10 − euclidean_k1" in r["evidence"]
    rows = [m(0.80, scorer="cosine_k1"), m(0.83, scorer="cosine_k10"), m(0.85, scorer="cosine_kall")]
    r = claim(rows, IDS[4])
    assert r["verdict"] == NOT_SUPPORTED and r["number"] == pytest.approx(3.0)
    assert "larger than the study's" in r["evidence"]


def test_k10_missing_names_the_k_values_present():
    rows = [m(0.80, scorer="cosine_k1"), m(0.81, scorer="cosine_k5"), m(0.70, scorer="cosine_kall")]
    r = claim(rows, IDS[4])
    assert r["verdict"] == NOT_TESTABLE and math.isnan(r["number"])
    assert "cosine_k10" in r["evidence"] and "k values of cosine in the tables: 1, 5, all" in r["evidence"]
    r = claim([m(0.5, scorer="msp")], IDS[4], scorer="msp")
    assert r["verdict"] == NOT_TESTABLE and "not a k-nearest-distance scorer" in r["evidence"]


# --------------------------------------------------------------------------- 6. small samples


def test_metric_learning_beats_conventional_at_the_smallest_n_per_class():
    rows = []
    for seed in range(2):
        rows += [m(0.60, n_per_class="10", seed=seed),
                 m(0.70, n_per_class="10", seed=seed, method="arcface"),     # +0.10
                 m(0.65, n_per_class="10", seed=seed, method="cosface"),     # +0.05
                 m(0.50, n_per_class="10", seed=seed, method="sphereface"),  # -0.10
                 # larger n_per_class: conventional wins; must not count
                 m(0.90, n_per_class="100", seed=seed), m(0.50, n_per_class="100", seed=seed, method="arcface")]
    r = claim(rows, IDS[5])
    assert r["verdict"] == SUPPORTED and r["number"] == pytest.approx(2 / 3) and r["n"] == 3
    assert "n_per_class 10" in r["evidence"] and "2 of 3" in r["evidence"]
    assert "arcface +0.100" in r["evidence"] and "sphereface -0.100" in r["evidence"]


def test_half_of_the_methods_is_not_a_majority():
    rows = [m(0.60, n_per_class="5"), m(0.70, n_per_class="5", method="arcface"),
            m(0.55, n_per_class="5", method="cosface")]
    r = claim(rows, IDS[5])
    assert r["verdict"] == NOT_SUPPORTED and r["number"] == pytest.approx(0.5)


def test_small_samples_not_testable():
    r = claim([m(0.6), m(0.7, method="arcface")], IDS[5])
    assert r["verdict"] == NOT_TESTABLE and "n_per_class all" in r["evidence"]
    r = claim([m(0.7, n_per_class="10", method="arcface")], IDS[5])
    assert r["verdict"] == NOT_TESTABLE and "No conventional" in r["evidence"]
    r = claim([m(0.7, n_per_class="10")], IDS[5])
    assert r["verdict"] == NOT_TESTABLE and "Only conventional" in r["evidence"]
