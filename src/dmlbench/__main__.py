"""`python -m dmlbench <stage>`: the CLI run by a given interpreter (what the Snakemake rules call)."""

from dmlbench.cli import run

run()
