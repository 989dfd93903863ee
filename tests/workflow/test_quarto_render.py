"""`dmlbench render` with the real Quarto on config/test.yaml's results, checked as a reader sees it:
the PDF's text (pdftotext) and images (pdfimages), and the HTML opened in headless Chromium with no
network. Skipped, saying why, where Quarto (or poppler, or Chromium) is absent."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

from dmlbench import report as sections
from dmlbench.report._style import MIN_PRINT_FONT_PT
from dmlbench.report.figures import planned_figures, planned_tables, read_config
from tests.helpers.qmd import expanded

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "report" / "report.qmd"
SHOW = re.compile(r'^\s*show\("((?:fig|tbl)-[\w-]+)"\)$', re.M)  # at a line's start, or indented under an if

pytestmark = [pytest.mark.quarto, pytest.mark.slow]


def _need(tool: str, why: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} not on PATH: {why}")
    return path


@pytest.fixture(scope="module")
def rendered(test_run, tmp_path_factory) -> dict:
    """Render once with the CLI users run (`dmlbench render`), from a fresh folder."""
    _need("quarto", "install Quarto (https://quarto.org) to run the render test")
    work = tmp_path_factory.mktemp("render")
    results = test_run / "results"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "dmlbench"),
            "--results",
            str(results),
            "render",
            "--qmd",
            str(REPORT),
            "--log",
            str(work / "render.log"),
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    log = (work / "render.log").read_text() if (work / "render.log").exists() else ""
    assert proc.returncode == 0, proc.stdout + proc.stderr + log[-4000:]
    assert "Traceback" not in proc.stderr
    out = work / "report" / "_output"
    return {
        "html": out / "report.html",
        "pdf": out / "report.pdf",
        "results": results,
        "log": log,
        "config": read_config(results / "config.yaml"),
    }


def _shown_in_order(config: dict) -> list:
    """The items the report shows, in document order, that this config makes (printed tables only)."""
    made = set(planned_figures(config)) | set(planned_tables(config))
    return [sections.item(label) for label in SHOW.findall(expanded(REPORT)) if label in made]


def _normalised(text: str) -> str:
    """Whitespace collapsed, ligatures split (NFKC), and pandoc's typographic quotes made plain."""
    text = unicodedata.normalize("NFKC", text).translate(str.maketrans("‘’“”", "''\"\""))
    # pdftotext joins a word broken at a hyphen at the end of a line ("signed-|rank" -> "signedrank"):
    # compare without whitespace and hyphens.
    return re.sub(r"[\s-]+", "", text)


