"""Pure builders: tidy tables (pandas) -> report tables and Altair charts.

Nothing here reads or writes files; ``dmlbench.figures`` exports what these build and the
report calls them on the tables under ``results/tables``. Input columns follow the aggregate
stage's contract (docs/tables.md): ``metrics``, ``class_distances``, ``summary``, ``ranking``,
``runtime``.
"""

from __future__ import annotations

import json
import math
import uuid
from typing import Iterable

import altair as alt
import pandas as pd

from dmlbench import METHOD_ORDER, stats
from dmlbench.errors import DmlbenchError

# One colour per method in every chart (Tableau 10, which stays legible in grey print).
METHOD_COLOURS = {
    "conventional": "#4c78a8",
    "l2softmax": "#f58518",
    "arcface": "#54a24b",
    "cosface": "#e45756",
    "sphereface": "#72b7b2",
    "centerloss": "#b279a2",
}
_EXTRA_COLOURS = ("#eeca3b", "#ff9da6", "#9d755d", "#bab0ac")
ROLE_ORDER = ("normal", "anomaly")
ROLE_COLOURS = {"normal": "#4c78a8", "anomaly": "#e45756"}

CONDITION_KEYS = ["dataset", "n_anomaly"]
METRICS_COLUMNS = [
    "dataset", "n_anomaly", "method", "n_per_class", "seed", "case", "scorer", "metric", "value",
]
CLASS_DISTANCES_COLUMNS = [
    "dataset", "n_anomaly", "method", "n_per_class", "seed", "case", "scorer",
    "class_index", "class_name", "role", "mean_score", "normalised",
]

# Size of one facet panel, in CSS pixels (vl-convert renders 1 px = 1/72 in at ppi 72).
PANEL_WIDTH = 260
PANEL_HEIGHT = 200
FACET_COLUMNS = 3


# --------------------------------------------------------------------------- helpers


def _require_columns(df: pd.DataFrame, columns: Iterable[str], table: str,
                     hint: str = "Re-run `dmlbench aggregate` to rebuild the tables.") -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DmlbenchError(f"{table} lacks column(s) {missing}; it has {list(df.columns)}. {hint}")


def method_order(methods: Iterable[str]) -> list[str]:
    """The methods present, in the study's order; unknown names after, alphabetically."""
    present = set(methods)
    known = [m for m in METHOD_ORDER if m in present]
    return known + sorted(present - set(METHOD_ORDER))


def method_colour_scale(methods: Iterable[str]) -> alt.Scale:
    """Colour scale that gives each method the same colour in every chart."""
    order = method_order(methods)
    extra = iter(_EXTRA_COLOURS * (1 + len(order)))
    return alt.Scale(domain=order, range=[METHOD_COLOURS.get(m) or next(extra) for m in order])


def _n_per_class_order(values: Iterable[str]) -> list[str]:
    """Images per class as numbers ascending, then "all"."""
    values = {str(v) for v in values}
    # Integers numerically; anything else (not in the contract) after them, alphabetically.
    numbers = sorted((v for v in values if v != "all"), key=lambda v: (0, int(v), "") if v.isdigit() else (1, 0, v))
    return numbers + (["all"] if "all" in values else [])


def condition_label(dataset: str, n_anomaly: int) -> str:
    """Facet title of a condition, e.g. ``"digits · 3 anomaly classes"``."""
    n = int(n_anomaly)
    return f"{dataset} · {n} anomaly class{'' if n == 1 else 'es'}"


def _with_condition(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Add a ``condition`` label column; return it with the labels in (dataset, n_anomaly) order."""
    df = df.copy()
    df["condition"] = [condition_label(d, n) for d, n in zip(df["dataset"], df["n_anomaly"])]
    order = (
        df[["dataset", "n_anomaly", "condition"]]
        .drop_duplicates()
        .sort_values(["dataset", "n_anomaly"])["condition"]
        .tolist()
    )
    return df, order


def _select(df: pd.DataFrame, table: str, *, scorer: str, n_per_class: str, extra: str = "") -> pd.DataFrame:
    """Rows of one scorer and one n_per_class; a clear error when there are none."""
    n_per_class = str(n_per_class)
    out = df[(df["scorer"] == scorer) & (df["n_per_class"].astype(str) == n_per_class)]
    if out.empty:
        scorers = sorted(df["scorer"].unique().tolist())
        sizes = _n_per_class_order(df["n_per_class"].unique())
        raise DmlbenchError(
            f"{table} has no{extra} rows for scorer={scorer!r} and n_per_class={n_per_class!r}; "
            f"it has scorers {scorers} and n_per_class {sizes}. Choose one of those "
            "(the report's `scorer` parameter, `dmlbench figures --scorer`)."
        )
    return out


# --------------------------------------------------------------------------- tables


def conditions_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per condition (dataset, n_anomaly) with what was run for it.

    Columns: dataset, n_anomaly, methods (comma-separated, study order), n_per_class
    (comma-separated, numbers ascending then "all"), seeds and cases (number of distinct
    values), scorers (number of distinct scorers, the head's accuracy not counted).
    """
    _require_columns(metrics, METRICS_COLUMNS, "metrics.parquet")
    rows = []
    for (dataset, n_anomaly), grp in metrics.groupby(CONDITION_KEYS, sort=True):
        scorers = grp.loc[grp["metric"] != "accuracy", "scorer"].nunique()
        rows.append(
            {
                "dataset": dataset,
                "n_anomaly": int(n_anomaly),
                "methods": ", ".join(method_order(grp["method"].unique())),
                "n_per_class": ", ".join(_n_per_class_order(grp["n_per_class"].unique())),
                "seeds": int(grp["seed"].nunique()),
                "cases": int(grp["case"].nunique()),
                "scorers": int(scorers),
            }
        )
    columns = ["dataset", "n_anomaly", "methods", "n_per_class", "seeds", "cases", "scorers"]
    return pd.DataFrame(rows, columns=columns)


def auroc_summary(metrics: pd.DataFrame) -> pd.DataFrame:
    """AUROC per condition × method × n_per_class × scorer: mean, std (ddof=1) and n over cases × seeds.

    Rows are ordered by dataset, n_anomaly, the study's method order, n_per_class, scorer.
    """
    _require_columns(metrics, METRICS_COLUMNS, "metrics.parquet")
    auroc = metrics[metrics["metric"] == "auroc"]
    keys = ["dataset", "n_anomaly", "method", "n_per_class", "scorer"]
    out = (
        auroc.groupby(keys, sort=False)["value"]
        .agg(mean="mean", std="std", n="count")
        .reset_index()
    )
    methods = method_order(out["method"].unique())
    sizes = _n_per_class_order(out["n_per_class"].unique())
    out["_m"] = out["method"].map(methods.index)
    out["_n"] = out["n_per_class"].astype(str).map(sizes.index)
    out = out.sort_values(["dataset", "n_anomaly", "_m", "_n", "scorer"]).drop(columns=["_m", "_n"])
    out["n_anomaly"] = out["n_anomaly"].astype("int64")
    out["n"] = out["n"].astype("int64")
    return out.reset_index(drop=True)


def to_markdown(df: pd.DataFrame, floatfmt: str = ".3f") -> str:
    """A pipe table (pandoc/Quarto markdown) of ``df`` without its index; numbers right-aligned.

    Written here so the report does not depend on ``tabulate``.
    """

    def cell(value) -> str:
        if value is None or (not isinstance(value, str) and pd.isna(value)):
            return ""
        if isinstance(value, float):
            return format(value, floatfmt)
        return str(value).replace("|", r"\|").replace("\n", " ")

    numeric = [pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]) for c in df.columns]
    header = "| " + " | ".join(str(c).replace("|", r"\|") for c in df.columns) + " |"
    rule = "|" + "|".join("---:" if num else ":---" for num in numeric) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([header, rule, *body]) + "\n"


