"""Section 6, Cosine vs Euclidean: the same models scored with both distances, paired."""

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


def cosine_euclidean_table(
    metrics: pd.DataFrame, k: str = "1", n_per_class: str = "all", n_classes: dict | None = None
) -> pd.DataFrame:
    """Cosine against Euclidean kNN AUROC per condition × method, over cases (each case's seeds
    averaged first: seeds share a case's classes and test images).

    Columns: dataset, n_anomaly, method, cosine_mean, euclidean_mean (means over cases),
    mean_difference (cosine − euclidean), share_cosine_better (share of cases with cosine >
    euclidean), n_cases, p (two-sided sign-flip test of the per-case differences, exact up to 16 cases,
    ``stats.case_test``: the test of the findings' claim 2 per method), p_holm (Holm across the
    table), exploratory (the cases share anomaly classes: no test holds its level; p is shown,
    p_holm is NaN), euclidean_below_half, cosine_below_half (mean AUROC below chance).
    ``n_classes``: classes per dataset, for the overlap of rotations (``stats.case_design``).
    """
    pairs, _ = cosine_euclidean_pairs(metrics, str(k), n_per_class)
    rows = []
    for (dataset, n_anomaly, method), grp in pairs.groupby(["dataset", "n_anomaly", "method"], sort=False):
        per_case = grp.groupby("case")[["cosine", "euclidean"]].mean()
        cos, euc = per_case["cosine"], per_case["euclidean"]
        test = stats.case_test(cos - euc, int(n_anomaly), (n_classes or {}).get(dataset))
        rows.append(
            {
                "dataset": dataset,
                "n_anomaly": int(n_anomaly),
                "method": method,
                "cosine_mean": float(cos.mean()),
                "euclidean_mean": float(euc.mean()),
                "mean_difference": float((cos - euc).mean()),
                "share_cosine_better": float((cos > euc).mean()),
                "n_cases": len(per_case),
                "p": test.p,
                "exploratory": test.design.exploratory,
                "euclidean_below_half": bool(euc.mean() < 0.5),
                "cosine_below_half": bool(cos.mean() < 0.5),
            }
        )
    out = pd.DataFrame(rows)
    if len(out):
        confirmatory = ~out["exploratory"]
        out.insert(out.columns.get_loc("p") + 1, "p_holm", float("nan"))
        out.loc[confirmatory, "p_holm"] = stats.holm(out.loc[confirmatory, "p"])
    return out


def _n_classes(v) -> dict:
    cd = v.t["class_distances"]
    return {str(ds): int(n) for ds, n in cd.groupby("dataset")["class_index"].nunique().items()}


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
        "Cosine against Euclidean distance per condition and method, over cases (seeds averaged within a case): "
        "mean AUROC of each, mean paired difference (cosine − Euclidean), share of cases where cosine is higher, "
        "number of cases, two-sided sign-flip p-value (exact up to 16 cases; raw and Holm-adjusted across the table; none where "
        "the cases overlap: exploratory), and whether a mean falls below chance (0.5).",
        lambda v: cosine_euclidean_table(v.t["metrics"], k=v.k, n_per_class=v.n, n_classes=_n_classes(v)),
        needs_both_distances,
        columns=(
            Column("dataset", "dataset"),
            Column("n_anomaly", "anomaly classes", "d", 0.8),
            Column("method", "method", None, 1.1),
            Column("cosine_mean", "AUROC cosine", ".3f"),
            Column("euclidean_mean", "AUROC Euclidean", ".3f"),
            Column("mean_difference", "difference", "+.3f"),
            Column("share_cosine_better", "cosine higher (share of cases)", ".2f"),
            Column("n_cases", "cases", "d", 0.6),
            Column("p", "sign-flip p", "p"),
            Column("p_holm", "p (Holm)", "p"),
            Column("euclidean_below_half", "Euclidean < 0.5", "yes/no"),
            Column("cosine_below_half", "cosine < 0.5", "yes/no"),
        ),
        small=True,
    ),
)
