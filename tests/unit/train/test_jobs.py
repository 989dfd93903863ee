"""A train job of several runs (every method of a condition) in one process: each run's files are
those of training it alone, the job record says where the time went, finished runs come back
from the run cache instead of being trained again, and a score job scores every run."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from dmlbench.data.sources import Dataset, load_source, save_npz
from dmlbench.phases import PHASES, PhaseClock
from dmlbench.score.job import score_runs
from dmlbench.score.run import score_run
from dmlbench.train.job import train_runs
from dmlbench.train.run import train_job

TRAINING = {"epochs": 2, "batch_size": 16, "lr": 0.01, "weight_decay": 0.01, "val_fraction": 0.1, "crop_padding": 1}
METHODS = ("conventional", "arcface", "centerloss")
SCORING = {
    "distances": ["cosine", "euclidean"],
    "k": [1, 3],
    "scorers": ["msp", "mahalanobis"],
    "mahalanobis_shrinkage": "ledoit_wolf",
    "lof_neighbors": 20,
}


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    ds = load_source({"source": "digits", "image_size": 8})
    keep_tr, keep_te = np.arange(0, len(ds.y_train), 4), np.arange(0, len(ds.y_test), 3)
    ds = Dataset(ds.x_train[keep_tr], ds.y_train[keep_tr], ds.x_test[keep_te], ds.y_test[keep_te], ds.classes)
    path = tmp_path_factory.mktemp("data") / "digits.npz"
    save_npz(ds, path)
    return ds, path


def _spec(method: str) -> dict:
    return {
        "dataset": "digits",
        "source": "digits",
        "class_order": "canonical",
        "flip": False,
        "n_anomaly": 3,
        "method": method,
        "method_params": {"mixup": False, "mixup_alpha": 0.4},
        "n_per_class": "all",
        "seed": 0,
        "cases": 2,
        "model": {"backbone": "small_cnn", "embedding_dim": 8},
        "training": TRAINING,
    }


def _outs(root):
    return [root / "runs" / "digits" / "a3" / m / "nall" / "s0" for m in METHODS]


def _same_files(a, b) -> None:
    with np.load(a / "embeddings.npz") as x, np.load(b / "embeddings.npz") as y:
        assert x.files == y.files
        for key in x.files:
            np.testing.assert_array_equal(x[key], y[key], err_msg=key)
    assert (
        pd.read_csv(a / "train_log.csv")
        .drop(columns="seconds")
        .equals(pd.read_csv(b / "train_log.csv").drop(columns="seconds"))
    )
    assert _untimed(a / "run.json") == _untimed(b / "run.json")


def _untimed(run_json) -> dict:
    """run.json less what measures time (its phases, wall time, each case's seconds)."""
    meta = json.loads(run_json.read_text())
    for key in ("phases", "wall_seconds"):
        meta.pop(key)
    for case in meta["cases"]:
        case.pop("seconds")
    return meta


def test_runs_trained_in_one_job_equal_runs_trained_alone(digits, tmp_path):
    ds, path = digits
    specs = [_spec(m) for m in METHODS]
    record = train_runs(
        path,
        specs,
        _outs(tmp_path / "job"),
        clock=PhaseClock(),
        device="cpu",
        threads=1,
        cache_root=None,
        job_out=tmp_path / "job.json",
    )
    for spec, out in zip(specs, _outs(tmp_path / "alone")):
        train_job(ds, spec, out, device="cpu", threads=1)
    for job_run, alone in zip(_outs(tmp_path / "job"), _outs(tmp_path / "alone")):
        _same_files(job_run, alone)
    assert json.loads((tmp_path / "job.json").read_text()) == json.loads(json.dumps(record))
    assert [r["status"] for r in record["runs"]] == ["trained"] * 3
    assert [r["method"] for r in record["runs"]] == list(METHODS)
    # the phases: each run's are in its run.json and the job record; the job's add up to its wall time
    # (no start-up here: the command books it, from the process's start to the end of its imports)
    assert set(record["phases"]) <= set(PHASES)
    assert {"data", "build", "training", "embedding", "writing", "other"} <= set(record["phases"])
    assert sum(p["wall_s"] for p in record["phases"].values()) == pytest.approx(record["wall_s"], abs=1e-3)
    for run, out in zip(record["runs"], _outs(tmp_path / "job")):
        meta = json.loads((out / "run.json").read_text())
        # run.json has the run's training side; the job record's entry also the main thread's
        # wait for the writer (writing) and the run cache look-up (restore)
        assert meta["phases"]["training"]["wall_s"] > 0 and meta["phases"] == {
            k: v for k, v in run["phases"].items() if k not in ("restore", "writing")
        }
        assert run["write_s"] > 0 and run["write_cpu_s"] >= 0  # the writer thread's own seconds
    training = sum(r["phases"]["training"]["wall_s"] for r in record["runs"])
    assert training == pytest.approx(record["phases"]["training"]["wall_s"], rel=1e-3)
    assert record["imports"]["modules"] > 100 and "torch" in record["imports"]["watched"]


def test_finished_runs_come_back_from_the_run_cache(digits, tmp_path):
    _, path = digits
    specs, outs, cache = [_spec(m) for m in METHODS], _outs(tmp_path), tmp_path / "cache"
    train_runs(path, specs[:2], outs[:2], clock=PhaseClock(), device="cpu", threads=1, cache_root=cache)
    saved = {o: (o / "embeddings.npz").read_bytes() for o in outs[:2]}
    for out in outs[:2]:  # the job ran again: Snakemake deleted its outputs first
        for f in out.iterdir():
            f.unlink()
    specs[1] = {**specs[1], "training": {**TRAINING, "lr": 0.02}}  # arcface's recipe changed
    record = train_runs(path, specs, outs, clock=PhaseClock(), device="cpu", threads=1, cache_root=cache)
    assert [r["status"] for r in record["runs"]] == ["restored", "trained", "trained"]
    assert (outs[0] / "embeddings.npz").read_bytes() == saved[outs[0]]
    assert (outs[1] / "embeddings.npz").read_bytes() != saved[outs[1]]
    assert "restored_from_cache" in json.loads((outs[0] / "run.json").read_text())
    assert "training" not in record["runs"][0]["phases"] and record["runs"][0]["phases"]["restore"]["wall_s"] > 0


def test_the_run_cache_key_holds_every_package_cuda_cudnn_and_the_device(digits, tmp_path, monkeypatch):
    """A run trained under other versions of any package that can change a number (here:
    scikit-learn, which the run does not even import), or another cuDNN, is trained again."""
    from dmlbench.provenance import PACKAGES
    from dmlbench.train import job
    from dmlbench.train.run_cache import run_key

    _, path = digits
    keys = []
    monkeypatch.setattr(job, "run_key", lambda spec, identity: keys.append(identity) or run_key(spec, identity))
    spec, out, cache = _spec("conventional"), tmp_path / "runs/digits/a3/conventional/nall/s0", tmp_path / "cache"
    train_runs(path, [spec], [out], clock=PhaseClock(), device="cpu", threads=1, cache_root=cache)
    identity = keys[-1]
    assert {"dmlbench", "python", "cuda", "cudnn", *PACKAGES} <= set(identity["versions"])
    assert identity["device"].startswith("cpu")
    real = job.versions
    for changed in ({"scikit-learn": "0.0"}, {"cudnn": "1"}):
        monkeypatch.setattr(job, "versions", lambda changed=changed: {**real(), **changed})
        for f in out.iterdir():
            f.unlink()
        record = train_runs(path, [spec], [out], clock=PhaseClock(), device="cpu", threads=1, cache_root=cache)
        assert record["runs"][0]["status"] == "trained", changed


def test_a_score_job_scores_every_run_as_score_run_does(digits, tmp_path):
    _, path = digits
    outs = _outs(tmp_path)
    train_runs(path, [_spec(m) for m in METHODS], outs, clock=PhaseClock(), device="cpu", threads=1, cache_root=None)
    scores = [tmp_path / "scores" / f"{m}.parquet" for m in METHODS]
    record = score_runs(outs, SCORING, scores, clock=PhaseClock(), job_out=tmp_path / "score.json")
    for out, parquet in zip(outs, scores):
        pd.testing.assert_frame_equal(pd.read_parquet(parquet), score_run(out, SCORING))
    assert [r["status"] for r in record["runs"]] == ["scored"] * 3
    assert {"data", "scoring", "writing"} <= set(record["phases"])


def test_the_command_trains_several_methods_and_writes_the_job_record_last(digits, tmp_path):
    """`python -m dmlbench train` as the rule runs it: one --spec list, one --out per run; the
    process exits without the interpreter's teardown once everything is written."""
    _, path = digits
    specs = [_spec(m) for m in METHODS[:2]]
    outs = _outs(tmp_path)[:2]
    cmd = [
        sys.executable,
        "-m",
        "dmlbench",
        "--results",
        str(tmp_path / "results"),
        "train",
        "--spec",
        json.dumps(specs),
        "--data",
        str(path),
        "--out",
        *map(str, outs),
        "--job",
        str(tmp_path / "job.json"),
        "--device",
        "cpu",
        "--threads",
        "1",
    ]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((tmp_path / "job.json").read_text())
    assert [r["status"] for r in record["runs"]] == ["trained", "trained"]
    assert record["phases"]["startup"]["cpu_s"] > 0.5  # torch and fastai, from the process's start
    assert {"torch", "fastai", "torch._dynamo"} <= set(record["imports"]["watched"])
    assert not {"altair", "vl_convert", "dmlbench.report", "dmlbench.report.figures"} & set(
        record["imports"]["watched"]
    )
    assert all((o / "run.json").exists() for o in outs)
    assert (tmp_path / "results" / ".cache" / "runs" / "digits/a3/conventional/nall/s0").is_dir()
    assert proc.stdout.splitlines() == [f"{o}: embeddings.npz, train_log.csv, run.json" for o in outs]


def test_mismatched_specs_and_folders_are_refused(digits, tmp_path):
    from dmlbench.errors import DmlbenchError

    _, path = digits
    with pytest.raises(DmlbenchError, match="2 run specs but 1 --out folders"):
        train_runs(path, [_spec("conventional"), _spec("arcface")], [tmp_path / "a"], clock=PhaseClock(), device="cpu")
    with pytest.raises(DmlbenchError, match="2 --run folders but 1 --out files"):
        score_runs([tmp_path / "a", tmp_path / "b"], SCORING, [tmp_path / "s.parquet"], clock=PhaseClock())


def test_a_failed_background_write_fails_the_job_with_its_error(digits, tmp_path, monkeypatch):
    """The first run's embeddings cannot be written (a full disk): the job raises that OSError once
    the next run has trained, trains no third run, writes no job record, and the failed run has no
    run.json and no run cache entry (it is trained again next time)."""
    import dmlbench.train.run

    _, path = digits
    real_write_npz = dmlbench.train.run.write_npz
    calls = []

    def write_npz(file, **arrays):
        calls.append(file)
        if len(calls) == 1:
            raise OSError(28, "No space left on device", str(file))
        real_write_npz(file, **arrays)

    monkeypatch.setattr(dmlbench.train.run, "write_npz", write_npz)
    outs, cache = _outs(tmp_path), tmp_path / "cache"
    with pytest.raises(OSError, match="No space left on device") as raised:
        train_runs(
            path,
            [_spec(m) for m in METHODS],
            outs,
            clock=PhaseClock(),
            device="cpu",
            threads=1,
            cache_root=cache,
            job_out=tmp_path / "job.json",
        )
    assert raised.value.errno == 28 and raised.value.filename == str(outs[0] / "embeddings.npz")
    assert calls == [outs[0] / "embeddings.npz"]  # the second run was trained, never written
    assert not (tmp_path / "job.json").exists()
    assert not (outs[0] / "run.json").exists() and not (outs[1] / "run.json").exists()
    assert not outs[2].exists()
    assert not list(cache.glob("runs/**/run.json"))  # no run in the run cache


def test_runs_are_written_in_order_with_at_most_one_write_outstanding(digits, tmp_path, monkeypatch):
    """A slow disk: the first run's write lasts until the second run has trained and then some.
    Its write started before the second run's training ended (it ran in the background), and it
    ended before the third run's training started (the main thread waited, booked as writing in
    the second run's entry); the writes ran one at a time in the runs' order."""
    import threading

    import dmlbench.train.job

    _, path = digits
    real_train, real_write = dmlbench.train.job.train_run, dmlbench.train.job.write_run
    events: list[tuple[str, str, float]] = []
    second_trained = threading.Event()

    def train_run(ds, spec, *args, **kwargs):
        events.append(("train start", spec["method"], time.perf_counter()))
        trained = real_train(ds, spec, *args, **kwargs)
        events.append(("train end", spec["method"], time.perf_counter()))
        if spec["method"] == METHODS[1]:
            second_trained.set()
        return trained

    def write_run(out, trained):
        method = trained.meta["spec"]["method"]
        events.append(("write start", method, time.perf_counter()))
        if method == METHODS[0]:
            assert second_trained.wait(timeout=120)
            time.sleep(0.3)
        real_write(out, trained)
        events.append(("write end", method, time.perf_counter()))

    monkeypatch.setattr(dmlbench.train.job, "train_run", train_run)
    monkeypatch.setattr(dmlbench.train.job, "write_run", write_run)
    outs = _outs(tmp_path)
    record = train_runs(
        path,
        [_spec(m) for m in METHODS],
        outs,
        clock=PhaseClock(),
        device="cpu",
        threads=1,
        cache_root=None,
        job_out=tmp_path / "job.json",
    )
    at = {(kind, method): t for kind, method, t in events}
    writes = [(kind, method) for kind, method, _ in events if kind.startswith("write")]
    assert writes == [(k, m) for m in METHODS for k in ("write start", "write end")]  # in order, one at a time
    assert at["write start", METHODS[0]] < at["train end", METHODS[1]]  # in the background
    for n in range(len(METHODS) - 2):
        assert at["write end", METHODS[n]] <= at["train start", METHODS[n + 2]]  # the bound
    assert record["runs"][1]["phases"]["writing"]["wall_s"] >= 0.25  # the wait for the first write
    assert record["runs"][0]["write_s"] >= 0.3
    assert record["phases"]["writing"]["wall_s"] >= sum(
        r["phases"].get("writing", {}).get("wall_s", 0) for r in record["runs"]
    )
    assert all((o / "run.json").exists() for o in outs) and (tmp_path / "job.json").exists()
