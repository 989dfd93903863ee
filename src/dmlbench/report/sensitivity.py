"""Sensitivity: mean AUROC against each swept parameter, per head and condition, and whether a
head's rank among the methods changes across its sweep.

A sweep is a method entry with a list of values (``arcface: {margin: [0.2, 0.35, 0.5]}``),
expanded into one variant per value (dmlbench.config.methods); its variants carry ``sweep: <entry>``
in the effective config. The numbers are the summary table's: mean AUROC over cases (seeds
averaged within a case) of the report's scorer, with the summary's 95 % interval.

Rank of a variant: its place (1 = highest mean AUROC; ties share the best place) among itself
and every method of the run outside its own sweep, per condition. A head's rank changes across
its sweep when its variants do not all get the same place. A moved rank alone says little: when
the methods lie close, a difference well inside the spread over cases reorders them. So the rank
table also tests, per condition and sweep, whether the variants' AUROC differ at all (the
Friedman test over cases, Wilcoxon's for two variants; Holm across the table's rows;
exploratory where the cases share anomaly classes).
"""

from __future__ import annotations

from dmlbench.config import methods as method_entries
from dmlbench.errors import DmlbenchError
from dmlbench.report._declare import Column, Figure, Table
from dmlbench.report._style import (
    FACET_COLUMNS,
    FONT,
    PANEL_HEIGHT,
    PANEL_WIDTH,
    SUMMARY_COLUMNS,
    alt,
    auroc_rows,
    condition_label,
    method_colour_scale,
    method_order,
    pd,
    require_columns,
    selection,
    stats,
    titled,
)

TITLE = "Sensitivity"
ALPHA = 0.05
RANKS = "tbl-sensitivity-ranks"
SENSITIVITY_COLUMNS = [
    "dataset",
    "n_anomaly",
    "sweep",
    "head",
    "parameter",
    "value",
    "setting",
    "method",
    "auroc_mean",
    "auroc_ci_low",
    "auroc_ci_high",
    "n",
    "rank",
    "n_ranked",
]


def needs_sweep(config: dict) -> str | None:
    """Why a config makes no sensitivity figure: nothing is swept."""
    if method_entries.sweeps(config["methods"]):
        return None
    return "nothing is swept: no method entry lists values of a parameter (e.g. `arcface: {margin: [0.2, 0.35, 0.5]}`)"


def sensitivity_table(
    summary: pd.DataFrame, methods: dict, scorer: str = "cosine_k1", n_per_class: str = "all"
) -> pd.DataFrame:
    """One row per condition × sweep × swept parameter × variant (``SENSITIVITY_COLUMNS``).

    ``methods`` is the effective config's (expanded) ``methods``. value: the variant's value of
    ``parameter`` (as written); setting: the values of the sweep's other swept parameters
    ("scale=16"; "" for a sweep of one parameter), so each line of the chart varies one
    parameter. auroc_mean, auroc_ci_low, auroc_ci_high, n: the summary's mean AUROC of
    ``scorer`` at ``n_per_class`` over cases (seeds averaged within a case) and its interval. rank: the
    variant's place among itself and the n_ranked - 1 methods outside its sweep (1 = best).
    """
    auroc = auroc_rows(summary, "summary.parquet", SUMMARY_COLUMNS)
    data = auroc[(auroc["scorer"] == scorer) & (auroc["n_per_class"].astype(str) == str(n_per_class))]
    if data.empty:
        raise DmlbenchError(
            f"summary.parquet has no AUROC rows of scorer={scorer!r} at n_per_class={n_per_class!r}; "
            "re-run `dmlbench aggregate`."
        )
    groups = method_entries.sweeps(methods)
    if not groups:
        raise DmlbenchError(
            "the config sweeps no parameter (no method entry with a list of values); "
            "the Sensitivity section has nothing to show"
        )
    rows = []
    for (dataset, n_anomaly), cond in data.groupby(["dataset", "n_anomaly"], sort=True):
        means = cond.set_index("method")
        for group, sweep in groups.items():
            present = [label for label in sweep["labels"] if label in means.index]
            if not present:
                continue
            others = means.loc[[m for m in means.index if m not in sweep["labels"]], "mean"]
            for label in present:
                mean = float(means.loc[label, "mean"])
                rank = 1 + int((others > mean).sum())
                for param in sweep["params"]:
                    setting = ", ".join(
                        f"{p}={method_entries.value_text(sweep['values'][label][p])}"
                        for p in sweep["params"]
                        if p != param
                    )
                    rows.append(
                        {
                            "dataset": dataset,
                            "n_anomaly": int(n_anomaly),
                            "sweep": group,
                            "head": sweep["head"],
                            "parameter": param,
                            "value": method_entries.value_text(sweep["values"][label][param]),
                            "setting": setting,
                            "method": label,
                            "auroc_mean": mean,
                            "auroc_ci_low": float(means.loc[label, "ci_low"]),
                            "auroc_ci_high": float(means.loc[label, "ci_high"]),
                            "n": int(means.loc[label, "n"]),
                            "rank": rank,
                            "n_ranked": len(others) + 1,
                        }
                    )
    if not rows:
        raise DmlbenchError(
            "summary.parquet has no rows of the swept variants "
            f"({', '.join(label for g in groups.values() for label in g['labels'])}); re-run the workflow"
        )
    return pd.DataFrame(rows, columns=SENSITIVITY_COLUMNS).astype(
        {"n_anomaly": "int64", "n": "int64", "rank": "int64", "n_ranked": "int64"}
    )


