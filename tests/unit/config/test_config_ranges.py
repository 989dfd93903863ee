"""Every config value a component would refuse is refused by the config check, before any job.

The config check asks the components' own declarations (dmlbench.config.head_params for the heads,
dmlbench.config.sources.check_options for the dataset readers); these tests hold each component
against `dmlbench.config.validate` at the boundaries of its ranges: a value is accepted by the
config exactly when the component itself (a head built with torch, a reader, a scorer, the
trainer's option parsing) accepts it, and the ranges are the papers' (written out here by hand).
"""

from __future__ import annotations

import copy
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from dmlbench.config import head_params, load_schema, score_names, validate
from dmlbench.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]
MINIMAL = {"datasets": {"digits": {"source": "digits"}}, "conditions": [{"dataset": "digits", "n_anomaly": [3]}]}

#: The ranges of the heads' parameters, from the papers and the reference code (docs/methods.md),
#: written out independently of dmlbench.config.head_params.
PAPER_RANGES = {
    ("l2softmax", "alpha"): "(0, inf)",
    ("arcface", "scale"): "(0, inf)",
    ("arcface", "margin"): "[0, pi)",
    ("cosface", "scale"): "(0, inf)",
    ("cosface", "margin"): "[0, inf)",
    ("sphereface", "margin"): "integer in [1, inf)",
    ("sphereface", "base"): "[0, inf)",
    ("sphereface", "gamma"): "[0, inf)",
    ("sphereface", "power"): "[0, inf)",
    ("sphereface", "lambda_min"): "[0, inf)",
    ("sphereface", "lambda_schedule"): "{run, reference}",
    ("sphereface", "anneal_fraction"): "(0, 1]",
    ("centerloss", "weight"): "[0, inf)",
    ("centerloss", "alpha"): "(0, 1]",
}
HEAD_PARAMETERS = [(head, key) for head, params in head_params.HEAD_PARAMS.items() for key in params]


def _config(**changes) -> dict:
    cfg = copy.deepcopy(MINIMAL)
    cfg.update(changes)
    return cfg


def _accepted(call) -> tuple[bool, str]:
    try:
        call()
    except ConfigError as exc:
        return False, str(exc)
    return True, ""


def _probes(param: head_params.Param | head_params.Choice) -> list[float | int | str]:
    """Values at and just beside every finite bound, and far inside/outside the open ends; for a
    named option, every name and a wrong one."""
    if isinstance(param, head_params.Choice):
        return [*param.choices, "no-such-option"]
    values: list[float | int] = []
    for bound in (param.low, param.high):
        if bound is None:
            continue
        if param.integer:
            values += [int(bound) - 1, int(bound), int(bound) + 1]
        else:
            values += [math.nextafter(bound, -math.inf), float(bound), math.nextafter(bound, math.inf)]
    if param.high is None:
        values.append(10**6 if param.integer else 1e6)
    if param.low is None:
        values.append(-(10**6) if param.integer else -1e6)
    return values


# --------------------------------------------------------------------------- heads


def test_every_head_parameter_has_its_papers_range():
    assert {(h, k): head_params.HEAD_PARAMS[h][k].interval() for h, k in HEAD_PARAMETERS} == PAPER_RANGES


@pytest.mark.parametrize("head, key", HEAD_PARAMETERS, ids=[f"{h}.{k}" for h, k in HEAD_PARAMETERS])
def test_config_refuses_a_head_parameter_exactly_where_the_head_does(head, key):
    from dmlbench.heads import build_head

    param = head_params.HEAD_PARAMS[head][key]
    probes = _probes(param)
    outcomes = []
    for value in probes:
        head_ok, head_msg = _accepted(lambda: build_head(head, 4, 3, **{key: value}))
        config_ok, config_msg = _accepted(lambda: validate(_config(methods={head: {key: value}})))
        assert head_ok == config_ok, f"{head}.{key} = {value!r}: head {head_ok}, config {config_ok}"
        if not head_ok:
            assert f"head {head!r} parameter {key!r}" in head_msg, head_msg
            assert f"methods.{head}.{key}" in config_msg and "Traceback" not in config_msg, config_msg
            assert config_msg.count("\n") == 0, config_msg  # one line
        outcomes.append(head_ok)
    # both sides of every bound were probed: something is refused and something accepted
    assert any(outcomes) and not all(outcomes), (head, key, probes, outcomes)


