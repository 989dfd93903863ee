"""config/test.yaml through snakemake: every output file and its contents; dry runs; bad configs."""

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from dmlbench.provenance import PACKAGES
from tests.helpers.qmd import run_cells
from tests.workflow.conftest import BIN, ROOT, snakemake

pytestmark = pytest.mark.slow

JOB = "digits/a3/conventional/nall/s0"
KNN_SCORERS = ["cosine_k1", "cosine_k5", "cosine_kall", "euclidean_k1", "euclidean_k5", "euclidean_kall"]
# embeddings.npz holds no reference labels yet, so the mahalanobis scorer is skipped (with a warning)
SCORERS = KNN_SCORERS + ["mahalanobis", "msp", "maxlogit", "energy", "lof", "knn_normalised"]
#: config/test.yaml's methods: a sweep of ArcFace's margin and a pair loss of pytorch-metric-learning
METHODS = ("conventional", "arcface_margin0.3", "arcface_margin0.5", "supcon")
DETECTION_METRICS = ["aupr_in", "aupr_out", "auroc", "fpr95"]


def test_every_output_exists(test_run):
    from tests.helpers.run_plan import TEST_RUN_FIGURES, TEST_RUN_TABLES

    runs = [f"digits/a3/{m}/{n}/s0" for m in METHODS for n in ("nall", "n20")]
    closed = [f"digits/a0/{m}/nall/s0" for m in METHODS]
    # a train or score job covers every method of one condition, size and seed
    jobs, closed_jobs = ["digits/a3/nall/s0", "digits/a3/n20/s0"], ["digits/a0/nall/s0"]
    expected = ["results/data/digits.npz", "results/config.yaml"]
    expected += [
        f"results/runs/{r}/{f}" for r in runs + closed for f in ("embeddings.npz", "train_log.csv", "run.json")
    ]
    expected += [f"results/scores/{r}.parquet" for r in runs]
    for rule, rule_jobs in (("train", jobs + closed_jobs), ("score", jobs)):
        expected += [
            f"{kind}/{rule}/{j}.{ext}"
            for j in rule_jobs
            for kind, ext in (("logs", "log"), ("benchmarks", "tsv"), ("results/jobs", "json"))
        ]
    expected += [
        f"results/tables/{name}.parquet"
        for name in (
            "metrics",
            "class_distances",
            "summary",
            "ranking",
            "worst_misses",
            "runtime",
            "runs",
            "tsne",
            "closed_set",
        )
    ]
    # config/test.yaml has both distances, annex A.2 and the closed-set models: every figure, and every
    # table but the Reproduction's that need a published cell (digits has none) or a switch variant.
    # (and nothing of the Tuning section: config/test.yaml tunes nothing; tests.helpers.run_plan)
    expected += [f"results/tables/{label}.csv" for label in TEST_RUN_TABLES]
    expected += [f"results/figures/{label}.{ext}" for label in TEST_RUN_FIGURES for ext in ("svg", "png", "vl.json")]
    missing = [p for p in expected if not (test_run / p).is_file()]
    assert not missing, missing
    assert not (test_run / "results/scores/digits/a0").exists()  # closed-set models are not scored
    leftovers = [p for p in test_run.rglob("*.tmp*")]
    assert not leftovers, f"temporary files left behind: {leftovers}"


