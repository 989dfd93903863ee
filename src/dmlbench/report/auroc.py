"""Section 3, AUROC per condition: the study's main figure (a box per method over cases × seeds),
all conditions with 95 % intervals over cases, and the table of means."""

from __future__ import annotations

from dmlbench.report._declare import Column, Figure, Table
from dmlbench.report._style import (
    CONDITION_KEYS,
    METRICS_COLUMNS,
    PANEL_HEIGHT,
    PANEL_WIDTH,
    alt,
    auroc_rows,
    chance_rule,
    facet,
    method_colour,
    method_colour_scale,
    method_order,
    n_per_class_order,
    pd,
    require_columns,
    select,
    selection,
    summary_auroc,
    titled,
    unit_domain,
    with_condition,
)

TITLE = "AUROC per condition"


def auroc_summary(metrics: pd.DataFrame) -> pd.DataFrame:
    """AUROC per condition × method × n_per_class × scorer: mean, std (ddof=1) and n over cases × seeds.

    Rows are ordered by dataset, n_anomaly, the study's method order, n_per_class, scorer.
    """
    require_columns(metrics, METRICS_COLUMNS, "metrics.parquet")
    auroc = metrics[metrics["metric"] == "auroc"]
    keys = ["dataset", "n_anomaly", "method", "n_per_class", "scorer"]
    out = auroc.groupby(keys, sort=False)["value"].agg(mean="mean", std="std", n="count").reset_index()
    methods = method_order(out["method"].unique())
    sizes = n_per_class_order(out["n_per_class"].unique())
    out["_m"] = out["method"].map(methods.index)
    out["_n"] = out["n_per_class"].astype(str).map(sizes.index)
    out = out.sort_values(["dataset", "n_anomaly", "_m", "_n", "scorer"]).drop(columns=["_m", "_n"])
    out["n_anomaly"] = out["n_anomaly"].astype("int64")
    out["n"] = out["n"].astype("int64")
    return out.reset_index(drop=True)


def auroc_box(metrics: pd.DataFrame, scorer: str = "cosine_k1", n_per_class: str = "all"):
    """Box plot of AUROC over cases × seeds per method, one panel per condition.

    Rows of ``metrics`` with metric "auroc", the given ``scorer`` and ``n_per_class`` are
    plotted; a dashed rule marks chance (AUROC 0.5). The chart's data is exactly those rows
    (columns dataset, n_anomaly, condition, method, n_per_class, seed, case, scorer, auroc).
    """
    require_columns(metrics, METRICS_COLUMNS, "metrics.parquet")
    auroc = auroc_rows(metrics, "metrics.parquet")
    data = select(auroc, "metrics.parquet", scorer=scorer, n_per_class=n_per_class, extra=" AUROC")
    data, conditions = with_condition(data)
    data = data[
        ["dataset", "n_anomaly", "condition", "method", "n_per_class", "seed", "case", "scorer", "value"]
    ].rename(columns={"value": "auroc"})
    data["n_per_class"] = data["n_per_class"].astype(str)
    data = data.reset_index(drop=True)
    methods = method_order(data["method"].unique())

    box = (
        alt.Chart()
        .mark_boxplot(size=14, extent=1.5)
        .encode(
            x=alt.X("method:N", sort=methods, title=None, axis=alt.Axis(labelAngle=-40)),
            y=alt.Y("auroc:Q", scale=alt.Scale(domain=[0, 1]), title="AUROC"),
            color=alt.Color("method:N", scale=method_colour_scale(methods), legend=None),
        )
    )
    # One rule per panel: aggregate to a single row before drawing; rule first, boxes over it.
    layered = alt.layer(chance_rule(["condition"], y=0.5), box, data=data).properties(
        width=PANEL_WIDTH, height=PANEL_HEIGHT
    )
    return titled(
        facet(layered, conditions),
        "AUROC per condition and method",
        [selection(scorer=scorer, n_per_class=n_per_class), "box over cases × seeds; dashed: chance"],
        scorer=scorer,
        n_per_class=n_per_class,
    )


