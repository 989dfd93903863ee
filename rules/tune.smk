# Tuning (tuning.methods): one tune job per tuned method and main-grid run (dataset, n_anomaly,
# method, n_per_class, seed), all its cases' trials in one process (dmlbench.tune.job). Its trials
# go to a journal beside best.json (not an output: Snakemake deletes a failed job's outputs, and a
# killed tune job resumes from the journal), or to tuning.storage, a database.
rule tune:
    input:
        data_file(),
    output:
        best=tuning_file("best.json"),
        trials=tuning_file("trials.csv"),
    log:
        f"logs/tune/{RUN_PATH}.log",
    benchmark:
        f"benchmarks/tune/{RUN_PATH}.tsv"
    params:
        spec=job_tune_spec,
        out=tune_out_folder,
        storage=tune_storage_arg,
    threads: 1
    resources:
        gpu=1,
    wildcard_constraints:
        method="|".join(re.escape(label) for label in TUNED) or "$^",
        n_per_class="|".join(GRID_SIZES),
    conda:
        "../envs/dmlbench.yaml"
    shell:
        "dmlbench tune --spec {params.spec} --data {input} --out {params.out} {params.storage} "
        "--threads {threads} > {log} 2>&1"


# The tune jobs' files as two tables (every trial; each case's best parameters) for the report.
rule tuning_tables:
    input:
        best=[tuning_file("best.json", job) for job in tune_jobs()],
        trials=[tuning_file("trials.csv", job) for job in tune_jobs()],
    output:
        tables=TUNING_TABLES,
    log:
        "logs/tuning_tables.log",
    params:
        out=tables_out_folder,
    threads: 1
    conda:
        "../envs/dmlbench.yaml"
    shell:
        "dmlbench tuning-tables --best {input.best} --trials {input.trials} --out {params.out} > {log} 2>&1"