# --------------------------------------------------------------------------- charts


def auroc_box(metrics: pd.DataFrame, scorer: str = "cosine_k1", n_per_class: str = "all") -> alt.FacetChart:
    """Box plot of AUROC over cases × seeds per method, one panel per condition.

    Rows of ``metrics`` with metric "auroc", the given ``scorer`` and ``n_per_class`` are
    plotted; a dashed rule marks chance (AUROC 0.5). The chart's data is exactly those rows
    (columns dataset, n_anomaly, condition, method, n_per_class, seed, case, scorer, auroc).
    """
    _require_columns(metrics, METRICS_COLUMNS, "metrics.parquet")
    auroc = _auroc_rows(metrics, "metrics.parquet")
    data = _select(auroc, "metrics.parquet", scorer=scorer, n_per_class=n_per_class, extra=" AUROC")
    data, conditions = _with_condition(data)
    data = data[
        ["dataset", "n_anomaly", "condition", "method", "n_per_class", "seed", "case", "scorer", "value"]
    ].rename(columns={"value": "auroc"})
    data["n_per_class"] = data["n_per_class"].astype(str)
    data = data.reset_index(drop=True)
    methods = method_order(data["method"].unique())

    base = alt.Chart()
    box = base.mark_boxplot(size=22, extent=1.5).encode(
        x=alt.X("method:N", sort=methods, title="method", axis=alt.Axis(labelAngle=-30)),
        y=alt.Y(
            "auroc:Q",
            scale=alt.Scale(domain=[0, 1]),
            title="AUROC (anomaly positive; 0.5 = chance)",
        ),
        color=alt.Color("method:N", scale=method_colour_scale(methods), legend=alt.Legend(title="method")),
    )
    # One rule per panel: aggregate to a single row before drawing.
    chance = (
        base.transform_aggregate(rows="count()", groupby=["condition"])
        .mark_rule(strokeDash=[4, 4], color="#555555")
        .encode(y=alt.datum(0.5))
    )
    return (
        alt.layer(chance, box, data=data)  # rule first: boxes draw over it
        .properties(width=PANEL_WIDTH, height=PANEL_HEIGHT)
        .facet(
            facet=alt.Facet("condition:N", sort=conditions, title=None),
            columns=min(FACET_COLUMNS, len(conditions)),
        )
        .properties(
            title=alt.TitleParams(
                "AUROC per condition and method",
                subtitle=f"scorer {scorer}, n_per_class {n_per_class}; box over cases × seeds; dashed: chance",
            ),
            usermeta={"dmlbench": {"figure": "fig-auroc-box", "scorer": scorer, "n_per_class": str(n_per_class)}},
        )
    )


