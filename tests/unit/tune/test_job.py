"""The tune job: its files, resuming a killed job without repeating a finished trial (journal
file), the same with an RDB URL (SQLite; PostgreSQL where a server and a driver are at hand)."""

import copy
import importlib.util
import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from dmlbench.config.tuning import case_spec, tune_spec, tuned_train_spec, with_case_params
from dmlbench.data.sources import load_source
from dmlbench.tune import job as tune_job_module
from dmlbench.tune.job import storage_for, study_name, tune_job
from dmlbench.tune.objective import CaseObjective
from tests.helpers.tuning import tuning_config


@pytest.fixture(scope="module")
def digits():
    return load_source({"source": "digits", "image_size": 8})


def _spec(trials=3):
    spec = tune_spec(tuning_config(3, trials), "digits", 3, "arcface", "all", 0)
    spec["cases"] = 1
    return spec


@pytest.fixture
def calls(monkeypatch):
    """The parameters of every objective call, in order."""
    seen = []
    original = CaseObjective.__call__

    def counted(self, params):
        seen.append(dict(params))
        return original(self, params)

    monkeypatch.setattr(CaseObjective, "__call__", counted)
    return seen


def _complete(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "trials.csv").sort_values("trial").reset_index(drop=True)


def test_a_killed_tune_job_resumes_without_repeating_its_finished_trials(tmp_path, digits, calls):
    spec = _spec(trials=3)
    whole = tune_job(None, spec, tmp_path / "whole", ds=digits, device="cpu")
    assert len(calls) == 3
    first = _complete(tmp_path / "whole")
    assert list(first["state"]) == ["complete"] * 3 and first["value"].between(0, 1).all()
    best = whole["cases"][0]
    assert best["value"] == first["value"].max() and best["measure"] == "lofo_auroc" and len(best["folds"]) == 2
    assert json.loads((tmp_path / "whole" / "best.json").read_text()) == whole

    # The killed job: one trial finished, then a second one started and never finished (the process
    # died: it stays RUNNING in the journal), and no best.json.
    calls.clear()
    out = tmp_path / "killed"
    tune_job(None, spec, out, ds=digits, device="cpu", stop_after=1)
    assert len(calls) == 1 and not (out / "best.json").exists()
    study = optuna.load_study(study_name=study_name(spec, 0), storage=storage_for(None, out))
    study.ask()  # left running by the "killed" process
    finished = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(finished) == 1

    calls.clear()
    tune_job(None, spec, out, ds=digits, device="cpu")
    assert len(calls) == 2  # only the missing trials ran
    study = optuna.load_study(study_name=study_name(spec, 0), storage=storage_for(None, out))
    states = [t.state for t in study.trials]
    assert states.count(TrialState.COMPLETE) == 3 and states.count(TrialState.FAIL) == 1
    kept = study.trials[0]
    assert (kept.datetime_start, kept.value) == (finished[0].datetime_start, finished[0].value)  # not rerun
    # seeded by the finished trials: the resumed job proposed and scored what the whole one did
    resumed = _complete(out)
    assert resumed["params"].tolist() == first["params"].tolist()
    assert resumed["value"].tolist() == first["value"].tolist()


def test_a_tuned_run_spec_takes_each_cases_best_parameters(tmp_path, digits):
    config = tuning_config(3)
    best = {"dataset": "digits", "n_anomaly": 3, "method": "arcface", "n_per_class": "all", "seed": 0,
            "cases": [{"case": 0, "params": {"training.lr": 0.004, "scale": 12.0}}, {"case": 1, "params": {}}]}  # fmt: skip
    spec = with_case_params(tuned_train_spec(config, "digits", 3, "arcface", "all", 0), best)
    assert spec["method"] == "arcface_tuned" and spec["head"] == "arcface"
    zero, one = case_spec(spec, 0), case_spec(spec, 1)
    assert zero["training"]["lr"] == 0.004 and zero["method_params"]["scale"] == 12.0
    assert one["training"]["lr"] == config["training"]["lr"] and one["method_params"]["scale"] == 30.0
    with pytest.raises(Exception, match="best.json of 'arcface'"):
        with_case_params(spec | {"tuned": "arcface"}, best | {"method": "conventional"})


def test_an_rdb_url_keeps_the_trials_sqlite(tmp_path, digits, calls):
    spec = _spec(trials=2)
    url = f"sqlite:///{tmp_path / 'tuning.db'}"
    first = tune_job(None, spec, tmp_path / "a", ds=digits, device="cpu", storage=url)
    assert len(calls) == 2 and first["storage"] == "sqlite" and not (tmp_path / "a" / "journal.log").exists()
    calls.clear()
    again = tune_job(None, spec, tmp_path / "b", ds=digits, device="cpu", storage=url)
    assert calls == [] and again["cases"] == first["cases"]  # the study is shared: nothing to run


def test_a_path_for_storage_is_refused(tmp_path):
    with pytest.raises(Exception, match="not an RDB URL"):
        storage_for("results/tuning.db", tmp_path)


def _postgres_driver() -> str | None:
    for module in ("psycopg2", "psycopg", "pg8000"):
        if importlib.util.find_spec(module):
            return module
    return None


def test_an_rdb_url_keeps_the_trials_postgresql(tmp_path, digits, calls):
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    driver = _postgres_driver()
    if not (initdb and pg_ctl):
        pytest.skip("no PostgreSQL server here (initdb and pg_ctl not on PATH; Debian: apt install postgresql)")
    if driver is None:
        pytest.skip("PostgreSQL is installed but no Python driver for SQLAlchemy (psycopg2, psycopg or pg8000)")
    data = tmp_path / "pg"
    try:
        subprocess.run([initdb, "-D", str(data), "-A", "trust", "-U", "postgres"], check=True, capture_output=True)
    except (subprocess.CalledProcessError, OSError) as exc:
        pytest.skip(f"initdb could not make a cluster here (e.g. running as root): {exc}")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    opts = f"-p {port} -k {tmp_path} -h 127.0.0.1"
    subprocess.run([pg_ctl, "-D", str(data), "-o", opts, "-w", "start", "-l", str(tmp_path / "pg.log")], check=True)
    try:
        dialect = {"psycopg2": "postgresql+psycopg2", "psycopg": "postgresql+psycopg", "pg8000": "postgresql+pg8000"}
        url = f"{dialect[driver]}://postgres@127.0.0.1:{port}/postgres"
        first = tune_job(None, _spec(trials=2), tmp_path / "a", ds=digits, device="cpu", storage=url)
        calls.clear()
        again = tune_job(None, _spec(trials=2), tmp_path / "b", ds=digits, device="cpu", storage=url)
        assert calls == [] and again["cases"] == first["cases"]
    finally:
        subprocess.run([pg_ctl, "-D", str(data), "-m", "fast", "stop"], check=False)
        time.sleep(0.1)


def test_the_spec_names_the_study(tmp_path):
    spec = _spec()
    other = copy.deepcopy(spec)
    other["tuning"]["space"]["scale"]["high"] = 32
    assert study_name(spec, 0) != study_name(other, 0)  # a new search space: a new study
    assert study_name(spec, 0).startswith("digits/a3/arcface/nall/s0/case0/")
    assert tune_job_module.FINISHED == (TrialState.COMPLETE, TrialState.PRUNED)
