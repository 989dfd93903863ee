from pathlib import Path

import pytest
import yaml

from dmlbench.config import load_config, load_schema, train_spec, validate
from dmlbench.errors import ConfigError
from dmlbench.heads import PARAMS

ROOT = Path(__file__).resolve().parents[3]
MINIMAL = {"datasets": {"digits": {"source": "digits"}}, "conditions": [{"dataset": "digits", "n_anomaly": [3]}]}


def test_defaults_are_filled():
    cfg = validate(MINIMAL)
    assert cfg["cases"] == 10 and cfg["seeds"] == [0] and cfg["n_per_class"] == ["all"]
    assert cfg["methods"] == {"conventional": {"head": "conventional", "mixup": False, "mixup_alpha": 0.4}}
    assert cfg["scoring"]["k"] == [1, 5, 10, 20, 30, "all"]
    assert cfg["datasets"]["digits"]["class_order"] == "canonical"
    assert cfg["training"]["val_fraction"] == 0.1


def test_every_schema_key_has_a_description():
    schema = load_schema()

    def walk(node, path):
        for key, sub in node.get("properties", {}).items():
            if "$ref" not in sub:
                assert "description" in sub, f"{path}.{key} has no description"
                walk(sub, f"{path}.{key}")
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            walk(extra, f"{path}.*")

    walk(schema, "")


def test_method_defaults_in_schema_match_the_heads():
    schema = load_schema()
    for method, params in PARAMS.items():
        props = schema["definitions"]["heads"]["properties"][method]["properties"]
        assert set(props) - {"mixup", "mixup_alpha"} == set(params), method
        for name, default in params.items():
            assert props[name]["default"] == default, (method, name)


@pytest.mark.parametrize("name", ["config.yaml", "demo.yaml", "test.yaml"])
def test_shipped_configs_are_valid(name):
    validate(yaml.safe_load((ROOT / "config" / name).read_text()))


def test_full_study_grid():
    cfg = load_config(ROOT / "config" / "config.yaml")
    grid = {(c["dataset"], n) for c in cfg["conditions"] for n in c["n_anomaly"]}
    assert grid == {("cifar10", 1), ("cifar10", 5), ("cifar10", 8), ("mnist", 7), ("mnist", 5)}
    assert cfg["cases"] == 10
    assert list(cfg["methods"]) == ["conventional", "l2softmax", "arcface", "cosface", "sphereface", "centerloss"]
    assert cfg["scoring"]["distances"] == ["cosine", "euclidean"]
    assert cfg["annex"]["sample_size"] == [50, 100, 200, 500] and cfg["tsne"]["enabled"]
    # per-dataset recipes (issue 6): the ResNet18 budget that keeps the grid near 30 min on an H100
    from dmlbench.config import train_spec

    assert train_spec(cfg, "cifar10", 1, "arcface", "all", 0)["training"]["epochs"] == 12
    assert train_spec(cfg, "mnist", 5, "arcface", "all", 0)["training"]["crop_padding"] == 2


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (
            lambda c: c["datasets"]["digits"].update(source="imagenet"),
            "datasets.digits.source.*allowed values: cifar10, mnist, fashion_mnist, digits, folder",
        ),
        (
            lambda c: c.update(methods={"triplet": {}}),
            "methods.triplet.head is missing: 'triplet' is not a head.*known heads: conventional, l2softmax, arcface, cosface, sphereface, "
            "centerloss, pml",
        ),
        (lambda c: c.update(cases="ten"), "config key 'cases'.*allowed: integer >= 1 or 'all'"),
        (lambda c: c.update(seeds=[-1]), "config key 'seeds.0'"),
        (lambda c: c.update(n_per_class=["many"]), "n_per_class.0.*allowed: integer >= 1 or 'all'"),
        (
            lambda c: c.update(methods={"arcface": {"s": 64}}),
            r"methods.arcface.s: head 'arcface' takes no parameter 's' \(its parameters: scale, margin, mixup, mixup_alpha\)",
        ),
        (lambda c: c.update(threads=8), "allowed keys here: annex, cases, conditions"),
        (lambda c: c.pop("conditions"), "'conditions' is a required property"),
    ],
)
def test_schema_errors_name_the_key_and_allowed_values(mutate, expected):
    cfg = yaml.safe_load(yaml.safe_dump(MINIMAL))
    mutate(cfg)
    with pytest.raises(ConfigError, match=expected):
        validate(cfg)


