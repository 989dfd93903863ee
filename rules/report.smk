rule figures:
    input:
        tables=TABLES,
        closed_set=CLOSED_SET_TABLES,
        tuning=TUNING_TABLES,
        config=SNAPSHOT,
        # The dataset of the worst-misses images.
        data=WORST_MISS_DATA,
    output:
        # each figure (its SVG) and table with its caption in Snakemake's report (snakemake --report)
        figures=reported_figures(),
        tables=reported_tables(),
    log:
        "logs/figures.log",
    params:
        tables=tables_in_folder,
        figures=figures_out_folder,
        data=data_folder,
        scorer=config["report"]["scorer"],
    threads: 1
    conda:
        "../envs/dmlbench.yaml"
    shell:
        "dmlbench figures --tables {params.tables} --out {params.figures} --scorer {params.scorer} "
        "--config {input.config} --data {params.data} > {log} 2>&1"


# Quarto renders against one results folder: its tables, figures, config snapshot and the
# worst-misses dataset, each declared here.
rule report:
    input:
        figures=FIGURES,
        table_csvs=TABLE_CSVS,
        tables=TABLES,
        closed_set=CLOSED_SET_TABLES,
        tuning=TUNING_TABLES,
        config=SNAPSHOT,
        data=WORST_MISS_DATA,
    output:
        html=REPORT["html"],
        pdf=REPORT["pdf"],
    log:
        report="logs/report.log",
        quarto="logs/render.log",
    params:
        qmd=REPORT_QMD,
        results=results_folder,
        out=report_out_folder,
        scorer=config["report"]["scorer"],
    # Rendered where Snakemake runs, the machine whose Quarto made it a target (HAVE_QUARTO):
    # cluster and cloud images need no Quarto.
    localrule: True
    conda:
        "../envs/dmlbench.yaml"
    shell:
        "dmlbench --results {params.results} render --qmd {params.qmd} --scorer {params.scorer} "
        "--out {params.out} --log {log.quarto} > {log.report} 2>&1"