RANK_COLUMNS = [
    "dataset",
    "n_anomaly",
    "sweep",
    "head",
    "ranks",
    "best_rank",
    "worst_rank",
    "n_ranked",
    "changes",
    "n_cases",
    "variants_p",
    "variants_p_holm",
    "exploratory",
]


def _variants_test(metrics: pd.DataFrame, labels: list[str], dataset: str, n_anomaly: int, scorer: str, npc: str):
    """(p, number of cases, overlap) of "the sweep's variants differ" in one condition: their AUROC
    per case (seeds averaged), cases with every variant; Friedman's permutation p for three or more
    variants, the Wilcoxon signed-rank p for two (exact up to 16 cases)."""
    rows = metrics[
        (metrics["metric"] == "auroc")
        & (metrics["scorer"] == scorer)
        & (metrics["n_per_class"].astype(str) == str(npc))
        & (metrics["dataset"] == dataset)
        & (metrics["n_anomaly"] == n_anomaly)
        & metrics["method"].isin(labels)
    ]
    wide = rows.pivot_table(index="case", columns="method", values="value", aggfunc="mean")
    wide = wide[[m for m in labels if m in wide.columns]].dropna(how="any")
    if wide.shape[1] < 2 or len(wide) < 2:
        return float("nan"), len(wide), False
    values = wide.to_numpy(dtype="float64")
    p = stats.friedman(values)[1] if wide.shape[1] >= 3 else stats.wilcoxon_p(values[:, 0], values[:, 1])
    return float(p), len(wide), stats.cases_overlap(wide.index, int(n_anomaly))


def rank_changes_table(
    sensitivity: pd.DataFrame,
    metrics: pd.DataFrame | None = None,
    scorer: str = "cosine_k1",
    n_per_class: str = "all",
) -> pd.DataFrame:
    """Per condition and sweep: the head's rank with each variant (in the sweep's order, as
    "label: rank"), the best and worst rank, and whether it changes across the sweep; with
    ``metrics`` (the metrics table; ``scorer`` and ``n_per_class`` as the sensitivity table's),
    whether the variants differ: n_cases, variants_p (:func:`_variants_test`), variants_p_holm
    (Holm across the table's confirmatory rows) and exploratory (the cases share anomaly
    classes: no test holds its level, so no Holm p).

    Columns: ``RANK_COLUMNS``.
    """
    require_columns(sensitivity, SENSITIVITY_COLUMNS, "the sensitivity table")
    rows = []
    one = sensitivity.drop_duplicates(["dataset", "n_anomaly", "sweep", "method"])
    for (dataset, n_anomaly, sweep), grp in one.groupby(["dataset", "n_anomaly", "sweep"], sort=True):
        ranks = grp["rank"].tolist()
        p, n_cases, overlap = (
            _variants_test(metrics, grp["method"].tolist(), dataset, int(n_anomaly), scorer, n_per_class)
            if metrics is not None
            else (float("nan"), 0, False)
        )
        rows.append(
            {
                "dataset": dataset,
                "n_anomaly": int(n_anomaly),
                "sweep": sweep,
                "head": grp["head"].iloc[0],
                "ranks": ", ".join(f"{m}: {r}" for m, r in zip(grp["method"], ranks)),
                "best_rank": min(ranks),
                "worst_rank": max(ranks),
                "n_ranked": int(grp["n_ranked"].iloc[0]),
                "changes": min(ranks) != max(ranks),
                "n_cases": n_cases,
                "variants_p": p,
                "exploratory": overlap,
            }
        )
    out = pd.DataFrame(rows, columns=[c for c in RANK_COLUMNS if c != "variants_p_holm"])
    out.insert(out.columns.get_loc("variants_p") + 1, "variants_p_holm", float("nan"))
    confirmatory = ~out["exploratory"].astype(bool)
    out.loc[confirmatory, "variants_p_holm"] = stats.holm(out.loc[confirmatory, "variants_p"])
    return out.astype(
        {
            "n_anomaly": "int64",
            "best_rank": "int64",
            "worst_rank": "int64",
            "n_ranked": "int64",
            "n_cases": "int64",
            "variants_p": "float64",
            "variants_p_holm": "float64",
            "exploratory": "bool",
        }
    )


