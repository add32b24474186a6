# Paths, helpers and wildcard constraints shared by every rule file.
import json
import os
import shlex
import sys
from pathlib import Path

import gazeloc
from gazeloc import inputs as input_fp
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

# The data check's summary, which every stage reading the datasets waits for (checked()).
CHECK = f"{RESULTS}/data/check.json"

# Per-file input tracking (gazeloc.inputs): one stat-based fingerprint file per part of the
# datasets; stages take the parts they read as inputs (the roots go in as params). Each build
# of the workflow rewrites the parts whose files changed, so their readers rerun.
INPUTS = f"{RESULTS}/inputs"
INPUT_PARTS = input_fp.part_names(REFLACX_PHASES, config["images"]["shards"])


def part(name):
    """The fingerprint file of one part of the datasets."""
    return f"{INPUTS}/{name}.json"


def phase_part(phase, kind="gaze"):
    """A REFLACX phase's gaze part (fixations, transcripts) or ellipses part."""
    return part(input_fp.phase_part(phase, kind))


MIMIC_TABLES = part(input_fp.MIMIC_TABLES)
REFLACX_TABLES = part(input_fp.REFLACX_TABLES)
ALL_SHARD_PARTS = [
    part(input_fp.shard_part(i, config["images"]["shards"]))
    for i in range(config["images"]["shards"])
]

if workflow.is_main_process:
    _changed = input_fp.refresh(
        reflacx_dir(), mimic_dir(), INPUTS, REFLACX_PHASES, config["images"]["shards"]
    )
    if _changed:
        print(
            f"gazeloc: dataset files changed in: {', '.join(_changed)}", file=sys.stderr
        )


def _mtime(path):
    try:
        return os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return None


# Whether the data check is up to date with every part (computed after the refresh above).
_check_time = _mtime(CHECK)
CHECK_FRESH = _check_time is not None and all(
    (t := _mtime(part(name))) is not None and t <= _check_time for name in INPUT_PARTS
)


def checked(outputs, parts):
    """Input function: the data check's output for a stage writing ``outputs`` from the
    dataset ``parts`` (patterns with the rule's wildcards).

    A check that is up to date goes in as ancient() (it orders the jobs; its time does not
    matter). When the check will rerun, a stage whose parts changed (or whose output is
    missing) takes it as a plain input: that stage reruns anyway, after the check. The others
    keep ancient(), so a check rerun for one part never reruns the stages of other parts.
    """

    def gate(wildcards):
        if CHECK_FRESH:
            return ancient(CHECK)
        w = dict(wildcards.items())
        outs = [_mtime(o.format(**w)) for o in outputs]
        ins = [_mtime(p.format(**w)) for p in parts]
        if None in outs or None in ins or max(ins) >= min(outs):
            return CHECK
        return ancient(CHECK)

    return gate


# Final outputs of the default target: each stage file appends its own.
TARGETS = [CHECK]


def all_targets():
    return TARGETS
