"""Figures stage: aggregate tables -> results/figures/<label>.{svg,png,vl.json} and results/tables/<label>.csv.

Reads the tables written by ``dmlbench aggregate`` (and ``dmlbench closed-set``), the effective
config written by ``dmlbench snapshot`` and, for the worst-misses images, the dataset npz;
builds every chart and table of the report with the pure builders of ``dmlbench.charts``,
``dmlbench.gallery``, ``dmlbench.annex`` and ``dmlbench.findings``, and writes every file
atomically. File names are the report's cross-reference labels (``fig-…``, ``tbl-…``), so a
paper can include ``results/figures/fig-auroc-box.svg`` for the report's @fig-auroc-box.
The PNGs are what the PDF report shows (Quarto does not turn Altair charts into images); the
``.vl.json`` specs carry the data and, in ``usermeta``, the scorer they were made for, which
the report checks against its own parameter.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import altair as alt
import pandas as pd
import yaml

from dmlbench import annex, charts, findings, gallery
from dmlbench.errors import DmlbenchError
from dmlbench.io import atomic_path, write_csv, write_text
from dmlbench.plan import ALL_FIGURES, ALL_TABLES, planned_figures, planned_tables  # noqa: F401 (re-exported)

FIGURE_SUFFIXES = (".svg", ".png", ".vl.json")
PNG_PPI = 200  # print resolution; vl-convert renders 1 chart pixel as PNG_PPI / 72 image pixels

#: Tables written by the aggregate stage that the figures read; the closed-set ones are optional.
INPUT_TABLES = ("metrics", "class_distances", "summary", "ranking", "worst_misses", "runtime", "runs")
CLOSED_SET_TABLES = ("tsne", "closed_set")


def main_n_per_class(config: dict) -> str:
    """Images per class of the main figures: "all" when run, else the largest main-grid size."""
    sizes = config["n_per_class"]
    return "all" if "all" in sizes else str(max(int(s) for s in sizes))


def knn_parts(scorer: str) -> tuple[str, str] | None:
    """("cosine", "10") for "cosine_k10"; None for a scorer that is not a kNN distance."""
    distance, sep, k = scorer.partition("_k")
    return (distance, k) if sep and distance in ("cosine", "euclidean") else None


def miss_scorer(config: dict, scorer: str) -> str:
    """The worst misses use the nearest neighbour (k = 1) of the report scorer's distance."""
    parts = knn_parts(scorer)
    distance = parts[0] if parts and parts[0] in config["scoring"]["distances"] else config["scoring"]["distances"][0]
    return f"{distance}_k1"


def read_table(tables_dir: str | os.PathLike, name: str) -> pd.DataFrame:
    """Read ``tables_dir/<name>.parquet``; a clear error when the stage that writes it has not run."""
    path = Path(tables_dir) / f"{name}.parquet"
    if not path.is_file():
        stage = "dmlbench closed-set" if name in CLOSED_SET_TABLES else "dmlbench aggregate"
        raise DmlbenchError(
            f"table {name}.parquet not found at {path}; run `{stage}` first to write the tables under results/tables."
        )
    return pd.read_parquet(path)


def read_config(path: str | os.PathLike) -> dict:
    """The effective config written by ``dmlbench snapshot`` (validated again here)."""
    from dmlbench.config import load_config

    if not Path(path).is_file():
        raise DmlbenchError(f"config snapshot {path} not found; run `dmlbench snapshot --config <your config>` first")
    return load_config(path)


@dataclass
class Study:
    """Everything the figures and the report are built from."""

    tables: dict[str, pd.DataFrame]
    config: dict
    data_dir: Path | None = None
    _miss_frames: dict = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, results: str | os.PathLike, config: str | os.PathLike | dict | None = None,
             tables_dir: str | os.PathLike | None = None, data_dir: str | os.PathLike | None = None) -> "Study":
        """Tables and config of a results folder; ``config`` is the snapshot's path (default
        ``results/config.yaml``) or an already validated config."""
        results = Path(results)
        tables_dir = Path(tables_dir or results / "tables")
        if not isinstance(config, dict):
            config = read_config(config or results / "config.yaml")
        tables = {name: read_table(tables_dir, name) for name in INPUT_TABLES}
        if config["tsne"]["enabled"]:
            tables.update({name: read_table(tables_dir, name) for name in CLOSED_SET_TABLES})
        return cls(tables, config, Path(data_dir or results / "data"))

    def worst_miss_selection(self, scorer: str) -> dict:
        """Condition, case, seed, scorer and n_per_class of the worst-misses figure."""
        from dmlbench.config import worst_miss_selection

        sel = worst_miss_selection(self.config)
        return {"dataset": sel["dataset"], "n_anomaly": sel["n_anomaly"], "case": sel["case"], "seed": sel["seed"],
                "scorer": miss_scorer(self.config, scorer), "n_per_class": main_n_per_class(self.config)}

    def worst_miss_frame(self, scorer: str) -> pd.DataFrame:
        """The worst misses of the selected run with their images (reads the dataset npz once)."""
        from dmlbench.datasets import load_npz

        if scorer in self._miss_frames:
            return self._miss_frames[scorer]
        sel = self.worst_miss_selection(scorer)
        if self.data_dir is None:
            raise DmlbenchError("no data folder given for the worst-misses images (dmlbench figures --data)")
        ds = load_npz(self.data_dir / f"{sel['dataset']}.npz")
        count = self.config["report"]["worst_misses"]["count"]
        frame = gallery.worst_miss_frame(self.tables["worst_misses"], ds.x_train, ds.y_train, ds.x_test,
                                         list(ds.classes), **sel, n=count)
        self._miss_frames[scorer] = frame
        return frame


