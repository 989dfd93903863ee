"""Figures stage: aggregate tables -> results/figures/<label>.{svg,png,vl.json} and results/tables/<label>.csv.

Reads the tables written by ``dmlbench aggregate`` (and ``dmlbench closed-set``), the effective
config written by ``dmlbench snapshot`` and, for the worst-misses images, the dataset npz;
builds every figure and table the report's sections declare (``dmlbench.report``) and writes
every file atomically. File names are the report's cross-reference labels (``fig-…``, ``tbl-…``),
so a paper can include ``results/figures/fig-auroc-box.svg`` for the report's @fig-auroc-box.
The PNGs are what the PDF report shows (Quarto does not turn Altair charts into images); the
``.vl.json`` specs carry the data and, in ``usermeta``, the scorer they were made for, which
the report checks against its own parameter.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from dmlbench.errors import DmlbenchError
from dmlbench.io import atomic_path, write_csv, write_text
from dmlbench.report import Figure, all_figures, all_tables, item, planned_figures, planned_tables
from dmlbench.report._style import print_config
from dmlbench.report.reproducibility import config_yaml
from dmlbench.report.study import (
    CLOSED_SET_TABLES,
    INPUT_TABLES,
    Study,
    View,
    knn_parts,
    main_n_per_class,
    miss_scorer,
    read_config,
    read_table,
)

FIGURE_SUFFIXES = (".svg", ".png", ".vl.json")
PNG_PPI = 200  # print resolution; vl-convert renders 1 chart pixel as PNG_PPI / 72 image pixels

#: Every figure and every table (CSV) of the report, in document order (declared by the sections).
ALL_FIGURES = tuple(f.label for f in all_figures())
ALL_TABLES = tuple(t.label for t in all_tables())


def build_one(view: View, label: str):
    """The chart (with the report's fonts, and its label and scorer in ``usermeta``) or the table
    that ``label`` declares, built from ``view``."""
    declared = item(label)
    built = declared.build(view)
    if not isinstance(declared, Figure):
        return built
    meta = built.to_dict().get("usermeta", {}).get("dmlbench", {})
    chart = print_config(built)
    return chart.properties(usermeta={"dmlbench": {**meta, "figure": label, "report_scorer": view.scorer}})


def build_figures(study: Study, scorer: str = "cosine_k1", labels: list[str] | None = None) -> dict:
    """The report's charts by figure label (pure apart from reading the worst-misses images)."""
    labels = planned_figures(study.config) if labels is None else labels
    view = View(study, scorer)
    return {label: build_one(view, label) for label in labels}


def build_tables(study: Study, scorer: str = "cosine_k1", labels: list[str] | None = None) -> dict:
    """The report's tables by label (pure apart from reading the worst-misses images)."""
    labels = planned_tables(study.config) if labels is None else labels
    view = View(study, scorer)
    return {label: build_one(view, label) for label in labels}


def save_chart(chart, figures_dir: str | os.PathLike, label: str, ppi: int = PNG_PPI) -> list[Path]:
    """Write an Altair chart as ``<label>.svg``, ``<label>.png`` (at ``ppi``) and ``<label>.vl.json``;
    return their paths."""
    figures_dir = Path(figures_dir)
    written = []
    for suffix in FIGURE_SUFFIXES:
        path = figures_dir / f"{label}{suffix}"
        if suffix == ".vl.json":
            write_text(path, chart.to_json(indent=2) + "\n")
        else:
            # vl-convert picks the format from the suffix, which atomic_path keeps on the temp name.
            with atomic_path(path) as tmp:
                if suffix == ".png":
                    chart.save(tmp, ppi=ppi)
                else:
                    chart.save(tmp)
        written.append(path)
    return written


def write_figures(
    tables_dir: str | os.PathLike,
    figures_dir: str | os.PathLike,
    scorer: str = "cosine_k1",
    config: str | os.PathLike | dict | None = None,
    data_dir: str | os.PathLike | None = None,
) -> list[Path]:
    """Write every planned figure (SVG, PNG at 200 ppi, Vega-Lite JSON) and table (CSV).

    Figures go to ``figures_dir/<label>.{svg,png,vl.json}``, tables to ``tables_dir/<label>.csv``.
    ``config`` is the snapshot path (default ``<results>/config.yaml`` next to ``tables_dir``) or a
    validated config dict; ``scorer`` selects the score column of the main figures. Everything is
    built before anything is written, so an error leaves no partial set. Returns the written paths.
    """
    tables_dir = Path(tables_dir)
    study = Study.load(tables_dir.parent, config, tables_dir, data_dir)
    figures = build_figures(study, scorer)
    tables = build_tables(study, scorer)
    written: list[Path] = []
    for label, chart in figures.items():
        written += save_chart(chart, figures_dir, label)
    for label, df in tables.items():
        path = tables_dir / f"{label}.csv"
        write_csv(path, df)
        written.append(path)
    return written


def check_figures(figures_dir: str | os.PathLike, scorer: str, labels: list[str]) -> dict[str, Path]:
    """Paths of the figures' PNGs by label, after checking they exist and were made for ``scorer``.

    The report calls this so its HTML charts (built from the tables with its ``scorer``
    parameter) and its PDF images (made by ``dmlbench figures``) show the same thing.
    """
    figures_dir = Path(figures_dir)
    pngs = {}
    for label in labels:
        png, spec_path = figures_dir / f"{label}.png", figures_dir / f"{label}.vl.json"
        if not (png.is_file() and spec_path.is_file()):
            raise DmlbenchError(f"figure {label} not found under {figures_dir}; run `dmlbench figures` first.")
        made_for = json.loads(spec_path.read_text()).get("usermeta", {}).get("dmlbench", {}).get("report_scorer")
        if made_for != scorer:
            raise DmlbenchError(
                f"figure {label} under {figures_dir} was made for scorer {made_for!r} but the report asks for "
                f"{scorer!r}; run `dmlbench figures --scorer {scorer}` or render with -P scorer:{made_for}."
            )
        pngs[label] = png
    return pngs


__all__ = [
    "ALL_FIGURES",
    "ALL_TABLES",
    "CLOSED_SET_TABLES",
    "INPUT_TABLES",
    "Study",
    "View",
    "build_figures",
    "build_one",
    "build_tables",
    "check_figures",
    "config_yaml",
    "knn_parts",
    "main_n_per_class",
    "miss_scorer",
    "planned_figures",
    "planned_tables",
    "read_config",
    "read_table",
    "save_chart",
    "write_figures",
]
