"""The captions of Snakemake's own report (`snakemake --report report.zip`): one RST file per
figure and table, ``report/captions/<label>.rst``, written from the sections' declarations (each
Figure's and Table's caption, the one the Quarto report prints) so that they cannot drift: a
test compares the files with this module's output. Rewrite them with
``python -m dmlbench.report.captions``. The figures rule registers each figure's SVG and each
table's CSV with ``report()`` and its caption (rules/common.smk).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from dmlbench.io import write_text
from dmlbench.report import all_figures, all_tables

#: The folder of the caption files, in the checkout (the rules name it relative to rules/).
CAPTIONS = Path(__file__).resolve().parents[3] / "report" / "captions"


def caption_rst(caption: str) -> str:
    """A caption as RST (its markup characters escaped) inside Jinja's raw block (Snakemake
    renders a caption file as a Jinja template first)."""
    text = re.sub(r"([\\*_`|])", r"\\\1", " ".join(caption.split()))
    return "{% raw %}\n" + text + "\n{% endraw %}\n"


def captions() -> dict[str, str]:
    """label -> RST caption file text, for every figure and table of every section."""
    return {item.label: caption_rst(item.caption) for item in [*all_figures(), *all_tables()]}


def write(folder: Path = CAPTIONS) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for label, text in captions().items():
        path = folder / f"{label}.rst"
        write_text(path, text)
        paths.append(path)
    for stale in set(folder.glob("*.rst")) - set(paths):
        stale.unlink()
    return paths


if __name__ == "__main__":
    for p in write(Path(sys.argv[1]) if len(sys.argv) > 1 else CAPTIONS):
        print(p)
