# Shared helpers: config validation, job lists, per-job specs. No lambdas inside rules.
import json
import re
import shlex
import shutil
import sys
from itertools import product
from pathlib import Path

from snakemake.exceptions import WorkflowError

# Snakemake's report() flag, by another name: `report` at a line's start is the report directive.
from snakemake.io import report as for_report

# Light imports only (no torch, altair, pandas): Snakemake parses this file in every cluster job.
from dmlbench.config import (
    annex_conditions,
    read_config_file,
    score_spec,
    train_spec,
    tsne_datasets,
    validate,
    worst_miss_selection,
)
from dmlbench.config import specs as plan
from dmlbench.config.estimate import gpu_visible, no_gpu_warning
from dmlbench.config.tuning import tune_spec, tuned_label, tuned_labels, tuned_train_spec
from dmlbench.errors import DmlbenchError
from dmlbench.layout import (
    CLOSED_SET_TABLE_NAMES,
    GROUP_PATH,
    RESULTS,
    RUN_PATH,
    TABLE_NAMES,
    TUNING_TABLE_NAMES,
    annex_group_path,
    benchmark_file,
    data_file,
    figure_files,
    job_record,
    run_dir,
    run_file,
    score_file,
    snapshot_file,
    spec_file,
    table_file,
    tuning_file,
)
from dmlbench.report import planned_figures, planned_tables

try:
    # Snakemake has read the config files with its own YAML loader, which keeps the last of two
    # equal keys without a word: each is read again by dmlbench's (duplicate keys, `on:` as a key).
    for _path in workflow.configfiles:
        read_config_file(_path)
    # Folder datasets are checked against their directory listing in the main process only: a
    # cluster or cloud job parses the workflow where the images may not be. Nor under --lint,
    # which reads the workflow, not the data (Snakemake skips its own envvars check there too).
    _check_data = workflow.is_main_process and getattr(workflow, "check_envvars", True)
    _validated = validate(config, "the workflow config", check_data=_check_data)
except DmlbenchError as exc:
    raise WorkflowError(str(exc)) from None
config.clear()
config.update(_validated)


def uses_conda_env():
    """True where Snakemake runs each job in the rules' conda env, envs/dmlbench.yaml (--sdm conda)."""
    settings = getattr(workflow, "deployment_settings", None)
    return any(m.name == "CONDA" for m in getattr(settings, "deployment_method", ()) or ())


def braces_escaped(text):
    return text.replace("{", "{{").replace("}", "}}")


# The rules call `dmlbench`: a shell function. Under --sdm conda it runs dmlbench from the
# workflow's src/ with the conda env's Python (the env holds its dependencies, not dmlbench).
# Otherwise it runs the dmlbench of the interpreter that runs Snakemake: a fresh shell (venv not
# activated, its bin/ not on PATH) finds it, and so do cluster and cloud jobs, which rerun
# Snakemake with their interpreter (the image's, in a container). (A function in the shell
# prefix, not a variable in each command: the printed commands stay copyable and lint-clean,
# and no param changes with the interpreter's path.)
if uses_conda_env():
    _source = braces_escaped(shlex.quote(str(Path(workflow.basedir) / "src")))
    shell.prefix(
        f'set -euo pipefail; dmlbench() {{{{ PYTHONPATH={_source}${{{{PYTHONPATH:+:$PYTHONPATH}}}} python -m dmlbench "$@"; }}}}; '
    )
else:
    _python = braces_escaped(shlex.quote(sys.executable))
    shell.prefix(f'set -euo pipefail; dmlbench() {{{{ {_python} -m dmlbench "$@"; }}}}; ')

REPORT_QMD = str(Path(workflow.basedir) / "report" / "report.qmd")
HAVE_QUARTO = shutil.which("quarto") is not None


wildcard_constraints:
    dataset="[A-Za-z0-9][A-Za-z0-9_-]*",
    n_anomaly=r"\d+",
    method="|".join(re.escape(label) for label in config["methods"]),  # labels may hold '.' (sweeps)
    n_per_class=r"all|\d+",
    seed=r"\d+",


