# Evaluation (one job per trained experiment x seed: both splits, one model load), result
# tables, figures. Metrics: results/metrics/{experiment}/seed{seed}/{val,test}.parquet (tidy;
# docs/outputs.md#metrics)
# and beside them {val,test}_images.parquet, {val,test}_readings.parquet (per-item values).
# Tables: results/tables/{summary,auc_per_label,iou_per_label[,ablation]}.{csv,md} and
# selection.csv (thresholds and sources chosen on validation); their HTML pages for the
# report: workflow/rules/report.smk. Figures: results/figures/ (IoU bars, Figure 4, learning
# curves, ROC curves).
# The runs are those of the training stage (train_targets), known once every rule is read:
# the input and params functions below compute them when the DAG is built.
from gazeloc.report import workflow as report_cfg

TABLES = f"{RESULTS}/tables"
FIGURES = f"{RESULTS}/figures"
TABLE_NAMES = ["summary", "auc_per_label", "iou_per_label", "hit_rate_per_label"] + (
    ["ablation"] if report_cfg.ablation_enabled(config) else []
)
# Inter-radiologist agreement: the REFLACX phases read by several radiologists that exist.
INTERRATER_PHASES = [p for p in (1, 2) if p in HEATMAP_PHASES]
INTERRATER = (
    [f"{TABLES}/interrater.{ext}" for ext in ("csv", "md")] if INTERRATER_PHASES else []
)
TARGETS.extend(INTERRATER)


if config["experiments"]:
    TARGETS.extend(
        [f"{TABLES}/{name}.{ext}" for name in TABLE_NAMES for ext in ("csv", "md")]
        + [f"{TABLES}/comparisons.{ext}" for ext in ("csv", "md")]
        + [f"{FIGURES}/{name}.png" for name in ("iou_per_label", "figure4", "roc")]
        + [f"{FIGURES}/learning_curves.png"]
    )


rule evaluate:
    input:
        model=f"{RESULTS}/models/{{experiment}}/seed{{seed}}/model.pt",
        index=f"{RESULTS}/images/index.parquet",
        manifest=f"{RESULTS}/images/shards.parquet",
        ellipses=f"{RESULTS}/ellipses/phase3.h5",
    output:
        **{
            f"{split}{part}": f"{RESULTS}/metrics/{{experiment}}/seed{{seed}}/{split}{part}.parquet"
            for split in ("val", "test")
            for part in ("", "_images", "_readings")
        },
    log:
        f"{LOGS}/evaluate/{{experiment}}/seed{{seed}}.log",
    benchmark:
        f"{BENCH}/evaluate/{{experiment}}/seed{{seed}}.tsv"
    wildcard_constraints:
        experiment="|".join(exp_cfg.EXPERIMENTS),
    conda:
        "../../envs/gazeloc-cuda.yaml"
    threads: config["evaluation"]["workers"] + 1
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=120,
        # runtime-only (resources are no reason to rerun)
        run_batch_size=config["evaluation"]["batch_size"],
        run_device=config["evaluation"]["device"],
    params:
        version=stage_version("evaluate"),
        thresholds=" ".join(str(t) for t in sorted(config["evaluation"]["thresholds"])),
        sources=" ".join(config["evaluation"]["sources"]),
    shell:
        "python -m gazeloc evaluate --model {input.model:q} --index {input.index:q}"
        " --manifest {input.manifest:q} --ellipses {input.ellipses:q} --split val test"
        " --experiment {wildcards.experiment} --seed {wildcards.seed}"
        " --thresholds {params.thresholds} --sources {params.sources}"
        " --batch-size {resources.run_batch_size} --device {resources.run_device}"
        " --workers $(( {threads} - 1 )) --threads {threads}"
        ' --out-dir "$(dirname {output.val:q})" > {log:q} 2>&1'


