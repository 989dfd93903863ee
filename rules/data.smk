rule prepare:
    output:
        data_file(),
    log:
        "logs/prepare/{dataset}.log",
    benchmark:
        "benchmarks/prepare/{dataset}.tsv"
    params:
        spec=prepare_spec,
    threads: 1
    conda:
        "../envs/dmlbench.yaml"
    shell:
        "dmlbench prepare --spec {params.spec} --dataset {wildcards.dataset} --out {output} > {log} 2>&1"
