"""Published numbers to set beside a run's: the study's (package data, ``src/dmlbench/references/``)
and the extra files a config names under ``references:`` - another paper's table in the same
columns, or an earlier dmlbench run's ``results/tables/summary.parquet`` (or a CSV of it).

Torch-free and pandas-free: the config check reads each extra file's columns (a CSV's header, a
parquet file's schema) before any job. The Reproduction section (dmlbench.report.reproduction)
reads the rows through :func:`reference_rows`.

A reference table has one row per published value (``REFERENCE_COLUMNS``):

- ``dataset`` (the config's dataset key: cifar10, mnist), ``n_anomaly``, ``n_per_class`` ("all"
  or a number), ``distance`` (cosine, euclidean), ``k`` (1, 5, ..., all: the scorer
  ``{distance}_k{k}``) and ``method`` (a head, or ``mean_of_methods``: the mean over the heads);
- ``statistic``: ``mean_auroc`` or ``median_auroc`` over the cases;
- ``value``, or ``upper_bound`` where only a bound is known (the value left empty);
- ``tolerance``: how exactly the value is known (± in AUROC); ``source``: where it was read.
"""

from __future__ import annotations

import csv
import math
from importlib import resources
from pathlib import Path

import yaml

from dmlbench.errors import ConfigError

REFERENCE_COLUMNS = (
    "dataset",
    "n_anomaly",
    "n_per_class",
    "distance",
    "k",
    "method",
    "statistic",
    "value",
    "upper_bound",
    "tolerance",
    "source",
)
#: Columns a reference file must have (``upper_bound`` may be left out when no value is a bound).
REQUIRED_REFERENCE_COLUMNS = tuple(c for c in REFERENCE_COLUMNS if c != "upper_bound")
#: Columns of a dmlbench summary table (dmlbench.stats.SUMMARY_COLUMNS) that a reference reads.
SUMMARY_REFERENCE_COLUMNS = (
    "dataset",
    "n_anomaly",
    "method",
    "n_per_class",
    "scorer",
    "metric",
    "mean",
    "ci_low",
    "ci_high",
)
STATISTICS = ("mean_auroc", "median_auroc")
MEAN_OF_METHODS = "mean_of_methods"
STUDY = "study"
_KNN_DISTANCES = ("cosine", "euclidean")


def _package_file(name: str) -> Path:
    return Path(str(resources.files("dmlbench") / "references" / name))


def study_file() -> Path:
    """The study's numbers (package data: ``dmlbench/references/study.csv``)."""
    return _package_file("study.csv")


def study_metadata() -> dict:
    """The study's citation, setting, conditions and the config that matches it
    (``dmlbench/references/study.yaml``)."""
    with open(_package_file("study.yaml"), encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _columns(path: Path, where: str) -> list[str]:
    """The column names of a CSV or parquet file; ConfigError naming ``where`` and the file."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq  # only for a parquet reference: the config check stays light otherwise

        try:
            return list(pq.read_schema(path).names)
        except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same message
            raise ConfigError(f"{where}: {path} is not a readable parquet file ({exc})") from None
    if path.suffix not in (".csv", ".tsv", ".txt"):
        raise ConfigError(f"{where}: {path} is neither a CSV nor a parquet file; give a .csv or a .parquet")
    with open(path, newline="", encoding="utf-8") as fh:
        header = next(csv.reader(fh, delimiter="\t" if path.suffix == ".tsv" else ","), None)
    if not header:
        raise ConfigError(f"{where}: {path} is empty; a reference CSV starts with a header row")
    return [h.strip() for h in header]


def reference_kind(path: str | Path, where: str = "references") -> str:
    """``"reference"`` (a table in ``REFERENCE_COLUMNS``) or ``"summary"`` (a dmlbench run's
    summary table); ConfigError naming ``where`` and the file when it is missing or lacks columns."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"{where}: file {path} not found; give the path of a reference CSV (columns "
            f"{', '.join(REQUIRED_REFERENCE_COLUMNS)}) or of an earlier run's results/tables/summary.parquet, "
            f"relative to the directory the workflow runs in"
        )
    columns = set(_columns(path, where))
    if set(REQUIRED_REFERENCE_COLUMNS) <= columns:
        return "reference"
    if set(SUMMARY_REFERENCE_COLUMNS) <= columns:
        return "summary"
    missing_ref = [c for c in REQUIRED_REFERENCE_COLUMNS if c not in columns]
    missing_sum = [c for c in SUMMARY_REFERENCE_COLUMNS if c not in columns]
    raise ConfigError(
        f"{where}: {path} lacks the columns {', '.join(missing_ref)} of a reference table "
        f"(or {', '.join(missing_sum)} of a dmlbench summary table); add them or name another file"
    )


def check_references(config: dict, source: str = "config") -> None:
    """Each ``references`` entry: the file exists and has a reference table's or a summary
    table's columns. Relative paths are resolved against the working directory (where the
    workflow runs) and written back absolute, so the report, rendered in another folder, finds them."""
    resolved = []
    for i, entry in enumerate(config.get("references") or []):
        path = Path(entry).expanduser().resolve()
        reference_kind(path, f"{source}: references.{i} ({entry})")
        resolved.append(str(path))
    if "references" in config:
        config["references"] = resolved


def _number(text, what: str, where: str) -> float:
    if text is None or str(text).strip() == "":
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"{where}: {what} {text!r} is not a number") from None


