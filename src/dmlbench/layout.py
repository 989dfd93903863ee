"""The results/ layout, written once: where every stage reads and writes, and the keys a path holds.

``rules/common.smk`` builds the workflow's inputs and outputs from these templates (its wildcards
are the templates' fields), and the ``dmlbench`` commands, the run cache and the aggregate stage
read the same ones, so a path is spelled in one place::

    results/data/{dataset}.npz                                  prepare
    results/runs/{dataset}/a{n_anomaly}/{method}/n{N}/s{seed}/  train: embeddings.npz, train_log.csv, run.json
    results/scores/{dataset}/a{n_anomaly}/{method}/n{N}/s{seed}.parquet    score
    results/tuning/{dataset}/a{n_anomaly}/{method}/n{N}/s{seed}/  tune: best.json, trials.csv (journal.log)
    results/jobs/{rule}/{dataset}/a{n_anomaly}/n{N}/s{seed}.json           a train or score job's record
    results/tables/{name}.parquet, results/tables/{label}.csv             aggregate, closed-set, figures
    results/figures/{label}.{svg,png,vl.json}                              figures
    results/config.yaml                                                    snapshot
    benchmarks/{rule}/{dataset}/a{n_anomaly}/n{N}/s{seed}.tsv             Snakemake's benchmark of a job

A **run** is one method trained on the cases of one condition, size and seed (its own folder); a
train or score **job** holds every method of one (dataset, n_anomaly, n_per_class, seed), so its
path (:data:`GROUP_PATH`) has no method; an annex A.2 job holds every size too, and its path names
them (``n50+100+200+500``, :func:`annex_group_path`). Standard library only (and dmlbench.errors):
Snakemake imports this module in every job's parse.
"""

from __future__ import annotations

import re
from pathlib import Path

from dmlbench.errors import DmlbenchError

#: The results folder of the workflow (the commands take ``--results``).
RESULTS = "results"
#: Snakemake's benchmark files of the train and score jobs (outside results/, as Snakemake writes them).
BENCHMARKS = "benchmarks"

#: A run's path below results/runs/ (and results/scores/, with ``.parquet``).
RUN_PATH = "{dataset}/a{n_anomaly}/{method}/n{n_per_class}/s{seed}"
#: A train or score job's path below results/jobs/{rule}/, benchmarks/{rule}/ and logs/{rule}/.
GROUP_PATH = "{dataset}/a{n_anomaly}/n{n_per_class}/s{seed}"

#: The files of a run folder, in the order the train stage writes them (run.json last: a folder
#: without it is unfinished).
RUN_FILES = ("embeddings.npz", "train_log.csv", "run.json")
#: Tables written by the aggregate stage (results/tables/<name>.parquet; columns in docs/tables.md).
TABLE_NAMES = ("metrics", "class_distances", "summary", "ranking", "worst_misses", "runtime", "runs")
#: Tables written by the closed-set stage, from the models trained on all classes.
CLOSED_SET_TABLE_NAMES = ("tsne", "closed_set")
#: Tables of the tune jobs' results (with tuning.methods): every trial, and each case's best parameters.
TUNING_TABLE_NAMES = ("tuning_trials", "tuning_best")
#: The files of one figure under results/figures/.
FIGURE_SUFFIXES = (".svg", ".png", ".vl.json")

#: What each key of a path may hold, as a regular expression.
_FIELDS = {
    "dataset": r"[^/]+",
    "n_anomaly": r"\d+",
    "method": r"[^/]+",
    "n_per_class": r"[^/]+",
    "seed": r"\d+",
}


def _pattern(template: str) -> str:
    """The regular expression of a path template, one named group per field."""
    parts = re.split(r"\{(\w+)\}", template)
    return "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>{_FIELDS[p]})" for i, p in enumerate(parts))


#: A run's keys in any path that holds :data:`RUN_PATH` (run folders, score files, benchmarks).
KEY_PATTERN = re.compile(_pattern(RUN_PATH))
#: A job's keys at the end of a path (its N lists the sizes of an annex job: 50+100).
GROUP_PATTERN = re.compile(_pattern(GROUP_PATH) + "$")


def _filled(template: str, keys: dict | None) -> str:
    """``template`` with ``keys`` filled in, or as it is (the wildcards of a Snakemake path)."""
    return template if keys is None else template.format(**keys)


def run_path(keys: dict | None = None) -> str:
    """A run's path below results/runs/ (:data:`RUN_PATH`, filled with ``keys`` when given)."""
    return _filled(RUN_PATH, keys)


def group_path(keys: dict | None = None) -> str:
    """A job's path (:data:`GROUP_PATH`, filled with ``keys`` when given; ``method`` is ignored)."""
    return _filled(GROUP_PATH, keys)


def annex_group_path(sizes: list[str]) -> str:
    """The path of an annex A.2 job, which holds every size of ``sizes``: ``{dataset}/a{n_anomaly}/n50+100/s{seed}``."""
    return GROUP_PATH.replace("{n_per_class}", "+".join(str(s) for s in sizes))


def data_dir(results: str | Path = RESULTS) -> str:
    return f"{Path(results).as_posix()}/data"


