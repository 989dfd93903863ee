"""docs/extend.md lists the files to touch to add a head, a scorer, a dataset source or a report
section. Every item of today's registries is in each listed file - so the list is right - and a new
item that misses one fails here, naming the file (a path with ``{name}`` must exist)."""

import re
from pathlib import Path

import pytest

from dmlbench import report
from dmlbench.config.scorers import SCORERS
from dmlbench.config.sources import SOURCE_OPTIONS
from dmlbench.config.switches import SWITCHES
from dmlbench.heads import HEADS

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "extend.md"

#: The guide's sections, and the registry whose every name the section's files must hold.
REGISTRIES = {
    "Add a head": sorted(HEADS),
    "Add a scorer": list(SCORERS),
    "Add a dataset source": sorted(SOURCE_OPTIONS),
    "Add a report section": [report.section_name(s) for s in report.SECTIONS],
    "Add a switch of the original implementation": list(SWITCHES),
}


def listed_files(section: str) -> list[str]:
    """The files of a section of the guide: the bullets that start with a path in backticks."""
    text = GUIDE.read_text()
    body = re.search(rf"^## {re.escape(section)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert body, f"docs/extend.md has no section '## {section}'"
    return re.findall(r"^- `([^`]+)`", body[1], re.M)


@pytest.mark.parametrize("section", REGISTRIES)
def test_each_section_lists_files_that_exist(section):
    files = listed_files(section)
    assert len(files) >= 4, f"{section}: {files}"
    for path in files:
        if "{name}" not in path:
            assert (ROOT / path).is_file(), f"docs/extend.md, {section}: {path} does not exist"


@pytest.mark.parametrize(("section", "name"), [(s, n) for s, names in REGISTRIES.items() for n in names])
def test_every_item_is_in_every_listed_file(section, name):
    missing = []
    for path in listed_files(section):
        target = ROOT / path.replace("{name}", name)
        if "{name}" in path:
            if not target.is_file():
                missing.append(f"{target.relative_to(ROOT)} does not exist")
        elif not re.search(rf"(?<![a-z0-9]){re.escape(name)}(?![a-z0-9])", target.read_text(), re.I):
            missing.append(f"{path} does not name it")
    assert not missing, f"{section} '{name}' (docs/extend.md): " + "; ".join(missing)