def test_semantic_errors():
    cfg = yaml.safe_load(yaml.safe_dump(MINIMAL))
    cfg["conditions"][0]["dataset"] = "cifar"
    with pytest.raises(ConfigError, match="'cifar' is not defined under `datasets` \\(defined: digits\\)"):
        validate(cfg)
    cfg = yaml.safe_load(yaml.safe_dump(MINIMAL))
    cfg["conditions"][0]["n_anomaly"] = [10]
    with pytest.raises(ConfigError, match="n_anomaly 10 leaves no normal class.*1..9"):
        validate(cfg)
    cfg = yaml.safe_load(yaml.safe_dump(MINIMAL))
    cfg["cases"] = 11
    with pytest.raises(ConfigError, match="cases 11 exceeds the 10 classes"):
        validate(cfg)


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    evil = tmp_path / "evil.yaml"
    evil.write_text("!!python/object/apply:os.system ['touch pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(evil)
    assert not Path("pwned").exists()


def test_train_spec_takes_only_what_training_needs():
    cfg = validate({**MINIMAL, "methods": {"arcface": {"margin": 0.3}}})
    spec = train_spec(cfg, "digits", 3, "arcface", "all", 2)
    assert spec["method_params"]["margin"] == 0.3 and spec["method_params"]["scale"] == 30
    assert spec["n_per_class"] == "all" and spec["seed"] == 2 and spec["flip"] is False
    assert "scoring" not in spec and "report" not in spec
    assert train_spec(cfg, "digits", 3, "arcface", "50", 0)["n_per_class"] == 50
    with pytest.raises(ConfigError, match="method 'cosface' is not in the config"):
        train_spec(cfg, "digits", 3, "cosface", "all", 0)


# --------------------------------------------------------------------------- recipes, annex, report


def _digits(**extra):
    return {
        "datasets": {"d": {"source": "digits"}},
        "conditions": [{"dataset": "d", "n_anomaly": [1, 5]}],
        "cases": 5,
        "seeds": [3, 4],
        **extra,
    }


def test_recipe_layers_training_then_dataset_then_annex():
    cfg = validate(_digits(training={"epochs": 4, "lr": 0.01}, annex={"sample_size": [30], "training": {"epochs": 40}}))
    cfg["datasets"]["d"]["training"] = {"lr": 0.02, "batch_size": 32}
    cfg = validate(cfg)
    main = train_spec(cfg, "d", 1, "conventional", "all", 3)["training"]
    assert (main["epochs"], main["lr"], main["batch_size"]) == (4, 0.02, 32)
    annex = train_spec(cfg, "d", 1, "conventional", "30", 3)["training"]
    assert (annex["epochs"], annex["lr"], annex["batch_size"]) == (40, 0.02, 32)
    assert annex["weight_decay"] == cfg["training"]["weight_decay"]  # an override resets nothing else


def test_annex_mixup_overrides_every_method_only_in_annex_runs():
    cfg = validate(
        _digits(methods={"conventional": {}, "arcface": {"mixup": True}}, annex={"sample_size": [30], "mixup": False})
    )
    assert train_spec(cfg, "d", 1, "arcface", "all", 3)["method_params"]["mixup"] is True
    assert train_spec(cfg, "d", 1, "arcface", 30, 3)["method_params"]["mixup"] is False
    cfg = validate(_digits(methods={"conventional": {}, "arcface": {"mixup": True}}, annex={"sample_size": [30]}))
    assert train_spec(cfg, "d", 1, "arcface", 30, 3)["method_params"]["mixup"] is True  # null keeps the method's


def test_annex_conditions_default_to_every_condition():
    from dmlbench.config import annex_conditions

    assert annex_conditions(validate(_digits())) == []
    assert annex_conditions(validate(_digits(annex={"sample_size": [30]}))) == [("d", 1), ("d", 5)]
    chosen = validate(_digits(annex={"sample_size": [30], "conditions": [{"dataset": "d", "n_anomaly": [5]}]}))
    assert annex_conditions(chosen) == [("d", 5)]


def test_closed_set_spec_has_one_case():
    cfg = validate(_digits())
    assert train_spec(cfg, "d", 0, "conventional", "all", 3)["cases"] == 1
    assert train_spec(cfg, "d", 1, "conventional", "all", 3)["cases"] == 5


def test_worst_miss_selection_defaults_and_checks():
    from dmlbench.config import worst_miss_selection

    assert worst_miss_selection(validate(_digits())) == {
        "dataset": "d",
        "n_anomaly": 1,
        "case": 0,
        "seed": 3,
        "count": 5,
    }
    picked = validate(_digits(report={"worst_misses": {"n_anomaly": 5, "case": 2, "seed": 4, "count": 3}}))
    assert worst_miss_selection(picked) == {"dataset": "d", "n_anomaly": 5, "case": 2, "seed": 4, "count": 3}


@pytest.mark.parametrize(
    "extra, expected",
    [
        (
            {"annex": {"sample_size": [30], "conditions": [{"dataset": "d", "n_anomaly": [2]}]}},
            r"annex.conditions has dataset 'd' with n_anomaly 2, which is not one of the `conditions`",
        ),
        ({"annex": {"sample_size": [2]}}, r"reference set of the annex runs with annex.sample_size 2"),
        ({"annex": {"training": {"epochs": 0}}}, r"'annex.training.epochs': 0 is less than the minimum of 1"),
        ({"report": {"worst_misses": {"case": 5}}}, r"report.worst_misses.case 5 is not run: cases are 0..4"),
        ({"report": {"worst_misses": {"seed": 9}}}, r"report.worst_misses.seed 9 is not one of `seeds`"),
        ({"report": {"worst_misses": {"n_anomaly": 3}}}, r"n_anomaly 3, which is not one of the `conditions`"),
        ({"tsne": {"points": 5}}, r"tsne.points"),
    ],
)
def test_annex_tsne_and_report_errors(extra, expected):
    with pytest.raises(ConfigError, match=expected):
        validate(_digits(**extra))


def test_dataset_training_override_is_checked_against_training():
    cfg = _digits()
    cfg["datasets"]["d"]["training"] = {"epochz": 3}
    with pytest.raises(ConfigError, match=r"unknown key datasets.d.training.epochz.*allowed keys here: batch_size"):
        validate(cfg)


# --------------------------------------------------------------------------- cases: all


def test_cases_all_runs_every_rotation_of_a_built_in_dataset():
    """`cases: all` on digits (10 classes): 10 cases per condition, the same spec (so the same
    runs) as `cases: 10`; the closed-set model keeps its one case."""
    every = validate(_digits(cases="all"))
    ten = validate(_digits(cases=10))
    assert every["cases"] == "all"
    assert train_spec(every, "d", 5, "conventional", "all", 3) == train_spec(ten, "d", 5, "conventional", "all", 3)
    assert train_spec(every, "d", 1, "conventional", "all", 3)["cases"] == 10
    assert train_spec(every, "d", 0, "conventional", "all", 3)["cases"] == 1
    # worst_misses.case is checked against the 10 rotations, not the word
    assert validate(_digits(cases="all", report={"worst_misses": {"case": 9}}))["report"]["worst_misses"]["case"] == 9
    with pytest.raises(ConfigError, match=r"report.worst_misses.case 10 is not run: cases are 0..9"):
        validate(_digits(cases="all", report={"worst_misses": {"case": 10}}))


def _folder(tmp_path, classes, test_classes=None):
    for split, names in (("train", classes), ("test", classes if test_classes is None else test_classes)):
        for name in names:
            (tmp_path / split / name).mkdir(parents=True, exist_ok=True)
    return {
        "datasets": {"f": {"source": "folder", "root": str(tmp_path)}},
        "conditions": [{"dataset": "f", "n_anomaly": [2]}],
        "cases": "all",
    }


def test_cases_all_counts_a_folder_datasets_class_folders(tmp_path):
    cfg = validate(_folder(tmp_path, ["cat", "dog", "emu", "fox", "owl", "yak", "rat"]))
    assert train_spec(cfg, "f", 2, "conventional", "all", 0)["cases"] == 7
    (tmp_path / "train" / ".ipynb_checkpoints").mkdir()  # hidden folders are no classes
    assert train_spec(cfg, "f", 2, "conventional", "all", 0)["cases"] == 7


def test_cases_all_refuses_a_folder_it_cannot_count(tmp_path):
    missing = _folder(tmp_path, ["a", "b", "c"])
    missing["datasets"]["f"]["root"] = str(tmp_path / "nowhere")
    with pytest.raises(
        ConfigError,
        match=r"`cases: all` needs the number of classes of dataset 'f'.*nowhere/train does not exist.*give `cases` as a number",
    ):
        validate(missing)
    with pytest.raises(ConfigError, match=r"dataset 'f'.*must have the same class folders.*missing in test: c"):
        validate(_folder(tmp_path / "uneven", ["a", "b", "c"], ["a", "b"]))


def test_cases_all_checks_n_anomaly_against_the_folders_classes(tmp_path):
    cfg = _folder(tmp_path, ["a", "b"])
    with pytest.raises(ConfigError, match=r"n_anomaly 2 leaves no normal class: dataset 'f' has 2 classes"):
        validate(cfg)


def test_a_numeric_cases_lists_no_folder(tmp_path):
    """With `cases` a number the config check reads no data: a folder not there yet passes (the
    reader refuses it when the job runs)."""
    cfg = _folder(tmp_path, ["a", "b", "c"])
    cfg["cases"] = 2
    cfg["datasets"]["f"]["root"] = str(tmp_path / "later")
    assert train_spec(validate(cfg), "f", 2, "conventional", "all", 0)["cases"] == 2


def test_annex_mixup_as_a_list_gives_mixup_to_the_named_methods_only():
    """The study's annex A.2: mixup on Conventional and L2-softmax only (by label or by head)."""
    methods = {"conventional": {}, "l2softmax": {}, "arcface": {"mixup": True}, "arcface_wide": {"head": "arcface"}}
    cfg = validate(_digits(methods=methods, annex={"sample_size": [30], "mixup": ["conventional", "l2softmax"]}))
    annex = {m: train_spec(cfg, "d", 1, m, 30, 3)["method_params"]["mixup"] for m in methods}
    assert annex == {"conventional": True, "l2softmax": True, "arcface": False, "arcface_wide": False}
    # the main runs keep each method's own
    assert train_spec(cfg, "d", 1, "arcface", "all", 3)["method_params"]["mixup"] is True
    assert train_spec(cfg, "d", 1, "conventional", "all", 3)["method_params"]["mixup"] is False
    # a head names every method with that head
    cfg = validate(_digits(methods=methods, annex={"sample_size": [30], "mixup": ["arcface"]}))
    annex = {m: train_spec(cfg, "d", 1, m, 30, 3)["method_params"]["mixup"] for m in methods}
    assert annex == {"conventional": False, "l2softmax": False, "arcface": True, "arcface_wide": True}
    from dmlbench.report.setup import methods_table

    table = methods_table(cfg).set_index("method")
    assert table["mixup_annex"].tolist() == ["no", "no", "yes (alpha 0.4)", "yes (alpha 0.4)"]


def test_annex_mixup_list_names_only_methods_that_can_mix():
    with pytest.raises(ConfigError, match=r"annex\.mixup\.1 'cosface' is neither a method label nor the head of one"):
        validate(
            _digits(methods={"conventional": {}}, annex={"sample_size": [30], "mixup": ["conventional", "cosface"]})
        )
    pml = {"conventional": {}, "sc": {"head": "pml", "loss": "SupConLoss"}}
    with pytest.raises(ConfigError, match=r"annex\.mixup\.0 'sc' is a pytorch-metric-learning loss"):
        validate(_digits(methods=pml, annex={"sample_size": [30], "mixup": ["sc"]}))
    with pytest.raises(ConfigError, match=r"annex"):
        validate(_digits(annex={"sample_size": [30], "mixup": "conventional"}))  # neither a flag nor a list
