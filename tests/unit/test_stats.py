"""Intervals of a mean, sign-flip tests, overlapping cases, Holm, Friedman/Nemenyi, Wilcoxon and the
ranking/summary tables, on worked examples."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sst

from dmlbench.errors import DmlbenchError
from dmlbench.stats import (
    RANKING_COLUMNS,
    SUMMARY_COLUMNS,
    average_ranks,
    band_p,
    case_design,
    case_test,
    cases_to_reach,
    friedman,
    holm,
    independent_cases,
    mean_interval,
    mean_test,
    min_signflip_p,
    nemenyi_cd,
    ranking_table,
    signflip_p,
    studentised_bootstrap_interval,
    summary_table,
    t_interval,
    wilcoxon_p,
)

# --------------------------------------------------------------------------- Holm


def test_holm_worked_example():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> monotone: 0.06
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    # NaN does not count as a test: m = 2
    np.testing.assert_allclose(holm([np.nan, 0.02, 0.5]), [np.nan, 0.04, 0.5])
    np.testing.assert_allclose(holm([0.6, 0.7]), [1.0, 1.0])  # capped at 1
    assert holm([]).shape == (0,) and np.isnan(holm([np.nan])).all()


def test_holm_rejects_like_the_step_down_procedure():
    rng = np.random.default_rng(0)
    for _ in range(50):
        p = rng.random(6) ** 3
        alpha, m = 0.05, len(p)
        reject = np.zeros(m, bool)
        for i, j in enumerate(np.argsort(p)):  # step down until the first acceptance
            if p[j] > alpha / (m - i):
                break
            reject[j] = True
        np.testing.assert_array_equal(holm(p) <= alpha, reject)


# --------------------------------------------------------------------------- t-test of a mean


def test_mean_test_with_two_degrees_of_freedom_in_closed_form():
    # Student t with 2 df: P(|T| > t) = 1 - t / sqrt(t^2 + 2); its (1 + level) / 2 quantile is
    # (2q - 1) / sqrt(2 q (1 - q)) with q = 0.975 -> 4.3027.
    r = mean_test([3.0, 4.0, 5.0])  # mean 4, sd 1, se 1/sqrt(3), t = 4 sqrt(3), t^2 = 48
    q = 0.975
    half = (2 * q - 1) / np.sqrt(2 * q * (1 - q)) / np.sqrt(3)
    assert (r.mean, r.n) == (4.0, 3)
    assert r.statistic == pytest.approx(4 * np.sqrt(3))
    assert r.p == pytest.approx(1 - np.sqrt(48 / 50))
    assert (r.ci_low, r.ci_high) == (pytest.approx(4 - half), pytest.approx(4 + half))
    # against another null: t = (4 - 3) sqrt(3), t^2 = 3 -> p = 1 - sqrt(3 / 5); the interval does not move
    r = mean_test([3.0, 4.0, 5.0], null=3.0)
    assert r.statistic == pytest.approx(np.sqrt(3)) and r.p == pytest.approx(1 - np.sqrt(3 / 5))
    assert r.ci_low == pytest.approx(4 - half)
    # a 90 % interval: q = 0.95 -> 2.9200
    q = 0.95
    assert mean_test([3.0, 4.0, 5.0], level=0.9).ci_high == pytest.approx(
        4 + (2 * q - 1) / np.sqrt(2 * q * (1 - q)) / np.sqrt(3)
    )


def test_mean_test_matches_scipy_and_handles_no_spread():
    x = np.array([0.02, -0.01, 0.05, 0.03, 0.00])
    r, ref = mean_test(x), sst.ttest_1samp(x, 0.0)
    assert r.statistic == pytest.approx(ref.statistic) and r.p == pytest.approx(ref.pvalue)
    lo, hi = ref.confidence_interval(0.95)
    assert (r.ci_low, r.ci_high) == (pytest.approx(lo), pytest.approx(hi))
    # equal values: no spread, the interval is the value; p 1 at the null, else 0
    r = mean_test([0.1, 0.1, 0.1])
    assert (r.ci_low, r.ci_high, r.p, r.statistic) == (0.1, 0.1, 0.0, np.inf)
    r = mean_test([0.5, 0.5], null=0.5)
    assert (r.p, r.statistic) == (1.0, 0.0)
    with pytest.raises(ValueError, match="at least 2"):
        mean_test([0.3])


# --------------------------------------------------------------------------- ranks, Friedman, Nemenyi


def test_average_ranks_best_is_one_and_ties_average():
    values = np.array([[0.9, 0.8, 0.7], [0.6, 0.6, 0.9]])
    # block 1: ranks 1, 2, 3; block 2: 2.5, 2.5, 1
    np.testing.assert_allclose(average_ranks(values), [1.75, 2.25, 2.0])


def test_nemenyi_cd_against_the_published_table():
    # Demsar (2006), table 5(a): q_0.05 = 2.850 for k = 6, 1.960 for k = 2
    for n in (1, 10, 30):
        assert nemenyi_cd(6, n) == pytest.approx(2.850 * np.sqrt(6 * 7 / (6 * n)), rel=2e-4)
    assert nemenyi_cd(2, 4) == pytest.approx(1.960 * np.sqrt(2 * 3 / 24), rel=2e-4)
    assert np.isnan(nemenyi_cd(1, 5)) and np.isnan(nemenyi_cd(3, 0))


def test_friedman_statistic_is_scipys_and_its_p_a_permutation_p():
    rng = np.random.default_rng(1)
    values = rng.random((12, 4)) + np.array([0.0, 0.1, 0.3, 0.05])
    stat, p, note = friedman(values)
    ref = sst.friedmanchisquare(*values.T)
    assert stat == pytest.approx(ref.statistic) and note == ""
    # the Friedman statistic from the average ranks (no ties): 12N/(k(k+1)) (sum R^2 - k(k+1)^2/4)
    r, n, k = average_ranks(values), 12, 4
    assert stat == pytest.approx(12 * n / (k * (k + 1)) * (np.sum(r**2) - k * (k + 1) ** 2 / 4))
    # 24^11 arrangements: Monte Carlo, seeded, and close to the chi-square approximation at 12 blocks
    assert p == friedman(values)[1] and p == pytest.approx(ref.pvalue, abs=0.02)


def test_friedman_exact_on_two_blocks_by_hand():
    """Two blocks, three methods, the same order in both: rank sums 2, 4, 6 (centre 4), S = 8. With the
    first block fixed, the second's 3! = 6 arrangements give S = 8 (same order) or 6, 6, 2, 2, 0: p = 1/6."""
    stat, p, _ = friedman(np.array([[0.9, 0.8, 0.7], [0.6, 0.5, 0.4]]))
    assert p == pytest.approx(1 / 6) and stat == pytest.approx(4.0)  # chi-square 12N/(k(k+1)) sum(R-2)^2 = 4


