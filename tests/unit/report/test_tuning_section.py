"""The Tuning section's builders on tables worked by hand: the paired differences and their test,
the ranking before and after with its sentence, the best parameters' spread, the omission."""

import json

import numpy as np
import pandas as pd
import pytest

from dmlbench import stats
from dmlbench.config import validate
from dmlbench.report.tuning import (
    best_params_table,
    measures_table,
    needs_tuning,
    paired_table,
    ranking_change_table,
    ranking_sentence,
    space_table,
)


def _config(tuned=True):
    return validate(
        {
            "datasets": {"digits": {"source": "digits"}},
            "conditions": [{"dataset": "digits", "n_anomaly": [3]}],
            "cases": 4,
            "methods": {"conventional": {}, "arcface": {}},
            "tuning": {
                "trials": 6,
                "training": {"lr": {"low": 0.001, "high": 0.1, "log": True}},
                "methods": {"conventional": {}, "arcface": {"scale": {"low": 8, "high": 64, "log": True}}}
                if tuned
                else {},
            },
        }
    )


AUROC = {  # case -> method -> AUROC
    "conventional": [0.80, 0.82, 0.78, 0.84],
    "conventional_tuned": [0.90, 0.91, 0.89, 0.92],
    "arcface": [0.85, 0.86, 0.84, 0.87],
    "arcface_tuned": [0.86, 0.85, 0.86, 0.88],
}


def _metrics():
    rows = [
        {"dataset": "digits", "n_anomaly": 3, "method": m, "n_per_class": "all", "seed": s, "case": c,
         "scorer": "cosine_k1", "metric": "auroc", "value": v}
        for m, values in AUROC.items() for c, v in enumerate(values) for s in (0, 1)
    ]  # fmt: skip
    return pd.DataFrame(rows)


def _best():
    rows = [
        {"dataset": "digits", "n_anomaly": 3, "method": m, "case": c, "measure": "lofo_auroc", "n_normal": 7,
         "n_folds": 3, "params": json.dumps({"scale": 10.0 * (c + 1)} if m == "arcface" else {"training.lr": 0.01})}
        for m in ("conventional", "arcface") for c in range(4)
    ]  # fmt: skip
    return pd.DataFrame(rows)


def test_paired_differences_and_their_case_test():
    table = paired_table(_metrics(), _best(), _config(), "cosine_k1", "all").set_index("method")
    diff = np.subtract(AUROC["conventional_tuned"], AUROC["conventional"])
    assert table.loc["conventional", "difference"] == pytest.approx(diff.mean())
    assert table.loc["conventional", "default"] == pytest.approx(np.mean(AUROC["conventional"]))
    # cases 0..3 of 10 classes at 3 anomaly classes overlap: the test takes the independent ones
    expected = stats.case_test(pd.Series(diff), 3, 10)
    assert table.loc["conventional", "p"] == expected.p and table.loc["conventional", "cases"] == expected.n
    assert list(table["p_holm"]) == list(stats.holm(table["p"].to_numpy()))


def test_the_ranking_before_and_after_and_its_sentence():
    ranking = ranking_change_table(_metrics(), _config(), "cosine_k1", "all")
    row = ranking.iloc[0]
    assert row["ranking_default"] == "arcface > conventional" and row["ranking_tuned"] == "conventional > arcface"
    assert bool(row["changed"])
    assert ranking_sentence(ranking).startswith("Tuning changes which method is best in 1 of 1 conditions")
    assert "arcface → conventional" in ranking_sentence(ranking)
    same = ranking.assign(changed=False, best_tuned="arcface")
    assert ranking_sentence(same).startswith("Tuning does not change which method is best: in the one condition")


def test_best_parameters_as_a_distribution_over_cases_and_the_measures():
    table = best_params_table(_best()).set_index(["method", "parameter"])
    assert table.loc[("arcface", "scale")].tolist() == [4, 10.0, 25.0, 40.0]
    assert table.loc[("conventional", "training.lr"), "n"] == 4
    measures = measures_table(_best(), _config())
    assert measures["folds"].tolist() == ["3 of 7 normal classes per trial"]
    space = space_table(_config())
    assert space["range"].tolist() == ["[0.001, 0.1], log scale"] * 2 + ["[8, 64], log scale"] and set(
        space["trials"]
    ) == {6}


def test_the_section_is_omitted_saying_why_when_nothing_is_tuned():
    assert needs_tuning(_config()) is None
    assert "nothing is tuned" in needs_tuning(_config(tuned=False))
