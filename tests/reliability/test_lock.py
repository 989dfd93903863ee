"""Two snakemake invocations on one results folder at once: the second is refused by
Snakemake's lock, and the first finishes untouched."""

import pandas as pd
import pytest

from tests.reliability.conftest import DETERMINISTIC_TABLES, JOB

pytestmark = pytest.mark.slow


def test_second_invocation_is_refused_by_the_lock(locked_run):
    b = locked_run["b"]
    out = b.stdout + b.stderr
    assert locked_run["a_running_after_b"], "snakemake A had finished before B was refused: no overlap tested"
    assert b.returncode != 0, out[-3000:]
    assert "lock" in out.lower(), out[-3000:]
    assert "Traceback" not in out
    # B ran no job: its output lists none
    assert "rule train:" not in out and "rule score:" not in out


def test_first_invocation_finishes_untouched(locked_run, test_run):
    assert locked_run["a_returncode"] == 0, locked_run["a_output"][-3000:]
    work = locked_run["workdir"]
    assert (work / "results/runs" / JOB / "run.json").exists()
    for name in DETERMINISTIC_TABLES:
        pd.testing.assert_frame_equal(
            pd.read_parquet(work / "results/tables" / name), pd.read_parquet(test_run / "results/tables" / name)
        )
    assert not list(work.rglob(".*.tmp*"))
    locks = work / ".snakemake" / "locks"
    assert not locks.exists() or not any(locks.iterdir())  # A released its lock
