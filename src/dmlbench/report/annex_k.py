"""Annex A.1: the k of the k-min mean - mean AUROC against k per method and distance."""

from __future__ import annotations

from dmlbench.errors import DmlbenchError
from dmlbench.report._declare import Figure, Table
from dmlbench.report._style import (
    PANEL_HEIGHT,
    PANEL_WIDTH,
    SUMMARY_COLUMNS,
    alt,
    auroc_rows,
    facet,
    method_colour_scale,
    method_order,
    n_per_class_order,
    ordered,
    pd,
    selection,
    titled,
    with_condition,
)

TITLE = "Annex A.1: the k of the k-nearest mean"
DISTANCE_ORDER = ("cosine", "euclidean")
_KNN_SCORER = r"^(cosine|euclidean)_k(\d+|all)$"


def k_table(summary: pd.DataFrame, n_per_class: str = "all") -> pd.DataFrame:
    """Mean AUROC per condition, method, distance and k of the kNN scorers (``cosine_k5``, ...).

    Columns: dataset, n_anomaly, method, distance, k (string: "1", "5", ..., "all"),
    k_order (position of k among the k values present, numbers ascending, "all" last),
    mean, ci_low, ci_high, n. Rows by condition, method (study order), distance, k_order.
    """
    auroc = auroc_rows(summary, "summary.parquet", SUMMARY_COLUMNS)
    parts = auroc["scorer"].str.extract(_KNN_SCORER)
    data = auroc.assign(distance=parts[0], k=parts[1])
    data = data[data["distance"].notna() & (data["n_per_class"].astype(str) == str(n_per_class))]
    if data.empty:
        raise DmlbenchError(
            f"summary.parquet has no AUROC rows of a kNN scorer (cosine_k…, euclidean_k…) for "
            f"n_per_class={str(n_per_class)!r}; it has scorers {sorted(auroc['scorer'].unique().tolist())} "
            f"and n_per_class {n_per_class_order(auroc['n_per_class'].unique())}."
        )
    ks = n_per_class_order(data["k"].unique())  # the same order: numbers ascending, then "all"
    data = data.assign(k_order=data["k"].map(ks.index).astype("int64"), n_anomaly=data["n_anomaly"].astype("int64"))
    columns = ["dataset", "n_anomaly", "method", "distance", "k", "k_order", "mean", "ci_low", "ci_high", "n"]
    return ordered(data[columns], "distance", "k_order")


def k_chart(summary: pd.DataFrame, n_per_class: str = "all"):
    """Mean AUROC against k per method (colour) and distance (line style), one panel per condition
    (annex A.1)."""
    data, conditions = with_condition(k_table(summary, n_per_class))
    methods = method_order(data["method"].unique())
    ks = data.sort_values("k_order")["k"].drop_duplicates().tolist()
    distances = [d for d in DISTANCE_ORDER if d in set(data["distance"])]
    base = alt.Chart().encode(
        x=alt.X("k:O", sort=ks, title="k", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("mean:Q", scale=alt.Scale(zero=False), title="mean AUROC"),
        color=alt.Color("method:N", scale=method_colour_scale(methods), legend=alt.Legend(title="method")),
        strokeDash=alt.StrokeDash("distance:N", sort=distances, legend=alt.Legend(title="distance")),
        tooltip=[
            "method:N",
            "distance:N",
            "k:O",
            alt.Tooltip("mean:Q", format=".4f"),
            alt.Tooltip("ci_low:Q", format=".4f"),
            alt.Tooltip("ci_high:Q", format=".4f"),
            "n:Q",
        ],
    )
    points = base.mark_point(filled=True, size=25).encode(shape=alt.Shape("distance:N", sort=distances, legend=None))
    layered = alt.layer(base.mark_line(), points, data=data).properties(width=PANEL_WIDTH, height=PANEL_HEIGHT)
    return titled(
        facet(layered, conditions),
        "Annex A.1: AUROC against k of the k-min mean",
        [selection(n_per_class=n_per_class), "mean over cases × seeds; solid: cosine, dashed: Euclidean"],
        n_per_class=n_per_class,
    )


FIGURES = (
    Figure(
        "fig-annex-k",
        "Mean AUROC against k, the number of nearest reference embeddings whose distances are averaged "
        "(all: the whole reference set), per method and distance, per condition.",
        lambda v: k_chart(v.t["summary"], n_per_class=v.n),
    ),
)
TABLES = (
    Table(
        "tbl-annex-k",
        "Mean AUROC with its 95 % interval over cases per condition, method, distance and k (the numbers of the "
        "annex A.1 figure).",
        lambda v: k_table(v.t["summary"], n_per_class=v.n),
        printed=False,
    ),
)
