"""The aggregate stage (rules ``aggregate`` and ``closed_set``): the score tables of every run, the
run.json files and the jobs' records turned into the tidy tables under results/tables/
(``tables``: metrics, class distances, summary, ranking, worst misses, runtime, runs; columns in
docs/tables.md), and the closed-set models' t-SNE maps and accuracy (``closed_set``). The
statistics are the ground floor's (dmlbench.stats, dmlbench.metrics), which the report uses too.
"""
