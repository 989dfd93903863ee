"""What every section's charts and tables share: colours, orders, facets, column checks.

Altair is imported on first use (``alt`` below is a stand-in until then), so importing a
section module to read its figure and table declarations - as the workflow does when it plans
the figures stage - costs no Altair (or Vega) import.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Iterable

from dmlbench.config import methods as method_entries
from dmlbench.errors import DmlbenchError


class _Lazy:
    """A module imported on first attribute access."""

    def __init__(self, name: str):
        self._name, self._module = name, None

    def __getattr__(self, attr: str):
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)


alt = _Lazy("altair")
pd = _Lazy("pandas")
stats = _Lazy("dmlbench.stats")  # scipy: imported when a test statistic is computed, not when planning

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
    "dataset",
    "n_anomaly",
    "method",
    "n_per_class",
    "seed",
    "case",
    "scorer",
    "metric",
    "value",
]
CLASS_DISTANCES_COLUMNS = [
    "dataset",
    "n_anomaly",
    "method",
    "n_per_class",
    "seed",
    "case",
    "scorer",
    "class_index",
    "class_name",
    "role",
    "mean_score",
    "normalised",
]
SUMMARY_COLUMNS = [
    "dataset",
    "n_anomaly",
    "method",
    "n_per_class",
    "scorer",
    "metric",
    "mean",
    "std",
    "n",
    "ci_low",
    "ci_high",
]

# Sizes in chart pixels. The PDF shows the PNGs at 1 chart pixel = 1 pt as long as a figure fits
# the text width (17 cm = 482 pt on A4 with the report's 2 cm margins) and scales wider ones
# down, so panels are sized for three across the page and fonts stay >= 7 pt in print
# (tests/workflow/test_figures.py checks every figure).
PANEL_WIDTH = 150
PANEL_HEIGHT = 130
FACET_COLUMNS = 3
PRINT_WIDTH_PT = 482
MIN_PRINT_FONT_PT = 7.0
FONT = {"label": 10, "title": 11, "header": 11, "chart_title": 13, "subtitle": 10, "mark": 9}


def print_config(chart):
    """``chart`` with the report's fonts and a legend under the panels (the page is narrow)."""
    return (
        chart.configure_axis(labelFontSize=FONT["label"], titleFontSize=FONT["title"])
        .configure_legend(
            labelFontSize=FONT["label"],
            titleFontSize=FONT["title"],
            orient="bottom",
            direction="horizontal",
            columns=4,
            labelLimit=200,
        )
        .configure_header(labelFontSize=FONT["header"], titleFontSize=FONT["header"])
        .configure_title(fontSize=FONT["chart_title"], subtitleFontSize=FONT["subtitle"], anchor="start")
        .configure_view(continuousWidth=PANEL_WIDTH, continuousHeight=PANEL_HEIGHT)
    )


def require_columns(
    df: pd.DataFrame,
    columns: Iterable[str],
    table: str,
    hint: str = "Re-run `dmlbench aggregate` to rebuild the tables.",
) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DmlbenchError(f"{table} lacks column(s) {missing}; it has {list(df.columns)}. {hint}")


#: The method entries of the study being reported (label -> entry with its head), set by
#: :func:`use_methods` when a study is loaded: the order and colours of variants follow their
#: heads. Without it a label's head is read off the label (``arcface_margin0.3`` -> arcface).
_METHODS: dict[str, dict] = {}


def use_methods(methods: dict | None) -> None:
    """Order and colour the methods as the expanded config ``methods`` (label -> entry) says."""
    _METHODS.clear()
    _METHODS.update(methods or {})


def method_order(methods: Iterable[str]) -> list[str]:
    """The methods present, grouped by head in the study's order (dmlbench.METHOD_ORDER), each
    head's variants together (in the config's order), then pytorch-metric-learning losses, then
    unknown labels alphabetically (dmlbench.config.methods.method_order)."""
    return method_entries.method_order(methods, _METHODS)


