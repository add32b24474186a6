# Report labels: mentions with offsets and status per REFLACX phase; labeler evaluation.
# The labeler's rule files are inputs, so editing a phrase list relabels the reports.

LABELS = f"{RESULTS}/labels"
LABELER_RULES = sorted(str(p) for p in (PACKAGE_DIR / "labeler/rules").rglob("*.yaml"))


# REFLACX phases present: all three for real data; those with readings when synthetic.
if is_synthetic():
    LABEL_PHASES = [
        phase
        for phase, size in (
            (1, config["synthetic"]["phase1_images"]),
            (2, config["synthetic"]["phase2_images"]),
            (3, config["synthetic"]["phase3_readings"]),
        )
        if size > 0
    ]
else:
    LABEL_PHASES = [1, 2, 3]

# Readings left out of the labeler evaluation: the config's, the generator's or the paper's.
if config["data"]["labeler_dev_ids_file"]:
    LABELER_DEV_IDS = config["data"]["labeler_dev_ids_file"]
elif is_synthetic():
    LABELER_DEV_IDS = f"{SYNTH}/labeler_dev_reading_ids.txt"
else:
    LABELER_DEV_IDS = str(PACKAGE_DIR / "data/labeler_dev_reading_ids_paper.txt")


TARGETS.extend(
    [
        f"{LABELS}/phase{p}{suffix}.parquet"
        for p in LABEL_PHASES
        for suffix in ("", "_reports")
    ]
)
if 2 in LABEL_PHASES:
    TARGETS.extend([f"{RESULTS}/tables/labeler.csv", f"{RESULTS}/tables/labeler.md"])


rule labels:
    input:
        check=checked(
            [f"{LABELS}/phase{{phase}}.parquet"],
            [f"{INPUTS}/reflacx_phase{{phase}}_gaze.json"],
        ),
        reflacx=f"{INPUTS}/reflacx_phase{{phase}}_gaze.json",
        rules=LABELER_RULES,
    output:
        mentions=f"{LABELS}/phase{{phase}}.parquet",
        reports=f"{LABELS}/phase{{phase}}_reports.parquet",
    log:
        f"{LOGS}/labels_phase{{phase}}.log",
    benchmark:
        f"{BENCH}/labels_phase{{phase}}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        reflacx=reflacx_dir(),
        version=stage_version("labels"),
        mode=config["labeler"]["mode"],
    shell:
        "python -m gazeloc label --reflacx {params.reflacx:q} --phase {wildcards.phase}"
        " --mode {params.mode}"
        " --out {output.mentions:q} --reports-out {output.reports:q} > {log:q} 2>&1"


# Both labeler modes on the same phase-2 reports (a `mode` column), whichever the config uses.
rule labeler_table:
    input:
        check=checked(
            [f"{RESULTS}/tables/labeler.csv"],
            [phase_part(2)],
        ),
        reflacx=phase_part(2),
        rules=LABELER_RULES,
        dev_ids=LABELER_DEV_IDS,
    output:
        csv=f"{RESULTS}/tables/labeler.csv",
        md=f"{RESULTS}/tables/labeler.md",
    log:
        f"{LOGS}/labeler_table.log",
    benchmark:
        f"{BENCH}/labeler_table.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        reflacx=reflacx_dir(),
        version=stage_version("labels"),
        gold_min_certainty=config["labeler"]["gold_min_certainty"],
    shell:
        "python -m gazeloc label-eval --reflacx {params.reflacx:q}"
        " --dev-ids {input.dev_ids:q} --phase 2"
        " --gold-min-certainty {params.gold_min_certainty}"
        " --csv {output.csv:q} --md {output.md:q} > {log:q} 2>&1"
