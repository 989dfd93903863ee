"""The report sections' chart and table builders (dmlbench.report.<section>) and their shared style."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd
import pytest

from dmlbench import stats
from dmlbench.errors import DmlbenchError
from dmlbench.report import _style, auroc, balance, cosine_euclidean, reproducibility, scorers, setup

# distances and ranking are fixture names here
from dmlbench.report import distances as distances_section
from dmlbench.report import ranking as ranking_section
from tests.helpers.synthetic_tables import (
    CASES,
    CLASSES,
    CONDITIONS,
    METHODS,
    SCORERS,
    SEEDS,
    anomaly_classes,
    auroc_value,
    class_distances_frame,
    metrics_frame,
)


@pytest.fixture(scope="module")
def metrics() -> pd.DataFrame:
    return metrics_frame()


@pytest.fixture(scope="module")
def class_distances() -> pd.DataFrame:
    return class_distances_frame()


def chart_rows(spec: dict) -> list[dict]:
    """The rows a (top-level-data) Vega-Lite spec plots."""
    return spec["datasets"][spec["data"]["name"]]


def layer_types(layers: list[dict]) -> list[str]:
    return [layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"] for layer in layers]


def layer_marks(spec: dict) -> list[str]:
    return layer_types(spec["spec"]["layer"])


# --------------------------------------------------------------------------- tables


def test_conditions_table_has_one_row_per_condition(metrics):
    table = setup.conditions_table(metrics)
    assert list(table.columns) == [
        "dataset",
        "n_anomaly",
        "methods",
        "n_per_class",
        "seeds",
        "cases",
        "scorers",
    ]
    assert list(zip(table["dataset"], table["n_anomaly"])) == CONDITIONS
    # Study order (conventional before arcface) although the input lists arcface second anyway;
    # sizes as numbers, then "all"; the head's accuracy is not a scorer.
    assert set(table["methods"]) == {"conventional, arcface"}
    assert set(table["n_per_class"]) == {"50, all"}
    assert set(table["seeds"]) == {len(SEEDS)}
    assert set(table["cases"]) == {len(CASES)}
    assert set(table["scorers"]) == {len(SCORERS)}


def _roles(conditions: dict, n_classes: int = 10) -> pd.DataFrame:
    """A hand-made class_distances table: {(dataset, n_anomaly): cases}, case k's anomaly classes
    k..k+n_anomaly-1 mod n_classes, two scorers and two seeds (the table reads one scorer and
    counts a case once)."""
    rows = []
    for (dataset, n_anomaly), cases in conditions.items():
        for case in cases:
            anomalies = {(case + j) % n_classes for j in range(n_anomaly)}
            for seed in (0, 1):
                for scorer in ("cosine_k1", "lof"):
                    for ki in range(n_classes):
                        role = "anomaly" if ki in anomalies else "normal"
                        rows.append(
                            dict(dataset=dataset, n_anomaly=n_anomaly, method="conventional", n_per_class="all",
                                 seed=seed, case=case, scorer=scorer, class_index=ki, class_name=f"c{ki}",
                                 role=role, mean_score=1.0, normalised=1.0)
                        )  # fmt: skip
    return pd.DataFrame(rows)


def test_case_design_table_counts_overlap_disjoint_cases_and_anomaly_times():
    five, every = range(5), range(10)
    table = setup.case_design_table(
        _roles({("digits", 1): five, ("digits", 2): every, ("digits", 5): five, ("mnist", 5): every})
    )
    by = table.set_index(["dataset", "n_anomaly"])
    # a1, cases 0-4: disjoint, all tested, but 5 cases reach p 2/32 = 0.0625 at best; digits 5-9 never
    a1 = by.loc[("digits", 1)]
    assert (a1["cases"], a1["shared_adjacent"], a1["disjoint_cases"], a1["tested"]) == (5, 0, 5, "all 5")
    assert a1["min_p"] == pytest.approx(0.0625)
    assert (a1["anomaly_times"], a1["never"]) == ("0–1", "c5, c6, c7, c8, c9")
    # a2, every rotation: neighbours share 1 class, {0,1}, {2,3}, ..., {8,9} are 5 disjoint cases:
    # 5 < 6, so no test holds its level; every class an anomaly twice
    a2 = by.loc[("digits", 2)]
    assert (a2["cases"], a2["shared_adjacent"], a2["disjoint_cases"], a2["tested"]) == (10, 1, 5, "exploratory")
    assert np.isnan(a2["min_p"])
    assert (a2["anomaly_times"], a2["never"]) == ("2 each", "—")
    # a5, cases 0-4: all share class 4 (one disjoint case); class k is an anomaly in cases max(0,k-4)..min(k,4)
    a5 = by.loc[("digits", 5)]
    assert (a5["shared_adjacent"], a5["disjoint_cases"], a5["tested"]) == (4, 1, "exploratory")
    assert (a5["anomaly_times"], a5["never"]) == ("0–5", "c9")
    m5 = by.loc[("mnist", 5)]
    assert (m5["cases"], m5["shared_adjacent"], m5["disjoint_cases"], m5["anomaly_times"]) == (10, 4, 2, "5 each")


def test_case_design_table_tests_the_disjoint_cases_when_they_reach_alpha():
    """a2 over 20 classes, every rotation: 10 disjoint cases of 20, enough for p 2/1024."""
    row = setup.case_design_table(_roles({("d", 2): range(20)}, n_classes=20)).iloc[0]
    assert (row["n_classes"], row["cases"], row["disjoint_cases"], row["tested"]) == (20, 20, 10, "10 disjoint of 20")
    assert row["min_p"] == pytest.approx(2 / 2**10)
    assert row["anomaly_times"] == "2 each"


def test_auroc_summary_matches_hand_computed_values(metrics):
    summary = auroc.auroc_summary(metrics)
    assert len(summary) == len(CONDITIONS) * len(METHODS) * 2 * len(SCORERS)
    assert list(summary.columns) == ["dataset", "n_anomaly", "method", "n_per_class", "scorer", "mean", "std", "n"]
    for ci, (dataset, n_anomaly) in enumerate(CONDITIONS):
        for method in METHODS:
            values = [auroc_value(ci, method, "all", s, c, "cosine_k1") for s in SEEDS for c in CASES]
            row = summary[
                (summary["dataset"] == dataset)
                & (summary["method"] == method)
                & (summary["n_per_class"] == "all")
                & (summary["scorer"] == "cosine_k1")
            ]
            assert len(row) == 1
            assert row["mean"].item() == pytest.approx(np.mean(values))
            assert row["std"].item() == pytest.approx(np.std(values, ddof=1))
            assert row["n"].item() == len(values)
    # Methods in the study's order within each condition.
    first = summary[summary["dataset"] == "digits"]["method"].drop_duplicates().tolist()
    assert first == ["conventional", "arcface"]


def test_method_order_and_colours_are_fixed():
    assert _style.method_order(["mine", "centerloss", "arcface", "conventional"]) == [
        "conventional",
        "arcface",
        "centerloss",
        "mine",
    ]
    scale = _style.method_colour_scale(["arcface", "conventional", "mine"]).to_dict()
    assert scale["domain"] == ["conventional", "arcface", "mine"]
    assert scale["range"][:2] == [_style.METHOD_COLOURS["conventional"], _style.METHOD_COLOURS["arcface"]]
    assert scale["range"][2] not in _style.METHOD_COLOURS.values()


def test_missing_column_is_named(metrics):
    with pytest.raises(DmlbenchError, match="value"):
        setup.conditions_table(metrics.drop(columns="value"))


# --------------------------------------------------------------------------- charts


def test_auroc_box_is_a_valid_faceted_box_plot(metrics):
    chart = auroc.auroc_box(metrics)
    assert isinstance(chart, alt.FacetChart)
    spec = chart.to_dict()  # validates against the Vega-Lite schema
    assert spec["$schema"].startswith("https://vega.github.io/schema/vega-lite/v")
    assert spec["facet"]["field"] == "condition"
    assert spec["facet"]["sort"] == ["digits · 1 anomaly class", "fashion · 2 anomaly classes"]
    assert layer_marks(spec) == ["rule", "boxplot"]
    assert spec["title"]["text"]
    assert spec["spec"]["width"] == _style.PANEL_WIDTH and spec["spec"]["height"] == _style.PANEL_HEIGHT
    box = spec["spec"]["layer"][1]["encoding"]
    assert box["x"]["sort"] == ["conventional", "arcface"]
    assert box["y"]["scale"]["domain"] == [0, 1]
    assert "AUROC" in box["y"]["title"]
    assert box["color"]["scale"]["domain"] == ["conventional", "arcface"]
    assert spec["spec"]["layer"][0]["encoding"]["y"]["datum"] == 0.5
    assert spec["usermeta"]["dmlbench"]["scorer"] == "cosine_k1"


@pytest.mark.parametrize("scorer,n_per_class", [("cosine_k1", "all"), ("euclidean_k1", "50")])
def test_auroc_box_plots_exactly_the_selected_rows(metrics, scorer, n_per_class):
    spec = auroc.auroc_box(metrics, scorer=scorer, n_per_class=n_per_class).to_dict()
    rows = chart_rows(spec)
    expected = metrics[
        (metrics["metric"] == "auroc") & (metrics["scorer"] == scorer) & (metrics["n_per_class"] == n_per_class)
    ]
    assert len(rows) == len(expected) == len(CONDITIONS) * len(METHODS) * len(SEEDS) * len(CASES)
    assert sorted(r["auroc"] for r in rows) == pytest.approx(sorted(expected["value"]))
    ci = {d: i for i, (d, _) in enumerate(CONDITIONS)}
    for r in rows:
        assert r["auroc"] == pytest.approx(
            auroc_value(ci[r["dataset"]], r["method"], n_per_class, r["seed"], r["case"], scorer)
        )


def test_unknown_scorer_is_a_clear_error(metrics, class_distances):
    with pytest.raises(DmlbenchError, match=r"scorer='mahalanobis'.*cosine_k1"):
        auroc.auroc_box(metrics, scorer="mahalanobis")
    with pytest.raises(DmlbenchError, match="n_per_class='10'"):
        distances_section.normalised_distance_box(class_distances, n_per_class="10")


def test_normalised_distance_box_is_a_valid_grouped_box_plot(class_distances):
    chart = distances_section.normalised_distance_box(class_distances)
    spec = chart.to_dict()
    assert spec["$schema"].startswith("https://vega.github.io/schema/vega-lite/v")
    assert layer_marks(spec) == ["rule", "boxplot"]
    assert spec["spec"]["layer"][0]["encoding"]["y"]["datum"] == 1.0
    box = spec["spec"]["layer"][1]["encoding"]
    assert box["xOffset"]["field"] == "role"
    assert box["color"]["scale"]["domain"] == ["normal", "anomaly"]
    assert box["y"]["field"] == "normalised"
    rows = chart_rows(spec)
    assert len(rows) == len(CONDITIONS) * len(METHODS) * len(SEEDS) * len(CASES) * len(CLASSES)
    # n_anomaly anomaly classes per case, the rest normal.
    for dataset, n_anomaly in CONDITIONS:
        mine = [r for r in rows if r["dataset"] == dataset]
        n_runs = len(METHODS) * len(SEEDS) * len(CASES)
        assert sum(r["role"] == "anomaly" for r in mine) == n_runs * n_anomaly
        assert sum(r["role"] == "normal" for r in mine) == n_runs * (len(CLASSES) - n_anomaly)


# --------------------------------------------------------------------------- report sections 1-7, 13

ALL = "all"


def hand_metrics(values: dict, dataset: str = "digits", n_anomaly: int = 1, n_per_class: str = ALL) -> pd.DataFrame:
    """A metrics table of AUROC rows from ``{(method, scorer, seed, case): value}``."""
    rows = [
        dict(
            dataset=dataset,
            n_anomaly=n_anomaly,
            method=method,
            n_per_class=n_per_class,
            seed=seed,
            case=case,
            scorer=scorer,
            metric="auroc",
            value=value,
        )
        for (method, scorer, seed, case), value in values.items()
    ]
    return pd.DataFrame(rows, columns=_style.METRICS_COLUMNS)


def summary_row(
    dataset, n_anomaly, method, mean, ci_low, ci_high, n=4, scorer="cosine_k1", n_per_class=ALL, metric="auroc"
) -> dict:
    return dict(
        dataset=dataset,
        n_anomaly=n_anomaly,
        method=method,
        n_per_class=n_per_class,
        scorer=scorer,
        metric=metric,
        mean=mean,
        std=0.05,
        n=n,
        ci_low=ci_low,
        ci_high=ci_high,
    )


@pytest.fixture
def summary() -> pd.DataFrame:
    rows = [
        summary_row("digits", 1, "arcface", 0.90, 0.85, 0.94),
        summary_row("digits", 1, "conventional", 0.70, 0.65, 0.75),
        summary_row("digits", 3, "arcface", 0.60, 0.58, 0.63),
        summary_row("digits", 3, "conventional", 0.60, 0.55, 0.66),
        # Distractors: another scorer, another n_per_class, another metric.
        summary_row("digits", 1, "arcface", 0.10, 0.05, 0.15, scorer="euclidean_k1"),
        summary_row("digits", 1, "arcface", 0.20, 0.15, 0.25, n_per_class="50"),
        summary_row("digits", 1, "arcface", 0.30, 0.25, 0.35, metric="aupr_in"),
    ]
    return pd.DataFrame(rows, columns=stats.SUMMARY_COLUMNS)


def test_case_class_chart_has_one_cell_per_condition_case_and_class(class_distances):
    spec = setup.case_class_chart(class_distances).to_dict()
    rows = chart_rows(spec)
    assert len(rows) == len(CONDITIONS) * len(CASES) * len(CLASSES)
    for r in rows:
        anomalies = anomaly_classes(r["case"], r["n_anomaly"])
        assert r["role"] == ("anomaly" if r["class_index"] in anomalies else "normal")
        assert r["class_name"] == CLASSES[r["class_index"]]
    assert spec["facet"]["field"] == "condition"
    enc = spec["spec"]["encoding"]
    assert enc["x"]["field"] == "class_name" and enc["x"]["sort"] == {"field": "class_index", "op": "min"}
    assert enc["y"]["field"] == "case"
    assert enc["color"]["scale"] == {
        "domain": ["normal", "anomaly"],
        "range": [_style.ROLE_COLOURS["normal"], _style.ROLE_COLOURS["anomaly"]],
    }
    assert spec["usermeta"]["dmlbench"] == {"scorer": "cosine_k1"}


def test_case_class_chart_errors(class_distances):
    with pytest.raises(DmlbenchError, match=r"class_distances\.parquet has no rows for scorer='lof'"):
        setup.case_class_chart(class_distances, scorer="lof")
    clash = class_distances.copy()
    clash.loc[clash.index[0], "role"] = "anomaly" if clash.loc[clash.index[0], "role"] == "normal" else "normal"
    with pytest.raises(DmlbenchError, match="more than one role"):
        setup.case_class_chart(clash)


def test_methods_table_lists_parameters_and_mixup_in_study_order():
    config = {
        "methods": {
            "arcface": {"scale": 30, "margin": 0.5, "mixup": True, "mixup_alpha": 0.4},
            "conventional": {"mixup": False, "mixup_alpha": 0.4},
            "centerloss": {"weight": 0.003},
        }
    }
    table = setup.methods_table(config)
    assert table.to_dict("records") == [
        {"method": "conventional", "head": "conventional", "parameters": "—", "mixup": "no"},
        {"method": "arcface", "head": "arcface", "parameters": "scale=30, margin=0.5", "mixup": "yes (alpha 0.4)"},
        {"method": "centerloss", "head": "centerloss", "parameters": "weight=0.003", "mixup": "no"},
    ]
    with pytest.raises(DmlbenchError, match="methods"):
        setup.methods_table({})


def test_methods_table_shows_the_annex_mixup_when_annex_a2_runs():
    methods = {"conventional": {"mixup": False, "mixup_alpha": 0.4}, "arcface": {"mixup": True, "mixup_alpha": 0.2}}
    keep = setup.methods_table({"methods": methods, "annex": {"sample_size": [50], "mixup": None}})
    assert keep["mixup_annex"].tolist() == ["no", "yes (alpha 0.2)"]
    every = setup.methods_table({"methods": methods, "annex": {"sample_size": [50], "mixup": True}})
    assert every["mixup_annex"].tolist() == ["yes (alpha 0.4)", "yes (alpha 0.2)"]
    assert "mixup_annex" not in setup.methods_table({"methods": methods, "annex": {"sample_size": []}})


def test_auroc_ci_table_passes_the_summary_through_and_marks_the_best(summary):
    table = auroc.auroc_ci_table(summary)
    assert list(table.columns) == ["dataset", "n_anomaly", "method", "mean", "ci_low", "ci_high", "n", "best"]
    assert table[["n_anomaly", "method", "mean", "ci_low", "ci_high", "best"]].values.tolist() == [
        [1, "conventional", 0.70, 0.65, 0.75, False],
        [1, "arcface", 0.90, 0.85, 0.94, True],
        [3, "conventional", 0.60, 0.55, 0.66, True],  # a tie: both best
        [3, "arcface", 0.60, 0.58, 0.63, True],
    ]


def test_auroc_overview_plots_mean_and_ci_per_condition_and_method(summary):
    spec = auroc.auroc_overview(summary).to_dict()
    rows = chart_rows(spec)
    got = {(r["condition"], r["method"]): (r["mean"], r["ci_low"], r["ci_high"]) for r in rows}
    assert got == {
        ("digits · 1 anomaly class", "conventional"): (0.70, 0.65, 0.75),
        ("digits · 1 anomaly class", "arcface"): (0.90, 0.85, 0.94),
        ("digits · 3 anomaly classes", "conventional"): (0.60, 0.55, 0.66),
        ("digits · 3 anomaly classes", "arcface"): (0.60, 0.58, 0.63),
    }
    chance, interval, point = spec["layer"]
    assert layer_types(spec["layer"]) == ["rule", "rule", "point"]
    assert chance["encoding"]["x"]["datum"] == 0.5
    assert (interval["encoding"]["x"]["field"], interval["encoding"]["x2"]["field"]) == ("ci_low", "ci_high")
    assert point["encoding"]["x"]["field"] == "mean"
    assert point["encoding"]["x"]["scale"]["domain"] == [0.5, 1.0]
    assert point["encoding"]["y"]["sort"] == ["digits · 1 anomaly class", "digits · 3 anomaly classes"]
    assert point["encoding"]["yOffset"]["field"] == "method"
    assert point["encoding"]["color"]["scale"] == _style.method_colour_scale(["conventional", "arcface"]).to_dict()
    assert spec["usermeta"]["dmlbench"] == {"scorer": "cosine_k1", "n_per_class": ALL}


def test_summary_builders_name_missing_rows(summary):
    with pytest.raises(DmlbenchError, match=r"summary\.parquet has no AUROC rows for scorer='lof'"):
        auroc.auroc_overview(summary, scorer="lof")
    with pytest.raises(DmlbenchError, match=r"summary\.parquet has no AUROC rows"):
        auroc.auroc_ci_table(summary[summary["metric"] != "auroc"])
    with pytest.raises(DmlbenchError, match=r"summary\.parquet lacks column\(s\) \['ci_low'\]"):
        auroc.auroc_overview(summary.drop(columns="ci_low"))


def distances_frame(entries: list[tuple], n_per_class: str = ALL, scorer: str = "cosine_k1") -> pd.DataFrame:
    """class_distances rows from ``(n_anomaly, method, seed, case, class_index, role, normalised)``."""
    rows = [
        dict(
            dataset="digits",
            n_anomaly=n,
            method=method,
            n_per_class=n_per_class,
            seed=seed,
            case=case,
            scorer=scorer,
            class_index=ki,
            class_name=f"c{ki}",
            role=role,
            mean_score=0.1 * norm,
            normalised=norm,
        )
        for n, method, seed, case, ki, role, norm in entries
    ]
    return pd.DataFrame(rows, columns=_style.CLASS_DISTANCES_COLUMNS)


@pytest.fixture
def distances() -> pd.DataFrame:
    return pd.concat(
        [
            distances_frame(
                [
                    (1, "conventional", 0, 0, 0, "anomaly", 2.0),
                    (1, "conventional", 0, 0, 1, "normal", 1.0),
                    (1, "conventional", 1, 1, 1, "anomaly", 4.0),
                    (1, "conventional", 1, 1, 0, "normal", 1.5),
                    (1, "arcface", 0, 0, 0, "anomaly", 5.0),
                    (3, "conventional", 0, 0, 0, "anomaly", 1.0),
                    (3, "conventional", 0, 0, 1, "anomaly", 2.0),
                    (3, "conventional", 0, 0, 2, "anomaly", 6.0),
                    (3, "conventional", 0, 0, 3, "normal", 0.9),
                    # digits a3 arcface: no class distances at all.
                ]
            ),
            distances_frame([(1, "arcface", 0, 0, 0, "anomaly", 50.0)], n_per_class="50"),
            distances_frame([(1, "arcface", 0, 0, 0, "anomaly", 60.0)], scorer="euclidean_k1"),
        ],
        ignore_index=True,
    )


def test_balance_table_means_auroc_and_anomaly_distance(summary, distances):
    table = balance.balance_table(summary, distances)
    assert list(table.columns) == ["dataset", "n_anomaly", "method", "auroc_mean", "anomaly_distance_mean"]
    assert table[["n_anomaly", "method"]].values.tolist() == [
        [1, "conventional"],
        [1, "arcface"],
        [3, "conventional"],
        [3, "arcface"],
    ]
    assert table["auroc_mean"].tolist() == [0.70, 0.90, 0.60, 0.60]
    # Means over the anomaly classes only (normal rows ignored): (2 + 4) / 2, 5, (1 + 2 + 6) / 3, none.
    assert table["anomaly_distance_mean"].tolist()[:3] == pytest.approx([3.0, 5.0, 3.0])
    assert np.isnan(table["anomaly_distance_mean"].iloc[3])


def test_balance_takes_distances_from_a_distance_scorer(summary, distances):
    """With msp (no normalised distances) the AUROC is msp's and the distances cosine_k1's."""
    cosine = summary[summary["scorer"] == "cosine_k1"]
    msp = cosine.assign(scorer="msp", mean=cosine["mean"] - 0.1)
    no_distance = distances[distances["scorer"] == "cosine_k1"].assign(scorer="msp", normalised=np.nan)
    both = pd.concat([summary, msp]), pd.concat([distances, no_distance])
    table = balance.balance_table(*both, scorer="msp", distance_scorer="cosine_k1")
    assert table["auroc_mean"].tolist() == pytest.approx([0.60, 0.80, 0.50, 0.50])
    assert table["anomaly_distance_mean"].tolist()[:3] == pytest.approx([3.0, 5.0, 3.0])
    meta = balance.balance_chart(*both, scorer="msp", distance_scorer="cosine_k1").to_dict()["usermeta"]["dmlbench"]
    assert meta == {"scorer": "msp", "distance_scorer": "cosine_k1", "n_per_class": ALL}
    assert balance.balance_table(*both, scorer="msp")["anomaly_distance_mean"].isna().all()


def test_balance_chart_has_an_auroc_row_and_a_distance_row(summary, distances):
    spec = balance.balance_chart(summary, distances).to_dict()
    assert spec["usermeta"]["dmlbench"] == {"scorer": "cosine_k1", "distance_scorer": "cosine_k1", "n_per_class": ALL}
    top, bottom = spec["vconcat"]
    auroc = spec["datasets"][top["data"]["name"]]
    distance = spec["datasets"][bottom["data"]["name"]]
    assert {(r["n_anomaly"], r["method"]): r["value"] for r in auroc} == {
        (1, "conventional"): 0.70,
        (1, "arcface"): 0.90,
        (3, "conventional"): 0.60,
        (3, "arcface"): 0.60,
    }
    assert {(r["n_anomaly"], r["method"]): r["value"] for r in distance} == pytest.approx(
        {(1, "conventional"): 3.0, (1, "arcface"): 5.0, (3, "conventional"): 3.0}
    )  # the missing mean is left out, not plotted as 0
    for row in (top, bottom):
        assert row["facet"]["field"] == "dataset"
        enc = row["spec"]["encoding"]
        assert (enc["x"]["field"], enc["y"]["field"], enc["color"]["field"]) == ("n_anomaly", "value", "method")


def test_balance_needs_anomaly_rows(summary, distances):
    with pytest.raises(DmlbenchError, match="no anomaly-class rows"):
        balance.balance_table(summary, distances[distances["role"] != "anomaly"])
    with pytest.raises(DmlbenchError, match=r"class_distances\.parquet has no rows for scorer='lof'"):
        balance.balance_chart(summary.assign(scorer="lof"), distances, scorer="lof")


def test_energy_is_no_distance_and_the_distance_figures_fall_back_to_knn(summary, distances):
    """The issue: with `report.scorer: energy` the normalised-distance figure, the balance figure's
    distance row and annex A.2's distance column were all NaN (energy's normal level is negative, so
    it has no normalised distance). Like MSP and max logit it falls back to a kNN distance."""
    from dmlbench.report.study import distance_scorer

    both, euclidean_only = (
        {"scoring": {"distances": ["cosine", "euclidean"]}},
        {"scoring": {"distances": ["euclidean"]}},
    )
    assert [distance_scorer(both, s) for s in ("msp", "maxlogit", "energy")] == ["cosine_k1"] * 3
    assert distance_scorer(euclidean_only, "energy") == "euclidean_k1"
    assert distance_scorer(both, "mahalanobis") == "mahalanobis" and distance_scorer(both, "lof") == "lof"
    energy_summary = summary[summary["scorer"] == "cosine_k1"].assign(scorer="energy")
    energy_distances = distances.assign(scorer="energy", normalised=np.nan)  # as the aggregate writes them
    table = balance.balance_table(
        energy_summary,
        pd.concat([distances, energy_distances]),
        scorer="energy",
        distance_scorer=distance_scorer(both, "energy"),
    )
    cosine = balance.balance_table(summary, distances)
    assert table["anomaly_distance_mean"].tolist() == pytest.approx(
        cosine["anomaly_distance_mean"].tolist(), nan_ok=True
    )
    assert np.isfinite(table["anomaly_distance_mean"]).sum() == 3


# (method, seed, case) -> (cosine, euclidean); cosine - euclidean = 0.1, -0.05, 0.2, 0.5 for conventional.
PAIRS = {
    ("conventional", 0, 0): (0.80, 0.70),
    ("conventional", 0, 1): (0.70, 0.75),
    ("conventional", 1, 0): (0.60, 0.40),
    ("conventional", 1, 1): (0.90, 0.40),
    ("arcface", 0, 0): (0.40, 0.60),
    ("arcface", 0, 1): (0.45, 0.55),
    ("arcface", 1, 0): (0.30, 0.70),
    ("arcface", 1, 1): (0.35, 0.65),
}


@pytest.fixture
def paired_metrics() -> pd.DataFrame:
    values = {}
    for (method, seed, case), (cos, euc) in PAIRS.items():
        values[(method, "cosine_k1", seed, case)] = cos
        values[(method, "euclidean_k1", seed, case)] = euc
    values[("conventional", "cosine_k1", 0, 2)] = 0.99  # no Euclidean partner: not a pair
    values[("conventional", "cosine_k5", 0, 0)] = 0.11  # another k
    other_size = hand_metrics({("conventional", "euclidean_k1", 0, 0): 0.01}, n_per_class="50")
    m = pd.concat([hand_metrics(values), other_size])
    return m.sample(frac=1, random_state=0).reset_index(drop=True)  # pairing must not rely on row order


def test_cosine_euclidean_table_on_a_worked_example(paired_metrics):
    """Over cases, each case's seeds averaged first: conventional's case 0 is cosine (0.8 + 0.6) / 2
    = 0.7 against Euclidean (0.7 + 0.4) / 2 = 0.55, case 1 0.8 against 0.575."""
    table = cosine_euclidean.cosine_euclidean_table(paired_metrics)
    assert list(table.columns) == [
        "dataset",
        "n_anomaly",
        "method",
        "cosine_mean",
        "euclidean_mean",
        "mean_difference",
        "share_cosine_better",
        "n_cases",
        "p",
        "p_holm",
        "exploratory",
        "euclidean_below_half",
        "cosine_below_half",
    ]
    conv, arc = table.to_dict("records")
    assert (conv["method"], arc["method"]) == ("conventional", "arcface")
    assert conv["cosine_mean"] == pytest.approx(0.75) and conv["euclidean_mean"] == pytest.approx(0.5625)
    assert conv["mean_difference"] == pytest.approx(0.1875)  # (0.15 + 0.225) / 2
    assert conv["share_cosine_better"] == 1.0 and conv["n_cases"] == 2  # case 2 has no Euclidean partner
    # two cases, both differences positive: sign-flip p = 2 / 4; Holm over the table's two tests
    assert conv["p"] == pytest.approx(0.5) and conv["p_holm"] == pytest.approx(1.0) and not conv["exploratory"]
    assert not conv["euclidean_below_half"] and not conv["cosine_below_half"]
    assert arc["mean_difference"] == pytest.approx(-0.25) and arc["share_cosine_better"] == 0.0
    assert arc["p"] == pytest.approx(0.5)  # -0.3, -0.2
    assert arc["cosine_below_half"] and not arc["euclidean_below_half"]


def test_cosine_euclidean_chart_pairs_by_case_and_seed(paired_metrics):
    spec = cosine_euclidean.cosine_euclidean_chart(paired_metrics).to_dict()
    rows = chart_rows(spec)
    assert {(r["method"], r["seed"], r["case"]): (r["cosine"], r["euclidean"]) for r in rows} == PAIRS
    assert len(rows) == len(PAIRS)
    assert layer_marks(spec) == ["rule", "rule", "rule", "point"]
    diagonal, chance_x, chance_y, points = spec["spec"]["layer"]
    assert [diagonal["encoding"][c]["datum"] for c in ("x", "y", "x2", "y2")] == [0.3, 0.3, 1.0, 1.0]
    assert chance_x["encoding"]["x"]["datum"] == 0.5 and chance_y["encoding"]["y"]["datum"] == 0.5
    assert (points["encoding"]["x"]["field"], points["encoding"]["y"]["field"]) == ("euclidean", "cosine")
    assert points["encoding"]["color"]["scale"]["domain"] == ["conventional", "arcface"]
    assert spec["facet"]["field"] == "condition"
    assert spec["usermeta"]["dmlbench"] == {
        "k": "1",
        "n_per_class": ALL,
        "scorers": ["cosine_k1", "euclidean_k1"],
    }


def test_cosine_euclidean_needs_both_distances(paired_metrics):
    with pytest.raises(DmlbenchError, match=r"scorer='euclidean_k5'"):
        cosine_euclidean.cosine_euclidean_chart(paired_metrics, k="5")
    unpaired = hand_metrics({("conventional", "cosine_k1", 0, 0): 0.8, ("conventional", "euclidean_k1", 1, 0): 0.7})
    with pytest.raises(DmlbenchError, match="both cosine_k1 and euclidean_k1"):
        cosine_euclidean.cosine_euclidean_table(unpaired)


@pytest.fixture
def scorer_metrics() -> pd.DataFrame:
    values = {
        ("conventional", "lof", 0, 0): 0.30,
        ("conventional", "msp", 0, 0): 0.90,
        ("conventional", "msp", 0, 1): 0.95,
        ("conventional", "euclidean_k1", 0, 0): 0.50,
        ("conventional", "euclidean_k1", 0, 1): 0.70,
        ("conventional", "cosine_k1", 0, 0): 0.80,
        ("conventional", "cosine_k1", 0, 1): 0.60,
        ("arcface", "cosine_k1", 0, 0): 0.90,
        ("arcface", "cosine_k1", 0, 1): 1.00,
        ("arcface", "cosine_k5", 0, 0): 0.10,  # another k: not shown
    }
    head = hand_metrics({("conventional", "head", 0, 0): 0.5}).assign(metric="accuracy")
    return pd.concat([hand_metrics(values), head, hand_metrics({("arcface", "msp", 0, 0): 0.2}, n_per_class="50")])


def test_scorers_table_means_auroc_per_scorer(scorer_metrics):
    table = scorers.scorers_table(scorer_metrics)
    assert list(table.columns) == ["dataset", "n_anomaly", "method", "scorer", "mean", "n", "n_cases", "applicable"]
    # arcface has no msp here: a logit scorer a method lacks is marked not applicable (other scorers
    # it lacks, as lof here, are simply absent)
    assert table[["method", "scorer", "n", "n_cases", "applicable"]].values.tolist() == [
        ["conventional", "cosine_k1", 2, 2, True],
        ["conventional", "euclidean_k1", 2, 2, True],
        ["conventional", "msp", 2, 2, True],
        ["conventional", "lof", 1, 1, True],
        ["arcface", "cosine_k1", 2, 2, True],
        ["arcface", "msp", 0, 0, False],
    ]
    assert table["mean"].tolist()[:5] == pytest.approx([0.70, 0.60, 0.925, 0.30, 0.95])
    assert np.isnan(table["mean"].iloc[5])


def test_scorers_chart_is_a_labelled_heatmap(scorer_metrics):
    spec = scorers.scorers_chart(scorer_metrics).to_dict()
    rows = chart_rows(spec)
    assert {(r["method"], r["scorer"]): r["mean"] for r in rows if r["applicable"]} == pytest.approx(
        {
            ("conventional", "cosine_k1"): 0.70,
            ("conventional", "euclidean_k1"): 0.60,
            ("conventional", "msp"): 0.925,
            ("conventional", "lof"): 0.30,
            ("arcface", "cosine_k1"): 0.95,
        }
    )
    assert [(r["method"], r["scorer"]) for r in rows if not r["applicable"]] == [("arcface", "msp")]
    assert layer_marks(spec) == ["rect", "text", "rect", "text"]  # values, then the grey n/a cells
    cells, labels, na_cells, na_text = spec["spec"]["layer"]
    assert na_text["mark"]["text"] == "n/a" and na_cells["mark"]["color"] == "#d9d9d9"
    assert cells["encoding"]["x"]["sort"] == ["cosine_k1", "euclidean_k1", "msp", "lof"]
    assert cells["encoding"]["y"]["sort"] == ["conventional", "arcface"]
    assert cells["encoding"]["color"]["field"] == "mean"
    assert labels["encoding"]["text"] == {"field": "mean", "format": ".2f", "type": "quantitative"}


def test_scorers_need_rows(scorer_metrics):
    with pytest.raises(DmlbenchError, match=r"n_per_class='10'"):
        scorers.scorers_chart(scorer_metrics, n_per_class="10")
    with pytest.raises(DmlbenchError, match="no AUROC rows"):
        scorers.scorers_table(scorer_metrics[scorer_metrics["metric"] == "accuracy"])


def ranking_row(
    n_anomaly,
    method,
    avg_rank,
    cd,
    n_methods,
    n_blocks=10,
    friedman_p=0.01,
    scorer="cosine_k1",
    dataset="digits",
    overlap=False,
) -> dict:
    return dict(
        dataset=dataset,
        n_anomaly=n_anomaly,
        n_per_class=ALL,
        scorer=scorer,
        method=method,
        avg_rank=avg_rank,
        friedman_statistic=9.0,
        friedman_p=friedman_p,
        friedman_p_holm=friedman_p,
        cd=cd,
        n_blocks=n_blocks,
        n_methods=n_methods,
        wilcoxon_p=0.02 if method != "conventional" else np.nan,
        wilcoxon_p_holm=0.04 if method != "conventional" else np.nan,
        cases_overlap=overlap,
        note="",
    )


@pytest.fixture
def ranking() -> pd.DataFrame:
    rows = [
        ranking_row(1, "arcface", 1.2, 1.0, 3),
        ranking_row(1, "conventional", 2.8, 1.0, 3),
        ranking_row(1, "cosface", 2.0, 1.0, 3),
        # One method: no critical difference, no Friedman test.
        ranking_row(2, "conventional", 1.0, np.nan, 1, friedman_p=np.nan),
        # No complete block: no ranks.
        ranking_row(3, "conventional", np.nan, np.nan, 2, n_blocks=0, friedman_p=np.nan),
        ranking_row(3, "arcface", np.nan, np.nan, 2, n_blocks=0, friedman_p=np.nan),
        ranking_row(1, "arcface", 3.0, 9.0, 3, scorer="euclidean_k1"),
        # Friedman not significant: no CD drawn (the issue: a5's ranks, Friedman p 0.43)
        ranking_row(5, "arcface", 1.4, 1.0, 3, friedman_p=0.43),
        ranking_row(5, "conventional", 2.6, 1.0, 3, friedman_p=0.43),
        ranking_row(5, "cosface", 2.0, 1.0, 3, friedman_p=0.43),
        # significant, but the cases share anomaly classes: exploratory, no CD drawn
        ranking_row(8, "arcface", 1.0, 1.0, 3, overlap=True),
        ranking_row(8, "conventional", 2.5, 1.0, 3, overlap=True),
        ranking_row(8, "cosface", 2.5, 1.0, 3, overlap=True),
    ]
    return pd.DataFrame(rows, columns=stats.RANKING_COLUMNS)


def test_demsar_cliques_are_maximal_spans_within_cd():
    assert ranking_section.demsar_cliques([1.2, 2.0, 2.8], 1.0) == [(0, 1), (1, 2)]
    assert ranking_section.demsar_cliques([1.0, 1.5, 2.0, 3.5], 1.1) == [(0, 2)]  # (1, 2) lies inside (0, 2)
    assert ranking_section.demsar_cliques([1.0, 3.0], 1.0) == []
    assert ranking_section.demsar_cliques([1.5, 1.5], 0.5) == [(0, 1)]


def test_cd_layout_places_methods_cd_bar_and_cliques(ranking):
    layout = ranking_section.cd_layout(ranking)
    digits1 = layout[layout["n_anomaly"] == 1]
    got = digits1[["element", "method", "x", "x2", "y", "label"]].values.tolist()
    expected = [
        ["cd", "", 1.2, 2.2, 0.0, "CD = 1.00"],
        ["method", "arcface", 1.2, np.nan, 1.0, "arcface (1.20)"],
        ["method", "cosface", 2.0, np.nan, 2.0, "cosface (2.00)"],
        ["method", "conventional", 2.8, np.nan, 3.0, "conventional (2.80)"],
        ["clique", "", 1.2, 2.0, 3.6, ""],
        ["clique", "", 2.0, 2.8, 4.0, ""],
    ]
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g[:2] == e[:2] and g[5] == e[5]
        assert g[2:5] == pytest.approx(e[2:5], nan_ok=True)
    assert set(digits1["panel"]) == {"digits · 1 anomaly class — Friedman p = 0.01 (Holm), N = 10 cases"}
    # The worse half of the ranks is labelled on the left of its point.
    assert digits1.loc[digits1["element"] == "method", "align"].tolist() == ["left", "left", "right"]
    digits2 = layout[layout["n_anomaly"] == 2]
    assert digits2["element"].tolist() == ["method"]  # CD NaN: no bar, no cliques
    assert not (layout["n_anomaly"] == 3).any()
    # Friedman not significant, or cases overlapping: the methods only, no CD and no "not different" bars
    for n_anomaly in (5, 8):
        assert set(layout.loc[layout["n_anomaly"] == n_anomaly, "element"]) == {"method"}
    assert set(layout.loc[layout["n_anomaly"] == 8, "panel"]) == {
        "digits · 8 anomaly classes — Friedman p = 0.01 (Holm), exploratory: cases overlap, N = 10 cases"
    }


def test_cd_diagram_is_a_row_facet_that_names_what_is_missing(ranking):
    spec = ranking_section.cd_diagram(ranking).to_dict()
    assert len(chart_rows(spec)) == len(ranking_section.cd_layout(ranking))
    assert spec["facet"]["row"]["field"] == "panel"
    assert layer_marks(spec) == ["rule", "text", "rule", "point", "text", "text"]
    subtitle = " ".join(spec["title"]["subtitle"])
    assert (
        "no critical difference (Friedman test not significant, not possible, or cases overlap) for "
        "digits · 2 anomaly classes; digits · 5 anomaly classes; digits · 8 anomaly classes" in subtitle
    )
    assert "thick bars: not shown to differ" in subtitle
    assert "no ranks (no case has every method) for digits · 3 anomaly classes" in subtitle
    assert spec["usermeta"]["dmlbench"] == {"scorer": "cosine_k1", "n_per_class": ALL}
    with pytest.raises(DmlbenchError, match="no average ranks"):
        ranking_section.cd_diagram(ranking[ranking["n_anomaly"] == 3])
    with pytest.raises(DmlbenchError, match=r"ranking\.parquet has no rows for scorer='lof'"):
        ranking_section.cd_diagram(ranking, scorer="lof")


def test_ranking_tests_table_selects_and_orders(ranking):
    table = ranking_section.ranking_tests_table(ranking)
    assert list(table.columns) == [
        "dataset",
        "n_anomaly",
        "method",
        "avg_rank",
        "friedman_p",
        "friedman_p_holm",
        "cd",
        "n_blocks",
        "wilcoxon_p",
        "wilcoxon_p_holm",
        "cases_overlap",
        "note",
    ]
    assert table[["n_anomaly", "method"]].values.tolist()[:6] == [
        [1, "conventional"],
        [1, "arcface"],
        [1, "cosface"],
        [2, "conventional"],
        [3, "conventional"],
        [3, "arcface"],
    ]
    assert table["avg_rank"].tolist()[:3] == [2.8, 1.2, 2.0]
    with pytest.raises(DmlbenchError, match=r"ranking\.parquet lacks column\(s\) \['cd'\]"):
        ranking_section.ranking_tests_table(ranking.drop(columns="cd"))


def test_runtime_summary_per_rule_in_workflow_order():
    runtime = pd.DataFrame(
        {
            "rule": ["train", "score", "train", "custom", "train", "prepare"],
            "seconds": [60.0, 5.0, 120.0, 1.0, 30.0, 2.0],
            "max_rss_mb": [100.0, 50.0, 300.0, 10.0, 200.0, 20.0],
        }
    )
    table = reproducibility.runtime_summary(runtime)
    assert list(table.columns) == ["rule", "jobs", "total_minutes", "median_seconds", "max_seconds", "max_rss_mb"]
    assert table.values.tolist() == [
        ["prepare", 1, 2 / 60, 2.0, 2.0, 20.0],
        ["train", 3, 3.5, 60.0, 120.0, 300.0],
        ["score", 1, 5 / 60, 5.0, 5.0, 50.0],
        ["custom", 1, 1 / 60, 1.0, 1.0, 10.0],
    ]
    empty = reproducibility.runtime_summary(runtime.iloc[:0])
    assert list(empty.columns) == list(table.columns) and empty.empty
    with pytest.raises(DmlbenchError, match=r"runtime\.parquet lacks column\(s\) \['seconds'\]"):
        reproducibility.runtime_summary(runtime.drop(columns="seconds"))


def test_runtime_phases_per_rule_add_up_to_the_rules_wall_time():
    """Two train jobs (60 s and 40 s wall) and a score job (10 s); prepare has no phases."""
    nan = float("nan")
    runtime = pd.DataFrame(
        {
            "rule": ["score", "train", "train", "prepare"],
            "seconds": [10.0, 60.0, 40.0, 2.0],
            "startup_seconds": [4.0, 8.0, 7.0, nan],
            "training_seconds": [0.0, 45.0, 28.0, nan],
            "scoring_seconds": [5.0, 0.0, 0.0, nan],
            "writing_seconds": [0.5, 1.0, 1.0, nan],
            "other_seconds": [0.5, 6.0, 4.0, nan],
        }
    )
    table = reproducibility.runtime_phases(runtime)
    assert list(table.columns) == ["rule", "phase", "total_minutes", "share", "per_job_seconds"]
    names = reproducibility.PHASE_NAMES
    assert table[["rule", "phase"]].values.tolist() == [
        ["train", names["startup"]],
        ["train", names["training"]],
        ["train", names["writing"]],
        ["train", names["other"]],
        ["score", names["startup"]],
        ["score", names["scoring"]],
        ["score", names["writing"]],
        ["score", names["other"]],
    ]
    train = table[table.rule == "train"].set_index("phase")
    assert train.loc[names["training"], "share"] == pytest.approx(73 / 100)
    assert train.loc[names["startup"], "per_job_seconds"] == pytest.approx(7.5)
    assert train.loc[names["training"], "total_minutes"] == pytest.approx(73 / 60)
    for _, rule in table.groupby("rule"):
        assert rule["share"].sum() == pytest.approx(1.0)
    old = runtime[["rule", "seconds"]]  # a runtime table from before the phases
    assert reproducibility.runtime_phases(old).empty
