"""The `tuning:` block: which methods are tuned, their search space, the one budget, and the
specs of the tune jobs and of the tuned runs (torch-free: the workflow's parse imports it).

Every tuned method gets the same budget by construction: ``tuning.trials`` (and
``timeout_per_trial``, ``folds``) is one setting for all of them, and the schema refuses a budget
key inside a method's search space (schemas/config.schema.yaml, ``tuning.methods``).

A tuned method ``<label>`` is trained a second time as ``<label>_tuned`` (:data:`TUNED_SUFFIX`)
in the same train job as its default run, on the same cases and seeds, with the best parameters
its tune job found for each case: tuned and default runs are paired.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from dmlbench.config import head_params
from dmlbench.config import methods as method_entries
from dmlbench.config.sources import KNOWN_CLASS_COUNTS
from dmlbench.config.specs import train_spec
from dmlbench.errors import ConfigError

#: The label of a method's tuned run: ``<label>_tuned``.
TUNED_SUFFIX = "_tuned"
#: Shared training settings that may be tuned (schema: tuning.training), with what they must be.
TRAINING_RANGES = {
    "lr": head_params.Param(0.003, low=0, low_open=True),
    "weight_decay": head_params.Param(0.01, low=0),
    "epochs": head_params.Param(30, low=1, integer=True),
}
#: A tuned training setting's name in the search space (and among a trial's parameters).
TRAINING_PREFIX = "training."
#: The objectives: leave-one-normal-class-out AUROC, or, with fewer than 3 normal classes, the
#: closed-set MAP@R of the validation images against the training images.
MEASURES = {
    "lofo_auroc": "leave-one-normal-class-out validation AUROC (mean over folds)",
    "map_at_r": "closed-set MAP@R of the validation images (fewer than 3 normal classes)",
}
#: Normal classes a case needs for leave-one-class-out folds (one held out, two or more to train on).
MIN_LOFO_CLASSES = 3


def tuned_labels(config: dict) -> list[str]:
    """The tuned methods' labels, in the config's method order."""
    tuned = config.get("tuning", {}).get("methods", {}) or {}
    return [label for label in config["methods"] if label in tuned]


def tuned_label(label: str) -> str:
    return label + TUNED_SUFFIX


def is_tuning(config: dict) -> bool:
    return bool(tuned_labels(config))


def measure_for(n_normal: int) -> str:
    """The objective's measure for a case with ``n_normal`` normal classes."""
    return "lofo_auroc" if n_normal >= MIN_LOFO_CLASSES else "map_at_r"


def search_space(config: dict, label: str) -> dict[str, dict]:
    """The method's search space: parameter -> range or choices; the shared training settings
    named ``training.<key>``, then the head's own parameters."""
    tuning = config["tuning"]
    space = {TRAINING_PREFIX + k: dict(v) for k, v in tuning.get("training", {}).items()}
    space.update({k: dict(v) for k, v in (tuning["methods"].get(label) or {}).items()})
    return space


def _bounds_ok(where: str, rng: dict, check) -> None:
    """A range's ends (or each choice) as a value of the setting would be checked."""
    if "choices" in rng:
        for i, v in enumerate(rng["choices"]):
            check(f"{where}.choices[{i}]", v)
        return
    low, high = rng["low"], rng["high"]
    if not low < high:
        raise ConfigError(f"{where}: low {low} must be below high {high}; give a range, or `choices: [{low}]`")
    if rng.get("log") and low <= 0:
        raise ConfigError(f"{where}: a log range needs low > 0 (got {low}); raise low or set log: false")
    if rng.get("integer") and (low != int(low) or high != int(high)):
        raise ConfigError(f"{where}: an integer range needs whole-number ends (got {low}, {high})")
    check(f"{where}.low", low)
    check(f"{where}.high", high)


