"""`make lint`: `snakemake --lint` for every config in config/, silent on this workflow and failing
on any finding (a rule that passes a hard-coded folder instead of deriving it from its files)."""

import shutil
import subprocess
import sys
from pathlib import Path

from tests.workflow.conftest import ROOT, clean_env

VENV = Path(sys.executable).parent.parent


def make_lint(directory: Path) -> subprocess.CompletedProcess:
    """`make lint` in ``directory`` with this interpreter's venv, without (re)building it."""
    cmd = ["make", "-C", str(directory), f"VENV={VENV}", "-o", f"{VENV}/.installed", "lint"]
    return subprocess.run(cmd, capture_output=True, text=True, env=clean_env(), timeout=600)


def test_make_lint_passes_for_every_config():
    proc = make_lint(ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    configs = sorted(p.name for p in (ROOT / "config").glob("*.yaml"))
    assert {"config.yaml", "demo.yaml", "test.yaml"} <= set(configs)
    for name in configs:
        assert f"snakemake --lint --configfile config/{name}: no findings" in proc.stdout
    assert "Lints for" not in proc.stdout + proc.stderr


def test_make_lint_fails_on_a_finding(tmp_path):
    for name in ("Makefile", "Snakefile"):
        shutil.copy2(ROOT / name, tmp_path / name)
    for name in ("rules", "profiles", "schemas"):
        shutil.copytree(ROOT / name, tmp_path / name)
    (tmp_path / "config").mkdir()
    shutil.copy2(ROOT / "config" / "test.yaml", tmp_path / "config" / "test.yaml")
    # A folder passed as a hard-coded param: on a storage plugin its job finds nothing there.
    with open(tmp_path / "rules" / "report.smk", "a") as fh:
        fh.write('\n\nrule extra:\n    output:\n        "results/extra/a.txt",\n    log:\n        "logs/extra.log",\n'
                 '    params:\n        out="results/extra",\n    shell:\n        "touch {params.out}/a.txt 2> {log}"\n')
    proc = make_lint(tmp_path)
    assert proc.returncode != 0
    assert "make lint: snakemake --lint --configfile config/test.yaml:" in proc.stderr
    assert "Lints for rule extra" in proc.stderr and "Param out is a prefix of input or output file" in proc.stderr