def auroc_ci_table(summary: pd.DataFrame, scorer: str = "cosine_k1", n_per_class: str = "all") -> pd.DataFrame:
    """Mean AUROC with its 95 % interval per condition × method (study order); ``best`` marks the
    highest mean of each condition (ties all marked).

    Columns: dataset, n_anomaly, method, mean, ci_low, ci_high, n, best.
    """
    data = summary_auroc(summary, scorer, n_per_class).drop(columns="condition")
    data["best"] = data["mean"] == data.groupby(CONDITION_KEYS)["mean"].transform("max")
    return data


def auroc_overview(summary: pd.DataFrame, scorer: str = "cosine_k1", n_per_class: str = "all"):
    """Mean AUROC and its 95 % interval per method for every condition in one chart.

    One row per condition (y), methods side by side within it (colour); a dashed rule marks
    chance. The chart's data is the summary's AUROC rows (dataset, n_anomaly, method, mean,
    ci_low, ci_high, n, condition).
    """
    data = summary_auroc(summary, scorer, n_per_class)
    conditions = list(dict.fromkeys(data["condition"]))
    methods = method_order(data["method"].unique())
    x_scale = alt.Scale(domain=unit_domain(data[["mean", "ci_low"]].min(axis=1)))
    base = alt.Chart().encode(
        y=alt.Y("condition:N", sort=conditions, title=None),
        yOffset=alt.YOffset("method:N", sort=methods),
        color=method_colour(methods),
        tooltip=[
            "condition:N",
            "method:N",
            alt.Tooltip("mean:Q", format=".3f"),
            alt.Tooltip("ci_low:Q", format=".3f"),
            alt.Tooltip("ci_high:Q", format=".3f"),
            "n:Q",
        ],
    )
    interval = base.mark_rule(strokeWidth=2).encode(x=alt.X("ci_low:Q", scale=x_scale), x2="ci_high:Q")
    point = base.mark_point(filled=True, size=40, opacity=1).encode(
        x=alt.X("mean:Q", scale=x_scale, title="mean AUROC (0.5 = chance)", axis=alt.Axis(tickCount=6))
    )
    chart = alt.layer(chance_rule(x=0.5, scale=x_scale), interval, point, data=data).properties(
        width=PANEL_WIDTH * 2, height=alt.Step(9)
    )
    return titled(
        chart,
        "Mean AUROC per condition and method",
        [
            selection(scorer=scorer, n_per_class=n_per_class),
            "mean over cases (seeds averaged within a case), 95 % interval over cases",
        ],
        scorer=scorer,
        n_per_class=n_per_class,
    )


FIGURES = (
    Figure(
        "fig-auroc-box",
        "AUROC per condition and method (anomaly = positive class), over cases × seeds. "
        "Boxes: quartiles and median; whiskers: 1.5 × IQR; dashed: chance (0.5).",
        lambda v: auroc_box(v.t["metrics"], scorer=v.scorer, n_per_class=v.n),
    ),
    Figure(
        "fig-auroc-overview",
        "Mean AUROC per condition and method with its 95 % confidence interval over the cases (the seeds of "
        "a case averaged first: seeds share a case's classes and test images; from 5 cases a studentised "
        "bootstrap never narrower than the t-interval, with 2–4 cases the t-interval); dashed: chance.",
        lambda v: auroc_overview(v.t["summary"], scorer=v.scorer, n_per_class=v.n),
    ),
)

TABLES = (
    Table(
        "tbl-auroc-ci",
        "Mean AUROC with its 95 % confidence interval over cases (seeds averaged within a case) per condition "
        "and method; best: the highest mean of the condition (not a test); n: cases × seeds.",
        lambda v: auroc_ci_table(v.t["summary"], scorer=v.scorer, n_per_class=v.n),
        columns=(
            Column("dataset", "dataset"),
            Column("n_anomaly", "anomaly classes", "d", 0.8),
            Column("method", "method", None, 1.1),
            Column("mean", "mean AUROC", ".3f"),
            Column("ci_low", "95 % CI low", ".3f"),
            Column("ci_high", "95 % CI high", ".3f"),
            Column("n", "n", "d", 0.5),
            Column("best", "best", "yes/no", 0.5),
        ),
    ),
    Table(
        "tbl-auroc-summary",
        "AUROC per condition, method, training images per class and scorer: mean, standard deviation and "
        "number of cases × seeds.",
        lambda v: auroc_summary(v.t["metrics"]),
        printed=False,
    ),
)
