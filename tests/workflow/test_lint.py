"""`make lint`: `snakefmt --check` and `snakemake --lint` for every config in config/, silent on this
workflow and failing on any finding (a rule that passes a hard-coded folder instead of deriving
it from its files, a rule file snakefmt would rewrite)."""

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
    n_files = 1 + len(list((ROOT / "rules").glob("*.smk")))  # snakefmt --check on Snakefile and rules/
    assert f"All {n_files} file(s) would be left unchanged" in proc.stderr


def workflow_copy(tmp_path: Path) -> Path:
    """The files `make lint` reads, with config/test.yaml as the only config."""
    for name in ("Makefile", "Snakefile", "pyproject.toml"):
        shutil.copy2(ROOT / name, tmp_path / name)
    for name in ("rules", "profiles", "schemas"):
        shutil.copytree(ROOT / name, tmp_path / name)
    (tmp_path / "config").mkdir()
    shutil.copy2(ROOT / "config" / "test.yaml", tmp_path / "config" / "test.yaml")
    return tmp_path


# A folder passed as a hard-coded param (on a storage plugin its job finds nothing there),
# formatted as snakefmt wants it.
HARD_CODED_FOLDER = """

rule extra:
    output:
        "results/extra/a.txt",
    log:
        "logs/extra.log",
    params:
        out="results/extra",
    shell:
        "touch {params.out}/a.txt 2> {log}"
"""


def test_make_lint_fails_on_a_lint_finding(tmp_path):
    work = workflow_copy(tmp_path)
    with open(work / "rules" / "report.smk", "a") as fh:
        fh.write(HARD_CODED_FOLDER)
    proc = make_lint(work)
    assert proc.returncode != 0
    assert "would be left unchanged" in proc.stderr and "snakefmt would reformat" not in proc.stderr
    assert "make lint: snakemake --lint --configfile config/test.yaml:" in proc.stderr
    assert "Lints for rule extra" in proc.stderr and "Param out is a prefix of input or output file" in proc.stderr


def test_make_lint_fails_on_a_file_snakefmt_would_rewrite(tmp_path):
    work = workflow_copy(tmp_path)
    smk = work / "rules" / "score.smk"
    smk.write_text(smk.read_text().replace("    threads: 2\n", "    threads:   2\n"))
    proc = make_lint(work)
    assert proc.returncode != 0
    assert "[DIFF]" in proc.stderr or "would be changed" in proc.stderr
    assert "make lint: snakefmt would reformat" in proc.stderr
    assert "snakemake --lint --configfile config/test.yaml: no findings" in proc.stdout
