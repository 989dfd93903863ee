"""Section Tuning: every tuned method tuned with the same budget on each case's normal training
classes alone (dmlbench.tune), then trained tuned (``<label>_tuned``) beside its default run.

Tables: the search space and budget; the best parameters per method as a distribution over cases
(and the measure each condition was tuned on); tuned against default AUROC per condition and
method, paired by case, with the findings' test over cases (dmlbench.stats.case_test: sign-flip p,
Holm-adjusted within the table); the ranking of the tuned methods before and after tuning. Figure:
the best-so-far objective against the trial number, one line per method, per condition.
"""

from __future__ import annotations

import json

from dmlbench.config.sources import KNOWN_CLASS_COUNTS
from dmlbench.config.tuning import MEASURES, TUNED_SUFFIX, search_space, tuned_label, tuned_labels
from dmlbench.errors import DmlbenchError
from dmlbench.report._declare import Column, Figure, Table
from dmlbench.report._style import (
    PANEL_HEIGHT,
    PANEL_WIDTH,
    alt,
    method_colour,
    method_order,
    pd,
    select,
    stats,
    titled,
    with_condition,
)

TITLE = "Tuning"


def needs_tuning(config: dict) -> str | None:
    if not tuned_labels(config):
        return "nothing is tuned: tuning.methods is empty (every method runs at its paper's defaults)"
    return None


def _range_text(rng: dict) -> str:
    if "choices" in rng:
        return "one of " + ", ".join(str(c) for c in rng["choices"])
    kind = "integer " if rng.get("integer") else ""
    scale = ", log scale" if rng.get("log") else ""
    return f"{kind}[{rng['low']:g}, {rng['high']:g}]{scale}"


def space_table(config: dict) -> pd.DataFrame:
    """Per tuned method and parameter: its range, and the budget (the same on every row)."""
    t = config["tuning"]
    rows = []
    for label in tuned_labels(config):
        space = search_space(config, label) or {"(none)": None}
        for name, rng in space.items():
            rows.append(
                {
                    "method": label,
                    "parameter": name,
                    "range": _range_text(rng) if rng else "defaults only",
                    "trials": int(t["trials"]),
                    "folds": str(t["folds"]),
                    "timeout_s": t["timeout_per_trial"],
                }
            )
    return pd.DataFrame(rows)


def best_params_table(best: pd.DataFrame) -> pd.DataFrame:
    """Per method and parameter: the best value's distribution over cases (and seeds, conditions):
    count, min, median, max."""
    rows = []
    for _, r in best.iterrows():
        for name, value in json.loads(r["params"]).items():
            rows.append({"method": r["method"], "parameter": name, "value": value})
    if not rows:
        raise DmlbenchError("tuning_best.parquet holds no best parameters (no trial completed); see trials.csv")
    df = pd.DataFrame(rows)
    numeric = pd.to_numeric(df["value"], errors="coerce")
    df = df.assign(value=numeric).dropna(subset=["value"])
    out = df.groupby(["method", "parameter"])["value"].agg(n="count", min="min", median="median", max="max")
    out = out.reset_index()
    order = method_order(out["method"].unique())
    return out.assign(_m=out["method"].map(order.index)).sort_values(["_m", "parameter"]).drop(columns="_m")


def measures_table(best: pd.DataFrame, config: dict) -> pd.DataFrame:
    """Per condition: the objective's measure, its folds per trial (of the cases' normal classes)."""
    g = best.groupby(["dataset", "n_anomaly", "measure"]).agg(
        n_normal=("n_normal", "first"), n_folds=("n_folds", "max")
    )
    out = g.reset_index()
    out["objective"] = out["measure"].map(MEASURES)
    out["folds"] = [
        f"{f} of {n} normal classes per trial" if m == "lofo_auroc" else "none (closed set)"
        for f, n, m in zip(out["n_folds"], out["n_normal"], out["measure"])
    ]
    return out[["dataset", "n_anomaly", "measure", "objective", "folds"]].astype({"n_anomaly": "int64"})


def _case_auroc(metrics: pd.DataFrame, scorer: str, n_per_class: str) -> pd.DataFrame:
    rows = select(metrics[metrics["metric"] == "auroc"], "metrics.parquet", scorer=scorer, n_per_class=n_per_class)
    # a case's seeds share its classes and test images: averaged first (dmlbench.stats.case_means)
    return rows.groupby(["dataset", "n_anomaly", "method", "case"])["value"].mean().reset_index()


