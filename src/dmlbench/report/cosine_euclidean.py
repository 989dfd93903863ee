"""Section 5, Cosine vs Euclidean: the same models scored with both distances, paired."""

from __future__ import annotations

from dmlbench.errors import DmlbenchError
from dmlbench.report._declare import Column, Figure, Table
from dmlbench.report._style import (
    METRICS_COLUMNS,
    PANEL_HEIGHT,
    alt,
    auroc_rows,
    facet,
    method_colour,
    method_order,
    ordered,
    pd,
    require_columns,
    select,
    selection,
    stats,
    titled,
    unit_domain,
    with_condition,
)

TITLE = "Cosine vs Euclidean"


def needs_both_distances(config: dict) -> str | None:
    if {"cosine", "euclidean"} <= set(config["scoring"]["distances"]):
        return None
    return "only one distance was configured (`scoring.distances`)"


def cosine_euclidean_pairs(metrics: pd.DataFrame, k: str, n_per_class: str) -> tuple[pd.DataFrame, list[str]]:
    """AUROC of cosine_k{k} and euclidean_k{k} side by side per (condition, method, seed, case)."""
    require_columns(metrics, METRICS_COLUMNS, "metrics.parquet")
    auroc = auroc_rows(metrics, "metrics.parquet")
    keys = ["dataset", "n_anomaly", "method", "seed", "case"]
    sides = [
        select(auroc, "metrics.parquet", scorer=f"{name}_k{k}", n_per_class=n_per_class, extra=" AUROC")[
            keys + ["value"]
        ].rename(columns={"value": name})
        for name in ("cosine", "euclidean")
    ]
    pairs = sides[0].merge(sides[1], on=keys, how="inner")
    if pairs.empty:
        raise DmlbenchError(
            f"metrics.parquet has no (case, seed) with the AUROC of both cosine_k{k} and euclidean_k{k} "
            f"at n_per_class={str(n_per_class)!r}; re-run `dmlbench score` and `dmlbench aggregate`."
        )
    pairs, conditions = with_condition(pairs)
    return ordered(pairs.astype({"n_anomaly": "int64", "seed": "int64", "case": "int64"}), "seed", "case"), conditions


def cosine_euclidean_table(metrics: pd.DataFrame, k: str = "1", n_per_class: str = "all") -> pd.DataFrame:
    """Cosine against Euclidean kNN AUROC per condition × method, paired by (case, seed).

    Columns: dataset, n_anomaly, method, cosine_mean, euclidean_mean, mean_difference
    (cosine − euclidean), share_cosine_better (share of pairs with cosine > euclidean), n_pairs,
    wilcoxon_p (two-sided paired signed-rank test), euclidean_below_half, cosine_below_half
    (mean AUROC below chance).
    """
    pairs, _ = cosine_euclidean_pairs(metrics, str(k), n_per_class)
    rows = []
    for (dataset, n_anomaly, method), grp in pairs.groupby(["dataset", "n_anomaly", "method"], sort=False):
        cos, euc = grp["cosine"].to_numpy(), grp["euclidean"].to_numpy()
        rows.append(
            {
                "dataset": dataset,
                "n_anomaly": int(n_anomaly),
                "method": method,
                "cosine_mean": float(cos.mean()),
                "euclidean_mean": float(euc.mean()),
                "mean_difference": float((cos - euc).mean()),
                "share_cosine_better": float((cos > euc).mean()),
                "n_pairs": len(cos),
                "wilcoxon_p": stats.wilcoxon_p(cos, euc),
                "euclidean_below_half": bool(euc.mean() < 0.5),
                "cosine_below_half": bool(cos.mean() < 0.5),
            }
        )
    return pd.DataFrame(rows)


