"""Synthetic aggregate-stage tables with known values, for tests of charts, figures and the report.

``make_tables(tables_dir)`` writes metrics.parquet, class_distances.parquet and
runtime.parquet in the aggregate stage's schema (docs/tables.md) and returns the frames.
Every value is a closed-form function of its keys (see ``auroc_value``), so tests can
compute expected summaries by hand.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from dmlbench.io import write_parquet

# Two conditions, two methods, three cases, two seeds; four classes per dataset.
CONDITIONS = [("digits", 1), ("fashion", 2)]
METHODS = ["conventional", "arcface"]  # deliberately not in the study's order here
CASES = [0, 1, 2]
SEEDS = [0, 1]
N_PER_CLASS = ["all", "50"]
SCORERS = ["cosine_k1", "euclidean_k1"]
CLASSES = ["zero", "one", "two", "three"]


def auroc_value(cond: int, method: str, n_per_class: str, seed: int, case: int, scorer: str) -> float:
    """Known AUROC: arcface +0.2, second condition +0.05, euclidean −0.1, n=50 −0.15."""
    value = 0.6 + 0.05 * cond + 0.02 * case + 0.01 * seed
    value += 0.2 if method == "arcface" else 0.0
    value -= 0.1 if scorer.startswith("euclidean") else 0.0
    value -= 0.15 if n_per_class != "all" else 0.0
    return round(value, 6)


def normalised_value(method: str, role: str, class_index: int, seed: int) -> float:
    """Known normalised distance: normal classes near 1, anomalies 2 (conventional) or 3 (arcface)."""
    if role == "normal":
        return 0.9 + 0.05 * class_index + 0.01 * seed
    return (3.0 if method == "arcface" else 2.0) + 0.1 * class_index + 0.01 * seed


def anomaly_classes(case: int, n_anomaly: int, n_classes: int = len(CLASSES)) -> set[int]:
    return {(case + j) % n_classes for j in range(n_anomaly)}


def metrics_frame() -> pd.DataFrame:
    rows = []
    for ci, (dataset, n_anomaly) in enumerate(CONDITIONS):
        for method in METHODS:
            for npc in N_PER_CLASS:
                for seed in SEEDS:
                    for case in CASES:
                        key = dict(
                            dataset=dataset, n_anomaly=n_anomaly, method=method, n_per_class=npc, seed=seed, case=case
                        )
                        for scorer in SCORERS:
                            rows.append(
                                {
                                    **key,
                                    "scorer": scorer,
                                    "metric": "auroc",
                                    "value": auroc_value(ci, method, npc, seed, case, scorer),
                                }
                            )
                        rows.append({**key, "scorer": "head", "metric": "accuracy", "value": 0.9})
    df = pd.DataFrame(rows)
    return df.astype({"n_anomaly": "int64", "seed": "int64", "case": "int64", "value": "float64"})


def class_distances_frame() -> pd.DataFrame:
    rows = []
    for dataset, n_anomaly in CONDITIONS:
        for method in METHODS:
            for npc in N_PER_CLASS:
                for seed in SEEDS:
                    for case in CASES:
                        anomalies = anomaly_classes(case, n_anomaly)
                        for scorer in SCORERS:
                            for ki, name in enumerate(CLASSES):
                                role = "anomaly" if ki in anomalies else "normal"
                                norm = normalised_value(method, role, ki, seed)
                                rows.append(
                                    dict(
                                        dataset=dataset,
                                        n_anomaly=n_anomaly,
                                        method=method,
                                        n_per_class=npc,
                                        seed=seed,
                                        case=case,
                                        scorer=scorer,
                                        class_index=ki,
                                        class_name=name,
                                        role=role,
                                        mean_score=0.2 * norm,
                                        normalised=norm,
                                    )
                                )
    df = pd.DataFrame(rows)
    return df.astype({"n_anomaly": "int64", "seed": "int64", "case": "int64", "class_index": "int64"})


def runtime_frame() -> pd.DataFrame:
    rows = [
        dict(
            rule="prepare",
            dataset="digits",
            n_anomaly=None,
            method=None,
            n_per_class=None,
            seed=None,
            seconds=1.5,
            max_rss_mb=200.0,
        ),
        dict(
            rule="train",
            dataset="digits",
            n_anomaly=1,
            method="arcface",
            n_per_class="all",
            seed=0,
            seconds=30.0,
            max_rss_mb=900.0,
        ),
        dict(
            rule="score",
            dataset="fashion",
            n_anomaly=2,
            method="conventional",
            n_per_class="50",
            seed=1,
            seconds=4.0,
            max_rss_mb=400.0,
        ),
    ]
    return pd.DataFrame(rows).astype(
        {
            "rule": "object",
            "dataset": "object",
            "n_anomaly": "Int64",
            "method": "object",
            "n_per_class": "object",
            "seed": "Int64",
            "seconds": "float64",
            "max_rss_mb": "float64",
        }
    )


def make_tables(tables_dir: str | Path) -> dict[str, pd.DataFrame]:
    """Write the three aggregate tables under ``tables_dir``; return them by table stem."""
    tables_dir = Path(tables_dir)
    frames = {
        "metrics": metrics_frame(),
        "class_distances": class_distances_frame(),
        "runtime": runtime_frame(),
    }
    for name, df in frames.items():
        write_parquet(tables_dir / f"{name}.parquet", df)
    return frames