def test_annex_and_closed_set_runs_use_their_recipes(test_run):
    annex = json.loads((test_run / "results/runs/digits/a3/arcface_margin0.3/n20/s0/run.json").read_text())
    assert annex["spec"]["training"]["epochs"] == 2 and annex["spec"]["method_params"]["mixup"] is True
    assert annex["spec"]["head"] == "arcface" and annex["spec"]["method_params"]["margin"] == 0.3
    # annex.mixup: true leaves the pair loss without mixup (it has no per-sample loss to mix)
    pair = json.loads((test_run / "results/runs/digits/a3/supcon/n20/s0/run.json").read_text())
    assert pair["spec"]["head"] == "pml" and pair["spec"]["method_params"]["mixup"] is False
    assert all(c["n_train"] + c["n_val"] == 7 * 20 for c in annex["cases"])
    closed = json.loads((test_run / "results/runs/digits/a0/conventional/nall/s0/run.json").read_text())
    assert len(closed["cases"]) == 1 and closed["cases"][0]["anomaly_classes"] == []
    table = pd.read_parquet(test_run / "results/tables/closed_set.parquet")
    with np.load(test_run / "results/runs/digits/a0/conventional/nall/s0/embeddings.npz") as npz:
        accuracy = (npz["case0_normal_classes"][npz["case0_test_logits"].argmax(1)] == npz["test_labels"]).mean()
        n_test = len(npz["test_labels"])
    row = table[table.method == "conventional"].iloc[0]
    assert row["accuracy"] == pytest.approx(accuracy) and row["n_test"] == n_test
    # the pair loss has no classifier: no logits written, its closed-set accuracy undefined
    with np.load(test_run / "results/runs/digits/a0/supcon/nall/s0/embeddings.npz") as npz:
        assert "case0_test_logits" not in npz.files and "case0_test" in npz.files
    assert np.isnan(table.loc[table.method == "supcon", "accuracy"].item())
    tsne = pd.read_parquet(test_run / "results/tables/tsne.parquet")
    assert tsne.groupby("method").size().to_dict() == {m: 300 for m in METHODS}


def test_runs_table_records_the_provenance(test_run):
    runs = pd.read_parquet(test_run / "results/tables/runs.parquet")
    assert len(runs) == 2 * len(METHODS) and set(runs["n_per_class"]) == {"all", "20"}
    assert runs["device"].str.startswith("cpu").all() and (runs["torch"] != "").all()
    assert (runs[list(PACKAGES)] != "").all().all() and runs["device_index"].isna().all()
    assert runs.loc[runs.n_per_class == "20", "epochs"].tolist() == [2] * len(METHODS)


def test_dataset_file(test_run):
    with np.load(test_run / "results/data/digits.npz") as npz:
        assert npz["x_train"].dtype == np.uint8 and npz["x_train"].shape[1:] == (12, 12, 1)
        assert npz["classes"].tolist() == [str(i) for i in range(10)]
        assert len(npz["y_train"]) + len(npz["y_test"]) == 1797


def test_run_contracts(test_run):
    run = json.loads((test_run / f"results/runs/{JOB}/run.json").read_text())
    assert [c["anomaly_classes"] for c in run["cases"]] == [[0, 1, 2], [1, 2, 3]]
    assert run["spec"]["training"]["epochs"] == 1 and run["device"].startswith("cpu")
    # the software that trained it: every package that can change a number, with its version
    assert {"dmlbench", "python", "cuda", "cudnn", *PACKAGES} == set(run["versions"])
    assert all(run["versions"][name] for name in ("dmlbench", "python", *PACKAGES))
    assert run["device_index"] is None and run["spec"]["training"]["deterministic"] is False
    log = pd.read_csv(test_run / f"results/runs/{JOB}/train_log.csv")
    assert log[["case", "epoch"]].values.tolist() == [[0, 0], [1, 0]]
    assert np.isfinite(log["train_loss"]).all()


def test_scores_table(test_run):
    scores = pd.read_parquet(test_run / f"results/scores/{JOB}.parquet")
    with np.load(test_run / "results/data/digits.npz") as npz:
        y_test = npz["y_test"]
    assert list(scores.columns) == [
        "case",
        "test_index",
        "label",
        "class_name",
        "is_anomaly",
        "head_pred",
        *SCORERS,
        "cosine_nn",
        "euclidean_nn",
    ]
    assert len(scores) == 2 * len(y_test)
    case1 = scores[scores.case == 1]
    np.testing.assert_array_equal(case1["label"], y_test)
    np.testing.assert_array_equal(case1["is_anomaly"], np.isin(y_test, [1, 2, 3]))
    # k-min means are ordered: nearest <= mean of 5 nearest <= mean of all
    assert (scores["cosine_k1"] <= scores["cosine_k5"] + 1e-6).all()
    assert (scores["euclidean_k5"] <= scores["euclidean_kall"] + 1e-6).all()
    # the nearest reference image is a training image of a normal class of the case
    with np.load(test_run / "results/data/digits.npz") as npz:
        nn_labels = npz["y_train"][case1["cosine_nn"].to_numpy()]
    assert not np.isin(nn_labels, [1, 2, 3]).any()