def test_pdf_text_holds_every_caption_in_order_and_no_raw_column_name(rendered):
    pdftotext = _need("pdftotext", "install poppler-utils to read the PDF")
    pdf = rendered["pdf"]
    assert pdf.read_bytes()[:5] == b"%PDF-"
    raw_text = subprocess.run([pdftotext, str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    text = _normalised(raw_text)
    position, found = 0, []
    for it in _shown_in_order(rendered["config"]):
        kind = "Figure" if it.label.startswith("fig-") else "Table"
        match = re.compile(rf"{kind}(\d+):" + re.escape(_normalised(it.caption))).search(text, position)
        assert match, f"caption of {it.label} not found (in order) in the PDF text"
        position = match.end()
        found.append(it.label)
    assert len(found) == len(_shown_in_order(rendered["config"])) >= 20

    # Raw column names of the printed tables (snake_case) appear nowhere, except those that are also
    # config keys (the appendix prints the config).
    def keys(obj):
        if isinstance(obj, dict):
            for k, v in obj.items():
                yield k
                yield from keys(v)
        elif isinstance(obj, list):
            for v in obj:
                yield from keys(v)

    raw = {c.name for t in sections.all_tables() if t.printed for c in t.columns if "_" in c.name}
    raw -= set(keys(rendered["config"]))
    assert raw and not [name for name in raw if re.search(rf"\b{name}\b", raw_text)]


def test_pdf_figures_print_no_text_under_7_pt(rendered):
    """Each figure's PNG (200 ppi) as placed on the page: its smallest text × 200 / placed ppi."""
    pdfimages = _need("pdfimages", "install poppler-utils to read the PDF's images")
    listing = subprocess.run(
        [pdfimages, "-list", str(rendered["pdf"])], capture_output=True, text=True, check=True
    ).stdout.splitlines()[2:]
    placed = {}
    for line in listing:
        cols = line.split()
        if cols[2] == "image":
            placed[(int(cols[3]), int(cols[4]))] = float(cols[12])  # (width, height) -> x-ppi
    figures = rendered["results"] / "figures"
    for label in planned_figures(rendered["config"]):
        from PIL import Image

        with Image.open(figures / f"{label}.png") as im:
            size = im.size
        smallest = min(float(x) for x in re.findall(r'font-size="([\d.]+)px"', (figures / f"{label}.svg").read_text()))
        assert size in placed, f"{label}'s PNG is not in the PDF"
        assert smallest * 200 / placed[size] >= MIN_PRINT_FONT_PT, label


_RECORD_ERRORS = """<script>
window.__errors = [];
window.addEventListener("error", function (e) { window.__errors.push("error: " + e.message); });
window.addEventListener("unhandledrejection", function (e) { window.__errors.push("rejection: " + e.reason); });
(function () { var original = console.error; console.error = function () {
  window.__errors.push("console.error: " + Array.prototype.join.call(arguments, " ")); original.apply(console, arguments); }; })();
window.addEventListener("load", function () { setTimeout(function () {
  document.documentElement.setAttribute("data-js-errors", JSON.stringify(window.__errors)); }, 2000); });
</script>"""


def test_html_draws_every_chart_offline_without_javascript_errors(rendered, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if chromium is None:
        pytest.skip("Chromium not on PATH: apt-get install -y chromium to open the HTML report")
    page = rendered["html"].read_text()
    assert "cdn.jsdelivr.net" not in page and "cdnjs.cloudflare.com" not in page  # self-contained
    probe = tmp_path / "report.html"
    probe.write_text(page.replace("<head>", "<head>" + _RECORD_ERRORS, 1))
    proc = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--proxy-server=127.0.0.1:9",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--virtual-time-budget=30000",
            "--dump-dom",
            probe.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    dom = proc.stdout
    assert "data-js-errors=" in dom, proc.stderr[-2000:]
    errors = json.loads(re.search(r'data-js-errors="([^"]*)"', dom)[1].replace("&quot;", '"'))
    assert errors == []
    # Every chart's div holds a Vega view drawn as SVG (class "marks"), and nothing else draws one.
    chunks = re.split(r'<div id="dmlbench-vis-', dom)[1:]
    drawn = [
        c for c in chunks if re.match(r'[0-9a-f]+" class="dmlbench-chart[^"]*"[^>]*>.*?<svg[^>]*class="marks"', c, re.S)
    ]
    assert len(chunks) == len(drawn) == len(planned_figures(rendered["config"]))
    assert len(re.findall(r'<svg[^>]*class="marks"', dom)) == len(drawn)


def _bibliography_keys() -> list[str]:
    return re.findall(r"^@\w+\{([^,\s]+),", (ROOT / "report" / "references.bib").read_text(), re.M)


def test_both_formats_end_with_the_references_and_name_the_quarto_that_rendered_them(rendered):
    """A References section closes the HTML and the PDF, one entry per work of references.bib
    (every one is cited), and the Reproducibility section names Quarto's version."""
    quarto = _need("quarto", "install Quarto")
    version = subprocess.run([quarto, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    entries = len(_bibliography_keys())
    assert entries >= 8
    pdftotext = _need("pdftotext", "install poppler-utils to read the PDF")
    text = subprocess.run([pdftotext, "-layout", str(rendered["pdf"]), "-"], capture_output=True, text=True).stdout
    assert f"rendered by Quarto {version}" in " ".join(text.split())
    # the last heading of the document, on a page of its own: nothing follows it but the entries
    tail = text[[m.start() for m in re.finditer(r"^\f?References$", text, re.M)][-1] :]
    listed = re.findall(r"^(?:[A-ZÀ-Ž][^\s,]+, [A-Z]|———)", tail, re.M)  # an entry starts with "Family, G" or ———
    assert len(listed) == entries
    assert "Niizumi, Daisuke. 2019" in tail and "https://qiita.com/daisukelab/items/5f9ec189959eaf1ef211" in tail
    html = rendered["html"].read_text()
    assert f"rendered by Quarto {version}" in html
    refs = html.index('<section id="references"')
    assert html.count('class="csl-entry"', refs) == entries == html.count('class="csl-entry"')
    assert "<section" not in html[refs + 1 :]  # the last section of the page
    assert html.rindex('id="reproducibility"') < refs


def test_the_report_opens_with_the_summary_and_says_why_no_cell_matches(rendered, tmp_path):
    """Issue 25: the Summary is the first section, each of its lines links to a section that exists;
    the Reproduction section says in one sentence that no cell of the test run (digits) matches the
    study's and names config/study.yaml - in the PDF's text and in the HTML as Chromium draws it."""
    from dmlbench.report.reproduction import no_match_sentence

    sentence = no_match_sentence(rendered["config"]).replace("`", "")  # inline code: no backticks in print
    pdftotext = _need("pdftotext", "install poppler-utils to read the PDF")
    text = _normalised(subprocess.run([pdftotext, str(rendered["pdf"]), "-"], capture_output=True, text=True).stdout)
    # after the table of contents: the Summary's text, then the Setup's first item, ..., the Reproduction's sentence
    first_setup_item = _shown_in_order(rendered["config"])[0]
    places = [
        text.find(_normalised("What this run found, one line each")),
        text.find(_normalised(first_setup_item.caption)),
        text.find(_normalised(sentence[0].upper() + sentence[1:])),
    ]
    assert -1 not in places and places == sorted(places), places
    assert _normalised("Reproduction: " + sentence) in text  # the Summary's line
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if chromium is None:
        pytest.skip("Chromium not on PATH: apt-get install -y chromium to open the HTML report")
    proc = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--proxy-server=127.0.0.1:9",
            "--virtual-time-budget=10000",
            "--dump-dom",
            rendered["html"].as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    dom = proc.stdout
    sections = re.findall(r'<section id="([\w-]+)" class="level2', dom)
    assert sections[0] == "sec-summary" and sections[1] == "setup", sections[:3]
    summary = dom[dom.index('id="sec-summary"') : dom.index('id="setup"')]
    links = set(re.findall(r'href="#(sec-[\w-]+)"', summary)) - {"sec-summary"}  # the heading's own anchor
    assert links == {"sec-auroc", "sec-findings", "sec-reproduction"}
    assert all(f'id="{link}"' in dom for link in links)
    plain = re.sub(r"<[^>]+>", "", dom).replace("\u2019", "'").replace("&#39;", "'")
    assert " ".join(sentence.split()) in " ".join(plain.split())