def check_tuning(config: dict, source: str = "config") -> None:
    """What the schema cannot check of `tuning`: the methods exist, every parameter is one its
    head (or pml loss) takes, with both ends of a range (each choice) allowed there, the tuned
    labels are free, and every condition leaves each case two or more normal classes."""
    tuning = config.get("tuning") or {}
    methods = config["methods"]
    for label, space in (tuning.get("methods") or {}).items():
        if label not in methods:
            raise ConfigError(
                f"{source}: tuning.methods.{label} is not a method of `methods` (a sweep's variants are named "
                f"by their labels): use one of {', '.join(methods)}"
            )
        if tuned_label(label) in methods:
            raise ConfigError(
                f"{source}: tuning.methods.{label}: its tuned run is labelled '{tuned_label(label)}', which "
                f"`methods` already uses; rename that method"
            )
        entry = methods[label]
        if entry.get("validate_on_test"):
            raise ConfigError(
                f"{source}: tuning.methods.{label}: the method has the switch validate_on_test (the original's "
                f"validation on test images), and tuning never sees the test split; tune a variant without it"
            )
        for param, rng in (space or {}).items():
            where = f"tuning.methods.{label}.{param}"
            if param in method_entries.ENTRY_KEYS or param in method_entries.PML_KEYS:
                raise ConfigError(f"{source}: {where}: '{param}' is not tunable; tune the head's numeric parameters")
            if entry["head"] != method_entries.PML and param not in head_params.HEAD_PARAMS[entry["head"]]:
                known = ", ".join(head_params.HEAD_PARAMS[entry["head"]]) or "none"
                raise ConfigError(
                    f"{source}: {where}: head {entry['head']} has no parameter '{param}' (its parameters: {known})"
                )

            def check(at, value, param=param, entry=entry, label=label):
                method_entries.check_variant(label, {**entry, param: value}, {}, {param: at})

            try:
                _bounds_ok(where, rng, check)
            except ConfigError as exc:
                raise ConfigError(f"{source}: {exc}") from None
    for key, rng in (tuning.get("training") or {}).items():

        def check_training(at, value, key=key):
            head_params.number(at, value, TRAINING_RANGES[key])

        try:
            _bounds_ok(f"tuning.training.{key}", rng, check_training)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
    for label in tuned_labels(config):
        if not search_space(config, label):
            raise ConfigError(
                f"{source}: tuning.methods.{label} has nothing to tune: no parameter of its own and no tuning.training "
                f"setting; give it a range (e.g. tuning.training.lr) or remove it from tuning.methods"
            )
    if not tuned_labels(config):
        return
    for i, cond in enumerate(config["conditions"]):
        n_classes = KNOWN_CLASS_COUNTS.get(config["datasets"][cond["dataset"]]["source"])
        for n in cond["n_anomaly"] if n_classes else ():
            if n_classes - n < 2:
                raise ConfigError(
                    f"{source}: tuning needs two or more normal classes per case (a closed-set MAP@R at least), "
                    f"but conditions.{i} (dataset '{cond['dataset']}', n_anomaly {n}) leaves {n_classes - n}; "
                    f"use n_anomaly <= {n_classes - 2} or empty tuning.methods"
                )


def spec_digest(obj: Any) -> str:
    """Eight hex digits of ``obj``'s JSON: names an Optuna study, so a changed search space or
    budget starts a new study rather than resuming an old one."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:8]


def tune_spec(config: dict, dataset: str, n_anomaly: int, label: str, n_per_class, seed: int) -> dict:
    """One tune job: the method's run spec (its cases, model, training recipe) and what to tune."""
    if label not in tuned_labels(config):
        raise ConfigError(f"method '{label}' is not tuned (tuning.methods: {', '.join(tuned_labels(config))})")
    tuning = config["tuning"]
    spec = train_spec(config, dataset, n_anomaly, label, n_per_class, seed)
    spec["tuning"] = {
        "space": search_space(config, label),
        "trials": int(tuning["trials"]),
        "timeout_per_trial": tuning["timeout_per_trial"],
        "folds": tuning["folds"],
        "sampler": dict(tuning["sampler"]),
    }
    return spec


def tuned_train_spec(config: dict, dataset: str, n_anomaly: int, label: str, n_per_class, seed: int) -> dict:
    """The spec of ``<label>_tuned``: ``label``'s run spec, renamed; its per-case parameters come
    from the tune job's best.json when the train job runs (:func:`with_case_params`)."""
    spec = train_spec(config, dataset, n_anomaly, label, n_per_class, seed)
    entry = config["methods"][label]
    spec["method"] = tuned_label(label)
    spec["head"] = entry.get("head", label)
    spec["tuned"] = label
    return spec


def split_params(params: dict) -> dict:
    """A trial's parameters as a run's overrides: {"method_params": {...}, "training": {...}}."""
    out: dict[str, dict] = {"method_params": {}, "training": {}}
    for name, value in params.items():
        if name.startswith(TRAINING_PREFIX):
            out["training"][name[len(TRAINING_PREFIX) :]] = value
        else:
            out["method_params"][name] = value
    return out


def with_params(spec: dict, params: dict) -> dict:
    """``spec`` with a trial's (or a case's best) parameters applied."""
    parts = split_params(params)
    return {
        **spec,
        "method_params": {**spec["method_params"], **parts["method_params"]},
        "training": {**spec["training"], **parts["training"]},
    }


def with_case_params(spec: dict, best: dict) -> dict:
    """A tuned run's spec with each case's best parameters (``case_params``: case -> parameters)
    from its tune job's best.json; refuses a best.json of another run."""
    if best.get("method") != spec["tuned"]:
        raise ConfigError(
            f"the tuning result given for '{spec['method']}' is of method '{best.get('method')}'; "
            f"pass the best.json of '{spec['tuned']}'"
        )
    for key in ("dataset", "n_anomaly", "seed", "n_per_class"):
        if best.get(key) != spec[key]:
            raise ConfigError(
                f"the tuning result for '{spec['method']}' has {key} {best.get(key)!r}, the run {spec[key]!r}; "
                f"rerun the tune job"
            )
    return {**spec, "case_params": {str(c["case"]): dict(c["params"]) for c in best["cases"]}}


def case_spec(spec: dict, case: int) -> dict:
    """The spec one case of a run trains with: a tuned run's case parameters applied."""
    params = (spec.get("case_params") or {}).get(str(case))
    return spec if params is None else with_params(spec, params)