def test_metrics_table(test_run):
    metrics = pd.read_parquet(test_run / "results/tables/metrics.parquet")
    assert list(metrics.columns) == [
        "dataset",
        "n_anomaly",
        "method",
        "n_per_class",
        "seed",
        "case",
        "scorer",
        "metric",
        "value",
    ]
    assert set(metrics.method) == set(METHODS) and set(metrics.n_per_class) == {"all", "20"}
    # the pair loss: no head accuracy and no logit scorer, every other scorer
    pair = metrics[(metrics.method == "supcon") & (metrics.n_per_class == "all")]
    assert sorted(pair.scorer.unique()) == sorted(set(SCORERS) - {"msp", "maxlogit", "energy"})
    metrics = metrics[(metrics.method == "conventional") & (metrics.n_per_class == "all")]
    assert len(metrics) == 2 * (len(DETECTION_METRICS) * len(SCORERS) + 1)
    assert sorted(metrics.metric.unique()) == ["accuracy", *DETECTION_METRICS]
    auroc = metrics[metrics.metric == "auroc"]
    assert sorted(auroc.scorer.unique()) == sorted(SCORERS)
    assert metrics["value"].between(0, 1).all()
    # recompute one AUROC from the scores table with scikit-learn
    from sklearn.metrics import roc_auc_score

    scores = pd.read_parquet(test_run / f"results/scores/{JOB}.parquet")
    c0 = scores[scores.case == 0]
    value = auroc[(auroc.case == 0) & (auroc.scorer == "euclidean_k5")]["value"].item()
    assert value == pytest.approx(roc_auc_score(c0["is_anomaly"], c0["euclidean_k5"]))
    acc = metrics[metrics.metric == "accuracy"]
    assert (acc.scorer == "head").all() and len(acc) == 2


def test_class_distances_table(test_run):
    dist = pd.read_parquet(test_run / "results/tables/class_distances.parquet")
    dist = dist[(dist.method == "conventional") & (dist.n_per_class == "all")]
    assert list(dist.columns) == [
        "dataset",
        "n_anomaly",
        "method",
        "n_per_class",
        "seed",
        "case",
        "scorer",
        "class_index",
        "class_name",
        "role",
        "mean_score",
        "normalised",
    ]
    one = dist[(dist.case == 0) & (dist.scorer == "cosine_k1")]
    assert one["class_index"].tolist() == list(range(10))
    assert one[one.role == "anomaly"]["class_index"].tolist() == [0, 1, 2]
    # each class's mean distance over the mean of the normal class means (docs/metrics.md), by hand
    # from the scores: the normal classes' normalised distances average to 1, unweighted
    scores = pd.read_parquet(test_run / f"results/scores/{JOB}.parquet")
    class_means = scores[scores.case == 0].groupby("label")["cosine_k1"].mean()
    level = class_means[one[one.role == "normal"]["class_index"]].mean()
    np.testing.assert_allclose(one["normalised"], class_means[one["class_index"]] / level, rtol=1e-6)
    assert one[one.role == "normal"]["normalised"].mean() == pytest.approx(1.0)


