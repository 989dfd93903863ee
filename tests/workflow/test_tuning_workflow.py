"""Tuning end to end (config/tuning-test.yaml: two methods tuned, two trials each): the tune jobs'
files, the tuned runs trained with each case's best parameters beside the default ones, the
Tuning section's tables; and a tune job killed with SIGKILL mid-way resumes without repeating the
trials it finished."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from dmlbench.config import load_config
from dmlbench.config.tuning import tune_spec
from dmlbench.tune.job import storage_for, study_name
from tests.workflow.conftest import ROOT, clean_env, snakemake

pytestmark = pytest.mark.slow

CONFIG = ROOT / "config" / "tuning-test.yaml"


def test_tuned_runs_are_trained_beside_the_default_ones_and_reported(tmp_path):
    snakemake(tmp_path, "--configfile", str(CONFIG), "--cores", "2", "results/tables/tbl-tuning-paired.csv")
    results = tmp_path / "results"
    config = load_config(CONFIG)
    metrics = pd.read_parquet(results / "tables" / "metrics.parquet")
    auroc = metrics[(metrics["metric"] == "auroc") & (metrics["scorer"] == "cosine_k1")]
    for label in ("conventional", "arcface"):
        tuning = results / "tuning" / "digits" / "a3" / label / "nall" / "s0"
        best = json.loads((tuning / "best.json").read_text())
        assert (tuning / "journal.log").is_file()  # the default storage, beside the files
        space = tune_spec(config, "digits", 3, label, "all", 0)["tuning"]["space"]
        trials = pd.read_csv(tuning / "trials.csv")
        assert len(trials) == 2 * 2 and set(trials["state"]) == {"complete"}  # cases × trials
        run = json.loads(
            (results / "runs" / "digits" / "a3" / f"{label}_tuned" / "nall" / "s0" / "run.json").read_text()
        )
        assert run["spec"]["method"] == f"{label}_tuned" and run["spec"]["tuned"] == label
        for case, entry in zip(run["cases"], best["cases"]):
            assert set(entry["params"]) == set(space) and entry["measure"] == "lofo_auroc"
            assert case["tuned_params"] == entry["params"]  # each case trained with its own best parameters
            assert entry["value"] == trials[trials["case"] == entry["case"]]["value"].max()
        default = np.load(results / "runs" / "digits" / "a3" / label / "nall" / "s0" / "embeddings.npz")
        tuned = np.load(results / "runs" / "digits" / "a3" / f"{label}_tuned" / "nall" / "s0" / "embeddings.npz")
        assert not np.array_equal(default["case0_test"], tuned["case0_test"])
        assert set(auroc[auroc["method"] == f"{label}_tuned"]["case"]) == {0, 1}  # scored, same cases
    paired = pd.read_csv(results / "tables" / "tbl-tuning-paired.csv").set_index("method")
    for label in ("conventional", "arcface"):
        by_case = auroc.groupby(["method", "case"])["value"].mean()
        assert paired.loc[label, "default"] == pytest.approx(by_case[label].mean())
        assert paired.loc[label, "tuned"] == pytest.approx(by_case[f"{label}_tuned"].mean())
    ranking = pd.read_csv(results / "tables" / "tbl-tuning-ranking.csv")
    assert set(ranking["ranking_default"].iloc[0].split(" > ")) == {"conventional", "arcface"}
    assert (results / "figures" / "fig-tuning-progress.svg").is_file()
    best_table = pd.read_parquet(results / "tables" / "tuning_best.parquet")
    assert len(best_table) == 2 * 2 and set(best_table["measure"]) == {"lofo_auroc"}


def _finished(storage, spec) -> list:
    trials = []
    for case in range(spec["cases"]):
        try:
            study = optuna.load_study(study_name=study_name(spec, case), storage=storage)
        except KeyError:
            continue
        trials += [t for t in study.trials if t.state == TrialState.COMPLETE]
    return trials


def test_a_tune_job_killed_mid_way_resumes_without_repeating_finished_trials(tmp_path):
    config = load_config(CONFIG)
    config["tuning"]["trials"] = 3
    spec = tune_spec(config, "digits", 3, "arcface", "all", 0)
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec))
    out = tmp_path / "tuning"
    data = tmp_path / "digits.npz"
    subprocess.run(
        [sys.executable, "-m", "dmlbench", "prepare", "--config", str(CONFIG), "--dataset", "digits", "--out", str(data)],
        check=True, env=clean_env(), capture_output=True,
    )  # fmt: skip
    cmd = [sys.executable, "-m", "dmlbench", "tune", "--spec", str(spec_file), "--data", str(data), "--out", str(out)]
    cmd += ["--device", "cpu", "--threads", "1"]
    proc = subprocess.Popen(cmd, env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    before = []
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if (out / "journal.log").is_file():
                before = _finished(storage_for(None, out), spec)
                if before:
                    break
            time.sleep(0.2)
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # mid-way: a trial finished, the job not
        proc.wait()
    assert before and len(before) < spec["cases"] * 3, "the job was not killed mid-way"
    assert not (out / "best.json").exists()
    done = {(t.number, t.datetime_start, t.value) for t in _finished(storage_for(None, out), spec)}

    subprocess.run(cmd, check=True, env=clean_env(), capture_output=True)
    after = _finished(storage_for(None, out), spec)
    assert len(after) == spec["cases"] * 3  # the budget, exactly: nothing run twice
    assert done <= {(t.number, t.datetime_start, t.value) for t in after}  # the finished ones kept, not rerun
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == spec["cases"] * 3 and set(trials["state"]) == {"complete"}