# The tuned methods (tuning.methods): each has a tune job per main-grid run, and a second run,
# <label>_tuned, in the same train job as its default run (rules/tune.smk).
TUNED = tuned_labels(config)


def grid_methods():
    """The runs of a main-grid train or score job: every method, then the tuned ones' tuned runs."""
    return list(config["methods"]) + [tuned_label(label) for label in TUNED]


def tune_jobs():
    """One dict per tune job (dataset, n_anomaly, tuned method, n_per_class, seed): the main grid's."""
    return [
        dict(dataset=c["dataset"], n_anomaly=n, method=m, n_per_class=size, seed=seed)
        for c in config["conditions"]
        for n, m, size, seed in product(c["n_anomaly"], TUNED, config["n_per_class"], config["seeds"])
    ]


def train_jobs():
    """One dict per scored train job (dataset, n_anomaly, method, n_per_class, seed): the main
    grid (with the tuned runs), then the annex A.2 sizes of the annex conditions."""
    jobs = []
    for cond in config["conditions"]:
        grid = product(cond["n_anomaly"], grid_methods(), config["n_per_class"], config["seeds"])
        for n, method, n_per_class, seed in grid:
            jobs.append(dict(dataset=cond["dataset"], n_anomaly=n, method=method, n_per_class=n_per_class, seed=seed))
    for dataset, n in annex_conditions(config):
        for method in config["methods"]:
            for size in config["annex"]["sample_size"]:
                if size in config["n_per_class"]:
                    continue  # already a main-grid run
                for seed in config["seeds"]:
                    jobs.append(dict(dataset=dataset, n_anomaly=n, method=method, n_per_class=size, seed=seed))
    return jobs


def closed_set_jobs():
    """The closed-set models' runs (dmlbench.config.specs.closed_set_jobs)."""
    return plan.closed_set_jobs(config)


# A run (RUN_PATH): one method trained on the cases of one condition, size and seed (its own files).
# A train or score job (GROUP_PATH): every method of one (dataset, n_anomaly, n_per_class, seed), in
# one process, so start-up, data loading and compilation are paid once per job, not once per run.
# Both, and every path below, are dmlbench.layout's.
# The main grid's sizes (and "all", the closed-set models'): the only ones the train and score rules match.
GRID_SIZES = plan.grid_sizes(config)
# Annex A.2's sizes that are not main-grid sizes. Their runs are small (a few epochs of tens of images
# per class), so one annex job trains or scores every size and method of a (dataset, n_anomaly, seed):
# its path names the sizes (n50+100+200+500) where a grid job's names its one size.
ANNEX_SIZES = plan.annex_sizes(config)
ANNEX_GROUP_PATH = annex_group_path(ANNEX_SIZES)


def score_files():
    return [score_file(job) for job in train_jobs()]


def run_files():
    return [run_file("run.json", job) for job in train_jobs()]


def closed_set_run_dirs():
    return [run_dir(job) for job in closed_set_jobs()]


def group_path(job):
    """The path (below benchmarks/{rule}/, results/jobs/{rule}/, logs/{rule}/) of the train or score
    job that holds a run: GROUP_PATH, or ANNEX_GROUP_PATH for an annex size."""
    return plan.group_path(config, job)


def groups(jobs):
    """The train or score jobs (their group paths) of a list of runs, in order."""
    return list(dict.fromkeys(group_path(job) for job in jobs))


def job_groups():
    """(rule, group path) of every train and score job (dmlbench.config.specs.job_groups): what
    `dmlbench progress` counts too."""
    return plan.job_groups(config)


def benchmark_files():
    return [benchmark_file(stage, g) for stage, g in job_groups()]


def job_record_files():
    """The job records (results/jobs/{rule}/...json: where each job's time went) of every train and score job."""
    return [job_record(stage, g) for stage, g in job_groups()]


def method_paths(template):
    """``template`` (a path with the wildcards of RUN_PATH) once per method of the config, the
    method filled in and the other wildcards kept: the files of a job's runs."""
    return [template.replace("{method}", braces_escaped(method)) for method in config["methods"]]


def grid_method_paths(template):
    """``template`` once per run of a main-grid job (:func:`grid_methods`): the default runs and,
    with tuning, the tuned ones."""
    return [template.replace("{method}", braces_escaped(method)) for method in grid_methods()]


