"""The original implementation's switches in the config (dmlbench.config.switches, methods.py):
boolean keys of a method entry, refused on a head they do not apply to, reaching the run's spec."""

from __future__ import annotations

import pytest

from dmlbench.config import methods as m
from dmlbench.config import train_spec, validate
from dmlbench.config.switches import STAGE_SWITCHES, SWITCHES, applies, switches_on, train_switches
from dmlbench.config.validation import load_schema
from dmlbench.errors import ConfigError

BASE = {
    "datasets": {"digits": {"source": "digits"}},
    "conditions": [{"dataset": "digits", "n_anomaly": [3]}],
    "cases": 2,
}


def config(methods: dict) -> dict:
    return validate({**BASE, "methods": methods})


def refused(methods: dict) -> str:
    with pytest.raises(ConfigError) as err:
        config(methods)
    return str(err.value)


def test_the_declared_switches():
    assert list(SWITCHES) == [
        "untrained_weights",
        "untrained_centres",
        "validate_on_test",
        "select_best_epoch",
        "unpaired_subsample",
    ]
    assert STAGE_SWITCHES == {
        "train": ("untrained_weights", "untrained_centres", "validate_on_test", "select_best_epoch"),
        "score": ("unpaired_subsample",),
    }
    assert [h for h in ("conventional", "arcface", "centerloss", "pml") if applies("untrained_weights", h)] == [
        "arcface"
    ]
    assert applies("untrained_centres", "centerloss") and not applies("untrained_centres", "arcface")
    assert applies("validate_on_test", "pml")
    # entry keys, not head parameters; the trainer reads the train-stage ones
    assert set(SWITCHES) <= set(m.ENTRY_KEYS)
    assert set(STAGE_SWITCHES["train"]) <= set(m.TRAINING_KEYS) and "unpaired_subsample" not in m.TRAINING_KEYS


def test_every_switch_is_a_boolean_key_of_the_schemas_method_entry():
    entry = load_schema()["properties"]["methods"]["additionalProperties"]["properties"]
    for name in SWITCHES:
        assert entry[name]["type"] == "boolean", name
        assert "docs/original.md" in entry[name]["description"]


def test_a_switch_reaches_the_runs_spec_and_one_set_false_is_left_out():
    cfg = config(
        {
            "arcface": {},
            "arcface_orig": {"head": "arcface", "untrained_weights": True, "select_best_epoch": True},
            "arcface_off": {"head": "arcface", "untrained_weights": False},
            "centerloss_orig": {"head": "centerloss", "untrained_centres": True, "unpaired_subsample": True},
        }
    )
    orig = train_spec(cfg, "digits", 3, "arcface_orig", "all", 0)["method_params"]
    assert switches_on(orig) == ["untrained_weights", "select_best_epoch"]
    assert train_switches(orig) == {"untrained_weights": True, "select_best_epoch": True}
    plain = train_spec(cfg, "digits", 3, "arcface", "all", 0)["method_params"]
    assert train_spec(cfg, "digits", 3, "arcface_off", "all", 0)["method_params"] == plain
    assert switches_on(plain) == []
    centre = train_spec(cfg, "digits", 3, "centerloss_orig", "all", 0)["method_params"]
    assert switches_on(centre) == ["untrained_centres", "unpaired_subsample"]
    assert train_switches(centre) == {"untrained_centres": True}
    # validating the validated config again changes nothing
    assert validate({**BASE, "methods": cfg["methods"]})["methods"] == cfg["methods"]


@pytest.mark.parametrize(
    "methods, expected",
    [
        (
            {"conventional": {"untrained_weights": True}},
            "methods.conventional.untrained_weights: switch 'untrained_weights' applies to head arcface, cosface, "
            "sphereface only, not head 'conventional'",
        ),
        (
            {"c": {"head": "centerloss", "untrained_weights": True}},
            "methods.c.untrained_weights: switch 'untrained_weights' applies to head arcface",
        ),
        (
            {"a": {"head": "arcface", "untrained_centres": True}},
            "methods.a.untrained_centres: switch 'untrained_centres' applies to head centerloss only, not head 'arcface'",
        ),
        (
            {"sc": {"head": "pml", "loss": "SupConLoss", "untrained_weights": True}},
            "methods.sc.untrained_weights: switch 'untrained_weights' applies to head arcface, cosface, sphereface "
            "only, not head 'pml'",
        ),
        (
            {"conventional": {"select_best_epoch": "yes"}},
            "'methods.conventional.select_best_epoch': 'yes' is not of type 'boolean'",
        ),
        (
            {"arcface": {"untrained_weights": [True, 1]}},
            "'methods.arcface.untrained_weights': [True, 1] is not of type 'boolean'",
        ),
    ],
)
def test_a_switch_on_a_head_it_does_not_apply_to_is_refused_naming_the_key(methods, expected):
    message = refused(methods)
    assert expected in message, message


def test_a_switch_on_the_wrong_head_is_refused_by_the_head_builder_too():
    torch = pytest.importorskip("torch")  # noqa: F841
    from dmlbench.heads import build_head

    with pytest.raises(ConfigError, match="untrained_weights applies to the margin heads only"):
        build_head("conventional", 4, 3, switches={"untrained_weights": True})
    with pytest.raises(ConfigError, match="untrained_centres applies to head centerloss only"):
        build_head("cosface", 4, 3, switches={"untrained_centres": True})
