# Shared helpers: config validation, job lists, per-job specs. No lambdas inside rules.
import json
import re
import shlex
import shutil
from pathlib import Path

from snakemake.exceptions import WorkflowError

from dmlbench.aggregate import TABLE_NAMES
from dmlbench.config import annex_conditions, score_spec, train_spec, tsne_datasets, validate, worst_miss_selection
from dmlbench.errors import DmlbenchError
from dmlbench.figures import planned_figures, planned_tables

try:
    _validated = validate(config, "the workflow config")
except DmlbenchError as exc:
    raise WorkflowError(str(exc)) from None
config.clear()
config.update(_validated)

RESULTS = "results"
REPORT_QMD = str(Path(workflow.basedir) / "report" / "report.qmd")
HAVE_QUARTO = shutil.which("quarto") is not None


wildcard_constraints:
    dataset="[A-Za-z0-9][A-Za-z0-9_-]*",
    n_anomaly=r"\d+",
    method="|".join(re.escape(label) for label in config["methods"]),  # labels may hold '.' (sweeps)
    n_per_class=r"all|\d+",
    seed=r"\d+",


def train_jobs():
    """One dict per scored train job (dataset, n_anomaly, method, n_per_class, seed): the main
    grid, then the annex A.2 sizes of the annex conditions."""
    jobs = []
    for cond in config["conditions"]:
        for n in cond["n_anomaly"]:
            for method in config["methods"]:
                for n_per_class in config["n_per_class"]:
                    for seed in config["seeds"]:
                        jobs.append(dict(dataset=cond["dataset"], n_anomaly=n, method=method,
                                         n_per_class=n_per_class, seed=seed))
    for dataset, n in annex_conditions(config):
        for method in config["methods"]:
            for size in config["annex"]["sample_size"]:
                if size in config["n_per_class"]:
                    continue  # already a main-grid run
                for seed in config["seeds"]:
                    jobs.append(dict(dataset=dataset, n_anomaly=n, method=method, n_per_class=size, seed=seed))
    return jobs


def closed_set_jobs():
    """Models trained on all classes (n_anomaly 0, first seed) for the t-SNE maps and closed-set accuracy."""
    return [dict(dataset=d, n_anomaly=0, method=m, n_per_class="all", seed=config["seeds"][0])
            for d in tsne_datasets(config) for m in config["methods"]]


JOB_PATH = "{dataset}/a{n_anomaly}/{method}/n{n_per_class}/s{seed}"


def score_files():
    return [f"{RESULTS}/scores/{JOB_PATH.format(**job)}.parquet" for job in train_jobs()]


def run_files():
    return [f"{RESULTS}/runs/{JOB_PATH.format(**job)}/run.json" for job in train_jobs()]


def closed_set_run_dirs():
    return [f"{RESULTS}/runs/{JOB_PATH.format(**job)}" for job in closed_set_jobs()]


def benchmark_files():
    return ([f"benchmarks/{stage}/{JOB_PATH.format(**job)}.tsv" for stage in ("train", "score") for job in train_jobs()]
            + [f"benchmarks/train/{JOB_PATH.format(**job)}.tsv" for job in closed_set_jobs()])


TABLES = [f"{RESULTS}/tables/{name}.parquet" for name in TABLE_NAMES]
CLOSED_SET_TABLES = [f"{RESULTS}/tables/{name}.parquet" for name in ("tsne", "closed_set")] if closed_set_jobs() else []
SNAPSHOT = f"{RESULTS}/config.yaml"
WORST_MISS_DATA = f"{RESULTS}/data/{worst_miss_selection(config)['dataset']}.npz"
FIGURE_LABELS = planned_figures(config)
FIGURES = [f"{RESULTS}/figures/{label}.{ext}" for label in FIGURE_LABELS for ext in ("svg", "png", "vl.json")]
TABLE_CSVS = [f"{RESULTS}/tables/{label}.csv" for label in planned_tables(config)]
REPORT = ["report/_output/report.html", "report/_output/report.pdf"]


def final_targets():
    return FIGURES + TABLE_CSVS + (REPORT if HAVE_QUARTO else [])


def quoted(obj):
    return shlex.quote(json.dumps(obj, sort_keys=True))


def prepare_spec(wildcards):
    return quoted(config["datasets"][wildcards.dataset])


def job_train_spec(wildcards):
    return quoted(train_spec(config, wildcards.dataset, int(wildcards.n_anomaly), wildcards.method,
                             wildcards.n_per_class, int(wildcards.seed)))


def job_score_spec(wildcards):
    return quoted(score_spec(config))


def config_spec():
    # Key order kept (not sorted): the snapshot lists the config as written, defaults after.
    return shlex.quote(json.dumps(config))


onsuccess:
    print("\ndmlbench outputs:")
    print(f"  tables:  {RESULTS}/tables/ ({', '.join(n + '.parquet' for n in TABLE_NAMES)}, *.csv)")
    print(f"  figures: {RESULTS}/figures/ ({len(FIGURE_LABELS)} figures as *.svg, *.png, *.vl.json)")
    if HAVE_QUARTO:
        print("  report:  report/_output/report.html and report/_output/report.pdf")
    else:
        print("  report:  not rendered - the quarto binary is not on PATH. Install Quarto "
              "(https://quarto.org/docs/get-started/) and run: dmlbench render  (or rerun snakemake)")
