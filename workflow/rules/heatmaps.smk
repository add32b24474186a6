# Gaze to label-specific heatmaps (one HDF5 file per REFLACX phase) and ellipse masks.
# Heatmaps are stale only when the window method, window end, sigma, images.size or the
# labels file change; ellipses only when the ellipse files or images.size change.

HEATMAPS = f"{RESULTS}/heatmaps"
ELLIPSES = f"{RESULTS}/ellipses"

# REFLACX phases present: all three for real data; those with readings when synthetic.
if is_synthetic():
    HEATMAP_PHASES = [
        phase
        for phase, n in (
            (1, config["synthetic"]["phase1_images"]),
            (2, config["synthetic"]["phase2_images"]),
            (3, config["synthetic"]["phase3_readings"]),
        )
        if n > 0
    ]
else:
    HEATMAP_PHASES = [1, 2, 3]

TARGETS.extend(
    [f"{HEATMAPS}/phase{p}.h5" for p in HEATMAP_PHASES]
    + [f"{ELLIPSES}/phase{p}.h5" for p in HEATMAP_PHASES]
)


rule heatmaps:
    input:
        check=checked(
            [f"{HEATMAPS}/phase{{phase}}.h5"],
            [f"{INPUTS}/reflacx_phase{{phase}}_gaze.json"],
        ),
        reflacx=f"{INPUTS}/reflacx_phase{{phase}}_gaze.json",
        labels=f"{RESULTS}/labels/phase{{phase}}.parquet",
        val_subjects=val_subjects_file(),
    output:
        f"{HEATMAPS}/phase{{phase}}.h5",
    log:
        f"{LOGS}/heatmaps_phase{{phase}}.log",
    benchmark:
        f"{BENCH}/heatmaps_phase{{phase}}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        reflacx=reflacx_dir(),
        version=stage_version("heatmaps"),
        method=config["heatmaps"]["method"],
        window_end=config["heatmaps"]["window_end"],
        sigma_degrees=config["heatmaps"]["sigma_degrees"],
        size=config["images"]["size"],
    shell:
        "python -m gazeloc heatmaps --reflacx {params.reflacx:q} --phase {wildcards.phase}"
        " --labels {input.labels:q} --val-subjects {input.val_subjects:q}"
        " --method {params.method} --window-end {params.window_end}"
        " --sigma-degrees {params.sigma_degrees} --size {params.size}"
        " --workers {threads} --out {output:q} > {log:q} 2>&1"


rule ellipses:
    input:
        check=checked(
            [f"{ELLIPSES}/phase{{phase}}.h5"],
            [f"{INPUTS}/reflacx_phase{{phase}}_ellipses.json"],
        ),
        reflacx=f"{INPUTS}/reflacx_phase{{phase}}_ellipses.json",
        val_subjects=val_subjects_file(),
    output:
        f"{ELLIPSES}/phase{{phase}}.h5",
    log:
        f"{LOGS}/ellipses_phase{{phase}}.log",
    benchmark:
        f"{BENCH}/ellipses_phase{{phase}}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        reflacx=reflacx_dir(),
        version=stage_version("heatmaps"),
        size=config["images"]["size"],
    shell:
        "python -m gazeloc ellipses --reflacx {params.reflacx:q} --phase {wildcards.phase}"
        " --val-subjects {input.val_subjects:q} --size {params.size}"
        " --workers {threads} --out {output:q} > {log:q} 2>&1"


# Location-extraction validation on the train readings of phases 1 and 2 (paper §2.8).
LOCATION_PHASES = [p for p in (1, 2) if p in HEATMAP_PHASES]
LOCATION_OUTPUTS = {
    "csv": f"{RESULTS}/tables/location_extraction.csv",
    "md": f"{RESULTS}/tables/location_extraction.md",
    "details": f"{RESULTS}/tables/location_extraction_details.csv",
    "figure": f"{RESULTS}/figures/location_extraction_delay.png",
}
if config["location_extraction"]["enabled"] and LOCATION_PHASES:
    TARGETS.extend(LOCATION_OUTPUTS.values())


