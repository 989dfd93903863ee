"""Scores -> tidy tables under results/tables (columns documented in docs/tables.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DmlbenchError
from .metrics import auroc, class_mean_scores
from .runs import keys_from_path, scorer_columns

KEYS = ["dataset", "n_anomaly", "method", "n_per_class", "seed"]
METHOD_ORDER = ["conventional", "l2softmax", "arcface", "cosface", "sphereface", "centerloss"]


def _read_scores(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise DmlbenchError(f"{path} is not a readable parquet file ({exc}); delete it and rerun `dmlbench score`") from None


def tables_for_run(keys: dict, scores: pd.DataFrame) -> tuple[list[dict], list[dict]]:
    """Metric rows and class-distance rows of one scored run."""
    metrics, distances = [], []
    for case, df in scores.groupby("case", sort=True):
        base = {**keys, "case": int(case)}
        normal = ~df["is_anomaly"].to_numpy()
        labels = df["label"].to_numpy()
        accuracy = float((df["head_pred"].to_numpy()[normal] == labels[normal]).mean())
        metrics.append({**base, "scorer": "head", "metric": "accuracy", "value": accuracy})
        normal_classes = np.unique(labels[normal])
        names = df.groupby("label", sort=True)["class_name"].first()
        for scorer in scorer_columns(df):
            values = df[scorer].to_numpy()
            metrics.append({**base, "scorer": scorer, "metric": "auroc", "value": auroc(values, ~normal)})
            classes, means, normal_mean = class_mean_scores(values, labels, normal_classes)
            for c, mean in zip(classes, means):
                distances.append({**base, "scorer": scorer, "class_index": int(c), "class_name": str(names[c]),
                                  "role": "normal" if c in normal_classes else "anomaly",
                                  "mean_score": float(mean),
                                  "normalised": float(mean / normal_mean) if normal_mean > 0 else float("nan")})
    return metrics, distances


def _sorted(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Fixed row order so that repeated runs give byte-identical files."""
    df = df.astype({"n_anomaly": "int64", "seed": "int64", "case": "int64"}) if "case" in df else df
    return df.sort_values(keys, kind="mergesort").reset_index(drop=True)


def metrics_tables(score_paths: list[str | Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(metrics, class_distances) from the score parquets of many runs."""
    if not score_paths:
        raise DmlbenchError("no score files to aggregate; run `dmlbench score` first")
    metric_rows, distance_rows = [], []
    for path in sorted(map(Path, score_paths)):
        m, d = tables_for_run(keys_from_path(path), _read_scores(path))
        metric_rows += m
        distance_rows += d
    metrics = _sorted(pd.DataFrame(metric_rows), KEYS + ["case", "scorer", "metric"])
    distances = _sorted(pd.DataFrame(distance_rows), KEYS + ["case", "scorer", "class_index"])
    return metrics, distances


def runtime_table(benchmark_paths: list[str | Path], root: str | Path = "benchmarks") -> pd.DataFrame:
    """Wall time and peak memory per job from Snakemake's `benchmark:` TSV files
    (benchmarks/{rule}/{dataset}/a{n}/{method}/n{N}/s{seed}.tsv or benchmarks/{rule}/....tsv)."""
    rows = []
    for path in sorted(map(Path, benchmark_paths)):
        if not path.exists():  # a job that ran in an earlier invocation may have lost its file
            continue
        bench = pd.read_csv(path, sep="\t")
        rel = path.relative_to(root) if path.is_relative_to(root) else path
        row = {"rule": rel.parts[0], "job": rel.with_suffix("").as_posix()}
        try:
            row.update(keys_from_path(rel))
        except DmlbenchError:
            pass
        row["seconds"] = float(bench["s"].iloc[-1])
        rss = pd.to_numeric(bench.get("max_rss", pd.Series([np.nan])), errors="coerce").iloc[-1]
        row["max_rss_mb"] = float(rss)
        rows.append(row)
    cols = ["rule", "job", "dataset", "n_anomaly", "method", "n_per_class", "seed", "seconds", "max_rss_mb"]
    df = pd.DataFrame(rows, columns=cols)
    df = df.astype({"n_anomaly": "Int64", "seed": "Int64", "seconds": "float64", "max_rss_mb": "float64"})
    return df.sort_values(["rule", "job"], kind="mergesort").reset_index(drop=True)
