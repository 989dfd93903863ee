"""dmlbench as a user installs it: a wheel, built from a source distribution (as `python -m build`
and `pip install` of a release do), installed non-editable into a fresh virtual environment, run
from a folder that is not the source tree.

The fresh venv gets dmlbench from the wheel and nothing else: its third-party packages are this
venv's, seen through a .pth file that names this venv's site-packages as a plain path (so the
editable install's own .pth there, which points at src/, is never read) - no download, and the
test proves the installed package is the one that runs (its files, and run.json's code identity).
"""

import json
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

from dmlbench import __version__
from dmlbench.provenance import code_hash
from tests.workflow.conftest import ROOT, clean_env

pytestmark = pytest.mark.slow

PACKAGE = ROOT / "src" / "dmlbench"
#: What the build reads (pyproject.toml, MANIFEST.in): the Dockerfile copies the same.
BUILD_INPUTS = ("pyproject.toml", "MANIFEST.in", "README.md", "LICENSE", "CITATION.cff", "schemas", "src")
#: A score file of config/test.yaml: its target runs one prepare, one train and one score job.
SCORE_FILE = "results/scores/digits/a3/conventional/nall/s0.parquet"


def _run(cmd, cwd, timeout=600, **kwargs) -> subprocess.CompletedProcess:
    env = {k: v for k, v in clean_env().items() if k != "PYTHONPATH"}  # never the source tree
    proc = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, **kwargs
    )
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def runtime_files() -> list[str]:
    """Every file of the package that is not Python source (schema, tables, declarations), as
    paths inside the package: what must travel as package data."""
    return sorted(
        p.relative_to(PACKAGE.parent).as_posix()
        for p in PACKAGE.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".py", ".pyc")
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """dmlbench's wheel, built without network or build isolation from an sdist of a copy of the sources."""
    tmp = tmp_path_factory.mktemp("build")
    tree = tmp / "tree"
    tree.mkdir()
    for name in BUILD_INPUTS:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, tree / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"), symlinks=True)
        else:
            shutil.copy2(src, tree / name)
    build_sdist = "import sys; from setuptools import build_meta; print(build_meta.build_sdist(sys.argv[1]))"
    name = _run([sys.executable, "-c", build_sdist, tmp / "sdist"], cwd=tree).stdout.strip().splitlines()[-1]
    with tarfile.open(tmp / "sdist" / name) as tar:
        tar.extractall(tmp / "unpacked", filter="data")
    (unpacked,) = (tmp / "unpacked").iterdir()
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            tmp / "dist",
            ".",
        ],
        cwd=unpacked,
    )
    (whl,) = (tmp / "dist").glob("dmlbench-*.whl")
    return whl


@pytest.fixture(scope="module")
def fresh(tmp_path_factory, wheel) -> Path:
    """A fresh venv holding the wheel's dmlbench; its other packages are this venv's (a plain path)."""
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=venv.parent)
    _run(
        [sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "--no-deps", "--no-index", wheel],
        cwd=venv.parent,
    )
    purelib = _run(
        [venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=venv.parent
    )
    deps = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    Path(purelib.stdout.strip(), "zz_dmlbench_test_deps.pth").write_text("\n".join(deps) + "\n")
    return venv


def test_the_wheel_holds_the_schema_and_every_runtime_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [f for f in runtime_files() if f not in names]
    assert not missing, (
        f"package files missing from the wheel (add their kind to package-data in pyproject.toml): {missing}"
    )
    assert "dmlbench/config/config.schema.yaml" in names
    # the one copy: the package's schema is the catalog path's file, byte for byte
    assert (
        zipfile.ZipFile(wheel).read("dmlbench/config/config.schema.yaml")
        == (ROOT / "schemas" / "config.schema.yaml").read_bytes()
    )
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)


def test_the_installed_package_validates_lists_and_dry_runs_outside_the_source_tree(fresh, tmp_path):
    py, cli = fresh / "bin" / "python", fresh / "bin" / "dmlbench"
    where = _run(
        [
            py,
            "-c",
            "import dmlbench, dmlbench.config.validation as v; print(dmlbench.__file__); print(v.schema_path())",
        ],
        cwd=tmp_path,
    )
    package_file, schema = where.stdout.split()
    assert Path(package_file).is_relative_to(fresh) and Path(schema).is_relative_to(fresh)
    assert not Path(schema).is_symlink()  # a file of its own in the install
    assert _run([cli, "--version"], cwd=tmp_path).stdout.strip() == f"dmlbench {__version__}"
    validated = _run([cli, "validate", "--config", ROOT / "config" / "test.yaml"], cwd=tmp_path).stdout
    assert "methods:" in validated and "arcface_margin0.3" in validated  # defaults filled and sweeps expanded
    assert "arcface: Additive angular margin" in _run([cli, "list", "heads"], cwd=tmp_path).stdout
    # the study's published numbers travel as package data (the Reproduction section reads them)
    study = _run(
        [
            py,
            "-c",
            "from dmlbench.config.references import reference_rows, study_file; print(study_file()); "
            "print(len(reference_rows()))",
        ],
        cwd=tmp_path,
    ).stdout.split()
    assert Path(study[0]).is_relative_to(fresh) and study[1] == "56"
    dry = _run(
        [
            py,
            "-m",
            "snakemake",
            "-s",
            ROOT / "Snakefile",
            "--directory",
            tmp_path,
            "--configfile",
            ROOT / "config" / "test.yaml",
            "-n",
        ],
        cwd=tmp_path,
    )
    assert "rule train:" in dry.stdout and "rule score:" in dry.stdout


def test_the_installed_package_trains_and_scores_a_job(fresh, tmp_path):
    """One train and one score job of config/test.yaml through Snakemake, every job run by the
    fresh venv's Python: run.json says the code was not a git checkout's, and its hash equals
    the sources' (the wheel carried every .py and .yaml file unchanged)."""
    _run(
        [
            fresh / "bin" / "python",
            "-m",
            "snakemake",
            "-s",
            ROOT / "Snakefile",
            "--directory",
            tmp_path,
            "--configfile",
            ROOT / "config" / "test.yaml",
            "--cores",
            "2",
            SCORE_FILE,
        ],
        cwd=tmp_path,
        timeout=1200,
    )
    assert (tmp_path / SCORE_FILE).is_file()
    run = json.loads((tmp_path / "results/runs/digits/a3/conventional/nall/s0/run.json").read_text())
    assert run["git_commit"] is None and run["git_dirty"] is None  # not the checkout's src/
    assert run["code_hash"] == code_hash(PACKAGE)
