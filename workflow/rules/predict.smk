# Apply one trained model to a folder of new images (gazeloc predict; docs/predict.md).
# Off unless predict.images is set. Outputs: results/predictions/{experiment}/seed{seed}/
# predictions.csv, heatmaps.h5, overlays/, skipped.csv, predict.json.
from gazeloc.predict import workflow as predict_cfg

PREDICTED = f"{RESULTS}/predictions/{{experiment}}/seed{{seed}}"
TARGETS.extend(predict_cfg.predict_targets(config, RESULTS))


rule predict:
    input:
        model=f"{RESULTS}/models/{{experiment}}/seed{{seed}}/model.pt",
        images=lambda w: predict_cfg.predict_settings(config)["images"],
        selection=f"{RESULTS}/tables/selection.csv",
    output:
        predictions=report(
            f"{PREDICTED}/predictions.csv",
            caption="../report/predictions.rst",
            category="Predictions",
        ),
        heatmaps=f"{PREDICTED}/heatmaps.h5",
        overlays=report(
            directory(f"{PREDICTED}/overlays"),
            patterns=["{name}.png"],
            caption="../report/overlays.rst",
            category="Predictions",
        ),
        skipped=f"{PREDICTED}/skipped.csv",
        info=f"{PREDICTED}/predict.json",
    log:
        f"{LOGS}/predict/{{experiment}}/seed{{seed}}.log",
    benchmark:
        f"{BENCH}/predict/{{experiment}}/seed{{seed}}.tsv"
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
        version=stage_version("predict"),
    shell:
        "python -m gazeloc predict --model {input.model:q} {input.images:q}"
        ' --out "$(dirname {output.predictions:q})" --selection {input.selection:q}'
        " --batch-size {resources.run_batch_size} --device {resources.run_device}"
        " --workers $(( {threads} - 1 )) --threads {threads} --no-progress > {log:q} 2>&1"
