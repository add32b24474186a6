"""Applying a trained model to new chest x-rays (``gazeloc predict``): reading JPEG, PNG and
DICOM files as the training images were made (:mod:`.read`), the training frame and its
inverse (:mod:`.geometry`), probabilities, heatmaps in the image's own pixels and overlays
(:mod:`.run`)."""

from __future__ import annotations

from gazeloc.predict.geometry import to_image
from gazeloc.predict.read import LoadedImage, UnsupportedImage, equalize, load_image
from gazeloc.predict.run import PredictOptions, choose_source, predict

__all__ = [
    "LoadedImage",
    "PredictOptions",
    "UnsupportedImage",
    "choose_source",
    "equalize",
    "load_image",
    "predict",
    "to_image",
]
