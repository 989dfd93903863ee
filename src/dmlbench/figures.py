"""Figures stage: aggregate tables -> results/figures/<label>.{svg,png,vl.json} and report tables as CSV.

Reads ``metrics.parquet`` and ``class_distances.parquet`` (written by ``dmlbench aggregate``),
builds the charts and tables with ``dmlbench.charts`` and writes every file atomically.
The PNGs are what the PDF report shows (Quarto does not turn Altair charts into images);
the SVGs are for citing; the ``.vl.json`` specs carry the data and, in ``usermeta``, the
scorer they were made for, which the report checks against its own parameter.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import altair as alt
import pandas as pd

from dmlbench import charts
from dmlbench.errors import DmlbenchError
from dmlbench.io import atomic_path, write_csv, write_text

FIGURE_LABELS = ("fig-auroc-box", "fig-normalised-distance")
TABLE_LABELS = ("tab-conditions", "tab-auroc-summary")
FIGURE_SUFFIXES = (".svg", ".png", ".vl.json")
PNG_PPI = 200  # print resolution; vl-convert renders 1 chart pixel as PNG_PPI / 72 image pixels


def read_table(tables_dir: str | os.PathLike, name: str) -> pd.DataFrame:
    """Read ``tables_dir/<name>.parquet``; a clear error when the aggregate stage has not run."""
    path = Path(tables_dir) / f"{name}.parquet"
    if not path.is_file():
        raise DmlbenchError(
            f"table {name}.parquet not found at {path}; run `dmlbench aggregate` first to write "
            "the tables under results/tables."
        )
    return pd.read_parquet(path)


def save_chart(chart: alt.TopLevelMixin, figures_dir: str | os.PathLike, label: str, ppi: int = PNG_PPI) -> list[Path]:
    """Write ``<label>.svg``, ``<label>.png`` (at ``ppi``) and ``<label>.vl.json``; return their paths."""
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


def build_figures(metrics: pd.DataFrame, class_distances: pd.DataFrame, scorer: str = "cosine_k1") -> dict[str, alt.TopLevelMixin]:
    """The report's charts by figure label (pure; no file access)."""
    return {
        "fig-auroc-box": charts.auroc_box(metrics, scorer=scorer),
        "fig-normalised-distance": charts.normalised_distance_box(class_distances, scorer=scorer),
    }


def build_tables(metrics: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The report's tables by table label (pure; no file access)."""
    return {
        "tab-conditions": charts.conditions_table(metrics),
        "tab-auroc-summary": charts.auroc_summary(metrics),
    }


def write_figures(
    tables_dir: str | os.PathLike, figures_dir: str | os.PathLike, scorer: str = "cosine_k1"
) -> list[Path]:
    """Write every figure (SVG, PNG at 200 ppi, Vega-Lite JSON) and every table (CSV).

    Figures go to ``figures_dir/<label>.{svg,png,vl.json}`` for the labels in
    ``FIGURE_LABELS``; tables to ``tables_dir/<label>.csv`` for ``TABLE_LABELS``.
    ``scorer`` selects the score column the figures show (e.g. "cosine_k1"). Returns the
    written paths. Raises DmlbenchError when an input table is missing or holds no rows
    for ``scorer``.
    """
    metrics = read_table(tables_dir, "metrics")
    class_distances = read_table(tables_dir, "class_distances")
    # Build everything before writing anything, so a bad scorer leaves no partial set.
    figures = build_figures(metrics, class_distances, scorer=scorer)
    tables = build_tables(metrics)
    written: list[Path] = []
    for label, chart in figures.items():
        written += save_chart(chart, figures_dir, label)
    for label, df in tables.items():
        path = Path(tables_dir) / f"{label}.csv"
        write_csv(path, df)
        written.append(path)
    return written


def check_figures(figures_dir: str | os.PathLike, scorer: str) -> dict[str, Path]:
    """Paths of the figures' PNGs by label, after checking they exist and were made for ``scorer``.

    The report calls this so its HTML charts (built from the tables with its ``scorer``
    parameter) and its PDF images (made by ``dmlbench figures``) show the same thing.
    """
    figures_dir = Path(figures_dir)
    pngs = {}
    for label in FIGURE_LABELS:
        png, spec_path = figures_dir / f"{label}.png", figures_dir / f"{label}.vl.json"
        if not (png.is_file() and spec_path.is_file()):
            raise DmlbenchError(
                f"figure {label} not found under {figures_dir}; run `dmlbench figures` first."
            )
        made_for = json.loads(spec_path.read_text()).get("usermeta", {}).get("dmlbench", {}).get("scorer")
        if made_for != scorer:
            raise DmlbenchError(
                f"figure {label} under {figures_dir} shows scorer {made_for!r} but the report asks for "
                f"{scorer!r}; run `dmlbench figures --scorer {scorer}` or render with -P scorer:{made_for}."
            )
        pngs[label] = png
    return pngs
