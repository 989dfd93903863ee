"""Section 8, Ranking: average ranks over cases, the Friedman test, the critical-difference diagram
(Nemenyi; drawn only after a significant Friedman test) and paired Wilcoxon tests against
Conventional."""

from __future__ import annotations

import math

from dmlbench.errors import DmlbenchError
from dmlbench.report._declare import Column, Figure, Table
from dmlbench.report._style import (
    CONDITION_KEYS,
    FONT,
    PANEL_WIDTH,
    alt,
    condition_label,
    method_colour,
    method_order,
    ordered,
    pd,
    require_columns,
    select,
    selection,
    stats,
    titled,
    with_condition,
)

TITLE = "Ranking"
ALPHA = 0.05


def _ranking_rows(ranking: pd.DataFrame, scorer: str, n_per_class: str) -> pd.DataFrame:
    require_columns(ranking, stats.RANKING_COLUMNS, "ranking.parquet")
    return select(ranking, "ranking.parquet", scorer=scorer, n_per_class=n_per_class)


def ranking_tests_table(ranking: pd.DataFrame, scorer: str = "cosine_k1", n_per_class: str = "all") -> pd.DataFrame:
    """Average ranks and tests per condition × method (study order).

    Columns: dataset, n_anomaly, method, avg_rank, friedman_p, friedman_p_holm, cd, n_blocks,
    wilcoxon_p, wilcoxon_p_holm, cases_overlap, note.
    """
    columns = [
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
    return ordered(_ranking_rows(ranking, scorer, n_per_class)[columns])


def demsar_cliques(ranks: list[float], cd: float) -> list[tuple[int, int]]:
    """Groups of methods not significantly different (Demšar 2006): for ``ranks`` sorted ascending,
    the maximal index spans (i, j), j > i, with ``ranks[j] - ranks[i] < cd``."""
    spans: list[tuple[int, int]] = []
    for i in range(len(ranks)):
        j = max(j for j in range(i, len(ranks)) if ranks[j] - ranks[i] < cd)
        if j > i and not any(a <= i and j <= b for a, b in spans):
            spans.append((i, j))
    return spans


def cd_drawn(first) -> bool:
    """Is a critical difference drawn for a condition (a row of ranking.parquet)? Only after a
    significant Friedman test (Holm-adjusted across the table's conditions): the Nemenyi test is
    its post-hoc, and without it a CD bar would mark differences the data do not show. Not when
    the cases share anomaly classes, where no test holds its level."""
    p = float(first["friedman_p_holm"])
    return math.isfinite(float(first["cd"])) and math.isfinite(p) and p < ALPHA and not bool(first["cases_overlap"])


def cd_layout(ranking: pd.DataFrame, scorer: str = "cosine_k1", n_per_class: str = "all") -> pd.DataFrame:
    """What ``cd_diagram`` draws, one row per element of a condition's panel.

    Columns: dataset, n_anomaly, condition, panel (facet title), element ("method": a method at
    ``x`` = its average rank; "cd": the critical difference from the best rank ``x`` to ``x2``;
    "clique": methods from rank ``x`` to ``x2`` not shown to differ), method, x, x2, y (row from
    the top), label, align (side of the point its label is written on). Methods without a rank
    (no complete case) are left out; a condition without a significant Friedman test, or whose
    cases overlap (``cd_drawn``), has no "cd" or "clique" rows.
    """
    rows = []
    for (dataset, n_anomaly), grp in _ranking_rows(ranking, scorer, n_per_class).groupby(CONDITION_KEYS):
        grp = grp.dropna(subset=["avg_rank"]).sort_values(["avg_rank", "method"], kind="mergesort")
        if grp.empty:
            continue
        first = grp.iloc[0]
        cd, p, n_blocks = float(first["cd"]), float(first["friedman_p_holm"]), int(first["n_blocks"])
        condition = condition_label(dataset, n_anomaly)
        friedman = f"Friedman p = {p:.3g} (Holm)" if math.isfinite(p) else "Friedman test n/a"
        if bool(first["cases_overlap"]):
            friedman += ", exploratory: cases overlap"
        key = {
            "dataset": dataset,
            "n_anomaly": int(n_anomaly),
            "condition": condition,
            "panel": f"{condition} — {friedman}, N = {n_blocks} cases",
        }
        ranks = grp["avg_rank"].tolist()
        drawn = cd_drawn(first)
        if drawn:
            rows.append(
                key
                | {
                    "element": "cd",
                    "method": "",
                    "x": ranks[0],
                    "x2": ranks[0] + cd,
                    "y": 0.0,
                    "label": f"CD = {cd:.2f}",
                    "align": "left",
                }
            )
        # Names point into the panel: those in the worse half of the ranks are written to the left.
        middle = (1 + int(first["n_methods"])) / 2
        for y, (method, rank) in enumerate(zip(grp["method"], ranks), start=1):
            rows.append(
                key
                | {
                    "element": "method",
                    "method": method,
                    "x": rank,
                    "x2": math.nan,
                    "y": float(y),
                    "label": f"{method} ({rank:.2f})",
                    "align": "right" if rank > middle else "left",
                }
            )
        if drawn:
            for c, (i, j) in enumerate(demsar_cliques(ranks, cd)):
                rows.append(
                    key
                    | {
                        "element": "clique",
                        "method": "",
                        "x": ranks[i],
                        "x2": ranks[j],
                        "y": len(ranks) + 0.6 + 0.4 * c,
                        "label": "",
                        "align": "left",
                    }
                )
    columns = ["dataset", "n_anomaly", "condition", "panel", "element", "method", "x", "x2", "y", "label", "align"]
    return pd.DataFrame(rows, columns=columns)


def cd_diagram(ranking: pd.DataFrame, scorer: str = "cosine_k1", n_per_class: str = "all"):
    """Critical-difference diagram per condition: methods at their average AUROC rank over cases
    (1 = best, left); after a significant Friedman test, the Nemenyi critical difference as a bar
    from the best rank and thick bars joining methods whose ranks differ by less than CD (not shown
    to differ). The chart's data is ``cd_layout``."""
    layout = cd_layout(ranking, scorer, n_per_class)
    if layout.empty:
        raise DmlbenchError(
            f"ranking.parquet has no average ranks for scorer={scorer!r} and n_per_class={str(n_per_class)!r} "
            "(no case has every method); run every method on the same cases and seeds."
        )
    _, conditions = with_condition(_ranking_rows(ranking, scorer, n_per_class))
    unranked = [c for c in conditions if c not in set(layout["condition"])]
    no_cd = [c for c, grp in layout.groupby("condition", sort=False) if not (grp["element"] == "cd").any()]
    panels = layout.drop_duplicates("panel").sort_values(CONDITION_KEYS)["panel"].tolist()
    methods = method_order(layout.loc[layout["element"] == "method", "method"].unique())
    # Ranks run from 1 to the number of methods; a long CD bar may reach further.
    x_max = max(float(layout[["x", "x2"]].max().max()), float(len(methods)))
    x_scale = alt.Scale(domain=[1, x_max], nice=False, zero=False, padding=10)
    y_scale = alt.Scale(domain=[-0.8, float(layout["y"].max()) + 0.6], reverse=True)
    y = alt.Y("y:Q", scale=y_scale, axis=None)
    x = alt.X("x:Q", scale=x_scale, title="average rank (1 = best)", axis=alt.Axis(tickMinStep=1))

    def of(element: str, align: str | None = None):
        keep = alt.datum.element == element
        return alt.Chart().transform_filter(keep if align is None else keep & (alt.datum.align == align))

    bar = of("cd").mark_rule(strokeWidth=2, color="black").encode(x=x, x2="x2:Q", y=y)
    bar_text = (
        of("cd")
        .mark_text(align="left", baseline="bottom", dy=-3, fontSize=FONT["label"])
        .encode(x=x, y=y, text="label:N")
    )
    cliques = of("clique").mark_rule(strokeWidth=5, color="#333333", opacity=0.7).encode(x=x, x2="x2:Q", y=y)
    points = (
        of("method")
        .mark_point(filled=True, size=50, opacity=1)
        .encode(
            x=x,
            y=y,
            color=method_colour(methods).legend(None),
            tooltip=["method:N", alt.Tooltip("x:Q", title="average rank", format=".2f")],
        )
    )
    names = [
        of("method", align)
        .mark_text(align=align, dx=7 if align == "left" else -7, fontSize=FONT["label"])
        .encode(x=x, y=y, text="label:N")
        for align in ("left", "right")
    ]
    subtitle = [
        selection(scorer=scorer, n_per_class=n_per_class),
        "thin bar: critical difference (α = 0.05)",
        "thick bars: not shown to differ",
    ]
    if no_cd:
        subtitle.append(
            "no critical difference (Friedman test not significant, not possible, or cases overlap) for "
            + "; ".join(no_cd)
        )
    if unranked:
        subtitle.append("no ranks (no case has every method) for " + "; ".join(unranked))
    chart = (
        alt.layer(bar, bar_text, cliques, points, *names, data=layout)
        .properties(width=PANEL_WIDTH * 2 + 80, height=round(16 * (float(layout["y"].max()) + 1.4)))
        .facet(
            row=alt.Row(
                "panel:N",
                sort=panels,
                title=None,
                header=alt.Header(labelAngle=0, labelAnchor="start", labelOrient="top"),
            )
        )
    )
    return titled(chart, "Critical-difference diagram", subtitle, scorer=scorer, n_per_class=n_per_class)


FIGURES = (
    Figure(
        "fig-critical-difference",
        "Average ranks of the methods over cases per condition (1 = best); where the Friedman test is "
        "significant and the cases do not share anomaly classes, the Nemenyi critical difference (α = 0.05), "
        "and methods joined by a thick bar are not "
        "shown to differ (which does not make them equal).",
        lambda v: cd_diagram(v.t["ranking"], scorer=v.scorer, n_per_class=v.n),
    ),
)
TABLES = (
    Table(
        "tbl-ranking",
        "Average rank, Friedman p-value (permutation; raw and Holm-adjusted across the conditions) and Nemenyi "
        "critical difference per condition, and the paired Wilcoxon signed-rank test (exact up to 16 cases) of each method "
        "against Conventional (raw and Holm-adjusted across the table); blocks: cases with every method, seeds "
        "averaged within a case.",
        lambda v: ranking_tests_table(v.t["ranking"], scorer=v.scorer, n_per_class=v.n),
        columns=(
            Column("dataset", "dataset"),
            Column("n_anomaly", "anomaly classes", "d", 0.8),
            Column("method", "method", None, 1.1),
            Column("avg_rank", "average rank", ".2f"),
            Column("friedman_p", "Friedman p", "p"),
            Column("friedman_p_holm", "Friedman p (Holm)", "p"),
            Column("cd", "critical difference", ".2f"),
            Column("n_blocks", "cases", "d", 0.6),
            Column("wilcoxon_p", "Wilcoxon p", "p"),
            Column("wilcoxon_p_holm", "Wilcoxon p (Holm)", "p"),
        ),
        notes="note",
    ),
)
