"""What the Quarto document calls: one line shows a figure or a table in both formats.

``report/report.qmd`` runs its cells with ``output: asis``, so what these functions print is
Markdown that Quarto reads as part of the page. A figure is a Quarto figure div (``#fig-…``)
holding the interactive chart as raw HTML (the HTML format) and the PNG written by
``dmlbench figures`` (every other format: the PDF), then its caption; a table is a table div
(``#tbl-…``) holding an HTML table and a Typst table built from the same formatted cells, so
headers are words with units, numbers are right-aligned with fixed digits, and widths fit A4.

The charts load Vega from a script the document prints once (:meth:`Document.vega`), never from
a CDN, so the self-contained HTML opens offline.
"""

from __future__ import annotations

import html
import json
import math
import uuid
from pathlib import Path

import altair as alt
import IPython.display as ipython  # its display is looked up per call: the kernel's (or a test's) own
import vl_convert as vlc

from dmlbench import layout
from dmlbench.errors import DmlbenchError
from dmlbench.report import item, planned_figures
from dmlbench.report._declare import Column, Figure, Table
from dmlbench.report._style import pd
from dmlbench.report.figures import build_one, check_figures
from dmlbench.report.study import Study, View

NOT_AVAILABLE = "–"
SCREEN_SCALE = 1.35  # charts are sized for print; the HTML draws them this much larger


# --------------------------------------------------------------------------- cells


def format_cell(value, fmt: str | None) -> str:
    """One printed cell: ``fmt`` a format spec (".3f", "+.3f", "d"), "p" (p-value: three decimals,
    "<0.001" below), "yes/no" (a flag) or None (text). Missing values print as an en dash."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return NOT_AVAILABLE
    if fmt is None:
        return str(value).replace("\n", " ")
    if fmt == "yes/no":
        return "yes" if bool(value) else "no"
    if fmt == "p":
        return "<0.001" if float(value) < 0.001 else f"{float(value):.3f}"
    if fmt == "d":
        return f"{int(value):d}"
    return format(float(value), fmt)


def printed_cells(
    df, columns: tuple[Column, ...], notes: str | None = None
) -> tuple[list[Column], list[list[str]], list[str]]:
    """The columns present in ``df``, their formatted cells row by row, and the notes.

    A ``notes`` column's texts leave the table: each distinct text gets a letter (a, b, ...), the
    row shows the letter in a narrow "note" column, and the texts are returned in order.
    """
    shown = [c for c in columns if c.name in df.columns] if columns else [Column(str(c), str(c)) for c in df.columns]
    rows = []
    for record in df[[c.name for c in shown]].itertuples(index=False):
        rows.append([format_cell(v, c.fmt) for v, c in zip(record, shown)])
    texts: list[str] = []
    if notes and notes in df.columns:
        marks = []
        for text in df[notes]:
            text = "" if text is None or (not isinstance(text, str) and pd.isna(text)) else str(text).strip()
            if text and text not in texts:
                texts.append(text)
            marks.append(chr(ord("a") + texts.index(text)) if text else "")
        if texts:
            shown = shown + [Column(notes, "note", None, 0.4)]
            rows = [row + [mark] for row, mark in zip(rows, marks)]
    return shown, rows, [f"{chr(ord('a') + i)}: {t}" for i, t in enumerate(texts)]


def table_html(columns: list[Column], rows: list[list[str]], notes: list[str]) -> str:
    """An HTML table (Bootstrap classes, as Quarto styles tables) with the notes under it."""

    def align(c: Column) -> str:
        return "right" if c.numeric else "left"

    head = "".join(f'<th style="text-align: {align(c)}">{html.escape(c.header)}</th>' for c in columns)
    body = "".join(
        "<tr>"
        + "".join(f'<td style="text-align: {align(c)}">{html.escape(v)}</td>' for c, v in zip(columns, row))
        + "</tr>"
        for row in rows
    )
    # Quarto would otherwise parse the table into every format's output: the PDF gets the Typst one.
    out = f'<table class="table table-sm dmlbench-table" data-quarto-disable-processing="true"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    if notes:
        out += "".join(f'<p class="dmlbench-table-note"><small>{html.escape(n)}</small></p>' for n in notes)
    return out


def _typst_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def table_typst(columns: list[Column], rows: list[list[str]], notes: list[str], small: bool = False) -> str:
    """A Typst table: relative column widths that fill the text width, numbers right-aligned,
    the header repeated on every page, no hyphenation (method names stay whole), notes under it.
    Cells are Typst strings, so no text is read as markup."""
    widths = ", ".join(f"{c.width:g}fr" for c in columns)
    aligns = ", ".join("right" if c.numeric else "left" for c in columns)
    header = ", ".join(f"strong({_typst_string(c.header)})" for c in columns)
    body = ",\n    ".join(", ".join(_typst_string(v) for v in row) for row in rows)
    size = "7.5pt" if small else "8.5pt"
    lines = [
        "#block(width: 100%)[",
        f"  #set text(size: {size}, hyphenate: false)",
        "  #set par(justify: false)",
        "  #table(",
        f"    columns: ({widths},),",
        f"    align: ({aligns},),",
        "    stroke: none, inset: (x: 3pt, y: 2.5pt),",
        "    table.hline(stroke: 0.8pt),",
        f"    table.header({header}),",
        "    table.hline(stroke: 0.5pt),",
        f"    {body}," if body else "",
        "    table.hline(stroke: 0.8pt),",
        "  )",
    ]
    lines += [f"  #align(left, text(size: 7.5pt, {_typst_string(n)}))" for n in notes]
    lines.append("]")
    return "\n".join(line for line in lines if line)


# --------------------------------------------------------------------------- charts


def vega_script() -> str:
    """A ``<script>`` (about 0.9 MB) that defines ``window.vegaEmbed`` from vl-convert's bundle."""
    vl_version = "_".join(alt.SCHEMA_VERSION.split(".")[:2])  # "v6.4.1" -> "v6_4"
    bundle = vlc.javascript_bundle(vl_version=vl_version)
    # A function scope keeps the bundle's top-level names out of the page's global scope.
    return f'<script type="text/javascript">\n(function () {{\n{bundle}\n}})();\n</script>'