# Human benchmark: IoU between radiologists reading the same phase 1-2 image (own job: it
# depends on the ellipses and the bootstrap size only).
rule interrater:
    input:
        ellipses=[f"{ELLIPSES}/phase{p}.h5" for p in INTERRATER_PHASES],
    output:
        csv=f"{TABLES}/interrater.csv",
        md=f"{TABLES}/interrater.md",
    log:
        f"{LOGS}/interrater.log",
    benchmark:
        f"{BENCH}/interrater.tsv"
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        version=stage_version("tables"),
        bootstrap_samples=config["tables"]["bootstrap_samples"],
    shell:
        "python -m gazeloc interrater --ellipses {input.ellipses:q} --csv {output.csv:q}"
        " --md {output.md:q} --bootstrap-samples {params.bootstrap_samples} > {log:q} 2>&1"


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
    localrule: True
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
        per_item=lambda w: report_cfg.item_inputs(config, RESULTS, workflow.rules),
        interrater=INTERRATER[:1],
        models=lambda w: report_cfg.model_inputs(config, RESULTS, workflow.rules),
    output:
        **{
            f"{name}_{ext}": f"{TABLES}/{name}.{ext}"
            for name in TABLE_NAMES
            for ext in ("csv", "md")
        },
    log:
        f"{LOGS}/tables.log",
    benchmark:
        f"{BENCH}/tables.tsv"
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        version=stage_version("tables"),
        ci_method=config["tables"]["ci_method"],
        bootstrap_samples=config["tables"]["bootstrap_samples"],
        source=config["evaluation"]["source"],
        experiments=lambda w: " ".join(
            report_cfg.experiments_of(config, RESULTS, workflow.rules)
        ),
        info=lambda w: report_cfg.experiment_info(
            config, report_cfg.experiments_of(config, RESULTS, workflow.rules)
        ),
        interrater=lambda w, input: (
            f"--interrater {shlex.quote(input.interrater[0])}"
            if input.interrater
            else ""
        ),
    shell:
        "python -m gazeloc tables --no-selection --metrics {input.metrics:q}"
        " --models {input.models:q}"
        ' --out-dir "$(dirname {output.summary_csv:q})"'
        " --experiments {params.experiments} --ci-method {params.ci_method}"
        " --bootstrap --bootstrap-samples {params.bootstrap_samples} {params.interrater}"
        " --source {params.source} --experiment-info {params.info:q} > {log:q} 2>&1"


# Paired differences between configured experiments (tables.comparisons).
rule comparisons:
    input:
        metrics=lambda w: report_cfg.metrics_inputs(config, RESULTS, workflow.rules),
        per_item=lambda w: report_cfg.item_inputs(config, RESULTS, workflow.rules),
    output:
        csv=f"{TABLES}/comparisons.csv",
        md=f"{TABLES}/comparisons.md",
    log:
        f"{LOGS}/comparisons.log",
    benchmark:
        f"{BENCH}/comparisons.tsv"
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        version=stage_version("tables"),
        bootstrap_samples=config["tables"]["bootstrap_samples"],
        pairs=" ".join(f"{a}:{b}" for a, b in config["tables"]["comparisons"]),
        source=config["evaluation"]["source"],
        experiments=lambda w: " ".join(
            report_cfg.experiments_of(config, RESULTS, workflow.rules)
        ),
    shell:
        "python -m gazeloc comparisons --metrics {input.metrics:q}"
        ' --out-dir "$(dirname {output.csv:q})"'
        " --pairs {params.pairs} --experiments {params.experiments} --source {params.source}"
        " --bootstrap-samples {params.bootstrap_samples} > {log:q} 2>&1"


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
    localrule: True
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


# Training loss and validation AUC per epoch of every trained run (one line per seed).
rule learning_curves:
    input:
        logs=lambda w: report_cfg.train_log_inputs(config, RESULTS, workflow.rules),
    output:
        report(
            f"{FIGURES}/learning_curves.png",
            caption="../report/learning_curves.rst",
            category="Results",
            subcategory="Figures",
        ),
    log:
        f"{LOGS}/learning_curves.log",
    benchmark:
        f"{BENCH}/learning_curves.tsv"
    localrule: True
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
        "python -m gazeloc figures --learning-curves {output:q} --train-logs {input.logs:q}"
        " --experiments {params.experiments} > {log:q} 2>&1"


# Per-label ROC curves on the test split from the per-image probabilities.
rule roc:
    input:
        images=lambda w: report_cfg.test_image_inputs(config, RESULTS, workflow.rules),
    output:
        report(
            f"{FIGURES}/roc.png",
            caption="../report/roc.rst",
            category="Results",
            subcategory="Figures",
        ),
    log:
        f"{LOGS}/roc.log",
    benchmark:
        f"{BENCH}/roc.tsv"
    localrule: True
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
        "python -m gazeloc figures --roc {output:q} --images {input.images:q}"
        " --experiments {params.experiments} > {log:q} 2>&1"
