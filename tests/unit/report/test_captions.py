"""Snakemake's report (`snakemake --report`) shows each figure and table with its caption, read
from report/captions/<label>.rst, written from the sections' declarations: they cannot drift."""

from pathlib import Path

from dmlbench.report import all_figures, all_tables
from dmlbench.report.captions import CAPTIONS, caption_rst, captions

ROOT = Path(__file__).resolve().parents[3]


def test_the_caption_files_are_the_declarations():
    assert CAPTIONS == ROOT / "report" / "captions"
    files = {p.stem: p.read_text() for p in CAPTIONS.glob("*.rst")}
    assert files == captions(), (
        "report/captions/ differs from the declarations: run `python -m dmlbench.report.captions`"
    )
    assert set(files) == {i.label for i in [*all_figures(), *all_tables()]}


def test_a_caption_is_escaped_rst_inside_a_jinja_raw_block():
    assert caption_rst("device_index: *the* GPU's `index`") == (
        "{% raw %}\ndevice\\_index: \\*the\\* GPU's \\`index\\`\n{% endraw %}\n"
    )
