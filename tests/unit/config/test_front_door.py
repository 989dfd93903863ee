"""Issue 28: the front door - a mistake in a config that would be double-counted, dropped or
misread stops before any job, with one line naming the key (and the line of the file)."""

import pytest

from dmlbench.config import load_config, read_config_file
from dmlbench.config.yaml_loader import load_yaml
from dmlbench.errors import ConfigError

BASE = """\
datasets:
  digits: {source: digits}
conditions:
  - dataset: digits
    n_anomaly: [3]
"""


def _refused(tmp_path, text: str) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    message = str(exc.value)
    assert "\n" not in message.strip(), message
    return message


@pytest.mark.parametrize(
    "extra, key, line, first",
    [
        ("methods:\n  arcface: {}\n  arcface: {margin: 0.3}\n", "methods.arcface", 8, 7),
        ("training:\n  lr: 0.01\n  epochs: 2\n  lr: 0.02\n", "training.lr", 9, 7),
        ("datasets:\n  mnist: {source: mnist}\n", "datasets", 6, 1),
        (
            "annex:\n  sample_size: [20]\n  conditions:\n    - {dataset: digits, n_anomaly: [3], dataset: x}\n",
            "annex.conditions[0].dataset",
            9,
            9,
        ),
    ],
)
def test_a_duplicate_key_at_any_depth_is_refused_with_its_line(tmp_path, extra, key, line, first):
    message = _refused(tmp_path, BASE + extra)
    assert f"line {line}: duplicate key {key} (first given on line {first})" in message
    assert str(tmp_path / "c.yaml") in message


def test_equal_keys_in_different_mappings_are_no_duplicates():
    assert load_yaml("a: {x: 1}\nb: {x: 2}\nc: [{x: 1}, {x: 2}]\n") == {
        "a": {"x": 1},
        "b": {"x": 2},
        "c": [{"x": 1}, {"x": 2}],
    }


@pytest.mark.parametrize("word", ["on", "yes", "off", "No", "~", "null"])
def test_a_yaml_boolean_or_null_as_a_label_is_refused(tmp_path, word):
    message = _refused(tmp_path, BASE + f"methods:\n  {word}: {{head: arcface}}\n")
    assert f"line 7: key '{word}' under methods is read by YAML as" in message
    assert f"quote it ('{word}':)" in message
    assert "methods.True" not in message
    # quoted, it is the label the user meant
    path = tmp_path / "q.yaml"
    path.write_text(BASE + "methods:\n  'on': {head: arcface}\n")
    assert list(load_config(path)["methods"]) == ["on"]


def test_a_folder_or_a_binary_file_as_config_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"is a folder; give the path of a YAML file"):
        read_config_file(tmp_path)
    binary = tmp_path / "model.pt"
    binary.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ConfigError, match=r"model\.pt is not a text file"):
        read_config_file(binary)
    nul = tmp_path / "nul.yaml"
    nul.write_bytes(b"a: 1\n\0\0")
    with pytest.raises(ConfigError, match=r"nul\.yaml is not a text file"):
        read_config_file(nul)


@pytest.mark.parametrize(
    "text, message",
    [
        (
            BASE.replace("[3]", "[3, 3]"),
            "conditions[0].n_anomaly[1] repeats dataset 'digits' with n_anomaly 3, already given at "
            "conditions[0].n_anomaly[0]",
        ),
        (
            BASE + "  - dataset: digits\n    n_anomaly: [1, 3]\n",
            "conditions[1].n_anomaly[1] repeats dataset 'digits' with n_anomaly 3, already given at "
            "conditions[0].n_anomaly[0]",
        ),
        (
            BASE + "annex:\n  sample_size: [20]\n  conditions:\n"
            "    - {dataset: digits, n_anomaly: [3]}\n    - {dataset: digits, n_anomaly: [3]}\n",
            "annex.conditions[1].n_anomaly[0] repeats dataset 'digits' with n_anomaly 3, already given at "
            "annex.conditions[0].n_anomaly[0]",
        ),
    ],
)
def test_a_repeated_condition_is_refused(tmp_path, text, message):
    got = _refused(tmp_path, text)
    assert message in got and "counted twice" in got


