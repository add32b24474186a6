# MIMIC-CXR-JPG images: image list -> index (labels, splits, counts); image list -> shards.
# Shards depend on the image list only, so label, split and dedupe choices never redo them.

IMAGES = f"{RESULTS}/images"
# The current set of shard files, without their suffix (images.shards of them).
SHARDS = [
    f"{IMAGES}/shards/shard-{i:03d}-of-{config['images']['shards']:03d}"
    for i in range(config["images"]["shards"])
]

TARGETS.extend(
    [
        f"{IMAGES}/index.parquet",
        f"{RESULTS}/tables/dataset_counts.csv",
        f"{RESULTS}/tables/dataset_counts.md",
        f"{IMAGES}/shards.parquet",
        f"{IMAGES}/skipped.csv",
    ]
)


rule image_list:
    input:
        check=checked(
            [f"{IMAGES}/images.parquet"],
            [MIMIC_TABLES, REFLACX_TABLES],
        ),
        tables=[MIMIC_TABLES, REFLACX_TABLES],
    output:
        f"{IMAGES}/images.parquet",
    log:
        f"{LOGS}/image_list.log",
    benchmark:
        f"{BENCH}/image_list.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        mimic=mimic_dir(),
        reflacx=reflacx_dir(),
        version=stage_version("images"),
    shell:
        "python -m gazeloc image-list --mimic {params.mimic:q} --reflacx {params.reflacx:q}"
        " --out {output:q} > {log:q} 2>&1"


rule image_index:
    input:
        check=checked(
            [f"{IMAGES}/index.parquet"],
            [MIMIC_TABLES, REFLACX_TABLES],
        ),
        images=rules.image_list.output[0],
        tables=[MIMIC_TABLES, REFLACX_TABLES],
        val_subjects=val_subjects_file(),
    output:
        index=f"{IMAGES}/index.parquet",
        counts_csv=f"{RESULTS}/tables/dataset_counts.csv",
        counts_md=f"{RESULTS}/tables/dataset_counts.md",
    log:
        f"{LOGS}/image_index.log",
    benchmark:
        f"{BENCH}/image_index.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        mimic=mimic_dir(),
        reflacx=reflacx_dir(),
        version=stage_version("images"),
        uncertain_as=config["images"]["uncertain_as"],
        blank_as=config["images"]["blank_as"],
        dedupe="--dedupe-reflacx" if config["images"]["dedupe_reflacx"] else "",
    shell:
        "python -m gazeloc index --images {input.images:q} --mimic {params.mimic:q}"
        " --reflacx {params.reflacx:q} --val-subjects {input.val_subjects:q}"
        " --uncertain-as {params.uncertain_as} --blank-as {params.blank_as} {params.dedupe}"
        " --out {output.index:q} --counts-csv {output.counts_csv:q}"
        " --counts-md {output.counts_md:q} > {log:q} 2>&1"


rule image_shard:
    input:
        check=checked(
            [f"{IMAGES}/shards/shard-{{shard}}-of-{{nshards}}.h5"],
            [f"{INPUTS}/mimic_shard-{{shard}}-of-{{nshards}}.json"],
        ),
        images=rules.image_list.output[0],
        jpgs=f"{INPUTS}/mimic_shard-{{shard}}-of-{{nshards}}.json",
    output:
        h5=f"{IMAGES}/shards/shard-{{shard}}-of-{{nshards}}.h5",
        skipped=f"{IMAGES}/shards/shard-{{shard}}-of-{{nshards}}.skipped.csv",
    log:
        f"{LOGS}/image_shard/shard-{{shard}}-of-{{nshards}}.log",
    benchmark:
        f"{BENCH}/image_shard/shard-{{shard}}-of-{{nshards}}.tsv"
    wildcard_constraints:
        shard=r"\d{3}",
        nshards=r"\d{3}",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=120,
    params:
        mimic=mimic_dir(),
        version=stage_version("images"),
        size=config["images"]["size"],
        compression=config["images"]["compression"],
        dct_scaling="true" if config["images"]["dct_scaling"] else "false",
        on_bad_image=config["images"]["on_bad_image"],
    shell:
        "python -m gazeloc shard --images {input.images:q} --mimic {params.mimic:q}"
        " --shard {wildcards.shard} --shards {wildcards.nshards}"
        " --size {params.size} --compression {params.compression}"
        " --dct-scaling {params.dct_scaling} --on-bad-image {params.on_bad_image}"
        " --workers {threads} --out {output.h5:q} --skipped {output.skipped:q} > {log:q} 2>&1"


rule image_shards:
    input:
        h5=[f"{s}.h5" for s in SHARDS],
        skipped=[f"{s}.skipped.csv" for s in SHARDS],
    output:
        manifest=f"{IMAGES}/shards.parquet",
        skipped=f"{IMAGES}/skipped.csv",
    log:
        f"{LOGS}/image_shards.log",
    benchmark:
        f"{BENCH}/image_shards.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        version=stage_version("images"),
    shell:
        "python -m gazeloc shard-merge --shards {input.h5:q} --skipped {input.skipped:q}"
        " --manifest {output.manifest:q} --skipped-out {output.skipped:q} > {log:q} 2>&1"
