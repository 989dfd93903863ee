"""Results identify the code that made them: the package source hash (by its documented formula,
stable across copies, changed by any source edit), the git commit and dirty flag on a temporary
repository, run.json written by train_job, and the columns of runs.parquet."""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import subprocess
from importlib import metadata

import numpy as np
import pandas as pd
import pytest

from dmlbench import __version__
from dmlbench.aggregate.tables import RUNS_COLUMNS, VERSION_COLUMNS, runs_table
from dmlbench.provenance import PACKAGE_DIR, PACKAGES, code_hash, code_provenance, git_state, package_versions

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git command")


def _copy_package(tmp_path):
    dst = tmp_path / "dmlbench"
    shutil.copytree(PACKAGE_DIR, dst, ignore=shutil.ignore_patterns("__pycache__"))
    return dst


# --------------------------------------------------------------------------- code hash
def test_code_hash_follows_its_formula(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "heads").mkdir(parents=True)
    (pkg / "b.py").write_bytes(b"x = 1\n")
    (pkg / "heads" / "a.py").write_bytes(b"")
    (pkg / "demo.yaml").write_bytes(b"k: v\n")
    (pkg / "notes.txt").write_bytes(b"not source")
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "b.cpython-311.py").write_bytes(b"cache")  # a .py name, but a cache folder
    expected = hashlib.sha256()
    for rel, data in [(b"b.py", b"x = 1\n"), (b"demo.yaml", b"k: v\n"), (b"heads/a.py", b"")]:  # sorted paths
        expected.update(len(rel).to_bytes(8, "big") + rel + len(data).to_bytes(8, "big") + data)
    assert code_hash(pkg) == expected.hexdigest()


def test_code_hash_is_stable_and_independent_of_the_folder(tmp_path):
    copy = _copy_package(tmp_path)
    assert code_hash(copy) == code_hash(PACKAGE_DIR) == code_hash()
    assert len(code_hash(copy)) == 64
    (copy / "__pycache__").mkdir(exist_ok=True)
    (copy / "__pycache__" / "training.cpython-311.pyc").write_bytes(b"\0" * 10)
    (copy / "README.txt").write_text("not source")
    assert code_hash(copy) == code_hash(PACKAGE_DIR)


def test_code_hash_changes_with_any_source_edit(tmp_path):
    copy = _copy_package(tmp_path)
    original = code_hash(copy)
    source = copy / "heads" / "arcface.py"
    text = source.read_bytes()
    source.write_bytes(text.replace(b"0.5", b"0.6", 1))  # one changed value
    assert code_hash(copy) != original
    source.write_bytes(text + b"\n")  # one added newline
    assert code_hash(copy) != original
    source.write_bytes(text)
    assert code_hash(copy) == original
    (copy / "extra.py").write_text("")  # a new, empty module
    assert code_hash(copy) != original
    (copy / "extra.py").unlink()
    source.rename(copy / "heads" / "arcface2.py")  # same bytes under another name
    assert code_hash(copy) != original


# --------------------------------------------------------------------------- git state
def _git(cwd, *args):
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@needs_git
def test_git_commit_and_dirty_flag_on_a_temporary_repository(tmp_path):
    repo = tmp_path / "repo"
    pkg = repo / "src" / "dmlbench"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "training.py").write_text("A = 1\n")
    (repo / ".gitignore").write_text("results/\n")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "first")
    head = _git(repo, "rev-parse", "HEAD")
    assert git_state(pkg) == (head, False)
    (repo / "results").mkdir()
    (repo / "results" / "metrics.parquet").write_text("ignored output")
    assert git_state(pkg) == (head, False)  # ignored files are not changes
    (pkg / "training.py").write_text("A = 2\n")
    assert git_state(pkg) == (head, True)  # a modified tracked file
    _git(repo, "checkout", "--", "src/dmlbench/training.py")
    assert git_state(pkg) == (head, False)
    (repo / "notes.md").write_text("new")
    assert git_state(pkg) == (head, True)  # an untracked file, outside the package
    _git(repo, "add", "notes.md")
    _git(repo, "commit", "-qm", "second")
    second = _git(repo, "rev-parse", "HEAD")
    assert second != head and git_state(pkg) == (second, False)
    record = code_provenance(pkg)
    assert record == {"git_commit": second, "git_dirty": False, "code_hash": code_hash(pkg)}


@needs_git
def test_outside_git_and_untracked_packages_have_no_commit(tmp_path):
    plain = _copy_package(tmp_path / "plain")
    assert git_state(plain) == (None, None)
    assert code_provenance(plain) == {"git_commit": None, "git_dirty": None, "code_hash": code_hash(PACKAGE_DIR)}
    # installed into an ignored virtual environment inside some checkout: not that checkout's code
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / ".gitignore").write_text(".venv/\n")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "first")
    site = repo / ".venv" / "lib" / "site-packages"
    site.mkdir(parents=True)
    assert git_state(_copy_package(site)) == (None, None)


