"""Section 16, Reproducibility: the software, hardware and code of the runs, the recipes, the
runtime of every workflow stage, and the effective config."""

from __future__ import annotations

import yaml

from dmlbench.provenance import PACKAGES
from dmlbench.report._declare import Column, Table
from dmlbench.report._style import n_per_class_order, pd, require_columns

TITLE = "Reproducibility"
RUNTIME_SUMMARY_COLUMNS = ["rule", "jobs", "total_minutes", "median_seconds", "max_seconds", "max_rss_mb"]
RUNTIME_PHASE_COLUMNS = ["rule", "phase", "total_minutes", "share", "per_job_seconds"]
#: runtime.parquet's phases (dmlbench.phases.PHASES), as the report names them.
PHASE_NAMES = {
    "startup": "start-up (interpreter, imports, device)",
    "data": "data load",
    "build": "model and Learner set-up",
    "compile": "torch.compile",
    "training": "training (fits)",
    "embedding": "embeddings",
    "restore": "run cache",
    "scoring": "scoring",
    "writing": "writing",
    "other": "other",
}
# The workflow's stages in the order they run; other rules follow alphabetically.
RULE_ORDER = ("prepare", "train", "score", "aggregate", "figures", "report")


#: Provenance columns of runs.parquet summarised in the report, in this order (those present):
#: the hardware and its settings, every package that can change a number
#: (dmlbench.provenance.PACKAGES), CUDA and cuDNN, then the code.
PROVENANCE = (
    "device",
    "device_index",
    "threads",
    "precision",
    "compiled",
    "deterministic",
    "python",
    "dmlbench",
    *PACKAGES,
    "cuda",
    "cudnn",
    "git_commit",
    "git_dirty",
    "code_hash",
)
RECIPE = ("epochs", "batch_size", "lr")


def _values(series: pd.Series) -> str:
    values = [str(v) for v in dict.fromkeys(series.dropna().tolist()) if str(v) != ""]  # "": not installed
    return ", ".join(values) if values else "—"


def provenance_table(runs: pd.DataFrame) -> pd.DataFrame:
    """What the train jobs ran on and with, one row per property of ``runs.parquet`` (device,
    versions, commit, ...): its distinct values over all runs; then the training recipe (epochs,
    batch size, learning rate) per images-per-class setting, so annex runs' own recipes show.

    Columns: property, value.
    """
    require_columns(runs, ["n_per_class"], "runs.parquet")
    rows = [{"property": p, "value": _values(runs[p])} for p in PROVENANCE if p in runs.columns]
    for key in RECIPE:
        if key not in runs.columns:
            continue
        parts = []
        for size in n_per_class_order(runs["n_per_class"].unique()):
            parts.append(
                f"{_values(runs.loc[runs['n_per_class'].astype(str) == size, key])} "
                f"({'all images' if size == 'all' else size + ' per class'})"
            )
        rows.append({"property": key, "value": "; ".join(parts)})
    return pd.DataFrame(rows, columns=["property", "value"])


def runtime_summary(runtime: pd.DataFrame) -> pd.DataFrame:
    """Per rule (workflow order): jobs, total_minutes, median_seconds, max_seconds, max_rss_mb.
    An empty runtime table gives an empty frame with those columns."""
    require_columns(runtime, ["rule", "seconds", "max_rss_mb"], "runtime.parquet")
    rows = []
    for rule, grp in runtime.groupby("rule"):
        seconds = grp["seconds"].astype("float64")
        rows.append(
            {
                "rule": rule,
                "jobs": len(grp),
                "total_minutes": seconds.sum() / 60,
                "median_seconds": seconds.median(),
                "max_seconds": seconds.max(),
                "max_rss_mb": grp["max_rss_mb"].astype("float64").max(),
            }
        )
    rank = {r: i for i, r in enumerate(RULE_ORDER)}
    rows.sort(key=lambda r: (rank.get(r["rule"], len(rank)), r["rule"]))
    out = pd.DataFrame(rows, columns=RUNTIME_SUMMARY_COLUMNS)
    return out.astype(
        {
            "rule": "str",
            "jobs": "int64",
            "total_minutes": "float64",
            "median_seconds": "float64",
            "max_seconds": "float64",
            "max_rss_mb": "float64",
        }
    )


