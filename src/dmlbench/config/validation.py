"""Config loading: JSON-Schema validation with defaults, and the semantic checks a schema cannot express.

The schema (schemas/config.schema.yaml) is the single description of every key. Snakemake's
`rules/common.smk` and the `dmlbench` command both go through `load_config`, so a config is
refused the same way before any job runs and when a stage is called alone.
"""

from __future__ import annotations

import copy
import difflib
import functools
import json
import math
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from dmlbench.config import methods as method_entries
from dmlbench.config import model_options, tuning
from dmlbench.config import sources as dataset_sources
from dmlbench.config.references import check_references
from dmlbench.config.scorers import LOGIT_SCORERS
from dmlbench.config.sources import KNOWN_CLASS_COUNTS
from dmlbench.config.specs import (
    annex_conditions,
    class_count,
    n_cases,
    reference_size,
    training_recipe,
    worst_miss_selection,
)
from dmlbench.config.yaml_loader import read_yaml_file, string_number_note
from dmlbench.errors import ConfigError

#: The schema's file name inside the package (src/dmlbench/config/).
SCHEMA_FILE = "config.schema.yaml"


def schema_path() -> Path:
    """The config schema, package data of dmlbench.config: found the same way in a checkout, an
    editable install, a wheel and the image. In a checkout the file is a link to
    schemas/config.schema.yaml (the path the Snakemake workflow catalog expects), the one copy."""
    return Path(str(resources.files("dmlbench.config") / SCHEMA_FILE))


@functools.lru_cache(maxsize=4)
def _read_schema(path: str, mtime_ns: int) -> dict:
    with open(path) as fh:
        return yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # safe either way


def load_schema() -> dict:
    """The config schema as a dict (a fresh copy: callers may change it). Read once per process
    and file version: one config check consults it several times."""
    path = schema_path()
    return copy.deepcopy(_read_schema(str(path), path.stat().st_mtime_ns))


def _resolve(schema: dict, root: dict) -> dict:
    ref = schema.get("$ref")
    if not ref:
        return schema
    node: Any = root
    for part in ref.lstrip("#/").split("/"):
        node = node[part]
    return _resolve(node, root)


def fill_defaults(instance: Any, schema: dict, root: dict | None = None) -> Any:
    """Insert the schema's `default` of every absent key, recursively (in place, returned)."""
    root = root or schema
    schema = _resolve(schema, root)
    if isinstance(instance, dict):
        for key, sub in schema.get("properties", {}).items():
            sub = _resolve(sub, root)
            if key not in instance and "default" in sub:
                instance[key] = copy.deepcopy(sub["default"])
            if key in instance:
                fill_defaults(instance[key], sub, root)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key, value in instance.items():
                if key not in schema.get("properties", {}):
                    fill_defaults(value, extra, root)
    elif isinstance(instance, list) and isinstance(schema.get("items"), dict):
        for item in instance:
            fill_defaults(item, schema["items"], root)
    return instance


def _key_path(error: jsonschema.ValidationError) -> str:
    """Dotted path of the key an error is about, down to the offending key itself: a missing
    required key, an unknown key or a bad key name is named in full (``training.foo``), not
    only by the mapping that holds it."""
    parts = [str(p) for p in error.absolute_path]
    instance = error.instance
    if error.validator == "required" and isinstance(instance, dict):
        missing = [k for k in error.validator_value if k not in instance]
        parts += missing[:1]
    elif error.validator == "additionalProperties" and isinstance(instance, dict):
        schema = error.schema if isinstance(error.schema, dict) else {}
        known = schema.get("properties", {})
        extra = [str(k) for k in instance if k not in known]
        if len(extra) == 1:
            parts.append(extra[0])
        elif extra:
            prefix = ".".join(parts)
            return ", ".join(f"{prefix}.{k}" if prefix else k for k in extra)
    elif "propertyNames" in error.relative_schema_path:
        parts.append(str(instance))
    return ".".join(parts) or "(top level)"


