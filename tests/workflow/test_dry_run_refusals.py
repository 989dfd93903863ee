"""Out-of-range head, scorer and dataset values stop `snakemake -n` before any job: exit status
!= 0 and one message naming the key, no traceback (the workflow validates its config with
dmlbench.config in rules/common.smk, which asks each component's declared ranges)."""

from __future__ import annotations

import copy
import re

import pytest
import yaml

from tests.workflow.conftest import ROOT, snakemake

pytestmark = pytest.mark.slow

BASE = yaml.safe_load((ROOT / "config" / "test.yaml").read_text())


def _set(cfg: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    node = cfg
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


CASES = {
    # id: (dotted key, value, what the message must say besides the key)
    "arcface margin above pi": ("methods.arcface.margin", 4.0, "must be < 3.14159 (pi), got 4.0"),
    "centerloss alpha 0": ("methods.centerloss.alpha", 0.0, "must be > 0, got 0.0"),
    "sphereface margin 0": ("methods.sphereface.margin", 0, "must be >= 1, got 0"),
    "digits test_fraction too small": ("datasets.digits.test_fraction", 0.004, "fewer than their 10 classes"),
    "digits image_size below the small CNN's": ("datasets.digits.image_size", 3, "minimum of 4"),
    "option the source does not read": ("datasets.digits.channels", 3, "is not read by source 'digits'"),
    "report scorer not computed": ("report.scorer", "cosine_k7", "is not computed by this config"),
    "shrinkage above 1": ("scoring.mahalanobis_shrinkage", 1.5, "number in [0, 1]"),
    # method variants: a label names its head; a list sweeps; head pml takes PML's losses
    "variant of an unknown head": (
        "methods.arcface_m03",
        {"head": "arcfce", "margin": 0.3},
        "methods.arcface_m03.head: unknown head 'arcfce'; known: conventional",
    ),
    "unknown pytorch-metric-learning loss": (
        "methods.sc",
        {"head": "pml", "loss": "SupConLos"},
        "unknown pytorch-metric-learning loss 'SupConLos'; did you mean",
    ),
    "swept value out of range": (
        "methods.arcface.margin",
        [0.3, 4.0],
        "methods.arcface.margin[1] must be < 3.14159 (pi), got 4.0",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_out_of_range_value_stops_the_dry_run(tmp_path, case):
    key, value, says = CASES[case]
    cfg = copy.deepcopy(BASE)
    _set(cfg, key, value)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    work = tmp_path / "work"
    work.mkdir()
    proc = snakemake(work, "-n", "--configfile", str(config), check=False, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    # one message: the config error (Snakemake's WorkflowError around it), naming the key and why
    assert out.count("WorkflowError") == 1 and out.count("the workflow config") == 1, out[-3000:]
    message = re.search(r"^WorkflowError.*?\n(.*?)^  File ", out, re.M | re.S)
    assert message, out[-3000:]
    assert key in message[1] and says in message[1], message[1]
    assert not re.search(r"^(rule|localrule) \w+:", out, re.M), "a job was planned"
    assert not (work / "results").exists() and not (work / "logs").exists()


def test_a_duplicate_key_in_the_configfile_stops_the_dry_run(tmp_path):
    """Issue 28: Snakemake's own YAML loader keeps the last of two `arcface:` entries without a
    word; rules/common.smk reads each config file again with dmlbench's loader, which refuses it."""
    text = (ROOT / "config" / "test.yaml").read_text()
    assert "  arcface: {margin: [0.3, 0.5]}\n" in text
    config = tmp_path / "config.yaml"
    config.write_text(text.replace("  arcface: {margin: [0.3, 0.5]}\n", "  arcface: {}\n  arcface: {margin: 0.3}\n"))
    work = tmp_path / "work"
    work.mkdir()
    proc = snakemake(work, "-n", "--configfile", str(config), check=False, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in out, out[-3000:]
    assert re.search(r"line \d+: duplicate key methods\.arcface \(first given on line \d+\)", out), out[-3000:]
    assert not re.search(r"^(rule|localrule) \w+:", out, re.M), "a job was planned"


def test_a_folder_dataset_without_its_root_stops_the_dry_run(tmp_path):
    """Issue 28: a folder dataset is checked against its directory listing before any job (it
    passed the dry run and failed in prepare)."""
    cfg = copy.deepcopy(BASE)
    cfg["datasets"] = {"mine": {"source": "folder", "root": str(tmp_path / "nowhere")}}
    cfg["conditions"] = [{"dataset": "mine", "n_anomaly": [1]}]
    cfg["report"] = {"worst_misses": {"dataset": "mine", "n_anomaly": 1}}
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    work = tmp_path / "work"
    work.mkdir()
    proc = snakemake(work, "-n", "--configfile", str(config), check=False, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in out, out[-3000:]
    assert f"datasets.mine.root {tmp_path / 'nowhere'} does not exist" in out, out[-3000:]
    assert not re.search(r"^(rule|localrule) \w+:", out, re.M), "a job was planned"
