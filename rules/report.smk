rule figures:
    input:
        TABLES,
    output:
        FIGURES,
    log:
        "logs/figures.log",
    params:
        tables=f"{RESULTS}/tables",
        figures=f"{RESULTS}/figures",
        scorer=config["report"]["scorer"],
    threads: 1
    conda:
        "../envs/environment.yaml"
    shell:
        "dmlbench figures --tables {params.tables} --out {params.figures} --scorer {params.scorer} > {log} 2>&1"


rule report:
    input:
        FIGURES,
        TABLES,
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
        "dmlbench --results {params.results} render --qmd {params.qmd} --scorer {params.scorer} > {log} 2>&1"