def tuned_best_files(wildcards):
    """The best.json of every tuned method of a main-grid train job (its tune jobs' results)."""
    keys = dict(wildcards.items())
    return [tuning_file("best.json", {**keys, "method": label}) for label in TUNED]


def tuned_arg(wildcards, input):
    """`--tuned <best.json ...>` where the train job has tuned runs."""
    return "--tuned " + " ".join(shlex.quote(p) for p in input.tuned) if input.tuned else ""


def annex_paths(template):
    """``template`` (a path with the wildcards of RUN_PATH) once per annex size and method, both
    filled in (sizes outer, methods inner, as :func:`job_annex_specs`): the files of an annex job's runs."""
    return [path.replace("{n_per_class}", size) for size in ANNEX_SIZES for path in method_paths(template)]


TABLES = [table_file(name) for name in TABLE_NAMES]
TUNING_TABLES = [table_file(name) for name in TUNING_TABLE_NAMES] if TUNED else []
#: With tuning, the train rule serves the main grid (n_anomaly > 0, with the tuned runs) and
#: train_closed_set the closed-set models (n_anomaly 0, no tuned runs).
GRID_N_ANOMALY = r"[1-9]\d*" if TUNED else r"\d+"
CLOSED_SET_TABLES = [table_file(name) for name in CLOSED_SET_TABLE_NAMES] if closed_set_jobs() else []
SNAPSHOT = snapshot_file()
WORST_MISS_DATA = data_file(worst_miss_selection(config)["dataset"])
FIGURE_LABELS = planned_figures(config)
FIGURES = [path for label in FIGURE_LABELS for path in figure_files(label)]
TABLE_LABELS = planned_tables(config)
TABLE_CSVS = [table_file(label, suffix=".csv") for label in TABLE_LABELS]


def caption(label):
    """The caption file of a figure or table for Snakemake's report (`snakemake --report`),
    relative to rules/: report/captions/<label>.rst, written from the sections' declarations
    (python -m dmlbench.report.captions; a test keeps them equal)."""
    return f"../report/captions/{label}.rst"


def reported_figures():
    """The figures rule's figure outputs, each figure's SVG registered with report() and its caption."""
    return [
        (
            for_report(path, caption=caption(label), category="Figures", labels={"figure": label})
            if path.endswith(".svg")
            else path
        )
        for label in FIGURE_LABELS
        for path in figure_files(label)
    ]


def reported_tables():
    """The figures rule's table CSVs, each registered with report() and its caption."""
    return [
        for_report(path, caption=caption(label), category="Tables", labels={"table": label})
        for label, path in zip(TABLE_LABELS, TABLE_CSVS)
    ]


REPORT = {"html": "report/_output/report.html", "pdf": "report/_output/report.pdf"}


def final_targets():
    return FIGURES + TABLE_CSVS + (list(REPORT.values()) if HAVE_QUARTO else [])


# Folders a command reads or writes, derived from the rule's own files: under a storage plugin
# (no shared filesystem) a job's files sit in a local copy whose folder is not the hard-coded one.
def folder(path):
    return str(Path(path).parent)


def run_folders(wildcards, input):
    """The run folders holding the score job's inputs (embeddings.npz, run.json), one per method."""
    return [folder(path) for path in input.run]


def train_out_folders(wildcards, output):
    """The run folders the train job writes (embeddings.npz, train_log.csv, run.json), one per method."""
    return [folder(path) for path in output.run]


def closed_set_folders(wildcards, input):
    """The run folders of the closed-set models, one per input run.json."""
    return [folder(path) for path in input.runs]


def benchmark_root(wildcards, input):
    """The benchmarks/ folder above benchmarks/{rule}/{dataset}/a{n}/n{N}/s{seed}.tsv."""
    return str(Path(input.benchmarks[0]).parents[len(GROUP_PATH.split("/"))])


def job_record_root(wildcards, input):
    """The results/jobs/ folder above results/jobs/{rule}/{dataset}/a{n}/n{N}/s{seed}.json."""
    return str(Path(input.jobs[0]).parents[len(GROUP_PATH.split("/"))])