rule location_extraction:
    input:
        check=checked(
            [LOCATION_OUTPUTS["csv"]],
            [phase_part(p, k) for p in LOCATION_PHASES for k in ("gaze", "ellipses")],
        ),
        reflacx=[
            phase_part(p, kind)
            for p in LOCATION_PHASES
            for kind in ("gaze", "ellipses")
        ],
        labels=[f"{RESULTS}/labels/phase{p}.parquet" for p in LOCATION_PHASES],
        ellipses=[f"{ELLIPSES}/phase{p}.h5" for p in LOCATION_PHASES],
        val_subjects=val_subjects_file(),
    output:
        **{k: v for k, v in LOCATION_OUTPUTS.items() if k != "figure"},
        figure=report(
            LOCATION_OUTPUTS["figure"],
            caption="../report/location_extraction_delay.rst",
            category="Heatmaps",
        ),
    log:
        f"{LOGS}/location_extraction.log",
    benchmark:
        f"{BENCH}/location_extraction.tsv"
    conda:
        ENV
    threads: 2
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        reflacx=reflacx_dir(),
        version=stage_version("heatmaps"),
        phases=" ".join(str(p) for p in LOCATION_PHASES),
        first=" ".join(
            str(d) for d in config["location_extraction"]["first_stage_delays"]
        ),
        second=" ".join(
            str(d) for d in config["location_extraction"]["second_stage_delays"]
        ),
        method=config["heatmaps"]["method"],
        window_end=config["heatmaps"]["window_end"],
        sigma_degrees=config["heatmaps"]["sigma_degrees"],
        size=config["images"]["size"],
    shell:
        "python -m gazeloc location-extraction --reflacx {params.reflacx:q}"
        " --phases {params.phases} --labels {input.labels:q} --ellipses {input.ellipses:q}"
        " --val-subjects {input.val_subjects:q} --size {params.size}"
        " --sigma-degrees {params.sigma_degrees} --window-end {params.window_end}"
        " --first-delays {params.first} --second-delays {params.second}"
        " --method {params.method} --workers {threads}"
        " --csv {output.csv:q} --md {output.md:q} --details {output.details:q}"
        " --figure {output.figure:q} > {log:q} 2>&1"


# Figure 1 of the paper for the configured readings (or one chosen phase-3 reading).
FIGURE1_READINGS = config["heatmaps"]["figure1_readings"]
FIGURE1_PHASES = sorted(
    {int(r[1]) for r in FIGURE1_READINGS}
    or ({3} if 3 in HEATMAP_PHASES else set(HEATMAP_PHASES[-1:]))
)
if FIGURE1_PHASES:
    TARGETS.append(f"{RESULTS}/figures/figure1.png")


rule figure1:
    input:
        check=checked(
            [f"{RESULTS}/figures/figure1.png"],
            [phase_part(p, k) for p in FIGURE1_PHASES for k in ("gaze", "ellipses")]
            + ALL_SHARD_PARTS,
        ),
        reflacx=[
            phase_part(p, kind)
            for p in FIGURE1_PHASES
            for kind in ("gaze", "ellipses")
        ],
        jpgs=ALL_SHARD_PARTS,
        labels=[f"{RESULTS}/labels/phase{p}.parquet" for p in FIGURE1_PHASES],
    output:
        report(
            f"{RESULTS}/figures/figure1.png",
            caption="../report/figure1.rst",
            category="Heatmaps",
        ),
    log:
        f"{LOGS}/figure1.log",
    benchmark:
        f"{BENCH}/figure1.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        reflacx=reflacx_dir(),
        mimic=mimic_dir(),
        version=stage_version("figure1"),
        phases=" ".join(str(p) for p in FIGURE1_PHASES),
        readings=" ".join(FIGURE1_READINGS),
        method=config["heatmaps"]["method"],
        window_end=config["heatmaps"]["window_end"],
        sigma_degrees=config["heatmaps"]["sigma_degrees"],
        size=config["images"]["size"],
    shell:
        "python -m gazeloc figure1 --reflacx {params.reflacx:q} --mimic {params.mimic:q}"
        " --phases {params.phases} --labels {input.labels:q} --readings {params.readings}"
        " --method {params.method} --window-end {params.window_end}"
        " --sigma-degrees {params.sigma_degrees} --size {params.size}"
        " --out {output:q} > {log:q} 2>&1"
