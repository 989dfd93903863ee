"""`dmlbench figures` on config/test.yaml's tables: every planned file, consistent formats, clean failures."""

from __future__ import annotations

import json
import re
import shutil
import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest

from dmlbench.config import validate
from dmlbench.errors import DmlbenchError
from dmlbench.report._style import MIN_PRINT_FONT_PT, PRINT_WIDTH_PT
from dmlbench.report.figures import (
    ALL_FIGURES,
    ALL_TABLES,
    Study,
    build_tables,
    check_figures,
    planned_figures,
    planned_tables,
    read_config,
    write_figures,
)
from tests.helpers.run_plan import TEST_RUN_FIGURES

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

pytestmark = pytest.mark.slow


@pytest.fixture
def copy(test_run, tmp_path) -> Path:
    """The test run's results without its figures and figure tables."""
    results = tmp_path / "results"
    shutil.copytree(test_run / "results", results, ignore=shutil.ignore_patterns("runs", "scores", "figures", "*.csv"))
    return results


def test_planned_labels_follow_the_config():
    base = {"datasets": {"d": {"source": "digits"}}, "conditions": [{"dataset": "d", "n_anomaly": [1]}]}
    tuning = {"methods": {"arcface_margin0.3": {"scale": {"low": 8, "high": 64}}}}
    full = validate(
        {**base, "annex": {"sample_size": [30]}, "methods": {"arcface": {"margin": [0.3, 0.5]}}, "tuning": tuning}
    )
    # every table but the Reproduction's that need a published cell of this run's (digits has none)
    # and a method both with and without a switch of the original implementation
    gated = {"tbl-reproduction", "tbl-reproduction-order", "tbl-reproduction-fixes"}
    assert planned_figures(full) == list(ALL_FIGURES)
    assert planned_tables(full) == [t for t in ALL_TABLES if t not in gated]
    lean = validate({**base, "tsne": {"enabled": False}, "scoring": {"distances": ["cosine"]}})
    assert set(ALL_FIGURES) - set(planned_figures(lean)) == {
        "fig-tsne",
        "fig-annex-sample-size",
        "fig-cosine-euclidean",
        "fig-sensitivity",
        "fig-tuning-progress",
    }
    assert set(ALL_TABLES) - set(planned_tables(lean)) == gated | {
        "tbl-closed-set",
        "tbl-annex-sample-size",
        "tbl-cosine-euclidean",
        "tbl-sensitivity",
        "tbl-sensitivity-ranks",
        "tbl-tuning-space",
        "tbl-tuning-measures",
        "tbl-tuning-best",
        "tbl-tuning-paired",
        "tbl-tuning-ranking",
    }


@pytest.mark.parametrize("label", TEST_RUN_FIGURES)
def test_svg_png_and_spec_agree(test_run, label):
    figures = test_run / "results" / "figures"
    svg = ET.parse(figures / f"{label}.svg").getroot()
    assert svg.tag.endswith("svg")
    png = (figures / f"{label}.png").read_bytes()
    assert png[:8] == PNG_SIGNATURE
    png_width, png_height = struct.unpack(">II", png[16:24])  # IHDR
    assert png_width == pytest.approx(float(svg.get("width")) * 200 / 72, abs=3)
    assert png_height == pytest.approx(float(svg.get("height")) * 200 / 72, abs=3)
    meta = json.loads((figures / f"{label}.vl.json").read_text())["usermeta"]["dmlbench"]
    assert meta["figure"] == label and meta["report_scorer"] == "cosine_k1"


def _walk(spec):
    """Every dict inside a Vega-Lite spec."""
    if isinstance(spec, dict):
        yield spec
        for value in spec.values():
            yield from _walk(value)
    elif isinstance(spec, list):
        for value in spec:
            yield from _walk(value)


