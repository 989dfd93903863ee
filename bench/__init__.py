"""dmlbench's benchmarks, one module per question; each prints a table and writes its result to
bench/results/<name>.json. Run them from the repository's root as modules, with the venv's Python
(which has dmlbench installed), e.g. ``.venv/bin/python -m bench.score_speed``; what they share -
the paths, the result writer, how Snakemake is started - is in :mod:`bench.common`.
"""
