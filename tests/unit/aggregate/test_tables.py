"""Score parquets -> every table of results/tables (aggregate.write_tables)."""

import numpy as np
import pandas as pd
import pytest

from dmlbench.aggregate.tables import WORST_MISS_COLUMNS, metrics_tables, write_tables
from dmlbench.errors import DmlbenchError
from dmlbench.io import write_json
from dmlbench.layout import TABLE_NAMES
from dmlbench.metrics import fpr95
from dmlbench.stats import RANKING_COLUMNS, SUMMARY_COLUMNS

METHODS = ("arcface", "conventional", "cosface")


def _scores(seed: int, shift: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    labels = np.arange(40) % 4
    for case in range(2):
        anomaly = labels == case
        base = rng.random(40) + shift * anomaly
        frames.append(
            pd.DataFrame(
                {
                    "case": np.full(40, case, np.int64),
                    "test_index": np.arange(40, dtype=np.int64),
                    "label": labels.astype(np.int64),
                    "class_name": np.array(list("abcd"))[labels],
                    "is_anomaly": anomaly,
                    "head_pred": np.where(anomaly, (case + 1) % 4, labels).astype(np.int64),
                    "cosine_k1": base.astype(np.float32),
                    "euclidean_k1": (2 * base).astype(np.float32),
                    "msp": np.round(-base, 1).astype(np.float32),
                    "cosine_nn": rng.integers(0, 1000, 40),
                    "euclidean_nn": rng.integers(0, 1000, 40),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


@pytest.fixture
def score_files(tmp_path):
    paths = []
    for i, method in enumerate(METHODS):
        for seed in (0, 1):
            p = tmp_path / "scores" / "d" / "a1" / method / "nall" / f"s{seed}.parquet"
            p.parent.mkdir(parents=True, exist_ok=True)
            _scores(10 * i + seed, 0.2 * i).to_parquet(p, index=False)
            paths.append(p)
    return paths


def test_write_tables_writes_every_table_byte_identically(tmp_path, score_files):
    tables = write_tables(score_files, [], tmp_path / "benchmarks", tmp_path / "t1")
    assert tuple(tables) == TABLE_NAMES
    write_tables(list(reversed(score_files)), [], tmp_path / "benchmarks", tmp_path / "t2")
    for name in TABLE_NAMES:
        a, b = (tmp_path / t / f"{name}.parquet" for t in ("t1", "t2"))
        assert a.read_bytes() == b.read_bytes(), name
        pd.testing.assert_frame_equal(pd.read_parquet(a), tables[name], check_dtype=False)
    assert not list((tmp_path / "t1").glob(".*"))  # no temporary files left


def test_metrics_table_has_every_metric(score_files):
    metrics, distances = metrics_tables(score_files)
    # per run: 2 cases x (3 scorers x 4 metrics + head accuracy)
    assert len(metrics) == 6 * 2 * (3 * 4 + 1)
    assert sorted(metrics.metric.unique()) == ["accuracy", "aupr_in", "aupr_out", "auroc", "fpr95"]
    s = pd.read_parquet(score_files[0])
    c1 = s[s.case == 1]
    row = metrics[
        (metrics.method == "arcface")
        & (metrics.seed == 0)
        & (metrics.case == 1)
        & (metrics.scorer == "msp")
        & (metrics.metric == "fpr95")
    ]
    assert row["value"].item() == fpr95(c1["msp"], c1["is_anomaly"])
    assert len(distances) == 6 * 2 * 3 * 4
    assert metrics.equals(
        metrics.sort_values(
            ["dataset", "n_anomaly", "method", "n_per_class", "seed", "case", "scorer", "metric"]
        ).reset_index(drop=True)
    )


def test_worst_misses(score_files):
    tables = write_tables(score_files, [], "benchmarks", score_files[0].parents[5] / "tables")
    misses = tables["worst_misses"]
    assert list(misses.columns) == WORST_MISS_COLUMNS
    assert len(misses) == 6 * 2 * 2 * 10  # runs x cases x {cosine_k1, euclidean_k1} x 10
    one = misses[
        (misses.method == "cosface") & (misses.seed == 1) & (misses.case == 0) & (misses.scorer == "euclidean_k1")
    ]
    s = pd.read_parquet(score_files[5])
    anomalies = s[(s.case == 0) & s.is_anomaly].sort_values(["euclidean_k1", "test_index"], kind="mergesort")
    assert one["rank"].tolist() == list(range(1, 11))
    assert one["test_index"].tolist() == anomalies["test_index"].head(10).tolist()
    assert one["nearest_index"].tolist() == anomalies["euclidean_nn"].head(10).tolist()
    assert one["score"].tolist() == anomalies["euclidean_k1"].head(10).astype(float).tolist()
    assert (one["class_name"] == "a").all() and (one["label"] == 0).all()


def test_summary_and_ranking_tables(tmp_path, score_files):
    tables = write_tables(score_files, [], "benchmarks", tmp_path / "tables")
    summary, ranking = tables["summary"], tables["ranking"]
    assert list(summary.columns) == SUMMARY_COLUMNS
    assert len(summary) == 3 * (3 * 4 + 1) and (summary["n"] == 4).all()  # cases x seeds = 4
    assert list(ranking.columns) == RANKING_COLUMNS
    assert len(ranking) == 3 * 3 and (ranking["n_blocks"] == 2).all()  # cases: the seeds of a case averaged
    # the anomalies are shifted most for cosface: it ranks best on cosine_k1
    cos = ranking[ranking.scorer == "cosine_k1"].set_index("method")
    assert cos["avg_rank"].idxmin() == "cosface"
    assert cos["cd"].nunique() == 1 and cos.loc["conventional", ["wilcoxon_p", "wilcoxon_p_holm"]].isna().all()


def test_no_score_files():
    with pytest.raises(DmlbenchError, match="no score files"):
        write_tables([], [], "benchmarks", "nowhere")


def test_class_distances_normal_level_is_the_mean_of_the_normal_class_means():
    """tables_for_run on one case whose normal classes have unequal test counts: normal classes 0
    (four images scoring 1) and 1 (one scoring 3), anomaly class 2 (two scoring 6). The normal
    classes' normalised distances average 1 and the anomaly class is at 6 / ((1 + 3) / 2) = 3."""
    from dmlbench.aggregate.tables import tables_for_run

    labels = np.array([0, 0, 0, 0, 1, 2, 2])
    score = np.array([1.0, 1.0, 1.0, 1.0, 3.0, 6.0, 6.0])
    scores = pd.DataFrame(
        {
            "case": 0,
            "test_index": np.arange(7),
            "label": labels,
            "class_name": np.array(list("abc"))[labels],
            "is_anomaly": labels == 2,
            "head_pred": labels,
            "cosine_k1": score,
            "cosine_nn": np.zeros(7, np.int64),
        }
    )
    keys = {"dataset": "d", "n_anomaly": 1, "method": "conventional", "n_per_class": "all", "seed": 0}
    _, distances = tables_for_run(keys, scores)
    got = {row["class_index"]: row["normalised"] for row in distances if row["scorer"] == "cosine_k1"}
    assert got == {0: 0.5, 1: 1.5, 2: 3.0}


# --------------------------------------------------------------------------- runtime.parquet
def _benchmark(path, seconds, max_rss, cpu_time):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
        f"{seconds}\t0:00:{int(seconds):02d}\t{max_rss}\t1\t1\t1\t0\t0\t1.0\t{cpu_time}\n"
    )


def test_runtime_table_splits_each_job_by_its_phases(tmp_path):
    """Train job of 2 runs: benchmark 20 s; its record books 12 s training, 3 s start-up, 1 s data,
    0.5 s writing: other = 20 - 16.5 = 3.5 s (the shell around the process included)."""
    from dmlbench.aggregate.tables import PHASE_COLUMNS, RUNTIME_COLUMNS, runtime_table

    bench, jobs = tmp_path / "benchmarks", tmp_path / "results" / "jobs"
    _benchmark(bench / "train/digits/a3/nall/s0.tsv", 20.0, 900.5, 14.0)
    _benchmark(bench / "score/digits/a3/nall/s0.tsv", 6.0, 400.0, 3.0)
    _benchmark(bench / "aggregate/aggregate.tsv", 2.0, 300.0, 1.5)
    record = {
        "rule": "train",
        "runs": [{"run": "a"}, {"run": "b"}],
        "wall_s": 17.0,
        "cpu_s": 15.5,
        "max_rss_mb": 950.0,
        "phases": {
            "startup": {"wall_s": 3.0, "cpu_s": 2.5},
            "data": {"wall_s": 1.0, "cpu_s": 0.5},
            "training": {"wall_s": 12.0, "cpu_s": 12.0},
            "writing": {"wall_s": 0.5, "cpu_s": 0.1},
            "other": {"wall_s": 0.5, "cpu_s": 0.4},
        },
    }
    write_json(jobs / "train/digits/a3/nall/s0.json", record)
    paths = sorted(str(p) for p in bench.rglob("*.tsv"))
    table = runtime_table(paths, bench, [str(jobs / "train/digits/a3/nall/s0.json")], jobs)
    assert list(table.columns) == RUNTIME_COLUMNS
    assert table["job"].tolist() == ["aggregate/aggregate", "score/digits/a3/nall/s0", "train/digits/a3/nall/s0"]
    train = table.iloc[2]
    assert (train["rule"], train["dataset"], train["n_anomaly"], train["n_per_class"], train["seed"]) == (
        "train",
        "digits",
        3,
        "all",
        0,
    )
    assert pd.isna(train["method"]) and train["runs"] == 2
    assert train["seconds"] == 20.0 and train["cpu_seconds"] == 15.5 and train["max_rss_mb"] == 950.0
    expected = {
        "startup": 3.0,
        "data": 1.0,
        "build": 0.0,
        "compile": 0.0,
        "training": 12.0,
        "embedding": 0.0,
        "restore": 0.0,
        "scoring": 0.0,
        "writing": 0.5,
        "other": 3.5,
    }
    assert {c.removesuffix("_seconds"): train[c] for c in PHASE_COLUMNS} == expected
    assert sum(expected.values()) == train["seconds"]
    score = table.iloc[1]  # no record: no phases, the benchmark's CPU time
    assert score["cpu_seconds"] == 3.0 and pd.isna(score["runs"]) and score[PHASE_COLUMNS].isna().all()
    assert table.iloc[0]["rule"] == "aggregate" and pd.isna(table.iloc[0]["dataset"])


def test_runtime_table_keys_of_an_annex_job_name_its_sizes(tmp_path):
    """An annex job (every size of a condition and seed) keeps its sizes in n_per_class: 50+100."""
    from dmlbench.aggregate.tables import runtime_table

    bench = tmp_path / "benchmarks"
    _benchmark(bench / "train/cifar10/a1/n50+100/s2.tsv", 8.0, 500.0, 7.0)
    row = runtime_table([str(bench / "train/cifar10/a1/n50+100/s2.tsv")], bench).iloc[0]
    assert (row["rule"], row["dataset"], row["n_anomaly"], row["n_per_class"], row["seed"]) == (
        "train",
        "cifar10",
        1,
        "50+100",
        2,
    )


def test_aggregate_and_closed_set_do_not_import_torch():
    """They read score tables and embeddings.npz (numpy, pandas): torch's ~2 s start-up is for the
    jobs that train or score."""
    import subprocess
    import sys

    code = "import sys, dmlbench.aggregate.tables, dmlbench.aggregate.closed_set; print(sorted({'torch', 'fastai'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_score_file_given_twice_is_refused(tmp_path, score_files):
    """Issue 28: a repeated condition gave each score file twice, and the summary counted every
    run twice (n 4 where the truth is 2, std shrunk); the aggregate step now refuses that, as the
    config check's second line of defence - by the run's keys, also under another spelling."""
    once = metrics_tables(score_files)[0]
    assert set(once.groupby(["method", "seed", "case", "scorer", "metric"]).size()) == {1}
    with pytest.raises(DmlbenchError, match=r"s0\.parquet is given twice.*counted twice"):
        metrics_tables([*score_files, score_files[0]])
    other = str(score_files[0]).replace("/scores/", "/scores/./")
    with pytest.raises(DmlbenchError, match="given twice"):
        metrics_tables([*score_files, other])
