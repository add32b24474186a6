# Paths, helpers and wildcard constraints shared by every rule file.
import json
import shlex
from pathlib import Path

import gazeloc
from gazeloc.versions import stage_version

RESULTS = config["results_dir"].rstrip("/")
LOGS = f"{RESULTS}/logs"
BENCH = f"{RESULTS}/benchmarks"
SYNTH = f"{RESULTS}/synthetic"
ENV = "../../envs/gazeloc.yaml"

# The package's folder (this checkout's src/gazeloc, or the installed package): its shipped
# data files are found there.
PACKAGE_DIR = Path(gazeloc.__file__).resolve().parent

# Rules run `python -m gazeloc` from this workflow's own source tree when it has one, so the
# code that runs is the code of this checkout, inside or outside a conda environment (jobs
# inherit PYTHONPATH); PYTHONSAFEPATH keeps the working directory off the module path.
shell.prefix(
    "export PYTHONSAFEPATH=1; "
    + (
        f"export PYTHONPATH={shlex.quote(str(GAZELOC_ROOT / 'src'))}"
        "${{PYTHONPATH:+:$PYTHONPATH}}; "
        if (GAZELOC_ROOT / "src" / "gazeloc").is_dir()
        else ""
    )
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
    return str(PACKAGE_DIR / "data/val_subjects_paper.txt")


def synthetic_settings():
    """The generator's settings as JSON (workers excluded: they do not change the data)."""
    settings = {k: v for k, v in config["synthetic"].items() if k != "workers"}
    return json.dumps(settings, sort_keys=True)


# Final outputs of the default target: each stage file appends its own.
TARGETS = [f"{RESULTS}/data/check.json"]


def all_targets():
    return TARGETS