def test_wilcoxon_is_exact_over_sign_patterns():
    # no ties: scipy's exact distribution
    x, y = np.array([0.3, 0.1, 0.5, 0.2, 0.7, 0.35]), np.array([0.05, 0.2, 0.1, 0.0, 0.1, 0.4])
    assert wilcoxon_p(x, y) == pytest.approx(sst.wilcoxon(x, y, method="exact").pvalue)
    # five pairs all one way: 2 / 32 = 0.0625, the smallest p five cases allow
    assert wilcoxon_p([1, 2, 3, 4, 5], [0, 0, 0, 0, 0]) == pytest.approx(0.0625)
    # ties in |d| (mid-ranks 1.5, 1.5, 3): signed ranks 1.5, 1.5, -3 sum 0; every pattern reaches |0|: p = 1
    assert wilcoxon_p([0.1, 0.1, -0.2], [0, 0, 0]) == 1.0


def test_friedman_and_wilcoxon_degenerate_cases():
    assert np.isnan(friedman(np.ones((5, 2)))[0]) and "at least 3 methods" in friedman(np.ones((5, 2)))[2]
    assert "at least 2 complete" in friedman(np.ones((1, 3)))[2]
    stat, p, note = friedman(np.ones((4, 3)))
    assert np.isnan(stat) and np.isnan(p) and "ties" in note
    assert wilcoxon_p([0.5, 0.6], [0.5, 0.6]) == 1.0


