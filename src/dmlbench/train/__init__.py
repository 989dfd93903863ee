"""The train stage (rule ``train``): a train job trains every method (each one a run) of one
(dataset, n_anomaly, n_per_class, seed) in one process.

- ``job``: the train job - the data on the device once, the runs one after another, each run's
  files written on a background thread, the run cache, the job record;
- ``run``: a run and its trainer (RunTrainer: the model, its reset per case, the fit, the
  embeddings), and what it writes;
- ``batches``: a job's images on the device and a case's batches cut and augmented there;
- ``learner``: the fastai glue (the head as the loss, the optimiser, fine-tuning), with
  ``fastai_parts`` (fastai's averages, recorder and MixUp kept on the device);
- ``compiled``: torch.compile's life cycle, with ``compile_cache`` (its on-disk caches);
- ``device``: device, precision, versions; ``models``: backbones and embedding layers;
  ``sampling``: class-balanced batches for pair losses; ``seeded_memo``: builds memoised per
  seed; ``run_cache``: finished runs kept across jobs.

Importing this package imports nothing: ``dmlbench train`` points the compile caches first
(``compile_cache``, standard library only), then imports the job (torch, fastai).
"""
