"""The classifier: multi-resolution MIL network with decoder (:mod:`.network`), its losses
(:mod:`.losses`, docs/method.md#losses)."""

from __future__ import annotations

from gazeloc.model.network import (
    BACKBONES,
    GazeLocNet,
    ModelSettings,
    Outputs,
    build_model,
    image_probabilities,
    load_encoder_weights,
    load_model,
)

__all__ = [
    "BACKBONES",
    "GazeLocNet",
    "ModelSettings",
    "Outputs",
    "build_model",
    "image_probabilities",
    "load_encoder_weights",
    "load_model",
]
