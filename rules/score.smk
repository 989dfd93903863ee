rule score:
    input:
        embeddings=method_paths(f"{RESULTS}/runs/{RUN_PATH}/embeddings.npz"),
        run=method_paths(f"{RESULTS}/runs/{RUN_PATH}/run.json"),
    output:
        scores=method_paths(f"{RESULTS}/scores/{RUN_PATH}.parquet"),
        # Written last: the job's phases (start-up, data, scoring, writing).
        job=f"{RESULTS}/jobs/score/{GROUP_PATH}.json",
    log:
        f"logs/score/{GROUP_PATH}.log",
    benchmark:
        f"benchmarks/score/{GROUP_PATH}.tsv"
    params:
        spec=job_score_spec,
        runs=run_folders,
    threads: 2
    wildcard_constraints:
        n_per_class="|".join(GRID_SIZES),
    conda:
        "../envs/dmlbench.yaml"
    shell:
        "dmlbench score --spec {params.spec} --run {params.runs} --out {output.scores} --job {output.job} "
        "--threads {threads} > {log} 2>&1"


# Annex A.2: every size and method of a (dataset, n_anomaly, seed) in one process (common.smk).
if ANNEX_SIZES:

    use rule score as score_annex with:
        input:
            embeddings=annex_paths(f"{RESULTS}/runs/{RUN_PATH}/embeddings.npz"),
            run=annex_paths(f"{RESULTS}/runs/{RUN_PATH}/run.json"),
        output:
            scores=annex_paths(f"{RESULTS}/scores/{RUN_PATH}.parquet"),
            job=f"{RESULTS}/jobs/score/{ANNEX_GROUP_PATH}.json",
        log:
            f"logs/score/{ANNEX_GROUP_PATH}.log",
        benchmark:
            f"benchmarks/score/{ANNEX_GROUP_PATH}.tsv"