def _string_number_hint(error: jsonschema.ValidationError) -> str:
    """For a string where a number is expected that reads as a number: why YAML made it a string
    and how to write it (``lr: 1e-3`` is the string '1e-3' in YAML 1.1; 1.0e-3 is a float)."""
    instance = error.instance
    if not isinstance(instance, str):
        return ""
    expected = error.validator_value if error.validator == "type" else None
    if error.validator == "anyOf":
        expected = [sub.get("type") for sub in error.validator_value]
    wanted = expected if isinstance(expected, list) else [expected]
    if not any(t in ("number", "integer") or (isinstance(t, list) and "number" in t) for t in wanted):
        return ""
    return string_number_note(instance)


def _did_you_mean(extra: list[str], known) -> str:
    guesses = [(k, difflib.get_close_matches(k, list(known), n=1, cutoff=0.6)) for k in extra]
    guesses = [f"'{k}' -> did you mean '{g[0]}'?" for k, g in guesses if g]
    return f"; {'; '.join(guesses)}" if guesses else ""


def _element_error(error: jsonschema.ValidationError) -> jsonschema.ValidationError | None:
    """For a list that matched no branch of an anyOf (a number or a list of numbers): the error
    of the list branch about one element, so the message names the element (mixup_alpha[1])."""
    if error.validator != "anyOf" or not isinstance(error.instance, list):
        return None
    deep = [e for e in error.context or () if e.relative_path and isinstance(e.relative_path[0], int)]
    return deep[0] if deep else None


def _describe(error: jsonschema.ValidationError) -> str:
    key = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    element = _element_error(error)
    if element is not None:
        index, *rest = element.relative_path
        schema = error.schema if isinstance(error.schema, dict) else {}
        description = schema.get("description")
        hint = f" ({description.strip()})" if description else ""
        where = f"{key}[{index}]" + "".join(f".{p}" for p in rest)
        return f"config key '{where}': {element.message}{_string_number_hint(element)}{hint}"
    full = _key_path(error)
    what = {"required": "missing key", "additionalProperties": "unknown key"}.get(error.validator, "bad key name")
    named = f"{what} {full}: " if full != key else ""
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "enum":
        allowed = f"allowed values: {', '.join(map(str, error.validator_value))}"
    elif error.validator == "additionalProperties":
        known = sorted(schema.get("properties", {}))
        allowed = f"allowed keys here: {', '.join(known)}" if known else "no other keys are allowed here"
        if isinstance(error.instance, dict):
            allowed += _did_you_mean([str(k) for k in error.instance if k not in known], known)
    elif error.validator == "anyOf":
        kinds = []
        for sub in error.validator_value:
            if "enum" in sub:
                kinds.append(" or ".join(repr(v) for v in sub["enum"]))
            elif "minimum" in sub and "maximum" in sub:
                kinds.append(f"{sub.get('type', 'value')} in [{sub['minimum']}, {sub['maximum']}]")
            else:
                bound = f" >= {sub['minimum']}" if "minimum" in sub else ""
                kinds.append(f"{sub.get('type', 'value')}{bound}")
        allowed = f"allowed: {' or '.join(kinds)}"
    elif error.validator == "type":
        allowed = f"expected type: {error.validator_value}"
    elif error.validator == "required":
        allowed = f"required keys: {', '.join(error.validator_value)}"
    else:
        allowed = f"schema rule: {error.validator} {error.validator_value!r}"
    allowed += _string_number_hint(error)
    description = schema.get("description")
    hint = f" ({description.strip()})" if description and error.validator != "additionalProperties" else ""
    return f"config key '{key}': {named}{error.message}; {allowed}{hint}"


def _strict_integer(checker, instance) -> bool:
    # Draft 7 counts 2.0 as an integer; a YAML `epochs: 2.0` would then reach range() and the
    # job paths (s0.0) as a float. An integer key takes an integer literal only (bool is no int).
    return isinstance(instance, int) and not isinstance(instance, bool)


_Validator = jsonschema.validators.extend(
    jsonschema.Draft7Validator,
    type_checker=jsonschema.Draft7Validator.TYPE_CHECKER.redefine("integer", _strict_integer),
)


