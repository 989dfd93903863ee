"""The Sensitivity section and the variants in the other sections' tables, on summaries worked out by
hand."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from dmlbench.config import validate
from dmlbench.errors import DmlbenchError
from dmlbench.report import _style, scorers, sensitivity, setup

BASE = {
    "datasets": {"digits": {"source": "digits"}},
    "conditions": [{"dataset": "digits", "n_anomaly": [1, 5]}],
    "cases": 2,
}


def _config(methods: dict, **extra) -> dict:
    return validate({**BASE, "methods": methods, **extra})


#: condition -> method -> mean AUROC. In digits a1 the margin moves ArcFace from the top (0.2) to
#: below l2softmax (0.5): rank 1, 1, 2 of 3; in digits a5 it stays last: rank 3, 3, 3.
MEANS = {
    1: {
        "conventional": 0.80,
        "l2softmax": 0.85,
        "arcface_margin0.2": 0.90,
        "arcface_margin0.35": 0.86,
        "arcface_margin0.5": 0.82,
    },
    5: {
        "conventional": 0.70,
        "l2softmax": 0.75,
        "arcface_margin0.2": 0.60,
        "arcface_margin0.35": 0.65,
        "arcface_margin0.5": 0.62,
    },
}


def _summary(scorer: str = "cosine_k1") -> pd.DataFrame:
    rows = []
    for n_anomaly, means in MEANS.items():
        for method, mean in means.items():
            rows.append(
                {
                    "dataset": "digits",
                    "n_anomaly": n_anomaly,
                    "method": method,
                    "n_per_class": "all",
                    "scorer": scorer,
                    "metric": "auroc",
                    "mean": mean,
                    "std": 0.01,
                    "n": 4,
                    "ci_low": mean - 0.02,
                    "ci_high": mean + 0.03,
                }
            )
    return pd.DataFrame(rows)


@pytest.fixture
def swept() -> dict:
    cfg = _config({"conventional": {}, "l2softmax": {}, "arcface": {"margin": [0.2, 0.35, 0.5]}})
    _style.use_methods(cfg["methods"])
    yield cfg
    _style.use_methods(None)


def test_the_section_is_omitted_saying_why_when_nothing_is_swept():
    cfg = _config({"conventional": {}, "arcface_m03": {"head": "arcface", "margin": 0.3}})
    why = sensitivity.needs_sweep(cfg)
    assert why is not None and "nothing is swept" in why and "margin: [0.2, 0.35, 0.5]" in why
    from dmlbench.report import planned_figures, planned_tables

    assert "fig-sensitivity" not in planned_figures(cfg)
    assert not {"tbl-sensitivity", "tbl-sensitivity-ranks"} & set(planned_tables(cfg))


def test_sensitivity_table_takes_the_summary_and_ranks_each_variant(swept):
    table = sensitivity.sensitivity_table(_summary(), swept["methods"])
    assert list(table.columns) == sensitivity.SENSITIVITY_COLUMNS
    a1 = table[table["n_anomaly"] == 1].set_index("method")
    assert a1.loc["arcface_margin0.35", "value"] == "0.35" and a1.loc["arcface_margin0.35", "parameter"] == "margin"
    # the summary's mean and interval, unchanged
    assert a1.loc["arcface_margin0.5", "auroc_mean"] == 0.82
    assert math.isclose(a1.loc["arcface_margin0.5", "auroc_ci_low"], 0.80)
    assert math.isclose(a1.loc["arcface_margin0.5", "auroc_ci_high"], 0.85)
    # ranks among itself, conventional (0.80) and l2softmax (0.85): 0.90 -> 1, 0.86 -> 1, 0.82 -> 2
    assert a1["rank"].tolist() == [1, 1, 2] and set(a1["n_ranked"]) == {3}
    # digits a5: 0.60, 0.65, 0.62 are all below conventional (0.70) and l2softmax (0.75)
    assert table[table["n_anomaly"] == 5]["rank"].tolist() == [3, 3, 3]


def _metrics(offsets: dict[int, dict[str, list[float]]], cases: int = 6) -> pd.DataFrame:
    """Per-case AUROC of the arcface variants: MEANS' value + the case's offset (two seeds at ±0.01)."""
    rows = []
    for n_anomaly, by_method in offsets.items():
        for method, deltas in by_method.items():
            for case in range(cases):
                for seed, s in enumerate((0.01, -0.01)):
                    rows.append(
                        {
                            "dataset": "digits",
                            "n_anomaly": n_anomaly,
                            "method": method,
                            "n_per_class": "all",
                            "seed": seed,
                            "case": case,
                            "scorer": "cosine_k1",
                            "metric": "auroc",
                            "value": MEANS[n_anomaly][method] + deltas[case] + s,
                        }
                    )
    return pd.DataFrame(rows)


NOISE = [0.08, -0.08, 0.05, -0.05, 0.02, -0.02]
QUIET = [0.0] * 6


def test_rank_changes_per_condition_and_the_sentence(swept):
    """digits a1: the margins keep their order in all 6 cases (0.2 > 0.35 > 0.5): the variants differ,
    and the rank change is real. digits a5 (overlapping cases at 5 anomaly classes) is exploratory."""
    metrics = _metrics(
        {
            1: {"arcface_margin0.2": QUIET, "arcface_margin0.35": QUIET, "arcface_margin0.5": QUIET},
            5: {"arcface_margin0.2": NOISE, "arcface_margin0.35": QUIET, "arcface_margin0.5": NOISE[::-1]},
        }
    )
    table = sensitivity.sensitivity_table(_summary(), swept["methods"])
    changes = sensitivity.rank_changes_table(table, metrics)
    assert list(changes.columns) == sensitivity.RANK_COLUMNS
    assert changes[["n_anomaly", "best_rank", "worst_rank", "changes", "n_cases", "exploratory"]].values.tolist() == [
        [1, 1, 2, True, 6, False],
        [5, 3, 3, False, 6, True],
    ]
    assert changes.loc[0, "ranks"] == "arcface_margin0.2: 1, arcface_margin0.35: 1, arcface_margin0.5: 2"
    # the same order in all 6 cases: Friedman's permutation p is the share of the 6^5 arrangements of
    # cases 2-6 (case 1 fixed) whose rank sums spread as far: only the one that repeats case 1's order
    assert changes.loc[0, "variants_p"] == pytest.approx(1 / 6**5)
    assert changes.loc[0, "variants_p_holm"] == pytest.approx(1 / 6**5)  # the only confirmatory row
    assert math.isnan(changes.loc[1, "variants_p_holm"])
    text = sensitivity.rank_summary(changes)
    assert text == (
        "- Sweep `arcface` (head arcface): its rank among the 2 other methods changes in 1 of 2 "
        "conditions (digits · 1 anomaly class: rank 1 to 2). Over cases, its variants differ significantly in "
        "digits · 1 anomaly class (p = 0.000129, Holm); exploratory in digits · 5 anomaly classes (its cases "
        "share anomaly classes).\n"
    )


def test_a_rank_that_moves_within_the_noise_is_not_called_a_difference(swept):
    """The issue's case: a rank moves 1 -> 2 while the variants' AUROC differ by less than the spread
    over cases; the sentence says the move may be chance, not that the lead is an artefact."""
    metrics = _metrics(
        {1: {"arcface_margin0.2": NOISE, "arcface_margin0.35": NOISE[::-1], "arcface_margin0.5": [-x for x in NOISE]}}
    )
    changes = sensitivity.rank_changes_table(sensitivity.sensitivity_table(_summary(), swept["methods"]), metrics)
    a1 = changes[changes["n_anomaly"] == 1].iloc[0]
    assert a1["changes"] and a1["variants_p_holm"] > 0.05
    text = sensitivity.rank_summary(changes[changes["n_anomaly"] == 1])
    assert "Over cases, its variants are not shown to differ in digits · 1 anomaly class" in text
    assert "so a rank that moves there may move by chance" in text
    assert "artefact" not in text
    # without the metrics, no test and no sentence about it
    bare = sensitivity.rank_changes_table(sensitivity.sensitivity_table(_summary(), swept["methods"]))
    assert bare["variants_p"].isna().all() and "Over cases" not in sensitivity.rank_summary(bare)


def test_sensitivity_chart_plots_each_swept_value_with_its_interval_and_rank(swept):
    chart = sensitivity.sensitivity_chart(_summary(), swept["methods"]).to_dict()
    data = [row for d in chart["datasets"].values() for row in d]
    assert {(r["method"], r["x"], r["rank_label"]) for r in data if r["n_anomaly"] == 1} == {
        ("arcface_margin0.2", 0.2, "#1"),
        ("arcface_margin0.35", 0.35, "#1"),
        ("arcface_margin0.5", 0.5, "#2"),
    }
    assert chart["usermeta"]["dmlbench"]["scorer"] == "cosine_k1"


def test_a_sweep_of_two_parameters_draws_one_line_per_setting_of_the_other():
    cfg = _config({"conventional": {}, "arcface": {"margin": [0.2, 0.5], "scale": [16, 64]}})
    summary = pd.DataFrame(
        [
            {
                "dataset": "digits",
                "n_anomaly": 1,
                "method": m,
                "n_per_class": "all",
                "scorer": "cosine_k1",
                "metric": "auroc",
                "mean": v,
                "std": 0.0,
                "n": 2,
                "ci_low": v,
                "ci_high": v,
            }
            for m, v in [
                ("conventional", 0.7),
                ("arcface_margin0.2_scale16", 0.8),
                ("arcface_margin0.2_scale64", 0.6),
                ("arcface_margin0.5_scale16", 0.75),
                ("arcface_margin0.5_scale64", 0.65),
            ]
        ]
    )
    table = sensitivity.sensitivity_table(summary, cfg["methods"])
    by_margin = table[table["parameter"] == "margin"]
    assert set(by_margin["setting"]) == {"scale=16", "scale=64"}
    by_scale = table[table["parameter"] == "scale"]
    assert by_scale.set_index("method").loc["arcface_margin0.5_scale64", "setting"] == "margin=0.5"
    # rank among itself and conventional: 0.8, 0.75 above 0.7 -> 1; 0.6, 0.65 below -> 2
    assert dict(zip(by_margin["method"], by_margin["rank"])) == {
        "arcface_margin0.2_scale16": 1,
        "arcface_margin0.2_scale64": 2,
        "arcface_margin0.5_scale16": 1,
        "arcface_margin0.5_scale64": 2,
    }


def test_no_rows_of_the_swept_variants_is_a_clear_error(swept):
    summary = _summary()
    with pytest.raises(DmlbenchError, match="no rows of the swept variants"):
        sensitivity.sensitivity_table(summary[~summary["method"].str.startswith("arcface")], swept["methods"])


def test_methods_table_shows_each_labels_head_and_parameters():
    cfg = _config(
        {
            "conventional": {},
            "arcface": {"margin": [0.2, 0.5]},
            "tm": {"head": "pml", "loss": "TripletMarginLoss", "miner": "MultiSimilarityMiner"},
        },
        annex={"sample_size": [20], "mixup": True},
    )
    _style.use_methods(cfg["methods"])
    try:
        table = setup.methods_table(cfg).set_index("method")
    finally:
        _style.use_methods(None)
    assert list(table.index) == ["conventional", "arcface_margin0.2", "arcface_margin0.5", "tm"]
    assert table.loc["arcface_margin0.2", "head"] == "arcface"
    assert table.loc["arcface_margin0.2", "parameters"] == "scale=30, margin=0.2"  # the head's declared order
    assert table.loc["tm", "head"] == "pml: TripletMarginLoss"
    assert table.loc["tm", "parameters"] == (
        "miner=MultiSimilarityMiner(epsilon=0.1), margin=0.05, swap=False, smooth_loss=False, triplets_per_anchor=all"
    )
    assert table.loc["tm", ["mixup", "mixup_annex"]].tolist() == ["n/a", "n/a"]
    assert table.loc["conventional", "mixup_annex"] == "yes (alpha 0.4)"


def test_scorers_table_marks_logit_scorers_of_a_pair_loss_not_applicable():
    rows = []
    for method, scorer_values in {"conventional": {"cosine_k1": 0.8, "msp": 0.7}, "supcon": {"cosine_k1": 0.9}}.items():
        for scorer, value in scorer_values.items():
            for case in (0, 1):
                rows.append(
                    {
                        "dataset": "digits",
                        "n_anomaly": 1,
                        "method": method,
                        "n_per_class": "all",
                        "seed": 0,
                        "case": case,
                        "scorer": scorer,
                        "metric": "auroc",
                        "value": value + 0.01 * case,
                    }
                )
    table = scorers.scorers_table(pd.DataFrame(rows)).set_index(["method", "scorer"])
    assert not table.loc[("supcon", "msp"), "applicable"] and math.isnan(table.loc[("supcon", "msp"), "mean"])
    assert table.loc[("supcon", "msp"), "n"] == 0
    assert table.loc[("conventional", "msp"), "applicable"] and table.loc[("conventional", "msp"), "mean"] == 0.705
    spec = scorers.scorers_chart(pd.DataFrame(rows)).to_dict()
    texts = [
        layer["mark"]
        for layer in spec["spec"]["layer"]
        if isinstance(layer["mark"], dict) and layer["mark"].get("text") == "n/a"
    ]
    assert texts, "no n/a cell layer"
