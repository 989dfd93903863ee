rule score:
    input:
        embeddings=grid_method_paths(run_file("embeddings.npz")),
        run=grid_method_paths(run_file("run.json")),
        spec=spec_file("score"),
    output:
        scores=grid_method_paths(score_file()),
        # Written last: the job's phases (start-up, data, scoring, writing).
        job=job_record("score"),
    log:
        f"logs/score/{GROUP_PATH}.log",
    benchmark:
        benchmark_file("score")
    params:
        runs=run_folders,
    threads: 2
    wildcard_constraints:
        n_per_class="|".join(GRID_SIZES),
    conda:
        "../envs/dmlbench.yaml"
    shell:
        "dmlbench score --spec {input.spec} --run {params.runs} --out {output.scores} --job {output.job} "
        "--threads {threads} > {log} 2>&1"


# Annex A.2: every size and method of a (dataset, n_anomaly, seed) in one process (common.smk).
if ANNEX_SIZES:

    use rule score as score_annex with:
        input:
            embeddings=annex_paths(run_file("embeddings.npz")),
            run=annex_paths(run_file("run.json")),
            spec=spec_file("score"),
        output:
            scores=annex_paths(score_file()),
            job=job_record("score", ANNEX_GROUP_PATH),
        log:
            f"logs/score/{ANNEX_GROUP_PATH}.log",
        benchmark:
            benchmark_file("score", ANNEX_GROUP_PATH)
