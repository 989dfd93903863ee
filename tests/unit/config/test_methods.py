"""Method entries: labels, variants, sweeps, pytorch-metric-learning entries (dmlbench.config.methods, the
config check), their order and colours in the report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dmlbench.config import load_config, train_spec, validate
from dmlbench.config import methods as m
from dmlbench.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]
BASE = {
    "datasets": {"digits": {"source": "digits"}},
    "conditions": [{"dataset": "digits", "n_anomaly": [3]}],
    "cases": 2,
}


def config(methods: dict, **extra) -> dict:
    return validate({**BASE, "methods": methods, **extra})


def refused(methods: dict, **extra) -> str:
    with pytest.raises(ConfigError) as err:
        config(methods, **extra)
    return str(err.value)


# --------------------------------------------------------------------------- expansion


def test_a_sweep_is_one_variant_per_value_labelled_by_it():
    cfg = config({"conventional": {}, "arcface": {"margin": [0.2, 0.35, 0.5]}, "cosface": {}})
    assert list(cfg["methods"]) == [
        "conventional",
        "arcface_margin0.2",
        "arcface_margin0.35",
        "arcface_margin0.5",
        "cosface",
    ]
    variant = cfg["methods"]["arcface_margin0.35"]
    # the head named, the swept value set, the other parameters the head's defaults, the sweep recorded
    assert variant == {
        "head": "arcface",
        "margin": 0.35,
        "mixup": False,
        "mixup_alpha": 0.4,
        "sweep": "arcface",
        "scale": 30,
    }
    assert cfg["methods"]["cosface"] == {
        "head": "cosface",
        "mixup": False,
        "mixup_alpha": 0.4,
        "scale": 30,
        "margin": 0.4,
    }


def test_a_variant_given_a_list_again_names_the_list():
    """A variant of an expanded config (it carries `sweep`) edited to hold a list: the error names
    the key holding the list, not only `sweep`."""
    filled = config({"arcface": {"margin": [0.2, 0.5]}})["methods"]
    filled["arcface_margin0.2"]["scale"] = [16, 30]
    with pytest.raises(ConfigError, match=r"methods\.arcface_margin0\.2\.scale\) is a sweep of its own"):
        m.expand(filled)


def test_an_unknown_parameter_of_a_sweep_is_named_under_the_entry_as_written():
    with pytest.raises(ConfigError, match=r"methods\.arcface\.bogus: head 'arcface' takes no parameter"):
        config({"arcface": {"margin": [0.2, 0.5], "bogus": 1}})


def test_several_lists_sweep_every_combination_in_the_order_written():
    cfg = config({"arcface": {"scale": [16, 64], "margin": [0.3, 0.5]}})
    assert list(cfg["methods"]) == [
        "arcface_scale16_margin0.3",
        "arcface_scale16_margin0.5",
        "arcface_scale64_margin0.3",
        "arcface_scale64_margin0.5",
    ]
    assert cfg["methods"]["arcface_scale64_margin0.3"]["scale"] == 64
    groups = m.sweeps(cfg["methods"])
    assert list(groups) == ["arcface"] and groups["arcface"]["params"] == ["scale", "margin"]


def test_a_variant_names_its_head_and_keeps_its_label():
    cfg = config({"arcface_m03": {"head": "arcface", "margin": 0.3}, "arcface": {}})
    assert cfg["methods"]["arcface_m03"]["head"] == "arcface" and cfg["methods"]["arcface_m03"]["margin"] == 0.3
    assert "sweep" not in cfg["methods"]["arcface_m03"] and m.sweeps(cfg["methods"]) == {}
    spec = train_spec(cfg, "digits", 3, "arcface_m03", "all", 0)
    assert spec["method"] == "arcface_m03" and spec["head"] == "arcface"
    assert spec["method_params"] == {"margin": 0.3, "scale": 30, "mixup": False, "mixup_alpha": 0.4}


def test_existing_configs_keep_their_train_specs():
    """A config whose labels are head names gives the specs it gave before variants existed (no
    `head` key, the same parameters): Snakemake does not retrain its runs."""
    cfg = load_config(ROOT / "config" / "config.yaml")
    spec = train_spec(cfg, "cifar10", 1, "arcface", "all", 0)
    assert "head" not in spec
    assert spec["method_params"] == {"scale": 30, "margin": 0.5, "mixup": False, "mixup_alpha": 0.4}
    # SphereFace's spec gained its λ schedule (issue 13 changed how it anneals: its runs are redone)
    assert json.dumps(train_spec(cfg, "mnist", 5, "sphereface", "all", 0)["method_params"], sort_keys=True) == (
        '{"anneal_fraction": 0.06, "base": 1000, "gamma": 0.12, "lambda_min": 5, "lambda_schedule": "run", '
        '"margin": 4, "mixup": false, "mixup_alpha": 0.4, "power": 1}'
    )


@pytest.mark.parametrize("name", ["config.yaml", "demo.yaml", "test.yaml"])
def test_validating_a_validated_config_changes_nothing(name):
    """The report validates the effective config (the snapshot) again: expansion is done once."""
    once = load_config(ROOT / "config" / name)
    assert validate(yaml.safe_load(yaml.safe_dump(once))) == once


def test_value_text_of_swept_values():
    assert [m.value_text(v) for v in (0.35, 16, 16.0, 1e-5, 2e20, -0.5, "semihard")] == [
        "0.35",
        "16",
        "16",
        "1e-05",
        "2e20",
        "-0.5",
        "semihard",
    ]


# --------------------------------------------------------------------------- refusals, one message naming the key


@pytest.mark.parametrize(
    "methods, expected",
    [
        (
            {"arcface_m03": {"head": "arcfce", "margin": 0.3}},
            "methods.arcface_m03.head: unknown head 'arcfce'; known: conventional, l2softmax, arcface, cosface, sphereface, "
            "centerloss, pml",
        ),
        ({"triplet": {}}, "methods.triplet.head is missing: 'triplet' is not a head, so the entry must name its head"),
        ({"arcface": {"margin": [0.2, 4, 0.5]}}, "methods.arcface.margin[1] must be < 3.14159 (pi), got 4.0"),
        ({"arcface": {"margin": [0.2, "wide"]}}, "methods.arcface.margin[1] must be a number, got 'wide'"),
        ({"arcface": {"margin": [0.2, 0.2]}}, "methods.arcface.margin: the sweep lists 0.2 more than once"),
        ({"arcface": {"margin": []}}, "config key 'methods.arcface.margin'"),
        (
            {"arcface": {"s": 64}},
            "methods.arcface.s: head 'arcface' takes no parameter 's' (its parameters: scale, "
            "margin, mixup, mixup_alpha)",
        ),
        ({"arcface": {"loss": "SupConLoss"}}, "methods.arcface.loss: `loss` is for head 'pml'"),
        (
            {"sc": {"head": "pml", "loss": "SupConLos"}},
            "methods.sc: unknown pytorch-metric-learning loss 'SupConLos'; did you mean 'SupConLoss'?",
        ),
        ({"sc": {"head": "pml"}}, "methods.sc.loss: head 'pml' needs the class name of a pytorch-metric-learning loss"),
        (
            {"sc": {"head": "pml", "loss": "SupConLoss", "temprature": 0.2}},
            "methods.sc.temprature: SupConLoss takes no argument 'temprature'; did you mean 'temperature'?",
        ),
        (
            {"sc": {"head": "pml", "loss": "SupConLoss", "temperature": [0.1, True]}},
            "methods.sc.temperature[1] must be a number (its default is 0.1), got True",
        ),
        ({"sc": {"head": "pml", "loss": "ArcFaceLoss", "num_classes": 3}}, "methods.sc.num_classes is set by dmlbench"),
        (
            {"sc": {"head": "pml", "loss": "SubCenterArcFaceLoss", "sub_centers": 2.5}},
            "methods.sc.sub_centers must be an integer, got 2.5",
        ),
        ({"sc": {"head": "pml", "loss": "SupConLoss", "mixup": True}}, "methods.sc.mixup: mixup combines a per-sample"),
        ({"sc": {"head": "pml", "loss": "VICRegLoss"}}, "VICRegLoss' is not supported here: self-supervised"),
        (
            {"tm": {"head": "pml", "loss": "TripletMarginLoss", "miner": {"name": "TripletMiner"}}},
            "methods.tm.miner: unknown pytorch-metric-learning miner 'TripletMiner'; did you mean 'TripletMarginMiner'?",
        ),
        (
            {"rl": {"head": "pml", "loss": "RankedListLoss", "margin": 0.4}},
            "methods.rl.Tn is required by RankedListLoss (it has no default)",
        ),
        ({"a/b": {"head": "arcface"}}, "config key 'methods': bad key name methods.a/b"),
        (
            {"arcface": {"margin": [0.3]}, "arcface_margin0.3": {"head": "arcface"}},
            "methods.arcface_margin0.3: its variant label 'arcface_margin0.3' is also made by methods.arcface",
        ),
    ],
)
def test_a_bad_variant_stops_with_one_message_naming_the_key(methods, expected):
    message = refused(methods)
    assert expected in message, message
    assert "Traceback" not in message


def test_a_pair_loss_needs_two_normal_classes():
    message = refused(
        {"sc": {"head": "pml", "loss": "SupConLoss"}}, conditions=[{"dataset": "digits", "n_anomaly": [9]}]
    )
    assert "methods.sc (SupConLoss) learns from pairs" in message and "n_anomaly <= 8" in message
    # a classification loss with one class is the head's own business, as for the six heads
    config(
        {"nsl": {"head": "pml", "loss": "NormalizedSoftmaxLoss"}}, conditions=[{"dataset": "digits", "n_anomaly": [9]}]
    )


def test_the_report_scorer_must_exist_for_every_method():
    message = refused({"conventional": {}, "sc": {"head": "pml", "loss": "SupConLoss"}}, report={"scorer": "msp"})
    assert "report.scorer 'msp' reads the head's logits, which methods.sc (SupConLoss" in message
    config({"conventional": {}, "nsl": {"head": "pml", "loss": "NormalizedSoftmaxLoss"}}, report={"scorer": "msp"})


def test_annex_mixup_leaves_pml_losses_without_mixup():
    cfg = config(
        {"conventional": {}, "sc": {"head": "pml", "loss": "SupConLoss"}}, annex={"sample_size": [20], "mixup": True}
    )
    assert train_spec(cfg, "digits", 3, "conventional", 20, 0)["method_params"]["mixup"] is True
    assert train_spec(cfg, "digits", 3, "sc", 20, 0)["method_params"]["mixup"] is False


def test_a_pml_entry_is_filled_with_its_constructor_defaults():
    cfg = config(
        {
            "tm": {
                "head": "pml",
                "loss": "TripletMarginLoss",
                "margin": 0.1,
                "miner": {"name": "TripletMarginMiner", "type_of_triplets": "semihard"},
            }
        }
    )
    entry = cfg["methods"]["tm"]
    assert entry["miner"] == {"name": "TripletMarginMiner", "margin": 0.2, "type_of_triplets": "semihard"}
    assert {k: entry[k] for k in ("margin", "swap", "smooth_loss", "triplets_per_anchor")} == {
        "margin": 0.1,
        "swap": False,
        "smooth_loss": False,
        "triplets_per_anchor": "all",
    }
    spec = train_spec(cfg, "digits", 3, "tm", "all", 0)
    assert spec["head"] == "pml" and spec["method_params"]["loss"] == "TripletMarginLoss"


def test_validating_variants_and_pml_losses_imports_no_torch(tmp_path):
    """The workflow parses its config in every job: PML entries are checked against the stored
    table of PML's constructors, not by importing PML (some 4 s here)."""
    path = tmp_path / "c.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                **BASE,
                "methods": {
                    "arcface": {"margin": [0.2, 0.5]},
                    "sc": {"head": "pml", "loss": "SupConLoss"},
                    "tm": {"head": "pml", "loss": "TripletMarginLoss", "miner": "MultiSimilarityMiner"},
                },
            }
        )
    )
    code = (
        "import sys\n"
        "from dmlbench.config import load_config\n"
        f"load_config({str(path)!r})\n"
        "heavy = sorted(m for m in ('torch', 'pytorch_metric_learning', 'altair', 'sklearn') if m in sys.modules)\n"
        "print(','.join(heavy) or 'none')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "none", proc.stdout


# --------------------------------------------------------------------------- order and colours


def test_variants_are_ordered_under_their_head():
    cfg = config(
        {
            "supcon": {"head": "pml", "loss": "SupConLoss"},
            "cosface": {},
            "arcface": {"margin": [0.5, 0.2]},
            "conventional": {},
            "big": {"head": "arcface", "scale": 64},
        }
    )
    order = m.method_order(reversed(list(cfg["methods"])), cfg["methods"])
    # study order of the heads; within arcface the config's order (the sweep's values as written)
    assert order == ["conventional", "arcface_margin0.5", "arcface_margin0.2", "big", "cosface", "supcon"]
    # without the config, a label's head is read off the label
    assert m.method_order(["zeta", "cosface", "arcface_margin0.2", "arcface", "conventional"]) == [
        "conventional",
        "arcface",
        "arcface_margin0.2",
        "cosface",
        "zeta",
    ]


def test_variant_colours_are_shades_of_their_heads_colour():
    from dmlbench.report import _style

    cfg = config(
        {"conventional": {}, "arcface": {"margin": [0.2, 0.35, 0.5]}, "sc": {"head": "pml", "loss": "SupConLoss"}}
    )
    _style.use_methods(cfg["methods"])
    try:
        colours = _style.method_colours(cfg["methods"])
    finally:
        _style.use_methods(None)
    assert colours["conventional"] == _style.METHOD_COLOURS["conventional"]
    green = _style.METHOD_COLOURS["arcface"]  # #54a24b = (84, 162, 75)
    # 35 % of the way to black, 5 % and 45 % of the way to white, per channel, rounded:
    # (84, 162, 75) * 0.65 = (54.6, 105.3, 48.75) -> (55, 105, 49)
    assert colours["arcface_margin0.2"] == "#376931"
    # (84, 162, 75) + (171, 93, 180) * 0.05 = (92.55, 166.65, 84) -> (93, 167, 84)
    assert colours["arcface_margin0.35"] == "#5da754"
    # (84, 162, 75) + (171, 93, 180) * 0.45 = (160.95, 203.85, 156) -> (161, 204, 156)
    assert colours["arcface_margin0.5"] == "#a1cc9c"
    assert colours["sc"] not in _style.METHOD_COLOURS.values()
    assert len(set(colours.values())) == 5 and green not in {colours["arcface_margin0.2"], colours["sc"]}