# --------------------------------------------------------------------------- sign-flip tests


def test_signflip_p_by_hand():
    # |d| sum 6.5; |T*| >= 5.5 only when nothing or the -0.5 is flipped, and the mirrors: 4 / 16
    assert signflip_p([1.0, 2.0, 3.0, -0.5]) == pytest.approx(0.25)
    # one-sided: T = 5.5; T* >= 5.5 for the observed pattern and the one flipping -0.5: 2 / 16
    assert signflip_p([1.0, 2.0, 3.0, -0.5], alternative="greater") == pytest.approx(2 / 16)
    assert signflip_p([1.0, 2.0, 3.0, -0.5], alternative="less") == pytest.approx(15 / 16)
    # against a null: the values minus the null
    assert signflip_p([1.5, 2.5, 3.5, 0.0], null=0.5) == pytest.approx(0.25)
    # five of one sign: 2 / 32, the smallest two-sided p of five cases
    assert signflip_p([0.1, 0.2, 0.3, 0.4, 0.5]) == pytest.approx(0.0625) == min_signflip_p(5)
    assert signflip_p([0.0, 0.0, 0.0]) == 1.0
    # rows: one p per row, as for each row alone
    rows = np.array([[1.0, 2.0, 3.0, -0.5], [1.0, -1.0, 1.0, -1.0]])
    np.testing.assert_allclose(signflip_p(rows), [0.25, 1.0])


def test_signflip_p_monte_carlo_above_sixteen_cases_is_seeded_and_close_to_exact():
    x = np.random.default_rng(4).normal(0.4, 1.0, size=20)
    p = signflip_p(x)
    assert p == signflip_p(x)  # seeded
    # 20 cases of one sign: 2 / 2^20 exactly, but Monte Carlo counts the observed pattern: 1 / 10,001
    assert signflip_p(np.abs(x)) == pytest.approx(1 / 10_001)
    # against the t-test on data that suit it: close
    assert p == pytest.approx(sst.ttest_1samp(x, 0.0).pvalue, abs=0.03)


def test_cases_to_reach():
    assert min_signflip_p(5) == 0.0625 and min_signflip_p(6) == 0.03125 and min_signflip_p(0) == 1.0
    assert cases_to_reach(0.05) == 6  # 2 / 64 = 0.031; 5 cases: 0.0625
    assert cases_to_reach(0.05 / 6) == 8  # 2 / 256 = 0.0078 < 0.0083
    assert cases_to_reach(0.05, "greater") == 5  # 1 / 32 = 0.031


def test_band_p_supports_inside_and_contradicts_outside():
    inside = np.array([0.6, 0.7, 0.8, 0.65, 0.75])  # all within (0.2, 1.2)
    p, side = band_p(inside, 0.2, 1.2)
    assert side and p == pytest.approx(1 / 32)  # both one-sided tests at their smallest p
    p, side = band_p(-inside, 0.2, 1.2)
    assert not side and p == pytest.approx(2 / 32)  # twice the one-sided p of "below 0.2"
    # a mean inside but values on both sides of an edge: above 0.2, d - 0.2 = -0.1 (x3), +0.7 (x3),
    # T = 1.8, reached only by the 8 patterns that flip some of the -0.1: p = 8 / 64, not shown
    p, side = band_p(np.array([0.1, 0.9, 0.1, 0.9, 0.1, 0.9]), 0.2, 1.2)
    assert side and p == pytest.approx(8 / 64)


# --------------------------------------------------------------------------- intervals


