"""A train job: several runs in one process, and its record of where the time went.

One job covers every method of a (dataset, n_anomaly, n_per_class, seed), and for annex A.2's small
runs every size and method of a (dataset, n_anomaly, seed): process start-up
(Python, torch, fastai: some 5 s of CPU), reading the dataset and moving it to the device, and
torch.compile are paid once for all its runs instead of once per run. Each run still writes
its own files (results/runs/.../{embeddings.npz, train_log.csv, run.json}, and the score stage
results/scores/....parquet), so the stages downstream see one run's files (dmlbench.layout).

What Snakemake gives per run stays: the run cache (dmlbench.train.run_cache) restores the runs of a
job that were finished before a kill or whose spec did not change; scoring is its own job (dmlbench.score.job),
so a change of the scoring settings rescoring everything retrains nothing.

A train job writes a trained run's files (embeddings.npz, up to some 560 MB for CIFAR-10, and
train_log.csv, then run.json, then the run cache link) on one writer thread while the next run
trains (:class:`RunWriter`), so the device does not wait for the disk. One thread keeps the
writes in order; at most one write is outstanding while a run trains. A write's error fails
the job as it did when the writes were in line; a run whose write had not finished when the
process died has no run.json and no cache entry, and is trained again next time.

The job record (results/jobs/train/{dataset}/a{n}/n{N}/s{seed}.json, dmlbench.phases.job_record),
written last, after every run's files:

    rule, runs (per run: path, status trained|restored|scored, its phases; a trained run of a
    train job also write_s and write_cpu_s: the writer thread's wall and CPU seconds for its
    files and run cache link), phases (the whole process, dmlbench.phases: wall_s and cpu_s per
    phase), wall_s, cpu_s, max_rss_mb, device, threads, compile (per compiled run: seconds and
    cache outcome), imports (modules loaded, and which of the heavy packages)

A train job's ``writing`` phase is the time the main thread waited for the writer (what the
writing still took from training), not the writing itself, which is in the runs' write_s. The
phases' CPU seconds are the process's, all threads: the writer's CPU time falls in the phase the
main thread was in meanwhile (mostly training).
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import torch

from dmlbench.data.sources import load_npz
from dmlbench.errors import DmlbenchError, TrainingError
from dmlbench.io import write_json
from dmlbench.phases import PhaseClock, job_record
from dmlbench.provenance import code_hash
from dmlbench.train import determinism
from dmlbench.train.batches import JobData
from dmlbench.train.device import device_name, resolve_device, setup_device, versions
from dmlbench.train.run import train_run, write_run
from dmlbench.train.run_cache import RunCache, file_digest, run_key

log = logging.getLogger("dmlbench.train.job")


def train_runs(
    data_path: str | Path,
    specs: list[dict],
    out_dirs: list[str | Path],
    *,
    clock: PhaseClock,
    device: str = "auto",
    threads: int | None = None,
    cache_root: str | Path | None = None,
    job_out: str | Path | None = None,
) -> dict:
    """Train the runs ``specs`` (one dataset) into ``out_dirs``, one process for all: the data
    is read and moved to the device once. A run found in the run cache under ``cache_root``
    is restored instead (None: no cache). Writes the job record to ``job_out`` (when given) last;
    returns it."""
    if len(specs) != len(out_dirs):
        raise DmlbenchError(f"{len(specs)} run specs but {len(out_dirs)} --out folders: give one folder per spec")
    if threads:
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    setup_device(dev, determinism.wanted(specs))
    with clock.phase("data"):
        ds = load_npz(data_path)
        data = JobData(ds, dev)
    cache = RunCache(cache_root) if cache_root is not None else None
    identity = None
    if cache is not None:
        with clock.phase("restore"):
            identity = {
                "data": file_digest(data_path),
                "code": code_hash(),
                "versions": versions(),
                "device": device_name(dev),
                "threads": torch.get_num_threads(),
            }
    runs = []
    with RunWriter(clock) as writer:
        for spec, out in zip(specs, out_dirs):
            writer.check()  # a write that failed fails the job before more is trained
            booked = clock.snapshot()
            key = run_key(spec, identity) if cache is not None else None
            with clock.phase("restore"):
                restored = cache is not None and cache.restore(out, key)
            entry = {
                "run": Path(out).as_posix(),
                "method": spec["method"],
                "status": "restored" if restored else "trained",
            }
            if not restored:
                try:
                    trained = train_run(ds, spec, device=device, threads=threads, data=data, clock=clock)
                except RuntimeError as exc:
                    raise determinism_error(spec, exc) or exc
                writer.submit(entry, out, trained, cache, key)
                del trained  # the writer holds the arrays now; they go when written
            entry["phases"] = clock.since(booked)
            runs.append(entry)
            log.info("run %d/%d %s: %s", len(runs), len(specs), spec["method"], entry["status"])
        writer.wait()  # every run's files and cache link before the job record
    compile_info = _compile_info(out_dirs, runs)
    record = job_record(
        "train", clock, runs, device=device_name(dev), threads=torch.get_num_threads(), compile=compile_info
    )
    if job_out is not None:
        write_json(job_out, record)
    return record


def determinism_error(spec: dict, exc: RuntimeError) -> TrainingError | None:
    """The one-line error for a run of ``training.deterministic`` that reached an operation
    without a deterministic implementation (PyTorch's RuntimeError names it); None for any other error."""
    if not spec["training"].get("deterministic") or "does not have a deterministic implementation" not in str(exc):
        return None
    operation = str(exc).split(" does not have", 1)[0].strip()
    return TrainingError(
        f"method '{spec['method']}': training.deterministic is true, but {operation} has no deterministic "
        f"implementation on this device; set training.deterministic: false (the run is then repeatable only "
        f"up to the GPU's non-deterministic kernels)"
    )


def write_and_store(out: str | Path, trained, cache, key: str | None) -> tuple[float, float]:
    """Write a trained run's files (dmlbench.train.run.write_run: run.json last), then link them
    into the run cache (when given). Returns the (wall, CPU) seconds of this thread."""
    w0, c0 = time.perf_counter(), time.thread_time()
    write_run(out, trained)
    if cache is not None:  # only after the files: a cache entry is a finished run
        cache.store(out, key)
    return time.perf_counter() - w0, time.thread_time() - c0


class RunWriter:
    """One background thread that writes trained runs (:func:`write_and_store`) in the order given.

    :meth:`submit` first waits for the previous write: at most one write is outstanding, so
    besides the run training only one run's arrays wait in memory (memory: a CIFAR-10 run's
    embeddings are some 560 MB). The main thread's waits are booked on the clock as
    ``writing``; the writer itself books nothing there (PhaseClock is not thread-safe), it
    reports its seconds, which go in the run's entry as ``write_s`` and ``write_cpu_s``. A failed
    write raises its error in the main thread, at the next :meth:`check`, :meth:`submit` or
    :meth:`wait`. Leaving the ``with`` block waits for the thread, also when the job fails
    (a run that was being written is finished and cached, not lost)."""

    def __init__(self, clock: PhaseClock):
        self.clock = clock
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dmlbench-writer")
        self.pending: tuple[Future, dict] | None = None

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and self.pending is not None:
            future, entry = self.pending
            self.pending = None
            future_exc = future.exception()  # waits; the job's own error is the one raised
            if future_exc is not None:
                log.error("writing %s failed too: %s", entry["run"], future_exc)
        self.pool.shutdown(wait=True)

    def check(self) -> None:
        """Raise the error of a write that has finished with one."""
        if self.pending is not None and self.pending[0].done():
            self._collect()

    def wait(self) -> None:
        """Wait for the outstanding write (booked as ``writing``); raise its error."""
        if self.pending is not None:
            with self.clock.phase("writing"):
                self._collect()

    def submit(self, entry: dict, out: str | Path, trained, cache, key: str | None) -> None:
        """Write ``trained`` to ``out`` (and store it under ``key``) in the background, after the
        previous write; its seconds go into ``entry``."""
        # memory: the previous run's arrays are written before this run's join the queue, so at
        # most one run's arrays wait besides those of the run training next
        self.wait()
        self.pending = (self.pool.submit(write_and_store, out, trained, cache, key), entry)

    def _collect(self) -> None:
        future, entry = self.pending
        self.pending = None
        wall, cpu = future.result()  # a failed write's own error, raised here
        entry["write_s"], entry["write_cpu_s"] = round(wall, 4), round(cpu, 4)


def _compile_info(out_dirs, runs) -> list[dict]:
    """Per trained run that compiled: its compile seconds and cache outcome (from its run.json)."""
    info = []
    for out, run in zip(out_dirs, runs):
        if run["status"] != "trained":
            continue
        meta = json.loads((Path(out) / "run.json").read_text())
        if meta.get("compile_cache") is not None:
            info.append({"run": run["run"], "seconds": meta.get("compile_seconds"), **meta["compile_cache"]})
    return info
