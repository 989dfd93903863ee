rule train:
    input:
        data=data_file(),
        spec=spec_file("train", GROUP_PATH),
        # With tuning: the tuned methods' best parameters per case, for their <label>_tuned runs.
        tuned=tuned_best_files,
    output:
        embeddings=grid_method_paths(run_file("embeddings.npz")),
        train_log=grid_method_paths(run_file("train_log.csv")),
        run=grid_method_paths(run_file("run.json")),
        # Written last: the job's phases (start-up, data, build, compile, training, ...).
        job=job_record("train"),
    log:
        f"logs/train/{GROUP_PATH}.log",
    benchmark:
        benchmark_file("train")
    params:
        out=train_out_folders,
        tuned=tuned_arg,
    # One thread: on a GPU the device does the work; on a CPU two small jobs in parallel beat
    # one job on two threads. Raise it with --set-threads train=N for big models on CPUs.
    threads: 1
    resources:
        gpu=1,
    wildcard_constraints:
        n_per_class="|".join(GRID_SIZES),
        n_anomaly=GRID_N_ANOMALY,
    conda:
        "../envs/dmlbench.yaml"
    shell:
        "dmlbench train --spec {input.spec} --data {input.data} --out {params.out} --job {output.job} "
        "--threads {threads} {params.tuned} > {log} 2>&1"


# With tuning, the closed-set models (n_anomaly 0: nothing tuned) have a rule of their own.
if TUNED:

    use rule train as train_closed_set with:
        input:
            data=data_file(),
            spec=spec_file("train", GROUP_PATH),
            tuned=[],
        output:
            embeddings=method_paths(run_file("embeddings.npz")),
            train_log=method_paths(run_file("train_log.csv")),
            run=method_paths(run_file("run.json")),
            job=job_record("train"),
        wildcard_constraints:
            n_per_class="all",
            n_anomaly="0",


# Annex A.2: every size and method of a (dataset, n_anomaly, seed) in one process (common.smk).
if ANNEX_SIZES:

    use rule train as train_annex with:
        input:
            data=data_file(),
            spec=spec_file("train", ANNEX_GROUP_PATH),
            tuned=[],
        output:
            embeddings=annex_paths(run_file("embeddings.npz")),
            train_log=annex_paths(run_file("train_log.csv")),
            run=annex_paths(run_file("run.json")),
            job=job_record("train", ANNEX_GROUP_PATH),
        log:
            f"logs/train/{ANNEX_GROUP_PATH}.log",
        benchmark:
            benchmark_file("train", ANNEX_GROUP_PATH)
