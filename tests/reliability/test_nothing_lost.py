"""Nothing lost: a job killed half way leaves no output the next run trusts, and the rerun
(after `snakemake --unlock`) gives the tables of an uninterrupted run.

The train stage is covered by tests/workflow/test_interrupted.py. Score and aggregate are too
fast to catch by timing, so they run with a test double of `os.replace` (conftest.STALL_HOOK)
that holds back the final rename of one output: the kill lands when that output is complete
under its temporary name, the moment a non-atomic writer would leave a file that looks done.
"""

from __future__ import annotations

import os
import re

import pandas as pd
import pytest

from dmlbench.io import atomic_path, write_json, write_npz, write_parquet
from tests.reliability.conftest import DETERMINISTIC_TABLES, JOB, TABLES, kill_when_stalled, sm_env, snakemake

pytestmark = pytest.mark.slow


def _unlock_and_run(workdir, config) -> set[str]:
    """`snakemake --unlock` (the killed run's lock is stale, as the README says), then a run up
    to the tables; returns the rules that ran."""
    snakemake(workdir, "--configfile", str(config), "--unlock")
    rerun = snakemake(workdir, "--configfile", str(config), "--cores", "2", *TABLES)
    return set(re.findall(r"^(?:local)?rule (\w+):", rerun.stdout + rerun.stderr, flags=re.M))


def test_score_and_aggregate_killed_half_way_then_rerun(trained_copy, test_run):
    """1. The score job is killed while its complete scores are still under the temporary
    name: the output name never appears. 2. After --unlock, the next run scores again (the
    finished train job is trusted, not retrained) and aggregate is killed after it renamed
    metrics.parquet but before class_distances.parquet: the job is incomplete. 3. After
    --unlock, the next run does not trust the metrics.parquet the killed job left: it runs
    aggregate (only aggregate) again, and the tables equal the uninterrupted reference run's."""
    workdir, config = trained_copy
    scores = workdir / "results" / "scores" / f"{JOB}.parquet"
    tables = workdir / "results" / "tables"

    mark = kill_when_stalled(workdir, config, f"scores/{JOB}.parquet", TABLES)
    assert mark["dst"] == scores
    assert mark["tmp"].exists() and mark["tmp"].name.startswith(f".{scores.name}.")  # complete, but hidden
    assert not scores.exists() and not tables.exists()

    snakemake(workdir, "--configfile", str(config), "--unlock")
    mark = kill_when_stalled(workdir, config, "tables/class_distances.parquet", TABLES)
    # the rerun scored again (the killed job's temporary file is not trusted); train was trusted.
    # The annex's score job ran beside the killed one: whether it finished before the kill is a race.
    ran = set(re.findall(r"^(?:local)?rule (\w+):", mark["output"], flags=re.M)) - {"score_annex"}
    assert ran == {"score", "aggregate"}, ran
    assert scores.exists()
    assert mark["tmp"].exists()
    assert (tables / "metrics.parquet").exists()  # the first table was already renamed
    assert not (tables / "class_distances.parquet").exists() and not (tables / "runtime.parquet").exists()

    assert _unlock_and_run(workdir, config) == {"aggregate"}
    for name in DETERMINISTIC_TABLES:
        fresh = pd.read_parquet(tables / name)
        pd.testing.assert_frame_equal(fresh, pd.read_parquet(test_run / "results/tables" / name))