def test_t_interval_and_mean_interval_small_n():
    # 2-4 cases: the t-interval (3, 4, 5: mean 4, sd 1, t_0.975,2 = 4.3027)
    half = 4.302652729911275 / np.sqrt(3)
    assert mean_interval([3.0, 4.0, 5.0]) == (pytest.approx(4 - half), pytest.approx(4 + half))
    assert t_interval(np.array([3.0, 4.0, 5.0]))[0] == pytest.approx(4 - half)
    lo, hi = mean_interval([0.7])
    assert np.isnan(lo) and np.isnan(hi)  # one case: no interval
    assert mean_interval([0.7] * 6) == (0.7, 0.7)


def test_mean_interval_from_five_cases_contains_the_t_interval_and_follows_skew():
    x = np.array([0.1, 0.12, 0.11, 0.13, 0.6])  # one case far above: right skew
    lo, hi = mean_interval(x)
    tlo, thi = t_interval(x)
    blo, bhi = studentised_bootstrap_interval(x)
    assert (lo, hi) == (pytest.approx(min(tlo, blo)), pytest.approx(max(thi, bhi)))
    assert lo <= tlo and hi >= thi
    # five values: every one of the 126 distinct resamples enumerated, no seed involved
    assert studentised_bootstrap_interval(x) == studentised_bootstrap_interval(x[[4, 0, 1, 2, 3]])
    # rows give the intervals of each row
    rows = np.array([x, x + 1])
    np.testing.assert_allclose(np.array(mean_interval(rows)).T, [(lo, hi), (lo + 1, hi + 1)])


# --------------------------------------------------------------------------- overlapping cases


def test_independent_cases_of_rotations():
    assert independent_cases(range(5), 1, 10) == [0, 1, 2, 3, 4]
    assert independent_cases(range(5), 5, 10) == [0]  # cases 0..4 at a5: all share class 4
    assert independent_cases(range(10), 5, 10) == [0, 5]
    assert independent_cases(range(10), 3, 10) == [0, 3, 6]  # 9 = {9, 0, 1} wraps onto 0
    assert independent_cases(range(10), 2, 10) == [0, 2, 4, 6, 8]
    assert independent_cases([0, 2, 4], 2) == [0, 2, 4]  # without C: no wrap


def test_case_design_rule():
    d = case_design(range(5), 1, 10)
    assert (d.tested, d.exploratory, d.note) == ((0, 1, 2, 3, 4), False, "")
    d = case_design(range(5), 5, 10)
    assert d.exploratory and d.n_independent == 1 and d.tested == (0, 1, 2, 3, 4)
    assert "the 5 cases share anomaly classes and only 1 are disjoint" in d.note
    d = case_design(range(20), 3, 20)  # 6 disjoint: enough for 2 / 64
    assert d.tested == (0, 3, 6, 9, 12, 15) and not d.exploratory
    assert d.note == "on the 6 of 20 cases whose anomaly classes are disjoint"


def test_case_test_decides_by_sign_flip_and_shows_the_t_test():
    values = pd.Series([0.05] * 9 + [-0.01], index=range(10))
    r = case_test(values, 1, 10)
    assert r.p == pytest.approx(4 / 1024) and r.p_t == pytest.approx(sst.ttest_1samp(values, 0.0).pvalue)
    assert r.effect == pytest.approx(0.044) and r.n == 10 and r.min_p == pytest.approx(2 / 1024)
    assert (r.ci_low, r.ci_high) == pytest.approx(mean_interval(values.to_numpy()))
    r = case_test(pd.Series([0.45, 0.4, 0.42, 0.38, 0.41]), 1, null=0.5)
    assert r.effect == pytest.approx(-0.088) and r.p == pytest.approx(0.0625)


# --------------------------------------------------------------------------- tables


