"""Section 5, Balance of normal and anomaly classes: AUROC and anomaly distance against the
number of anomaly classes."""

from __future__ import annotations

from dmlbench.errors import DmlbenchError
from dmlbench.report._declare import Column, Figure, Table
from dmlbench.report._style import (
    CLASS_DISTANCES_COLUMNS,
    FACET_COLUMNS,
    PANEL_HEIGHT,
    PANEL_WIDTH,
    alt,
    method_colour,
    method_order,
    ordered,
    pd,
    require_columns,
    select,
    selection,
    summary_auroc,
    titled,
)

TITLE = "Balance of normal and anomaly classes"
BALANCE_MEASURES = {"auroc_mean": "mean AUROC", "anomaly_distance_mean": "anomaly distance (×)"}


def balance_table(
    summary: pd.DataFrame,
    class_distances: pd.DataFrame,
    scorer: str = "cosine_k1",
    n_per_class: str = "all",
    distance_scorer: str | None = None,
) -> pd.DataFrame:
    """Per condition × method: mean AUROC of ``scorer`` (summary) and mean normalised distance of the
    anomaly classes (over cases × seeds × anomaly classes of ``class_distances``) of
    ``distance_scorer`` (default ``scorer``; a scorer that is no distance has none); NaN where one
    is missing.

    Columns: dataset, n_anomaly, method, auroc_mean, anomaly_distance_mean.
    """
    keys = ["dataset", "n_anomaly", "method"]
    auroc = summary_auroc(summary, scorer, n_per_class)[keys + ["mean"]].rename(columns={"mean": "auroc_mean"})
    require_columns(class_distances, CLASS_DISTANCES_COLUMNS, "class_distances.parquet")
    distance_scorer = distance_scorer or scorer
    rows = select(class_distances, "class_distances.parquet", scorer=distance_scorer, n_per_class=n_per_class)
    anomalies = rows[rows["role"] == "anomaly"]
    if anomalies.empty:
        raise DmlbenchError(
            f"class_distances.parquet has no anomaly-class rows for scorer={distance_scorer!r} and "
            f"n_per_class={str(n_per_class)!r}; re-run `dmlbench aggregate`."
        )
    distance = (
        anomalies.groupby(keys)["normalised"]
        .mean()
        .rename("anomaly_distance_mean")
        .reset_index()
        .astype({"n_anomaly": "int64"})
    )
    return ordered(auroc.merge(distance, on=keys, how="outer"))


def balance_chart(
    summary: pd.DataFrame,
    class_distances: pd.DataFrame,
    scorer: str = "cosine_k1",
    n_per_class: str = "all",
    distance_scorer: str | None = None,
):
    """Effect of the number of anomaly classes: mean AUROC (top row) and mean normalised anomaly
    distance (bottom row) against n_anomaly, one line per method, one column per dataset.

    Each row's data is its part of ``balance_table`` in long form (columns dataset, n_anomaly,
    method, measure, value).
    """
    distance_scorer = distance_scorer or scorer
    table = balance_table(summary, class_distances, scorer, n_per_class, distance_scorer)
    data = table.melt(
        id_vars=["dataset", "n_anomaly", "method"],
        value_vars=list(BALANCE_MEASURES),
        var_name="measure",
        value_name="value",
    ).dropna(subset=["value"])
    data["measure"] = data["measure"].map(BALANCE_MEASURES)
    methods = method_order(data["method"].unique())

    def row(measure: str, top: bool):
        line = (
            alt.Chart()
            .mark_line(point=alt.OverlayMarkDef(filled=True, size=30))
            .encode(
                x=alt.X("n_anomaly:O", title=None if top else "anomaly classes", axis=alt.Axis(labelAngle=0)),
                # An explicit format: a single value (one condition) otherwise gets the tick label "0".
                y=alt.Y(
                    "value:Q", scale=alt.Scale(zero=False), title=measure, axis=alt.Axis(format=".3~f", tickCount=5)
                ),
                color=method_colour(methods),
                tooltip=["dataset:N", "n_anomaly:O", "method:N", alt.Tooltip("value:Q", format=".3f")],
            )
            .properties(width=PANEL_WIDTH, height=PANEL_HEIGHT - 30)
        )
        # Dataset names head the top row only; more than three datasets wrap.
        panels = alt.Facet("dataset:N", header=alt.Header(title=None, labels=top))
        return line.facet(
            facet=panels, columns=min(FACET_COLUMNS, data["dataset"].nunique()), data=data[data["measure"] == measure]
        ).resolve_scale(x="independent")

    rows = [row(BALANCE_MEASURES["auroc_mean"], True), row(BALANCE_MEASURES["anomaly_distance_mean"], False)]
    return titled(
        alt.vconcat(*rows),
        "Effect of the normal/anomaly balance",
        [
            selection(scorer=scorer, n_per_class=n_per_class)
            + ("" if distance_scorer == scorer else f" · distances: {distance_scorer}"),
            "means over cases × seeds",
        ],
        scorer=scorer,
        n_per_class=n_per_class,
        distance_scorer=distance_scorer,
    )


FIGURES = (
    Figure(
        "fig-balance",
        "Mean AUROC (top) and mean normalised distance of the anomaly classes (bottom) against the number of "
        "anomaly classes, per dataset and method.",
        lambda v: balance_chart(
            v.t["summary"], v.t["class_distances"], scorer=v.scorer, n_per_class=v.n, distance_scorer=v.distance_scorer
        ),
    ),
)
TABLES = (
    Table(
        "tbl-balance",
        "Mean AUROC and mean normalised distance of the anomaly classes per dataset, number of anomaly classes "
        "and method.",
        lambda v: balance_table(
            v.t["summary"], v.t["class_distances"], scorer=v.scorer, n_per_class=v.n, distance_scorer=v.distance_scorer
        ),
        columns=(
            Column("dataset", "dataset"),
            Column("n_anomaly", "anomaly classes", "d", 0.8),
            Column("method", "method", None, 1.1),
            Column("auroc_mean", "mean AUROC", ".3f"),
            Column("anomaly_distance_mean", "anomaly distance (× normal)", ".2f", 1.2),
        ),
    ),
)