def chart_html(spec: dict) -> str:
    """A div and a script that draws the Vega-Lite ``spec`` with ``window.vegaEmbed``."""
    div = f"dmlbench-vis-{uuid.uuid4().hex}"
    # "</" inside a <script> would end it early; JSON allows escaping "/".
    spec_json = json.dumps(spec).replace("</", "<\\/")
    return (
        f'<div id="{div}" class="dmlbench-chart"></div>\n'
        '<script type="text/javascript">\n'
        "(function () {\n"
        f'  var el = document.getElementById("{div}");\n'
        '  if (typeof window.vegaEmbed !== "function") {\n'
        '    el.textContent = "Chart library missing: the report prints Document.vega() first.";\n'
        "    return;\n"
        "  }\n"
        f'  window.vegaEmbed(el, {spec_json}, {{"renderer": "svg", "actions": {{"export": true, '
        '"source": false, "compiled": false, "editor": false}}).then(function () {\n'
        # Sized for print (1 chart pixel = 1 pt); on screen a third larger, within the column.
        '    var svg = el.querySelector("svg");\n'
        '    if (svg) { var w = +svg.getAttribute("width");\n'
        f'      svg.style.width = Math.min(el.parentElement.clientWidth || w, Math.round({SCREEN_SCALE} * w)) + "px";\n'
        '      svg.style.height = "auto"; }\n'
        "  }).catch(function (err) { el.textContent = String(err); });\n"
        "})();\n"
        "</script>"
    )


def _raw(fmt: str, text: str) -> str:
    fence = "`" * max(3, 1 + max((len(r) for r in text.split("\n") if set(r) == {"`"}), default=0))
    return f"{fence}{{={fmt}}}\n{text}\n{fence}\n"


# --------------------------------------------------------------------------- the document


class Document:
    """The report's figures and tables for one results folder and scorer (what the .qmd calls)."""

    def __init__(self, results: str | Path, scorer: str = "cosine_k1"):

        self.results = Path(results)
        self.study = Study.load(self.results)
        self.view = View(self.study, scorer)
        self.scorer = scorer
        self._build = build_one
        # The PDF shows these images: they must exist and be made for the scorer the HTML shows.
        self.pngs = check_figures(layout.figures_dir(self.results), scorer, planned_figures(self.config))

    @property
    def config(self) -> dict:
        return self.study.config

    def why_not(self, label: str) -> str | None:
        """Why this run's config does not make ``label`` (None when it does)."""
        return item(label).needs(self.config)

    def ref(self, label: str, name: str = "the figure"):
        """A cross-reference (``@label``) when the item is made, else ``name`` and why it is missing."""
        why = self.why_not(label)
        return ipython.Markdown(f"@{label}" if why is None else f"{name} (not in this run: {why})")

    def vega(self) -> None:
        """Print, once and for HTML only, the script every interactive chart needs."""
        print(_raw("html", vega_script()))

    def show(self, label: str) -> None:
        """Print the figure or table ``label`` for both formats, or why this run does not make it."""
        declared = item(label)
        why = declared.needs(self.config)
        if why is not None:
            print(f"*Not in this run: {why}.*\n")
            return
        if isinstance(declared, Figure):
            self._figure(declared)
        else:
            self._table(declared)

    def _figure(self, fig: Figure) -> None:

        chart = self._build(self.view, fig.label)
        print(f"::: {{#{fig.label}}}\n")
        print(_raw("html", chart_html(chart.to_dict())))
        print('::: {.content-visible unless-format="html"}\n')
        ipython.display({"image/png": self.pngs[fig.label].read_bytes()}, raw=True)
        print(f"\n:::\n\n{fig.caption}\n\n:::\n")

    def table_frame(self, label: str):
        """The printed frame of a table (its ``shown`` view of the exported table)."""
        tab = item(label)
        if not isinstance(tab, Table):
            raise DmlbenchError(f"{label} is not a table")
        df = self._build(self.view, label)
        return tab.shown(df) if tab.shown else df

    def _table(self, tab: Table) -> None:
        if not tab.printed:
            raise DmlbenchError(f"table {tab.label} is exported as CSV only; the report does not print it")
        columns, rows, notes = printed_cells(self.table_frame(tab.label), tab.columns, tab.notes)
        print(f"::: {{#{tab.label}}}\n")
        print(_raw("html", table_html(columns, rows, notes)))
        print(_raw("typst", table_typst(columns, rows, notes, tab.small)))
        print(f"{tab.caption}\n\n:::\n")

    def markdown(self, text: str) -> None:
        """Print Markdown computed by a section (the findings list, the config)."""
        print(text if text.endswith("\n") else text + "\n")


def n_text(n_per_class: str) -> str:
    """ "all training images" or "50 training images" per class, for prose."""
    return "all training images" if str(n_per_class) == "all" else f"{n_per_class} training images"


def percent(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f} %"
