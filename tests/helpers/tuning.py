"""A small tuned config for the tune stage's tests: digits at 8 px, ArcFace tuned (scale and lr)."""

from pathlib import Path

import yaml

from dmlbench.config import validate

ROOT = Path(__file__).resolve().parents[2]


def tuning_config(n_anomaly: int, trials: int = 2) -> dict:
    config = yaml.safe_load((ROOT / "config" / "test.yaml").read_text())
    config["datasets"]["digits"]["image_size"] = 8
    config["conditions"] = [{"dataset": "digits", "n_anomaly": [n_anomaly]}]
    config["methods"] = {"arcface": {}}
    config["tuning"] = {
        "trials": trials,
        "folds": 2,
        "methods": {"arcface": {"scale": {"low": 8, "high": 64, "log": True}}},
        "training": {"lr": {"low": 0.001, "high": 0.02, "log": True}},
    }
    return validate(config)
