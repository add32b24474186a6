"""Evaluation of trained models (docs/method.md#evaluation): per-label AUC on MIMIC-CXR-JPG and
per-label IoU on REFLACX for every heatmap source (:mod:`.maps`) and threshold (:mod:`.run`),
and the hit rate (:mod:`.pointing`)."""

from __future__ import annotations

from gazeloc.evaluate.maps import SOURCES, gradcam, gradcam_autograd, iou_thresholds, source_maps
from gazeloc.evaluate.pointing import pointing_hits
from gazeloc.evaluate.run import (
    EvalOptions,
    evaluate_model,
    evaluate_splits,
    read_metrics,
    write_metrics,
)

__all__ = [
    "SOURCES",
    "EvalOptions",
    "evaluate_model",
    "evaluate_splits",
    "gradcam",
    "gradcam_autograd",
    "iou_thresholds",
    "pointing_hits",
    "read_metrics",
    "source_maps",
    "write_metrics",
]
