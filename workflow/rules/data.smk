# Input validation of the REFLACX and MIMIC-CXR-JPG trees (real or synthetic).


rule check_data:
    input:
        reflacx=reflacx_dir(),
        mimic=mimic_dir(),
        val_subjects=val_subjects_file(),
    output:
        f"{RESULTS}/data/check.json",
    log:
        f"{LOGS}/check_data.log",
    benchmark:
        f"{BENCH}/check_data.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        version=stage_version("check"),
    shell:
        "python -m gazeloc check --reflacx {input.reflacx} --mimic {input.mimic}"
        " --val-subjects {input.val_subjects} --out {output} > {log} 2>&1"
