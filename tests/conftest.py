"""Shared fixtures: one tiny synthetic dataset and one tiny workflow run per test session
(the run goes through a local single-node SLURM where one can be started)."""

from __future__ import annotations

from pathlib import Path

import pytest
import tiny_workflow

from gazeloc.synthetic.generate import SynthSettings, generate

TINY = SynthSettings(
    seed=7,
    mimic_studies=24,
    phase1_images=2,
    phase2_images=2,
    phase3_readings=8,
    image_size=320,
    gaze_samples=True,
)


@pytest.fixture(scope="session")
def tiny_settings() -> SynthSettings:
    return TINY


@pytest.fixture(scope="session")
def tiny_synthetic(tmp_path_factory) -> Path:
    """A tiny generated dataset (REFLACX + MIMIC-CXR-JPG + ground truth)."""
    out = tmp_path_factory.mktemp("synthetic")
    generate(out, TINY, workers=1, progress=False)
    return out


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """The state folder of a single-node SLURM started for this session, or None where it
    cannot be started (tests/tiny_workflow.slurm_unavailable); stopped at the end."""
    if tiny_workflow.slurm_unavailable():
        yield None
        return
    state = tmp_path_factory.mktemp("slurm-state")
    try:
        tiny_workflow.slurm_up(state)
        yield state
    finally:
        tiny_workflow.slurm_down(state)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, slurm_cluster) -> Path:
    """The tiny preset run once (through SLURM when it is up), in its own work folder."""
    return tiny_workflow.tiny_run(tmp_path_factory.mktemp("workflow"), slurm_cluster)


def pytest_collection_modifyitems(items):
    """Run the tests of the shared tiny run last (test_workflow.py, then test_slurm.py): SLURM
    is started for that run and stopped at the end of the session, and once SLURM's client
    tools are installed but its daemons are stopped, the executor plugin's probes (run when
    Snakemake loads its plugins) wait for their timeouts, slowing every Snakemake call."""
    last = {"test_workflow.py": 1, "test_slurm.py": 2}
    items.sort(key=lambda item: last.get(item.path.name, 0))