def _mix(colour: str, towards: str, share: float) -> str:
    """``colour`` moved ``share`` of the way to ``towards`` (both ``#rrggbb``)."""
    a = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
    b = [int(towards[i : i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(x + (y - x) * share):02x}" for x, y in zip(a, b))


def method_colours(methods: Iterable[str]) -> dict[str, str]:
    """A colour per method: each head's own (METHOD_COLOURS; other heads and each PML loss one of
    the extra colours), and a head's variants shades of it, darkest first in method order (from
    35 % towards black to 45 % towards white)."""
    order = method_order(methods)
    families: dict[str, list[str]] = {}
    for label in order:
        families.setdefault(method_entries.family(label, _METHODS or None), []).append(label)
    extra = iter(_EXTRA_COLOURS * (1 + len(families)))
    colours = {}
    for fam, labels in families.items():
        base = METHOD_COLOURS.get(fam) or next(extra)
        for i, label in enumerate(labels):
            t = -0.35 + 0.8 * i / (len(labels) - 1) if len(labels) > 1 else 0.0
            colours[label] = _mix(base, "#000000", -t) if t < 0 else _mix(base, "#ffffff", t)
    return colours


def method_colour_scale(methods: Iterable[str]):
    """Colour scale that gives each method the same colour in every chart."""
    order = method_order(methods)
    colours = method_colours(order)
    return alt.Scale(domain=order, range=[colours[m] for m in order])


def method_colour(methods: list[str]):
    return alt.Color("method:N", sort=methods, scale=method_colour_scale(methods), legend=alt.Legend(title="method"))


def n_per_class_order(values: Iterable[str]) -> list[str]:
    """Images per class as numbers ascending, then "all"."""
    values = {str(v) for v in values}
    # Integers numerically; anything else (not in the contract) after them, alphabetically.
    numbers = sorted((v for v in values if v != "all"), key=lambda v: (0, int(v), "") if v.isdigit() else (1, 0, v))
    return numbers + (["all"] if "all" in values else [])


def condition_label(dataset: str, n_anomaly: int) -> str:
    """Facet title of a condition, e.g. ``"digits · 3 anomaly classes"``."""
    n = int(n_anomaly)
    return f"{dataset} · {n} anomaly class{'' if n == 1 else 'es'}"


def with_condition(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
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


def select(df: pd.DataFrame, table: str, *, scorer: str, n_per_class: str, extra: str = "") -> pd.DataFrame:
    """Rows of one scorer and one n_per_class; a clear error when there are none."""
    n_per_class = str(n_per_class)
    out = df[(df["scorer"] == scorer) & (df["n_per_class"].astype(str) == n_per_class)]
    if out.empty:
        scorers = sorted(df["scorer"].unique().tolist())
        sizes = n_per_class_order(df["n_per_class"].unique())
        raise DmlbenchError(
            f"{table} has no{extra} rows for scorer={scorer!r} and n_per_class={n_per_class!r}; "
            f"it has scorers {scorers} and n_per_class {sizes}. Choose one of those "
            "(the report's `scorer` parameter, `dmlbench figures --scorer`)."
        )
    return out


def ordered(df: pd.DataFrame, *extra: str) -> pd.DataFrame:
    """Rows sorted by dataset, n_anomaly, the study's method order, then ``extra`` columns."""
    methods = method_order(df["method"].unique())
    return (
        df.assign(_m=df["method"].map(methods.index))
        .sort_values(["dataset", "n_anomaly", "_m", *extra], kind="mergesort")
        .drop(columns="_m")
        .reset_index(drop=True)
    )


def auroc_rows(df: pd.DataFrame, table: str, columns: Iterable[str] = ()) -> pd.DataFrame:
    """The AUROC rows of a metrics or summary table (checked for ``columns`` first); a clear error
    when there are none."""
    require_columns(df, columns, table)
    auroc = df[df["metric"] == "auroc"]
    if auroc.empty:
        raise DmlbenchError(f"{table} has no AUROC rows; re-run `dmlbench aggregate`.")
    return auroc


def summary_auroc(summary: pd.DataFrame, scorer: str, n_per_class: str) -> pd.DataFrame:
    """AUROC rows of the summary for one scorer and n_per_class, with a ``condition`` label, in order."""
    require_columns(summary, SUMMARY_COLUMNS, "summary.parquet")
    auroc = auroc_rows(summary, "summary.parquet")
    data = select(auroc, "summary.parquet", scorer=scorer, n_per_class=n_per_class, extra=" AUROC")
    data = data[["dataset", "n_anomaly", "method", "mean", "ci_low", "ci_high", "n"]]
    data, _ = with_condition(data)
    return ordered(data.astype({"n_anomaly": "int64", "n": "int64"}))


def unit_domain(values: pd.Series) -> list[float]:
    """An AUROC axis from a tenth below the lowest value (and 0.5, chance) up to 1."""
    low = min(0.5, float(values.min()))
    return [max(0.0, math.floor(low * 10) / 10), 1.0]


def facet(chart, conditions: list[str]):
    """One panel per condition, at most FACET_COLUMNS to a row."""
    return chart.facet(
        facet=alt.Facet("condition:N", sort=conditions, title=None),
        columns=min(FACET_COLUMNS, len(conditions)),
    )


def chance_rule(groupby: list[str] | None = None, *, x: float | None = None, y: float | None = None, scale=None):
    """A dashed reference line (chance, the normal level), one per panel of ``groupby``."""
    base = (
        alt.Chart()
        .transform_aggregate(rows="count()", groupby=groupby or [])
        .mark_rule(strokeDash=[4, 4], color="#555555")
    )
    if x is not None:
        return base.encode(x=alt.XDatum(x, scale=scale) if scale is not None else alt.datum(x))
    return base.encode(y=alt.YDatum(y, scale=scale) if scale is not None else alt.datum(y))


def titled(chart, title: str, subtitle, **info):
    """The chart with its title, subtitle and ``usermeta`` naming its selection (scorer, k, ...);
    ``dmlbench figures`` adds the figure's label when it exports it."""
    meta = {"dmlbench": {k: v if isinstance(v, (list, int)) else str(v) for k, v in info.items()}}
    return chart.properties(title=alt.TitleParams(title, subtitle=subtitle), usermeta=meta)


def selection(scorer: str | None = None, n_per_class: str | None = None, k: str | None = None) -> str:
    """A chart subtitle naming what it shows: "scorer cosine_k1 · all images per class"."""
    parts = [f"scorer {scorer}"] if scorer else []
    parts += [f"k = {k}"] if k else []
    if n_per_class is not None:
        parts.append("all images per class" if str(n_per_class) == "all" else f"{n_per_class} images per class")
    return " · ".join(parts)
