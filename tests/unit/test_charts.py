"""Chart and table builders (dmlbench.charts) and the figures stage (dmlbench.figures)."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET

import altair as alt
import numpy as np
import pandas as pd
import pytest

from dmlbench import charts
from dmlbench.errors import DmlbenchError
from dmlbench.figures import FIGURE_LABELS, TABLE_LABELS, build_tables, write_figures
from tests.helpers.synthetic_tables import (
    CASES,
    CLASSES,
    CONDITIONS,
    METHODS,
    SCORERS,
    SEEDS,
    auroc_value,
    class_distances_frame,
    make_tables,
    metrics_frame,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def metrics() -> pd.DataFrame:
    return metrics_frame()


@pytest.fixture(scope="module")
def class_distances() -> pd.DataFrame:
    return class_distances_frame()


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """A results folder with the synthetic tables and everything write_figures writes."""
    root = tmp_path_factory.mktemp("results")
    make_tables(root / "tables")
    written = write_figures(root / "tables", root / "figures")
    return root, written


def chart_rows(spec: dict) -> list[dict]:
    """The rows a (top-level-data) Vega-Lite spec plots."""
    return spec["datasets"][spec["data"]["name"]]


def layer_marks(spec: dict) -> list[str]:
    return [layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"] for layer in spec["spec"]["layer"]]


# --------------------------------------------------------------------------- tables


def test_conditions_table_has_one_row_per_condition(metrics):
    table = charts.conditions_table(metrics)
    assert list(table.columns) == ["dataset", "n_anomaly", "methods", "n_per_class", "seeds", "cases", "scorers"]
    assert list(zip(table["dataset"], table["n_anomaly"])) == CONDITIONS
    # Study order (conventional before arcface) although the input lists arcface second anyway;
    # sizes as numbers, then "all"; the head's accuracy is not a scorer.
    assert set(table["methods"]) == {"conventional, arcface"}
    assert set(table["n_per_class"]) == {"50, all"}
    assert set(table["seeds"]) == {len(SEEDS)}
    assert set(table["cases"]) == {len(CASES)}
    assert set(table["scorers"]) == {len(SCORERS)}


def test_auroc_summary_matches_hand_computed_values(metrics):
    summary = charts.auroc_summary(metrics)
    assert len(summary) == len(CONDITIONS) * len(METHODS) * 2 * len(SCORERS)
    assert list(summary.columns) == ["dataset", "n_anomaly", "method", "n_per_class", "scorer", "mean", "std", "n"]
    for ci, (dataset, n_anomaly) in enumerate(CONDITIONS):
        for method in METHODS:
            values = [auroc_value(ci, method, "all", s, c, "cosine_k1") for s in SEEDS for c in CASES]
            row = summary[
                (summary["dataset"] == dataset) & (summary["method"] == method)
                & (summary["n_per_class"] == "all") & (summary["scorer"] == "cosine_k1")
            ]
            assert len(row) == 1
            assert row["mean"].item() == pytest.approx(np.mean(values))
            assert row["std"].item() == pytest.approx(np.std(values, ddof=1))
            assert row["n"].item() == len(values)
    # Methods in the study's order within each condition.
    first = summary[summary["dataset"] == "digits"]["method"].drop_duplicates().tolist()
    assert first == ["conventional", "arcface"]


def test_to_markdown_writes_a_pipe_table():
    df = pd.DataFrame({"name": ["a|b", "c"], "n": [1, 2], "x": [0.12345, float("nan")]})
    text = charts.to_markdown(df, floatfmt=".2f")
    lines = text.splitlines()
    assert lines[0] == "| name | n | x |"
    assert lines[1] == "|:---|---:|---:|"
    assert lines[2] == r"| a\|b | 1 | 0.12 |"
    assert lines[3] == "| c | 2 |  |"


def test_method_order_and_colours_are_fixed():
    assert charts.method_order(["mine", "centerloss", "arcface", "conventional"]) == [
        "conventional", "arcface", "centerloss", "mine",
    ]
    scale = charts.method_colour_scale(["arcface", "conventional", "mine"]).to_dict()
    assert scale["domain"] == ["conventional", "arcface", "mine"]
    assert scale["range"][:2] == [charts.METHOD_COLOURS["conventional"], charts.METHOD_COLOURS["arcface"]]
    assert scale["range"][2] not in charts.METHOD_COLOURS.values()


def test_missing_column_is_named(metrics):
    with pytest.raises(DmlbenchError, match="value"):
        charts.conditions_table(metrics.drop(columns="value"))


# --------------------------------------------------------------------------- charts


def test_auroc_box_is_a_valid_faceted_box_plot(metrics):
    chart = charts.auroc_box(metrics)
    assert isinstance(chart, alt.FacetChart)
    spec = chart.to_dict()  # validates against the Vega-Lite schema
    assert spec["$schema"].startswith("https://vega.github.io/schema/vega-lite/v")
    assert spec["facet"]["field"] == "condition"
    assert spec["facet"]["sort"] == ["digits · 1 anomaly class", "fashion · 2 anomaly classes"]
    assert layer_marks(spec) == ["rule", "boxplot"]
    assert spec["title"]["text"]
    assert spec["spec"]["width"] == charts.PANEL_WIDTH and spec["spec"]["height"] == charts.PANEL_HEIGHT
    box = spec["spec"]["layer"][1]["encoding"]
    assert box["x"]["sort"] == ["conventional", "arcface"]
    assert box["y"]["scale"]["domain"] == [0, 1]
    assert "AUROC" in box["y"]["title"]
    assert box["color"]["scale"]["domain"] == ["conventional", "arcface"]
    assert spec["spec"]["layer"][0]["encoding"]["y"]["datum"] == 0.5
    assert spec["usermeta"]["dmlbench"]["scorer"] == "cosine_k1"


@pytest.mark.parametrize("scorer,n_per_class", [("cosine_k1", "all"), ("euclidean_k1", "50")])
def test_auroc_box_plots_exactly_the_selected_rows(metrics, scorer, n_per_class):
    spec = charts.auroc_box(metrics, scorer=scorer, n_per_class=n_per_class).to_dict()
    rows = chart_rows(spec)
    expected = metrics[
        (metrics["metric"] == "auroc") & (metrics["scorer"] == scorer) & (metrics["n_per_class"] == n_per_class)
    ]
    assert len(rows) == len(expected) == len(CONDITIONS) * len(METHODS) * len(SEEDS) * len(CASES)
    assert sorted(r["auroc"] for r in rows) == pytest.approx(sorted(expected["value"]))
    ci = {d: i for i, (d, _) in enumerate(CONDITIONS)}
    for r in rows:
        assert r["auroc"] == pytest.approx(
            auroc_value(ci[r["dataset"]], r["method"], n_per_class, r["seed"], r["case"], scorer)
        )


def test_unknown_scorer_is_a_clear_error(metrics, class_distances):
    with pytest.raises(DmlbenchError, match=r"scorer='mahalanobis'.*cosine_k1"):
        charts.auroc_box(metrics, scorer="mahalanobis")
    with pytest.raises(DmlbenchError, match="n_per_class='10'"):
        charts.normalised_distance_box(class_distances, n_per_class="10")


def test_normalised_distance_box_is_a_valid_grouped_box_plot(class_distances):
    chart = charts.normalised_distance_box(class_distances)
    spec = chart.to_dict()
    assert spec["$schema"].startswith("https://vega.github.io/schema/vega-lite/v")
    assert layer_marks(spec) == ["rule", "boxplot"]
    assert spec["spec"]["layer"][0]["encoding"]["y"]["datum"] == 1.0
    box = spec["spec"]["layer"][1]["encoding"]
    assert box["xOffset"]["field"] == "role"
    assert box["color"]["scale"]["domain"] == ["normal", "anomaly"]
    assert box["y"]["field"] == "normalised"
    rows = chart_rows(spec)
    assert len(rows) == len(CONDITIONS) * len(METHODS) * len(SEEDS) * len(CASES) * len(CLASSES)
    # n_anomaly anomaly classes per case, the rest normal.
    for dataset, n_anomaly in CONDITIONS:
        mine = [r for r in rows if r["dataset"] == dataset]
        n_runs = len(METHODS) * len(SEEDS) * len(CASES)
        assert sum(r["role"] == "anomaly" for r in mine) == n_runs * n_anomaly
        assert sum(r["role"] == "normal" for r in mine) == n_runs * (len(CLASSES) - n_anomaly)


def _script_body(html: str) -> str:
    return html.split("<script", 1)[1].split(">", 1)[1].rsplit("</script>", 1)[0]


def test_offline_html_renderer_embeds_the_spec(metrics, tmp_path):
    try:
        script = charts.enable_offline_html()
        bundle = charts.auroc_box(metrics)._repr_mimebundle_()
    finally:
        alt.renderers.enable("default")
    html = bundle[0]["text/html"] if isinstance(bundle, tuple) else bundle["text/html"]
    assert "window.vegaEmbed" in script
    assert "cdn.jsdelivr" not in html and "<script src" not in html  # nothing to fetch at view time
    assert "vegaEmbed(el, " in html and '"condition"' in html
    assert "</" not in _script_body(html)  # a "</" in the spec would end the script early
    node = shutil.which("node")
    if node:  # both scripts at least parse as JavaScript
        for name, text in {"bundle.js": script, "chart.js": html}.items():
            (tmp_path / name).write_text(_script_body(text))
            subprocess.run([node, "--check", str(tmp_path / name)], check=True, capture_output=True)


# --------------------------------------------------------------------------- figures stage


def test_write_figures_writes_every_file(results):
    root, written = results
    expected = [root / "figures" / f"{label}{suffix}" for label in FIGURE_LABELS for suffix in (".svg", ".png", ".vl.json")]
    expected += [root / "tables" / f"{label}.csv" for label in TABLE_LABELS]
    assert written == expected
    assert all(p.is_file() and p.stat().st_size > 0 for p in written)
    leftovers = [p.name for p in (root / "figures").iterdir()] + [p.name for p in (root / "tables").iterdir()]
    assert not [n for n in leftovers if ".tmp" in n]


@pytest.mark.parametrize("label", FIGURE_LABELS)
def test_svg_png_and_spec_agree(results, label):
    figures = results[0] / "figures"
    svg = ET.parse(figures / f"{label}.svg").getroot()
    assert svg.tag.endswith("svg")
    svg_width = float(svg.get("width"))
    png = (figures / f"{label}.png").read_bytes()
    assert png[:8] == PNG_SIGNATURE
    png_width, png_height = struct.unpack(">II", png[16:24])  # IHDR
    assert png_width == pytest.approx(svg_width * 200 / 72, abs=3)
    assert png_height == pytest.approx(float(svg.get("height")) * 200 / 72, abs=3)
    spec = json.loads((figures / f"{label}.vl.json").read_text())
    assert spec["usermeta"]["dmlbench"] == {"figure": label, "scorer": "cosine_k1", "n_per_class": "all"}


def test_csv_tables_read_back_equal(results, metrics):
    tables = results[0] / "tables"
    for label, df in build_tables(metrics).items():
        back = pd.read_csv(tables / f"{label}.csv", dtype={"n_per_class": str})
        pd.testing.assert_frame_equal(back, df, check_dtype=False, rtol=1e-12)


@pytest.mark.parametrize("missing", ["metrics", "class_distances"])
def test_missing_table_says_to_run_aggregate(tmp_path, missing):
    make_tables(tmp_path / "tables")
    (tmp_path / "tables" / f"{missing}.parquet").unlink()
    with pytest.raises(DmlbenchError, match=rf"{missing}\.parquet.*dmlbench aggregate"):
        write_figures(tmp_path / "tables", tmp_path / "figures")
    assert not (tmp_path / "figures").exists()


def test_bad_scorer_writes_nothing(tmp_path):
    make_tables(tmp_path / "tables")
    with pytest.raises(DmlbenchError, match="scorer"):
        write_figures(tmp_path / "tables", tmp_path / "figures", scorer="nope")
    assert not (tmp_path / "figures").exists()
    assert not list((tmp_path / "tables").glob("*.csv"))
