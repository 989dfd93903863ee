"""Pure builders for the report's annexes: A.1 (k of the k-min mean), A.2 (images per class).

Nothing here reads or writes files. Inputs are ``summary`` (one row per condition, method,
n_per_class, scorer and metric, over cases × seeds) and ``class_distances``
(docs/tables.md).
"""

from __future__ import annotations

import altair as alt
import pandas as pd

from dmlbench.charts import (
    CLASS_DISTANCES_COLUMNS,
    PANEL_HEIGHT,
    PANEL_WIDTH,
    _n_per_class_order,
    _require_columns,
    _with_condition,
    method_colour_scale,
    method_order,
)
from dmlbench.errors import DmlbenchError

SUMMARY_COLUMNS = [
    "dataset", "n_anomaly", "method", "n_per_class", "scorer", "metric", "mean", "std", "n", "ci_low", "ci_high",
]
DISTANCE_ORDER = ("cosine", "euclidean")
_KNN_SCORER = r"^(cosine|euclidean)_k(\d+|all)$"


def _sorted_by_method(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Rows by dataset, n_anomaly, the study's method order, then ``keys``."""
    methods = method_order(df["method"].unique())
    df = df.assign(_m=df["method"].map(methods.index))
    df = df.sort_values(["dataset", "n_anomaly", "_m", *keys], kind="mergesort")
    return df.drop(columns="_m").reset_index(drop=True)


def _auroc(summary: pd.DataFrame) -> pd.DataFrame:
    _require_columns(summary, SUMMARY_COLUMNS, "summary.parquet")
    auroc = summary[summary["metric"] == "auroc"]
    if auroc.empty:
        raise DmlbenchError("summary.parquet has no AUROC rows; re-run `dmlbench aggregate`.")
    return auroc


# --------------------------------------------------------------------------- A.1: k


def k_table(summary: pd.DataFrame, n_per_class: str = "all") -> pd.DataFrame:
    """Mean AUROC per condition, method, distance and k of the kNN scorers (``cosine_k5``, ...).

    Columns: dataset, n_anomaly, method, distance, k (string: "1", "5", ..., "all"),
    k_order (position of k among the k values present, numbers ascending, "all" last),
    mean, ci_low, ci_high, n. Rows by condition, method (study order), distance, k_order.
    """
    auroc = _auroc(summary)
    parts = auroc["scorer"].str.extract(_KNN_SCORER)
    data = auroc.assign(distance=parts[0], k=parts[1])
    data = data[data["distance"].notna() & (data["n_per_class"].astype(str) == str(n_per_class))]
    if data.empty:
        raise DmlbenchError(
            f"summary.parquet has no AUROC rows of a kNN scorer (cosine_k…, euclidean_k…) for "
            f"n_per_class={str(n_per_class)!r}; it has scorers {sorted(auroc['scorer'].unique().tolist())} "
            f"and n_per_class {_n_per_class_order(auroc['n_per_class'].unique())}."
        )
    ks = _n_per_class_order(data["k"].unique())  # the same order: numbers ascending, then "all"
    data = data.assign(k_order=data["k"].map(ks.index).astype("int64"), n_anomaly=data["n_anomaly"].astype("int64"))
    columns = ["dataset", "n_anomaly", "method", "distance", "k", "k_order", "mean", "ci_low", "ci_high", "n"]
    return _sorted_by_method(data[columns], ["distance", "k_order"])


def k_chart(summary: pd.DataFrame, n_per_class: str = "all") -> alt.FacetChart:
    """Mean AUROC against k per method: rows = distance, columns = condition (annex A.1)."""
    data, conditions = _with_condition(k_table(summary, n_per_class))
    methods = method_order(data["method"].unique())
    ks = data.sort_values("k_order")["k"].drop_duplicates().tolist()
    distances = [d for d in DISTANCE_ORDER if d in set(data["distance"])]
    base = alt.Chart().encode(
        x=alt.X("k:O", sort=ks, title="k", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("mean:Q", scale=alt.Scale(zero=False), title="mean AUROC"),
        color=alt.Color("method:N", scale=method_colour_scale(methods), legend=alt.Legend(title="method")),
        tooltip=["method:N", "distance:N", "k:O", alt.Tooltip("mean:Q", format=".4f"),
                 alt.Tooltip("ci_low:Q", format=".4f"), alt.Tooltip("ci_high:Q", format=".4f"), "n:Q"],
    )
    return (
        alt.layer(base.mark_line(), base.mark_point(filled=True, size=40), data=data)
        .properties(width=PANEL_WIDTH, height=PANEL_HEIGHT * 3 // 4)
        .facet(
            row=alt.Row("distance:N", sort=distances, title=None),
            column=alt.Column("condition:N", sort=conditions, title=None),
        )
        .properties(
            title=alt.TitleParams(
                "Annex A.1: AUROC against k of the k-min mean",
                subtitle=[
                    "score = mean of the k smallest distances (all = whole reference set)",
                    f"n_per_class {n_per_class}; mean over cases × seeds",
                ],
            ),
            usermeta={"dmlbench": {"figure": "fig-annex-k", "n_per_class": str(n_per_class)}},
        )
    )


# --------------------------------------------------------------------------- A.2: images per class


def sample_size_table(
    summary: pd.DataFrame, class_distances: pd.DataFrame, scorer: str = "cosine_k1"
) -> pd.DataFrame:
    """AUROC and anomaly distance per condition, method and number of training images per class.

    Only numeric ``n_per_class`` values (annex A.2's subsampled runs) are kept; the main
    study's "all" is left out because it is no point on a numeric axis. Columns: dataset,
    n_anomaly, method, n_per_class (int), auroc_mean, auroc_ci_low, auroc_ci_high (from
    ``summary``), anomaly_distance_mean (mean ``normalised`` over the anomaly-class rows of
    ``class_distances``: all cases, seeds and anomaly classes), n (AUROC values).
    """
    auroc = _auroc(summary)
    _require_columns(class_distances, CLASS_DISTANCES_COLUMNS, "class_distances.parquet")
    numeric = auroc[auroc["n_per_class"].astype(str).str.fullmatch(r"\d+")]
    if numeric.empty:
        raise DmlbenchError(
            "summary.parquet has no numeric n_per_class (only 'all'): annex A.2 (images per class) was "
            "not run. Enable it with the config key `annex.sample_size`, e.g. `annex: {sample_size: "
            "[50, 100, 200, 500]}`, and run the workflow again."
        )
    selected = numeric[numeric["scorer"] == scorer]
    if selected.empty:
        raise DmlbenchError(
            f"summary.parquet has no AUROC rows of scorer={scorer!r} with a numeric n_per_class; "
            f"those rows have scorers {sorted(numeric['scorer'].unique().tolist())}."
        )
    keys = ["dataset", "n_anomaly", "method", "n_per_class"]
    anomalies = class_distances[(class_distances["role"] == "anomaly") & (class_distances["scorer"] == scorer)]
    distance = (
        anomalies.assign(n_per_class=anomalies["n_per_class"].astype(str))
        .groupby(keys, sort=False)["normalised"].mean().rename("anomaly_distance_mean").reset_index()
    )
    data = selected.assign(n_per_class=selected["n_per_class"].astype(str)).rename(
        columns={"mean": "auroc_mean", "ci_low": "auroc_ci_low", "ci_high": "auroc_ci_high"}
    )
    data = data.merge(distance, on=keys, how="left")
    data = data.astype({"n_anomaly": "int64", "n_per_class": "int64", "n": "int64"})
    columns = [*keys, "auroc_mean", "auroc_ci_low", "auroc_ci_high", "anomaly_distance_mean", "n"]
    return _sorted_by_method(data[columns], ["n_per_class"])


def sample_size_chart(
    summary: pd.DataFrame, class_distances: pd.DataFrame, scorer: str = "cosine_k1"
) -> alt.VConcatChart:
    """AUROC (top, with 95 % CI bars) and mean anomaly distance (bottom) against images per
    class on a log axis, colour = method, one column per condition (annex A.2)."""
    data, conditions = _with_condition(sample_size_table(summary, class_distances, scorer))
    methods = method_order(data["method"].unique())
    sizes = sorted(data["n_per_class"].unique().tolist())
    scale = alt.Scale(type="log", domain=[sizes[0] / 1.25, sizes[-1] * 1.25], nice=False)
    axis = alt.Axis(values=sizes, format="d")
    colour = alt.Color("method:N", scale=method_colour_scale(methods), legend=alt.Legend(title="method"))
    tooltip = ["method:N", "n_per_class:Q", alt.Tooltip("auroc_mean:Q", format=".4f"),
               alt.Tooltip("auroc_ci_low:Q", format=".4f"), alt.Tooltip("auroc_ci_high:Q", format=".4f"),
               alt.Tooltip("anomaly_distance_mean:Q", format=".3f"), "n:Q"]

    def panels(layers: list[alt.Chart], top: bool) -> alt.FacetChart:
        header = alt.Header() if top else alt.Header(labels=False)
        return (
            alt.layer(*layers, data=data)
            .properties(width=PANEL_WIDTH, height=PANEL_HEIGHT * 3 // 4)
            .facet(column=alt.Column("condition:N", sort=conditions, title=None, header=header))
        )

    auroc = alt.Chart().encode(
        x=alt.X("n_per_class:Q", scale=scale, axis=axis, title=None),
        y=alt.Y("auroc_mean:Q", scale=alt.Scale(zero=False), title="mean AUROC"),
        color=colour, tooltip=tooltip,
    )
    distance = alt.Chart().encode(
        x=alt.X("n_per_class:Q", scale=scale, axis=axis, title="training images per normal class"),
        y=alt.Y("anomaly_distance_mean:Q", scale=alt.Scale(zero=False), title="anomaly distance (× normal)"),
        color=colour, tooltip=tooltip,
    )
    return (
        alt.vconcat(
            panels([auroc.mark_errorbar(ticks=True).encode(y=alt.Y("auroc_ci_low:Q", title="mean AUROC"),
                                                           y2="auroc_ci_high:Q"),
                    auroc.mark_line(), auroc.mark_point(filled=True, size=40)], top=True),
            panels([distance.mark_line(), distance.mark_point(filled=True, size=40)], top=False),
            spacing=8,
        )
        .properties(
            title=alt.TitleParams(
                "Annex A.2: effect of the number of training images per class",
                subtitle=[
                    f"scorer {scorer}; mean over cases × seeds; bars: 95 % bootstrap CI",
                    "anomaly distance: mean score of the anomaly classes / mean normal score",
                ],
            ),
            usermeta={"dmlbench": {"figure": "fig-annex-sample-size", "scorer": scorer}},
        )
    )