def build_figures(study: Study, scorer: str = "cosine_k1", labels: list[str] | None = None) -> dict[str, alt.TopLevelMixin]:
    """The report's charts by figure label (pure apart from reading the worst-misses images)."""
    t, config = study.tables, study.config
    n = main_n_per_class(config)
    k = (knn_parts(scorer) or ("cosine", "1"))[1]
    builders = {
        "fig-case-classes": lambda: charts.case_class_chart(t["class_distances"], scorer=scorer),
        "fig-auroc-box": lambda: charts.auroc_box(t["metrics"], scorer=scorer, n_per_class=n),
        "fig-auroc-overview": lambda: charts.auroc_overview(t["summary"], scorer=scorer, n_per_class=n),
        "fig-normalised-distance": lambda: charts.normalised_distance_box(t["class_distances"], scorer=scorer,
                                                                          n_per_class=n),
        "fig-balance": lambda: charts.balance_chart(t["summary"], t["class_distances"], scorer=scorer, n_per_class=n),
        "fig-cosine-euclidean": lambda: charts.cosine_euclidean_chart(t["metrics"], k=k, n_per_class=n),
        "fig-scorers": lambda: charts.scorers_chart(t["metrics"], n_per_class=n, k=k),
        "fig-critical-difference": lambda: charts.cd_diagram(t["ranking"], scorer=scorer, n_per_class=n),
        "fig-worst-misses": lambda: gallery.worst_misses_chart(study.worst_miss_frame(scorer),
                                                               **study.worst_miss_selection(scorer)),
        "fig-tsne": lambda: gallery.tsne_chart(t["tsne"]),
        "fig-annex-k": lambda: annex.k_chart(t["summary"], n_per_class=n),
        "fig-annex-sample-size": lambda: annex.sample_size_chart(t["summary"], t["class_distances"], scorer=scorer),
    }
    labels = planned_figures(config) if labels is None else labels
    return {label: builders[label]() for label in labels}


def build_tables(study: Study, scorer: str = "cosine_k1", labels: list[str] | None = None) -> dict[str, pd.DataFrame]:
    """The report's tables by label (pure apart from reading the worst-misses images)."""
    t, config = study.tables, study.config
    n = main_n_per_class(config)
    k = (knn_parts(scorer) or ("cosine", "1"))[1]
    builders = {
        "tbl-conditions": lambda: charts.conditions_table(t["metrics"]),
        "tbl-methods": lambda: charts.methods_table(config),
        "tbl-auroc-ci": lambda: charts.auroc_ci_table(t["summary"], scorer=scorer, n_per_class=n),
        "tbl-auroc-summary": lambda: charts.auroc_summary(t["metrics"]),
        "tbl-balance": lambda: charts.balance_table(t["summary"], t["class_distances"], scorer=scorer, n_per_class=n),
        "tbl-cosine-euclidean": lambda: charts.cosine_euclidean_table(t["metrics"], k=k, n_per_class=n),
        "tbl-scorers": lambda: charts.scorers_table(t["metrics"], n_per_class=n, k=k),
        "tbl-ranking": lambda: charts.ranking_tests_table(t["ranking"], scorer=scorer, n_per_class=n),
        "tbl-worst-misses": lambda: study.worst_miss_frame(scorer).drop(columns="image"),
        "tbl-closed-set": lambda: t["closed_set"],
        "tbl-annex-k": lambda: annex.k_table(t["summary"], n_per_class=n),
        "tbl-annex-sample-size": lambda: annex.sample_size_table(t["summary"], t["class_distances"], scorer=scorer),
        "tbl-findings": lambda: findings.findings(t["metrics"], t["class_distances"], scorer=scorer),
        "tbl-runtime": lambda: charts.runtime_summary(t["runtime"]),
        "tbl-runs": lambda: t["runs"],
    }
    labels = planned_tables(config) if labels is None else labels
    return {label: builders[label]() for label in labels}


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


def _with_scorer(chart: alt.TopLevelMixin, label: str, scorer: str) -> alt.TopLevelMixin:
    """Every exported spec names the figure and the report scorer it was made with."""
    meta = chart.to_dict().get("usermeta", {}).get("dmlbench", {})
    return chart.properties(usermeta={"dmlbench": {**meta, "figure": label, "report_scorer": scorer}})


def write_figures(tables_dir: str | os.PathLike, figures_dir: str | os.PathLike, scorer: str = "cosine_k1",
                  config: str | os.PathLike | dict | None = None, data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Write every planned figure (SVG, PNG at 200 ppi, Vega-Lite JSON) and table (CSV).

    Figures go to ``figures_dir/<label>.{svg,png,vl.json}``, tables to ``tables_dir/<label>.csv``.
    ``config`` is the snapshot path (default ``<results>/config.yaml`` next to ``tables_dir``) or a
    validated config dict; ``scorer`` selects the score column of the main figures. Everything is
    built before anything is written, so an error leaves no partial set. Returns the written paths.
    """
    tables_dir = Path(tables_dir)
    study = Study.load(tables_dir.parent, config, tables_dir, data_dir)
    figures = {label: _with_scorer(chart, label, scorer) for label, chart in build_figures(study, scorer).items()}
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


def config_yaml(config: dict) -> str:
    """The config as the report's reproducibility appendix prints it."""
    return yaml.safe_dump(config, sort_keys=False)
