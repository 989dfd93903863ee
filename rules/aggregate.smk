rule aggregate:
    input:
        scores=score_files(),
        runs=run_files(),
        # Written by Snakemake for each train and score job (their `benchmark:`), read here for runtime.parquet,
        # with the jobs' own records of their phases.
        benchmarks=benchmark_files(),
        jobs=job_record_files(),
    output:
        tables=TABLES,
    log:
        "logs/aggregate.log",
    benchmark:
        "benchmarks/aggregate/aggregate.tsv"
    params:
        benchmark_root=benchmark_root,
        job_root=job_record_root,
        out=tables_out_folder,
    threads: 1
    conda:
        "../envs/dmlbench.yaml"
    shell:
        "dmlbench aggregate --scores {input.scores} --runs {input.runs} --benchmarks {input.benchmarks} "
        "--benchmark-root {params.benchmark_root} --jobs {input.jobs} --job-root {params.job_root} "
        "--out {params.out} > {log} 2>&1"


rule closed_set:
    input:
        embeddings=[f"{d}/embeddings.npz" for d in closed_set_run_dirs()],
        runs=[f"{d}/run.json" for d in closed_set_run_dirs()],
    output:
        tables=CLOSED_SET_TABLES,
    log:
        "logs/closed_set.log",
    benchmark:
        "benchmarks/closed_set/closed_set.tsv"
    params:
        runs=closed_set_folders,
        out=tables_out_folder,
        points=config["tsne"]["points"],
        perplexity=config["tsne"]["perplexity"],
    threads: 1
    # t-SNE of a few thousand points: seconds, where Snakemake runs (no cluster queue).
    localrule: True
    conda:
        "../envs/dmlbench.yaml"
    shell:
        "dmlbench closed-set --runs {params.runs} --points {params.points} --perplexity {params.perplexity} "
        "--out {params.out} > {log} 2>&1"


rule snapshot:
    input:
        # The validated config with defaults (rules/specs.smk); a change of any key rewrites it.
        spec=spec_file("config"),
    output:
        SNAPSHOT,
    log:
        "logs/snapshot.log",
    localrule: True
    conda:
        "../envs/dmlbench.yaml"
    shell:
        "dmlbench snapshot --spec {input.spec} --out {output} > {log} 2>&1"
