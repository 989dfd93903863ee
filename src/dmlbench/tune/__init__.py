"""The tune stage (rule ``tune``): a tune job tunes one method of one (dataset, n_anomaly,
n_per_class, seed), every case's trials in one process, with Optuna (dmlbench.config.tuning
declares the search space and the budget).

- ``objective``: a case's objective on its normal training classes alone (leave-one-normal-class-out
  AUROC, or a closed-set MAP@R with fewer than three normal classes);
- ``job``: the studies, their storage (a journal file, or an RDB URL), resuming, best.json and trials.csv.

The tune stage imports the train stage's trainer (dmlbench.train.run.RunTrainer) and batches: a
fold trains exactly as a run does, so the parameters found are the parameters of the runs they are
used for (tests/unit/test_stage_isolation.py lists these imports with the reason). Importing this
package imports nothing.
"""
