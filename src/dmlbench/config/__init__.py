"""The config: schema loading, validation and semantic checks, the method and head declarations,
and the per-job specs - everything ``rules/common.smk`` and ``dmlbench validate`` import.

Torch-free on purpose: Snakemake imports this package when it parses the workflow, in every job
of a cluster or cloud run, so nothing here imports torch, fastai, Altair, SciPy or scikit-learn
(a test imports it with those blocked). The components keep their own declarations here, where
the config check reads them before any job:

- ``validation``: the JSON Schema (schemas/config.schema.yaml), defaults, every check;
- ``specs``: what one run, score job or dataset needs of a config (train_spec, score_spec, ...);
- ``methods``: method entries, variants and sweeps; ``head_params``: each head's parameters and
  ranges; ``pml_params`` (with ``_pml_signatures``): pytorch-metric-learning's constructors;
- ``model_options``: backbones and embedding layers; ``sources``: each dataset source's options;
  ``scorers``: the scorers' names and defaults.

The names below are importable from ``dmlbench.config`` itself, as before the package existed.
"""

from __future__ import annotations

from dmlbench.config.sources import FLIP_DEFAULT, KNOWN_CLASS_COUNTS
from dmlbench.config.specs import (
    annex_conditions,
    annex_mixup_of,
    class_count,
    is_annex,
    n_cases,
    parse_n_per_class,
    reference_size,
    score_spec,
    spec_from_arg,
    train_spec,
    training_recipe,
    tsne_datasets,
    worst_miss_selection,
)
from dmlbench.config.validation import (
    FINE_TUNE_KEYS,
    check_semantics,
    fill_defaults,
    head_defaults,
    load_config,
    load_schema,
    read_config_file,
    schema_path,
    score_names,
    training_defaults,
    validate,
)

__all__ = [
    "FINE_TUNE_KEYS",
    "FLIP_DEFAULT",
    "KNOWN_CLASS_COUNTS",
    "annex_conditions",
    "class_count",
    "annex_mixup_of",
    "check_semantics",
    "fill_defaults",
    "head_defaults",
    "is_annex",
    "load_config",
    "load_schema",
    "n_cases",
    "parse_n_per_class",
    "read_config_file",
    "reference_size",
    "schema_path",
    "score_names",
    "score_spec",
    "spec_from_arg",
    "train_spec",
    "training_defaults",
    "training_recipe",
    "tsne_datasets",
    "validate",
    "worst_miss_selection",
]
