# Training: one job per enabled experiment x seed (a GPU job on a cluster), resumable.
# Outputs: results/models/{experiment}/seed{seed}/model.pt, model_card.md and
# train_log.csv; the resume checkpoint under .../resume/ is not declared, so Snakemake never
# deletes it (a killed job resumes from it); the job removes it after success unless
# training.keep_checkpoints.
# Pretrained weights are an input: the pretrained_weights rule checks the file (found in the
# torch cache or at model.pretrained) and records its sha256; a missing file stops the run
# before any job (gazeloc.weights). Runtime-only keys (device, compile, checkpoint_minutes,
# keep_checkpoints) reach the job as a resource, which is no reason to rerun.
# Targets are computed when the DAG is built, after every rule file is read: an experiment
# whose heatmaps/ellipses file no rule makes yet is left out (with a message).
from gazeloc import experiments as exp_cfg

TARGETS.append(
    lambda wildcards: exp_cfg.train_targets(
        config,
        RESULTS,
        lambda path: Path(path).exists()
        or any(r.is_producer(path) for r in workflow.rules),
    )
)


rule pretrained_weights:
    input:
        lambda w: exp_cfg.train_inputs(config, RESULTS, w.experiment)["weights"],
    output:
        exp_cfg.weights_record(RESULTS, "{experiment}"),
    log:
        f"{LOGS}/weights/{{experiment}}.log",
    benchmark:
        f"{BENCH}/weights/{{experiment}}.tsv"
    wildcard_constraints:
        experiment="|".join(exp_cfg.EXPERIMENTS),
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        version=stage_version("train"),
        source=lambda w: exp_cfg.weights_params(config, w.experiment)["source"],
        expect=lambda w: exp_cfg.weights_params(config, w.experiment)["expect"],
    shell:
        "python -m gazeloc check-weights --file {input:q} --expect {params.expect:q}"
        " --source {params.source:q} --out {output:q} > {log:q} 2>&1"


rule train:
    input:
        unpack(lambda w: exp_cfg.train_inputs(config, RESULTS, w.experiment)),
    output:
        model=f"{RESULTS}/models/{{experiment}}/seed{{seed}}/model.pt",
        log_csv=f"{RESULTS}/models/{{experiment}}/seed{{seed}}/train_log.csv",
        card=f"{RESULTS}/models/{{experiment}}/seed{{seed}}/model_card.md",
    log:
        f"{LOGS}/train/{{experiment}}/seed{{seed}}.log",
    benchmark:
        f"{BENCH}/train/{{experiment}}/seed{{seed}}.tsv"
    wildcard_constraints:
        experiment="|".join(exp_cfg.EXPERIMENTS),
    conda:
        "../../envs/gazeloc-cuda.yaml"
    threads: config["training"]["workers"] + 1
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=1440,
        run_options=lambda w: exp_cfg.runtime_options(config, w.experiment),
    params:
        version=stage_version("train"),
        settings=lambda w: exp_cfg.rule_params(config, w.experiment)["settings"],
        annotations=lambda w, input: " ".join(
            f"--{kind.replace('_', '-')} {shlex.quote(input[kind])}"
            for kind in ("heatmaps", "ellipses", "weights", "weights_check")
            if kind in input.keys()
        ),
        reflacx=reflacx_dir(),
        mimic=mimic_dir(),
    shell:
        "python -m gazeloc train --settings {params.settings:q}"
        " --runtime {resources.run_options:q} --seed {wildcards.seed}"
        " --index {input.index:q} --manifest {input.manifest:q} {params.annotations}"
        ' --out-dir "$(dirname {output.model:q})" --threads {threads}'
        " --data-roots reflacx={params.reflacx:q} mimic={params.mimic:q}"
        " --workers $(( {threads} - 1 )) > {log:q} 2>&1"
