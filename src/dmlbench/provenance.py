"""Which code made a result: the git commit, whether the checkout had uncommitted changes, a
hash of the dmlbench package source that ran, and the versions of the packages that can change a
number (:func:`package_versions`).

The commit alone hides uncommitted edits: ``git_dirty`` says there were some, and ``code_hash``
says which package source ran — also without git (a container, a pip install), because it is
computed from the package's own files. Two runs with the same ``code_hash`` ran the same .py and
.yaml files of dmlbench. run.json carries all three (dmlbench.train.run), runs.parquet too
(dmlbench.aggregate.tables.runs_table).
"""

from __future__ import annotations

import functools
import hashlib
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from dmlbench import __version__

#: The installed dmlbench package (src/dmlbench in a checkout, site-packages/dmlbench otherwise).
PACKAGE_DIR = Path(__file__).resolve().parent
HASHED_SUFFIXES = (".py", ".yaml")
GIT_TIMEOUT_S = 10
#: The distributions (PyPI names) whose version can change a result: training (torch, torchvision,
#: fastai, pytorch-metric-learning), the numbers after it (numpy, SciPy, scikit-learn, pandas) and
#: the workflow that ran the jobs (snakemake). run.json, runs.parquet, the run cache's key and the
#: report's reproducibility table list each one.
PACKAGES = (
    "torch",
    "torchvision",
    "fastai",
    "pytorch-metric-learning",
    "numpy",
    "scipy",
    "scikit-learn",
    "pandas",
    "snakemake",
)


@functools.cache
def package_versions() -> dict[str, str | None]:
    """dmlbench's and Python's version, then each of :data:`PACKAGES` as installed (from its
    metadata: no import, so no torch; None where it is not installed). Read once per process."""
    out: dict[str, str | None] = {"dmlbench": __version__, "python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def code_hash(package_dir: str | Path = PACKAGE_DIR) -> str:
    """sha256 (64 hex digits) over the package's .py and .yaml files, in the order of their
    sorted relative paths: for each, the length-prefixed relative path (POSIX form) and the
    length-prefixed bytes. Byte caches (__pycache__) and other files are left out."""
    root = Path(package_dir)
    files = sorted(
        (p.relative_to(root).as_posix(), p)
        for p in root.rglob("*")
        if p.suffix in HASHED_SUFFIXES and p.is_file() and "__pycache__" not in p.relative_to(root).parts
    )
    digest = hashlib.sha256()
    for rel, path in files:
        name, data = rel.encode(), path.read_bytes()
        digest.update(len(name).to_bytes(8, "big") + name)
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()


def _git(args: list[str], cwd: Path) -> str | None:
    """stdout of ``git args`` run in ``cwd``; None when git is missing, fails or times out."""
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=GIT_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def git_state(package_dir: str | Path = PACKAGE_DIR) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the git checkout the package source belongs to; (None, None) outside git.

    dirty: ``git status --porcelain`` lists something (modified, staged, deleted or untracked
    files that .gitignore does not exclude) anywhere in the checkout. A package that git does not
    track (installed into a virtual environment inside some other checkout) is outside git."""
    cwd = Path(package_dir)
    if not (_git(["ls-files", "--", "__init__.py"], cwd) or "").strip():
        return None, None
    commit = (_git(["rev-parse", "HEAD"], cwd) or "").strip() or None
    status = _git(["status", "--porcelain"], cwd)
    return commit, (None if status is None else bool(status.strip()))


def code_provenance(package_dir: str | Path = PACKAGE_DIR) -> dict:
    """run.json's identity of the code: ``git_commit`` (str or None), ``git_dirty`` (bool or None
    outside git) and ``code_hash`` (see :func:`code_hash`)."""
    commit, dirty = git_state(package_dir)
    return {"git_commit": commit, "git_dirty": dirty, "code_hash": code_hash(package_dir)}
