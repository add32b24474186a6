# Evaluation (one job per trained experiment x seed x split), result tables, figures.
# Metrics: results/metrics/{experiment}/seed{seed}/{val,test}.parquet (tidy, design.md).
# Tables: results/tables/{summary,auc_per_label,iou_per_label[,ablation]}.{csv,md} and
# selection.csv (thresholds and sources chosen on validation). Figures: results/figures/.
# The runs are those of the training stage (train_targets), known once every rule is read:
# the input and params functions below compute them when the DAG is built.
from gazeloc.report import workflow as report_cfg

TABLES = f"{RESULTS}/tables"
FIGURES = f"{RESULTS}/figures"
TABLE_NAMES = ["summary", "auc_per_label", "iou_per_label"] + (
    ["ablation"] if report_cfg.ablation_enabled(config) else []
)


if config["experiments"]:
    TARGETS.extend(
        [f"{TABLES}/{name}.{ext}" for name in TABLE_NAMES for ext in ("csv", "md")]
        + [f"{FIGURES}/iou_per_label.png", f"{FIGURES}/figure4.png"]
    )


rule evaluate:
    input:
        model=f"{RESULTS}/models/{{experiment}}/seed{{seed}}/model.pt",
        index=f"{RESULTS}/images/index.parquet",
        manifest=f"{RESULTS}/images/shards.parquet",
        ellipses=f"{RESULTS}/ellipses/phase3.h5",
    output:
        f"{RESULTS}/metrics/{{experiment}}/seed{{seed}}/{{split}}.parquet",
    log:
        f"{LOGS}/evaluate/{{experiment}}/seed{{seed}}_{{split}}.log",
    benchmark:
        f"{BENCH}/evaluate/{{experiment}}/seed{{seed}}_{{split}}.tsv"
    wildcard_constraints:
        experiment="|".join(train_cfg.EXPERIMENTS),
        split="val|test",
    conda:
        "../../envs/gazeloc-cuda.yaml"
    threads: config["evaluation"]["workers"] + 1
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=120,
    params:
        version=stage_version("evaluate"),
        thresholds=" ".join(str(t) for t in sorted(config["evaluation"]["thresholds"])),
        sources=" ".join(config["evaluation"]["sources"]),
        batch_size=config["evaluation"]["batch_size"],
        device=config["evaluation"]["device"],
    shell:
        "python -m gazeloc evaluate --model {input.model:q} --index {input.index:q}"
        " --manifest {input.manifest:q} --ellipses {input.ellipses:q} --split {wildcards.split}"
        " --experiment {wildcards.experiment} --seed {wildcards.seed}"
        " --thresholds {params.thresholds} --sources {params.sources}"
        " --batch-size {params.batch_size} --device {params.device}"
        " --workers $(( {threads} - 1 )) --threads {threads} --out {output:q} > {log:q} 2>&1"


localrules:
    selection,
    tables,
    iou_figure,


# Thresholds and heatmap sources chosen on validation (its own job: figure 4 depends on it,
# and it does not depend on tables.ci_method).
rule selection:
    input:
        metrics=lambda w: report_cfg.metrics_inputs(config, RESULTS, workflow.rules),
    output:
        f"{TABLES}/selection.csv",
    log:
        f"{LOGS}/selection.log",
    benchmark:
        f"{BENCH}/selection.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        version=stage_version("tables"),
        source=config["evaluation"]["source"],
        experiments=lambda w: " ".join(
            report_cfg.experiments_of(config, RESULTS, workflow.rules)
        ),
    shell:
        "python -m gazeloc tables --selection-only --metrics {input.metrics:q}"
        ' --out-dir "$(dirname {output:q})" --experiments {params.experiments}'
        " --source {params.source} > {log:q} 2>&1"


rule tables:
    input:
        metrics=lambda w: report_cfg.metrics_inputs(config, RESULTS, workflow.rules),
    output:
        **{
            f"{name}_{ext}": (
                report(
                    f"{TABLES}/{name}.{ext}",
                    caption=f"../report/{name}.rst",
                    category="Results",
                    subcategory="Tables",
                )
                if ext == "md"
                else f"{TABLES}/{name}.{ext}"
            )
            for name in TABLE_NAMES
            for ext in ("csv", "md")
        },
    log:
        f"{LOGS}/tables.log",
    benchmark:
        f"{BENCH}/tables.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        version=stage_version("tables"),
        ci_method=config["tables"]["ci_method"],
        source=config["evaluation"]["source"],
        experiments=lambda w: " ".join(
            report_cfg.experiments_of(config, RESULTS, workflow.rules)
        ),
        info=lambda w: report_cfg.experiment_info(
            config, report_cfg.experiments_of(config, RESULTS, workflow.rules)
        ),
    shell:
        "python -m gazeloc tables --no-selection --metrics {input.metrics:q}"
        ' --out-dir "$(dirname {output.summary_csv:q})"'
        " --experiments {params.experiments} --ci-method {params.ci_method}"
        " --source {params.source} --experiment-info {params.info:q} > {log:q} 2>&1"


rule iou_figure:
    input:
        table=f"{TABLES}/iou_per_label.csv",
    output:
        report(
            f"{FIGURES}/iou_per_label.png",
            caption="../report/iou_per_label_figure.rst",
            category="Results",
            subcategory="Figures",
        ),
    log:
        f"{LOGS}/iou_figure.log",
    benchmark:
        f"{BENCH}/iou_figure.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        version=stage_version("tables"),
        experiments=lambda w: " ".join(
            report_cfg.experiments_of(config, RESULTS, workflow.rules)
        ),
    shell:
        "python -m gazeloc figures --iou-bars {output:q} --iou-table {input.table:q}"
        " --experiments {params.experiments} > {log:q} 2>&1"


rule figure4:
    input:
        selection=f"{TABLES}/selection.csv",
        models=lambda w: list(
            report_cfg.figure4_models(config, RESULTS, workflow.rules).values()
        ),
        manifest=f"{RESULTS}/images/shards.parquet",
        ellipses=f"{RESULTS}/ellipses/phase3.h5",
    output:
        report(
            f"{FIGURES}/figure4.png",
            caption="../report/figure4.rst",
            category="Results",
            subcategory="Figures",
        ),
    log:
        f"{LOGS}/figure4.log",
    benchmark:
        f"{BENCH}/figure4.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        version=stage_version("tables"),
        models=lambda w: " ".join(
            shlex.quote(f"{e}={p}")
            for e, p in report_cfg.figure4_models(
                config, RESULTS, workflow.rules
            ).items()
        ),
        n_images=config["tables"]["figure4_images"],
        seed=config["tables"]["figure4_seed"],
    shell:
        "python -m gazeloc figures --figure4 {output:q} --selection {input.selection:q}"
        " --models {params.models} --manifest {input.manifest:q} --ellipses {input.ellipses:q}"
        " --n-images {params.n_images} --seed {params.seed} --device cpu > {log:q} 2>&1"
