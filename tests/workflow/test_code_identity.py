"""The pipeline's results name the code that made them: every run.json and every row of
runs.parquet carries the commit, the dirty flag and the hash of the package source that ran."""

import json

import pandas as pd

from dmlbench.config import load_config
from dmlbench.provenance import code_hash, git_state
from tests.workflow.conftest import ROOT


def test_runs_carry_the_code_identity(test_run):
    commit, dirty = git_state()
    runs = pd.read_parquet(test_run / "results/tables/runs.parquet")
    config = load_config(ROOT / "config" / "test.yaml")  # scored runs: every method, all images and annex sizes
    assert len(runs) == len(config["methods"]) * (len(config["n_per_class"]) + len(config["annex"]["sample_size"]))
    assert (runs["code_hash"] == code_hash()).all()
    assert (runs["git_commit"] == (commit or "")).all()
    assert str(runs["git_dirty"].dtype) == "boolean"
    assert runs["git_dirty"].isna().all() if dirty is None else (runs["git_dirty"] == dirty).all()
    for path in (test_run / "results/runs").rglob("run.json"):
        run = json.loads(path.read_text())
        assert run["code_hash"] == code_hash() and run["git_commit"] == commit and run["git_dirty"] == dirty