def _metrics(methods=("arcface", "conventional", "cosface"), cases=3, seeds=(0, 1), shift=None):
    rng = np.random.default_rng(3)
    shift = shift or {m: 0.05 * i for i, m in enumerate(methods)}
    rows = []
    for method in methods:
        for seed in seeds:
            for case in range(cases):
                for scorer in ("cosine_k1", "lof"):
                    for metric in ("auroc", "fpr95"):
                        rows.append(
                            dict(
                                dataset="d",
                                n_anomaly=1,
                                method=method,
                                n_per_class="all",
                                seed=seed,
                                case=case,
                                scorer=scorer,
                                metric=metric,
                                value=float(0.6 + shift[method] + 0.1 * rng.random()),
                            )
                        )
    return pd.DataFrame(rows)


def test_ranking_table_blocks_are_case_means():
    metrics = _metrics(cases=5)
    table = ranking_table(metrics)
    assert list(table.columns) == RANKING_COLUMNS
    assert len(table) == 2 * 3  # 2 scorers x 3 methods (AUROC only)
    one = table[table.scorer == "cosine_k1"].set_index("method")
    # seeds averaged within a case: the blocks are the 5 cases, not the 10 (case, seed) pairs
    wide = (
        metrics[(metrics.metric == "auroc") & (metrics.scorer == "cosine_k1")]
        .pivot_table(index="case", columns="method", values="value", aggfunc="mean")
        .sort_index()
    )
    np.testing.assert_allclose(one.loc[wide.columns, "avg_rank"], sst.rankdata(-wide.to_numpy(), axis=1).mean(0))
    stat, p, _ = friedman(wide.to_numpy())
    assert one["friedman_statistic"].eq(stat).all() and one["friedman_p"].eq(p).all()
    assert stat == pytest.approx(sst.friedmanchisquare(*wide.to_numpy().T).statistic)
    assert (one["n_blocks"] == 5).all() and (one["n_methods"] == 3).all() and not one["cases_overlap"].any()
    assert one["cd"].iloc[0] == pytest.approx(nemenyi_cd(3, 5))
    p = [wilcoxon_p(wide[m], wide["conventional"]) for m in ("arcface", "cosface")]
    np.testing.assert_allclose(one.loc[["arcface", "cosface"], "wilcoxon_p"], p)
    np.testing.assert_allclose(one.loc[["arcface", "cosface"], "wilcoxon_p_holm"], holm(p))
    assert np.isnan(one.loc["conventional", "wilcoxon_p"]) and np.isnan(one.loc["conventional", "wilcoxon_p_holm"])
    assert (one["note"] == "").all()


def test_ranking_table_corrects_within_a_table_and_flags_overlapping_cases():
    """Holm spans the conditions of one (n_per_class, scorer): the Friedman tests once per
    condition, the Wilcoxon tests all together. At a2 consecutive cases share a class."""
    metrics = pd.concat([_metrics(cases=5), _metrics(cases=5).assign(n_anomaly=2)], ignore_index=True)
    table = ranking_table(metrics)
    cos = table[table.scorer == "cosine_k1"]
    per_condition = cos.drop_duplicates("n_anomaly")
    np.testing.assert_allclose(per_condition["friedman_p_holm"], holm(per_condition["friedman_p"]))
    np.testing.assert_allclose(cos["wilcoxon_p_holm"], holm(cos["wilcoxon_p"]))
    assert cos.groupby("n_anomaly")["cases_overlap"].all().to_dict() == {1: False, 2: True}
    assert cos[cos.n_anomaly == 2]["note"].str.contains("cases share anomaly classes").all()


def test_ranking_table_incomplete_blocks_and_too_few_methods():
    metrics = _metrics(methods=("arcface", "conventional"))
    metrics = metrics[~((metrics.method == "arcface") & (metrics.case == 0))]  # drop the case-0 blocks
    table = ranking_table(metrics)
    assert (table["n_blocks"] == 2).all() and table["friedman_statistic"].isna().all()
    assert table["note"].str.contains("at least 3 methods").all()
    assert table["wilcoxon_p"].notna().sum() == 2  # arcface vs conventional, per scorer
    no_base = ranking_table(_metrics(methods=("arcface", "cosface", "sphereface")))
    assert no_base["wilcoxon_p"].isna().all() and no_base["note"].str.contains("no conventional").all()


