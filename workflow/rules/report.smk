# The report (`snakemake --report results/report.html`): the study's description
# (workflow/report/workflow.rst, the Snakefile's global `report:`), every figure (marked in its
# rule) and every result table this configuration makes, as an HTML page (the report shows
# HTML inline; Markdown and CSV files would only be downloads). Included last: the tables are
# those among the targets of the other rule files.
REPORT_TABLE_SOURCES = report_cfg.report_table_sources(
    t for t in TARGETS if isinstance(t, str)
)
REPORT_TABLES_DIR = f"{RESULTS}/report/tables"
TARGETS.extend(f"{REPORT_TABLES_DIR}/{name}.html" for name in REPORT_TABLE_SOURCES)


rule report_tables:
    input:
        **REPORT_TABLE_SOURCES,
    output:
        **{
            name: report(
                f"{REPORT_TABLES_DIR}/{name}.html",
                caption=f"../report/{name}.rst",
                category="Results" if name != "realism" else "Synthetic data",
                subcategory="Tables",
            )
            for name in REPORT_TABLE_SOURCES
        },
    log:
        f"{LOGS}/report_tables.log",
    benchmark:
        f"{BENCH}/report_tables.tsv"
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        version=stage_version("tables"),
        out_dir=lambda w, output: str(Path(output[0]).parent),
    shell:
        "python -m gazeloc report-tables --markdown {input:q}"
        " --out-dir {params.out_dir:q} > {log:q} 2>&1"
