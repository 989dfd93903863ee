"""The software environments as the README documents them: envs/environment.yaml for a conda env
to work in, and envs/dmlbench.yaml, the rules' env under `snakemake --sdm conda` (run for real
where conda is on PATH, skipped, saying why, elsewhere)."""

import importlib.util
import re
import shutil
import subprocess

import numpy as np
import pytest
import yaml

from tests.workflow.conftest import BIN, ROOT, clean_env

RULES_ENV = ROOT / "envs" / "dmlbench.yaml"


def pins(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if "==" in line and not line.lstrip().startswith("#")]


def test_the_rules_conda_env_lists_the_pinned_requirements():
    """Snakemake builds an env from its file alone (a `-r requirements.txt` would not be there):
    envs/dmlbench.yaml lists every pin of envs/requirements.txt, as envs/conda_env.py writes it."""
    requirements = (ROOT / "envs" / "requirements.txt").read_text()
    spec = importlib.util.spec_from_file_location("conda_env", ROOT / "envs" / "conda_env.py")
    conda_env = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conda_env)
    assert RULES_ENV.read_text() == conda_env.render(requirements), "run `make envs/dmlbench.yaml`"
    env = yaml.safe_load(RULES_ENV.read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip == pins(requirements) and "python=3.11" in env["dependencies"]
    assert not [p for p in pip if p.startswith("-")]  # no file references Snakemake would not ship


def test_every_rule_runs_in_the_rules_conda_env():
    """Every rule that runs a command has the rules' conda env; the spec rules (rules/specs.smk)
    write their file in Snakemake's own process (`run:`), where no conda env applies."""
    rules = "".join(p.read_text() for p in sorted((ROOT / "rules").glob("*.smk")))
    blocks = re.split(r"^(?=rule \w+:)", rules, flags=re.M)
    commands = [b for b in blocks if b.startswith("rule ") and "\n    shell:\n" in b]
    in_process = [b for b in blocks if b.startswith("rule ") and "\n    run:\n" in b]
    assert len(commands) >= 8 and len(in_process) == 4
    assert all('    conda:\n        "../envs/dmlbench.yaml"\n' in b for b in commands)
    assert not any("conda:" in b for b in in_process)


def test_the_conda_env_for_users_is_the_one_the_readme_makes():
    env = yaml.safe_load((ROOT / "envs" / "environment.yaml").read_text())
    assert "python=3.11" in env["dependencies"]  # the Python of envs/requirements.txt and the Dockerfile
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    # conda writes the pip part beside the env file: -r resolves to envs/requirements.txt
    assert "-r requirements.txt" in pip and (ROOT / "envs" / "requirements.txt").is_file()
    readme = (ROOT / "README.md").read_text()
    for step in (
        "conda env create -f envs/environment.yaml",
        f"conda activate {env['name']} && pip install --no-deps -e .",
    ):
        assert step in readme


def test_jobs_run_in_the_rules_conda_env(tmp_path):
    """`snakemake --sdm conda` with no dmlbench on PATH: Snakemake builds envs/dmlbench.yaml and
    the prepare job runs dmlbench from src/ with the env's Python (downloads the env: slow)."""
    conda = shutil.which("conda") or shutil.which("mamba")
    if conda is None:
        pytest.skip("neither conda nor mamba is on PATH: the --sdm conda run is not tested here")
    cmd = [
        str(BIN / "snakemake"),
        "-s",
        str(ROOT / "Snakefile"),
        "--configfile",
        str(ROOT / "config" / "test.yaml"),
        "--cores",
        "1",
        "--sdm",
        "conda",
        "--conda-frontend",
        "conda" if conda.endswith("conda") else "mamba",
        "results/data/digits.npz",
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with np.load(tmp_path / "results/data/digits.npz") as npz:
        assert len(npz["y_train"]) + len(npz["y_test"]) == 1797
