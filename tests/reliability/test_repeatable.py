"""Repeatable: the same config and seeds on the CPU give byte-identical tables; another seed
gives other tables.

Compared: results/tables/metrics.parquet and class_distances.parquet, as file bytes.
Excluded: runtime.parquet, which holds the measured wall times and memory of the jobs
(different on every run by nature).
"""

import pytest

from tests.reliability.conftest import DETERMINISTIC_TABLES

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", DETERMINISTIC_TABLES)
def test_same_seeds_give_byte_identical_tables(test_run, locked_run, name):
    """Two independent runs of config/test.yaml in different folders (the reference run and the
    lock test's first run, which nothing touched) on the CPU."""
    assert locked_run["a_returncode"] == 0, locked_run["a_output"][-3000:]
    first = (test_run / "results/tables" / name).read_bytes()
    second = (locked_run["workdir"] / "results/tables" / name).read_bytes()
    assert first == second


@pytest.mark.parametrize("name", ["metrics.parquet", "class_distances.parquet"])
def test_another_seed_gives_other_tables(test_run, seed_run, name):
    import pandas as pd

    first = test_run / "results/tables" / name
    other = seed_run / "results/tables" / name
    assert first.read_bytes() != other.read_bytes()
    a, b = pd.read_parquet(first), pd.read_parquet(other)
    assert set(a["seed"]) == {0} and set(b["seed"]) == {1}
    value = "value" if "value" in a else "normalised"
    # not only the seed column: the numbers themselves differ
    assert not a[value].reset_index(drop=True).equals(b[value].reset_index(drop=True))


def test_embeddings_are_identical_too(test_run, locked_run):
    """The tables are identical because the trained embeddings are (not by rounding luck)."""
    import numpy as np

    from tests.reliability.conftest import JOB

    with (
        np.load(test_run / "results/runs" / JOB / "embeddings.npz") as a,
        np.load(locked_run["workdir"] / "results/runs" / JOB / "embeddings.npz") as b,
    ):
        assert a.files == b.files
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
