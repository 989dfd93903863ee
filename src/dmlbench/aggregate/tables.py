"""Scores -> tidy tables under results/tables (columns documented in docs/tables.md)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from dmlbench.config.scorers import scorer_columns
from dmlbench.errors import DmlbenchError
from dmlbench.io import write_parquet
from dmlbench.layout import group_keys, keys_from_path
from dmlbench.metrics import detection_metrics, normalised_distances
from dmlbench.phases import PHASES
from dmlbench.provenance import PACKAGES
from dmlbench.stats import ranking_table, summary_table

KEYS = ["dataset", "n_anomaly", "method", "n_per_class", "seed"]
#: Scorers whose worst misses are listed (the report's nearest-neighbour scorers).
MISS_SCORERS = ("cosine_k1", "euclidean_k1")
N_MISSES = 10
WORST_MISS_COLUMNS = KEYS + ["case", "scorer", "rank", "test_index", "label", "class_name", "score", "nearest_index"]


def _read_scores(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise DmlbenchError(
            f"{path} is not a readable parquet file ({exc}); delete it and rerun `dmlbench score`"
        ) from None


def tables_for_run(keys: dict, scores: pd.DataFrame) -> tuple[list[dict], list[dict]]:
    """Metric rows and class-distance rows of one scored run."""
    metrics, distances = [], []
    for case, df in scores.groupby("case", sort=True):
        base = {**keys, "case": int(case)}
        normal = ~df["is_anomaly"].to_numpy()
        labels = df["label"].to_numpy()
        if "head_pred" in df:  # a head without logits (pair or tuple loss) predicts no class
            accuracy = float((df["head_pred"].to_numpy()[normal] == labels[normal]).mean())
            metrics.append({**base, "scorer": "head", "metric": "accuracy", "value": accuracy})
        normal_classes = np.unique(labels[normal])
        names = df.groupby("label", sort=True)["class_name"].first()
        for scorer in scorer_columns(df):
            values = df[scorer].to_numpy()
            for name, value in detection_metrics(values, ~normal).items():
                metrics.append({**base, "scorer": scorer, "metric": name, "value": value})
            classes, means, _, normalised = normalised_distances(values, labels, normal_classes)
            for c, mean, ratio in zip(classes, means, normalised):
                distances.append(
                    {
                        **base,
                        "scorer": scorer,
                        "class_index": int(c),
                        "class_name": str(names[c]),
                        "role": "normal" if c in normal_classes else "anomaly",
                        "mean_score": float(mean),
                        "normalised": float(ratio),
                    }
                )
    return metrics, distances


def _sorted(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Fixed row order so that repeated runs give byte-identical files."""
    df = df.astype({"n_anomaly": "int64", "seed": "int64", "case": "int64"}) if "case" in df else df
    return df.sort_values(keys, kind="mergesort").reset_index(drop=True)


def worst_misses_for_run(keys: dict, scores: pd.DataFrame, scorers=MISS_SCORERS, n: int = N_MISSES) -> list[dict]:
    """Per case and scorer of ``scorers`` present in ``scores``: the ``n`` anomalies with the lowest
    scores (ties broken by test_index), with the train-split index of their nearest reference
    image from the ``{distance}_nn`` column."""
    rows = []
    for case, df in scores.groupby("case", sort=True):
        anomalies = df[df["is_anomaly"].to_numpy(dtype=bool)]
        for scorer in scorers:
            nn_col = f"{scorer.split('_k')[0]}_nn"
            if scorer not in df.columns or nn_col not in df.columns:
                continue
            worst = anomalies.sort_values([scorer, "test_index"], kind="mergesort").head(n)
            for rank, r in enumerate(worst.itertuples(index=False), start=1):
                rows.append(
                    {
                        **keys,
                        "case": int(case),
                        "scorer": scorer,
                        "rank": rank,
                        "test_index": int(getattr(r, "test_index")),
                        "label": int(getattr(r, "label")),
                        "class_name": str(getattr(r, "class_name")),
                        "score": float(getattr(r, scorer)),
                        "nearest_index": int(getattr(r, nn_col)),
                    }
                )
    return rows


