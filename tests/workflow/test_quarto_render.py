"""Render the report with Quarto (HTML and Typst PDF) on config/test.yaml's results; skipped without Quarto."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dmlbench.figures import ALL_FIGURES

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.quarto, pytest.mark.slow]


def test_quarto_renders_html_and_pdf(tmp_path, test_run):
    quarto = shutil.which("quarto")
    if quarto is None:
        pytest.skip("quarto binary not on PATH: install Quarto (https://quarto.org) to run the render test")
    results = test_run / "results"
    report = tmp_path / "report"
    report.mkdir()
    for name in ("report.qmd", "_quarto.yml"):
        shutil.copy(ROOT / "report" / name, report / name)
    env = dict(os.environ)
    # The Jupyter kernel must import dmlbench from this checkout, with this interpreter.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    env.setdefault("QUARTO_PYTHON", sys.executable)
    proc = subprocess.run(
        [quarto, "render", "report.qmd", "-P", f"results:{results}"],
        cwd=report, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    html = report / "_output" / "report.html"
    pdf = report / "_output" / "report.pdf"
    assert html.is_file() and pdf.is_file()
    assert pdf.read_bytes()[:5] == b"%PDF-"
    page = html.read_text()
    assert "window.vegaEmbed" in page and all(label in page for label in ALL_FIGURES)
    assert "cdn.jsdelivr.net/npm/vega" not in page  # self-contained: nothing fetched at view time
