"""The `tuning:` block: one budget for every method (a per-method one refused, saying why), search
spaces checked against the heads' own ranges, the tune and tuned-run specs."""

import pytest

from dmlbench.config import validate
from dmlbench.config.tuning import search_space, split_params, tune_spec, tuned_labels, with_params
from dmlbench.errors import ConfigError


def _with(tuning: dict) -> dict:
    return {
        "datasets": {"digits": {"source": "digits"}},
        "conditions": [{"dataset": "digits", "n_anomaly": [3]}],
        "methods": {"conventional": {}, "arcface": {}},
        "tuning": tuning,
    }


@pytest.mark.parametrize("key", ["trials", "timeout_per_trial", "folds"])
def test_a_per_method_budget_is_refused_saying_why(key):
    with pytest.raises(ConfigError) as err:
        validate(_with({"methods": {"arcface": {key: 5}}}))
    message = str(err.value)
    assert f"tuning.methods.arcface.{key}" in message
    assert "same budget by construction" in message and "Set it once under `tuning`" in message


def test_the_budget_is_one_number_for_all_methods():
    config = validate(
        _with(
            {
                "trials": 7,
                "training": {"lr": {"low": 0.001, "high": 0.1, "log": True}},
                "methods": {"conventional": {}, "arcface": {"margin": {"low": 0.1, "high": 0.6}}},
            }
        )
    )
    specs = [tune_spec(config, "digits", 3, m, "all", 0)["tuning"] for m in ("conventional", "arcface")]
    assert [s["trials"] for s in specs] == [7, 7] and specs[0]["folds"] == specs[1]["folds"] == 3
    lr = {"low": 0.001, "high": 0.1, "log": True}
    assert specs[0]["space"] == {"training.lr": lr} and specs[1]["space"] == {
        "training.lr": lr,
        "margin": {"low": 0.1, "high": 0.6},
    }
    assert tuned_labels(config) == ["conventional", "arcface"]


@pytest.mark.parametrize(
    "tuning, needle",
    [
        ({"methods": {"arcface": {"margin": {"low": 0.1, "high": 4.0}}}}, "margin.high"),  # past pi
        ({"methods": {"arcface": {"alpha": {"low": 1, "high": 2}}}}, "has no parameter 'alpha'"),
        ({"methods": {"cosface": {}}}, "tuning.methods.cosface is not a method"),
        ({"methods": {"arcface": {"scale": {"low": 0, "high": 64, "log": True}}}}, "log range needs low > 0"),
        ({"methods": {"arcface": {"scale": {"low": 64, "high": 8}}}}, "must be below high"),
        ({"methods": {"arcface": {}}, "training": {"epochs": {"low": 0, "high": 3, "integer": True}}}, "epochs.low"),
        ({"methods": {"arcface": {}}, "training": {"batch_size": {"low": 8, "high": 64}}}, "batch_size"),
    ],
)
def test_a_search_space_is_checked_against_the_heads_ranges(tuning, needle):
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(")):
        validate(_with(tuning))


def test_a_method_with_nothing_to_tune_is_refused():
    with pytest.raises(ConfigError, match="tuning.methods.conventional has nothing to tune"):
        validate(_with({"methods": {"conventional": {}}}))


def test_a_method_validated_on_test_images_is_not_tuned():
    # The switch validate_on_test (the original's validation set) would put test images into the
    # tune job's folds, which must never see the test split.
    config = _with({"methods": {"arcface_orig": {"margin": {"low": 0.1, "high": 0.6}}}})
    config["methods"]["arcface_orig"] = {"head": "arcface", "validate_on_test": True}
    with pytest.raises(ConfigError, match="tuning.methods.arcface_orig: the method has the switch validate_on_test"):
        validate(config)
    config["methods"]["arcface_orig"] = {"head": "arcface", "untrained_weights": True}
    validate(config)


def test_tuning_needs_two_normal_classes():
    config = _with({"methods": {"arcface": {"margin": {"low": 0.1, "high": 0.6}}}})
    config["conditions"] = [{"dataset": "digits", "n_anomaly": [9]}]
    with pytest.raises(ConfigError, match="two or more normal classes"):
        validate(config)


def test_a_trials_parameters_split_into_head_and_training():
    config = validate(
        _with(
            {
                "methods": {"arcface": {"scale": {"choices": [16, 32]}}},
                "training": {"lr": {"low": 0.001, "high": 0.1, "log": True}},
            }
        )
    )
    assert list(search_space(config, "arcface")) == ["training.lr", "scale"]
    assert split_params({"training.lr": 0.01, "scale": 16}) == {
        "method_params": {"scale": 16},
        "training": {"lr": 0.01},
    }
    spec = with_params(tune_spec(config, "digits", 3, "arcface", "all", 0), {"training.lr": 0.01, "scale": 16})
    assert (
        spec["training"]["lr"] == 0.01
        and spec["method_params"]["scale"] == 16
        and spec["method_params"]["margin"] == 0.5
    )