def rank_summary(changes: pd.DataFrame) -> str:
    """One Markdown line per sweep: in how many conditions its head's rank changes, and how, and
    whether its variants differ significantly where it was tested."""
    lines = []
    for sweep, grp in changes.groupby("sweep", sort=False):
        moved = grp[grp["changes"]]
        where = "; ".join(
            f"{condition_label(r.dataset, r.n_anomaly)}: rank {r.best_rank} to {r.worst_rank}"
            for r in moved.itertuples()
        )
        verdict = (
            f"changes in {len(moved)} of {len(grp)} condition{'s' if len(grp) > 1 else ''} ({where})"
            if len(moved)
            else f"stays the same in all {len(grp)} condition{'s' if len(grp) > 1 else ''}"
        )
        others = int(grp["n_ranked"].iloc[0]) - 1
        line = f"- Sweep `{sweep}` (head {grp['head'].iloc[0]}): its rank among the {others} other methods {verdict}."
        line += _difference_sentence(grp)
        lines.append(line)
    return "\n".join(lines) + "\n"


def _difference_sentence(grp: pd.DataFrame) -> str:
    """Whether the sweep's variants differ, per condition tested (none when no test was made)."""
    tested = grp[grp["variants_p"].notna()]
    if tested.empty:
        return ""
    confirmed = tested[~tested["exploratory"]]
    significant = confirmed[confirmed["variants_p_holm"] < ALPHA]
    parts = []
    if len(significant):
        parts.append(
            "its variants differ significantly in "
            + "; ".join(
                f"{condition_label(r.dataset, r.n_anomaly)} (p = {r.variants_p_holm:.3g}, Holm)"
                for r in significant.itertuples()
            )
        )
    rest = confirmed[~confirmed.index.isin(significant.index)]
    if len(rest):
        parts.append(
            ("they" if parts else "its variants")
            + " are not shown to differ in "
            + "; ".join(
                f"{condition_label(r.dataset, r.n_anomaly)} (p = {r.variants_p_holm:.3g}, Holm)"
                for r in rest.itertuples()
            )
            + (", so a rank that moves there may move by chance" if rest["changes"].any() else "")
        )
    explored = tested[tested["exploratory"]]
    if len(explored):
        parts.append(
            "exploratory in "
            + "; ".join(condition_label(r.dataset, r.n_anomaly) for r in explored.itertuples())
            + " (its cases share anomaly classes)"
        )
    return " Over cases, " + "; ".join(parts) + "."


def summary_markdown(doc) -> str:
    """What the section says under its figure (``doc``: the report's Document): one line per
    sweep, from the printed rank table; "" when nothing is swept (the figure's place says why)."""
    if doc.why_not(RANKS) is not None:
        return ""
    return rank_summary(doc.table_frame(RANKS))


