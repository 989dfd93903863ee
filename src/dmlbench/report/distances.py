"""Section 4, Normalised distances: normal and anomaly test classes on a common scale."""

from __future__ import annotations

from dmlbench.report._declare import Figure
from dmlbench.report._style import (
    CLASS_DISTANCES_COLUMNS,
    PANEL_HEIGHT,
    PANEL_WIDTH,
    ROLE_COLOURS,
    ROLE_ORDER,
    alt,
    chance_rule,
    facet,
    method_order,
    pd,
    require_columns,
    select,
    selection,
    titled,
    with_condition,
)

TITLE = "Normalised distances"


def normalised_distance_box(class_distances: pd.DataFrame, scorer: str = "cosine_k1", n_per_class: str = "all"):
    """Normalised distance of normal and anomaly test classes per method, one panel per condition.

    Each observation is one (case, seed, test class): the class's mean score divided by the
    normal level of that case, the mean of its normal classes' mean scores
    (``class_distances.normalised``; dmlbench.metrics.normalised_distances, docs/metrics.md). Boxes are side
    by side per method (colour = role); a dashed rule at 1.0 marks the normal level.
    """
    require_columns(class_distances, CLASS_DISTANCES_COLUMNS, "class_distances.parquet")
    data = select(class_distances, "class_distances.parquet", scorer=scorer, n_per_class=n_per_class)
    data, conditions = with_condition(data)
    data = data[
        [
            "dataset",
            "n_anomaly",
            "condition",
            "method",
            "n_per_class",
            "seed",
            "case",
            "scorer",
            "class_index",
            "class_name",
            "role",
            "normalised",
        ]
    ]
    data["n_per_class"] = data["n_per_class"].astype(str)
    data = data.reset_index(drop=True)
    methods = method_order(data["method"].unique())
    roles = [r for r in ROLE_ORDER if r in set(data["role"])]

    box = (
        alt.Chart()
        .mark_boxplot(size=7, extent=1.5)
        .encode(
            x=alt.X("method:N", sort=methods, title=None, axis=alt.Axis(labelAngle=-40)),
            xOffset=alt.XOffset("role:N", sort=roles),
            y=alt.Y("normalised:Q", scale=alt.Scale(zero=True), title="distance (× normal level)"),
            color=alt.Color(
                "role:N",
                sort=roles,
                scale=alt.Scale(domain=roles, range=[ROLE_COLOURS[r] for r in roles]),
                legend=alt.Legend(title="test class"),
            ),
        )
    )
    layered = alt.layer(chance_rule(["condition"], y=1.0), box, data=data).properties(
        width=PANEL_WIDTH, height=PANEL_HEIGHT
    )
    return titled(
        facet(layered, conditions).resolve_scale(y="independent"),
        "Normalised distance of normal and anomaly test classes",
        [selection(scorer=scorer, n_per_class=n_per_class), "dashed: the normal level (1.0)"],
        scorer=scorer,
        n_per_class=n_per_class,
    )


FIGURES = (
    Figure(
        "fig-normalised-distance",
        "Normalised distance of normal and anomaly test classes per condition and method. Boxes: quartiles and "
        "median over cases × seeds × test classes; dashed: the normal level (1.0).",
        lambda v: normalised_distance_box(v.t["class_distances"], scorer=v.distance_scorer, n_per_class=v.n),
    ),
)
TABLES = ()