def _non_finite(instance: Any, path: tuple = ()) -> list[str]:
    """One line per NaN or infinite number (YAML .nan/.inf pass every JSON Schema bound)."""
    if isinstance(instance, float) and not math.isfinite(instance):
        key = ".".join(map(str, path)) or "(top level)"
        return [f"config key '{key}': {instance} is not a finite number; give a finite value"]
    if isinstance(instance, dict):
        return [line for k, v in instance.items() for line in _non_finite(v, path + (k,))]
    if isinstance(instance, list):
        return [line for i, v in enumerate(instance) for line in _non_finite(v, path + (i,))]
    return []


def validate(config: dict, source: str = "config", check_data: bool = False) -> dict:
    """Fill defaults and validate against the schema; raise ConfigError naming every bad key.
    ``check_data``: also check each folder dataset's directory listing (:func:`check_folder_data`):
    `dmlbench validate` and the workflow's main process do, a job or the report (which may run
    where the images are not) does not."""
    if not isinstance(config, dict):
        raise ConfigError(f"{source}: the config must be a mapping of keys to values, got {type(config).__name__}")
    schema = load_schema()
    config = fill_defaults(copy.deepcopy(config), schema)
    validator = _Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    lines = [_describe(e) for e in errors] + _non_finite(config)
    if lines:
        lines = "\n  ".join(lines)
        raise ConfigError(f"{source} does not match schemas/config.schema.yaml:\n  {lines}")
    try:
        config["methods"] = method_entries.expand(config["methods"], head_defaults(schema))
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    check_semantics(config, source)
    if check_data:
        check_folder_data(config, source)
    return config


def training_defaults(schema: dict | None = None) -> dict[str, Any]:
    """key -> default of the `training` recipe, as the schema states them: what a run spec written
    by hand (without the config check's defaults) gets for a key it leaves out."""
    props = (schema or load_schema())["properties"]["training"]["properties"]
    return {k: p["default"] for k, p in props.items() if "default" in p}


def check_folder_data(config: dict, source: str = "config") -> None:
    """Each `source: folder` dataset against its conditions, from the directory listing alone (no
    image opened): root exists; root/train and root/test both exist with the same class folders,
    each holding images; at least n_anomaly + 1 classes and at least `cases` (the rotation's
    cases); every train class at least the largest integer n_per_class (annex.sample_size too, for
    the annex conditions of that dataset). One message per check, naming the key and the folder."""
    for name, entry in config["datasets"].items():
        if entry["source"] != "folder":
            continue
        if "root" not in entry:
            raise ConfigError(f"{source}: datasets.{name}.root is required for source 'folder'")
        root = Path(entry["root"])
        layout = "a folder dataset is root/train/<class>/*.png|jpg|jpeg and root/test/<class>/*.png|jpg|jpeg"
        if not root.is_dir():
            what = "is not a folder" if root.exists() else "does not exist"
            raise ConfigError(f"{source}: datasets.{name}.root {root} {what}; {layout}")
        listing = dataset_sources.folder_listing(root)
        for split in ("train", "test"):
            if split not in listing:
                raise ConfigError(f"{source}: datasets.{name}: {root / split} does not exist; {layout}")
            if not listing[split]:
                raise ConfigError(f"{source}: datasets.{name}: {root / split} has no class folders; {layout}")
        if set(listing["train"]) != set(listing["test"]):
            missing = sorted(set(listing["train"]) - set(listing["test"]))
            extra = sorted(set(listing["test"]) - set(listing["train"]))
            diff = "; ".join(
                ([f"missing in test: {', '.join(missing)}"] if missing else [])
                + ([f"only in test: {', '.join(extra)}"] if extra else [])
            )
            raise ConfigError(
                f"{source}: datasets.{name}: {root / 'test'} must have the same class folders as {root / 'train'} ({diff})"
            )
        for split, counts in listing.items():
            empty = [c for c, n in counts.items() if n == 0]
            if empty:
                raise ConfigError(
                    f"{source}: datasets.{name}: class folder {root / split / empty[0]} holds no images "
                    f"(.png, .jpg, .jpeg); add images or remove the folder"
                )
        n_classes = len(listing["train"])
        for i, cond in enumerate(config["conditions"]):
            if cond["dataset"] != name:
                continue
            for n in cond["n_anomaly"]:
                if n + 1 > n_classes:
                    raise ConfigError(
                        f"{source}: conditions[{i}].n_anomaly {n} needs at least {n + 1} classes (n_anomaly "
                        f"anomaly classes and one normal), but dataset '{name}' has {n_classes} class folders "
                        f"in {root / 'train'}; use n_anomaly <= {n_classes - 1} or add classes"
                    )
        used = any(cond["dataset"] == name for cond in config["conditions"])
        # `cases: all` is every rotation of the dataset's own classes: always there
        cases = config["cases"]
        if used and cases != "all" and int(cases) > n_classes:
            raise ConfigError(
                f"{source}: cases {cases} needs {cases} classes for the rotation (each case "
                f"starts the anomaly classes at another class), but dataset '{name}' has {n_classes} class "
                f"folders in {root / 'train'}; use cases <= {n_classes} (or cases: all) or add classes"
            )
        sizes = [(n, "n_per_class") for n in config["n_per_class"] if n != "all"] if used else []
        if any(dataset == name for dataset, _ in annex_conditions(config)):
            sizes += [(n, "annex.sample_size") for n in config["annex"]["sample_size"]]
        if sizes:
            need, key = max(sizes)
            fewest = min(listing["train"], key=lambda c: listing["train"][c])
            if listing["train"][fewest] < need:
                raise ConfigError(
                    f"{source}: {key} {need} asks for {need} training images per normal class, but class folder "
                    f"{root / 'train' / fewest} of dataset '{name}' holds {listing['train'][fewest]}; use "
                    f"{key} <= {listing['train'][fewest]} or add images"
                )


