"""The report's cells run against config/test.yaml's results, without Quarto (tests/helpers/qmd.py)."""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import altair as alt
import pandas as pd
import pytest
import yaml

from dmlbench.errors import DmlbenchError
from dmlbench.figures import ALL_FIGURES, ALL_TABLES, planned_figures, read_config
from dmlbench.findings import findings
from tests.helpers.qmd import cell_options, code_cells, inline_expressions, run_cells

REPORT = Path(__file__).resolve().parents[2] / "report" / "report.qmd"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def results(test_run) -> Path:
    return test_run / "results"


@pytest.fixture(scope="module")
def namespace(results):
    ns = run_cells(REPORT, {"results": str(results)}, cwd=REPORT.parent)
    yield ns
    alt.renderers.enable("default")


@pytest.fixture(autouse=True)
def default_altair_renderer():
    """The report switches Altair's renderer; give other tests the default back."""
    yield
    alt.renderers.enable("default")


def _markdown_rows(md) -> int:
    """Data rows of a pipe table (header and rule lines excluded)."""
    return len([line for line in md.data.splitlines() if line.startswith("|")]) - 2


# --------------------------------------------------------------------------- the document itself


def test_parameters_cell_comes_first_with_the_defaults():
    cells = code_cells(REPORT)
    assert cell_options(cells[0]).get("tags") == ["parameters"]
    # A label on the parameters cell breaks `quarto render -P` (the cell is duplicated).
    assert "label" not in cell_options(cells[0])
    defaults: dict = {}
    exec(cells[0], defaults)
    assert defaults["results"] == "../results"
    assert defaults["scorer"] == "cosine_k1"
    assert not any(cell_options(c).get("tags") == ["parameters"] for c in cells[1:])


def test_labels_are_unique_and_every_reference_is_defined():
    text = REPORT.read_text()
    labels = [cell_options(c)["label"] for c in code_cells(REPORT) if "label" in cell_options(c)]
    # Quarto's Jupyter engine stops on a label used by two cells, even in exclusive blocks.
    assert len(labels) == len(set(labels))
    div_ids = re.findall(r"^::: \{#((?:fig|tbl)-[\w-]+)\}", text, flags=re.M)
    defined = set(labels) | set(div_ids)
    assert len(div_ids) == len(set(div_ids)) and not set(labels) & set(div_ids)
    referenced = set(re.findall(r"@((?:fig|tbl)-[\w-]+)", text))
    assert referenced <= defined, f"undefined: {sorted(referenced - defined)}"
    # Every figure of the study is in the report, in the same order, with its file name as label.
    assert div_ids == [label for label in ALL_FIGURES]
    assert set(labels) <= set(ALL_TABLES)


def test_sections_follow_the_study():
    headings = re.findall(r"^## (.+?)(?: \{.*\})?$", REPORT.read_text(), flags=re.M)
    assert headings == ["Setup", "AUROC per condition", "Normalised distances", "Balance of normal and anomaly classes",
                        "Cosine vs Euclidean", "Scorers compared", "Ranking", "Worst misses", "Embeddings",
                        "Annex A.1: the k of the k-nearest mean", "Annex A.2: images per class", "Findings",
                        "Reproducibility"]


def test_quarto_config_renders_self_contained_html_and_typst_pdf():
    config = yaml.safe_load((REPORT.parent / "_quarto.yml").read_text())
    front = yaml.safe_load(REPORT.read_text().split("---")[1])
    assert front["title"] == "dmlbench report"
    assert config["format"]["html"]["embed-resources"] is True
    assert config["format"]["html"]["toc"] is True
    assert "typst" in config["format"]


# --------------------------------------------------------------------------- executed against the test run


def test_every_figure_is_shown_as_chart_and_as_png(namespace, results):
    config = read_config(results / "config.yaml")
    labels = planned_figures(config)
    assert labels == list(ALL_FIGURES)  # config/test.yaml makes every figure
    displayed = namespace["__displayed__"]
    charts_shown = [d for d in displayed if isinstance(d, alt.TopLevelMixin)]
    figures = [c.to_dict()["usermeta"]["dmlbench"]["figure"] for c in charts_shown]
    assert figures == labels
    images = [d for d in displayed if type(d).__name__ == "Image"]
    assert [Path(i.filename).name for i in images] == [f"{label}.png" for label in labels]
    assert all(i.data[:8] == PNG_SIGNATURE for i in images)
    for chart in charts_shown:
        bundle = chart._repr_mimebundle_()
        html = (bundle[0] if isinstance(bundle, tuple) else bundle)["text/html"]
        assert "vegaEmbed(el, " in html  # the offline renderer the report enabled


def test_tables_show_the_csv_rows(namespace, results):
    tabs = namespace["tabs"]
    for label, df in tabs.items():
        back = pd.read_csv(results / "tables" / f"{label}.csv", dtype={"n_per_class": str}, keep_default_na=False)
        assert len(back) == len(df), label
    displayed = [d for d in namespace["__displayed__"] if type(d).__name__ == "Markdown"]
    tables = [d for d in displayed if d.data.startswith("| ")]
    # conditions, methods, AUROC CI, balance, cosine/euclidean, ranking, closed set, annex A.2, runs, runtime
    assert len(tables) == 10
    assert _markdown_rows(tables[0]) == 1  # one condition
    assert _markdown_rows(tables[1]) == 2  # two methods
    methods_md = tables[1].data
    assert "scale=30, margin=0.5" in methods_md


