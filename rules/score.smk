rule score:
    input:
        embeddings=f"{RESULTS}/runs/{JOB_PATH}/embeddings.npz",
        run=f"{RESULTS}/runs/{JOB_PATH}/run.json",
    output:
        f"{RESULTS}/scores/{JOB_PATH}.parquet",
    log:
        f"logs/score/{JOB_PATH}.log",
    benchmark:
        f"benchmarks/score/{JOB_PATH}.tsv"
    params:
        spec=job_score_spec,
        run=run_folder,
    threads: 2
    conda:
        "../envs/dmlbench.yaml"
    shell:
        "dmlbench score --spec {params.spec} --run {params.run} --out {output} --threads {threads} > {log} 2>&1"