def head_defaults(schema: dict | None = None) -> dict[str, dict]:
    """head -> parameter -> default, as the schema states them (definitions.heads): the values a
    method entry is filled with (equal to dmlbench.config.head_params' declarations; a test keeps them so)."""
    heads = (schema or load_schema())["definitions"]["heads"]["properties"]
    return {
        head: {k: p["default"] for k, p in entry["properties"].items() if k not in method_entries.TRAINING_KEYS}
        for head, entry in heads.items()
    }


def check_semantics(config: dict, source: str = "config") -> None:
    """Checks a JSON Schema cannot express: references between keys, class counts, and every
    value a component would refuse, asked of the component's own declarations (a head's
    parameter ranges in dmlbench.config.head_params, a dataset reader's options in dmlbench.config.sources),
    so that a value no job could run with stops here, before any job. The method entries are
    checked, and sweeps expanded, by dmlbench.config.methods.expand before (in :func:`validate`).
    Imports no torch."""
    datasets = config["datasets"]
    _check_repeats(config["conditions"], "conditions", source)
    if config["annex"].get("conditions"):
        _check_repeats(config["annex"]["conditions"], "annex.conditions", source)
    _check_model(config, source)
    _check_dataset_options(config, source)
    for i, cond in enumerate(config["conditions"]):
        name = cond["dataset"]
        if name not in datasets:
            guess = difflib.get_close_matches(str(name), list(datasets), n=1, cutoff=0.6)
            maybe = f"did you mean '{guess[0]}'? " if guess else ""
            raise ConfigError(
                f"{source}: conditions.{i}.dataset '{name}' is not defined under `datasets` "
                f"(defined: {', '.join(sorted(datasets))}); {maybe}add it there or fix the name"
            )
        if datasets[name]["source"] == "folder" and "root" not in datasets[name]:
            raise ConfigError(f"{source}: datasets.{name}.root is required for source 'folder'")
        # a folder dataset's classes are listed for `cases: all` only (a number needs no data yet)
        n_classes = KNOWN_CLASS_COUNTS.get(datasets[name]["source"])
        if config["cases"] == "all":
            try:
                n_classes = class_count(config, name)
                n_cases(config, name)  # a source whose classes are unknown before reading: refused
            except ConfigError as exc:
                raise ConfigError(f"{source}: {exc}") from None
        if n_classes is not None:
            for n in cond["n_anomaly"]:
                if n >= n_classes:
                    raise ConfigError(
                        f"{source}: conditions.{i}.n_anomaly {n} leaves no normal class: dataset "
                        f"'{name}' has {n_classes} classes, so n_anomaly must be 1..{n_classes - 1}"
                    )
            if n_cases(config, name) > n_classes:
                raise ConfigError(
                    f"{source}: cases {config['cases']} exceeds the {n_classes} classes of dataset "
                    f"'{name}': the rotation would repeat cases; use cases <= {n_classes}"
                )
            _check_k_against_reference(config, i, name, n_classes, source)
    schema = load_schema()
    for name, entry in datasets.items():
        _check_training_override(entry.get("training", {}), ["datasets", name, "training"], schema, source)
    _check_training_override(config["annex"]["training"], ["annex", "training"], schema, source)
    _check_annex(config, source)
    _check_worst_misses(config, source)
    _check_report_scorer(config, source)
    _check_methods(config, source)
    tuning.check_tuning(config, source)
    check_references(config, source)


