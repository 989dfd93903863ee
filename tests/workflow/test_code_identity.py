"""The pipeline's results name the code that made them: every run.json and every row of
runs.parquet carries the commit, the dirty flag and the hash of the package source that ran."""

import json

import pandas as pd

from dmlbench.provenance import code_hash, git_state


def test_runs_carry_the_code_identity(test_run):
    commit, dirty = git_state()
    runs = pd.read_parquet(test_run / "results/tables/runs.parquet")
    assert len(runs) == 4
    assert (runs["code_hash"] == code_hash()).all()
    assert (runs["git_commit"] == (commit or "")).all()
    assert str(runs["git_dirty"].dtype) == "boolean"
    assert runs["git_dirty"].isna().all() if dirty is None else (runs["git_dirty"] == dirty).all()
    for path in (test_run / "results/runs").rglob("run.json"):
        run = json.loads(path.read_text())
        assert run["code_hash"] == code_hash() and run["git_commit"] == commit and run["git_dirty"] == dirty