@pytest.mark.parametrize("label", TEST_RUN_FIGURES)
def test_figures_are_sized_for_an_a4_page(test_run, label):
    """Printed at 1 chart pixel = 1 pt and scaled down only to the text width (17 cm, 482 pt), no
    text on a figure is under 7 pt; facets wrap at three panels a row."""
    figures = test_run / "results" / "figures"
    svg = (figures / f"{label}.svg").read_text()
    width = float(ET.fromstring(svg).get("width"))
    sizes = [float(x) for x in re.findall(r'font-size="([\d.]+)px"', svg)]
    assert sizes, "no text found in the SVG"
    printed = min(sizes) * min(1.0, PRINT_WIDTH_PT / width)
    assert printed >= MIN_PRINT_FONT_PT, f"{label}: smallest text {printed:.1f} pt in print"
    spec = json.loads((figures / f"{label}.vl.json").read_text())
    for node in _walk(spec):
        if "facet" in node and isinstance(node["facet"], dict) and "field" in node["facet"]:
            assert node.get("columns", 1) <= 3, label
        if isinstance(node.get("facet"), dict) and "column" in node["facet"]:
            pytest.fail(f"{label}: a column facet does not wrap; use facet=..., columns<=3")
        assert len(node.get("hconcat", [])) <= 3, label


def test_csv_tables_read_back_equal(test_run):
    results = test_run / "results"
    study = Study.load(results)
    for label, df in build_tables(study, "cosine_k1").items():
        back = pd.read_csv(results / "tables" / f"{label}.csv", keep_default_na=False, na_values=[""])
        df = df.reset_index(drop=True)
        assert list(back.columns) == list(df.columns), label
        assert len(back) == len(df), label
        for col in df.columns:
            if pd.api.types.is_float_dtype(df[col]):
                pd.testing.assert_series_equal(back[col].astype(float), df[col], check_names=False, rtol=1e-9)


def test_worst_misses_table_matches_the_images(test_run):
    import numpy as np

    results = test_run / "results"
    table = pd.read_csv(results / "tables" / "tbl-worst-misses.csv", dtype={"class_name": str})
    assert set(table["method"]) == {"conventional", "arcface_margin0.3", "arcface_margin0.5", "supcon"}
    assert table.groupby("method").size().tolist() == [10] * 4  # 5 anomalies, each with its neighbour
    misses = pd.read_parquet(results / "tables" / "worst_misses.parquet")
    sel = misses[
        (misses.scorer == "cosine_k1") & (misses.n_per_class == "all") & (misses.case == 0) & (misses["rank"] <= 5)
    ]
    with np.load(results / "data" / "digits.npz") as npz:
        y_train = npz["y_train"]
    for row in sel.itertuples():
        shown = table[(table.method == row.method) & (table["rank"] == row.rank)].set_index("kind")
        assert shown.loc["anomaly", "index"] == row.test_index
        assert shown.loc["nearest normal", "index"] == row.nearest_index
        assert shown.loc["nearest normal", "class_name"] == str(y_train[row.nearest_index])


def test_every_planned_file_is_written_and_nothing_else(copy):
    written = write_figures(copy / "tables", copy / "figures")
    config = read_config(copy / "config.yaml")
    expected = [
        copy / "figures" / f"{label}{ext}" for label in planned_figures(config) for ext in (".svg", ".png", ".vl.json")
    ]
    expected += [copy / "tables" / f"{label}.csv" for label in planned_tables(config)]
    assert written == expected
    assert all(p.stat().st_size > 0 for p in written)
    assert not [p for p in copy.rglob("*") if ".tmp" in p.name]


@pytest.mark.parametrize(
    "missing, stage", [("metrics.parquet", "dmlbench aggregate"), ("tsne.parquet", "dmlbench closed-set")]
)
def test_missing_table_says_which_stage_to_run_and_writes_nothing(copy, missing, stage):
    (copy / "tables" / missing).unlink()
    with pytest.raises(DmlbenchError, match=rf"{missing.replace('.', chr(92) + '.')}.*{stage}"):
        write_figures(copy / "tables", copy / "figures")
    assert not (copy / "figures").exists()


def test_bad_scorer_writes_nothing(copy):
    with pytest.raises(DmlbenchError, match="scorer"):
        write_figures(copy / "tables", copy / "figures", scorer="nope_k1")
    assert not (copy / "figures").exists()


def test_missing_dataset_file_for_the_worst_misses(copy):
    (copy / "data" / "digits.npz").unlink()
    with pytest.raises(DmlbenchError, match="digits.npz"):
        write_figures(copy / "tables", copy / "figures")


def test_report_refuses_figures_made_for_another_scorer(test_run):
    figures = test_run / "results" / "figures"
    assert set(check_figures(figures, "cosine_k1", ["fig-auroc-box"])) == {"fig-auroc-box"}
    with pytest.raises(DmlbenchError, match=r"made for scorer 'cosine_k1'.*dmlbench figures --scorer euclidean_k1"):
        check_figures(figures, "euclidean_k1", ["fig-auroc-box"])