def test_runtime_table(test_run):
    from dmlbench.aggregate.tables import PHASE_COLUMNS

    runtime = pd.read_parquet(test_run / "results/tables/runtime.parquet")
    assert set(runtime["rule"]) == {"train", "score"}
    assert (runtime["seconds"] > 0).all()
    train = runtime[runtime.rule == "train"]
    assert len(train) == 3 and sorted(train["n_anomaly"].unique().tolist()) == [0, 3]
    assert train["runs"].tolist() == [len(METHODS)] * 3 and train["method"].isna().all()
    # every job's phases, from its record, split its wall time; training and start-up were measured
    assert np.allclose(runtime[PHASE_COLUMNS].sum(axis=1), runtime["seconds"])
    assert (train["training_seconds"] > 0).all() and (train["startup_seconds"] > 0).all()
    score = runtime[runtime.rule == "score"]
    assert (score["scoring_seconds"] > 0).all() and (score["training_seconds"] == 0).all()
    record = json.loads((test_run / "results/jobs/train/digits/a3/nall/s0.json").read_text())
    assert [Path(r["run"]).parts[-3] for r in record["runs"]] == list(METHODS)
    run = json.loads((test_run / f"results/runs/{JOB}/run.json").read_text())
    assert run["phases"]["training"]["wall_s"] > 0 and run["compile_cache"] is None  # nothing compiled on the CPU


def test_report_cells_run_against_the_test_results(test_run):
    ns = run_cells(ROOT / "report" / "report.qmd", {"results": str(test_run / "results")}, cwd=ROOT / "report")
    assert len(ns["doc"].study.tables["metrics"]) == len(pd.read_parquet(test_run / "results/tables/metrics.parquet"))


