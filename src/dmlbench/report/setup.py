"""Section 2, Setup: the conditions run, which classes are anomalies in each case, the methods."""

from __future__ import annotations

from dmlbench.config import head_params
from dmlbench.config import methods as method_entries
from dmlbench.config.specs import annex_mixup_of
from dmlbench.errors import DmlbenchError
from dmlbench.report._declare import Column, Figure, Table
from dmlbench.report._style import (
    CLASS_DISTANCES_COLUMNS,
    CONDITION_KEYS,
    METRICS_COLUMNS,
    ROLE_COLOURS,
    ROLE_ORDER,
    alt,
    facet,
    method_order,
    n_per_class_order,
    pd,
    require_columns,
    stats,
    titled,
    with_condition,
)

TITLE = "Setup"


def conditions_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per condition (dataset, n_anomaly) with what was run for it.

    Columns: dataset, n_anomaly, methods (comma-separated, study order), n_per_class
    (comma-separated, numbers ascending then "all"), seeds and cases (number of distinct
    values), scorers (number of distinct scorers, the head's accuracy not counted). How the
    cases overlap: :func:`case_design_table`.
    """
    require_columns(metrics, METRICS_COLUMNS, "metrics.parquet")
    rows = []
    for (dataset, n_anomaly), grp in metrics.groupby(CONDITION_KEYS, sort=True):
        scorers = grp.loc[grp["metric"] != "accuracy", "scorer"].nunique()
        cases = grp["case"].unique()
        rows.append(
            {
                "dataset": dataset,
                "n_anomaly": int(n_anomaly),
                "methods": ", ".join(method_order(grp["method"].unique())),
                "n_per_class": ", ".join(n_per_class_order(grp["n_per_class"].unique())),
                "seeds": int(grp["seed"].nunique()),
                "cases": len(cases),
                "scorers": int(scorers),
            }
        )
    columns = ["dataset", "n_anomaly", "methods", "n_per_class", "seeds", "cases", "scorers"]
    return pd.DataFrame(rows, columns=columns)


def _listed(names: list[str], most: int = 8) -> str:
    if not names:
        return "—"
    if len(names) <= most:
        return ", ".join(names)
    return f"{', '.join(names[:most])} and {len(names) - most} more"


def case_design_table(class_distances: pd.DataFrame, scorer: str = "cosine_k1") -> pd.DataFrame:
    """How the cases of each condition overlap, and what the overlap rule makes of them: one row
    per condition (dataset, n_anomaly), read from the roles of class_distances.parquet (one
    method, seed and size's rows suffice: the assignment is the same for all).

    Columns: dataset, n_anomaly, n_classes, cases (number run), shared_adjacent (anomaly classes
    two neighbouring cases share: the most over consecutive cases run, n_anomaly − 1 for
    consecutive rotations; 0 with one case), disjoint_cases (``stats.independent_cases``),
    tested (the cases the findings' tests use under ``stats.case_design``: "all 10", "5
    disjoint of 10", or "exploratory" when no test holds its level), min_p (the smallest
    two-sided sign-flip p on the tested cases, ``stats.min_signflip_p``: above 0.05 no test can
    be significant; NaN where exploratory), anomaly_times (how often each class is an anomaly over the cases: "1 each",
    or "0–5" from the least to the most), never (the classes never an anomaly, "—" when every
    class is one).
    """
    require_columns(class_distances, CLASS_DISTANCES_COLUMNS, "class_distances.parquet")
    rows = class_distances[class_distances["scorer"] == scorer]
    if rows.empty:
        raise DmlbenchError(
            f"class_distances.parquet has no rows for scorer={scorer!r}; it has scorers "
            f"{sorted(class_distances['scorer'].unique().tolist())}. Choose one of those."
        )
    keys = ["dataset", "n_anomaly", "case", "class_index", "class_name", "role"]
    rows = rows[keys].drop_duplicates()
    n_classes = rows.groupby("dataset")["class_index"].nunique()
    out = []
    for (dataset, n_anomaly), grp in rows.groupby(CONDITION_KEYS, sort=True):
        n_anomaly, c = int(n_anomaly), int(n_classes[dataset])
        anomalies = grp[grp["role"] == "anomaly"].groupby("case")["class_index"].agg(frozenset)
        cases = sorted(int(k) for k in grp["case"].unique())
        sets = [anomalies.get(k, frozenset()) for k in cases]
        shared = max((len(a & b) for a, b in zip(sets, sets[1:])), default=0)
        design = stats.case_design(cases, n_anomaly, c)
        if design.exploratory:
            tested = "exploratory"
        elif len(design.tested) < len(cases):
            tested = f"{len(design.tested)} disjoint of {len(cases)}"
        else:
            tested = f"all {len(cases)}"
        names = grp[["class_index", "class_name"]].drop_duplicates().sort_values("class_index")
        times = {i: sum(i in a for a in sets) for i in names["class_index"]}
        lo, hi = min(times.values()), max(times.values())
        out.append(
            {
                "dataset": dataset,
                "n_anomaly": n_anomaly,
                "n_classes": c,
                "cases": len(cases),
                "shared_adjacent": shared,
                "disjoint_cases": design.n_independent,
                "tested": tested,
                "min_p": float("nan") if design.exploratory else stats.min_signflip_p(len(design.tested)),
                "anomaly_times": f"{lo} each" if lo == hi else f"{lo}–{hi}",
                "never": _listed([str(n) for i, n in zip(names["class_index"], names["class_name"]) if times[i] == 0]),
            }
        )
    columns = [
        "dataset",
        "n_anomaly",
        "n_classes",
        "cases",
        "shared_adjacent",
        "disjoint_cases",
        "tested",
        "min_p",
        "anomaly_times",
        "never",
    ]
    return pd.DataFrame(out, columns=columns)


def case_class_chart(class_distances: pd.DataFrame, scorer: str = "cosine_k1"):
    """Which test classes are anomalies in each case: a case × class grid per condition (colour = role).

    The chart's data has one row per (condition, case, class) — the assignment is the same for
    every method, seed and n_per_class; ``scorer`` only picks the rows it is read from.
    """
    require_columns(class_distances, CLASS_DISTANCES_COLUMNS, "class_distances.parquet")
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
    data, conditions = with_condition(data.reset_index(drop=True))
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
        .properties(width=alt.Step(12), height=alt.Step(12))
    )
    return titled(
        facet(grid, conditions).resolve_scale(x="independent", y="independent"),
        "Anomaly classes of each case",
        "per condition: the anomaly classes of case k start at class k",
        scorer=scorer,
    )


def _format_param(value) -> str:
    return format(value, "g") if isinstance(value, float) else str(value)


def _parameters_text(params: dict) -> str:
    parts = []
    for key, value in params.items():
        if isinstance(value, dict):  # a PML miner: its class and arguments
            args = ", ".join(f"{k}={_format_param(v)}" for k, v in value.items() if k != "name")
            value = f"{value.get('name')}({args})"
        parts.append(f"{key}={_format_param(value)}")
    return ", ".join(parts) or "—"


def methods_table(config: dict) -> pd.DataFrame:
    """The configured methods (variants of a head together, in study order): columns method (the
    label), head ("arcface"; "pml: SupConLoss" for a pytorch-metric-learning loss), parameters
    ("scale=30, margin=0.5"; "—" when none), mixup ("yes (alpha 0.4)", "no", or "n/a" for a PML
    loss, which has no per-sample loss to mix) and, when annex A.2 runs (``annex.sample_size``),
    mixup_annex: the mixup of the annex runs (``annex.mixup`` overrides the method's own when set,
    for the methods that can mix)."""
    methods = config.get("methods")
    if not methods:
        raise DmlbenchError("the config has no `methods`; pass the validated config (dmlbench.config.load_config).")
    annex = config.get("annex") or {}

    def mixup_text(on: bool, alpha) -> str:
        return ("yes" if alpha is None else f"yes (alpha {_format_param(alpha)})") if on else "no"

    rows = []
    for method in method_order(methods):
        params = dict(methods[method] or {})
        head = params.pop("head", method)
        params.pop("sweep", None)
        loss = params.pop("loss", None)
        mixup, alpha = params.pop("mixup", False), params.pop("mixup_alpha", None)
        mixes = method_entries.mixes({"head": head})
        # a head's own parameters in the order it declares them, whatever order the entry has
        declared = list(head_params.HEAD_PARAMS.get(head, {}))
        params = {
            k: params[k] for k in sorted(params, key=lambda k: declared.index(k) if k in declared else len(declared))
        }
        row = {
            "method": method,
            "head": f"{head}: {loss}" if loss else head,
            "parameters": _parameters_text(params),
            "mixup": mixup_text(mixup, alpha) if mixes else "n/a",
        }
        if annex.get("sample_size"):
            annex_mixup = annex_mixup_of(config, method)
            on = mixup if annex_mixup is None else annex_mixup
            row["mixup_annex"] = mixup_text(on, alpha) if mixes else "n/a"
        rows.append(row)
    columns = ["method", "head", "parameters", "mixup"] + (["mixup_annex"] if annex.get("sample_size") else [])
    return pd.DataFrame(rows, columns=columns)


def with_final_lambda(methods: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """The methods table with ``lambda_final``: SphereFace's λ at the last training step, from
    the runs table's ``final_lambda`` of each method's jobs ("5", or "5–8.7" from the smallest
    to the largest over its jobs; "—" for a method without λ). Unchanged when no run has a λ."""
    if "final_lambda" not in runs.columns or not runs["final_lambda"].notna().any():
        return methods
    spans = runs.dropna(subset=["final_lambda"]).groupby("method")["final_lambda"].agg(["min", "max"])

    def text(method: str) -> str:
        if method not in spans.index:
            return "—"
        lo, hi = spans.loc[method, "min"], spans.loc[method, "max"]
        return f"{lo:.3g}" if lo == hi else f"{lo:.3g}–{hi:.3g}"

    return methods.assign(lambda_final=[text(m) for m in methods["method"]])


TABLES = (
    Table(
        "tbl-conditions",
        "Conditions (dataset, number of anomaly classes) with the methods, training images per normal class, "
        "and the numbers of seeds, cases and scorers run for each.",
        lambda v: conditions_table(v.t["metrics"]),
        columns=(
            Column("dataset", "dataset"),
            Column("n_anomaly", "anomaly classes", "d", 0.8),
            Column("methods", "methods", None, 3.2),
            Column("n_per_class", "images per class", None, 1.0),
            Column("seeds", "seeds", "d", 0.6),
            Column("cases", "cases", "d", 0.6),
            Column("scorers", "scorers", "d", 0.7),
        ),
    ),
    Table(
        "tbl-case-design",
        "How the cases of each condition overlap: anomaly classes two neighbouring cases share, the most "
        "cases whose anomaly classes are disjoint, the cases the findings' tests use under the overlap rule "
        "(all; the disjoint ones; or exploratory, when too few are disjoint for any test to hold its level), "
        "the smallest two-sided sign-flip p those cases allow, how often each class is an anomaly over the "
        "cases, and the classes that never are (the config's cases: all makes every class an anomaly equally often).",
        lambda v: case_design_table(v.t["class_distances"], scorer=v.scorer),
        columns=(
            Column("dataset", "dataset"),
            Column("n_anomaly", "anomaly classes", "d", 0.8),
            Column("n_classes", "classes", "d", 0.6),
            Column("cases", "cases", "d", 0.6),
            Column("shared_adjacent", "shared by neighbours", "d", 0.8),
            Column("disjoint_cases", "disjoint cases", "d", 0.7),
            Column("tested", "findings test on", None, 1.1),
            Column("min_p", "smallest p", ".3g", 0.7),
            Column("anomaly_times", "times a class is an anomaly", None, 0.9),
            Column("never", "never an anomaly", None, 1.6),
        ),
    ),
    Table(
        "tbl-methods",
        "The methods (labels), their heads and settings: the papers' defaults unless the config sets them "
        "(a pytorch-metric-learning loss: its own defaults). The settings are fixed; what each method learns "
        "(class weights, proxies, CenterLoss's centres) is trained with the backbone. Mixup n/a: a "
        "pytorch-metric-learning loss gives no per-sample loss to mix. λ at the last step: SphereFace's "
        "annealed λ when training ended (over all its jobs).",
        lambda v: with_final_lambda(methods_table(v.config), v.t["runs"]),
        columns=(
            Column("method", "method", None, 1.3),
            Column("head", "head", None, 1.2),
            Column("parameters", "parameters", None, 2.5),
            Column("mixup", "mixup"),
            Column("mixup_annex", "mixup in annex A.2"),
            Column("lambda_final", "λ at the last step", None, 0.9),
        ),
    ),
)

FIGURES = (
    Figure(
        "fig-case-classes",
        "Normal and anomaly classes of every case, per condition.",
        lambda v: case_class_chart(v.t["class_distances"], scorer=v.scorer),
    ),
)