def normalised_distance_box(
    class_distances: pd.DataFrame, scorer: str = "cosine_k1", n_per_class: str = "all"
) -> alt.FacetChart:
    """Normalised distance of normal and anomaly test classes per method, one panel per condition.

    Each observation is one (case, seed, test class): the class's mean score divided by the
    mean score of all normal test images of that case (normal ≈ 1). Boxes are side by side
    per method (colour = role); a dashed rule at 1.0 marks the normal level.
    """
    _require_columns(class_distances, CLASS_DISTANCES_COLUMNS, "class_distances.parquet")
    data = _select(class_distances, "class_distances.parquet", scorer=scorer, n_per_class=n_per_class)
    data, conditions = _with_condition(data)
    data = data[
        ["dataset", "n_anomaly", "condition", "method", "n_per_class", "seed", "case", "scorer",
         "class_index", "class_name", "role", "normalised"]
    ]
    data["n_per_class"] = data["n_per_class"].astype(str)
    data = data.reset_index(drop=True)
    methods = method_order(data["method"].unique())
    roles = [r for r in ROLE_ORDER if r in set(data["role"])]

    base = alt.Chart()
    box = base.mark_boxplot(size=12, extent=1.5).encode(
        x=alt.X("method:N", sort=methods, title="method", axis=alt.Axis(labelAngle=-30)),
        xOffset=alt.XOffset("role:N", sort=roles),
        y=alt.Y(
            "normalised:Q",
            scale=alt.Scale(zero=True),
            title="class mean score / mean normal score (×)",
        ),
        color=alt.Color(
            "role:N",
            sort=roles,
            scale=alt.Scale(domain=roles, range=[ROLE_COLOURS[r] for r in roles]),
            legend=alt.Legend(title="test class"),
        ),
    )
    normal_level = (
        base.transform_aggregate(rows="count()", groupby=["condition"])
        .mark_rule(strokeDash=[4, 4], color="#555555")
        .encode(y=alt.datum(1.0))
    )
    return (
        alt.layer(normal_level, box, data=data)
        .properties(width=PANEL_WIDTH, height=PANEL_HEIGHT)
        .facet(
            facet=alt.Facet("condition:N", sort=conditions, title=None),
            columns=min(FACET_COLUMNS, len(conditions)),
        )
        .resolve_scale(y="independent")
        .properties(
            title=alt.TitleParams(
                "Normalised distance of normal and anomaly test classes",
                subtitle=(
                    f"scorer {scorer}, n_per_class {n_per_class}; one observation per case × seed × "
                    "test class; dashed: normal level (1.0)"
                ),
            ),
            usermeta={
                "dmlbench": {"figure": "fig-normalised-distance", "scorer": scorer, "n_per_class": str(n_per_class)}
            },
        )
    )


# --------------------------------------------------------------------------- report sections

RUNTIME_SUMMARY_COLUMNS = ["rule", "jobs", "total_minutes", "median_seconds", "max_seconds", "max_rss_mb"]
# The workflow's stages in the order they run; other rules follow alphabetically.
RULE_ORDER = ("prepare", "train", "score", "aggregate", "figures", "report")


def _ordered(df: pd.DataFrame, *extra: str) -> pd.DataFrame:
    """Rows sorted by dataset, n_anomaly, the study's method order, then ``extra`` columns."""
    methods = method_order(df["method"].unique())
    return (
        df.assign(_m=df["method"].map(methods.index))
        .sort_values(["dataset", "n_anomaly", "_m", *extra], kind="mergesort")
        .drop(columns="_m")
        .reset_index(drop=True)
    )


def _auroc_rows(df: pd.DataFrame, table: str) -> pd.DataFrame:
    """The AUROC rows of a metrics or summary table; a clear error when there are none."""
    auroc = df[df["metric"] == "auroc"]
    if auroc.empty:
        raise DmlbenchError(f"{table} has no AUROC rows; re-run `dmlbench aggregate`.")
    return auroc


def _summary_auroc(summary: pd.DataFrame, scorer: str, n_per_class: str) -> pd.DataFrame:
    """AUROC rows of the summary for one scorer and n_per_class, with a ``condition`` label, in order."""
    _require_columns(summary, stats.SUMMARY_COLUMNS, "summary.parquet")
    auroc = _auroc_rows(summary, "summary.parquet")
    data = _select(auroc, "summary.parquet", scorer=scorer, n_per_class=n_per_class, extra=" AUROC")
    data = data[["dataset", "n_anomaly", "method", "mean", "ci_low", "ci_high", "n"]]
    data, _ = _with_condition(data)
    return _ordered(data.astype({"n_anomaly": "int64", "n": "int64"}))


def _unit_domain(values: pd.Series) -> list[float]:
    """An AUROC axis from a tenth below the lowest value (and 0.5, chance) up to 1."""
    low = min(0.5, float(values.min()))
    return [max(0.0, math.floor(low * 10) / 10), 1.0]


def _method_colour(methods: list[str]) -> alt.Color:
    return alt.Color("method:N", sort=methods, scale=method_colour_scale(methods), legend=alt.Legend(title="method"))


def _facet(chart: alt.Chart, conditions: list[str]) -> alt.FacetChart:
    return chart.facet(
        facet=alt.Facet("condition:N", sort=conditions, title=None),
        columns=min(FACET_COLUMNS, len(conditions)),
    )


def _usermeta(figure: str, **info) -> dict:
    return {"dmlbench": {"figure": figure, **{k: v if isinstance(v, list) else str(v) for k, v in info.items()}}}


# 1. Setup