def paired_table(metrics: pd.DataFrame, best: pd.DataFrame, config: dict, scorer: str, n_per_class: str):
    """Per condition and tuned method: default and tuned mean AUROC, their difference (tuned -
    default) with its interval and the sign-flip p over cases (dmlbench.stats.case_test under the
    overlap rule), Holm-adjusted within the table, and the objective's measure."""
    auroc = _case_auroc(metrics, scorer, n_per_class)
    measures = best.groupby(["dataset", "n_anomaly"])["measure"].agg(lambda m: "/".join(sorted(set(m))))
    rows = []
    for (dataset, n), cond in auroc.groupby(["dataset", "n_anomaly"]):
        wide = cond.pivot(index="case", columns="method", values="value")
        n_classes = KNOWN_CLASS_COUNTS.get(config["datasets"][dataset]["source"])
        for label in tuned_labels(config):
            tuned = tuned_label(label)
            if label not in wide or tuned not in wide:
                continue
            diff = (wide[tuned] - wide[label]).dropna()
            test = stats.case_test(diff, int(n), n_classes)
            rows.append(
                {
                    "dataset": dataset,
                    "n_anomaly": int(n),
                    "method": label,
                    "default": float(wide[label].mean()),
                    "tuned": float(wide[tuned].mean()),
                    "difference": test.effect,
                    "ci_low": test.ci_low,
                    "ci_high": test.ci_high,
                    "p": test.p,
                    "cases": test.n,
                    "measure": measures.get((dataset, n), ""),
                }
            )
    if not rows:
        raise DmlbenchError("metrics.parquet has no tuned runs (<label>_tuned); rerun the workflow with tuning")
    out = pd.DataFrame(rows)
    out["p_holm"] = stats.holm(out["p"].to_numpy())
    return out


def ranking_change_table(metrics: pd.DataFrame, config: dict, scorer: str, n_per_class: str) -> pd.DataFrame:
    """Per condition: the tuned methods ranked by mean AUROC at their defaults and tuned; the best
    of each, and whether it changed."""
    auroc = _case_auroc(metrics, scorer, n_per_class)
    labels = tuned_labels(config)
    rows = []
    for (dataset, n), cond in auroc.groupby(["dataset", "n_anomaly"]):
        means = cond.groupby("method")["value"].mean()
        before = means.reindex(labels).dropna().sort_values(ascending=False, kind="mergesort")
        after = means.reindex([tuned_label(m) for m in labels]).dropna().sort_values(ascending=False, kind="mergesort")
        after.index = [m[: -len(TUNED_SUFFIX)] for m in after.index]
        if before.empty or after.empty:
            continue
        rows.append(
            {
                "dataset": dataset,
                "n_anomaly": int(n),
                "ranking_default": " > ".join(before.index),
                "ranking_tuned": " > ".join(after.index),
                "best_default": before.index[0],
                "best_tuned": after.index[0],
                "changed": before.index[0] != after.index[0],
            }
        )
    return pd.DataFrame(rows)


def ranking_sentence(table: pd.DataFrame) -> str:
    """The reality-check question answered in one sentence."""
    if table.empty:
        return "No condition has both default and tuned runs, so the ranking cannot be compared."
    changed = table[table["changed"]]
    if changed.empty:
        return (
            f"Tuning does not change which method is best: in "
            f"{'the one condition' if len(table) == 1 else f'all {len(table)} conditions'} the method with the "
            f"highest mean AUROC at its defaults ({', '.join(sorted(set(table['best_default'])))}) is also the best tuned."
        )
    parts = [f"{r.dataset} at {r.n_anomaly} ({r.best_default} → {r.best_tuned})" for r in changed.itertuples()]
    return (
        f"Tuning changes which method is best in {len(changed)} of {len(table)} conditions: {'; '.join(parts)} "
        f"(by mean AUROC; whether the difference is significant is the paired test above)."
    )


