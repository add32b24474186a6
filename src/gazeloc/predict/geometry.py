"""From the square frame back to the image's own pixels.

The frame (:func:`gazeloc.images.frame.frame_geometry`) resizes a ``W × H`` image to
``w × h`` and pads it to ``S × S`` with the image's top-left corner at ``(left, top)``. Pillow's
resize puts the centre of resized pixel ``i`` at original coordinate ``(i + ½) W / w``, so an
original coordinate ``x`` (continuous, pixel centres at ``x + ½``) sits at frame coordinate
``left + x w / W``, and a heatmap of side ``m`` covering the frame has cell ``⌊f m / S⌋`` there.

:func:`to_image` resamples a map to any output grid that spans the original image (the
original pixels, or the overlay's smaller grid) by nearest neighbour: each output pixel takes
the map cell under its centre — the cell the evaluation's nearest-neighbour upscaling gives the
frame pixel there, so a threshold chosen on validation outlines the same region. The padding is
never sampled.
"""

from __future__ import annotations

import numpy as np

from gazeloc.images.frame import FrameGeometry


def cell_indices(n_out: int, extent: int, resized: int, offset: int, size: int, side: int):
    """Map cells (along one axis) under the centres of ``n_out`` output pixels spanning an
    original extent of ``extent`` pixels that the frame resized to ``resized`` and placed at
    ``offset`` in a frame of ``size``; the map has ``side`` cells."""
    original = (np.arange(n_out, dtype=np.float64) + 0.5) * (extent / n_out)
    frame = offset + original * (resized / extent)
    return np.clip(np.floor(frame * (side / size)).astype(np.int64), 0, side - 1)


def to_image(
    maps: np.ndarray, geometry: FrameGeometry, out_size: tuple[int, int] | None = None
) -> np.ndarray:
    """Resample ``[..., m, m]`` frame maps to ``[..., H_out, W_out]`` over the original image.

    ``out_size`` is ``(width, height)`` of the output grid; default the original size
    ``(W, H)``. Keeps the maps' dtype."""
    g = geometry
    width, height = out_size if out_size is not None else (g.width, g.height)
    side = maps.shape[-1]
    if maps.shape[-2] != side:
        raise ValueError(f"maps must be square, not {maps.shape[-2:]}")
    rows = cell_indices(height, g.height, g.h, g.top, g.size, side)
    cols = cell_indices(width, g.width, g.w, g.left, g.size, side)
    return np.take(np.take(maps, rows, axis=-2), cols, axis=-1)


def frame_to_image_point(x: float, y: float, geometry: FrameGeometry) -> tuple[float, float]:
    """The original-pixel coordinates (pixel centres at integers) of a frame pixel centre
    ``(x, y)`` (frame pixel indices)."""
    g = geometry
    ox = (x + 0.5 - g.left) * g.width / g.w - 0.5
    oy = (y + 0.5 - g.top) * g.height / g.h - 0.5
    return ox, oy
