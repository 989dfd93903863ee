"""Citing and being cited: LICENSE, CITATION.cff, report/references.bib and the study's name in
the README and the report agree with each other and with the package."""

import re
from pathlib import Path

import yaml

from dmlbench import __version__

ROOT = Path(__file__).resolve().parents[2]
STUDY_URL = "https://qiita.com/daisukelab/items/5f9ec189959eaf1ef211"
STUDY_CODE = "https://github.com/daisukelab/metric_learning"
STUDY_TITLE = "深層距離学習(Deep Metric Learning)各手法の定量評価 (MNIST/CIFAR10・異常検知)"
#: CFF 1.2.0's reference types used here (its schema's definitions.reference.properties.type.enum).
CFF_TYPES = {"blog", "software", "generic", "conference-paper", "article"}


def bibliography() -> dict[str, dict[str, str]]:
    """key -> field -> value of report/references.bib (one field per line, as the file is written)."""
    entries = {}
    for block in re.split(r"\n(?=@)", (ROOT / "report" / "references.bib").read_text()):
        head = re.match(r"@(\w+)\{([^,\s]+),", block)
        if head:
            fields = dict(re.findall(r"^\s+(\w+)\s*=\s*\{(.*)\},?\s*$", block, re.M))
            entries[head.group(2)] = {"type": head.group(1), **fields}
    return entries


def cited_in_report() -> set[str]:
    text = "\n".join(
        p.read_text() for p in [ROOT / "report" / "report.qmd", *(ROOT / "report" / "sections").glob("*.qmd")]
    )
    # Pandoc reads a citation only where the @ starts a word: MAP@R is text, as an e-mail address is.
    keys = re.findall(r"(?<![\w.])@([A-Za-z][\w:-]*)", text)
    return {key for key in keys if not key.startswith(("fig-", "tbl-"))}


def test_license_is_the_mit_license_pyproject_declares():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^license = "MIT"$', pyproject, re.M) and re.search(
        r'^license-files = \["LICENSE"\]$', pyproject, re.M
    )
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n") and "Permission is hereby granted, free of charge" in text


def test_citation_cff_holds_the_fields_cff_1_2_0_requires_and_this_version():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0"
    assert {"message", "title", "authors"} <= set(cff)
    assert all("name" in a or "family-names" in a for a in cff["authors"])
    assert cff["version"] == __version__ and cff["license"] == "MIT" and cff["type"] == "software"
    for ref in cff["references"]:
        assert ref["type"] in CFF_TYPES and ref["title"] and ref["authors"] and isinstance(ref["year"], int), ref
    study, code = cff["references"][:2]
    assert study["url"] == STUDY_URL and STUDY_TITLE in study["title"] and study["year"] == 2019
    assert study["authors"][0]["family-names"] == "Niizumi"
    assert code["repository-code"] == STUDY_CODE
    # every DOI of CITATION.cff is the bibliography's
    dois = {e["doi"] for e in bibliography().values() if "doi" in e}
    assert {r["doi"] for r in cff["references"] if "doi" in r} <= dois


def test_the_bibliography_has_the_study_and_the_methods_and_the_report_cites_every_entry():
    bib = bibliography()
    assert len(bib) >= 8
    for key in ("niizumi2019study", "niizumi2019code", "ranjan2017l2softmax", "deng2019arcface", "wang2018cosface"):
        assert key in bib
    for key in ("liu2017sphereface", "wen2016centerloss", "zhang2018mixup", "musgrave2020pml"):
        assert key in bib
    assert bib["niizumi2019study"]["url"] == STUDY_URL and bib["niizumi2019code"]["url"] == STUDY_CODE
    for key, entry in bib.items():
        assert {"author", "title", "year"} <= set(entry), key
        assert "doi" in entry or "url" in entry, f"{key}: give a DOI or an arXiv/web address"
        if "doi" in entry:
            assert re.fullmatch(r"10\.\d{4,5}/\S+", entry["doi"]), key
    cited = cited_in_report()
    assert cited <= set(bib), f"cited but not in references.bib: {cited - set(bib)}"
    assert set(bib) <= cited, f"in references.bib but never cited (so not listed): {set(bib) - cited}"


def test_readme_and_report_name_the_study_with_title_author_year_address_and_code():
    readme = (ROOT / "README.md").read_text()
    for part in (STUDY_TITLE, "Daisuke Niizumi", "2019", STUDY_URL, STUDY_CODE, "CITATION.cff", "LICENSE"):
        assert part in readme, part
    setup = (ROOT / "report" / "sections" / "_setup.qmd").read_text()
    for part in ("Daisuke Niizumi", "2019", STUDY_URL, STUDY_CODE, "@niizumi2019study"):
        assert part in setup, part
    quarto = yaml.safe_load((ROOT / "report" / "_quarto.yml").read_text())
    assert quarto["bibliography"] == "references.bib" and quarto["quarto-required"].startswith(">=")
    assert quarto["format"]["typst"]["citeproc"] is True  # the PDF's References as the HTML's
