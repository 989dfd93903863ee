"""How the report prints a table or a chart (dmlbench.report.document), checked on small cases
worked out by hand; the Typst tables are compiled with the typst package and read back."""

from __future__ import annotations

import math
import shutil
import subprocess

import pandas as pd
import pytest

from dmlbench.report import Column
from dmlbench.report.document import chart_html, format_cell, printed_cells, table_html, table_typst, vega_script


def test_format_cell_gives_fixed_digits_p_values_flags_and_a_dash_for_missing():
    assert format_cell(0.12345, ".3f") == "0.123"
    assert format_cell(0.0105, "+.3f") == "+0.011" and format_cell(-0.0105, "+.3f") == "-0.011"
    assert format_cell(0.0004, "p") == "<0.001" and format_cell(0.0123, "p") == "0.012"
    assert format_cell(1.0, "p") == "1.000"
    assert format_cell(12.0, "d") == "12"
    assert format_cell(True, "yes/no") == "yes" and format_cell(False, "yes/no") == "no"
    assert format_cell(float("nan"), ".3f") == "–" and format_cell(None, None) == "–"
    assert format_cell(pd.NA, "d") == "–"
    assert format_cell("two\nlines", None) == "two lines"


def test_printed_cells_skip_absent_columns_and_turn_notes_into_letters():
    df = pd.DataFrame(
        {
            "method": ["conventional", "arcface", "cosface"],
            "p": [0.5, 0.0001, math.nan],
            "note": ["needs 3 methods", "needs 3 methods", ""],
        }
    )
    columns = (Column("method", "method"), Column("p", "Wilcoxon p", "p"), Column("absent", "never shown"))
    shown, rows, notes = printed_cells(df, columns, notes="note")
    assert [c.header for c in shown] == ["method", "Wilcoxon p", "note"]
    assert rows == [["conventional", "0.500", "a"], ["arcface", "<0.001", "a"], ["cosface", "–", ""]]
    assert notes == ["a: needs 3 methods"]
    # Without any note text no note column is added.
    shown, rows, notes = printed_cells(df.assign(note=""), columns, notes="note")
    assert [c.name for c in shown] == ["method", "p"] and notes == []


def test_table_html_escapes_text_and_right_aligns_numbers():
    columns = [Column("name", "name <x>"), Column("v", "AUROC", ".3f")]
    out = table_html(columns, [["a & b", "0.500"]], ["a: <note>"])
    assert '<th style="text-align: left">name &lt;x&gt;</th>' in out
    assert '<td style="text-align: right">0.500</td>' in out and "a &amp; b" in out
    assert "a: &lt;note&gt;" in out and "<script" not in out


def test_table_typst_compiles_and_reads_back_every_cell(tmp_path):
    typst = pytest.importorskip("typst", reason="the typst package compiles the table (envs/requirements.txt)")
    columns = [Column("method", "method"), Column("p", "Wilcoxon p (Holm)", "p", 1.5)]
    rows = [['con"ven\\tional#*_$', "0.012"], ["arcface", "<0.001"]]
    source = table_typst(columns, rows, ["a: a note"], small=True)
    assert "columns: (1fr, 1.5fr,)" in source and "align: (left, right,)" in source
    assert "hyphenate: false" in source and "size: 7.5pt" in source
    # A narrow page: without hyphenate: false "conventional" would break across lines.
    (tmp_path / "t.typ").write_text("#set page(width: 6cm, height: auto, margin: 0.5cm)\n" + source + "\n")
    pdf = typst.compile(str(tmp_path / "t.typ"))
    pdftotext = shutil.which("pdftotext")
    if pdftotext is None:
        pytest.skip("pdftotext (poppler-utils) reads the compiled table back")
    (tmp_path / "t.pdf").write_bytes(pdf)
    text = subprocess.run(
        [pdftotext, "-layout", str(tmp_path / "t.pdf"), "-"], capture_output=True, text=True, check=True
    ).stdout
    for cell in ("Wilcoxon p (Holm)", 'con"ven\\tional#*_$', "0.012", "<0.001", "arcface", "a: a note"):
        assert cell in text, (cell, text)


def _script_body(html: str) -> str:
    return html.split("<script", 1)[1].split(">", 1)[1].rsplit("</script>", 1)[0]


def test_charts_draw_from_the_embedded_bundle_not_a_cdn(tmp_path):
    spec = {
        "$schema": "https://vega.github.io/schema/vega-lite/v6.json",
        "mark": "point",
        "data": {"values": [{"x": 1, "label": "</script><b>"}]},
        "encoding": {"x": {"field": "x"}},
    }
    html = chart_html(spec)
    script = vega_script()
    assert "window.vegaEmbed" in script
    assert "cdn.jsdelivr" not in html and "<script src" not in html  # nothing to fetch at view time
    assert '"renderer": "svg"' in html and '"label"' in html
    assert "</" not in _script_body(html)  # a "</" in the spec would end the script early
    node = shutil.which("node")
    if node:  # both scripts at least parse as JavaScript
        for name, text in {"bundle.js": script, "chart.js": html}.items():
            (tmp_path / name).write_text(_script_body(text))
            subprocess.run([node, "--check", str(tmp_path / name)], check=True, capture_output=True)
