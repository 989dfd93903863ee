"""What a config makes, by name: the lists the Snakemake workflow needs to build its DAG.

Light on purpose: Snakemake parses the workflow in every job of a cluster or cloud run, so this
module and what it asks (the report's section declarations) import no torch, fastai, altair,
SciPy or scikit-learn.
"""

from __future__ import annotations

from dmlbench.layout import TABLE_NAMES  # noqa: F401  (the aggregate stage's tables, by name)


def planned_figures(config: dict) -> list[str]:
    """Labels of the figures a validated config makes (the figures rule's outputs), as the report's
    sections declare them (``dmlbench.report``, which imports no plotting package)."""
    from dmlbench.report import planned_figures as planned

    return planned(config)


def planned_tables(config: dict) -> list[str]:
    """Labels of the CSV tables a validated config makes."""
    from dmlbench.report import planned_tables as planned

    return planned(config)
