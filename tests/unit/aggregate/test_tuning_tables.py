"""The tune jobs' files as tables: best-so-far per case worked by hand, pruned trials not counted."""

import json

import pandas as pd

from dmlbench.aggregate.tuning import best_table, trials_table

KEYS = {"dataset": "digits", "n_anomaly": 3, "method": "arcface", "n_per_class": "all", "seed": 0}


def test_best_so_far_is_the_running_best_complete_value_per_case(tmp_path):
    rows = [
        {**KEYS, "case": 0, "trial": 0, "state": "complete", "value": 0.7},
        {**KEYS, "case": 0, "trial": 1, "state": "pruned", "value": None},
        {**KEYS, "case": 0, "trial": 2, "state": "complete", "value": 0.6},
        {**KEYS, "case": 0, "trial": 3, "state": "complete", "value": 0.9},
        {**KEYS, "case": 1, "trial": 0, "state": "pruned", "value": None},
        {**KEYS, "case": 1, "trial": 1, "state": "complete", "value": 0.5},
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "trials.csv", index=False)
    df = trials_table([tmp_path / "trials.csv"])
    assert df["best_so_far"].tolist()[:4] == [0.7, 0.7, 0.7, 0.9]
    assert pd.isna(df["best_so_far"].iloc[4]) and df["best_so_far"].iloc[5] == 0.5
    assert df["n_per_class"].tolist() == ["all"] * 6


def test_best_table_has_one_row_per_case_with_its_measure(tmp_path):
    best = {
        **KEYS,
        "trials": 4,
        "space": {"scale": {"low": 8, "high": 64}},
        "cases": [
            {"case": 0, "measure": "lofo_auroc", "n_normal": 7, "folds": ["8", "4"], "value": 0.9, "trial": 3,
             "complete": 3, "pruned": 1, "params": {"scale": 20.0}},
            {"case": 1, "measure": "map_at_r", "n_normal": 2, "folds": [], "value": None, "trial": None,
             "complete": 0, "pruned": 4, "params": {}},
        ],
    }  # fmt: skip
    (tmp_path / "best.json").write_text(json.dumps(best))
    df = best_table([tmp_path / "best.json"])
    assert df["measure"].tolist() == ["lofo_auroc", "map_at_r"] and df["n_folds"].tolist() == [2, 0]
    assert json.loads(df["params"][0]) == {"scale": 20.0} and json.loads(df["params"][1]) == {}
