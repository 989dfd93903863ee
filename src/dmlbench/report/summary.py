"""Section 1, Summary: the report's first page: the best method per condition and how many lie within its
interval, each claim's verdict, and the reproduction's verdict - one line each, linking to the
section that holds the evidence (``#sec-auroc``, ``#sec-findings``, ``#sec-reproduction``).

Pure functions of the tables the other sections build: ``summary`` (docs/tables.md), the
findings' claims table and the Reproduction section's cells and order tables.
"""

from __future__ import annotations

from dmlbench.report import reproduction
from dmlbench.report._style import pd, summary_auroc
from dmlbench.report.findings import findings, mixup_runs

TITLE = "Summary"
FIGURES = ()
TABLES = ()

AUROC_LINK = "[AUROC per condition](#sec-auroc)"
FINDINGS_LINK = "[Findings](#sec-findings)"
REPRODUCTION_LINK = "[Reproduction](#sec-reproduction)"


def best_methods(summary: pd.DataFrame, scorer: str, n_per_class: str) -> pd.DataFrame:
    """Per condition: the method with the highest mean AUROC (``scorer``, ``n_per_class``), its
    mean and 95 % interval, and the other methods whose mean lies within that interval
    (``within``: their labels, best first; ``n_within``; ``n_others``: the other methods)."""
    data = summary_auroc(summary, scorer, n_per_class)
    rows = []
    for (dataset, n_anomaly, condition), grp in data.groupby(["dataset", "n_anomaly", "condition"], sort=False):
        grp = grp.sort_values("mean", ascending=False, kind="mergesort")
        best = grp.iloc[0]
        others = grp.iloc[1:]
        within = others[(others["mean"] >= best["ci_low"]) & (others["mean"] <= best["ci_high"])]
        rows.append(
            {
                "dataset": dataset,
                "n_anomaly": int(n_anomaly),
                "condition": condition,
                "method": best["method"],
                "mean": float(best["mean"]),
                "ci_low": float(best["ci_low"]),
                "ci_high": float(best["ci_high"]),
                "n_others": len(others),
                "n_within": len(within),
                "within": ", ".join(within["method"]),
            }
        )
    return pd.DataFrame(rows)


def best_lines(best: pd.DataFrame, scorer: str, n_per_class: str) -> list[str]:
    images = "all training images" if str(n_per_class) == "all" else f"{n_per_class} training images per class"
    lines = []
    for r in best.itertuples():
        interval = "no interval" if pd.isna(r.ci_low) else f"[{r.ci_low:.3f}, {r.ci_high:.3f}]"
        within = f" ({r.within})" if r.n_within else ""
        lines.append(
            f"- Best in {r.condition}: **{r.method}**, AUROC {r.mean:.3f} {interval} ({scorer}, {images}); "
            f"{r.n_within} of the {r.n_others} other methods lie within its interval{within}. {AUROC_LINK}"
        )
    return lines


def claim_lines(claims: pd.DataFrame) -> list[str]:
    return [f"- Claim {r.number}: {r.claim} **{r.verdict}**. {FINDINGS_LINK}" for r in claims.itertuples()]


def reproduction_line(cells: pd.DataFrame | None, order: pd.DataFrame | None, no_match: str | None) -> str:
    """The reproduction's verdict: the cells that agree out of those compared (a bound only is
    not compared), and in how many cells the method order agrees; or why no cell matches."""
    if no_match is not None:
        return f"- Reproduction: {no_match}. {REPRODUCTION_LINK}"
    compared = cells[cells["verdict"] != reproduction.NOT_COMPARABLE]
    agree = int((compared["verdict"] == reproduction.AGREES).sum())
    higher = int((compared["verdict"] == reproduction.HIGHER).sum())
    lower = int((compared["verdict"] == reproduction.LOWER).sum())
    bounds = len(cells) - len(compared)
    text = f"- Reproduction: {agree} of {len(compared)} compared cells agree with the published values"
    text += f" ({higher} higher, {lower} lower" + (f"; {bounds} not comparable, a bound only)" if bounds else ")")
    ranked = order[order["n_methods"] >= 2] if order is not None else order
    if ranked is not None and len(ranked):
        same = int((ranked["order"] == reproduction.ORDER_AGREES).sum())
        rho = ranked["spearman"].dropna()
        text += f"; the method order agrees in {same} of {len(ranked)} cells"
        text += f" (Spearman {rho.min():+.2f} to {rho.max():+.2f})" if len(rho) else ""
    return text + f". {REPRODUCTION_LINK}"


def summary_text(v) -> str:
    """The Summary's Markdown for a View: three groups of lines."""
    best = best_methods(v.t["summary"], v.scorer, v.n)
    claims = findings(
        v.t["metrics"],
        v.t["class_distances"],
        scorer=v.scorer,
        n_per_class=v.n,
        mixup=mixup_runs(v.config),
        methods=v.config["methods"],
    )
    why = reproduction.needs_match(v.config)
    cells = order = None
    if why is None:
        refs = reproduction.matching_rows(v.config)
        cells = reproduction.comparison_table(refs, v.t["metrics"], v.config["methods"])
        order = reproduction.order_table(refs, v.t["metrics"], v.config["methods"])
    return "\n".join(
        [*best_lines(best, v.scorer, v.n), "", *claim_lines(claims), "", reproduction_line(cells, order, why), ""]
    )
