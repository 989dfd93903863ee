"""The numbers the README states about the shipped configs are the configs' numbers.

Each test reads one statement of README.md (whitespace and line breaks normalised) and checks
every number in it against config/config.yaml or config/demo.yaml. A statement rephrased so
that its pattern no longer matches fails here, naming it: rephrase the pattern with it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dmlbench.config import load_config, n_cases, train_spec, tsne_datasets

ROOT = Path(__file__).resolve().parents[2]
README = " ".join((ROOT / "README.md").read_text().split())
FULL = load_config(ROOT / "config" / "config.yaml")
DEMO = load_config(ROOT / "config" / "demo.yaml")

WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10}
#: README names of the dataset sources.
SOURCE_NAMES = {"CIFAR-10": "cifar10", "MNIST": "mnist", "Fashion-MNIST": "fashion_mnist", "digits": "digits"}
BACKBONES = {"ResNet18": "resnet18", "small CNN": "small_cnn"}


def number(text: str) -> int:
    """'6' or 'six' -> 6."""
    return int(text) if text.isdigit() else WORDS[text.lower()]


def numbers(text: str) -> list[int]:
    """'1, 5 and 8' -> [1, 5, 8]."""
    return [int(n) for n in re.split(r",\s*|\s+and\s+", text.strip())]


def statement(pattern: str) -> re.Match:
    match = re.search(pattern, README)
    assert match, f"README.md no longer states this in the form the test reads: {pattern!r}"
    return match


def conditions_by_source(config: dict) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for cond in config["conditions"]:
        out.setdefault(config["datasets"][cond["dataset"]]["source"], []).extend(cond["n_anomaly"])
    return out


def test_the_full_study_sentence():
    m = statement(
        r"runs `config/config\.yaml`: (?P<conditions>.+?), (?P<cases>\w+) cases each, "
        r"(?P<methods>\w+) methods, (?P<seeds>\w+) seeds?, (?P<distances>[\w ]+?) distances?, "
        r"(?P<backbone>ResNet18|small CNN)"
    )
    stated = {}
    for part in re.split(r"\s+and\s+(?=[A-Z])", m["conditions"]):
        name, counts = re.fullmatch(r"(\S+) with (.+?)(?: anomaly classes)?", part).groups()
        stated[SOURCE_NAMES[name]] = numbers(counts)
    assert stated == conditions_by_source(FULL)
    assert number(m["cases"]) == FULL["cases"]
    assert number(m["methods"]) == len(FULL["methods"])
    assert number(m["seeds"]) == len(FULL["seeds"])
    assert [d.lower() for d in re.split(r"\s+and\s+|,\s*", m["distances"])] == FULL["scoring"]["distances"]
    assert BACKBONES[m["backbone"]] == FULL["model"]["backbone"]


def test_the_full_study_recipes():
    m = statement(r"\(`config/config\.yaml`: (?P<epochs>(?:[\w-]+ \d+ epochs, )+)AdamW, weight decay (?P<wd>[\d.]+)\)")
    for name, epochs in re.findall(r"([\w-]+) (\d+) epochs", m["epochs"]):
        dataset = next(d for d, e in FULL["datasets"].items() if e["source"] == SOURCE_NAMES[name])
        n_anomaly = next(c["n_anomaly"][0] for c in FULL["conditions"] if c["dataset"] == dataset)
        recipe = train_spec(FULL, dataset, n_anomaly, "conventional", "all", FULL["seeds"][0])["training"]
        assert recipe["epochs"] == int(epochs), name
        assert recipe["optimizer"] == "adam" and recipe["weight_decay"] == float(m["wd"]), name


def test_the_annex_values_of_the_full_study():
    ks = statement(r"\*\*Annex A\.1\*\* — AUROC against k \((?P<ks>[\w, ]+)\)")["ks"]
    assert [k if k == "all" else int(k) for k in re.split(r",\s*", ks)] == FULL["scoring"]["k"]
    sizes = statement(r"`annex\.sample_size`, e\.g\. `\[(?P<sizes>[\d, ]+)\]`")["sizes"]
    assert numbers(sizes) == FULL["annex"]["sample_size"]


def test_the_demo_in_the_quick_start():
    statement(r"`make demo` uses scikit-learn's handwritten digits .{0,80}? and a small CNN on the CPU")
    assert {e["source"] for e in DEMO["datasets"].values()} == {"digits"}
    assert DEMO["model"]["backbone"] == "small_cnn"


def demo_row() -> re.Match:
    return statement(
        r"`make demo` pipeline \((?P<source>\w+), (?P<conditions>\d+) conditions × (?P<cases>\d+) cases"
        r"(?P<all> \(`cases: all`\))? × (?P<seeds>\d+) seeds? × (?P<methods>\d+) methods, (?P<backbone>small CNN|ResNet18), (?P<epochs>\d+) epochs; "
        r"annex A\.2 at (?P<sizes>[\d, and]+?) images per class; (?P<closed>\d+) closed-set models; "
        r"(?P<jobs>\d+) jobs"
    )


def test_the_demo_row_of_the_performance_table():
    m = demo_row()
    assert {e["source"] for e in DEMO["datasets"].values()} == {SOURCE_NAMES[m["source"]]}
    assert int(m["conditions"]) == sum(len(c["n_anomaly"]) for c in DEMO["conditions"])
    # `cases: all` resolves to the dataset's classes (10 digits): the row says both
    assert int(m["cases"]) == n_cases(DEMO, next(iter(DEMO["datasets"])))
    assert bool(m["all"]) == (DEMO["cases"] == "all")
    assert int(m["seeds"]) == len(DEMO["seeds"])
    assert int(m["methods"]) == len(DEMO["methods"])
    assert BACKBONES[m["backbone"]] == DEMO["model"]["backbone"]
    assert int(m["epochs"]) == DEMO["training"]["epochs"]
    assert numbers(m["sizes"]) == DEMO["annex"]["sample_size"]
    assert int(m["closed"]) == len(tsne_datasets(DEMO)) * len(DEMO["methods"])


@pytest.mark.slow
def test_the_demo_job_count_is_the_dry_runs(tmp_path):
    """The jobs of `snakemake -n` on config/demo.yaml, the report job aside (it exists only
    where Quarto is installed; the row was measured without it)."""
    from tests.workflow.conftest import snakemake

    proc = snakemake(tmp_path, "-n", "--configfile", str(ROOT / "config" / "demo.yaml"))
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", proc.stdout + proc.stderr, re.M))
    assert "total" in counts, proc.stdout[-2000:]
    jobs = int(counts["total"]) - int(counts.get("report", 0))
    assert jobs == int(demo_row()["jobs"])
