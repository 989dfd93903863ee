"""Write envs/dmlbench.yaml, the conda env of the rules under `snakemake --sdm conda`, from
envs/requirements.txt: the same pins, listed in the file itself (Snakemake builds an env from
the env file alone and hashes only its content, so a `-r requirements.txt` would not be found).
dmlbench itself is not installed there: the rules run it from the workflow's src/.

    python envs/conda_env.py        (make envs/dmlbench.yaml)
"""

from pathlib import Path

HERE = Path(__file__).resolve().parent
HEADER = """\
# The conda env of every rule under `snakemake --sdm conda`, written by envs/conda_env.py from
# envs/requirements.txt (edit that, then `make envs/dmlbench.yaml`). Snakemake builds it from this
# file alone, so the pins are listed here. dmlbench is not installed: the rules run it from the
# workflow's src/ with this env's Python. (For a conda env to work in: envs/environment.yaml.)
"""


def render(requirements: str) -> str:
    pins = [line.strip() for line in requirements.splitlines() if line.strip() and not line.startswith("#")]
    lines = [HEADER.rstrip("\n"), "channels:", "  - conda-forge", "dependencies:", "  - python=3.11", "  - pip",
             "  - pip:"]
    return "\n".join(lines + [f"      - {pin}" for pin in pins]) + "\n"


if __name__ == "__main__":
    (HERE / "dmlbench.yaml").write_text(render((HERE / "requirements.txt").read_text()))