def test_arcface_margin_above_pi_names_the_key_the_bound_and_the_fix():
    with pytest.raises(ConfigError) as err:
        validate(_config(methods={"arcface": {"margin": 4.0}}))
    msg = str(err.value)
    assert "methods.arcface.margin must be < 3.14159 (pi), got 4.0" in msg
    assert "takes margin in [0, pi) (default 0.5)" in msg


@pytest.mark.parametrize(
    "head, key, value, allowed",
    [
        ("arcface", "margin", math.pi, False),
        ("arcface", "margin", 3.14159, True),
        ("arcface", "margin", 0.0, True),
        ("arcface", "margin", -1e-9, False),
        ("cosface", "scale", 0.0, False),
        ("l2softmax", "alpha", 1e-9, True),
        ("sphereface", "margin", 1, True),
        ("sphereface", "margin", 0, False),
        ("centerloss", "alpha", 0.0, False),
        ("centerloss", "alpha", 1.0, True),
        ("centerloss", "alpha", 1.0000001, False),
    ],
)
def test_bounds_worked_out_by_hand(head, key, value, allowed):
    from dmlbench.heads import build_head

    assert _accepted(lambda: build_head(head, 4, 3, **{key: value}))[0] is allowed
    assert _accepted(lambda: validate(_config(methods={head: {key: value}})))[0] is allowed