# --------------------------------------------------------------------------- run.json and runs.parquet
def test_train_job_writes_the_code_identity(tmp_path):
    from dmlbench.data.sources import Dataset
    from dmlbench.train.run import train_job

    rng = np.random.default_rng(0)
    ds = Dataset(
        rng.integers(0, 256, (60, 8, 8, 1), dtype=np.uint8),
        np.arange(60) % 3,
        rng.integers(0, 256, (12, 8, 8, 1), dtype=np.uint8),
        np.arange(12) % 3,
        ["a", "b", "c"],
    )
    spec = {
        "dataset": "toy",
        "source": "toy",
        "class_order": "canonical",
        "flip": False,
        "n_anomaly": 1,
        "method": "conventional",
        "method_params": {},
        "n_per_class": "all",
        "seed": 0,
        "cases": 1,
        "model": {"backbone": "small_cnn", "embedding_dim": 4},
        "training": {
            "epochs": 1,
            "batch_size": 16,
            "lr": 0.01,
            "weight_decay": 0.0,
            "val_fraction": 0.2,
            "crop_padding": 0,
        },
    }
    train_job(ds, spec, tmp_path, device="cpu", threads=1)
    run = json.loads((tmp_path / "run.json").read_text())
    assert {k: run[k] for k in ("git_commit", "git_dirty", "code_hash")} == code_provenance()
    assert run["code_hash"] == code_hash(PACKAGE_DIR)
    # every package that can change a number, as installed, and the CUDA and cuDNN torch was built with
    import torch

    assert set(run["versions"]) == {"dmlbench", "python", *PACKAGES, "cuda", "cudnn"}  # (run.json sorts its keys)
    assert {k: run["versions"][k] for k in PACKAGES} == {k: metadata.version(k) for k in PACKAGES}
    assert run["versions"]["cuda"] == torch.version.cuda
    assert run["device"].startswith("cpu") and run["device_index"] is None


def test_package_versions_are_the_installed_distributions():
    versions = package_versions()
    assert versions["dmlbench"] == __version__ and versions["python"] == platform.python_version()
    assert versions["scikit-learn"] == metadata.version("scikit-learn")
    assert versions["torch"].split("+")[0] == __import__("torch").__version__.split("+")[0]
    assert all(versions[name] for name in PACKAGES)  # the venv has every one of them


def _run_json(root, method, **extra):
    path = root / "runs" / "toy" / "a1" / method / "nall" / "s0" / "run.json"
    path.parent.mkdir(parents=True)
    path.write_text(
        json.dumps(
            {
                "device": "cpu (x86_64)",
                "threads": 1,
                "versions": {"torch": "2"},
                "spec": {"training": {"epochs": 1}},
                "wall_seconds": 1.5,
                **extra,
            }
        )
    )
    return path


def test_runs_table_carries_the_code_identity(tmp_path):
    paths = [
        _run_json(tmp_path, "arcface", git_commit="abc123", git_dirty=True, code_hash="f" * 64),
        _run_json(tmp_path, "cosface", git_commit="abc123", git_dirty=False, code_hash="e" * 64),
        _run_json(tmp_path, "conventional"),
    ]  # a run.json written before these keys existed
    runs = runs_table(paths)
    assert list(runs.columns) == RUNS_COLUMNS
    i = RUNS_COLUMNS.index("git_commit")
    assert RUNS_COLUMNS[i : i + 3] == ["git_commit", "git_dirty", "code_hash"]
    assert str(runs["git_dirty"].dtype) == "boolean"
    by_method = runs.set_index("method")
    assert by_method.loc[["arcface", "cosface"], "git_dirty"].tolist() == [True, False]
    assert pd.isna(by_method.loc["conventional", "git_dirty"])
    assert by_method["code_hash"].to_dict() == {"arcface": "f" * 64, "conventional": "", "cosface": "e" * 64}
    assert by_method["git_commit"].to_dict() == {"arcface": "abc123", "conventional": "", "cosface": "abc123"}


def test_runs_table_lists_every_version_and_the_gpu(tmp_path):
    versions = {"python": "3.11.7", "dmlbench": "0.1.0", **{name: f"{i}.0" for i, name in enumerate(PACKAGES)}}
    paths = [
        _run_json(
            tmp_path,
            "arcface",
            versions={**versions, "cuda": "12.4", "cudnn": "90100"},
            device="NVIDIA H100 80GB HBM3",
            device_index=2,
            spec={"training": {"epochs": 1, "deterministic": True}},
        ),
        _run_json(tmp_path, "conventional", versions={**versions, "cuda": None, "cudnn": None}),
    ]
    runs = runs_table(paths).set_index("method")
    assert VERSION_COLUMNS == ["python", "dmlbench", *PACKAGES, "cuda", "cudnn"]
    assert runs.loc["arcface", VERSION_COLUMNS].tolist() == [*versions.values(), "12.4", "90100"]
    assert runs.loc["conventional", ["cuda", "cudnn"]].tolist() == ["", ""]  # a CPU-only torch
    assert runs.loc["arcface", "device_index"] == 2 and pd.isna(runs.loc["conventional", "device_index"])
    assert runs["deterministic"].to_dict() == {"arcface": True, "conventional": False}
    # the report's reproducibility table shows each of them, "—" where none is recorded
    from dmlbench.report.reproducibility import provenance_table

    shown = provenance_table(runs.reset_index()).set_index("property")["value"]
    assert shown["pytorch-metric-learning"] == versions["pytorch-metric-learning"]
    assert shown["cudnn"] == "90100" and shown["device_index"] == "2"
    assert shown["device"] == "NVIDIA H100 80GB HBM3, cpu (x86_64)"