def sensitivity_chart(summary: pd.DataFrame, methods: dict, scorer: str = "cosine_k1", n_per_class: str = "all"):
    """Mean AUROC (points, 95 % interval bars) against each swept parameter: one row of panels per
    sweep and parameter, one panel per condition (three to a row); colour = variant (shades of
    its head's colour), each point labelled with the variant's rank among the methods."""
    table = sensitivity_table(summary, methods, scorer, n_per_class)
    table = table.assign(
        condition=[condition_label(d, n) for d, n in zip(table["dataset"], table["n_anomaly"])],
        x=pd.to_numeric(table["value"], errors="coerce"),
        rank_label=[f"#{r}" for r in table["rank"]],
    )
    conditions = list(dict.fromkeys(table.sort_values(["dataset", "n_anomaly"])["condition"]))
    colour = alt.Color(
        "method:N", scale=method_colour_scale(method_order(table["method"].unique())), legend=alt.Legend(title="method")
    )
    blocks = []
    for (sweep, param), data in table.groupby(["sweep", "parameter"], sort=False):
        numeric = data["x"].notna().all()
        values = sorted(data["x"].unique()) if numeric else list(dict.fromkeys(data["value"]))
        if numeric:
            low, high = values[0], values[-1]
            log = low > 0 and high / low >= 10
            pad = (high - low) * 0.1 or abs(high) * 0.1 or 1.0
            scale = (
                alt.Scale(type="log", domain=[low / 1.3, high * 1.3], nice=False)
                if log
                else alt.Scale(domain=[low - pad, high + pad], nice=False, zero=False)
            )
            x = alt.X("x:Q", scale=scale, axis=alt.Axis(values=values, labelAngle=0), title=f"{sweep}: {param}")
        else:
            x = alt.X("value:N", sort=values, axis=alt.Axis(labelAngle=0), title=f"{sweep}: {param}")
        base = alt.Chart().encode(
            x=x,
            tooltip=[
                "method:N",
                "value:N",
                alt.Tooltip("auroc_mean:Q", format=".4f"),
                alt.Tooltip("auroc_ci_low:Q", format=".4f"),
                alt.Tooltip("auroc_ci_high:Q", format=".4f"),
                "rank:Q",
                "n:Q",
            ],
        )
        y = alt.Y("auroc_mean:Q", scale=alt.Scale(zero=False), title="mean AUROC")
        layers = [
            base.mark_line(color="#999999", strokeWidth=1).encode(y=y, detail="setting:N"),
            base.mark_rule(strokeWidth=1.5).encode(
                y=alt.Y("auroc_ci_low:Q", title="mean AUROC"), y2="auroc_ci_high:Q", color=colour
            ),
            base.mark_point(filled=True, size=45).encode(y=y, color=colour),
            base.mark_text(dy=-9, fontSize=FONT["mark"], color="#333333").encode(y=y, text="rank_label:N"),
        ]
        blocks.append(
            alt.layer(*layers, data=data.reset_index(drop=True))
            .properties(width=PANEL_WIDTH, height=PANEL_HEIGHT)
            .facet(
                facet=alt.Facet("condition:N", sort=conditions, title=None), columns=min(FACET_COLUMNS, len(conditions))
            )
        )
    return titled(
        alt.vconcat(*blocks, spacing=12),
        "Sensitivity to the swept parameters",
        [
            selection(scorer=scorer, n_per_class=n_per_class),
            "mean over cases (seeds averaged within a case); bars: 95 % interval; #k: rank among the methods",
        ],
        scorer=scorer,
        n_per_class=n_per_class,
    )


def _methods(v) -> dict:
    return v.config["methods"]


FIGURES = (
    Figure(
        "fig-sensitivity",
        "Mean AUROC (with its 95 % interval over cases) of each swept variant against the swept parameter, per "
        "condition; #k is the variant's rank among itself and the methods outside its sweep (1 = best).",
        lambda v: sensitivity_chart(v.t["summary"], _methods(v), scorer=v.scorer, n_per_class=v.n),
        needs_sweep,
    ),
)
TABLES = (
    Table(
        "tbl-sensitivity",
        "Mean AUROC with its 95 % interval over cases and rank of every swept variant, per condition, sweep and "
        "swept parameter (the numbers of the sensitivity figure).",
        lambda v: sensitivity_table(v.t["summary"], _methods(v), scorer=v.scorer, n_per_class=v.n),
        needs_sweep,
        printed=False,
    ),
    Table(
        RANKS,
        "Rank of each swept head among the methods outside its sweep, with each of its variants, per condition "
        "(1 = highest mean AUROC); changes: the rank is not the same across the sweep; whether the variants' "
        "AUROC differ over cases (Friedman's permutation p, or Wilcoxon's for two variants; Holm-adjusted "
        "across the table; none where the cases share anomaly classes: exploratory).",
        lambda v: rank_changes_table(
            sensitivity_table(v.t["summary"], _methods(v), scorer=v.scorer, n_per_class=v.n),
            v.t["metrics"],
            scorer=v.scorer,
            n_per_class=v.n,
        ),
        needs_sweep,
        columns=(
            Column("dataset", "dataset"),
            Column("n_anomaly", "anomaly classes", "d", 0.8),
            Column("sweep", "sweep"),
            Column("ranks", "rank with each variant", None, 3.0),
            Column("best_rank", "best rank", "d", 0.6),
            Column("worst_rank", "worst rank", "d", 0.6),
            Column("n_ranked", "methods ranked", "d", 0.7),
            Column("changes", "rank changes", "yes/no", 0.7),
            Column("n_cases", "cases", "d", 0.5),
            Column("variants_p", "variants differ: p", "p", 0.8),
            Column("variants_p_holm", "p (Holm)", "p", 0.7),
            Column("exploratory", "exploratory", "yes/no", 0.7),
        ),
    ),
)
