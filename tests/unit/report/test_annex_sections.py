"""The annex sections' builders (dmlbench.report.annex_k, annex_sample_size): A.1 AUROC against k, A.2 against images per class."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import vl_convert as vlc
from PIL import Image

from dmlbench.errors import DmlbenchError
from dmlbench.report import annex_k, annex_sample_size

CONDITIONS = [("fashion", 2), ("digits", 1)]
METHODS = ["arcface", "conventional"]  # not the study's order
SIZES = ["all", "100", "50"]
KNN = ["cosine_k10", "cosine_k1", "cosine_kall", "cosine_k5", "euclidean_k1", "euclidean_kall"]


def auroc(ci: int, method: str, n_per_class: str, scorer: str) -> float:
    """Known mean AUROC of a summary row."""
    k = {"1": 1, "5": 5, "10": 10, "all": 100}[scorer.split("_k")[1]] if "_k" in scorer else 0
    size = 1000 if n_per_class == "all" else int(n_per_class)
    return round(0.5 + 0.1 * ci + (0.2 if method == "arcface" else 0.0) + k / 1000 + size / 10000, 6)


def summary_frame(conditions=CONDITIONS, methods=METHODS, sizes=SIZES, scorers=(*KNN, "mahalanobis")) -> pd.DataFrame:
    rows = []
    for ci, (dataset, n_anomaly) in enumerate(conditions):
        for method in methods:
            for size in sizes:
                for scorer in scorers:
                    mean = auroc(ci, method, size, scorer)
                    key = dict(dataset=dataset, n_anomaly=n_anomaly, method=method, n_per_class=size, scorer=scorer)
                    rows.append(
                        {
                            **key,
                            "metric": "auroc",
                            "mean": mean,
                            "std": 0.01,
                            "n": 4,
                            "ci_low": mean - 0.02,
                            "ci_high": mean + 0.02,
                        }
                    )
                    rows.append(
                        {**key, "metric": "fpr95", "mean": 0.3, "std": 0.01, "n": 4, "ci_low": 0.29, "ci_high": 0.31}
                    )
    return pd.DataFrame(rows).astype({"n_anomaly": "int64", "n": "int64"})


def anomaly_normalised(method: str, n_per_class: str, seed: int, case: int) -> float:
    return (3.0 if method == "arcface" else 2.0) + int(n_per_class) / 100 + 0.5 * seed + 0.25 * case


def class_distances_frame(conditions=CONDITIONS, methods=METHODS, sizes=SIZES) -> pd.DataFrame:
    """Normal rows at 1.0 and 7.0 (so any leak into the mean shows), anomaly rows known."""
    rows = []
    for dataset, n_anomaly in conditions:
        for method in methods:
            for size in sizes:
                for seed in (0, 1):
                    for case in (0, 1):
                        for ki in range(4):
                            role = "anomaly" if ki < n_anomaly else "normal"
                            for scorer in ("cosine_k1", "euclidean_k1"):
                                if role == "normal":
                                    value = 1.0 if ki % 2 else 7.0
                                elif size == "all":
                                    value = 9.0
                                else:
                                    value = anomaly_normalised(method, size, seed, case) + ki
                                    value += 10.0 if scorer == "euclidean_k1" else 0.0
                                rows.append(
                                    dict(
                                        dataset=dataset,
                                        n_anomaly=n_anomaly,
                                        method=method,
                                        n_per_class=size,
                                        seed=seed,
                                        case=case,
                                        scorer=scorer,
                                        class_index=ki,
                                        class_name=f"c{ki}",
                                        role=role,
                                        mean_score=0.1 * value,
                                        normalised=value,
                                    )
                                )
    return pd.DataFrame(rows)


def render_png(chart) -> Image.Image:
    return Image.open(io.BytesIO(vlc.vegalite_to_png(chart.to_dict(), ppi=72)))


# --------------------------------------------------------------------------- A.1: k


def test_k_table_parses_and_orders_k():
    table = annex_k.k_table(summary_frame())
    assert list(table.columns) == [
        "dataset",
        "n_anomaly",
        "method",
        "distance",
        "k",
        "k_order",
        "mean",
        "ci_low",
        "ci_high",
        "n",
    ]
    # kNN AUROC rows of n_per_class "all" only: no mahalanobis, no fpr95, no n=50.
    assert len(table) == len(CONDITIONS) * len(METHODS) * len(KNN)
    first = table[(table["dataset"] == "digits") & (table["method"] == "conventional")]
    assert list(zip(first["distance"], first["k"], first["k_order"])) == [
        ("cosine", "1", 0),
        ("cosine", "5", 1),
        ("cosine", "10", 2),
        ("cosine", "all", 3),
        ("euclidean", "1", 0),
        ("euclidean", "all", 3),
    ]
    assert table[["dataset", "n_anomaly", "method"]].drop_duplicates().values.tolist() == [
        ["digits", 1, "conventional"],
        ["digits", 1, "arcface"],
        ["fashion", 2, "conventional"],
        ["fashion", 2, "arcface"],
    ]
    for row in table.itertuples(index=False):
        ci = [d for d, _ in CONDITIONS].index(row.dataset)
        assert row.mean == pytest.approx(auroc(ci, row.method, "all", f"{row.distance}_k{row.k}"))
        assert row.ci_high - row.ci_low == pytest.approx(0.04)
    small = annex_k.k_table(summary_frame(), n_per_class="50")
    assert small["mean"].tolist() == pytest.approx(
        [
            auroc([d for d, _ in CONDITIONS].index(r.dataset), r.method, "50", f"{r.distance}_k{r.k}")
            for r in small.itertuples()
        ]
    )


def test_k_table_without_knn_scorers_is_a_clear_error():
    with pytest.raises(DmlbenchError, match=r"kNN scorer.*\['mahalanobis', 'msp'\]"):
        annex_k.k_table(summary_frame(scorers=("mahalanobis", "msp")))
    with pytest.raises(DmlbenchError, match=r"n_per_class='7'.*\['50', '100', 'all'\]"):
        annex_k.k_table(summary_frame(), n_per_class="7")


def test_k_chart_spec():
    spec = annex_k.k_chart(summary_frame()).to_dict()  # validates against the Vega-Lite schema
    assert spec["usermeta"]["dmlbench"] == {"n_per_class": "all"}
    # One panel per condition (at most three to a row); the distance is the line style.
    assert spec["facet"]["field"] == "condition" and spec["columns"] == 2
    assert spec["facet"]["sort"] == ["digits · 1 anomaly class", "fashion · 2 anomaly classes"]
    line, point = spec["spec"]["layer"]
    assert line["encoding"]["strokeDash"]["sort"] == ["cosine", "euclidean"]
    assert line["mark"]["type"] == "line" and point["mark"]["type"] == "point"
    assert line["encoding"]["x"]["sort"] == ["1", "5", "10", "all"]
    assert line["encoding"]["color"]["scale"]["domain"] == ["conventional", "arcface"]
    rows = spec["datasets"][spec["data"]["name"]]
    assert len(rows) == len(annex_k.k_table(summary_frame()))


def test_k_chart_with_the_ci_config():
    """One condition, one method, k in {1, 5, all}, as config/test.yaml runs."""
    summary = summary_frame(
        conditions=[("digits", 3)],
        methods=["conventional"],
        sizes=["all"],
        scorers=("cosine_k1", "cosine_k5", "cosine_kall", "euclidean_k1", "euclidean_k5", "euclidean_kall"),
    )
    chart = annex_k.k_chart(summary)
    assert chart.to_dict()["spec"]["layer"][0]["encoding"]["x"]["sort"] == ["1", "5", "all"]
    assert render_png(chart).size[0] > 200


# --------------------------------------------------------------------------- A.2: images per class


def test_sample_size_table_matches_hand_computed_values():
    table = annex_sample_size.sample_size_table(summary_frame(), class_distances_frame())
    assert list(table.columns) == [
        "dataset",
        "n_anomaly",
        "method",
        "n_per_class",
        "auroc_mean",
        "auroc_ci_low",
        "auroc_ci_high",
        "anomaly_distance_mean",
        "n",
    ]
    assert table["n_per_class"].dtype == np.int64
    assert len(table) == len(CONDITIONS) * len(METHODS) * 2  # "all" left out
    assert table[["dataset", "method", "n_per_class"]].values.tolist()[:4] == [
        ["digits", "conventional", 50],
        ["digits", "conventional", 100],
        ["digits", "arcface", 50],
        ["digits", "arcface", 100],
    ]
    for row in table.itertuples(index=False):
        ci = [d for d, _ in CONDITIONS].index(row.dataset)
        assert row.auroc_mean == pytest.approx(auroc(ci, row.method, str(row.n_per_class), "cosine_k1"))
        assert row.auroc_ci_low == pytest.approx(row.auroc_mean - 0.02)
        assert row.n == 4
        # Mean over anomaly rows only (seeds, cases, anomaly classes ki < n_anomaly) of cosine_k1.
        values = [
            anomaly_normalised(row.method, str(row.n_per_class), s, c) + ki
            for s in (0, 1)
            for c in (0, 1)
            for ki in range(row.n_anomaly)
        ]
        assert row.anomaly_distance_mean == pytest.approx(np.mean(values))
    euclid = annex_sample_size.sample_size_table(summary_frame(), class_distances_frame(), scorer="euclidean_k1")
    assert (euclid["anomaly_distance_mean"] - table["anomaly_distance_mean"]).tolist() == pytest.approx(
        [10.0] * len(table)
    )


def test_sample_size_without_numeric_sizes_says_how_to_enable_it():
    with pytest.raises(DmlbenchError, match=r"annex A\.2.*not run.*annex\.sample_size.*\[50, 100, 200, 500\]"):
        annex_sample_size.sample_size_chart(summary_frame(sizes=["all"]), class_distances_frame(sizes=["all"]))
    with pytest.raises(DmlbenchError, match=r"scorer='lof'.*cosine_k1"):
        annex_sample_size.sample_size_table(summary_frame(), class_distances_frame(), scorer="lof")


def test_sample_size_chart_spec():
    chart = annex_sample_size.sample_size_chart(summary_frame(), class_distances_frame())
    spec = chart.to_dict()
    assert spec["usermeta"]["dmlbench"] == {"scorer": "cosine_k1", "distance_scorer": "cosine_k1"}
    top, bottom = spec["vconcat"]
    assert [layer["mark"]["type"] for layer in top["spec"]["layer"]] == ["errorbar", "line", "point"]
    x = bottom["spec"]["layer"][0]["encoding"]["x"]
    assert x["field"] == "n_per_class" and x["scale"]["type"] == "log" and x["axis"]["values"] == [50, 100]
    assert bottom["spec"]["layer"][0]["encoding"]["y"]["field"] == "anomaly_distance_mean"
    assert top["facet"]["sort"] == ["digits · 1 anomaly class", "fashion · 2 anomaly classes"] and top["columns"] == 2
    assert len(spec["datasets"][spec["data"]["name"]]) == len(CONDITIONS) * len(METHODS) * 2


def test_sample_size_chart_with_one_method_condition_and_size():
    summary = summary_frame(conditions=[("digits", 3)], methods=["conventional"], sizes=["all", "50"])
    chart = annex_sample_size.sample_size_chart(
        summary, class_distances_frame(conditions=[("digits", 3)], sizes=["all", "50"])
    )
    assert chart.to_dict()["vconcat"][0]["spec"]["layer"][0]["encoding"]["x"]["axis"]["values"] == [50]
    assert render_png(chart).size[0] > 200


def test_annex_recipe_names_what_annex_training_changes():
    from pathlib import Path

    from dmlbench.config import load_config

    config = load_config(Path(__file__).resolve().parents[3] / "config" / "test.yaml")
    # test.yaml: training.epochs 1, annex.training.epochs 2; one annex dataset
    assert annex_sample_size.annex_recipe(config) == "digits: epochs 2 (main runs 1)"
    config["annex"]["training"] = {"epochs": 1, "lr": 0.01}  # epochs unchanged: not named
    assert annex_sample_size.annex_recipe(config) == "digits: lr 0.01 (main runs 0.005)"
    config["annex"]["training"] = {}
    assert annex_sample_size.annex_recipe(config) == "none"


def test_distance_scorer_falls_back_for_scores_that_are_no_distances():
    from dmlbench.report.study import distance_scorer

    config = {"scoring": {"distances": ["cosine", "euclidean"]}}
    assert [distance_scorer(config, s) for s in ("euclidean_k10", "mahalanobis", "lof", "msp", "maxlogit")] == [
        "euclidean_k10",
        "mahalanobis",
        "lof",
        "cosine_k1",
        "cosine_k1",
    ]
    assert distance_scorer({"scoring": {"distances": ["euclidean"]}}, "msp") == "euclidean_k1"
