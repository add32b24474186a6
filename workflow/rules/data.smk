# Input validation of the REFLACX and MIMIC-CXR-JPG trees (real or synthetic). Every stage
# that reads the datasets takes the check's output as an input, so none runs before the check
# has passed; the input is ancient(): a rerun of the check alone reruns nothing after it.


rule input_fingerprints:
    input:
        # The generator's output list (a new generation reruns this; a stray file in the
        # generated trees does not), or a user's roots as ancient: their own times do not
        # matter, each build of the workflow refreshes the parts that changed.
        (
            [rules.synthetic_data.output.val_subjects]
            if is_synthetic()
            else [ancient(reflacx_dir()), ancient(mimic_dir())]
        ),
    output:
        [part(name) for name in INPUT_PARTS],
    log:
        f"{LOGS}/input_fingerprints.log",
    benchmark:
        f"{BENCH}/input_fingerprints.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        reflacx=reflacx_dir(),
        mimic=mimic_dir(),
        version=stage_version("inputs"),
        phases=" ".join(str(p) for p in REFLACX_PHASES),
        shards=config["images"]["shards"],
        out_dir=lambda w, output: str(Path(output[0]).parent),
    shell:
        "python -m gazeloc fingerprint --reflacx {params.reflacx:q} --mimic {params.mimic:q}"
        " --phases {params.phases} --shards {params.shards}"
        " --out-dir {params.out_dir:q} > {log:q} 2>&1"


rule check_data:
    input:
        parts=[part(name) for name in INPUT_PARTS],
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
        reflacx=reflacx_dir(),
        mimic=mimic_dir(),
        version=stage_version("check"),
        phases=" ".join(str(p) for p in REFLACX_PHASES),
        on_bad_image=config["images"]["on_bad_image"],
        max_errors=config["data"]["max_errors"],
        checksums="--verify-checksums" if config["data"]["verify_checksums"] else "",
    message:
        "Checking the REFLACX and MIMIC-CXR-JPG copies; on failure every problem found "
        "(up to data.max_errors) is listed at the end of {log}"
    shell:
        "python -m gazeloc check --reflacx {params.reflacx:q} --mimic {params.mimic:q}"
        " --val-subjects {input.val_subjects:q} --phases {params.phases}"
        " --on-bad-image {params.on_bad_image} --max-errors {params.max_errors}"
        " {params.checksums} --out {output:q} > {log:q} 2>&1"
