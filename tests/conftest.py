"""Shared fixtures: one tiny synthetic dataset per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

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


def pytest_collection_modifyitems(items):
    """Run the SLURM tests last: once SLURM's client tools are installed but its daemons are
    stopped, the executor plugin's probes (run when Snakemake loads its plugins) wait for
    their timeouts, which would slow every later Snakemake call in the session."""
    items.sort(key=lambda item: item.path.name == "test_slurm.py")