def case_class_chart(class_distances: pd.DataFrame, scorer: str = "cosine_k1") -> alt.FacetChart:
    """Which test classes are anomalies in each case: a case × class grid per condition (colour = role).

    The chart's data has one row per (condition, case, class) — the assignment is the same for
    every method, seed and n_per_class; ``scorer`` only picks the rows it is read from.
    """
    _require_columns(class_distances, CLASS_DISTANCES_COLUMNS, "class_distances.parquet")
    rows = class_distances[class_distances["scorer"] == scorer]
    if rows.empty:
        raise DmlbenchError(
            f"class_distances.parquet has no rows for scorer={scorer!r}; it has scorers "
            f"{sorted(class_distances['scorer'].unique().tolist())}. Choose one of those."
        )
    keys = ["dataset", "n_anomaly", "case", "class_index", "class_name"]
    data = rows[keys + ["role"]].drop_duplicates().sort_values(keys)
    clash = data[data.duplicated(keys, keep=False)]
    if not clash.empty:
        first = clash.iloc[0]
        raise DmlbenchError(
            f"class_distances.parquet gives class {first['class_name']!r} of case {first['case']} "
            f"({first['dataset']}, n_anomaly {first['n_anomaly']}) more than one role; "
            "re-run `dmlbench aggregate`."
        )
    data, conditions = _with_condition(data.reset_index(drop=True))
    roles = [r for r in ROLE_ORDER if r in set(data["role"])]
    grid = (
        alt.Chart(data)
        .mark_rect(stroke="white", strokeWidth=1)
        .encode(
            x=alt.X(
                "class_name:N",
                sort=alt.EncodingSortField("class_index", op="min"),
                title="test class",
                axis=alt.Axis(labelAngle=-45),
            ),
            y=alt.Y("case:O", title="case"),
            color=alt.Color(
                "role:N",
                sort=roles,
                scale=alt.Scale(domain=roles, range=[ROLE_COLOURS[r] for r in roles]),
                legend=alt.Legend(title="class role"),
            ),
            tooltip=["condition:N", "case:O", "class_index:O", "class_name:N", "role:N"],
        )
        .properties(width=alt.Step(22), height=alt.Step(18))
    )
    return (
        _facet(grid, conditions)
        .resolve_scale(x="independent", y="independent")
        .properties(
            title=alt.TitleParams(
                "Anomaly classes of each case",
                subtitle="case k: the n_anomaly classes from position k on (wrapping) are anomalies",
            ),
            usermeta=_usermeta("fig-case-classes", scorer=scorer),
        )
    )


def _format_param(value) -> str:
    return format(value, "g") if isinstance(value, float) else str(value)


def methods_table(config: dict) -> pd.DataFrame:
    """The configured methods in study order: columns method, parameters ("scale=30, margin=0.5";
    "—" when none), mixup ("yes (alpha 0.4)" or "no") and, when annex A.2 runs
    (``annex.sample_size``), mixup_annex: the mixup of the annex runs (``annex.mixup`` overrides
    the method's own when set)."""
    methods = config.get("methods")
    if not methods:
        raise DmlbenchError(
            "the config has no `methods`; pass the validated config (dmlbench.config.load_config)."
        )
    annex = config.get("annex") or {}

    def mixup_text(on: bool, alpha) -> str:
        return ("yes" if alpha is None else f"yes (alpha {_format_param(alpha)})") if on else "no"

    rows = []
    for method in method_order(methods):
        params = dict(methods[method] or {})
        mixup, alpha = params.pop("mixup", False), params.pop("mixup_alpha", None)
        row = {"method": method,
               "parameters": ", ".join(f"{k}={_format_param(v)}" for k, v in params.items()) or "—",
               "mixup": mixup_text(mixup, alpha)}
        if annex.get("sample_size"):
            row["mixup_annex"] = mixup_text(mixup if annex.get("mixup") is None else annex["mixup"], alpha)
        rows.append(row)
    columns = ["method", "parameters", "mixup"] + (["mixup_annex"] if annex.get("sample_size") else [])
    return pd.DataFrame(rows, columns=columns)


# 2. AUROC per condition and method


def auroc_ci_table(summary: pd.DataFrame, scorer: str = "cosine_k1", n_per_class: str = "all") -> pd.DataFrame:
    """Mean AUROC with its bootstrap CI per condition × method (study order); ``best`` marks the
    highest mean of each condition (ties all marked).

    Columns: dataset, n_anomaly, method, mean, ci_low, ci_high, n, best.
    """
    data = _summary_auroc(summary, scorer, n_per_class).drop(columns="condition")
    data["best"] = data["mean"] == data.groupby(CONDITION_KEYS)["mean"].transform("max")
    return data


def auroc_overview(summary: pd.DataFrame, scorer: str = "cosine_k1", n_per_class: str = "all") -> alt.LayerChart:
    """Mean AUROC and its 95 % bootstrap CI per method for every condition in one chart.

    One row per condition (y), methods side by side within it (colour); a dashed rule marks
    chance. The chart's data is the summary's AUROC rows (dataset, n_anomaly, method, mean,
    ci_low, ci_high, n, condition).
    """
    data = _summary_auroc(summary, scorer, n_per_class)
    conditions = list(dict.fromkeys(data["condition"]))
    methods = method_order(data["method"].unique())
    x_scale = alt.Scale(domain=_unit_domain(data[["mean", "ci_low"]].min(axis=1)))
    base = alt.Chart().encode(
        y=alt.Y("condition:N", sort=conditions, title=None),
        yOffset=alt.YOffset("method:N", sort=methods),
        color=_method_colour(methods),
        tooltip=[
            "condition:N", "method:N", alt.Tooltip("mean:Q", format=".3f"),
            alt.Tooltip("ci_low:Q", format=".3f"), alt.Tooltip("ci_high:Q", format=".3f"), "n:Q",
        ],
    )
    interval = base.mark_rule(strokeWidth=2).encode(x=alt.X("ci_low:Q", scale=x_scale), x2="ci_high:Q")
    point = base.mark_point(filled=True, size=50, opacity=1).encode(
        x=alt.X("mean:Q", scale=x_scale, title="mean AUROC (anomaly positive; 0.5 = chance)")
    )
    chance = (
        alt.Chart()
        .transform_aggregate(rows="count()")
        .mark_rule(strokeDash=[4, 4], color="#555555")
        .encode(x=alt.XDatum(0.5, scale=x_scale))
    )
    return alt.layer(chance, interval, point, data=data).properties(
        width=PANEL_WIDTH + 140,
        height=alt.Step(12),
        title=alt.TitleParams(
            "Mean AUROC per condition and method",
            subtitle=(
                f"scorer {scorer}, n_per_class {n_per_class}; point: mean over cases × seeds, "
                "bar: 95 % bootstrap CI; dashed: chance"
            ),
        ),
        usermeta=_usermeta("fig-auroc-overview", scorer=scorer, n_per_class=n_per_class),
    )