def runtime_phases(runtime: pd.DataFrame) -> pd.DataFrame:
    """Where the train and score jobs' time went: per rule whose jobs recorded their phases (workflow
    order) and per phase (dmlbench.phases order) with any time, the phase's total minutes over the
    rule's jobs, its share of those jobs' wall time (the shares of a rule add up to 1), and its mean
    seconds per job. Columns: rule, phase (in words), total_minutes, share, per_job_seconds. Empty
    (with those columns) when no job recorded phases."""
    require_columns(runtime, ["rule", "seconds"], "runtime.parquet")
    phases = [name for name in PHASE_NAMES if f"{name}_seconds" in runtime.columns]
    rows = []
    if phases:
        timed = runtime.dropna(subset=[f"{p}_seconds" for p in phases], how="all")
        rank = {r: i for i, r in enumerate(RULE_ORDER)}
        for rule in sorted(timed["rule"].unique(), key=lambda r: (rank.get(r, len(rank)), r)):
            grp = timed[timed["rule"] == rule]
            wall = grp["seconds"].astype("float64").sum()
            for name in phases:
                seconds = grp[f"{name}_seconds"].astype("float64").fillna(0.0)
                if seconds.sum() <= 0:
                    continue
                rows.append(
                    {
                        "rule": rule,
                        "phase": PHASE_NAMES[name],
                        "total_minutes": seconds.sum() / 60,
                        "share": seconds.sum() / wall if wall > 0 else float("nan"),
                        "per_job_seconds": seconds.mean(),
                    }
                )
    out = pd.DataFrame(rows, columns=RUNTIME_PHASE_COLUMNS)
    return out.astype(
        {"rule": "str", "phase": "str", "total_minutes": "float64", "share": "float64", "per_job_seconds": "float64"}
    )


def config_yaml(config: dict) -> str:
    """The config as the report's reproducibility appendix prints it."""
    return yaml.safe_dump(config, sort_keys=False)


TABLES = (
    Table(
        "tbl-runs",
        "Software, hardware and code of the train jobs (distinct values over all runs; device_index: the GPU's "
        "index among the job's visible ones; cuda, cudnn: the versions torch was built with; git_dirty: "
        "uncommitted changes; code_hash: hash of the dmlbench sources), and the training recipe per "
        "images-per-class setting.",
        lambda v: v.t["runs"],
        columns=(Column("property", "property", None, 1.0), Column("value", "value", None, 4.0)),
        shown=provenance_table,
    ),
    Table(
        "tbl-runtime",
        "Wall time and peak memory per workflow stage, from the workflow's benchmark files.",
        lambda v: runtime_summary(v.t["runtime"]),
        columns=(
            Column("rule", "stage"),
            Column("jobs", "jobs", "d", 0.6),
            Column("total_minutes", "total (min)", ".1f"),
            Column("median_seconds", "median (s)", ".1f"),
            Column("max_seconds", "longest (s)", ".1f"),
            Column("max_rss_mb", "peak memory (MB)", ".0f"),
        ),
    ),
    Table(
        "tbl-runtime-phases",
        "Where the train and score jobs' wall time went, per phase: total over the stage's jobs, share of "
        "their wall time, mean per job. Each job trains (or scores) every method of one condition, size and "
        "seed (annex A.2: every size of a condition and seed in one job), so process start-up is paid once per "
        "job; 'other' is what the jobs' own clocks did not cover "
        "(the shell around the process included).",
        lambda v: runtime_phases(v.t["runtime"]),
        columns=(
            Column("rule", "stage"),
            Column("phase", "phase", None, 2.4),
            Column("total_minutes", "total (min)", ".1f"),
            Column("share", "share", ".0%"),
            Column("per_job_seconds", "per job (s)", ".1f"),
        ),
    ),
)
FIGURES = ()
