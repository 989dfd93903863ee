"""Bootstrap CIs, Holm, Friedman/Nemenyi, Wilcoxon and the ranking/summary tables."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sst

from dmlbench.errors import DmlbenchError
from dmlbench.stats import (
    RANKING_COLUMNS,
    SUMMARY_COLUMNS,
    average_ranks,
    bootstrap_ci,
    friedman,
    holm,
    mean_test,
    nemenyi_cd,
    ranking_table,
    summary_table,
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


def test_friedman_and_wilcoxon_match_scipy():
    rng = np.random.default_rng(1)
    values = rng.random((12, 4)) + np.array([0.0, 0.1, 0.3, 0.05])
    stat, p, note = friedman(values)
    ref = sst.friedmanchisquare(*values.T)
    assert (stat, p, note) == (pytest.approx(ref.statistic), pytest.approx(ref.pvalue), "")
    # the Friedman statistic from the average ranks (no ties): 12N/(k(k+1)) (sum R^2 - k(k+1)^2/4)
    r, n, k = average_ranks(values), 12, 4
    assert stat == pytest.approx(12 * n / (k * (k + 1)) * (np.sum(r**2) - k * (k + 1) ** 2 / 4))
    assert wilcoxon_p(values[:, 2], values[:, 0]) == pytest.approx(sst.wilcoxon(values[:, 2], values[:, 0]).pvalue)


def test_friedman_and_wilcoxon_degenerate_cases():
    assert np.isnan(friedman(np.ones((5, 2)))[0]) and "at least 3 methods" in friedman(np.ones((5, 2)))[2]
    assert "at least 2 complete" in friedman(np.ones((1, 3)))[2]
    stat, p, note = friedman(np.ones((4, 3)))
    assert np.isnan(stat) and np.isnan(p) and "ties" in note
    assert wilcoxon_p([0.5, 0.6], [0.5, 0.6]) == 1.0


# --------------------------------------------------------------------------- bootstrap


def test_bootstrap_ci_contains_the_mean_and_is_reproducible():
    rng = np.random.default_rng(2)
    v = rng.normal(0.8, 0.05, size=30)
    lo, hi = bootstrap_ci(v)
    assert lo < v.mean() < hi
    assert (lo, hi) == bootstrap_ci(v)
    assert (lo, hi) != bootstrap_ci(v, seed=1)
    # about mean +- 1.96 sd / sqrt(n)
    half = 1.96 * v.std() / np.sqrt(len(v))
    assert lo == pytest.approx(v.mean() - half, abs=0.3 * half) and hi == pytest.approx(v.mean() + half, abs=0.3 * half)
    assert bootstrap_ci([0.7]) == (0.7, 0.7)
    assert bootstrap_ci([0.7, 0.7, 0.7]) == pytest.approx((0.7, 0.7))


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


def test_ranking_table_against_scipy():
    metrics = _metrics()
    table = ranking_table(metrics)
    assert list(table.columns) == RANKING_COLUMNS
    assert len(table) == 2 * 3  # 2 scorers x 3 methods (AUROC only)
    one = table[table.scorer == "cosine_k1"].set_index("method")
    wide = (
        metrics[(metrics.metric == "auroc") & (metrics.scorer == "cosine_k1")]
        .pivot_table(index=["case", "seed"], columns="method", values="value")
        .sort_index()
    )
    np.testing.assert_allclose(one.loc[wide.columns, "avg_rank"], sst.rankdata(-wide.to_numpy(), axis=1).mean(0))
    ref = sst.friedmanchisquare(*wide.to_numpy().T)
    assert one["friedman_statistic"].eq(ref.statistic).all() and one["friedman_p"].eq(ref.pvalue).all()
    assert (one["n_blocks"] == 6).all() and (one["n_methods"] == 3).all()
    assert one["cd"].iloc[0] == pytest.approx(nemenyi_cd(3, 6))
    p = [sst.wilcoxon(wide[m], wide["conventional"]).pvalue for m in ("arcface", "cosface")]
    np.testing.assert_allclose(one.loc[["arcface", "cosface"], "wilcoxon_p"], p)
    np.testing.assert_allclose(one.loc[["arcface", "cosface"], "wilcoxon_p_holm"], holm(p))
    assert np.isnan(one.loc["conventional", "wilcoxon_p"]) and np.isnan(one.loc["conventional", "wilcoxon_p_holm"])
    assert (one["note"] == "").all()


def test_ranking_table_incomplete_blocks_and_too_few_methods():
    metrics = _metrics(methods=("arcface", "conventional"))
    metrics = metrics[~((metrics.method == "arcface") & (metrics.case == 0))]  # drop the case-0 blocks
    table = ranking_table(metrics)
    assert (table["n_blocks"] == 4).all() and table["friedman_statistic"].isna().all()
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
    """Seeds of a case share its classes and test images: the interval resamples cases. A second
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
    # the interval of the case means, by hand: seeds averaged first, then the bootstrap
    three = pd.concat([one, one.assign(seed=1, value=values + 0.02)], ignore_index=True)
    c = summary_table(three).iloc[0]
    assert (c["ci_low"], c["ci_high"]) == bootstrap_ci(values + 0.01)
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
