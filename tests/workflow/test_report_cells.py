"""The report's cells run against config/test.yaml's results, without Quarto (tests/helpers/qmd.py).

The report is prose plus one include per section (report/sections/_<module>.qmd); its cells print
Markdown (``output: asis``) that holds each figure and table for both formats.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats as sst

from dmlbench import report as sections
from dmlbench.errors import DmlbenchError
from dmlbench.report.figures import planned_figures, planned_tables, read_config
from dmlbench.report.findings import findings, findings_tests, mixup_runs
from dmlbench.stats import signflip_p
from tests.helpers.qmd import cell_options, code_cells, expanded, includes, run_cells
from tests.helpers.run_plan import TEST_RUN_FIGURES

REPORT = Path(__file__).resolve().parents[2] / "report" / "report.qmd"
SRC = REPORT.parents[1] / "src" / "dmlbench"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SHOW = re.compile(r'^\s*show\("((?:fig|tbl)-[\w-]+)"\)$', re.M)  # at a line's start, or indented under an if

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def results(test_run) -> Path:
    return test_run / "results"


@pytest.fixture(scope="module")
def namespace(results):
    return run_cells(REPORT, {"results": str(results)}, cwd=REPORT.parent)


def _divs(markdown: str) -> list[str]:
    return re.findall(r"^::: \{#((?:fig|tbl)-[\w-]+)\}", markdown, flags=re.M)


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


def test_one_include_per_section_module_in_report_order():
    assert includes(REPORT) == [f"sections/_{sections.section_name(s)}.qmd" for s in sections.SECTIONS]
    on_disk = sorted(p.name for p in (REPORT.parent / "sections").glob("*.qmd"))
    assert on_disk == sorted(f"_{sections.section_name(s)}.qmd" for s in sections.SECTIONS)


def test_each_section_shows_its_own_printed_items_once_and_cites_only_what_exists():
    declared = {it.label for it in sections.all_figures() + sections.all_tables()}
    for section in sections.SECTIONS:
        text = (REPORT.parent / "sections" / f"_{sections.section_name(section)}.qmd").read_text()
        shown = SHOW.findall(text)
        own = [f.label for f in section.FIGURES] + [t.label for t in section.TABLES if t.printed]
        assert sorted(shown) == sorted(own), section.__name__  # every printed item, once, in its own section
        cited = set(re.findall(r"@((?:fig|tbl)-[\w-]+)", text)) | set(re.findall(r'ref\("((?:fig|tbl)-[\w-]+)"', text))
        assert cited <= set(shown), f"{section.__name__} cites {sorted(cited - set(shown))}"
        assert set(shown) <= declared


def test_labels_are_spelled_in_one_module_only():
    """A label is declared by exactly one section module; no other Python source spells it."""
    for it in sections.all_figures() + sections.all_tables():
        spelled = [p for p in SRC.rglob("*.py") if f'"{it.label}"' in p.read_text()]
        assert len(spelled) == 1 and spelled[0].parent.name == "report", (it.label, spelled)


def test_sections_follow_the_study():
    headings = re.findall(r"^## (.+?)(?: \{.*\})?$", expanded(REPORT), flags=re.M)
    # The sections in their order, then the bibliography that closes the report (report.qmd's own heading).
    assert headings == [s.TITLE for s in sections.SECTIONS] + ["References"]
    assert headings[:-1] == [
        "Summary",
        "Setup",
        "AUROC per condition",
        "Normalised distances",
        "Balance of normal and anomaly classes",
        "Cosine vs Euclidean",
        "Scorers compared",
        "Ranking",
        "Worst misses",
        "Embeddings",
        "Annex A.1: the k of the k-nearest mean",
        "Annex A.2: images per class",
        "Sensitivity",
        "Tuning",
        "Findings",
        "Reproduction",
        "Reproducibility",
    ]


def test_quarto_config_renders_self_contained_html_and_a4_typst_pdf():
    config = yaml.safe_load((REPORT.parent / "_quarto.yml").read_text())
    front = yaml.safe_load(REPORT.read_text().split("---")[1])
    assert front["title"] == "dmlbench report"
    assert front["execute"]["output"] == "asis"
    assert config["format"]["html"]["embed-resources"] is True
    assert config["format"]["typst"]["papersize"] == "a4"
    assert "hyphenate: false" in config["format"]["typst"]["include-in-header"]["text"]


# --------------------------------------------------------------------------- executed against the test run


def test_every_figure_is_printed_as_chart_and_png_in_order(namespace, results):
    config = read_config(results / "config.yaml")
    labels = planned_figures(config)
    assert labels == TEST_RUN_FIGURES  # config/test.yaml makes every figure but the Tuning section's
    page = namespace["__stdout__"]
    assert [d for d in _divs(page) if d.startswith("fig-")] == labels
    # One interactive chart per figure (raw HTML) and one PNG per figure (for the PDF).
    assert page.count('<div id="dmlbench-vis-') == len(labels)
    assert page.count("window.vegaEmbed(el, ") == len(labels)
    pngs = [d for d in namespace["__displayed__"] if isinstance(d, dict) and "image/png" in d]
    assert len(pngs) == len(labels) and all(d["image/png"][:8] == PNG_SIGNATURE for d in pngs)
    for label, png in zip(labels, pngs):
        assert png["image/png"] == (results / "figures" / f"{label}.png").read_bytes()
    # The Vega bundle is printed once, before the first chart.
    assert page.count("vegaEmbed") > len(labels) and page.index("```{=html}\n<script") < page.index("dmlbench-vis-")


def test_tables_print_every_row_with_headers_in_words(namespace, results):
    page = namespace["__stdout__"]
    printed = [
        t.label
        for t in sections.all_tables()
        if t.printed and t.label in planned_tables(read_config(results / "config.yaml"))
    ]
    assert [d for d in _divs(page) if d.startswith("tbl-")] == printed
    for label in printed:
        block = page.split(f"::: {{#{label}}}", 1)[1].split("\n:::\n", 1)[0]
        html, typst = block.split("```{=typst}", 1)
        frame = namespace["doc"].table_frame(label)
        assert html.count("<tr>") == len(frame) + 1, label  # header row + one row per line of the frame
        assert typst.count("table.header(") == 1
        headers = re.findall(r"<th [^>]*>([^<]*)</th>", html)
        # No raw column name (snake_case) in a header.
        assert not [h for h in headers if "_" in h], (label, headers)
    methods = page.split("::: {#tbl-methods}", 1)[1].split("\n:::\n", 1)[0]
    assert "scale=30, margin=0.5" in methods


def test_findings_section_prints_the_recomputed_claims_and_tests(namespace, results):
    metrics = pd.read_parquet(results / "tables" / "metrics.parquet")
    distances = pd.read_parquet(results / "tables" / "class_distances.parquet")
    config = read_config(results / "config.yaml")
    kw = dict(scorer="cosine_k1", n_per_class="all", mixup=mixup_runs(config), methods=config["methods"])
    expected, tests = findings(metrics, distances, **kw), findings_tests(metrics, distances, **kw)
    page = namespace["__stdout__"]
    block = page.split("::: {#tbl-findings}", 1)[1].split("\n:::\n", 1)[0]
    assert block.count("<tr>") == len(expected) + 1 == 7
    for verdict in expected["verdict"]:
        assert f'<td style="text-align: left">{verdict}</td>' in block
    assert page.count("::: {#tbl-findings-tests}") == 1
    csv = pd.read_csv(results / "tables" / "tbl-findings.csv")
    assert csv["verdict"].tolist() == expected["verdict"].tolist()
    assert pd.read_csv(results / "tables" / "tbl-findings-tests.csv")["p_value"].tolist() == pytest.approx(
        tests["p_value"].tolist()
    )
    row = csv.set_index("id")
    # one condition: "no method is best everywhere" cannot be tested; test.yaml has no k10 and no sphereface
    assert row.loc["no-method-best-everywhere", "verdict"] == "not testable"
    assert row.loc["k10-beats-k1", "verdict"] == "not testable"
    assert row.loc["sphereface-euclidean-below-chance", "verdict"] == "not testable"
    # test.yaml: 2 cases at 3 anomaly classes of 10 share classes: every test is exploratory
    assert row.loc["cosine-beats-euclidean", "verdict"] == "exploratory"
    # annex A.2 at 20 images per class, recomputed here from metrics.parquet: each head - conventional per
    # (seed, case), the ArcFace sweep's two margins averaged (one method), a sign-flip p over the 2 cases
    small = metrics[(metrics.metric == "auroc") & (metrics.n_per_class == "20") & (metrics.scorer == "cosine_k1")]
    wide = small.pivot_table(index="case", columns="method", values="value", aggfunc="mean")
    heads = {"arcface": ["arcface_margin0.3", "arcface_margin0.5"], "supcon": ["supcon"]}
    claim6 = tests[tests["number"] == 6].set_index("comparison")
    assert sorted(claim6.index) == ["arcface − conventional", "supcon − conventional"]
    for head, labels in heads.items():
        blocks = wide[labels].mean(axis=1) - wide["conventional"]
        row6 = claim6.loc[f"{head} − conventional"]
        assert (row6["n_per_class"], row6["n_cases"], row6["outcome"]) == ("20", 2, "exploratory")
        assert row6["effect"] == pytest.approx(blocks.mean())
        assert row6["p_value"] == pytest.approx(signflip_p(blocks.to_numpy()))
        assert row6["p_t"] == pytest.approx(sst.ttest_1samp(blocks.to_numpy(), 0.0).pvalue)
        assert np.isnan(row6["p_holm"])
    # supcon trains without mixup, conventional with (annex.mixup: true): the evidence says so
    assert (
        "supcon at 20: supcon without mixup, conventional with mixup"
        in row.loc["metric-learning-beats-conventional-small-samples", "evidence"]
    )


def test_inline_values(namespace):
    inline = namespace["__inline__"]
    assert inline["n_text(doc.view.n)"] == "all training images"
    assert inline["scorer"] == "cosine_k1"
    assert inline['config["cases"]'] == 2
    # Cross-references of items this run makes are plain @labels.
    assert inline['ref("fig-tsne", "A t-SNE map")'].data == "@fig-tsne"


def test_all_cells_run_without_ipython(results, monkeypatch):
    monkeypatch.setitem(sys.modules, "IPython", None)  # import IPython -> ImportError
    ns = run_cells(REPORT, {"results": str(results)}, cwd=REPORT.parent)
    assert _divs(ns["__stdout__"])[0] == "tbl-conditions"


def test_default_results_path_is_relative_to_the_report(results, tmp_path):
    # Quarto runs cells in the document's folder: report/ next to results/.
    shutil.copytree(REPORT.parent, tmp_path / "report", ignore=shutil.ignore_patterns("_output", ".quarto"))
    (tmp_path / "results").symlink_to(results, target_is_directory=True)
    ns = run_cells(tmp_path / "report" / "report.qmd")
    assert ns["results"] == "../results"
    assert len(ns["doc"].study.tables["metrics"]) > 0


def test_figures_for_another_scorer_are_refused(results):
    with pytest.raises(DmlbenchError, match=r"made for scorer 'cosine_k1'.*'euclidean_k1'"):
        run_cells(REPORT, {"results": str(results), "scorer": "euclidean_k1"})


def test_missing_results_say_what_to_run(tmp_path, results):
    with pytest.raises(DmlbenchError, match="dmlbench snapshot"):
        run_cells(REPORT, {"results": str(tmp_path)})
    shutil.copy(results / "config.yaml", tmp_path / "config.yaml")
    with pytest.raises(DmlbenchError, match="dmlbench aggregate"):
        run_cells(REPORT, {"results": str(tmp_path)})


def test_cells_give_quarto_markdown_and_png_only_in_a_kernel(results, monkeypatch):
    """In a real kernel: the page comes as printed Markdown, the PDF's figures as image/png, and no
    cell displays text/html (Quarto would then add require.js and jQuery from a CDN)."""
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    from tests.helpers.qmd import run_in_kernel

    src = str(REPORT.parents[1] / "src")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])))
    outputs = run_in_kernel(REPORT, {"results": str(results)})
    assert len(outputs) == len(code_cells(REPORT))
    errors = [o for outs in outputs for o in outs if o["output_type"] == "error"]
    assert not errors, errors
    shown = [o for outs in outputs for o in outs if o["output_type"] in ("execute_result", "display_data")]
    assert [list(o["data"]) for o in shown] == [["image/png"]] * len(TEST_RUN_FIGURES)
    printed = "".join(
        o["text"] for outs in outputs for o in outs if o["output_type"] == "stream" and o["name"] == "stdout"
    )
    assert [d for d in _divs(printed) if d.startswith("fig-")] == TEST_RUN_FIGURES
