rule prepare:
    input:
        spec=spec_file("prepare", "{dataset}"),
    output:
        data_file(),
    log:
        "logs/prepare/{dataset}.log",
    benchmark:
        "benchmarks/prepare/{dataset}.tsv"
    threads: 1
    conda:
        "../envs/dmlbench.yaml"
    shell:
        "dmlbench prepare --spec {input.spec} --dataset {wildcards.dataset} --out {output} > {log} 2>&1"
