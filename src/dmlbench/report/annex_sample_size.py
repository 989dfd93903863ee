"""Annex A.2: images per class - AUROC and anomaly distance against the number of training
images per normal class (with mixup as the config sets it)."""

from __future__ import annotations

from dmlbench.config import annex_conditions, training_recipe
from dmlbench.errors import DmlbenchError
from dmlbench.report._declare import Column, Figure, Table
from dmlbench.report._style import (
    CLASS_DISTANCES_COLUMNS,
    FACET_COLUMNS,
    PANEL_HEIGHT,
    PANEL_WIDTH,
    SUMMARY_COLUMNS,
    alt,
    auroc_rows,
    method_colour_scale,
    method_order,
    ordered,
    pd,
    require_columns,
    selection,
    titled,
    with_condition,
)

TITLE = "Annex A.2: images per class"


def needs_annex(config: dict) -> str | None:
    if config["annex"]["sample_size"]:
        return None
    return "annex A.2 was not run (`annex.sample_size` is empty); set it, e.g. [50, 100, 200, 500]"


def annex_recipe(config: dict) -> str:
    """What ``annex.training`` changes in the recipe of each annex dataset, against its main runs:
    ``"digits: epochs 20 (main runs 6)"``; ``"none"`` when it changes nothing."""
    parts = []
    for dataset in dict.fromkeys(d for d, _ in annex_conditions(config)):
        main = training_recipe(config, dataset, "all")
        annex = dict(main, **config["annex"]["training"])
        changed = [
            f"{key} {annex[key]} (main runs {main.get(key, '–')})"
            for key in config["annex"]["training"]
            if annex[key] != main.get(key)
        ]
        if changed:
            parts.append(f"{dataset}: {', '.join(changed)}")
    return "; ".join(parts) or "none"


def sample_size_table(
    summary: pd.DataFrame, class_distances: pd.DataFrame, scorer: str = "cosine_k1", distance_scorer: str | None = None
) -> pd.DataFrame:
    """AUROC and anomaly distance per condition, method and number of training images per class.

    Only numeric ``n_per_class`` values (annex A.2's subsampled runs) are kept; the main
    study's "all" is left out because it is no point on a numeric axis. Columns: dataset,
    n_anomaly, method, n_per_class (int), auroc_mean, auroc_ci_low, auroc_ci_high (from
    ``summary``), anomaly_distance_mean (mean ``normalised`` of ``distance_scorer``, default
    ``scorer``, over the anomaly-class rows of ``class_distances``: all cases, seeds and anomaly
    classes), n (AUROC values).
    """
    auroc = auroc_rows(summary, "summary.parquet", SUMMARY_COLUMNS)
    require_columns(class_distances, CLASS_DISTANCES_COLUMNS, "class_distances.parquet")
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
    distance_scorer = distance_scorer or scorer
    anomalies = class_distances[(class_distances["role"] == "anomaly") & (class_distances["scorer"] == distance_scorer)]
    distance = (
        anomalies.assign(n_per_class=anomalies["n_per_class"].astype(str))
        .groupby(keys, sort=False)["normalised"]
        .mean()
        .rename("anomaly_distance_mean")
        .reset_index()
    )
    data = selected.assign(n_per_class=selected["n_per_class"].astype(str)).rename(
        columns={"mean": "auroc_mean", "ci_low": "auroc_ci_low", "ci_high": "auroc_ci_high"}
    )
    data = data.merge(distance, on=keys, how="left")
    data = data.astype({"n_anomaly": "int64", "n_per_class": "int64", "n": "int64"})
    columns = [*keys, "auroc_mean", "auroc_ci_low", "auroc_ci_high", "anomaly_distance_mean", "n"]
    return ordered(data[columns], "n_per_class")


