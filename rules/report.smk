rule figures:
    input:
        TABLES,
        CLOSED_SET_TABLES,
        SNAPSHOT,
        WORST_MISS_DATA,
    output:
        FIGURES,
        TABLE_CSVS,
    log:
        "logs/figures.log",
    params:
        tables=f"{RESULTS}/tables",
        figures=f"{RESULTS}/figures",
        data=f"{RESULTS}/data",
        config=SNAPSHOT,
        scorer=config["report"]["scorer"],
    threads: 1
    conda:
        "../envs/environment.yaml"
    shell:
        "{DMLBENCH} figures --tables {params.tables} --out {params.figures} --scorer {params.scorer} "
        "--config {params.config} --data {params.data} > {log} 2>&1"


rule report:
    input:
        FIGURES,
        TABLE_CSVS,
        TABLES,
        CLOSED_SET_TABLES,
        SNAPSHOT,
    output:
        REPORT,
    log:
        "logs/report.log",
    params:
        qmd=REPORT_QMD,
        results=RESULTS,
        scorer=config["report"]["scorer"],
    conda:
        "../envs/environment.yaml"
    shell:
        "{DMLBENCH} --results {params.results} render --qmd {params.qmd} --scorer {params.scorer} > {log} 2>&1"
