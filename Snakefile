# gazeloc: label-specific eye-tracking localization supervision for chest x-ray classifiers.
# Run: snakemake --cores all   (config.yaml is the synthetic demo; see README.md)
import sys
from pathlib import Path

from snakemake.utils import min_version, validate

sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from gazeloc.config import check_config  # noqa: E402

min_version("9.0")


configfile: str(Path(workflow.basedir) / "config.yaml")


check_config(config, Path(workflow.basedir) / "workflow/schemas/config.schema.yaml")
validate(config, "workflow/schemas/config.schema.yaml")


# Local runs: at most one `gpu` job (train, evaluate) per GPU found, or one at a time without
# a GPU, unless --resources gpu=K is given; each job takes its own GPU (gazeloc.gpus).
# A cluster executor (SLURM) sets `_nodes` (--jobs) and is left alone: the scheduler assigns
# GPUs. (The executor itself is not known yet while the Snakefile is read.)
if workflow.is_main_process and workflow.global_resources["_nodes"].value is None:
    from gazeloc import gpus

    _given = workflow.global_resources.get("gpu")
    _limit, _message = gpus.configure_local(None if _given is None else _given.value)
    if _given is None:
        workflow.register_resource("gpu", _limit)
    logger.info(_message)


include: "workflow/rules/common.smk"
include: "workflow/rules/synthetic.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/images.smk"
include: "workflow/rules/labels.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/heatmaps.smk"
include: "workflow/rules/evaluate.smk"


rule all:
    default_target: True
    input:
        all_targets(),
