"""Direct, unoptimised reference implementations (for tests and benchmarks only).

* :func:`heatmap_oracle` — the reference formula (docs/method.md#heatmap-rendering) evaluated at
  every pixel of every fixation's displayed rectangle at original resolution (a full 2-D
  density per fixation, as the authors' code does with SciPy), max-normalised, then mapped
  into the frame with Pillow's antialiased bilinear resize (mode ``F``) and zero padding: the
  one-step frame (docs/method.md#the-square-frame).
* :func:`ellipse_oracle` — an ellipse filled at original resolution at integer pixel indices
  (strict ``< 1``), resized the same way and binarised at ``> 0.5``.

These are what :mod:`gazeloc.gaze.render` and :mod:`gazeloc.gaze.ellipses` must match.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
from PIL import Image

from gazeloc.gaze.frame import frame_geometry, place


def frame_image(array: np.ndarray, size: int) -> np.ndarray:
    """A float ``H × W`` array into the ``S × S`` frame with Pillow (mode ``F``, BILINEAR)."""
    height, width = array.shape
    g = frame_geometry(width, height, size)
    image = Image.fromarray(np.ascontiguousarray(array, dtype=np.float32), mode="F")
    resized = np.asarray(image.resize((g.w, g.h), Image.Resampling.BILINEAR))
    return place(resized, g, np.float32)


def full_resolution_map(
    fixations: pl.DataFrame,
    t0: float,
    t1: float,
    *,
    image_width: int,
    image_height: int,
    sigma_degrees: float = 1.0,
) -> np.ndarray:
    """The un-normalised sum ``M`` (``H × W`` float64) of the reference formula."""
    out = np.zeros((image_height, image_width))
    for row in fixations.iter_rows(named=True):
        b, e = row["timestamp_start_fixation"], row["timestamp_end_fixation"]
        if not (e > t0 and b <= t1):
            continue
        weight = min(e, t1) - max(b, t0)
        sx = sigma_degrees * row["angular_resolution_x_pixels_per_degree"]
        sy = sigma_degrees * row["angular_resolution_y_pixels_per_degree"]
        x0 = min(max(round(row["xmin_shown_from_image"]), 0), image_width)
        x1 = min(max(round(row["xmax_shown_from_image"]), 0), image_width)
        y0 = min(max(round(row["ymin_shown_from_image"]), 0), image_height)
        y1 = min(max(round(row["ymax_shown_from_image"]), 0), image_height)
        if x1 <= x0 or y1 <= y0:
            continue
        u, v = np.meshgrid(np.arange(x0, x1), np.arange(y0, y1))
        exponent = (u - row["x_position"]) ** 2 / (2 * sx * sx) + (v - row["y_position"]) ** 2 / (
            2 * sy * sy
        )
        out[y0:y1, x0:x1] += weight * np.exp(-exponent) / (2 * math.pi * sx * sy)
    return out


def heatmap_oracle(
    fixations: pl.DataFrame,
    t0: float,
    t1: float,
    *,
    image_width: int,
    image_height: int,
    size: int = 512,
    sigma_degrees: float = 1.0,
) -> np.ndarray:
    """The reference heatmap, computed directly at original resolution, then framed."""
    full = full_resolution_map(
        fixations,
        t0,
        t1,
        image_width=image_width,
        image_height=image_height,
        sigma_degrees=sigma_degrees,
    )
    peak = full.max()
    if peak <= 0:
        return np.zeros((size, size), dtype=np.float32)
    return frame_image(full / peak, size)


def ellipse_fill(
    box: tuple[float, float, float, float], image_width: int, image_height: int
) -> np.ndarray:
    """Boolean ``H × W`` ellipse inscribed in ``(xmin, ymin, xmax, ymax)`` (strict ``< 1``)."""
    xmin, ymin, xmax, ymax = box
    cx, cy = (xmin + xmax) / 2, (ymin + ymax) / 2
    a, b = (xmax - xmin) / 2, (ymax - ymin) / 2
    if a <= 0 or b <= 0:
        return np.zeros((image_height, image_width), dtype=bool)
    u = np.arange(image_width)[None, :]
    v = np.arange(image_height)[:, None]
    return ((u - cx) / a) ** 2 + ((v - cy) / b) ** 2 < 1


def ellipse_oracle(
    box: tuple[float, float, float, float], image_width: int, image_height: int, size: int
) -> np.ndarray:
    """The ellipse mask in the frame: filled, resized like an image, binarised at > 0.5."""
    filled = ellipse_fill(box, image_width, image_height).astype(np.float32)
    return frame_image(filled, size) > 0.5