def test_summary_table():
    metrics = _metrics()
    summary = summary_table(metrics)
    assert list(summary.columns) == SUMMARY_COLUMNS
    assert len(summary) == 3 * 2 * 2 and (summary["n"] == 6).all()
    row = summary[(summary.method == "cosface") & (summary.scorer == "lof") & (summary.metric == "fpr95")].iloc[0]
    v = metrics[(metrics.method == "cosface") & (metrics.scorer == "lof") & (metrics.metric == "fpr95")]["value"]
    assert row["mean"] == pytest.approx(v.mean()) and row["std"] == pytest.approx(v.std(ddof=1))
    assert (summary["ci_low"] <= summary["mean"]).all() and (summary["mean"] <= summary["ci_high"]).all()
    # rows in a different order give the same table
    pd.testing.assert_frame_equal(summary, summary_table(metrics.sample(frac=1, random_state=0)))


def test_duplicated_seeds_do_not_narrow_the_interval():
    """Seeds of a case share its classes and test images: the interval is over cases. A second
    seed that repeats every case's value exactly adds no information, so the interval of the two
    seeds equals the one-seed interval (resampling the 2 x 8 values as independent ones would
    narrow it by about sqrt(2))."""
    rng = np.random.default_rng(5)
    values = rng.normal(0.8, 0.05, size=8)
    one = pd.DataFrame(
        {
            "dataset": "d",
            "n_anomaly": 1,
            "method": "arcface",
            "n_per_class": "all",
            "seed": 0,
            "case": np.arange(8),
            "scorer": "cosine_k1",
            "metric": "auroc",
            "value": values,
        }
    )
    two = pd.concat([one, one.assign(seed=1)], ignore_index=True)
    a, b = summary_table(one).iloc[0], summary_table(two).iloc[0]
    assert (b["ci_low"], b["ci_high"]) == (a["ci_low"], a["ci_high"])
    assert (b["n"], b["n_cases"]) == (16, 8) and b["mean"] == pytest.approx(values.mean())
    assert b["ci_high"] - b["ci_low"] > 0.9 * (a["ci_high"] - a["ci_low"])
    # the interval of the case means, by hand: seeds averaged first, then the interval
    three = pd.concat([one, one.assign(seed=1, value=values + 0.02)], ignore_index=True)
    c = summary_table(three).iloc[0]
    assert (c["ci_low"], c["ci_high"]) == pytest.approx(mean_interval(values + 0.01))
    assert c["mean"] == pytest.approx(values.mean() + 0.01)


def test_ranking_of_a_lower_is_better_metric_puts_the_lowest_first():
    """FPR@95: lower is better. Method 'arcface' has the lowest FPR in every block, 'cosface' the
    highest: average ranks 1, 2, 3 (rank 1 = best), as for AUROC the other way round."""
    rows = []
    for case in range(4):
        for method, fpr in (("arcface", 0.1), ("conventional", 0.3), ("cosface", 0.6)):
            for metric, value in (("fpr95", fpr + 0.01 * case), ("auroc", 1 - fpr)):
                rows.append(
                    dict(
                        dataset="d",
                        n_anomaly=1,
                        method=method,
                        n_per_class="all",
                        seed=0,
                        case=case,
                        scorer="cosine_k1",
                        metric=metric,
                        value=value,
                    )
                )
    metrics = pd.DataFrame(rows)
    for metric in ("fpr95", "auroc"):
        ranks = ranking_table(metrics, metric=metric).set_index("method")["avg_rank"]
        assert ranks.to_dict() == {"arcface": 1.0, "conventional": 2.0, "cosface": 3.0}, metric
    with pytest.raises(DmlbenchError, match="metric 'latency' is unknown"):
        ranking_table(metrics, metric="latency")