def sample_size_chart(
    summary: pd.DataFrame, class_distances: pd.DataFrame, scorer: str = "cosine_k1", distance_scorer: str | None = None
):
    """AUROC (top, with 95 % CI bars) and mean anomaly distance (bottom) against images per
    class on a log axis, colour = method, one column per condition (annex A.2)."""
    distance_scorer = distance_scorer or scorer
    data, conditions = with_condition(sample_size_table(summary, class_distances, scorer, distance_scorer))
    methods = method_order(data["method"].unique())
    sizes = sorted(data["n_per_class"].unique().tolist())
    scale = alt.Scale(type="log", domain=[sizes[0] / 1.25, sizes[-1] * 1.25], nice=False)
    axis = alt.Axis(values=sizes, format="d")
    colour = alt.Color("method:N", scale=method_colour_scale(methods), legend=alt.Legend(title="method"))
    tooltip = [
        "method:N",
        "n_per_class:Q",
        alt.Tooltip("auroc_mean:Q", format=".4f"),
        alt.Tooltip("auroc_ci_low:Q", format=".4f"),
        alt.Tooltip("auroc_ci_high:Q", format=".4f"),
        alt.Tooltip("anomaly_distance_mean:Q", format=".3f"),
        "n:Q",
    ]

    def panels(layers: list, top: bool):
        header = alt.Header() if top else alt.Header(labels=False)
        return (
            alt.layer(*layers, data=data)
            .properties(width=PANEL_WIDTH, height=PANEL_HEIGHT * 3 // 4)
            .facet(
                facet=alt.Facet("condition:N", sort=conditions, title=None, header=header),
                columns=min(FACET_COLUMNS, len(conditions)),
            )
        )

    auroc = alt.Chart().encode(
        x=alt.X("n_per_class:Q", scale=scale, axis=axis, title=None),
        y=alt.Y("auroc_mean:Q", scale=alt.Scale(zero=False), title="mean AUROC"),
        color=colour,
        tooltip=tooltip,
    )
    distance = alt.Chart().encode(
        x=alt.X("n_per_class:Q", scale=scale, axis=axis, title="training images per normal class"),
        y=alt.Y("anomaly_distance_mean:Q", scale=alt.Scale(zero=False), title="anomaly distance (× normal)"),
        color=colour,
        tooltip=tooltip,
    )
    chart = alt.vconcat(
        panels(
            [
                auroc.mark_errorbar(ticks=True).encode(
                    y=alt.Y("auroc_ci_low:Q", title="mean AUROC"), y2="auroc_ci_high:Q"
                ),
                auroc.mark_line(),
                auroc.mark_point(filled=True, size=40),
            ],
            top=True,
        ),
        panels([distance.mark_line(), distance.mark_point(filled=True, size=40)], top=False),
        spacing=8,
    )
    return titled(
        chart,
        "Annex A.2: effect of the number of training images per class",
        [
            selection(scorer=scorer) + ("" if distance_scorer == scorer else f" · distances: {distance_scorer}"),
            "mean over cases (seeds averaged within a case); bars: 95 % interval over cases",
        ],
        scorer=scorer,
        distance_scorer=distance_scorer,
    )


FIGURES = (
    Figure(
        "fig-annex-sample-size",
        "Mean AUROC (with its 95 % interval over cases) and mean normalised anomaly distance against the number "
        "of training images per normal class.",
        lambda v: sample_size_chart(
            v.t["summary"], v.t["class_distances"], scorer=v.scorer, distance_scorer=v.distance_scorer
        ),
        needs_annex,
    ),
)
TABLES = (
    Table(
        "tbl-annex-sample-size",
        "Mean AUROC with its 95 % interval over cases and mean normalised anomaly distance per condition, method "
        "and number of training images per class.",
        lambda v: sample_size_table(
            v.t["summary"], v.t["class_distances"], scorer=v.scorer, distance_scorer=v.distance_scorer
        ),
        needs_annex,
        columns=(
            Column("dataset", "dataset"),
            Column("n_anomaly", "anomaly classes", "d", 0.8),
            Column("method", "method", None, 1.1),
            Column("n_per_class", "images per class", "d"),
            Column("auroc_mean", "mean AUROC", ".3f"),
            Column("auroc_ci_low", "95 % CI low", ".3f"),
            Column("auroc_ci_high", "95 % CI high", ".3f"),
            Column("anomaly_distance_mean", "anomaly distance (× normal)", ".2f", 1.2),
            Column("n", "n", "d", 0.5),
        ),
    ),
)
