"""Evaluation of trained models (docs/method.md#evaluation): per-label AUC on MIMIC-CXR-JPG and
per-label IoU on REFLACX for every heatmap source (:mod:`.maps`) and threshold (:mod:`.run`)."""

from __future__ import annotations

from gazeloc.evaluate.maps import SOURCES, gradcam, gradcam_autograd, iou_thresholds, source_maps
from gazeloc.evaluate.run import EvalOptions, evaluate_model, read_metrics, write_metrics

__all__ = [
    "SOURCES",
    "EvalOptions",
    "evaluate_model",
    "gradcam",
    "gradcam_autograd",
    "iou_thresholds",
    "read_metrics",
    "source_maps",
    "write_metrics",
]
