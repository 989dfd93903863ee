"""Section 7, Scorers compared: kNN distances, Mahalanobis, MSP, max logit, energy, LOF and
OpenOOD's KNN on the same embeddings and heads. A logit scorer of a head without logits (a pair
or tuple loss) is shown as not applicable, never filled from another score."""

from __future__ import annotations

from dmlbench.config.scorers import LOGIT_SCORERS
from dmlbench.errors import DmlbenchError
from dmlbench.report._declare import Figure, Table
from dmlbench.report._style import (
    FONT,
    METRICS_COLUMNS,
    alt,
    auroc_rows,
    facet,
    method_order,
    n_per_class_order,
    ordered,
    pd,
    require_columns,
    selection,
    titled,
    with_condition,
)

TITLE = "Scorers compared"


def scorer_order(k: str = "1") -> list[str]:
    """Scorers compared in this section, in the order they are shown."""
    return [f"cosine_k{k}", f"euclidean_k{k}", "mahalanobis", "msp", "maxlogit", "energy", "lof", "knn_normalised"]


def scorers_table(metrics: pd.DataFrame, n_per_class: str = "all", k: str = "1") -> pd.DataFrame:
    """Mean AUROC over cases (the mean of the case means, seeds averaged within a case) per
    condition × method × scorer (``scorer_order``, those present).

    Columns: dataset, n_anomaly, method, scorer, mean, n (cases × seeds), n_cases, applicable. A logit scorer (MSP, max
    logit, energy) that other methods of the condition have but a method has not - a pair or tuple
    loss, which has no logits - gets a row with mean NaN, n 0 and applicable False: not
    applicable, shown as such, never filled from another score.
    """
    require_columns(metrics, METRICS_COLUMNS, "metrics.parquet")
    auroc = auroc_rows(metrics, "metrics.parquet")
    order = scorer_order(str(k))
    rows = auroc[auroc["scorer"].isin(order) & (auroc["n_per_class"].astype(str) == str(n_per_class))]
    if rows.empty:
        raise DmlbenchError(
            f"metrics.parquet has no AUROC rows for the scorers {order} at n_per_class={str(n_per_class)!r}; "
            f"it has scorers {sorted(auroc['scorer'].unique().tolist())} and n_per_class "
            f"{n_per_class_order(auroc['n_per_class'].unique())}. Choose k and n_per_class from those."
        )
    # seeds averaged within a case first (they share its classes and test images): a case counts once
    keys = ["dataset", "n_anomaly", "method", "scorer"]
    out = (
        rows.groupby([*keys, "case"])["value"]
        .agg(value="mean", runs="count")
        .groupby(level=keys)
        .agg(mean=("value", "mean"), n=("runs", "sum"), n_cases=("value", "count"))
        .reset_index()
        .astype({"n_anomaly": "int64", "n": "int64", "n_cases": "int64"})
    )
    # every (condition, method) gets a row for each logit scorer of its condition: missing = no logits
    logit = out[out["scorer"].isin(LOGIT_SCORERS)]
    full = (
        out[["dataset", "n_anomaly", "method"]]
        .drop_duplicates()
        .merge(logit[["dataset", "n_anomaly", "scorer"]].drop_duplicates(), on=["dataset", "n_anomaly"])
    )
    full = pd.concat([out[["dataset", "n_anomaly", "method", "scorer"]], full]).drop_duplicates()
    out = full.merge(out, on=["dataset", "n_anomaly", "method", "scorer"], how="left")
    out["applicable"] = out["n"].notna()
    out = out.astype({"n": "float64", "n_cases": "float64"}).fillna({"n": 0, "n_cases": 0})
    out = out.astype({"n": "int64", "n_cases": "int64"})
    out["_s"] = out["scorer"].map(order.index)
    return ordered(out, "_s").drop(columns="_s")


def scorers_chart(metrics: pd.DataFrame, n_per_class: str = "all", k: str = "1"):
    """Heatmap of mean AUROC, method (rows) × scorer (columns), one panel per condition; white is
    chance (0.5), blue better, red worse; a grey "n/a" cell is a scorer that does not apply to the
    method (no logits). The chart's data is ``scorers_table`` with a condition label."""
    k = str(k)
    data, conditions = with_condition(scorers_table(metrics, n_per_class, k))
    scorers = [s for s in scorer_order(k) if s in set(data["scorer"])]
    methods = method_order(data["method"].unique())
    base = alt.Chart().encode(
        x=alt.X("scorer:N", sort=scorers, title=None, axis=alt.Axis(labelAngle=-40)),
        y=alt.Y("method:N", sort=methods, title=None),
    )
    not_applicable = base.mark_rect(color="#d9d9d9").transform_filter("!datum.applicable")
    na_text = base.mark_text(fontSize=FONT["mark"], color="#555555", text="n/a").transform_filter("!datum.applicable")
    cells = (
        base.mark_rect()
        .transform_filter("datum.applicable")
        .encode(
            color=alt.Color(
                "mean:Q",
                scale=alt.Scale(scheme="redblue", domain=[0, 1], domainMid=0.5),
                legend=alt.Legend(title="mean AUROC"),
            ),
            tooltip=["method:N", "scorer:N", alt.Tooltip("mean:Q", format=".3f"), "n:Q"],
        )
    )
    labels = (
        base.mark_text(fontSize=FONT["mark"])
        .transform_filter("datum.applicable")
        .encode(
            text=alt.Text("mean:Q", format=".2f"),
            color=alt.condition("abs(datum.mean - 0.5) > 0.35", alt.value("white"), alt.value("black")),
        )
    )
    layered = alt.layer(cells, labels, not_applicable, na_text, data=data).properties(
        width=alt.Step(26), height=alt.Step(16)
    )
    return titled(
        facet(layered, conditions),
        "Mean AUROC per scorer",
        [selection(k=k, n_per_class=n_per_class), "mean over cases × seeds; white: chance; n/a: no logits"],
        k=k,
        n_per_class=n_per_class,
        scorers=scorers,
    )


FIGURES = (
    Figure(
        "fig-scorers",
        "Mean AUROC per method and scorer, per condition (over cases × seeds); white: chance (0.5), blue: better, "
        "red: worse; grey n/a: the scorer reads the head's logits, which a pair or tuple loss does not have.",
        lambda v: scorers_chart(v.t["metrics"], n_per_class=v.n, k=v.k),
    ),
)
TABLES = (
    Table(
        "tbl-scorers",
        "Mean AUROC per condition, method and scorer over cases × seeds (the numbers of the scorers figure; "
        "applicable false: the scorer needs logits the method does not have).",
        lambda v: scorers_table(v.t["metrics"], n_per_class=v.n, k=v.k),
        printed=False,
    ),
)