# 4. Normal/anomaly balance


def balance_table(
    summary: pd.DataFrame, class_distances: pd.DataFrame, scorer: str = "cosine_k1", n_per_class: str = "all"
) -> pd.DataFrame:
    """Per condition × method: mean AUROC (summary) and mean normalised distance of the anomaly
    classes (over cases × seeds × anomaly classes of ``class_distances``); NaN where one is missing.

    Columns: dataset, n_anomaly, method, auroc_mean, anomaly_distance_mean.
    """
    keys = ["dataset", "n_anomaly", "method"]
    auroc = _summary_auroc(summary, scorer, n_per_class)[keys + ["mean"]].rename(columns={"mean": "auroc_mean"})
    _require_columns(class_distances, CLASS_DISTANCES_COLUMNS, "class_distances.parquet")
    rows = _select(class_distances, "class_distances.parquet", scorer=scorer, n_per_class=n_per_class)
    anomalies = rows[rows["role"] == "anomaly"]
    if anomalies.empty:
        raise DmlbenchError(
            f"class_distances.parquet has no anomaly-class rows for scorer={scorer!r} and "
            f"n_per_class={str(n_per_class)!r}; re-run `dmlbench aggregate`."
        )
    distance = (
        anomalies.groupby(keys)["normalised"].mean().rename("anomaly_distance_mean").reset_index()
        .astype({"n_anomaly": "int64"})
    )
    return _ordered(auroc.merge(distance, on=keys, how="outer"))


BALANCE_MEASURES = {"auroc_mean": "mean AUROC", "anomaly_distance_mean": "mean normalised anomaly distance (×)"}


def balance_chart(
    summary: pd.DataFrame, class_distances: pd.DataFrame, scorer: str = "cosine_k1", n_per_class: str = "all"
) -> alt.VConcatChart:
    """Effect of the number of anomaly classes: mean AUROC (top row) and mean normalised anomaly
    distance (bottom row) against n_anomaly, one line per method, one column per dataset.

    Each row's data is its part of ``balance_table`` in long form (columns dataset, n_anomaly,
    method, measure, value).
    """
    table = balance_table(summary, class_distances, scorer, n_per_class)
    data = table.melt(
        id_vars=["dataset", "n_anomaly", "method"], value_vars=list(BALANCE_MEASURES),
        var_name="measure", value_name="value",
    ).dropna(subset=["value"])
    data["measure"] = data["measure"].map(BALANCE_MEASURES)
    methods = method_order(data["method"].unique())

    def row(measure: str, top: bool) -> alt.FacetChart:
        line = (
            alt.Chart()
            .mark_line(point=alt.OverlayMarkDef(filled=True, size=50))
            .encode(
                x=alt.X("n_anomaly:O", title=None if top else "anomaly classes (n_anomaly)",
                        axis=alt.Axis(labelAngle=0)),
                # An explicit format: a single value (one condition) otherwise gets the tick label "0".
                y=alt.Y("value:Q", scale=alt.Scale(zero=False), title=measure, axis=alt.Axis(format=".2f")),
                color=_method_colour(methods),
                tooltip=["dataset:N", "n_anomaly:O", "method:N", alt.Tooltip("value:Q", format=".3f")],
            )
            .properties(width=PANEL_WIDTH - 60, height=PANEL_HEIGHT - 60)
        )
        # Dataset names head the top row only.
        column = alt.Column("dataset:N", header=alt.Header(title=None, labels=top))
        return line.facet(column=column, data=data[data["measure"] == measure]).resolve_scale(x="independent")

    rows = [row(BALANCE_MEASURES["auroc_mean"], True), row(BALANCE_MEASURES["anomaly_distance_mean"], False)]
    return alt.vconcat(*rows).properties(
        title=alt.TitleParams(
            "Effect of the normal/anomaly balance",
            subtitle=(
                f"scorer {scorer}, n_per_class {n_per_class}; means over cases × seeds "
                "(distance: also over the anomaly classes)"
            ),
        ),
        usermeta=_usermeta("fig-balance", scorer=scorer, n_per_class=n_per_class),
    )


# 5. Cosine vs Euclidean


