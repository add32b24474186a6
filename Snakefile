# gazeloc: label-specific eye-tracking localization supervision for chest x-ray classifiers.
# Run: snakemake --cores all   (config.yaml is the synthetic demo; see README.md)
# Another workflow may import this one as a module (docs/cluster.md, "Using gazeloc as a
# module"): every shipped file is found from this file's folder, never from the importing
# workflow's folder or the working directory.
import sys
from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.0")

# This workflow's own folder (workflow.basedir is the importing workflow's inside a module).
GAZELOC_ROOT = Path(
    workflow.current_basedir.get_path_or_uri(secret_free=True)
).resolve()
# The package: this checkout's own source when it has one, else the environment's.
if (GAZELOC_ROOT / "src" / "gazeloc" / "__init__.py").is_file():
    sys.path.insert(0, str(GAZELOC_ROOT / "src"))
from gazeloc.config import check_config, coerce_config  # noqa: E402

SCHEMA = str(GAZELOC_ROOT / "workflow" / "schemas" / "config.schema.yaml")


# (ignored inside a module that is given a config)
configfile: str(GAZELOC_ROOT / "config.yaml")


# Structured --config values arrive as strings: typed by the schema before validation.
coerce_config(config, SCHEMA)
check_config(config, SCHEMA)
validate(config, SCHEMA)


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
include: "workflow/rules/predict.smk"
include: "workflow/rules/report.smk"


report: "workflow/report/workflow.rst"


rule all:
    default_target: True
    input:
        all_targets(),