def test_one_dataset_in_two_conditions_with_other_n_anomaly_is_fine(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(BASE + "  - dataset: digits\n    n_anomaly: [1]\n")
    cfg = load_config(path)
    assert [c["n_anomaly"] for c in cfg["conditions"]] == [[3], [1]]


def _folder_dataset(root, classes=3, images=4, test_classes=None):
    """A folder dataset of empty files: the check reads the listing, never an image."""
    for split, names in (("train", classes), ("test", test_classes or classes)):
        for c in range(names):
            (root / split / f"c{c}").mkdir(parents=True)
            for i in range(images):
                (root / split / f"c{c}" / f"{i}.png").write_bytes(b"")
    return root


def _folder_config(tmp_path, root, n_anomaly=(1,), cases=2, n_per_class=("all",), annex=None):
    text = (
        f"datasets:\n  mine: {{source: folder, root: '{root}'}}\n"
        f"conditions:\n  - {{dataset: mine, n_anomaly: {list(n_anomaly)}}}\n"
        f"cases: {cases}\nn_per_class: {list(n_per_class)}\n"
        "scoring: {k: [1]}\n"
    )
    if annex:
        text += f"annex: {{sample_size: {annex}}}\n"
    path = tmp_path / "folder.yaml"
    path.write_text(text)
    return path


def _data_refusal(path) -> str:
    load_config(path)  # without the listing (a job, the report): accepted
    with pytest.raises(ConfigError) as exc:
        load_config(path, check_data=True)
    assert "\n" not in str(exc.value)
    return str(exc.value)


def test_a_folder_dataset_that_fits_its_conditions_passes(tmp_path):
    root = _folder_dataset(tmp_path / "data", classes=3, images=4)
    load_config(_folder_config(tmp_path, root, n_anomaly=[2], cases=3, n_per_class=[4]), check_data=True)


def test_a_missing_root_is_refused_at_validate_time(tmp_path):
    message = _data_refusal(_folder_config(tmp_path, tmp_path / "nowhere"))
    assert f"datasets.mine.root {tmp_path / 'nowhere'} does not exist" in message


def test_a_missing_test_folder_is_refused(tmp_path):
    root = _folder_dataset(tmp_path / "data")
    for p in sorted((root / "test").rglob("*"), reverse=True):
        p.rmdir() if p.is_dir() else p.unlink()
    (root / "test").rmdir()
    assert f"datasets.mine: {root / 'test'} does not exist" in _data_refusal(_folder_config(tmp_path, root))


def test_train_and_test_with_other_classes_are_refused(tmp_path):
    root = _folder_dataset(tmp_path / "data", classes=3, test_classes=2)
    assert "missing in test: c2" in _data_refusal(_folder_config(tmp_path, root))


def test_too_few_class_folders_for_n_anomaly_are_refused(tmp_path):
    root = _folder_dataset(tmp_path / "data", classes=3)
    message = _data_refusal(_folder_config(tmp_path, root, n_anomaly=[5], cases=3))
    assert "conditions[0].n_anomaly 5 needs at least 6 classes" in message
    assert "has 3 class folders" in message and "use n_anomaly <= 2" in message


def test_too_few_class_folders_for_the_cases_are_refused(tmp_path):
    """The issue's case: 3 class folders and cases 10 passed validate and the dry run."""
    root = _folder_dataset(tmp_path / "data", classes=3)
    message = _data_refusal(_folder_config(tmp_path, root, n_anomaly=[1], cases=10))
    assert "cases 10 needs 10 classes for the rotation" in message and "use cases <= 3" in message


@pytest.mark.parametrize(
    "sizes, key", [({"n_per_class": [2, 5]}, "n_per_class 5"), ({"annex": [3, 6]}, "annex.sample_size 6")]
)
def test_too_few_images_per_class_for_n_per_class_are_refused(tmp_path, sizes, key):
    root = _folder_dataset(tmp_path / "data", classes=3, images=4)
    (root / "train" / "c1" / "3.png").unlink()  # the fewest: 3 images
    message = _data_refusal(_folder_config(tmp_path, root, **sizes))
    assert f"{key} asks for" in message and f"{root / 'train' / 'c1'} of dataset 'mine' holds 3" in message


@pytest.mark.parametrize(
    "extra, says",
    [
        # YAML 1.1 (PyYAML) reads an exponent without a dot as a string
        ("training:\n  lr: 1e-3\n", "config key 'training.lr': '1e-3' is not of type 'number'"),
        ("training:\n  lr: 1e-3\n", "'1e-3' is a string here: YAML 1.1 reads a number with an exponent"),
        ("training:\n  lr: 1e-3\n", "so write 1.0e-3"),
        ("training:\n  lr: '0.01'\n", "'0.01' is a string here (quoted in the YAML?)"),
        (
            "methods:\n  arcface: {margin: 5e-1}\n",
            "methods.arcface.margin must be a number, got '5e-1'; '5e-1' is a string",
        ),
        ("methods:\n  arcface: {margin: [0.3, 5e-1]}\n", "methods.arcface.margin[1] must be a number, got '5e-1'"),
        ("methods:\n  arcface: {mixup_alpha: 1e-1}\n", "so write 1.0e-1"),
        # a list element by its index
        (
            "methods:\n  arcface: {mixup: true, mixup_alpha: [0.2, -1]}\n",
            "config key 'methods.arcface.mixup_alpha[1]': -1 is less than or equal to the minimum of 0",
        ),
        # did you mean, for every mapping of known keys
        ("trainig:\n  lr: 0.01\n", "'trainig' -> did you mean 'training'?"),
        ("training:\n  epoch: 3\n", "'epoch' -> did you mean 'epochs'?"),
        ("scoring:\n  distance: [cosine]\n", "'distance' -> did you mean 'distances'?"),
        ("model:\n  backbon: resnet18\n", "'backbon' -> did you mean 'backbone'?"),
        ("methods:\n  arcface: {margn: 0.3}\n", "takes no parameter 'margn'; did you mean 'margin'?"),
    ],
)
def test_better_messages(tmp_path, extra, says):
    message = str(pytest.raises(ConfigError, load_config, _write(tmp_path, BASE + extra)).value)
    assert says in message, message


def test_a_misspelt_dataset_name_gets_a_did_you_mean(tmp_path):
    message = _refused(tmp_path, BASE.replace("- dataset: digits", "- dataset: digit"))
    assert "conditions.0.dataset 'digit' is not defined" in message and "did you mean 'digits'?" in message


def _write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path
