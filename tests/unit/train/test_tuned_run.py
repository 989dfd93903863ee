"""A tuned run (``<label>_tuned``) trains each case with that case's own best parameters."""

import numpy as np
import pytest

from dmlbench.config.tuning import tuned_train_spec, with_case_params
from dmlbench.data.sources import load_source
from dmlbench.train.run import train_run
from tests.helpers.tuning import tuning_config


@pytest.fixture(scope="module")
def digits():
    return load_source({"source": "digits", "image_size": 8})


def test_each_case_trains_with_its_own_parameters(digits):
    config = tuning_config(3)
    default = config["methods"]["arcface"]
    best = {"dataset": "digits", "n_anomaly": 3, "method": "arcface", "n_per_class": "all", "seed": 0,
            "cases": [{"case": 0, "params": {"scale": default["scale"]}},  # the default: case 0 as the default run's
                      {"case": 1, "params": {"scale": 10.0, "training.lr": 0.02}}]}  # fmt: skip
    spec = with_case_params(tuned_train_spec(config, "digits", 3, "arcface", "all", 0), best)
    plain = {k: v for k, v in spec.items() if k not in ("case_params", "tuned", "head")} | {"method": "arcface"}
    tuned, untuned = train_run(digits, spec, device="cpu"), train_run(digits, plain, device="cpu")
    assert np.array_equal(tuned.arrays["case0_test"], untuned.arrays["case0_test"])
    assert not np.array_equal(tuned.arrays["case1_test"], untuned.arrays["case1_test"])
    assert [c["tuned_params"] for c in tuned.meta["cases"]] == [best["cases"][0]["params"], best["cases"][1]["params"]]