def data_file(dataset: str = "{dataset}", results: str | Path = RESULTS) -> str:
    """The prepared dataset: results/data/{dataset}.npz."""
    return f"{data_dir(results)}/{dataset}.npz"


def runs_dir(results: str | Path = RESULTS) -> str:
    return f"{Path(results).as_posix()}/runs"


def run_dir(keys: dict | None = None, results: str | Path = RESULTS) -> str:
    """A run folder: results/runs/{dataset}/a{n}/{method}/n{N}/s{seed}."""
    return f"{runs_dir(results)}/{run_path(keys)}"


def run_file(name: str, keys: dict | None = None, results: str | Path = RESULTS) -> str:
    """A file of a run folder (one of :data:`RUN_FILES`)."""
    return f"{run_dir(keys, results)}/{name}"


def scores_dir(results: str | Path = RESULTS) -> str:
    return f"{Path(results).as_posix()}/scores"


def score_file(keys: dict | None = None, results: str | Path = RESULTS) -> str:
    """A run's scores: results/scores/{dataset}/a{n}/{method}/n{N}/s{seed}.parquet."""
    return f"{scores_dir(results)}/{run_path(keys)}.parquet"


#: The files of a tune job (results/tuning/{RUN_PATH}/): each case's best parameters, every trial.
TUNING_FILES = ("best.json", "trials.csv")
#: The default Optuna storage of a tune job, beside its files (not a Snakemake output: Snakemake
#: deletes a failed job's outputs, and a killed tune job resumes from this journal).
TUNING_JOURNAL = "journal.log"


def tuning_dir(keys: dict | None = None, results: str | Path = RESULTS) -> str:
    """A tune job's folder: results/tuning/{dataset}/a{n}/{method}/n{N}/s{seed}."""
    return f"{Path(results).as_posix()}/tuning/{run_path(keys)}"


def tuning_file(name: str, keys: dict | None = None, results: str | Path = RESULTS) -> str:
    """A tune job's file (one of :data:`TUNING_FILES`, or :data:`TUNING_JOURNAL`)."""
    return f"{tuning_dir(keys, results)}/{name}"


def jobs_dir(results: str | Path = RESULTS) -> str:
    return f"{Path(results).as_posix()}/jobs"


def job_record(rule: str, group: str = GROUP_PATH, results: str | Path = RESULTS) -> str:
    """A train or score job's record of where its time went: results/jobs/{rule}/{group}.json."""
    return f"{jobs_dir(results)}/{rule}/{group}.json"


def benchmark_file(rule: str, group: str = GROUP_PATH) -> str:
    """Snakemake's benchmark of a job: benchmarks/{rule}/{group}.tsv."""
    return f"{BENCHMARKS}/{rule}/{group}.tsv"


def tables_dir(results: str | Path = RESULTS) -> str:
    return f"{Path(results).as_posix()}/tables"


def table_file(name: str, results: str | Path = RESULTS, suffix: str = ".parquet") -> str:
    """A table: results/tables/{name}.parquet (or ``suffix``: the figures stage's CSVs)."""
    return f"{tables_dir(results)}/{name}{suffix}"


def figures_dir(results: str | Path = RESULTS) -> str:
    return f"{Path(results).as_posix()}/figures"


def figure_files(label: str, results: str | Path = RESULTS) -> list[str]:
    """A figure's files: results/figures/{label}.svg, .png and .vl.json."""
    return [f"{figures_dir(results)}/{label}{suffix}" for suffix in FIGURE_SUFFIXES]


def spec_file(kind: str, group: str | None = None, results: str | Path = RESULTS) -> str:
    """A job spec the workflow writes for its jobs to read (not on their command lines):
    results/specs/{kind}/{group}.json (train: a job's runs; prepare: a dataset) or
    results/specs/{kind}.json (score: every score job's; config: the snapshot's)."""
    return f"{Path(results).as_posix()}/specs/{kind}" + (f"/{group}.json" if group else ".json")


def snapshot_file(results: str | Path = RESULTS) -> str:
    """The effective config of the run, defaults filled: results/config.yaml."""
    return f"{Path(results).as_posix()}/config.yaml"


def keys_from_path(path: str | Path) -> dict:
    """The run keys in a run, score or benchmark path; DmlbenchError for a path without them."""
    m = KEY_PATTERN.search(Path(path).as_posix())
    if not m:
        raise DmlbenchError(
            f"{path}: not a dmlbench run path (expected .../{{dataset}}/a{{n}}/{{method}}/n{{N}}/s{{seed}})"
        )
    return {
        "dataset": m["dataset"],
        "n_anomaly": int(m["n_anomaly"]),
        "method": m["method"],
        "n_per_class": m["n_per_class"],
        "seed": int(m["seed"]),
    }


def group_keys(path: str | Path) -> dict | None:
    """The keys of a job path ({dataset}/a{n}/n{N}/s{seed}, a suffix ignored), or None for another path."""
    m = GROUP_PATTERN.fullmatch(Path(path).with_suffix("").as_posix())
    if not m:
        return None
    return {
        "dataset": m["dataset"],
        "n_anomaly": int(m["n_anomaly"]),
        "n_per_class": m["n_per_class"],
        "seed": int(m["seed"]),
    }
