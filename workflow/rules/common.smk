# Paths, helpers and wildcard constraints shared by every rule file.
import json
import shlex
from pathlib import Path

from gazeloc.versions import stage_version

RESULTS = config["results_dir"].rstrip("/")
LOGS = f"{RESULTS}/logs"
BENCH = f"{RESULTS}/benchmarks"
SYNTH = f"{RESULTS}/synthetic"
ENV = "../../envs/gazeloc.yaml"

# Rules run `python -m gazeloc` from this workflow's own source tree, so the code that runs is
# the code of this checkout, inside or outside a conda environment (jobs inherit PYTHONPATH).
shell.prefix(
    f"export PYTHONPATH={shlex.quote(str(Path(workflow.basedir) / 'src'))}"
    "${{PYTHONPATH:+:$PYTHONPATH}}; "
)


wildcard_constraints:
    phase="[123]",
    seed=r"\d+",


def is_synthetic():
    return config["data"]["source"] == "synthetic"


def reflacx_dir():
    """REFLACX root: the generated tree, or the user's copy."""
    return f"{SYNTH}/reflacx" if is_synthetic() else config["data"]["reflacx_dir"]


def mimic_dir():
    """MIMIC-CXR-JPG root: the generated tree, or the user's copy."""
    return f"{SYNTH}/mimic-cxr-jpg" if is_synthetic() else config["data"]["mimic_dir"]


def val_subjects_file():
    """The validation-subjects list: the config's, the generator's, or the paper's."""
    if config["data"]["val_subjects_file"]:
        return config["data"]["val_subjects_file"]
    if is_synthetic():
        return f"{SYNTH}/val_subjects.txt"
    return str(Path(workflow.basedir) / "src/gazeloc/data/val_subjects_paper.txt")


def synthetic_settings():
    """The generator's settings as JSON (workers excluded: they do not change the data)."""
    settings = {k: v for k, v in config["synthetic"].items() if k != "workers"}
    return json.dumps(settings, sort_keys=True)


# REFLACX phases the workflow uses: all three for real data; those with readings when
# synthetic.
if is_synthetic():
    REFLACX_PHASES = [
        phase
        for phase, n in (
            (1, config["synthetic"]["phase1_images"]),
            (2, config["synthetic"]["phase2_images"]),
            (3, config["synthetic"]["phase3_readings"]),
        )
        if n > 0
    ]
else:
    REFLACX_PHASES = [1, 2, 3]

# The data check's summary: every stage reading the datasets waits for it (ancient: a rerun
# of the check alone reruns nothing).
CHECK = f"{RESULTS}/data/check.json"
CHECKED = ancient(CHECK)

# Final outputs of the default target: each stage file appends its own.
TARGETS = [CHECK]


def all_targets():
    return TARGETS
