"""A score job: the runs of one train job scored in one process, and its record of where the time went.

One job scores every run of a train job (every method of a (dataset, n_anomaly, n_per_class, seed),
or of an annex A.2 job every size and method too): start-up (Python, torch, pandas, SciPy) is paid
once for all of them, and each run still gets its own results/scores/....parquet. The job record
(results/jobs/score/....json, dmlbench.phases.job_record) is written last.
"""

from __future__ import annotations

from pathlib import Path

from dmlbench.errors import DmlbenchError
from dmlbench.io import write_json, write_parquet
from dmlbench.phases import PhaseClock, job_record
from dmlbench.score.run import load_run, score_run


def score_runs(
    run_dirs: list[str | Path],
    spec: dict,
    outs: list[str | Path],
    *,
    clock: PhaseClock,
    job_out: str | Path | None = None,
) -> dict:
    """Score the runs ``run_dirs`` into the parquet files ``outs`` with the scoring ``spec``, one
    process for all. Writes the job record to ``job_out`` (when given) last; returns it."""
    if len(run_dirs) != len(outs):
        raise DmlbenchError(f"{len(run_dirs)} --run folders but {len(outs)} --out files: give one output per run")
    runs = []
    for run_dir, out in zip(run_dirs, outs):
        booked = clock.snapshot()
        try:
            with clock.phase("data"):
                loaded = load_run(run_dir)
            with clock.phase("scoring"):
                scores = score_run(run_dir, spec, run=loaded)
        except DmlbenchError as exc:
            message = str(exc)
            if str(run_dir) not in message:  # name the run whose embeddings could not be scored
                message = f"scoring run {run_dir}: {message}"
            raise type(exc)(message) from None
        with clock.phase("writing"):
            write_parquet(out, scores)
        runs.append(
            {"run": Path(run_dir).as_posix(), "status": "scored", "rows": len(scores), "phases": clock.since(booked)}
        )
        print(f"{out}: {len(scores)} rows")
    record = job_record("score", clock, runs)
    if job_out is not None:
        write_json(job_out, record)
    return record
