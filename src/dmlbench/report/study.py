"""What the report is built from: the tables of a results folder, its config, and the scorer
the report shows (a :class:`View`, what every section's builders take)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from dmlbench import layout
from dmlbench.config import load_config, worst_miss_selection
from dmlbench.config.tuning import tuned_labels
from dmlbench.data.sources import load_npz
from dmlbench.errors import DmlbenchError
from dmlbench.report._style import pd, use_methods
from dmlbench.report.worst_misses import worst_miss_frame

#: Tables written by the aggregate stage that the report reads; the closed-set ones are optional.
INPUT_TABLES = ("metrics", "class_distances", "summary", "ranking", "worst_misses", "runtime", "runs")
CLOSED_SET_TABLES = ("tsne", "closed_set")
#: With tuning.methods: the tune jobs' tables (dmlbench.aggregate.tuning).
TUNING_TABLES = layout.TUNING_TABLE_NAMES


def main_n_per_class(config: dict) -> str:
    """Images per class of the main figures: "all" when run, else the largest main-grid size."""
    sizes = config["n_per_class"]
    return "all" if "all" in sizes else str(max(int(s) for s in sizes))


def knn_parts(scorer: str) -> tuple[str, str] | None:
    """("cosine", "10") for "cosine_k10"; None for a scorer that is not a kNN distance."""
    distance, sep, k = scorer.partition("_k")
    return (distance, k) if sep and distance in ("cosine", "euclidean") else None


#: Scorers that are no distances: the head's negated maximum softmax probability, maximum logit
#: and energy (dmlbench.config.scorers.LOGIT_SCORERS). Their normal level is not positive (energy, the
#: negated log-sum-exp of the logits, is negative whenever a logit is positive), so they have no
#: normalised distance, and the distance figures fall back to a kNN distance.
NOT_DISTANCES = ("msp", "maxlogit", "energy")


def distance_scorer(config: dict, scorer: str) -> str:
    """The scorer of the normalised distances: the report's ``scorer``, unless it is not a distance
    (``NOT_DISTANCES``); then the nearest-neighbour (k = 1) cosine distance, or Euclidean when
    cosine is not configured."""
    if scorer not in NOT_DISTANCES:
        return scorer
    return "cosine_k1" if "cosine" in config["scoring"]["distances"] else "euclidean_k1"


def miss_scorer(config: dict, scorer: str) -> str:
    """The worst misses use the nearest neighbour (k = 1) of the report scorer's distance."""
    parts = knn_parts(scorer)
    distance = parts[0] if parts and parts[0] in config["scoring"]["distances"] else config["scoring"]["distances"][0]
    return f"{distance}_k1"


def read_table(tables_dir: str | os.PathLike, name: str) -> pd.DataFrame:
    """Read ``tables_dir/<name>.parquet``; a clear error when the stage that writes it has not run."""
    path = Path(tables_dir) / f"{name}.parquet"
    if not path.is_file():
        stage = {
            **dict.fromkeys(CLOSED_SET_TABLES, "dmlbench closed-set"),
            **dict.fromkeys(TUNING_TABLES, "dmlbench tuning-tables"),
        }.get(name, "dmlbench aggregate")
        raise DmlbenchError(
            f"table {name}.parquet not found at {path}; run `{stage}` first to write the tables under results/tables."
        )
    return pd.read_parquet(path)


def read_config(path: str | os.PathLike) -> dict:
    """The effective config written by ``dmlbench snapshot`` (validated again here)."""
    if not Path(path).is_file():
        raise DmlbenchError(f"config snapshot {path} not found; run `dmlbench snapshot --config <your config>` first")
    return load_config(path)


@dataclass
class Study:
    """Everything the figures and the report are built from."""

    tables: dict[str, pd.DataFrame]
    config: dict
    data_dir: Path | None = None
    _miss_frames: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        # every chart orders and colours the methods as this config's entries say (variants by head)

        use_methods(self.config.get("methods"))

    @classmethod
    def load(
        cls,
        results: str | os.PathLike,
        config: str | os.PathLike | dict | None = None,
        tables_dir: str | os.PathLike | None = None,
        data_dir: str | os.PathLike | None = None,
    ) -> Study:
        """Tables and config of a results folder; ``config`` is the snapshot's path (default
        ``results/config.yaml``) or an already validated config."""
        results = Path(results)
        tables_dir = Path(tables_dir or layout.tables_dir(results))
        if not isinstance(config, dict):
            config = read_config(config or layout.snapshot_file(results))
        tables = {name: read_table(tables_dir, name) for name in INPUT_TABLES}
        if config["tsne"]["enabled"]:
            tables.update({name: read_table(tables_dir, name) for name in CLOSED_SET_TABLES})
        if tuned_labels(config):
            tables.update({name: read_table(tables_dir, name) for name in TUNING_TABLES})
        return cls(tables, config, Path(data_dir or layout.data_dir(results)))

    def worst_miss_selection(self, scorer: str) -> dict:
        """Condition, case, seed, scorer and n_per_class of the worst-misses figure."""
        sel = worst_miss_selection(self.config)
        return {
            "dataset": sel["dataset"],
            "n_anomaly": sel["n_anomaly"],
            "case": sel["case"],
            "seed": sel["seed"],
            "scorer": miss_scorer(self.config, scorer),
            "n_per_class": main_n_per_class(self.config),
        }

    def worst_miss_frame(self, scorer: str) -> pd.DataFrame:
        """The worst misses of the selected run with their images (reads the dataset npz once)."""
        if scorer in self._miss_frames:
            return self._miss_frames[scorer]
        sel = self.worst_miss_selection(scorer)
        if self.data_dir is None:
            raise DmlbenchError("no data folder given for the worst-misses images (dmlbench figures --data)")
        ds = load_npz(self.data_dir / f"{sel['dataset']}.npz")
        count = self.config["report"]["worst_misses"]["count"]
        frame = worst_miss_frame(
            self.tables["worst_misses"], ds.x_train, ds.y_train, ds.x_test, list(ds.classes), **sel, n=count
        )
        self._miss_frames[scorer] = frame
        return frame


@dataclass
class View:
    """A study seen through the report's scorer: what every builder takes."""

    study: Study
    scorer: str = "cosine_k1"

    @property
    def t(self) -> dict[str, pd.DataFrame]:
        return self.study.tables

    @property
    def config(self) -> dict:
        return self.study.config

    @property
    def n(self) -> str:
        """Images per class of the main figures ("all" or a number)."""
        return main_n_per_class(self.config)

    @property
    def distance_scorer(self) -> str:
        """The scorer of the normalised distances (``distance_scorer``: the report's when it is a distance)."""
        return distance_scorer(self.config, self.scorer)

    @property
    def k(self) -> str:
        """k of the report scorer, or "1" when it is not a kNN distance."""
        return (knn_parts(self.scorer) or ("cosine", "1"))[1]
