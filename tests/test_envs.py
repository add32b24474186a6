"""Conda environment files parse and cover every runtime dependency of pyproject.toml."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]
# conda-forge package names that differ from the PyPI names
CONDA_TO_PYPI = {
    "pytorch": "torch",
    "snakemake-minimal": "snakemake",
    "matplotlib-base": "matplotlib",
}


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!\[;~]", requirement.strip(), maxsplit=1)[0].lower()


def _runtime() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {_name(r) for r in project["dependencies"]}


ENV_FILES = sorted((ROOT / "envs").glob("*.yaml"))


def test_there_are_cpu_and_cuda_environments():
    assert {p.name for p in ENV_FILES} >= {"gazeloc.yaml", "gazeloc-cuda.yaml"}


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_environment_covers_runtime_dependencies(path):
    env = yaml.safe_load(path.read_text())
    assert env["channels"][0] == "conda-forge"
    names = set()
    for dep in env["dependencies"]:
        if isinstance(dep, str):
            name = _name(dep)
            names.add(CONDA_TO_PYPI.get(name, name))
        else:
            names.update(_name(p) for p in dep.get("pip", []))
    assert _runtime() - names == set()


def test_cuda_environment_pins_a_cuda_build():
    env = yaml.safe_load((ROOT / "envs" / "gazeloc-cuda.yaml").read_text())
    torch = [d for d in env["dependencies"] if isinstance(d, str) and d.startswith("pytorch")]
    assert torch and "cuda" in torch[0]


def test_every_rule_names_an_existing_environment():
    rules = list((ROOT / "workflow" / "rules").glob("*.smk"))
    text = "\n".join(p.read_text() for p in rules)
    assert 'ENV = "../../envs/gazeloc.yaml"' in text
    assert (ROOT / "workflow" / "rules" / "../../envs/gazeloc.yaml").resolve().is_file()


def test_runtime_install_can_build_the_report():
    # `make demo` ends with `snakemake --report`, which needs pygments; the test install gets
    # it through pytest, so only the declared extra keeps a runtime-only install working.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    snakemake = [r for r in project["dependencies"] if _name(r) == "snakemake"]
    assert snakemake and "[reports]" in snakemake[0].replace(" ", "")
