"""Pure builders: tidy tables (pandas) -> report tables and Altair charts.

Nothing here reads or writes files; ``dmlbench.figures`` exports what these build and the
report calls them on the tables under ``results/tables``. Input columns follow the aggregate
stage's contract (DESIGN.md §4): ``metrics``, ``class_distances``.
"""

from __future__ import annotations

import json
import uuid
from typing import Iterable

import altair as alt
import pandas as pd

from dmlbench.errors import DmlbenchError

# The study's order; methods outside it (a user's own head) follow alphabetically.
METHOD_ORDER = ("conventional", "l2softmax", "arcface", "cosface", "sphereface", "centerloss")
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


def _require_columns(df: pd.DataFrame, columns: Iterable[str], table: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DmlbenchError(
            f"{table} lacks column(s) {missing}; it has {list(df.columns)}. "
            "Re-run `dmlbench aggregate` to rebuild the tables."
        )


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
    auroc = metrics[metrics["metric"] == "auroc"]
    if auroc.empty:
        raise DmlbenchError("metrics.parquet has no AUROC rows; re-run `dmlbench aggregate`.")
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
