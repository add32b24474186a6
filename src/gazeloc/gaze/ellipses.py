"""Ellipse masks per model label in the square frame (docs/method.md#the-square-frame).

Each ellipse of ``anomaly_location_ellipses.csv`` (a box ``xmin, ymin, xmax, ymax`` in image
pixels) is the axis-aligned ellipse with centre ``((xmin + xmax)/2, (ymin + ymax)/2)`` and
semi-axes ``(xmax − xmin)/2``, ``(ymax − ymin)/2``; pixel ``(u, v)`` is inside iff
``((u − cx)/a)² + ((v − cy)/b)² < 1`` at integer pixel indices, clipped to the image. The
filled mask is mapped into the frame like an image (antialiased bilinear resize, zero padding),
binarised at ``> 0.5``, and only then OR-ed into every model label its label columns map to
(docs/method.md#ellipse-masks).

Without an ``H × W`` array: each image row of an ellipse is one run of pixels ``[u0, u1)``, and
the resized indicator of a run is a difference of prefix sums of the resize weights
(:func:`gazeloc.gaze.frame.resize_cumulative`), so an ellipse costs one ``w``-vector per image
row it covers plus one sparse product for the vertical resize.

Per reading: ``ellipses`` (10 × S × S bool) from ellipses of certainty ≥ ``min_certainty``
(3, "possibly", as the reference); ``ellipse_labels`` (10 bool): such an ellipse exists for the
label, even if its mask vanishes at S; ``ellipse_labels_any`` (10 bool): an ellipse of any
certainty exists (used by the ablation without label-specific heatmaps). A degenerate box
(zero width or height) fills no pixel but still sets the labels.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import polars as pl

from gazeloc.gaze.frame import frame_geometry, place, resize_cumulative, resize_matrix
from gazeloc.labels import LABEL_INDEX, MODEL_LABELS, REFLACX_TO_MODEL

log = logging.getLogger(__name__)

MIN_CERTAINTY = 3


def ellipse_rows(
    box: tuple[float, float, float, float], width: int, height: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The filled ellipse as runs: image rows ``v`` and their pixel runs ``[u0, u1)``.

    Exactly the pixels of ``((u − cx)/a)² + ((v − cy)/b)² < 1`` (evaluated in float64, as
    a direct fill would) inside the image; rows without pixels are left out.
    """
    xmin, ymin, xmax, ymax = (float(c) for c in box)
    cx, cy = (xmin + xmax) / 2, (ymin + ymax) / 2
    a, b = (xmax - xmin) / 2, (ymax - ymin) / 2
    empty = np.zeros(0, dtype=np.int64)
    if a <= 0 or b <= 0:
        return empty, empty, empty
    v = np.arange(max(0, math.floor(cy - b)), min(height, math.ceil(cy + b) + 1))
    if v.size == 0:
        return empty, empty, empty
    half = a * np.sqrt(np.maximum(1.0 - ((v - cy) / b) ** 2, 0.0))

    def inside(u: np.ndarray) -> np.ndarray:
        return ((u - cx) / a) ** 2 + ((v - cy) / b) ** 2 < 1

    # The estimates are within one pixel of the exact run ends; settle them with the direct
    # inequality (the smallest and the largest inside candidate win).
    c = np.floor(cx - half).astype(np.int64)
    d = np.ceil(cx + half).astype(np.int64)
    first = np.full(v.size, np.iinfo(np.int64).max)
    last = np.full(v.size, np.iinfo(np.int64).min)
    for k in (2, 1, 0, -1):
        first = np.where(inside(c + k), c + k, first)
    for k in (-2, -1, 0, 1):
        last = np.where(inside(d + k), d + k, last)
    start = np.clip(first, 0, width)
    stop = np.clip(last + 1, 0, width)
    keep = (last >= first) & (stop > start)
    return v[keep], start[keep], stop[keep]


def ellipse_frame(
    box: tuple[float, float, float, float], width: int, height: int, size: int
) -> np.ndarray:
    """The ellipse resized into the frame, before binarisation: ``S × S`` float64 in [0, 1]."""
    g = frame_geometry(width, height, size)
    rows, start, stop = ellipse_rows(box, width, height)
    resized = np.zeros((g.h, g.w))
    if rows.size:
        cumulative = resize_cumulative(width, g.w)
        horizontal = cumulative[stop] - cumulative[start]  # (rows, w)
        vertical = resize_matrix(height, g.h)[:, rows]  # (h, rows)
        resized = np.asarray(vertical @ horizontal)
    return place(resized, g, np.float64)


def ellipse_mask(
    box: tuple[float, float, float, float], width: int, height: int, size: int
) -> np.ndarray:
    """``S × S`` bool mask of one ellipse: filled, mapped like an image, ``> 0.5``."""
    return ellipse_frame(box, width, height, size) > 0.5


def reading_ellipses(
    ellipses: pl.DataFrame,
    width: int,
    height: int,
    size: int,
    *,
    min_certainty: int = MIN_CERTAINTY,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ellipses, ellipse_labels, ellipse_labels_any)`` of one reading.

    ``ellipses`` is the table of :func:`gazeloc.io.reflacx.read_ellipses` (any phase: label
    columns map through :data:`gazeloc.labels.REFLACX_TO_MODEL`).
    """
    masks = np.zeros((len(MODEL_LABELS), size, size), dtype=bool)
    labels = np.zeros(len(MODEL_LABELS), dtype=bool)
    labels_any = np.zeros(len(MODEL_LABELS), dtype=bool)
    columns = [c for c in ellipses.columns if c in REFLACX_TO_MODEL]
    for row in ellipses.iter_rows(named=True):
        targets = sorted({LABEL_INDEX[m] for c in columns if row[c] for m in REFLACX_TO_MODEL[c]})
        if not targets:
            continue
        labels_any[targets] = True
        if row["certainty"] < min_certainty:
            continue
        labels[targets] = True
        box = (row["xmin"], row["ymin"], row["xmax"], row["ymax"])
        mask = ellipse_mask(box, width, height, size)
        if not mask.any():
            log.debug("ellipse %s vanishes in the %d-pixel frame", box, size)
        masks[targets] |= mask
    return masks, labels, labels_any
