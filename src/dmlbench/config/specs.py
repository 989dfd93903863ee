"""Per-job specs: what one run, score job or dataset needs of a validated config, and nothing else
(so an unrelated edit of the config reruns no job); and the conditions, sizes and runs a config
asks for (annex A.2, the closed-set models, the worst-misses run)."""

from __future__ import annotations

import json
from pathlib import Path

from dmlbench.config import methods as method_entries
from dmlbench.config.sources import FLIP_DEFAULT, KNOWN_CLASS_COUNTS, folder_classes
from dmlbench.errors import ConfigError, DatasetError
from dmlbench.layout import GROUP_PATH, annex_group_path


def class_count(config: dict, dataset: str) -> int | None:
    """The number of classes of a dataset of the config: a built-in source's (``KNOWN_CLASS_COUNTS``),
    a folder dataset's class folders (listed, no image read; raises ConfigError naming the dataset
    when they cannot be listed), None for a source whose classes are known only once read."""
    entry = config["datasets"][dataset]
    if entry["source"] in KNOWN_CLASS_COUNTS:
        return KNOWN_CLASS_COUNTS[entry["source"]]
    if entry["source"] == "folder" and "root" in entry:
        try:
            return len(folder_classes(entry["root"]))
        except (DatasetError, OSError) as exc:
            raise ConfigError(
                f"`cases: all` needs the number of classes of dataset '{dataset}', counted from its class "
                f"folders, which cannot be listed: {exc}. Make datasets.{dataset}.root readable from the "
                "working directory, or give `cases` as a number"
            ) from None
    return None


def n_cases(config: dict, dataset: str) -> int:
    """The cases per condition of ``dataset``: ``cases`` when it is a number; with ``cases: all``
    every rotation, as many cases as the dataset has classes (:func:`class_count`), so that each
    class is an anomaly equally often (n_anomaly times)."""
    if config["cases"] != "all":
        return int(config["cases"])
    n = class_count(config, dataset)
    if n is None:
        source = config["datasets"][dataset]["source"]
        raise ConfigError(
            f"`cases: all` needs the number of classes of dataset '{dataset}' (source '{source}'), which is "
            "not known before its data are read; give `cases` as a number"
        )
    return n


def annex_conditions(config: dict) -> list[tuple[str, int]]:
    """(dataset, n_anomaly) pairs that get annex A.2 runs; none when annex.sample_size is empty."""
    annex = config["annex"]
    if not annex["sample_size"]:
        return []
    conditions = annex.get("conditions") or config["conditions"]
    return [(c["dataset"], int(n)) for c in conditions for n in c["n_anomaly"]]


def worst_miss_selection(config: dict) -> dict:
    """The run the worst-misses figure shows, with the defaults filled in."""
    wm = config["report"]["worst_misses"]
    first = config["conditions"][0]
    dataset = wm.get("dataset", first["dataset"])
    if "n_anomaly" in wm:
        n_anomaly = wm["n_anomaly"]
    else:
        n_anomaly = next((c["n_anomaly"][0] for c in config["conditions"] if c["dataset"] == dataset), 0)
    return {
        "dataset": dataset,
        "n_anomaly": int(n_anomaly),
        "case": int(wm["case"]),
        "seed": int(wm.get("seed", config["seeds"][0])),
        "count": int(wm["count"]),
    }


def tsne_datasets(config: dict) -> list[str]:
    """Datasets that get closed-set models (t-SNE and accuracy): those of the conditions, in order."""
    if not config["tsne"]["enabled"]:
        return []
    return list(dict.fromkeys(c["dataset"] for c in config["conditions"]))


def grid_sizes(config: dict) -> list[str]:
    """The main grid's sizes (and "all", the closed-set models'): the sizes grid train and score jobs hold."""
    return list(dict.fromkeys(["all", *(str(n) for n in config["n_per_class"])]))


def annex_sizes(config: dict) -> list[str]:
    """Annex A.2's sizes that are not main-grid sizes: one annex job trains or scores every one of
    them, for every method, of a (dataset, n_anomaly, seed)."""
    grid = grid_sizes(config)
    return [str(n) for n in config["annex"]["sample_size"] if str(n) not in grid]


def train_jobs(config: dict) -> list[dict]:
    """One dict per scored run (dataset, n_anomaly, method, n_per_class, seed): the main grid, then
    the annex A.2 sizes of the annex conditions (the workflow's plan, rules/common.smk)."""
    jobs = []
    for cond in config["conditions"]:
        for n in cond["n_anomaly"]:
            for method in config["methods"]:
                for n_per_class in config["n_per_class"]:
                    for seed in config["seeds"]:
                        jobs.append(
                            dict(
                                dataset=cond["dataset"], n_anomaly=n, method=method, n_per_class=n_per_class, seed=seed
                            )
                        )
    for dataset, n in annex_conditions(config):
        for method in config["methods"]:
            for size in config["annex"]["sample_size"]:
                if size in config["n_per_class"]:
                    continue  # already a main-grid run
                for seed in config["seeds"]:
                    jobs.append(dict(dataset=dataset, n_anomaly=n, method=method, n_per_class=size, seed=seed))
    return jobs


def closed_set_jobs(config: dict) -> list[dict]:
    """Models trained on all classes (n_anomaly 0, first seed) for the t-SNE maps and closed-set accuracy."""
    return [
        dict(dataset=d, n_anomaly=0, method=m, n_per_class="all", seed=config["seeds"][0])
        for d in tsne_datasets(config)
        for m in config["methods"]
    ]


def group_path(config: dict, job: dict) -> str:
    """The path (below benchmarks/{rule}/, results/jobs/{rule}/, logs/{rule}/) of the train or score
    job that holds a run: layout.GROUP_PATH, or the annex job's path for an annex size."""
    sizes = annex_sizes(config)
    template = annex_group_path(sizes) if str(job["n_per_class"]) in sizes else GROUP_PATH
    return template.format(**job)


