"""The report, one module per section, in the order the report shows them.

Each section module declares its figures and tables (``FIGURES``, ``TABLES``: label, caption,
builder, and when a config makes them) next to the builders; ``report/sections/<module>.qmd``
holds the section's prose and shows each item with one call. Labels are the files' names under
``results/figures`` and ``results/tables`` and the report's cross-references (``@fig-auroc-box``).

Importing this package imports no Altair, SciPy or torch: the workflow reads the declarations
when it plans the figures stage.
"""

from __future__ import annotations

from dmlbench.report import (
    annex_k,
    annex_sample_size,
    auroc,
    balance,
    cosine_euclidean,
    distances,
    embeddings,
    findings,
    ranking,
    reproducibility,
    reproduction,
    scorers,
    sensitivity,
    setup,
    summary,
    tuning,
    worst_misses,
)
from dmlbench.report._declare import Column, Figure, Table

#: The sections in report order; ``report/sections/<name>.qmd`` is each one's include.
SECTIONS = (
    summary,
    setup,
    auroc,
    distances,
    balance,
    cosine_euclidean,
    scorers,
    ranking,
    worst_misses,
    embeddings,
    annex_k,
    annex_sample_size,
    sensitivity,
    tuning,
    findings,
    reproduction,
    reproducibility,
)


def section_name(section) -> str:
    """``"cosine_euclidean"`` for the module ``dmlbench.report.cosine_euclidean``."""
    return section.__name__.rsplit(".", 1)[1]


def all_figures() -> list[Figure]:
    """Every figure of the report, in section order."""
    return [f for s in SECTIONS for f in s.FIGURES]


def all_tables() -> list[Table]:
    """Every table of the report (printed or CSV only), in section order."""
    return [t for s in SECTIONS for t in s.TABLES]


def item(label: str) -> Figure | Table:
    """The declaration of a figure or table label; KeyError names the known labels."""
    for it in all_figures() + all_tables():
        if it.label == label:
            return it
    known = ", ".join(it.label for it in all_figures() + all_tables())
    raise KeyError(f"no figure or table {label!r} in the report; known: {known}")


def planned_figures(config: dict) -> list[str]:
    """Labels of the figures a validated config makes (the figures rule's outputs)."""
    return [f.label for f in all_figures() if f.needs(config) is None]


def planned_tables(config: dict) -> list[str]:
    """Labels of the CSV tables a validated config makes."""
    return [t.label for t in all_tables() if t.needs(config) is None]


__all__ = [
    "SECTIONS",
    "Column",
    "Figure",
    "Table",
    "all_figures",
    "all_tables",
    "item",
    "planned_figures",
    "planned_tables",
    "section_name",
]