def test_standalone_aggregate_ignores_temporary_files_of_killed_jobs(tmp_path, test_run):
    """`dmlbench aggregate` without --scores finds the score files itself: a temporary file a
    killed score job left (.s0.parquet.XXXX.tmp.parquet) must not be taken for scores."""
    import subprocess
    import sys

    scores = tmp_path / "results" / "scores" / JOB
    scores.parent.mkdir(parents=True)
    src = test_run / "results" / "scores" / f"{JOB}.parquet"
    (scores.parent / "s0.parquet").write_bytes(src.read_bytes())
    leftover = scores.parent / ".s0.parquet.abcd1234.tmp.parquet"
    leftover.write_bytes(src.read_bytes()[: len(src.read_bytes()) // 2])
    proc = subprocess.run(
        [sys.executable, "-m", "dmlbench.cli", "aggregate", "--benchmark-root", "nowhere"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=sm_env(),
    )
    assert proc.returncode == 0, proc.stderr
    fresh = pd.read_parquet(tmp_path / "results/tables/metrics.parquet")
    reference = pd.read_parquet(test_run / "results/tables/metrics.parquet")
    reference = reference[(reference.method == "conventional") & (reference.n_per_class == "all")]
    pd.testing.assert_frame_equal(fresh, reference.reset_index(drop=True))
    # no run.json next to the copied scores: the provenance table is empty, not an error
    assert len(pd.read_parquet(tmp_path / "results/tables/runs.parquet")) == 0


# --------------------------------------------------------------------------------------------
# every writer goes through a temporary name


def _siblings(folder):
    return sorted(p.name for p in folder.iterdir())


def test_atomic_path_leaves_nothing_when_the_block_raises(tmp_path):
    target = tmp_path / "out" / "table.parquet"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            assert tmp.parent == target.parent and tmp.name.startswith(".table.parquet.")
            tmp.write_bytes(b"half a file")
            raise RuntimeError("killed half way")
    assert _siblings(target.parent) == []


def test_atomic_path_keeps_the_old_file_when_the_block_raises(tmp_path):
    target = tmp_path / "run.json"
    target.write_text("old, complete")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_text("new, half")
            raise KeyboardInterrupt
    assert target.read_text() == "old, complete" and _siblings(tmp_path) == ["run.json"]


def test_atomic_path_renames_into_place_readable(tmp_path):
    target = tmp_path / "x.txt"
    with atomic_path(target) as tmp:
        tmp.write_text("done")
        assert not target.exists()  # nothing under the final name until the block ends
    assert target.read_text() == "done" and _siblings(tmp_path) == ["x.txt"]
    assert target.stat().st_mode & 0o044 == 0o044  # not mkstemp's 0600


@pytest.mark.parametrize("writer", ["json", "npz", "parquet"])
def test_writers_leave_nothing_when_serialisation_fails(tmp_path, writer):
    class Unserialisable:
        def __str__(self):
            raise RuntimeError("cannot serialise")

    with pytest.raises(Exception):
        if writer == "json":
            write_json(tmp_path / "run.json", {"x": Unserialisable()})
        elif writer == "npz":
            import numpy as np

            write_npz(tmp_path / "embeddings.npz", ok=np.zeros(3), bad=np.array([Unserialisable()], dtype=object))
        else:
            write_parquet(tmp_path / "s0.parquet", pd.DataFrame({"x": [Unserialisable()]}))
    assert _siblings(tmp_path) == []


def test_every_writer_in_the_package_goes_through_atomic_path():
    """No stage opens an output for writing itself: writes go through dmlbench.io."""
    import re
    from pathlib import Path

    src = Path(__file__).resolve().parents[2] / "src" / "dmlbench"
    direct = re.compile(
        r"\.to_parquet\(|\.to_csv\(|np\.savez|\.write_text\(|\.write_bytes\(|open\([^)]*['\"][wa]b?['\"]|"
        r"\.savefig\(|\.save\("
    )
    offenders = []
    for path in sorted(src.rglob("*.py")):
        if path.name == "io.py":
            continue
        for no, line in enumerate(path.read_text().splitlines(), 1):
            in_memory = "# in memory" in line  # e.g. a PNG encoded into a BytesIO for a data URL
            log = "# a log file" in line  # streamed while a tool runs; no stage reads it as a result
            if direct.search(line) and "tmp" not in line and "atomic" not in line and not in_memory and not log:
                offenders.append(f"{path.relative_to(src)}:{no}: {line.strip()}")
    assert not offenders, "writes outside dmlbench.io.atomic_path:\n" + "\n".join(offenders)


def test_no_temporary_files_after_a_complete_run(test_run):
    assert not [p for p in test_run.rglob(".*.tmp*")]
    assert os.access(test_run / "results/tables/metrics.parquet", os.R_OK)