def _cosine_euclidean_pairs(metrics: pd.DataFrame, k: str, n_per_class: str) -> tuple[pd.DataFrame, list[str]]:
    """AUROC of cosine_k{k} and euclidean_k{k} side by side per (condition, method, seed, case)."""
    _require_columns(metrics, METRICS_COLUMNS, "metrics.parquet")
    auroc = _auroc_rows(metrics, "metrics.parquet")
    keys = ["dataset", "n_anomaly", "method", "seed", "case"]
    sides = [
        _select(auroc, "metrics.parquet", scorer=f"{name}_k{k}", n_per_class=n_per_class, extra=" AUROC")[
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
    pairs, conditions = _with_condition(pairs)
    return _ordered(pairs.astype({"n_anomaly": "int64", "seed": "int64", "case": "int64"}), "seed", "case"), conditions


def cosine_euclidean_table(metrics: pd.DataFrame, k: str = "1", n_per_class: str = "all") -> pd.DataFrame:
    """Cosine against Euclidean kNN AUROC per condition × method, paired by (case, seed).

    Columns: dataset, n_anomaly, method, cosine_mean, euclidean_mean, mean_difference
    (cosine − euclidean), share_cosine_better (share of pairs with cosine > euclidean), n_pairs,
    wilcoxon_p (two-sided paired signed-rank test), euclidean_below_half, cosine_below_half
    (mean AUROC below chance).
    """
    pairs, _ = _cosine_euclidean_pairs(metrics, str(k), n_per_class)
    rows = []
    for (dataset, n_anomaly, method), grp in pairs.groupby(["dataset", "n_anomaly", "method"], sort=False):
        cos, euc = grp["cosine"].to_numpy(), grp["euclidean"].to_numpy()
        rows.append(
            {
                "dataset": dataset, "n_anomaly": int(n_anomaly), "method": method,
                "cosine_mean": float(cos.mean()), "euclidean_mean": float(euc.mean()),
                "mean_difference": float((cos - euc).mean()),
                "share_cosine_better": float((cos > euc).mean()), "n_pairs": len(cos),
                "wilcoxon_p": stats.wilcoxon_p(cos, euc),
                "euclidean_below_half": bool(euc.mean() < 0.5), "cosine_below_half": bool(cos.mean() < 0.5),
            }
        )
    return pd.DataFrame(rows)


def cosine_euclidean_chart(metrics: pd.DataFrame, k: str = "1", n_per_class: str = "all") -> alt.FacetChart:
    """Paired scatter of AUROC, one point per (method, case, seed): Euclidean (x) against cosine (y)
    k-nearest-neighbour distance, one panel per condition. Above the diagonal, cosine is better;
    dashed lines mark chance on either axis.

    The chart's data: dataset, n_anomaly, method, seed, case, cosine, euclidean, condition.
    """
    k = str(k)
    data, conditions = _cosine_euclidean_pairs(metrics, k, n_per_class)
    methods = method_order(data["method"].unique())
    scale = alt.Scale(domain=_unit_domain(data[["cosine", "euclidean"]].min(axis=1)))
    low = scale.domain[0]
    per_panel = alt.Chart().transform_aggregate(rows="count()", groupby=["condition"])
    diagonal = per_panel.mark_rule(color="#555555").encode(
        x=alt.XDatum(low, scale=scale), y=alt.YDatum(low, scale=scale), x2=alt.X2Datum(1.0), y2=alt.Y2Datum(1.0)
    )
    chance_x = per_panel.mark_rule(strokeDash=[4, 4], color="#999999").encode(x=alt.XDatum(0.5, scale=scale))
    chance_y = per_panel.mark_rule(strokeDash=[4, 4], color="#999999").encode(y=alt.YDatum(0.5, scale=scale))
    points = (
        alt.Chart()
        .mark_point(filled=True, size=40, opacity=0.8)
        .encode(
            x=alt.X("euclidean:Q", scale=scale, title=f"AUROC, Euclidean k={k}"),
            y=alt.Y("cosine:Q", scale=scale, title=f"AUROC, cosine k={k}"),
            color=_method_colour(methods),
            tooltip=["method:N", "case:O", "seed:O", alt.Tooltip("cosine:Q", format=".3f"),
                     alt.Tooltip("euclidean:Q", format=".3f")],
        )
    )
    return (
        _facet(
            alt.layer(diagonal, chance_x, chance_y, points, data=data).properties(
                width=PANEL_HEIGHT, height=PANEL_HEIGHT
            ),
            conditions,
        )
        .properties(
            title=alt.TitleParams(
                "Cosine against Euclidean distance",
                subtitle=(
                    f"k = {k}, n_per_class {n_per_class}; one point per method × case × seed; "
                    "above the diagonal cosine is better; dashed: chance"
                ),
            ),
            usermeta=_usermeta("fig-cosine-euclidean", k=k, n_per_class=n_per_class,
                               scorers=[f"cosine_k{k}", f"euclidean_k{k}"]),
        )
    )


# 6. Scorers compared


def scorer_order(k: str = "1") -> list[str]:
    """Scorers compared in section 6, in the order they are shown."""
    return [f"cosine_k{k}", f"euclidean_k{k}", "mahalanobis", "msp", "maxlogit", "lof"]


def scorers_table(metrics: pd.DataFrame, n_per_class: str = "all", k: str = "1") -> pd.DataFrame:
    """Mean AUROC over cases × seeds per condition × method × scorer (``scorer_order``, those present).

    Columns: dataset, n_anomaly, method, scorer, mean, n.
    """
    _require_columns(metrics, METRICS_COLUMNS, "metrics.parquet")
    auroc = _auroc_rows(metrics, "metrics.parquet")
    order = scorer_order(str(k))
    rows = auroc[auroc["scorer"].isin(order) & (auroc["n_per_class"].astype(str) == str(n_per_class))]
    if rows.empty:
        raise DmlbenchError(
            f"metrics.parquet has no AUROC rows for the scorers {order} at n_per_class={str(n_per_class)!r}; "
            f"it has scorers {sorted(auroc['scorer'].unique().tolist())} and n_per_class "
            f"{_n_per_class_order(auroc['n_per_class'].unique())}. Choose k and n_per_class from those."
        )
    out = (
        rows.groupby(["dataset", "n_anomaly", "method", "scorer"])["value"]
        .agg(mean="mean", n="count")
        .reset_index()
        .astype({"n_anomaly": "int64", "n": "int64"})
    )
    out["_s"] = out["scorer"].map(order.index)
    return _ordered(out, "_s").drop(columns="_s")


def scorers_chart(metrics: pd.DataFrame, n_per_class: str = "all", k: str = "1") -> alt.FacetChart:
    """Heatmap of mean AUROC, method (rows) × scorer (columns), one panel per condition; white is
    chance (0.5), blue better, red worse. The chart's data is ``scorers_table`` with a condition label."""
    k = str(k)
    data, conditions = _with_condition(scorers_table(metrics, n_per_class, k))
    scorers = [s for s in scorer_order(k) if s in set(data["scorer"])]
    methods = method_order(data["method"].unique())
    base = alt.Chart().encode(
        x=alt.X("scorer:N", sort=scorers, title="scorer", axis=alt.Axis(labelAngle=-30)),
        y=alt.Y("method:N", sort=methods, title=None),
    )
    cells = base.mark_rect().encode(
        color=alt.Color(
            "mean:Q",
            scale=alt.Scale(scheme="redblue", domain=[0, 1], domainMid=0.5),
            legend=alt.Legend(title="mean AUROC"),
        ),
        tooltip=["method:N", "scorer:N", alt.Tooltip("mean:Q", format=".3f"), "n:Q"],
    )
    labels = base.mark_text(fontSize=10).encode(
        text=alt.Text("mean:Q", format=".3f"),
        color=alt.condition("abs(datum.mean - 0.5) > 0.35", alt.value("white"), alt.value("black")),
    )
    return (
        _facet(alt.layer(cells, labels, data=data).properties(width=alt.Step(52), height=alt.Step(22)), conditions)
        .properties(
            title=alt.TitleParams(
                "Mean AUROC per scorer",
                subtitle=f"k = {k}, n_per_class {n_per_class}; mean over cases × seeds; white: chance (0.5)",
            ),
            usermeta=_usermeta("fig-scorers", k=k, n_per_class=n_per_class, scorers=scorers),
        )
    )


# 7. Statistical ranking


def _ranking_rows(ranking: pd.DataFrame, scorer: str, n_per_class: str) -> pd.DataFrame:
    _require_columns(ranking, stats.RANKING_COLUMNS, "ranking.parquet")
    return _select(ranking, "ranking.parquet", scorer=scorer, n_per_class=n_per_class)


def ranking_tests_table(ranking: pd.DataFrame, scorer: str = "cosine_k1", n_per_class: str = "all") -> pd.DataFrame:
    """Average ranks and tests per condition × method (study order).

    Columns: dataset, n_anomaly, method, avg_rank, friedman_p, cd, n_blocks, wilcoxon_p,
    wilcoxon_p_holm, note.
    """
    columns = ["dataset", "n_anomaly", "method", "avg_rank", "friedman_p", "cd", "n_blocks", "wilcoxon_p",
               "wilcoxon_p_holm", "note"]
    return _ordered(_ranking_rows(ranking, scorer, n_per_class)[columns])


def demsar_cliques(ranks: list[float], cd: float) -> list[tuple[int, int]]:
    """Groups of methods not significantly different (Demšar 2006): for ``ranks`` sorted ascending,
    the maximal index spans (i, j), j > i, with ``ranks[j] - ranks[i] < cd``."""
    spans: list[tuple[int, int]] = []
    for i in range(len(ranks)):
        j = max(j for j in range(i, len(ranks)) if ranks[j] - ranks[i] < cd)
        if j > i and not any(a <= i and j <= b for a, b in spans):
            spans.append((i, j))
    return spans


def cd_layout(ranking: pd.DataFrame, scorer: str = "cosine_k1", n_per_class: str = "all") -> pd.DataFrame:
    """What ``cd_diagram`` draws, one row per element of a condition's panel.

    Columns: dataset, n_anomaly, condition, panel (facet title), element ("method": a method at
    ``x`` = its average rank; "cd": the critical difference from the best rank ``x`` to ``x2``;
    "clique": methods from rank ``x`` to ``x2`` that do not differ significantly), method, x, x2,
    y (row from the top), label, align (side of the point its label is written on). Methods without
    a rank (no complete block) are left out; a condition with CD NaN has no "cd" or "clique" rows.
    """
    rows = []
    for (dataset, n_anomaly), grp in _ranking_rows(ranking, scorer, n_per_class).groupby(CONDITION_KEYS):
        grp = grp.dropna(subset=["avg_rank"]).sort_values(["avg_rank", "method"], kind="mergesort")
        if grp.empty:
            continue
        first = grp.iloc[0]
        cd, p, n_blocks = float(first["cd"]), float(first["friedman_p"]), int(first["n_blocks"])
        condition = condition_label(dataset, n_anomaly)
        friedman = f"Friedman p = {p:.3g}" if math.isfinite(p) else "Friedman test n/a"
        key = {"dataset": dataset, "n_anomaly": int(n_anomaly), "condition": condition,
               "panel": f"{condition} — {friedman}, N = {n_blocks} blocks"}
        ranks = grp["avg_rank"].tolist()
        if math.isfinite(cd):
            rows.append(key | {"element": "cd", "method": "", "x": ranks[0], "x2": ranks[0] + cd, "y": 0.0,
                               "label": f"CD = {cd:.2f}", "align": "left"})
        # Names point into the panel: those in the worse half of the ranks are written to the left.
        middle = (1 + int(first["n_methods"])) / 2
        for y, (method, rank) in enumerate(zip(grp["method"], ranks), start=1):
            rows.append(key | {"element": "method", "method": method, "x": rank, "x2": math.nan, "y": float(y),
                               "label": f"{method} ({rank:.2f})", "align": "right" if rank > middle else "left"})
        if math.isfinite(cd):
            for c, (i, j) in enumerate(demsar_cliques(ranks, cd)):
                rows.append(key | {"element": "clique", "method": "", "x": ranks[i], "x2": ranks[j],
                                   "y": len(ranks) + 0.6 + 0.4 * c, "label": "", "align": "left"})
    columns = ["dataset", "n_anomaly", "condition", "panel", "element", "method", "x", "x2", "y", "label", "align"]
    return pd.DataFrame(rows, columns=columns)


def cd_diagram(ranking: pd.DataFrame, scorer: str = "cosine_k1", n_per_class: str = "all") -> alt.FacetChart:
    """Critical-difference diagram per condition: methods at their average AUROC rank (1 = best,
    left), the Nemenyi critical difference as a bar from the best rank, and thick bars joining
    methods whose ranks differ by less than CD. The chart's data is ``cd_layout``."""
    layout = cd_layout(ranking, scorer, n_per_class)
    if layout.empty:
        raise DmlbenchError(
            f"ranking.parquet has no average ranks for scorer={scorer!r} and n_per_class={str(n_per_class)!r} "
            "(no (case, seed) block has every method); run every method on the same cases and seeds."
        )
    _, conditions = _with_condition(_ranking_rows(ranking, scorer, n_per_class))
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

    def of(element: str, align: str | None = None) -> alt.Chart:
        keep = alt.datum.element == element
        return alt.Chart().transform_filter(keep if align is None else keep & (alt.datum.align == align))

    bar = of("cd").mark_rule(strokeWidth=2, color="black").encode(x=x, x2="x2:Q", y=y)
    bar_text = of("cd").mark_text(align="left", baseline="bottom", dy=-3, fontSize=11).encode(x=x, y=y, text="label:N")
    cliques = of("clique").mark_rule(strokeWidth=5, color="#333333", opacity=0.7).encode(x=x, x2="x2:Q", y=y)
    points = of("method").mark_point(filled=True, size=70, opacity=1).encode(
        x=x, y=y, color=_method_colour(methods),
        tooltip=["method:N", alt.Tooltip("x:Q", title="average rank", format=".2f")],
    )
    names = [
        of("method", align).mark_text(align=align, dx=8 if align == "left" else -8, fontSize=11).encode(
            x=x, y=y, text="label:N"
        )
        for align in ("left", "right")
    ]
    subtitle = [
        f"scorer {scorer}, n_per_class {n_per_class}; average rank of the AUROC within each (case, seed) block",
        "thin bar: Nemenyi critical difference (α = 0.05) from the best rank; thick bars: no significant difference",
    ]
    if no_cd:
        subtitle.append("no critical difference (fewer than 2 methods) for " + "; ".join(no_cd))
    if unranked:
        subtitle.append("no ranks (no (case, seed) block has every method) for " + "; ".join(unranked))
    return (
        alt.layer(bar, bar_text, cliques, points, *names, data=layout)
        .properties(width=PANEL_WIDTH + 140, height=round(22 * (float(layout["y"].max()) + 1.4)))
        .facet(
            row=alt.Row(
                "panel:N", sort=panels, title=None,
                header=alt.Header(labelAngle=0, labelAnchor="start", labelOrient="top"),
            )
        )
        .properties(
            title=alt.TitleParams("Critical-difference diagram", subtitle=subtitle),
            usermeta=_usermeta("fig-critical-difference", scorer=scorer, n_per_class=n_per_class),
        )
    )


# 13. Reproducibility


def runtime_summary(runtime: pd.DataFrame) -> pd.DataFrame:
    """Per rule (workflow order): jobs, total_minutes, median_seconds, max_seconds, max_rss_mb.
    An empty runtime table gives an empty frame with those columns."""
    _require_columns(runtime, ["rule", "seconds", "max_rss_mb"], "runtime.parquet")
    rows = []
    for rule, grp in runtime.groupby("rule"):
        seconds = grp["seconds"].astype("float64")
        rows.append({"rule": rule, "jobs": len(grp), "total_minutes": seconds.sum() / 60,
                     "median_seconds": seconds.median(), "max_seconds": seconds.max(),
                     "max_rss_mb": grp["max_rss_mb"].astype("float64").max()})
    rank = {r: i for i, r in enumerate(RULE_ORDER)}
    rows.sort(key=lambda r: (rank.get(r["rule"], len(rank)), r["rule"]))
    out = pd.DataFrame(rows, columns=RUNTIME_SUMMARY_COLUMNS)
    return out.astype({"rule": "str", "jobs": "int64", "total_minutes": "float64", "median_seconds": "float64",
                       "max_seconds": "float64", "max_rss_mb": "float64"})


# --------------------------------------------------------------------------- HTML display

_OFFLINE_RENDERER = "dmlbench-offline"


def _offline_renderer(spec: dict, **metadata) -> dict[str, str]:
    div = f"dmlbench-vis-{uuid.uuid4().hex}"
    # "</" inside a <script> would end it early; JSON allows escaping "/".
    spec_json = json.dumps(spec).replace("</", "<\\/")
    html = (
        f'<div id="{div}" class="dmlbench-chart"></div>\n'
        '<script type="text/javascript">\n'
        "(function () {\n"
        f'  var el = document.getElementById("{div}");\n'
        '  if (typeof window.vegaEmbed !== "function") {\n'
        '    el.textContent = "Chart library missing: display charts.enable_offline_html() first.";\n'
        "    return;\n"
        "  }\n"
        f"  window.vegaEmbed(el, {spec_json}, {{\"actions\": {{\"export\": true, \"source\": false, "
        '"compiled": false, "editor": false}}).catch(function (err) { el.textContent = String(err); });\n'
        "})();\n"
        "</script>"
    )
    return {"text/html": html}


def enable_offline_html() -> str:
    """Render Altair charts as HTML that needs no network; return the script to show once.

    Altair's default HTML loads Vega from a CDN at view time, which a self-contained
    (``embed-resources``) report cannot embed. This registers and enables a renderer whose
    output only calls ``window.vegaEmbed`` and returns a ``<script>`` (about 0.9 MB) that
    defines it from vl-convert's bundle; display it once, before the first chart.
    """
    import vl_convert as vlc

    alt.renderers.register(_OFFLINE_RENDERER, _offline_renderer)
    alt.renderers.enable(_OFFLINE_RENDERER)
    vl_version = "_".join(alt.SCHEMA_VERSION.split(".")[:2])  # "v6.4.1" -> "v6_4"
    bundle = vlc.javascript_bundle(vl_version=vl_version)
    # A function scope keeps the bundle's top-level names out of the page's global scope.
    return f'<script type="text/javascript">\n(function () {{\n{bundle}\n}})();\n</script>'