def _check_repeats(conditions: list[dict], where: str, source: str) -> None:
    """Each (dataset, n_anomaly) once: a repeated one would train, score and aggregate its runs
    twice (the summary's n doubled, its std shrunk), so it is refused, naming both places."""
    first: dict[tuple[str, int], str] = {}
    for i, cond in enumerate(conditions):
        for j, n in enumerate(cond["n_anomaly"]):
            here = f"{where}[{i}].n_anomaly[{j}]"
            key = (cond["dataset"], n)
            if key in first:
                raise ConfigError(
                    f"{source}: {here} repeats dataset '{cond['dataset']}' with n_anomaly {n}, already given at "
                    f"{first[key]}; its runs would be counted twice in every table - remove the repeat"
                )
            first[key] = here


def _check_methods(config: dict, source: str) -> None:
    """What a variant needs of the conditions and the report, once the entries are expanded and
    checked (dmlbench.config.methods.expand): a pair or tuple loss needs two normal classes (with one,
    no pair has a negative); the report's scorer must exist for every method (a logit scorer
    does not for a head without logits)."""
    without_logits = [label for label, entry in config["methods"].items() if not method_entries.has_logits(entry)]
    if config["report"]["scorer"] in LOGIT_SCORERS and without_logits:
        raise ConfigError(
            f"{source}: report.scorer '{config['report']['scorer']}' reads the head's logits, which methods."
            f"{without_logits[0]} ({config['methods'][without_logits[0]]['loss']}, a pair or tuple loss) does not "
            f"have; choose a distance scorer (e.g. cosine_k1) or mahalanobis for the report"
        )
    pair = [
        label
        for label, entry in config["methods"].items()
        if entry["head"] == method_entries.PML and not method_entries.has_logits(entry)
    ]
    if not pair:
        return
    for i, cond in enumerate(config["conditions"]):
        n_classes = KNOWN_CLASS_COUNTS.get(config["datasets"].get(cond["dataset"], {}).get("source"))
        if n_classes is None:
            continue
        for n in cond["n_anomaly"]:
            if n_classes - n < 2:
                raise ConfigError(
                    f"{source}: methods.{pair[0]} ({config['methods'][pair[0]]['loss']}) learns from pairs of "
                    f"images of different classes, but conditions.{i} (dataset '{cond['dataset']}', n_anomaly {n}) "
                    f"leaves {n_classes - n} normal class; use n_anomaly <= {n_classes - 2} or remove the method"
                )


#: Keys of `training` that only a pretrained model reads (fastai's fine_tune).
FINE_TUNE_KEYS = ("freeze_epochs", "lr_mult")


def _check_model(config: dict, source: str) -> None:
    """`model` as the model builder checks it (dmlbench.config.model_options), and no fine-tuning key
    set for a model trained from scratch, where it would be ignored."""
    try:
        model_options.check_model(config["model"])
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    if model_options.weights_name(config["model"]["backbone"], config["model"]["pretrained"]) is not None:
        return
    defaults = load_schema()["properties"]["training"]["properties"]
    recipes = [("training", config["training"]), ("annex.training", config["annex"]["training"])]
    recipes += [(f"datasets.{name}.training", entry.get("training", {})) for name, entry in config["datasets"].items()]
    for where, recipe in recipes:
        for key in FINE_TUNE_KEYS:
            if key in recipe and recipe[key] != defaults[key]["default"]:
                raise ConfigError(
                    f"{source}: {where}.{key} is read only with model.pretrained (fastai's fine-tuning "
                    f"of a pretrained body), and the model is trained from scratch; remove it, or set "
                    f"model.pretrained"
                )


