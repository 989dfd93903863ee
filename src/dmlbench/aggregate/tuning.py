"""The tune jobs' files (results/tuning/.../best.json and trials.csv) as two tables for the report:

- tuning_trials: one row per finished trial - the run's keys, case, trial, state (complete or
  pruned), value, best_so_far (the best complete value of the case up to that trial), params
  (JSON), seconds, reason (why a trial was pruned);
- tuning_best: one row per case of a tune job - the run's keys, case, measure (lofo_auroc or
  map_at_r), n_normal, n_folds, folds (JSON: the held-out classes), value, trial, complete,
  pruned, params (JSON: the best parameters; {} when no trial completed: the defaults).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from dmlbench.errors import DmlbenchError
from dmlbench.io import write_parquet

KEYS = ["dataset", "n_anomaly", "method", "n_per_class", "seed"]


def trials_table(paths: list[str | Path]) -> pd.DataFrame:
    frames = []
    for path in paths:
        df = pd.read_csv(path, keep_default_na=False, na_values=[""])
        if df.empty:
            continue
        frames.append(df)
    if not frames:
        raise DmlbenchError(f"no trials in {len(paths)} trials.csv files; rerun the tune jobs")
    df = pd.concat(frames, ignore_index=True)
    df["n_per_class"] = df["n_per_class"].astype(str)
    df = df.sort_values([*KEYS, "case", "trial"]).reset_index(drop=True)
    complete = df["value"].where(df["state"] == "complete", -np.inf)
    df["best_so_far"] = complete.groupby([df[k] for k in [*KEYS, "case"]]).cummax().replace(-np.inf, np.nan)
    return df


def best_table(paths: list[str | Path]) -> pd.DataFrame:
    rows = []
    for path in paths:
        best = json.loads(Path(path).read_text())
        for case in best["cases"]:
            rows.append(
                {
                    **{k: best[k] for k in KEYS},
                    "case": case["case"],
                    "measure": case["measure"],
                    "n_normal": case["n_normal"],
                    "n_folds": len(case["folds"]),
                    "folds": json.dumps(case["folds"]),
                    "value": case["value"],
                    "trial": case["trial"],
                    "complete": case["complete"],
                    "pruned": case["pruned"],
                    "trials": best["trials"],
                    "params": json.dumps(case["params"], sort_keys=True),
                    "space": json.dumps(best["space"], sort_keys=True),
                }
            )
    df = pd.DataFrame(rows)
    df["n_per_class"] = df["n_per_class"].astype(str)
    return df


def write_tuning_tables(best: list[str | Path], trials: list[str | Path], out: str | Path) -> None:
    out = Path(out)
    write_parquet(out / "tuning_best.parquet", best_table(best))
    write_parquet(out / "tuning_trials.parquet", trials_table(trials))
