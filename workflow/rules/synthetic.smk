# Synthetic REFLACX + MIMIC-CXR-JPG dataset (data.source: synthetic).

if is_synthetic():
    TARGETS.extend([f"{SYNTH}/realism.md", f"{RESULTS}/figures/synthetic_examples.png"])


rule synthetic_data:
    output:
        reflacx=directory(f"{SYNTH}/reflacx"),
        mimic=directory(f"{SYNTH}/mimic-cxr-jpg"),
        truth=directory(f"{SYNTH}/ground_truth"),
        val_subjects=f"{SYNTH}/val_subjects.txt",
        labeler_dev=f"{SYNTH}/labeler_dev_reading_ids.txt",
    log:
        f"{LOGS}/synthetic_data.log",
    benchmark:
        f"{BENCH}/synthetic_data.tsv"
    conda:
        ENV
    threads: config["synthetic"]["workers"]
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        version=stage_version("synthetic"),
        settings=synthetic_settings(),
    shell:
        'python -m gazeloc synth --out "$(dirname {output.val_subjects:q})" --settings {params.settings:q} --workers {threads}'
        " > {log:q} 2>&1"


rule synthetic_realism:
    input:
        reflacx=rules.synthetic_data.output.reflacx,
        mimic=rules.synthetic_data.output.mimic,
        truth=rules.synthetic_data.output.truth,
    output:
        table=f"{SYNTH}/realism.md",
        figure=report(
            f"{RESULTS}/figures/synthetic_examples.png",
            caption="../report/synthetic_examples.rst",
            category="Synthetic data",
        ),
    log:
        f"{LOGS}/synthetic_realism.log",
    benchmark:
        f"{BENCH}/synthetic_realism.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        version=stage_version("synthetic"),
    shell:
        "python -m gazeloc realism --reflacx {input.reflacx:q} --mimic {input.mimic:q}"
        " --truth {input.truth:q} --table {output.table:q} --figure {output.figure:q} > {log:q} 2>&1"
