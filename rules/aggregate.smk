rule aggregate:
    input:
        scores=score_files(),
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
        "dmlbench aggregate --scores {input.scores} --benchmarks {params.benchmarks} "
        "--benchmark-root benchmarks --out {params.out} > {log} 2>&1"
