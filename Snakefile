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


include: "workflow/rules/common.smk"
include: "workflow/rules/synthetic.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/images.smk"
include: "workflow/rules/labels.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/heatmaps.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/predict.smk"


rule all:
    default_target: True
    input:
        all_targets(),
