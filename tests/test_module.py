"""The workflow imported as a Snakemake module by a host workflow in another folder."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tiny_workflow import ROOT, TINY

HOST_SNAKEFILE = """\
configfile: "config.yaml"


module gazeloc:
    snakefile:
        {snakefile!r}
    config:
        config


use rule * from gazeloc as gazeloc_*
"""


def _merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


@pytest.mark.slow
def test_host_workflow_runs_the_tiny_preset_to_the_tables(tmp_path):
    """The host's config: this workflow's config.yaml with the tiny preset (one experiment, to
    keep CI short). Run from the host's folder with no PYTHONPATH: shipped files and the
    package are found from the module's own source."""
    host = tmp_path / "host"
    host.mkdir()
    config = _merge(
        yaml.safe_load((ROOT / "config.yaml").read_text()),
        yaml.safe_load(Path(TINY).read_text()),
    )
    config["experiments"] = ["unannotated"]
    (host / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (host / "Snakefile").write_text(HOST_SNAKEFILE.format(snakefile=str(ROOT / "Snakefile")))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    summary = "results-tiny/tables/summary.md"
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", summary],
        cwd=host,
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    assert "rule gazeloc_train:" in out or "gazeloc_train" in out
    text = (host / summary).read_text()
    assert "| unannotated |" in text and "## Provenance" in text and "| random |" in text
    assert (host / "results-tiny" / "logs" / "train" / "unannotated" / "seed1.log").is_file()
    model_dir = host / "results-tiny" / "models" / "unannotated" / "seed1"
    assert (model_dir / "model.pt").is_file() and not (model_dir / "resume").exists()
