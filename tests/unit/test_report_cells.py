"""The report's cells run against the tables and figures, without Quarto (tests/helpers/qmd.py)."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import altair as alt
import pytest
import yaml

from dmlbench.errors import DmlbenchError
from dmlbench.figures import FIGURE_LABELS, write_figures
from tests.helpers.qmd import cell_options, code_cells, inline_expressions, run_cells
from tests.helpers.synthetic_tables import CONDITIONS, make_tables

REPORT = Path(__file__).resolve().parents[2] / "report" / "report.qmd"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("results")
    make_tables(root / "tables")
    write_figures(root / "tables", root / "figures")
    return root


@pytest.fixture(autouse=True)
def default_altair_renderer():
    """The report switches Altair's renderer; give other tests the default back."""
    yield
    alt.renderers.enable("default")


def _kinds(displayed) -> list[str]:
    return [type(obj).__name__ for obj in displayed]


def _markdown_rows(md) -> int:
    """Data rows of a pipe table (header and rule lines excluded)."""
    return len([line for line in md.data.splitlines() if line.startswith("|")]) - 2


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
    assert {d for d in defined if d.startswith("fig-")} == set(FIGURE_LABELS)


def test_quarto_config_renders_self_contained_html_and_typst_pdf():
    config = yaml.safe_load((REPORT.parent / "_quarto.yml").read_text())
    front = yaml.safe_load(REPORT.read_text().split("---")[1])
    assert front["title"] == "dmlbench report"
    assert config["format"]["html"]["embed-resources"] is True
    assert config["format"]["html"]["toc"] is True
    assert "typst" in config["format"]


def _check_namespace(ns: dict, results: Path) -> None:
    assert len(ns["metrics"]) > 0 and len(ns["class_distances"]) > 0
    assert ns["pngs"] == {label: results / "figures" / f"{label}.png" for label in FIGURE_LABELS}
    displayed = ns["__displayed__"]
    # Order of the document: JS bundle, conditions, AUROC (chart, PNG), summary, distances (chart, PNG).
    assert _kinds(displayed) == ["HTML", "Markdown", "FacetChart", "Image", "Markdown", "FacetChart", "Image"]
    assert "window.vegaEmbed" in displayed[0].data
    assert _markdown_rows(displayed[1]) == len(CONDITIONS)
    # summary for the report's scorer: conditions x methods x n_per_class
    assert _markdown_rows(displayed[4]) == len(CONDITIONS) * 2 * 2
    for chart in (displayed[2], displayed[5]):
        assert isinstance(chart, alt.TopLevelMixin)
        assert chart.to_dict()["usermeta"]["dmlbench"]["scorer"] == ns["scorer"]
        html = chart._repr_mimebundle_()
        html = (html[0] if isinstance(html, tuple) else html)["text/html"]
        assert "vegaEmbed(el, " in html  # the offline renderer the report enabled
    for image in (displayed[3], displayed[6]):
        assert image.data[:8] == PNG_SIGNATURE
    assert ns["__inline__"] == {"scorer": ns["scorer"]}


def test_all_cells_run_against_the_results(results):
    ns = run_cells(REPORT, {"results": str(results)}, cwd=REPORT.parent)
    _check_namespace(ns, results)


def test_all_cells_run_without_ipython(results, monkeypatch):
    monkeypatch.setitem(sys.modules, "IPython", None)  # import IPython -> ImportError
    ns = run_cells(REPORT, {"results": str(results)}, cwd=REPORT.parent)
    _check_namespace(ns, results)
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
    with pytest.raises(DmlbenchError, match=r"scorer 'cosine_k1'.*'euclidean_k1'"):
        run_cells(REPORT, {"results": str(results), "scorer": "euclidean_k1"})


def test_missing_tables_say_to_run_aggregate(tmp_path):
    with pytest.raises(DmlbenchError, match="dmlbench aggregate"):
        run_cells(REPORT, {"results": str(tmp_path)})


def test_inline_expressions_are_found():
    assert inline_expressions(REPORT) == ["scorer"]


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
    shown = []
    for source, outs in zip(cells, outputs):
        assert not [o for o in outs if o["output_type"] == "error"], source
        results_ = [o for o in outs if o["output_type"] in ("execute_result", "display_data")]
        if "charts.auroc_box" in source or "charts.normalised_distance_box" in source:
            shown.append("chart")
            assert "vegaEmbed(el, " in results_[0]["data"]["text/html"]
        elif "Image(" in source:
            shown.append("png")
            assert "image/png" in results_[0]["data"]
        elif "Markdown(" in source:
            shown.append("table")
            assert results_[0]["data"]["text/markdown"].startswith("| ")
    assert shown == ["table", "chart", "png", "table", "chart", "png"]
