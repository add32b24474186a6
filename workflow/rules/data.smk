# Input validation of the REFLACX and MIMIC-CXR-JPG trees (real or synthetic). Every stage
# that reads the datasets takes the check's output as an input, so none runs before the check
# has passed; the input is ancient(): a rerun of the check alone reruns nothing after it.


rule check_data:
    input:
        reflacx=reflacx_dir(),
        mimic=mimic_dir(),
        val_subjects=val_subjects_file(),
    output:
        CHECK,
    log:
        f"{LOGS}/check_data.log",
    benchmark:
        f"{BENCH}/check_data.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        version=stage_version("check"),
        phases=" ".join(str(p) for p in REFLACX_PHASES),
        on_bad_image=config["images"]["on_bad_image"],
        max_errors=config["data"]["max_errors"],
        checksums="--verify-checksums" if config["data"]["verify_checksums"] else "",
    message:
        "Checking the REFLACX and MIMIC-CXR-JPG copies; on failure every problem found "
        "(up to data.max_errors) is listed at the end of {log}"
    shell:
        "python -m gazeloc check --reflacx {input.reflacx:q} --mimic {input.mimic:q}"
        " --val-subjects {input.val_subjects:q} --phases {params.phases}"
        " --on-bad-image {params.on_bad_image} --max-errors {params.max_errors}"
        " {params.checksums} --out {output:q} > {log:q} 2>&1"