def _check_dataset_options(config: dict, source: str) -> None:
    """Each dataset's reader options as its reader checks them (sources.check_options), and no
    option its source does not read: `image_size` on cifar10 would be silently ignored."""
    schema = load_schema()["properties"]["datasets"]["additionalProperties"]["properties"]
    reader_keys = {key for opts in dataset_sources.SOURCE_OPTIONS.values() for key in opts} | {"root"}
    for name, entry in config["datasets"].items():
        src = entry["source"]
        reads = set(dataset_sources.SOURCE_OPTIONS[src]) | ({"root"} if src in dataset_sources.ROOT_SOURCES else set())
        for key in sorted(reader_keys - reads):
            # a schema default (filled in for every entry) is no choice of the user's
            if key in entry and ("default" not in schema[key] or entry[key] != schema[key]["default"]):
                readers = sorted(
                    s
                    for s, opts in dataset_sources.SOURCE_OPTIONS.items()
                    if key in opts or (key == "root" and s in dataset_sources.ROOT_SOURCES)
                )
                raise ConfigError(
                    f"{source}: datasets.{name}.{key} is not read by source '{src}' (only by "
                    f"{', '.join(readers)}), so it would be ignored; remove it, or use a source that reads it"
                )
        try:
            dataset_sources.check_options(entry, where=f"datasets.{name}")
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None


def score_names(config: dict) -> list[str]:
    """The scores (score columns) the score stage writes for this config, in its order: per
    distance of `scoring.distances` the kNN scores `{distance}_k{k}` (integer k ascending, then
    `all`), then `scoring.scorers`. Distances and scorers keep the schema's enum order, which
    is the score stage's (scoring.DISTANCES, scorers.SCORERS; a test keeps them equal)."""
    scoring = load_schema()["properties"]["scoring"]["properties"]
    sc = config["scoring"]
    ks = sorted(k for k in set(sc["k"]) if k != "all") + (["all"] if "all" in sc["k"] else [])
    names = [f"{d}_k{k}" for d in scoring["distances"]["items"]["enum"] if d in sc["distances"] for k in ks]
    return names + [s for s in scoring["scorers"]["items"]["enum"] if s in sc["scorers"]]


def _check_report_scorer(config: dict, source: str) -> None:
    """The report's scorer must be one the score stage computes: the figures are made from it."""
    scorer, names = config["report"]["scorer"], score_names(config)
    if scorer not in names:
        raise ConfigError(
            f"{source}: report.scorer '{scorer}' is not computed by this config, whose scores are "
            f"{', '.join(names)} (scoring.distances x scoring.k, then scoring.scorers); set report.scorer "
            f"to one of them, or add its distance, k or scorer under `scoring`"
        )


def _check_training_override(override: dict, where: list[str], schema: dict, source: str) -> None:
    """A recipe override holds keys of the top-level `training` with that key's type and bounds
    (checked without filling defaults, so an override never resets a key it does not name)."""
    nested_schema, nested = schema["properties"]["training"], override
    for part in reversed(where):
        nested_schema = {"type": "object", "properties": {part: nested_schema}}
        nested = {part: nested}
    errors = sorted(_Validator(nested_schema).iter_errors(nested), key=lambda e: [str(p) for p in e.absolute_path])
    lines = [_describe(e) for e in errors] + _non_finite(nested)
    if lines:
        lines = "\n  ".join(lines)
        raise ConfigError(f"{source} does not match schemas/config.schema.yaml (the keys of `training`):\n  {lines}")


