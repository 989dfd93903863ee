"""The software environments as the README documents them: the conda env file and the env the
rules name for `--sdm conda` (run for real where conda and that env exist, skipped otherwise)."""

import json
import re
import shutil
import subprocess

import numpy as np
import pytest
import yaml

from tests.workflow.conftest import BIN, ROOT, clean_env


def conda_env_name() -> str:
    """The env every rule names (`conda: CONDA_ENV` in rules/common.smk)."""
    match = re.search(r'^CONDA_ENV = "([^"]+)"$', (ROOT / "rules" / "common.smk").read_text(), re.M)
    assert match, "rules/common.smk defines no CONDA_ENV"
    return match.group(1)


def test_every_rule_names_the_conda_env_the_readme_makes():
    name = conda_env_name()
    env = yaml.safe_load((ROOT / "envs" / "environment.yaml").read_text())
    assert env["name"] == name
    assert "python=3.11" in env["dependencies"]  # the Python of envs/requirements.txt and the Dockerfile
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    # conda writes the pip part beside the env file: -r resolves to envs/requirements.txt
    assert "-r requirements.txt" in pip and (ROOT / "envs" / "requirements.txt").is_file()
    readme = (ROOT / "README.md").read_text()
    for step in ("conda env create -f envs/environment.yaml", f"conda activate {name} && pip install --no-deps -e ."):
        assert step in readme
    rules = "".join(p.read_text() for p in (ROOT / "rules").glob("*.smk"))
    n_rules = len(re.findall(r"^rule \w+:", rules, re.M))
    assert rules.count("    conda:\n        CONDA_ENV\n") == n_rules  # and no env file Snakemake would build


def test_jobs_run_in_the_named_conda_env(tmp_path):
    """`snakemake --sdm conda` with no dmlbench on PATH: the prepare job finds dmlbench in the env."""
    conda = shutil.which("conda")
    if conda is None:
        pytest.skip("conda is not on PATH: the --sdm conda run is not tested here")
    envs = json.loads(subprocess.run([conda, "env", "list", "--json"], capture_output=True, text=True,
                                     check=True).stdout)["envs"]
    name = conda_env_name()
    if not any(p.rstrip("/").endswith(f"/{name}") for p in envs):
        pytest.skip(f"no conda env named {name}: make it as the README says to run this test")
    cmd = [str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "--configfile", str(ROOT / "config" / "test.yaml"),
           "--cores", "1", "--sdm", "conda", "results/data/digits.npz"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with np.load(tmp_path / "results/data/digits.npz") as npz:
        assert len(npz["y_train"]) + len(npz["y_test"]) == 1797
