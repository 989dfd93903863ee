"""Parsing the workflow (what Snakemake repeats in every cluster or cloud job) imports no heavy
package: no torch, fastai, altair, scikit-learn or matplotlib (pandas plotting)."""

import re
import subprocess
import sys

import pytest

from tests.workflow.conftest import ROOT, clean_env

HEAVY = ("torch", "torchvision", "fastai", "altair", "vl_convert", "sklearn", "matplotlib", "scipy")


def parse_imports(tmp_path, configfile: str) -> dict[str, str]:
    """Every module imported by `snakemake -n` on ``configfile``, mapped to the module that
    imported it first (from ``python -X importtime``: a child is listed before its parent, one
    indentation step deeper)."""
    cmd = [
        sys.executable,
        "-X",
        "importtime",
        "-m",
        "snakemake",
        "-s",
        str(ROOT / "Snakefile"),
        "--directory",
        str(tmp_path),
        "--configfile",
        str(ROOT / configfile),
        "-n",
        "--quiet",
        "rules",
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    rows = [m.groups() for m in re.finditer(r"^import time:\s+\d+ \|\s+\d+ \|( *)(\S+)$", proc.stderr, re.M)]
    assert rows, "no -X importtime output"
    imported_by, pending = {}, []  # pending: (depth, module) waiting for their parent
    for indent, module in rows:
        depth = len(indent)
        while pending and pending[-1][0] > depth:
            imported_by.setdefault(pending.pop()[1], module)
        pending.append((depth, module))
    for _, module in pending:
        imported_by.setdefault(module, "<top level>")
    return imported_by


@pytest.mark.parametrize("configfile", ["config/config.yaml", "config/test.yaml"])
def test_parse_imports_no_heavy_package(tmp_path, configfile):
    imported_by = parse_imports(tmp_path, configfile)
    assert "dmlbench.report" in imported_by and "dmlbench.config" in imported_by  # the workflow's own helpers
    heavy = sorted({m.split(".")[0] for m in imported_by if m.split(".")[0] in HEAVY})
    # for each heavy package, the chain of imports back to the dmlbench module that pulled it in
    chains = []
    for package in heavy:
        chain = [package]
        while not chain[-1].startswith("dmlbench") and imported_by.get(chain[-1]) not in (None, *chain):
            chain.append(imported_by[chain[-1]])
        chains.append(" <- ".join(chain))
    assert not heavy, "the workflow's parse imports heavy packages:\n" + "\n".join(chains)