def job_groups(config: dict) -> list[tuple[str, str]]:
    """(rule, group path) of every train and score job: the main grid's and annex A.2's, then the
    closed-set models' train jobs."""

    def groups(jobs):
        return list(dict.fromkeys(group_path(config, job) for job in jobs))

    scored = [(stage, g) for stage in ("train", "score") for g in groups(train_jobs(config))]
    return scored + [("train", g) for g in groups(closed_set_jobs(config))]


def training_recipe(config: dict, dataset: str, n_per_class) -> dict:
    """The training recipe of a run: `training`, then `datasets.<name>.training`, then, for an
    annex A.2 size, `annex.training`."""
    recipe = dict(config["training"])
    recipe.update(config["datasets"][dataset].get("training", {}))
    if is_annex(config, n_per_class):
        recipe.update(config["annex"]["training"])
    return recipe


def is_annex(config: dict, n_per_class) -> bool:
    """Is this images-per-class value an annex A.2 size (and not also a main-grid size)?"""
    if n_per_class == "all" or str(n_per_class) == "all":
        return False
    n = int(n_per_class)
    return n in config["annex"]["sample_size"] and n not in config["n_per_class"]


def annex_mixup_of(config: dict, label: str) -> bool | None:
    """Whether method ``label`` trains with mixup in the annex A.2 runs, as ``annex.mixup`` says:
    true/false for every method, a list of labels or heads for those only, None (null) when the
    method's own ``mixup`` holds. A pytorch-metric-learning loss never mixes (False, or None with
    null)."""
    annex_mixup = config["annex"].get("mixup")
    if annex_mixup is None:
        return None
    entry = config["methods"][label]
    if not method_entries.mixes(entry):
        return False
    if isinstance(annex_mixup, list):
        return label in annex_mixup or entry.get("head", label) in annex_mixup
    return bool(annex_mixup)


def reference_size(n_normal_classes: int, n_per_class: int, val_fraction: float) -> int:
    """Rows of a case's reference set when every normal class is subsampled to n_per_class
    images: what remains after the validation carve-out (as splits.carve_validation does it)."""
    n_val = 0 if val_fraction <= 0 else min(int(round(val_fraction * n_per_class)), n_per_class - 1)
    return n_normal_classes * (n_per_class - n_val)


def parse_n_per_class(value: str | int) -> int | str:
    """`all` or a positive integer (wildcards arrive as strings)."""
    if value == "all":
        return "all"
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"n_per_class '{value}' must be 'all' or a positive integer") from None
    if n < 1:
        raise ConfigError(f"n_per_class {n} must be >= 1")
    return n


def train_spec(config: dict, dataset: str, n_anomaly: int, method: str, n_per_class, seed: int) -> dict:
    """Everything one run (a method trained on the cases of one condition, size and seed) needs,
    and nothing else (so unrelated config edits don't retrain).

    ``method_params`` carries the entry's keys but ``head`` and ``sweep``: the head's parameters,
    mixup, and the original implementation's switches that are on (dmlbench.config.switches; one
    set to false was dropped by the config check). So a switch is part of the run's key (the run
    cache's too), the trainer reads the train-stage ones from it, and the scorer reads
    ``unpaired_subsample`` from the run.json that records this spec."""
    if dataset not in config["datasets"]:
        raise ConfigError(
            f"dataset '{dataset}' is not defined under `datasets` (defined: {', '.join(config['datasets'])})"
        )
    if method not in config["methods"]:
        raise ConfigError(
            f"method '{method}' is not in the config's `methods` (configured: {', '.join(config['methods'])})"
        )
    ds = config["datasets"][dataset]
    entry = config["methods"][method]
    # `head` and `sweep` are not the head's parameters; the head is named in the spec only when it
    # is not the label, so that a config of head-named methods keeps its specs (and its runs).
    method_params = {k: v for k, v in entry.items() if k not in ("head", "sweep")}
    annex_mixup = annex_mixup_of(config, method)
    if is_annex(config, n_per_class) and annex_mixup is not None and method_entries.mixes(entry):
        method_params["mixup"] = annex_mixup
    head = {} if entry.get("head", method) == method else {"head": entry["head"]}
    return {
        "dataset": dataset,
        "source": ds["source"],
        "class_order": ds.get("class_order", "canonical"),
        "flip": ds.get("flip", FLIP_DEFAULT[ds["source"]]),
        "n_anomaly": int(n_anomaly),
        "method": method,
        **head,
        "method_params": method_params,
        "n_per_class": parse_n_per_class(n_per_class),
        "seed": int(seed),
        # n_anomaly 0 is the closed-set model (all classes normal): every case would be the same.
        "cases": n_cases(config, dataset) if int(n_anomaly) > 0 else 1,
        "model": dict(config["model"]),
        "training": training_recipe(config, dataset, n_per_class),
    }


def score_spec(config: dict) -> dict:
    sc = config["scoring"]
    return {
        "distances": list(sc["distances"]),
        "k": list(sc["k"]),
        "scorers": list(sc["scorers"]),
        "mahalanobis_shrinkage": sc["mahalanobis_shrinkage"],
        "lof_neighbors": sc["lof_neighbors"],
        "knn_normalised_k": sc["knn_normalised_k"],
    }


def spec_from_arg(value: str) -> dict:
    """A spec given on the command line: inline JSON (an object, or a list of them) or a path to a
    JSON file."""
    try:
        if value.lstrip().startswith(("{", "[")):
            return json.loads(value)
        return json.loads(Path(value).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"--spec {value[:80]!r} is neither inline JSON nor a readable JSON file: {exc}") from None
