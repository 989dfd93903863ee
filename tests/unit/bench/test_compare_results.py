"""bench.compare_results: two results folders the same but for provenance and timing are identical;
a changed value, a changed figure datum or a missing file is reported."""

import json

import pandas as pd

from bench.compare_results import compare, ignored


def results(root, auroc=0.9, wall=1.0, commit="abc", fig_value=0.5):
    (root / "tables").mkdir(parents=True)
    (root / "figures").mkdir()
    metrics = pd.DataFrame({"method": ["arcface"], "metric": ["auroc"], "value": [auroc]})
    metrics.to_parquet(root / "tables" / "metrics.parquet")
    runs = pd.DataFrame({"method": ["arcface"], "git_commit": [commit], "wall_seconds": [wall], "epochs": [3]})
    runs.to_csv(root / "tables" / "tbl-runs.csv", index=False)
    spec = {"datasets": {f"data-{commit}": [{"method": "arcface", "value": fig_value, "wall_seconds": wall}]}}
    (root / "figures" / "fig-x.vl.json").write_text(json.dumps(spec))
    return root


def test_provenance_and_timing_are_left_out(tmp_path):
    a = results(tmp_path / "a")
    b = results(tmp_path / "b", wall=2.0, commit="def")
    assert compare(a, b) == 0
    assert ignored("runtime", "share") and not ignored("tbl-cosine-euclidean", "share")


def test_a_changed_value_a_changed_figure_and_a_missing_file_are_reported(tmp_path, capsys):
    a = results(tmp_path / "a")
    assert compare(a, results(tmp_path / "b", auroc=0.8)) == 1
    assert compare(a, results(tmp_path / "c", fig_value=0.6)) == 1
    d = results(tmp_path / "d")
    (d / "tables" / "tbl-runs.csv").unlink()
    assert compare(a, d) == 1
    assert "MISSING  tables/tbl-runs.csv" in capsys.readouterr().out