def test_schema_states_each_head_parameter_as_declared_and_no_bound_of_its_own():
    """Defaults and types agree with head_params; the range is only in the description (one source)."""
    methods = load_schema()["definitions"]["heads"]["properties"]
    for head, params in head_params.HEAD_PARAMS.items():
        props = methods[head]["properties"]
        assert set(props) - {"mixup", "mixup_alpha"} == set(params), head
        for key, param in params.items():
            prop = props[key]
            assert prop["default"] == param.default, (head, key)
            if isinstance(param, head_params.Choice):
                assert prop["type"] == "string" and "enum" not in prop, (head, key)
                assert f"one of {param.interval()}." in prop["description"], (head, key, prop["description"])
                continue
            assert prop["type"] == ("integer" if param.integer else "number"), (head, key)
            assert not {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"} & set(prop), (head, key)
            assert f"range {param.interval()}." in prop["description"], (head, key, prop["description"])


def test_heads_take_their_defaults_from_the_declarations():
    from dmlbench.heads import HEADS

    for name, cls in HEADS.items():
        assert cls.PARAMS == head_params.defaults(name)
        assert cls(4, 3).hparams == head_params.defaults(name)


# --------------------------------------------------------------------------- datasets


def _dataset(**options) -> dict:
    return _config(datasets={"digits": {"source": "digits", **options}})


@pytest.mark.parametrize(
    "options",
    [
        {"image_size": 3},
        {"image_size": 4},
        {"test_fraction": 0.0},
        {"test_fraction": 0.005},
        {"test_fraction": 0.0051},
        {"test_fraction": 0.9944},
        {"test_fraction": 0.9945},
        {"test_fraction": 1.0},
    ],
)
def test_digits_options_are_refused_by_the_config_exactly_where_the_reader_refuses_them(options):
    from dmlbench.data.sources import load_source

    reader_ok, _ = _accepted(lambda: load_source({"source": "digits", **options}))
    config_ok, msg = _accepted(lambda: validate(_dataset(**options)))
    assert reader_ok == config_ok, (options, reader_ok, config_ok, msg)
    if not config_ok:
        assert f"datasets.digits.{next(iter(options))}" in msg, msg


def test_digits_split_bounds_are_scikit_learns():
    """The split check counts as train_test_split does: its bounds are where sklearn refuses."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from dmlbench.config.sources import DIGITS_CLASS_COUNTS, check_options

    y = load_digits().target
    assert tuple(np.bincount(y)) == DIGITS_CLASS_COUNTS
    n = len(y)  # 1797: test = ceil(f * 1797) must be >= 10 and the rest >= 10
    for frac in (9 / n, math.nextafter(9 / n, 1), 0.5, (n - 10) / n, math.nextafter((n - 10) / n, 1)):
        try:
            train_test_split(y, test_size=frac, stratify=y, random_state=0)
            sklearn_ok = True
        except ValueError:
            sklearn_ok = False
        ours_ok, _ = _accepted(lambda: check_options({"source": "digits", "test_fraction": frac}))
        assert ours_ok == sklearn_ok, frac
    assert not _accepted(lambda: check_options({"source": "digits", "test_fraction": 9 / n}))[0]
    assert _accepted(lambda: check_options({"source": "digits", "test_fraction": (n - 10) / n}))[0]


def test_folder_channels_refused_by_config_and_reader_alike(tmp_path):
    from dmlbench.config.sources import check_options

    for channels, ok in ((1, True), (3, True), (2, False), (4, False)):
        assert _accepted(lambda: check_options({"source": "folder", "root": "x", "channels": channels}))[0] is ok
        cfg = _config(
            datasets={"f": {"source": "folder", "root": str(tmp_path), "channels": channels}},
            conditions=[{"dataset": "f", "n_anomaly": [1]}],
            cases=1,
        )
        config_ok, msg = _accepted(lambda: validate(cfg))
        assert config_ok is ok and (ok or "datasets.f.channels" in msg), msg


@pytest.mark.parametrize(
    "entry, key",
    [
        ({"source": "cifar10", "image_size": 64}, "image_size"),
        ({"source": "mnist", "channels": 3}, "channels"),
        ({"source": "cifar10", "test_fraction": 0.2}, "test_fraction"),
        ({"source": "digits", "root": "data/digits"}, "root"),
        ({"source": "digits", "download": True}, "download"),
        ({"source": "folder", "root": "x", "split_seed": 3}, "split_seed"),
    ],
)
def test_an_option_the_source_does_not_read_is_refused(entry, key):
    name = entry["source"]
    with pytest.raises(ConfigError) as err:
        validate(_config(datasets={name: entry}, conditions=[{"dataset": name, "n_anomaly": [1]}], cases=1))
    msg = str(err.value)
    assert f"datasets.{name}.{key} is not read by source '{name}'" in msg and "remove it" in msg, msg


def test_a_filled_config_validates_again_unchanged():
    """The workflow's snapshot (results/config.yaml) has every default filled in, also reader
    options of other sources (test_fraction: 0.3 on cifar10); validating it again keeps it."""
    for name in ("config.yaml", "demo.yaml", "test.yaml"):
        filled = validate(yaml.safe_load((ROOT / "config" / name).read_text()))
        assert validate(copy.deepcopy(filled)) == filled, name


def test_schema_dataset_options_are_the_readers():
    from dmlbench.config.sources import MIN_IMAGE_SIZE, ROOT_SOURCES, SOURCE_OPTIONS
    from dmlbench.data.sources import SOURCES

    props = load_schema()["properties"]["datasets"]["additionalProperties"]["properties"]
    reader_keys = {k for opts in SOURCE_OPTIONS.values() for k in opts} | {"root"}
    assert set(props) == reader_keys | {"source", "class_order", "flip", "training"}
    assert props["source"]["enum"] == list(SOURCES) == list(SOURCE_OPTIONS)
    assert set(ROOT_SOURCES) < set(SOURCES)
    assert props["image_size"]["minimum"] == MIN_IMAGE_SIZE
    for key in ("test_fraction", "split_seed"):  # the schema fills these in: the reader's defaults
        assert props[key]["default"] == SOURCE_OPTIONS["digits"][key]


def test_image_size_minimum_is_what_the_small_cnn_can_take():
    import torch

    from dmlbench.config.sources import MIN_IMAGE_SIZE
    from dmlbench.train.models import build_backbone

    net = build_backbone("small_cnn", 1, 8).eval()
    assert net(torch.zeros(1, 1, MIN_IMAGE_SIZE, MIN_IMAGE_SIZE)).shape == (1, 8)
    with pytest.raises(RuntimeError):
        net(torch.zeros(1, 1, MIN_IMAGE_SIZE - 1, MIN_IMAGE_SIZE - 1))


def test_class_order_values_are_the_splits():
    from dmlbench.data.splits import class_order

    enum = load_schema()["properties"]["datasets"]["additionalProperties"]["properties"]["class_order"]["enum"]
    for order in enum:
        class_order(["b", "a"], order)
    assert not _accepted(lambda: class_order(["b", "a"], "random"))[0]
    assert not _accepted(lambda: validate(_dataset(class_order="random")))[0]


# --------------------------------------------------------------------------- scoring


def test_score_names_are_the_score_stages_columns():
    from dmlbench.config.scorers import SCORERS
    from dmlbench.score.knn import DISTANCES, score_columns

    scoring = load_schema()["properties"]["scoring"]["properties"]
    assert tuple(scoring["distances"]["items"]["enum"]) == DISTANCES
    assert tuple(scoring["scorers"]["items"]["enum"]) == SCORERS
    for distances, ks, scorers in (
        (["euclidean", "cosine"], [10, "all", 1], ["lof", "msp"]),
        (["cosine"], ["all"], []),
        (["euclidean"], [30, 5], list(SCORERS)),
    ):
        cfg = validate(
            _config(
                scoring={"distances": distances, "k": ks, "scorers": scorers},
                report={"scorer": f"{distances[0]}_k{ks[0]}"},
            )
        )
        expected = score_columns(distances, ks, include_nn=False) + [s for s in SCORERS if s in scorers]
        assert score_names(cfg) == expected


@pytest.mark.parametrize(
    "scorer, ok",
    [
        ("cosine_k1", True),
        ("euclidean_kall", True),
        ("msp", True),
        ("cosine_k7", False),
        ("lof", False),
        ("head", False),
    ],
)
def test_report_scorer_must_be_computed(scorer, ok):
    cfg = _config(scoring={"k": [1, 5, "all"], "scorers": ["mahalanobis", "msp"]}, report={"scorer": scorer})
    accepted, msg = _accepted(lambda: validate(cfg))
    assert accepted is ok, msg
    if not ok:
        assert f"report.scorer '{scorer}' is not computed" in msg and "cosine_k1, cosine_k5, cosine_kall" in msg


def test_deleting_the_k_the_report_scorer_uses_names_both_keys():
    """The fuzzer's second accepted exception (tests/reliability/test_config_fuzz.py)."""
    cfg = _config(scoring={"k": [5, "all"]})
    with pytest.raises(ConfigError, match=r"report.scorer 'cosine_k1'.*scoring.k"):
        validate(cfg)


@pytest.mark.parametrize("k", [0, 1, "all", "ALL", 2.5, True])
def test_k_refused_by_config_exactly_where_the_scorer_refuses_it(k):
    from dmlbench.score.knn import score_columns

    scorer_ok, _ = _accepted(lambda: score_columns(["cosine"], [k]))
    config_ok, msg = _accepted(lambda: validate(_config(scoring={"k": [k]}, report={"scorer": "msp"})))
    assert scorer_ok == config_ok, (k, msg)
    assert config_ok or "scoring.k.0" in msg


@pytest.mark.parametrize("shrinkage", [-0.01, 0.0, 0.5, 1.0, 1.01, "ledoit_wolf", "oas"])
def test_shrinkage_refused_by_config_exactly_where_mahalanobis_refuses_it(shrinkage):
    from dmlbench.score.scorers import tied_covariance

    ref = np.random.default_rng(0).normal(size=(20, 3))
    scorer_ok, _ = _accepted(lambda: tied_covariance(ref, np.arange(20) % 2, shrinkage=shrinkage))
    config_ok, msg = _accepted(lambda: validate(_config(scoring={"mahalanobis_shrinkage": shrinkage})))
    assert scorer_ok == config_ok, (shrinkage, msg)
    assert config_ok or "scoring.mahalanobis_shrinkage" in msg


@pytest.mark.parametrize("neighbors", [0, 1, 5])
def test_lof_neighbors_refused_by_config_exactly_where_lof_refuses_it(neighbors):
    from dmlbench.score.scorers import lof_scores

    rng = np.random.default_rng(0)
    lof_ok, _ = _accepted(lambda: lof_scores(rng.normal(size=(4, 3)), rng.normal(size=(30, 3)), n_neighbors=neighbors))
    config_ok, msg = _accepted(lambda: validate(_config(scoring={"lof_neighbors": neighbors})))
    assert lof_ok == config_ok, (neighbors, msg)


# --------------------------------------------------------------------------- training


def test_training_options_refused_by_config_exactly_where_the_trainer_refuses_them():
    import torch

    from dmlbench.train.compiled import resolve_compile
    from dmlbench.train.device import PRECISIONS, resolve_precision
    from dmlbench.train.learner import OPTIMIZERS, optimizer_func
    from dmlbench.train.models import build_backbone

    training = load_schema()["properties"]["training"]["properties"]
    assert tuple(training["precision"]["enum"]) == PRECISIONS
    assert tuple(training["optimizer"]["enum"]) == OPTIMIZERS
    cpu = torch.device("cpu")
    for value in ["auto", "bf16", "fp32", "fp16", "float32"]:
        trainer_ok, _ = _accepted(lambda: resolve_precision(value, cpu))
        config_ok, msg = _accepted(lambda: validate(_config(training={"precision": value})))
        assert trainer_ok == config_ok and (config_ok or "training.precision" in msg), (value, msg)
    for value in ["auto", True, False, "yes", 1]:
        trainer_ok, _ = _accepted(lambda: resolve_compile(value, cpu))
        config_ok, msg = _accepted(lambda: validate(_config(training={"compile": value})))
        assert trainer_ok == config_ok and (config_ok or "training.compile" in msg), (value, msg)
    for value in ["adam", "sgd", "lamb"]:
        trainer_ok, _ = _accepted(lambda: optimizer_func({"optimizer": value, "weight_decay": 0.0}, cpu))
        config_ok, msg = _accepted(lambda: validate(_config(training={"optimizer": value})))
        assert trainer_ok == config_ok and (config_ok or "training.optimizer" in msg), (value, msg)
    for value in ["resnet18", "small_cnn", "vgg"]:
        model_ok, _ = _accepted(lambda: build_backbone(value, 1, 8))
        config_ok, msg = _accepted(lambda: validate(_config(model={"backbone": value})))
        assert model_ok == config_ok and (config_ok or "model.backbone" in msg), (value, msg)


def test_mixup_alpha_must_be_positive_as_the_beta_distribution_needs():
    import torch

    for alpha, ok in ((0.0, False), (1e-6, True), (0.4, True)):
        try:
            torch.distributions.Beta(torch.tensor(alpha), torch.tensor(alpha), validate_args=True)
            beta_ok = True
        except ValueError:
            beta_ok = False
        config_ok, msg = _accepted(
            lambda: validate(_config(methods={"arcface": {"mixup": True, "mixup_alpha": alpha}}))
        )
        assert beta_ok is ok and config_ok is ok, (alpha, msg)
        assert ok or "methods.arcface.mixup_alpha" in msg


# --------------------------------------------------------------------------- a light parse


def test_validating_the_full_study_imports_no_torch():
    """The workflow parses its config with dmlbench.config (rules/common.smk) in every job."""
    code = (
        "import sys\n"
        "from dmlbench.config import load_config\n"
        f"load_config({str(ROOT / 'config' / 'config.yaml')!r})\n"
        "heavy = sorted(m for m in ('torch', 'torchvision', 'fastai', 'altair', 'sklearn') if m in sys.modules)\n"
        "print(','.join(heavy) or 'none')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "none", proc.stdout