def progress_chart(trials: pd.DataFrame):
    """Best-so-far objective against the trial number, one line per method (mean over cases and
    seeds), one panel per condition (the measure in its title: AUROC and MAP@R do not mix)."""
    df = trials.dropna(subset=["best_so_far"])
    data = df.groupby(["dataset", "n_anomaly", "method", "trial"])["best_so_far"].mean().reset_index()
    data["trial"] = data["trial"] + 1
    data, conditions = with_condition(data)
    methods = method_order(data["method"].unique())
    chart = (
        alt.Chart(data)
        .mark_line(point=alt.OverlayMarkDef(filled=True, size=25))
        .encode(
            x=alt.X("trial:Q", title="trial", axis=alt.Axis(tickMinStep=1, format="d")),
            y=alt.Y("best_so_far:Q", title="best objective so far", scale=alt.Scale(zero=False)),
            color=method_colour(methods),
            tooltip=["condition:N", "method:N", "trial:Q", alt.Tooltip("best_so_far:Q", format=".4f")],
        )
        .properties(width=PANEL_WIDTH, height=PANEL_HEIGHT)
        .facet(facet=alt.Facet("condition:N", sort=conditions, title=None), columns=3)
    )
    return titled(chart, "Best-so-far objective per trial", ["mean over cases × seeds; validation only"])


FIGURES = (
    Figure(
        "fig-tuning-progress",
        "The best objective found so far against the trial number, per condition and tuned method (mean over "
        "cases and seeds; leave-one-normal-class-out validation AUROC, or closed-set MAP@R with fewer than "
        "three normal classes).",
        lambda v: progress_chart(v.t["tuning_trials"]),
        needs=needs_tuning,
    ),
)
TABLES = (
    Table(
        "tbl-tuning-space",
        "The search space per tuned method and the budget, the same for every method.",
        lambda v: space_table(v.config),
        needs=needs_tuning,
        columns=(
            Column("method", "method"),
            Column("parameter", "parameter"),
            Column("range", "range", None, 1.6),
            Column("trials", "trials per case", "d"),
            Column("folds", "folds per trial"),
        ),
    ),
    Table(
        "tbl-tuning-measures",
        "The objective each condition was tuned on.",
        lambda v: measures_table(v.t["tuning_best"], v.config),
        needs=needs_tuning,
        columns=(
            Column("dataset", "dataset"),
            Column("n_anomaly", "anomaly classes", "d", 0.8),
            Column("objective", "objective", None, 2.0),
            Column("folds", "folds", None, 1.4),
        ),
    ),
    Table(
        "tbl-tuning-best",
        "The best parameters per tuned method: their distribution over cases, seeds and conditions.",
        lambda v: best_params_table(v.t["tuning_best"]),
        needs=needs_tuning,
        columns=(
            Column("method", "method"),
            Column("parameter", "parameter"),
            Column("n", "cases", "d", 0.6),
            Column("min", "min", ".4g"),
            Column("median", "median", ".4g"),
            Column("max", "max", ".4g"),
        ),
    ),
    Table(
        "tbl-tuning-paired",
        "Tuned against default AUROC per condition and method, paired by case: the mean difference (tuned − "
        "default) with its 95 % interval and sign-flip p over cases, Holm-adjusted within the table.",
        lambda v: paired_table(v.t["metrics"], v.t["tuning_best"], v.config, v.scorer, v.n),
        needs=needs_tuning,
        columns=(
            Column("dataset", "dataset"),
            Column("n_anomaly", "anomaly classes", "d", 0.8),
            Column("method", "method"),
            Column("default", "default AUROC", ".3f"),
            Column("tuned", "tuned AUROC", ".3f"),
            Column("difference", "difference", "+.3f"),
            Column("ci_low", "95 % low", "+.3f"),
            Column("ci_high", "95 % high", "+.3f"),
            Column("p_holm", "p (Holm)", "p"),
            Column("cases", "cases", "d", 0.6),
        ),
    ),
    Table(
        "tbl-tuning-ranking",
        "The tuned methods ranked by mean AUROC at their defaults and tuned, per condition.",
        lambda v: ranking_change_table(v.t["metrics"], v.config, v.scorer, v.n),
        needs=needs_tuning,
        columns=(
            Column("dataset", "dataset"),
            Column("n_anomaly", "anomaly classes", "d", 0.8),
            Column("ranking_default", "at defaults", None, 1.8),
            Column("ranking_tuned", "tuned", None, 1.8),
            Column("changed", "best changed", "yes/no", 0.8),
        ),
    ),
)
