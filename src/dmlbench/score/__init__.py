"""The score stage (rule ``score``): every test image of a run scored against the case's reference
set - the mean of its k smallest distances (``knn``: chunked matrix products, cosine and
Euclidean), and the scorers beside them (``scorers``: Mahalanobis, MSP, max logit, energy, LOF,
OpenOOD's KNN). ``run`` scores one run folder into a table, ``job`` all runs of a train job in one
process, each into results/scores/....parquet. The scorers' names and defaults are declared in
dmlbench.config.scorers.
"""