def cosine_euclidean_chart(metrics: pd.DataFrame, k: str = "1", n_per_class: str = "all"):
    """Paired scatter of AUROC, one point per (method, case, seed): Euclidean (x) against cosine (y)
    k-nearest-neighbour distance, one panel per condition. Above the diagonal, cosine is better;
    dashed lines mark chance on either axis.

    The chart's data: dataset, n_anomaly, method, seed, case, cosine, euclidean, condition.
    """
    k = str(k)
    data, conditions = cosine_euclidean_pairs(metrics, k, n_per_class)
    methods = method_order(data["method"].unique())
    scale = alt.Scale(domain=unit_domain(data[["cosine", "euclidean"]].min(axis=1)))
    low = scale.domain[0]
    per_panel = alt.Chart().transform_aggregate(rows="count()", groupby=["condition"])
    diagonal = per_panel.mark_rule(color="#555555").encode(
        x=alt.XDatum(low, scale=scale), y=alt.YDatum(low, scale=scale), x2=alt.X2Datum(1.0), y2=alt.Y2Datum(1.0)
    )
    chance_x = per_panel.mark_rule(strokeDash=[4, 4], color="#999999").encode(x=alt.XDatum(0.5, scale=scale))
    chance_y = per_panel.mark_rule(strokeDash=[4, 4], color="#999999").encode(y=alt.YDatum(0.5, scale=scale))
    points = (
        alt.Chart()
        .mark_point(filled=True, size=25, opacity=0.8)
        .encode(
            x=alt.X("euclidean:Q", scale=scale, title=f"AUROC, Euclidean k={k}"),
            y=alt.Y("cosine:Q", scale=scale, title=f"AUROC, cosine k={k}"),
            color=method_colour(methods),
            tooltip=[
                "method:N",
                "case:O",
                "seed:O",
                alt.Tooltip("cosine:Q", format=".3f"),
                alt.Tooltip("euclidean:Q", format=".3f"),
            ],
        )
    )
    layered = alt.layer(diagonal, chance_x, chance_y, points, data=data).properties(
        width=PANEL_HEIGHT, height=PANEL_HEIGHT
    )
    return titled(
        facet(layered, conditions),
        "Cosine against Euclidean distance",
        [selection(k=k, n_per_class=n_per_class), "above the diagonal cosine is better"],
        k=k,
        n_per_class=n_per_class,
        scorers=[f"cosine_k{k}", f"euclidean_k{k}"],
    )


FIGURES = (
    Figure(
        "fig-cosine-euclidean",
        "AUROC with the cosine distance against AUROC with the Euclidean distance of the same models (one point "
        "per method, case and seed); diagonal: equal; dashed: chance.",
        lambda v: cosine_euclidean_chart(v.t["metrics"], k=v.k, n_per_class=v.n),
        needs_both_distances,
    ),
)
TABLES = (
    Table(
        "tbl-cosine-euclidean",
        "Cosine against Euclidean distance per condition and method: mean AUROC of each, mean paired difference "
        "(cosine − Euclidean), share of pairs where cosine is higher, number of pairs, two-sided Wilcoxon "
        "signed-rank p-value, and whether a mean falls below chance (0.5).",
        lambda v: cosine_euclidean_table(v.t["metrics"], k=v.k, n_per_class=v.n),
        needs_both_distances,
        columns=(
            Column("dataset", "dataset"),
            Column("n_anomaly", "anomaly classes", "d", 0.8),
            Column("method", "method", None, 1.1),
            Column("cosine_mean", "AUROC cosine", ".3f"),
            Column("euclidean_mean", "AUROC Euclidean", ".3f"),
            Column("mean_difference", "difference", "+.3f"),
            Column("share_cosine_better", "cosine higher (share)", ".2f"),
            Column("n_pairs", "pairs", "d", 0.6),
            Column("wilcoxon_p", "Wilcoxon p", "p"),
            Column("euclidean_below_half", "Euclidean < 0.5", "yes/no"),
            Column("cosine_below_half", "cosine < 0.5", "yes/no"),
        ),
        small=True,
    ),
)
