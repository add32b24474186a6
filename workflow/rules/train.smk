# Training: one job per enabled experiment x seed (a GPU job on a cluster), resumable.
# Outputs: results/models/{experiment}/seed{seed}/model.pt, model_card.md and train_log.csv; the resume
# checkpoint under .../resume/ is not declared, so Snakemake never deletes it.
# Targets are computed when the DAG is built, after every rule file is read: an experiment
# whose heatmaps/ellipses file no rule makes yet is left out (with a message).
from gazeloc.train import settings as train_cfg

TARGETS.append(
    lambda wildcards: train_cfg.train_targets(
        config,
        RESULTS,
        lambda path: Path(path).exists()
        or any(r.is_producer(path) for r in workflow.rules),
    )
)


rule train:
    input:
        unpack(lambda w: train_cfg.train_inputs(config, RESULTS, w.experiment)),
    output:
        model=f"{RESULTS}/models/{{experiment}}/seed{{seed}}/model.pt",
        log_csv=f"{RESULTS}/models/{{experiment}}/seed{{seed}}/train_log.csv",
        card=f"{RESULTS}/models/{{experiment}}/seed{{seed}}/model_card.md",
    log:
        f"{LOGS}/train/{{experiment}}/seed{{seed}}.log",
    benchmark:
        f"{BENCH}/train/{{experiment}}/seed{{seed}}.tsv"
    wildcard_constraints:
        experiment="|".join(train_cfg.EXPERIMENTS),
    conda:
        "../../envs/gazeloc-cuda.yaml"
    threads: config["training"]["workers"] + 1
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=1440,
    params:
        version=stage_version("train"),
        settings=lambda w: train_cfg.rule_params(config, w.experiment)["settings"],
        runtime_options=lambda w: train_cfg.rule_params(config, w.experiment)["runtime"],
        annotations=lambda w, input: " ".join(
            f"--{kind} {shlex.quote(input[kind])}"
            for kind in ("heatmaps", "ellipses")
            if kind in input.keys()
        ),
        reflacx=reflacx_dir(),
        mimic=mimic_dir(),
    shell:
        "python -m gazeloc train --settings {params.settings:q}"
        " --runtime {params.runtime_options:q} --seed {wildcards.seed}"
        " --index {input.index:q} --manifest {input.manifest:q} {params.annotations}"
        ' --out-dir "$(dirname {output.model:q})" --threads {threads}'
        " --data-roots reflacx={params.reflacx:q} mimic={params.mimic:q}"
        " --workers $(( {threads} - 1 )) > {log:q} 2>&1"
