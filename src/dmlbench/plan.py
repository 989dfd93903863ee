"""What a config makes, by name: the lists the Snakemake workflow needs to build its DAG.

Light on purpose: Snakemake parses the workflow in every job of a cluster or cloud run, so this
module imports nothing beyond the standard library (no torch, fastai, altair, pandas or
scikit-learn). ``dmlbench.figures`` and ``dmlbench.aggregate`` re-export these names.
"""

from __future__ import annotations

#: Tables written by the aggregate stage (results/tables/<name>.parquet; columns in docs/tables.md).
TABLE_NAMES = ("metrics", "class_distances", "summary", "ranking", "worst_misses", "runtime", "runs")

#: Every figure of the report, in document order; planned_figures() drops those a config does not make.
ALL_FIGURES = (
    "fig-case-classes", "fig-auroc-box", "fig-auroc-overview", "fig-normalised-distance", "fig-balance",
    "fig-cosine-euclidean", "fig-scorers", "fig-critical-difference", "fig-worst-misses", "fig-tsne",
    "fig-annex-k", "fig-annex-sample-size",
)
#: Every table (CSV) of the report, in document order.
ALL_TABLES = (
    "tbl-conditions", "tbl-methods", "tbl-auroc-ci", "tbl-auroc-summary", "tbl-balance", "tbl-cosine-euclidean",
    "tbl-scorers", "tbl-ranking", "tbl-worst-misses", "tbl-closed-set", "tbl-annex-k", "tbl-annex-sample-size",
    "tbl-findings", "tbl-runtime", "tbl-runs",
)


def _not_made(config: dict) -> set[str]:
    """Labels (figures and tables) a validated config does not make."""
    skip = set()
    if not {"cosine", "euclidean"} <= set(config["scoring"]["distances"]):
        skip |= {"fig-cosine-euclidean", "tbl-cosine-euclidean"}
    if not config["tsne"]["enabled"]:
        skip |= {"fig-tsne", "tbl-closed-set"}
    if not config["annex"]["sample_size"]:
        skip |= {"fig-annex-sample-size", "tbl-annex-sample-size"}
    return skip


def planned_figures(config: dict) -> list[str]:
    """Labels of the figures a validated config makes (the figures rule's outputs)."""
    return [label for label in ALL_FIGURES if label not in _not_made(config)]


def planned_tables(config: dict) -> list[str]:
    """Labels of the CSV tables a validated config makes."""
    return [label for label in ALL_TABLES if label not in _not_made(config)]
