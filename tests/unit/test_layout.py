"""dmlbench.layout: the results/ paths and the keys read back from them, from one template each."""

import pytest

from dmlbench import layout
from dmlbench.errors import DmlbenchError

KEYS = {"dataset": "cifar10", "n_anomaly": 5, "method": "arcface_margin0.35", "n_per_class": "all", "seed": 2}


def test_run_paths_from_the_one_template():
    assert layout.run_dir(KEYS) == "results/runs/cifar10/a5/arcface_margin0.35/nall/s2"
    assert layout.run_file("run.json", KEYS, "out") == "out/runs/cifar10/a5/arcface_margin0.35/nall/s2/run.json"
    assert layout.score_file(KEYS) == "results/scores/cifar10/a5/arcface_margin0.35/nall/s2.parquet"
    assert layout.data_file("cifar10") == "results/data/cifar10.npz"
    # without keys: the wildcards of the Snakemake rules
    assert layout.run_dir() == "results/runs/{dataset}/a{n_anomaly}/{method}/n{n_per_class}/s{seed}"
    assert layout.data_file() == "results/data/{dataset}.npz"


@pytest.mark.parametrize(
    "path", [layout.run_dir(KEYS), layout.score_file(KEYS), "benchmarks/x/" + layout.run_path(KEYS)]
)
def test_keys_read_back_from_every_run_path(path):
    assert layout.keys_from_path(path) == KEYS


def test_a_path_outside_the_layout_is_named():
    with pytest.raises(DmlbenchError, match="not a dmlbench run path"):
        layout.keys_from_path("results/runs/cifar10/nall")


def test_job_paths_grid_and_annex():
    grid = layout.group_path(KEYS)
    assert grid == "cifar10/a5/nall/s2"
    assert layout.job_record("train", grid) == "results/jobs/train/cifar10/a5/nall/s2.json"
    assert layout.benchmark_file("score", grid) == "benchmarks/score/cifar10/a5/nall/s2.tsv"
    annex = layout.annex_group_path(["50", "100"]).format(**KEYS)
    assert annex == "cifar10/a5/n50+100/s2"
    assert layout.group_keys(annex + ".json") == {
        "dataset": "cifar10",
        "n_anomaly": 5,
        "n_per_class": "50+100",
        "seed": 2,
    }
    assert layout.group_keys(layout.run_path(KEYS)) is None  # a run's path has a method