def _run_tables(score_paths: list[str | Path]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(metrics, class_distances, worst_misses), reading every score file once."""
    if not score_paths:
        raise DmlbenchError("no score files to aggregate; run `dmlbench score` first")
    metric_rows, distance_rows, miss_rows = [], [], []
    seen: dict[tuple, Path] = {}
    for path in sorted(map(Path, score_paths)):
        keys = keys_from_path(path)
        run = tuple(sorted(keys.items()))
        if run in seen:
            raise DmlbenchError(
                f"score file {path} is given twice (also as {seen[run]}): the same run "
                f"({', '.join(f'{k} {v}' for k, v in keys.items())}) would be counted twice in metrics and "
                f"summary; pass each score file once (a config with a repeated condition or n_anomaly does this)"
            )
        seen[run] = path
        scores = _read_scores(path)
        m, d = tables_for_run(keys, scores)
        metric_rows += m
        distance_rows += d
        miss_rows += worst_misses_for_run(keys, scores)
    metrics = _sorted(pd.DataFrame(metric_rows), KEYS + ["case", "scorer", "metric"])
    distances = _sorted(pd.DataFrame(distance_rows), KEYS + ["case", "scorer", "class_index"])
    misses = pd.DataFrame(miss_rows, columns=WORST_MISS_COLUMNS).astype(
        {
            "n_anomaly": "int64",
            "seed": "int64",
            "case": "int64",
            "rank": "int64",
            "test_index": "int64",
            "label": "int64",
            "score": "float64",
            "nearest_index": "int64",
        }
    )
    misses = _sorted(misses, KEYS + ["case", "scorer", "rank"])
    return metrics, distances, misses


def metrics_tables(score_paths: list[str | Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(metrics, class_distances) from the score parquets of many runs."""
    metrics, distances, _ = _run_tables(score_paths)
    return metrics, distances


def build_tables(
    score_paths: list[str | Path],
    benchmark_paths: list[str | Path],
    benchmark_root: str | Path = "benchmarks",
    run_paths: list[str | Path] = (),
    job_paths: list[str | Path] = (),
    job_root: str | Path = "results/jobs",
) -> dict[str, pd.DataFrame]:
    """Every table of :data:`TABLE_NAMES` (columns in docs/tables.md), built in memory."""
    metrics, distances, misses = _run_tables(score_paths)
    return {
        "metrics": metrics,
        "class_distances": distances,
        "summary": summary_table(metrics),
        "ranking": ranking_table(metrics, metric="auroc"),
        "worst_misses": misses,
        "runtime": runtime_table(benchmark_paths, benchmark_root, job_paths, job_root),
        "runs": runs_table(run_paths),
    }


def write_tables(
    score_paths: list[str | Path],
    benchmark_paths: list[str | Path],
    benchmark_root: str | Path,
    out_dir: str | Path,
    run_paths: list[str | Path] = (),
    job_paths: list[str | Path] = (),
    job_root: str | Path = "results/jobs",
) -> dict[str, pd.DataFrame]:
    """Build every table, then write each as ``out_dir/<name>.parquet`` (atomically, one by one,
    after all were built, so an error leaves the previous files untouched). Returns the tables."""
    tables = build_tables(score_paths, benchmark_paths, benchmark_root, run_paths, job_paths, job_root)
    for name, df in tables.items():
        write_parquet(Path(out_dir) / f"{name}.parquet", df)
    return tables


#: runtime.parquet's phase columns, in the order of dmlbench.phases.PHASES.
PHASE_COLUMNS = [f"{phase}_seconds" for phase in PHASES]
RUNTIME_COLUMNS = [
    "rule",
    "job",
    "dataset",
    "n_anomaly",
    "method",
    "n_per_class",
    "seed",
    "runs",
    "seconds",
    "cpu_seconds",
    "max_rss_mb",
] + PHASE_COLUMNS


def _job_keys(rel: Path) -> dict:
    """The keys of a job path below benchmarks/ (or results/jobs/): a run's, or a job's of all methods."""
    keys = group_keys(rel.with_suffix("").as_posix().split("/", 1)[-1])  # a job path below {rule}/
    if keys is not None:
        return keys
    try:
        return keys_from_path(rel)
    except DmlbenchError:
        return {}


def _job_records(job_paths: list[str | Path], root: str | Path) -> dict[str, dict]:
    """The job records (results/jobs/{rule}/....json) by job (their path below ``root``, no suffix)."""
    records = {}
    for path in map(Path, job_paths):
        if not path.exists():
            continue
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DmlbenchError(f"{path} is not a readable job record ({exc}); delete it and rerun its job") from None
        rel = path.relative_to(root) if path.is_relative_to(root) else path
        records[rel.with_suffix("").as_posix()] = record
    return records


def runtime_table(
    benchmark_paths: list[str | Path],
    root: str | Path = "benchmarks",
    job_paths: list[str | Path] = (),
    job_root: str | Path = "results/jobs",
) -> pd.DataFrame:
    """Wall time, CPU time, peak memory and where the time went, per job, from Snakemake's
    `benchmark:` TSV files (benchmarks/{rule}/{dataset}/a{n}/n{N}/s{seed}.tsv or
    benchmarks/{rule}/....tsv) and the train and score jobs' records (results/jobs/{rule}/....json,
    dmlbench.train.job).

    ``seconds`` is the benchmark's wall time; the ``{phase}_seconds`` columns split it (wall
    seconds per phase of dmlbench.phases.PHASES, from the job record), ``other_seconds`` being
    what the record does not account for (the shell around the process included), so the phases
    add up to ``seconds``. ``cpu_seconds``: the process's CPU time from its record, else the
    benchmark's ``cpu_time``. Jobs without a record have no phases (NaN) and ``runs`` <NA>."""
    records = _job_records(job_paths, job_root)
    rows = []
    for path in sorted(map(Path, benchmark_paths)):
        if not path.exists():  # a job that ran in an earlier invocation may have lost its file
            continue
        bench = pd.read_csv(path, sep="\t")
        rel = path.relative_to(root) if path.is_relative_to(root) else path
        job = rel.with_suffix("").as_posix()
        row = {"rule": rel.parts[0], "job": job, **_job_keys(rel)}
        row["seconds"] = float(bench["s"].iloc[-1])
        rss = pd.to_numeric(bench.get("max_rss", pd.Series([np.nan])), errors="coerce").iloc[-1]
        row["max_rss_mb"] = float(rss)
        cpu = pd.to_numeric(bench.get("cpu_time", pd.Series([np.nan])), errors="coerce").iloc[-1]
        record = records.get(job)
        if record is not None:
            phases = record.get("phases", {})
            measured = {p: float(phases[p]["wall_s"]) for p in PHASES if p in phases and p != "other"}
            for p in PHASES:
                row[f"{p}_seconds"] = measured.get(p, 0.0)
            row["other_seconds"] = max(row["seconds"] - sum(measured.values()), 0.0)
            row["runs"] = len(record.get("runs", []))
            cpu = record.get("cpu_s", cpu)
            # the benchmark samples memory: the process's own peak where it is larger
            row["max_rss_mb"] = float(np.nanmax([row["max_rss_mb"], record.get("max_rss_mb", np.nan)]))
        row["cpu_seconds"] = float(cpu)
        rows.append(row)
    df = pd.DataFrame(rows, columns=RUNTIME_COLUMNS)
    df = df.astype(
        {
            "n_anomaly": "Int64",
            "seed": "Int64",
            "runs": "Int64",
            "seconds": "float64",
            "cpu_seconds": "float64",
            "max_rss_mb": "float64",
            **{c: "float64" for c in PHASE_COLUMNS},
        }
    )
    return df.sort_values(["rule", "job"], kind="mergesort").reset_index(drop=True)


#: runs.parquet's software columns: run.json's versions (dmlbench.train.device.versions).
VERSION_COLUMNS = ["python", "dmlbench", *PACKAGES, "cuda", "cudnn"]
RUNS_COLUMNS = KEYS + [
    "device",
    "device_index",
    "threads",
    "precision",
    "compiled",
    "deterministic",
    *VERSION_COLUMNS,
    "git_commit",
    "git_dirty",
    "code_hash",
    "epochs",
    "batch_size",
    "lr",
    "final_lambda",
    "wall_seconds",
]


def final_lambda(run: dict) -> float:
    """The largest λ at the last training step over a job's cases (SphereFace's head state in
    run.json; the cases differ only where their training sets, hence their steps, differ), NaN
    for a head without λ."""
    values = [case.get("head_state", {}).get("lambda") for case in run.get("cases", [])]
    values = [float(v) for v in values if v is not None]
    return max(values) if values else float("nan")


def runs_table(run_paths: list[str | Path]) -> pd.DataFrame:
    """Provenance per run from its run.json (results/runs/.../run.json): device (and its CUDA
    index), threads, precision, deterministic mode, package versions (:data:`VERSION_COLUMNS`), the code (git commit, dirty flag, package source hash; missing
    in run.json files older than these keys: empty commit and hash, git_dirty <NA>), recipe,
    SphereFace's λ at the last step (:func:`final_lambda`) and wall time."""
    rows = []
    for path in sorted(map(Path, run_paths)):
        try:
            run = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DmlbenchError(
                f"{path} is not a readable run.json ({exc}); delete its run folder and rerun `dmlbench train`"
            ) from None
        versions, training = run.get("versions", {}), run.get("spec", {}).get("training", {})
        rows.append(
            {
                **keys_from_path(path),
                "device": str(run.get("device", "")),
                "device_index": run.get("device_index"),
                "threads": run.get("threads"),
                "precision": str(run.get("precision", "fp32")),
                "compiled": bool(run.get("compiled", False)),
                "deterministic": bool(training.get("deterministic", False)),
                # empty: not installed, or a run.json older than the column
                **{k: str(versions.get(k) or "") for k in VERSION_COLUMNS},
                "git_commit": str(run.get("git_commit") or ""),
                "git_dirty": run.get("git_dirty"),
                "code_hash": str(run.get("code_hash") or ""),
                "epochs": training.get("epochs"),
                "batch_size": training.get("batch_size"),
                "lr": training.get("lr"),
                "final_lambda": final_lambda(run),
                "wall_seconds": float(run.get("wall_seconds", np.nan)),
            }
        )
    df = pd.DataFrame(rows, columns=RUNS_COLUMNS).astype(
        {
            "n_anomaly": "int64",
            "seed": "int64",
            "device_index": "Int64",
            "threads": "Int64",
            "git_dirty": "boolean",
            "epochs": "Int64",
            "batch_size": "Int64",
            "lr": "float64",
            "final_lambda": "float64",
            "wall_seconds": "float64",
        }
    )
    return _sorted(df, KEYS) if len(df) else df
