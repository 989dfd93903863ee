# Shared helpers: config validation, job lists, per-job specs. No lambdas inside rules.
import json
import shlex
import shutil
from pathlib import Path

from snakemake.exceptions import WorkflowError

from dmlbench.aggregate import TABLE_NAMES
from dmlbench.config import score_spec, train_spec, validate
from dmlbench.errors import DmlbenchError

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
    method="|".join(config["methods"]),
    n_per_class=r"all|\d+",
    seed=r"\d+",


def train_jobs():
    """One dict per train job: (dataset, n_anomaly, method, n_per_class, seed)."""
    jobs = []
    for cond in config["conditions"]:
        for n in cond["n_anomaly"]:
            for method in config["methods"]:
                for n_per_class in config["n_per_class"]:
                    for seed in config["seeds"]:
                        jobs.append(dict(dataset=cond["dataset"], n_anomaly=n, method=method,
                                         n_per_class=n_per_class, seed=seed))
    return jobs


JOB_PATH = "{dataset}/a{n_anomaly}/{method}/n{n_per_class}/s{seed}"


def score_files():
    return [f"{RESULTS}/scores/{JOB_PATH.format(**job)}.parquet" for job in train_jobs()]


def benchmark_files():
    return [f"benchmarks/{stage}/{JOB_PATH.format(**job)}.tsv" for stage in ("train", "score") for job in train_jobs()]


TABLES = [f"{RESULTS}/tables/{name}.parquet" for name in TABLE_NAMES]
FIGURE_LABELS = ["fig-auroc-box", "fig-normalised-distance"]
FIGURES = [f"{RESULTS}/figures/{label}.{ext}" for label in FIGURE_LABELS for ext in ("svg", "png", "vl.json")]
REPORT = ["report/_output/report.html", "report/_output/report.pdf"]


def final_targets():
    return FIGURES + (REPORT if HAVE_QUARTO else [])


def quoted(obj):
    return shlex.quote(json.dumps(obj, sort_keys=True))


def prepare_spec(wildcards):
    return quoted(config["datasets"][wildcards.dataset])


def job_train_spec(wildcards):
    return quoted(train_spec(config, wildcards.dataset, int(wildcards.n_anomaly), wildcards.method,
                             wildcards.n_per_class, int(wildcards.seed)))


def job_score_spec(wildcards):
    return quoted(score_spec(config))


onsuccess:
    print("\ndmlbench outputs:")
    print(f"  tables:  {RESULTS}/tables/ ({', '.join(n + '.parquet' for n in TABLE_NAMES)}, *.csv)")
    print(f"  figures: {RESULTS}/figures/ (*.svg, *.png, *.vl.json)")
    if HAVE_QUARTO:
        print("  report:  report/_output/report.html and report/_output/report.pdf")
    else:
        print("  report:  not rendered - the quarto binary is not on PATH. Install Quarto "
              "(https://quarto.org/docs/get-started/) and run: dmlbench render  (or rerun snakemake)")