def test_findings_section_shows_the_recomputed_claims(namespace, results):
    metrics = pd.read_parquet(results / "tables" / "metrics.parquet")
    distances = pd.read_parquet(results / "tables" / "class_distances.parquet")
    expected = findings(metrics, distances, scorer="cosine_k1")
    shown = next(d.data for d in namespace["__displayed__"]
                 if type(d).__name__ == "Markdown" and d.data.startswith("- **"))
    lines = shown.strip().splitlines()
    assert len(lines) == len(expected) == 6
    for line, row in zip(lines, expected.itertuples()):
        assert line.startswith(f"- **{row.verdict}**") and row.evidence in line
    csv = pd.read_csv(results / "tables" / "tbl-findings.csv")
    assert csv["verdict"].tolist() == expected["verdict"].tolist()
    pd.testing.assert_series_equal(csv["number"], expected["number"], check_names=False)
    # Recomputed here from metrics.parquet, independently of dmlbench.findings:
    auroc = metrics[(metrics.metric == "auroc") & (metrics.n_per_class == "all")]
    keys = ["dataset", "n_anomaly", "method", "n_per_class", "seed", "case"]
    wide = auroc.pivot_table(index=keys, columns="scorer", values="value")
    row = csv.set_index("id")
    assert row.loc["cosine-beats-euclidean", "number"] == pytest.approx(
        (wide["cosine_k1"] - wide["euclidean_k1"]).mean())
    # one condition: "no method is best everywhere" cannot be tested; test.yaml has no k10 and no sphereface
    assert row.loc["no-method-best-everywhere", "verdict"] == "not testable"
    assert row.loc["k10-beats-k1", "verdict"] == "not testable"
    assert row.loc["sphereface-euclidean-below-chance", "verdict"] == "not testable"
    # annex A.2 at 20 images per class: arcface against conventional, paired by case and seed
    small = metrics[(metrics.metric == "auroc") & (metrics.n_per_class == "20") & (metrics.scorer == "cosine_k1")]
    by_method = small.pivot_table(index=["case", "seed"], columns="method", values="value")
    arcface_wins = (by_method["arcface"] - by_method["conventional"]).mean() > 0
    assert row.loc["metric-learning-beats-conventional-small-samples", "number"] == float(arcface_wins)


def test_inline_values(namespace):
    assert inline_expressions(REPORT) == ["n_per_class", "scorer", '", ".join(map(str, config["seeds"]))',
                                          'config["cases"]']
    assert namespace["__inline__"]["n_per_class"] == "all"
    assert namespace["__inline__"]['config["cases"]'] == 2


def test_all_cells_run_without_ipython(results, monkeypatch):
    monkeypatch.setitem(sys.modules, "IPython", None)  # import IPython -> ImportError
    ns = run_cells(REPORT, {"results": str(results)}, cwd=REPORT.parent)
    assert type(ns["__displayed__"][1]).__module__ == "tests.helpers.qmd"


def test_default_results_path_is_relative_to_the_report(results, tmp_path):
    # Quarto runs cells in the document's folder: report/ next to results/.
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "report.qmd").write_text(REPORT.read_text())
    (tmp_path / "results").symlink_to(results, target_is_directory=True)
    ns = run_cells(tmp_path / "report" / "report.qmd")
    assert ns["results"] == "../results"
    assert len(ns["metrics"]) > 0


def test_figures_for_another_scorer_are_refused(results):
    with pytest.raises(DmlbenchError, match=r"made for scorer 'cosine_k1'.*'euclidean_k1'"):
        run_cells(REPORT, {"results": str(results), "scorer": "euclidean_k1"})


def test_missing_results_say_what_to_run(tmp_path, results):
    with pytest.raises(DmlbenchError, match="dmlbench snapshot"):
        run_cells(REPORT, {"results": str(tmp_path)})
    shutil.copy(results / "config.yaml", tmp_path / "config.yaml")
    with pytest.raises(DmlbenchError, match="dmlbench aggregate"):
        run_cells(REPORT, {"results": str(tmp_path)})


def test_cells_give_quarto_the_right_mime_types_in_a_kernel(results, monkeypatch):
    """In a real kernel: HTML charts as text/html, PDF figures as image/png, tables as markdown."""
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    from tests.helpers.qmd import run_in_kernel

    src = str(REPORT.parents[1] / "src")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])))
    outputs = run_in_kernel(REPORT, {"results": str(results)})
    cells = code_cells(REPORT)
    assert len(outputs) == len(cells)
    kinds = []
    for source, outs in zip(cells, outputs):
        assert not [o for o in outs if o["output_type"] == "error"], source
        shown = [o for o in outs if o["output_type"] in ("execute_result", "display_data")]
        if source.startswith("chart("):
            kinds.append("chart")
            assert "vegaEmbed(el, " in shown[0]["data"]["text/html"]
        elif source.startswith("png("):
            kinds.append("png")
            assert "image/png" in shown[0]["data"]
        elif "Markdown(" in source or source.lstrip("#| ").startswith(("label", "table(")):
            if shown and "text/markdown" in shown[0]["data"]:
                kinds.append("markdown")
    assert kinds.count("chart") == kinds.count("png") == len(ALL_FIGURES)
    assert kinds.count("markdown") >= 12
