"""The workflow's parse imports dmlbench.config, dmlbench.layout and the report's declarations in
every job: each must import (and validate every shipped config, and plan its figures) with the
heavy packages blocked - a finder on sys.meta_path that refuses them, in a fresh interpreter."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
CONFIGS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "config").glob("*.yaml"))

BLOCKER = """
import sys

BLOCKED = {blocked!r}


class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{{name}} is blocked: this import must stay torch-free")
        return None


sys.meta_path.insert(0, Refuse())
"""


def run_blocked(blocked: tuple[str, ...], code: str) -> subprocess.CompletedProcess:
    script = BLOCKER.format(blocked=blocked) + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_the_blocker_blocks():
    proc = run_blocked(("torch",), "import torch")
    assert proc.returncode != 0 and "torch is blocked" in proc.stderr


@pytest.mark.parametrize("configfile", CONFIGS)
def test_config_is_torch_free(configfile):
    """dmlbench.config (and dmlbench.layout) with torch, fastai and altair - and everything else heavy - blocked."""
    proc = run_blocked(
        (
            "torch",
            "torchvision",
            "fastai",
            "altair",
            "vl_convert",
            "scipy",
            "sklearn",
            "pandas",
            "pytorch_metric_learning",
        ),
        f"""
        from dmlbench.config import load_config, score_spec, train_spec, validate
        from dmlbench import layout

        config = load_config({configfile!r})
        cond = config["conditions"][0]
        method = next(iter(config["methods"]))
        spec = train_spec(config, cond["dataset"], cond["n_anomaly"][0], method, config["n_per_class"][0], config["seeds"][0])
        print(layout.run_dir(spec), sorted(score_spec(config)))
        """,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_report_declarations_are_light():
    """The report's section declarations (what the workflow plans the figures rule from) import no
    plotting, table or statistics package."""
    proc = run_blocked(
        ("torch", "torchvision", "fastai", "altair", "vl_convert", "scipy", "sklearn", "pandas", "PIL"),
        """
        from dmlbench.config import load_config
        from dmlbench.report import planned_figures, planned_tables

        config = load_config("config/config.yaml")
        print(len(planned_figures(config)), len(planned_tables(config)))
        """,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