def _reference_rows(path: Path, name: str, where: str) -> list[dict]:
    rows = []
    with open(path, newline="", encoding="utf-8") as fh:
        for line, row in enumerate(csv.DictReader(fh, delimiter="\t" if path.suffix == ".tsv" else ","), start=2):
            at = f"{where}, line {line}"
            if row["statistic"] not in STATISTICS:
                raise ConfigError(f"{at}: statistic {row['statistic']!r} is not one of {', '.join(STATISTICS)}")
            if row["distance"] not in _KNN_DISTANCES:
                raise ConfigError(f"{at}: distance {row['distance']!r} is not one of {', '.join(_KNN_DISTANCES)}")
            value = _number(row["value"], "value", at)
            bound = _number(row.get("upper_bound"), "upper_bound", at)
            if math.isnan(value) and math.isnan(bound):
                raise ConfigError(f"{at}: neither a value nor an upper_bound")
            rows.append(
                {
                    "reference": name,
                    "dataset": row["dataset"].strip(),
                    "n_anomaly": int(row["n_anomaly"]),
                    "n_per_class": str(row["n_per_class"]).strip(),
                    "distance": row["distance"],
                    "k": str(row["k"]).strip(),
                    "method": row["method"].strip(),
                    "statistic": row["statistic"],
                    "value": value,
                    "upper_bound": bound,
                    "tolerance": _number(row["tolerance"], "tolerance", at),
                    "source": row["source"],
                }
            )
    return rows


def _summary_rows(path: Path, name: str) -> list[dict]:
    """A dmlbench run's summary table as reference rows: its kNN AUROC means, each known to the
    half-width of its interval."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq  # only for a parquet reference

        records = pq.read_table(path, columns=list(SUMMARY_REFERENCE_COLUMNS)).to_pylist()
    else:
        with open(path, newline="", encoding="utf-8") as fh:
            records = list(csv.DictReader(fh))
    rows = []
    for r in records:
        distance, sep, k = str(r["scorer"]).partition("_k")
        if r["metric"] != "auroc" or not sep or distance not in _KNN_DISTANCES:
            continue
        lo, hi = _number(r["ci_low"], "ci_low", name), _number(r["ci_high"], "ci_high", name)
        rows.append(
            {
                "reference": name,
                "dataset": str(r["dataset"]),
                "n_anomaly": int(r["n_anomaly"]),
                "n_per_class": str(r["n_per_class"]),
                "distance": distance,
                "k": k,
                "method": str(r["method"]),
                "statistic": "mean_auroc",
                "value": _number(r["mean"], "mean", name),
                "upper_bound": math.nan,
                "tolerance": (hi - lo) / 2 if not (math.isnan(lo) or math.isnan(hi)) else 0.0,
                "source": f"dmlbench run ({path}): mean over cases, tolerance the half-width of its 95 % interval",
            }
        )
    return rows


def reference_name(path: Path) -> str:
    """A reference's name in the report: the file's stem; an earlier run's summary table by its
    results folder (``results/tables/summary.parquet`` -> ``run results``)."""
    if path.stem == "summary" and path.parent.name == "tables":
        return f"run {path.parent.parent.name}"
    return path.stem


def reference_rows(config: dict | None = None) -> list[dict]:
    """Every reference value: the study's, then each ``references`` file's, one dict per row
    with ``reference`` (its name) and ``REFERENCE_COLUMNS`` (numbers as floats, NaN when empty)."""
    rows = _reference_rows(study_file(), STUDY, "dmlbench/references/study.csv")
    for i, entry in enumerate((config or {}).get("references") or []):
        path = Path(entry)
        where = f"references.{i} ({entry})"
        kind = reference_kind(path, where)
        name = reference_name(path)
        rows += _reference_rows(path, name, where) if kind == "reference" else _summary_rows(path, name)
    return rows