def _check_annex(config: dict, source: str) -> None:
    main = {(c["dataset"], int(n)) for c in config["conditions"] for n in c["n_anomaly"]}
    mixup = config["annex"]["mixup"]
    if isinstance(mixup, list):
        methods = config["methods"]
        heads = {entry.get("head", label) for label, entry in methods.items()}
        for i, name in enumerate(mixup):
            if name not in methods and name not in heads:
                raise ConfigError(
                    f"{source}: annex.mixup.{i} '{name}' is neither a method label nor the head of one "
                    f"(methods: {', '.join(methods)}); name the methods that train with mixup in annex A.2"
                )
            named = [e for label, e in methods.items() if name in (label, e.get("head", label))]
            if not any(method_entries.mixes(e) for e in named):
                raise ConfigError(
                    f"{source}: annex.mixup.{i} '{name}' is a pytorch-metric-learning loss, which has no "
                    f"per-sample loss to mix; remove it from annex.mixup"
                )
    for dataset, n in annex_conditions(config):
        if (dataset, n) not in main:
            raise ConfigError(
                f"{source}: annex.conditions has dataset '{dataset}' with n_anomaly {n}, which is not one of "
                f"the `conditions`; annex A.2 compares against the main runs, so add it to `conditions` or "
                f"remove it from annex.conditions"
            )
    ks = [k for k in config["scoring"]["k"] if k != "all"]
    for dataset, n in annex_conditions(config):
        n_classes = KNOWN_CLASS_COUNTS.get(config["datasets"][dataset]["source"])
        if n_classes is None or not ks:
            continue
        for size in config["annex"]["sample_size"]:
            val_fraction = training_recipe(config, dataset, size)["val_fraction"]
            ref = reference_size(n_classes - n, size, val_fraction)
            if max(ks) > ref:
                raise ConfigError(
                    f"{source}: scoring.k {max(ks)} is larger than the reference set of the annex runs with "
                    f"annex.sample_size {size} (dataset '{dataset}', n_anomaly {n}): {ref} reference images; "
                    f"use annex.sample_size entries of at least {max(ks)} per class or a smaller scoring.k"
                )


def _check_worst_misses(config: dict, source: str) -> None:
    wm = worst_miss_selection(config)
    main = {(c["dataset"], int(n)) for c in config["conditions"] for n in c["n_anomaly"]}
    if (wm["dataset"], wm["n_anomaly"]) not in main:
        raise ConfigError(
            f"{source}: report.worst_misses selects dataset '{wm['dataset']}' with n_anomaly {wm['n_anomaly']}, "
            f"which is not one of the `conditions`; choose one of {sorted(main)}"
        )
    cases = n_cases(config, wm["dataset"])
    if wm["case"] >= cases:
        raise ConfigError(f"{source}: report.worst_misses.case {wm['case']} is not run: cases are 0..{cases - 1}")
    if wm["seed"] not in config["seeds"]:
        raise ConfigError(f"{source}: report.worst_misses.seed {wm['seed']} is not one of `seeds` {config['seeds']}")


def _check_k_against_reference(config: dict, i: int, name: str, n_classes: int, source: str) -> None:
    """A k above the reference set fails only at scoring, after training; where the set's size
    is known from the config (built-in dataset, integer n_per_class), refuse it now."""
    ks = [k for k in config["scoring"]["k"] if k != "all"]
    if not ks:
        return
    for n in config["conditions"][i]["n_anomaly"]:
        for n_per_class in config["n_per_class"]:
            if n_per_class == "all":
                continue
            size = reference_size(
                n_classes - n, n_per_class, training_recipe(config, name, n_per_class)["val_fraction"]
            )
            if max(ks) > size:
                raise ConfigError(
                    f"{source}: scoring.k {max(ks)} is larger than the reference set of conditions.{i} "
                    f"(dataset '{name}', n_anomaly {n}, n_per_class {n_per_class}): {n_classes - n} normal "
                    f"classes x {n_per_class} images less the validation share (training.val_fraction) "
                    f"leave {size} reference images; use scoring.k <= {size} or 'all', or a larger n_per_class"
                )


def read_config_file(path: str | Path) -> dict:
    """A config file as written (no defaults), read by dmlbench.config.yaml_loader: duplicate
    keys, YAML booleans as keys, a folder or a binary file each stop with one line."""
    return read_yaml_file(path)


def load_config(path_or_config: str | Path | dict, check_data: bool = False) -> dict:
    """A validated config with defaults, from a YAML file, an inline JSON string or a dict
    (``check_data``: see :func:`validate`)."""
    if isinstance(path_or_config, dict):
        return validate(path_or_config, check_data=check_data)
    text = str(path_or_config)
    if text.lstrip().startswith("{"):
        return validate(json.loads(text), "inline config", check_data)
    return validate(read_config_file(text), str(text), check_data)
