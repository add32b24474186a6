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