def test_rerun_does_nothing(test_run):
    proc = snakemake(test_run, "--configfile", str(ROOT / "config" / "test.yaml"), "--cores", "2", "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_snakemakes_report_holds_every_figure_and_table_with_its_caption(test_run, tmp_path):
    """Issue 28: the figures rule registers each figure (its SVG) and table CSV with report() and
    its caption (report/captions/), so `snakemake --report report.zip` holds them all."""
    import zipfile

    from dmlbench.config import load_config
    from dmlbench.report import all_figures, all_tables, planned_figures, planned_tables

    zipped = tmp_path / "report.zip"
    snakemake(test_run, "--configfile", str(ROOT / "config" / "test.yaml"), "--report", str(zipped))
    with zipfile.ZipFile(zipped) as z:
        names = z.namelist()
        text = "\n".join(z.read(n).decode("utf-8", "replace") for n in names if n.endswith((".html", ".js")))
    config = load_config(ROOT / "config" / "test.yaml")
    figures, tables = planned_figures(config), planned_tables(config)
    assert figures and tables
    for label in figures:
        assert any(n.endswith(f"/{label}.svg") for n in names), label
    for label in tables:
        assert any(n.endswith(f"/{label}.csv") for n in names), label
    # each caption's words are in the report (rendered from its RST into HTML)
    declared = {i.label: i.caption for i in [*all_figures(), *all_tables()]}
    for label in figures + tables:
        words = " ".join(declared[label].split()[:4])
        assert words in text, (label, words)


def test_a_fresh_shell_runs_the_jobs(tmp_path):
    """The README's `.venv/bin/snakemake ...` typed in a fresh shell: no venv activated, no
    `dmlbench` on PATH. The jobs run the dmlbench of the interpreter that runs Snakemake."""
    env = {"HOME": os.environ.get("HOME", str(tmp_path)), "PATH": "/usr/bin:/bin"}
    assert shutil.which("dmlbench", path=env["PATH"]) is None
    cmd = [
        str(BIN / "snakemake"),
        "-s",
        str(ROOT / "Snakefile"),
        "--configfile",
        str(ROOT / "config" / "test.yaml"),
        "--cores",
        "1",
        f"results/runs/{JOB}/run.json",
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = json.loads((tmp_path / f"results/runs/{JOB}/run.json").read_text())
    assert [c["anomaly_classes"] for c in run["cases"]] == [[0, 1, 2], [1, 2, 3]]


def test_dry_run_of_the_full_study_lists_every_job(tmp_path):
    proc = snakemake(tmp_path, "-n", "--quiet", "rules")
    out = proc.stdout + proc.stderr
    counts = {
        line.split()[0]: int(line.split()[1])
        for line in out.splitlines()
        if len(line.split()) == 2 and line.split()[1].isdigit()
    }
    # one train and one score job per condition (its 6 methods): 5 conditions x 1 seed; annex A.2: one
    # per condition and seed for its 4 sizes, 2 x 1; one train job per dataset for the closed-set models
    assert counts["score"] == 5 and counts["train"] == 5 + 2 and counts["prepare"] == 2
    assert counts["score_annex"] == counts["train_annex"] == 2
    assert counts["closed_set"] == counts["aggregate"] == counts["figures"] == counts["snapshot"] == 1
    assert not (tmp_path / "results").exists()


def test_an_annex_job_trains_every_size_and_method_into_its_own_run_folder(tmp_path):
    """The full study's annex job of CIFAR-10 a1: 4 sizes x 6 methods, each spec written to the run
    folder of its own size and method, and the score job reading and writing the same runs."""
    # Snakemake's own console (--workflow-profile none): the whole command lines, to parse
    proc = snakemake(
        tmp_path,
        "results/jobs/score/cifar10/a1/n50+100+200+500/s0.json",
        *("-n", "-p", "--cores", "1", "--workflow-profile", "none"),
    )
    lines = [
        shlex.split(line[line.index("dmlbench ") :])
        for line in (proc.stdout + proc.stderr).splitlines()
        if "dmlbench train " in line or "dmlbench score " in line
    ]
    train = next(w for w in lines if w[1] == "train")
    score = next(w for w in lines if w[1] == "score")
    # the specs travel by a file (rules/specs.smk), written by its local rule: run it alone
    spec = train[train.index("--spec") + 1]
    assert spec == "results/specs/train/cifar10/a1/n50+100+200+500/s0.json"
    snakemake(tmp_path, spec, "--cores", "1")
    specs = json.loads((tmp_path / spec).read_text())
    outs = train[train.index("--out") + 1 : train.index("--job")]
    methods = list(yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["methods"])
    expected = [f"results/runs/cifar10/a1/{m}/n{n}/s0" for n in (50, 100, 200, 500) for m in methods]
    assert outs == expected and len(specs) == 24
    assert [
        f"results/runs/{s['dataset']}/a{s['n_anomaly']}/{s['method']}/n{s['n_per_class']}/s{s['seed']}" for s in specs
    ] == expected
    assert all(s["training"]["epochs"] == 30 and s["method_params"]["mixup"] for s in specs)
    assert train[train.index("--job") + 1] == "results/jobs/train/cifar10/a1/n50+100+200+500/s0.json"
    assert score[score.index("--run") + 1 : score.index("--out")] == expected
    assert score[score.index("--out") + 1 : score.index("--job")] == [
        f"results/scores/cifar10/a1/{m}/n{n}/s0.parquet" for n in (50, 100, 200, 500) for m in methods
    ]
    assert sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "results").rglob("*.json")) == [spec]


def test_schema_error_stops_before_any_job(tmp_path):
    cfg = yaml.safe_load((ROOT / "config" / "test.yaml").read_text())
    cfg["datasets"]["digits"]["class_order"] = "random"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    proc = snakemake(tmp_path, "--configfile", str(bad), "--cores", "1", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "datasets.digits.class_order" in out and "allowed values: canonical, alphabetical" in out
    assert not (tmp_path / "results").exists() and not (tmp_path / "logs").exists()


def test_cli_errors_are_one_line_without_traceback(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "dmlbench.cli",
            "train",
            "--config",
            str(ROOT / "config" / "test.yaml"),
            "--dataset",
            "digits",
            "--n-anomaly",
            "3",
            "--method",
            "centerloss",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert "method 'centerloss' is not in the config's `methods`" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "dmlbench.cli",
            "train",
            "--config",
            str(ROOT / "config" / "test.yaml"),
            "--dataset",
            "digits",
            "--n-anomaly",
            "3",
            "--method",
            "conventional",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 2 and "rerun `dmlbench prepare`" in proc.stderr and "Traceback" not in proc.stderr
