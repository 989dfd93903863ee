rule train:
    input:
        f"{RESULTS}/data/{{dataset}}.npz",
    output:
        embeddings=f"{RESULTS}/runs/{JOB_PATH}/embeddings.npz",
        train_log=f"{RESULTS}/runs/{JOB_PATH}/train_log.csv",
        run=f"{RESULTS}/runs/{JOB_PATH}/run.json",
    log:
        f"logs/train/{JOB_PATH}.log",
    benchmark:
        f"benchmarks/train/{JOB_PATH}.tsv"
    params:
        spec=job_train_spec,
        out=train_out_folder,
    # One thread: on a GPU the device does the work; on a CPU two small jobs in parallel beat
    # one job on two threads. Raise it with --set-threads train=N for big models on CPUs.
    threads: 1
    resources:
        gpu=1,
    conda:
        "../envs/dmlbench.yaml"
    shell:
        "dmlbench train --spec {params.spec} --data {input} --out {params.out} --threads {threads} > {log} 2>&1"
