rule aggregate:
    input:
        scores=score_files(),
        runs=run_files(),
    output:
        TABLES,
    log:
        "logs/aggregate.log",
    benchmark:
        "benchmarks/aggregate/aggregate.tsv"
    params:
        # Benchmark files are written by Snakemake itself, not declared outputs: read, not required.
        benchmarks=benchmark_files(),
        out=f"{RESULTS}/tables",
    threads: 1
    conda:
        "../envs/environment.yaml"
    shell:
        "{DMLBENCH} aggregate --scores {input.scores} --runs {input.runs} --benchmarks {params.benchmarks} "
        "--benchmark-root benchmarks --out {params.out} > {log} 2>&1"


rule closed_set:
    input:
        [f"{d}/embeddings.npz" for d in closed_set_run_dirs()],
        [f"{d}/run.json" for d in closed_set_run_dirs()],
    output:
        CLOSED_SET_TABLES,
    log:
        "logs/closed_set.log",
    benchmark:
        "benchmarks/closed_set/closed_set.tsv"
    params:
        runs=closed_set_run_dirs(),
        out=f"{RESULTS}/tables",
        points=config["tsne"]["points"],
        perplexity=config["tsne"]["perplexity"],
    threads: 1
    conda:
        "../envs/environment.yaml"
    shell:
        "{DMLBENCH} closed-set --runs {params.runs} --points {params.points} --perplexity {params.perplexity} "
        "--out {params.out} > {log} 2>&1"


rule snapshot:
    output:
        SNAPSHOT,
    log:
        "logs/snapshot.log",
    params:
        # The validated config with defaults; a change of any key rewrites it (params trigger reruns).
        config=config_spec(),
    conda:
        "../envs/environment.yaml"
    shell:
        "{DMLBENCH} snapshot --spec {params.config} --out {output} > {log} 2>&1"