def tables_out_folder(wildcards, output):
    """results/tables/, where aggregate and closed_set write their parquet tables."""
    return folder(output.tables[0])


def tables_in_folder(wildcards, input):
    """results/tables/ of the figures rule: its input tables (its CSVs go next to them)."""
    return folder(input.tables[0])


def tune_out_folder(wildcards, output):
    """A tune job's folder (best.json, trials.csv, and its default journal)."""
    return folder(output.best)


def figures_out_folder(wildcards, output):
    return folder(output.figures[0])


def data_folder(wildcards, input):
    """results/data/, holding the dataset npz of the worst-misses images."""
    return folder(input.data)


def results_folder(wildcards, input):
    """The results folder the report renders from: the one holding the config snapshot."""
    return folder(input.config)


def report_out_folder(wildcards, output):
    return folder(output.html)


def spec_text(obj):
    """A spec as the spec rules write it (rules/specs.smk), keys sorted: equal specs, equal text."""
    return json.dumps(obj, sort_keys=True)


def prepare_spec(wildcards):
    return spec_text(config["datasets"][wildcards.dataset])


def job_specs(wildcards, sizes):
    """A train job's specs as its spec file holds them (:func:`spec_list`)."""
    return spec_text(spec_list(wildcards, sizes))


def spec_list(wildcards, sizes):
    """The specs of a train job's runs (a list): per size of ``sizes``, one per method (config
    order), as its outputs (method_paths, annex_paths) list them."""
    w = wildcards
    return [
        train_spec(config, w.dataset, int(w.n_anomaly), method, size, int(w.seed))
        for size in sizes
        for method in config["methods"]
    ]


def job_train_specs(wildcards):
    """The specs of a grid (or closed-set) job's runs: its one size, every method, then (a grid
    job with tuning) the tuned runs, as grid_method_paths lists them."""
    w = wildcards
    specs = spec_list(w, [w.n_per_class])
    if TUNED and int(w.n_anomaly) > 0:
        specs += [
            tuned_train_spec(config, w.dataset, int(w.n_anomaly), label, w.n_per_class, int(w.seed)) for label in TUNED
        ]
    return spec_text(specs)


def job_tune_spec(wildcards):
    w = wildcards
    return shlex.quote(spec_text(tune_spec(config, w.dataset, int(w.n_anomaly), w.method, w.n_per_class, int(w.seed))))


def tune_storage_arg(wildcards):
    """`--storage <URL>` when tuning.storage names a database; none: the journal beside best.json."""
    url = config["tuning"]["storage"]
    return f"--storage {shlex.quote(url)}" if url else ""


def job_annex_specs(wildcards):
    """The specs of an annex job's runs: every annex size and method."""
    return job_specs(wildcards, ANNEX_SIZES)


def job_score_spec(wildcards):
    return spec_text(score_spec(config))


def config_spec(wildcards):
    # Key order kept (not sorted): the snapshot lists the config as written, defaults after.
    return json.dumps(config)


def write_spec(path, text, log):
    """Write a spec file whole (a temporary file renamed over it): a job never reads half of one.
    Its log says what was written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp")
    tmp.write_text(f"{text}\n")
    tmp.replace(path)
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    Path(log).write_text(f"{path}: {len(text)} characters of JSON\n")


onstart:
    # A big config started without a GPU: one warning line with bench/full_study.py --estimate's model.
    if not gpu_visible():
        _warning = no_gpu_warning(config)
        if _warning:
            print(_warning, file=sys.stderr)


onsuccess:
    print("\ndmlbench outputs:")
    print(f"  tables:  {RESULTS}/tables/ ({', '.join(n + '.parquet' for n in TABLE_NAMES)}, *.csv)")
    print(f"  figures: {RESULTS}/figures/ ({len(FIGURE_LABELS)} figures as *.svg, *.png, *.vl.json)")
    if HAVE_QUARTO:
        print("  report:  report/_output/report.html and report/_output/report.pdf")
    else:
        print(
            "  report:  not rendered - the quarto binary is not on PATH. Install Quarto "
            "(https://quarto.org/docs/get-started/) and run: dmlbench render  (or rerun snakemake)"
        )
