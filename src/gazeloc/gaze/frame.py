"""The square frame as linear maps: Pillow's antialiased bilinear resize as sparse matrices.

The square frame (docs/method.md#the-square-frame): an image of ``W × H`` pixels is resized
to ``w × h`` (``s = S / max(W, H)``, ``w = round(W·s)``, ``h = round(H·s)``) with antialiased
bilinear interpolation
(Pillow ``Image.resize(..., BILINEAR)``) and zero-padded to ``S × S`` at ``(left, top)``.

The resize is separable and linear: for an array ``A`` (``H × W``) Pillow returns
``Ry · A · Rxᵀ`` where ``Rx`` (``w × W``) and ``Ry`` (``h × H``) hold the normalised
triangle-filter weights of Pillow's ``precompute_coeffs`` (``Resample.c``): output pixel ``i``
has its centre at ``(i + 0.5)·scale`` in input pixels (``scale = n_in / n_out``), the filter
is ``max(0, 1 − |t|)`` stretched by ``max(scale, 1)``, input pixel ``u`` enters at
``t = (u − centre + 0.5) / max(scale, 1)``, and each row's weights are divided by their sum.
:func:`resize_matrix` builds these rows, so anything linear that is "rendered at original
resolution then resized" can be computed by pushing 1-D profiles through ``Rx`` and ``Ry``
instead of materialising the ``H × W`` array. (Pillow resizes mode ``F`` with double
weights and a float32 intermediate between its horizontal and vertical passes; the
difference is ~1e-7.)
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import sparse

from gazeloc.images.frame import FrameGeometry, frame_geometry

__all__ = ["FrameGeometry", "frame_geometry", "resize_cumulative", "resize_matrix"]


@lru_cache(maxsize=64)
def resize_matrix(n_in: int, n_out: int) -> sparse.csr_matrix:
    """Pillow's antialiased bilinear resize of one axis, ``n_in → n_out`` pixels.

    Returns a float64 CSR matrix of shape ``(n_out, n_in)`` whose row ``i`` holds the weights
    of output pixel ``i`` (rows sum to 1). Cached: do not modify the result in place.
    """
    if n_in < 1 or n_out < 1:
        raise ValueError(f"axis sizes must be positive, not {n_in} -> {n_out}")
    scale = n_in / n_out
    filterscale = max(scale, 1.0)
    support = filterscale  # bilinear support 1.0, stretched when downsampling
    ksize = math.ceil(support) * 2 + 1
    centre = (np.arange(n_out) + 0.5) * scale
    # Pillow rounds with a C (int) cast of x + 0.5: truncation towards zero.
    lo = np.maximum(np.trunc(centre - support + 0.5).astype(np.int64), 0)
    hi = np.minimum(np.trunc(centre + support + 0.5).astype(np.int64), n_in)
    u = lo[:, None] + np.arange(ksize)[None, :]
    valid = u < hi[:, None]
    weights = np.maximum(0.0, 1.0 - np.abs((u - centre[:, None] + 0.5) / filterscale))
    weights = np.where(valid, weights, 0.0)
    total = weights.sum(axis=1, keepdims=True)
    weights = np.divide(weights, total, out=np.zeros_like(weights), where=total != 0)
    keep = valid & (weights != 0)
    rows = np.broadcast_to(np.arange(n_out)[:, None], u.shape)[keep]
    matrix = sparse.csr_matrix((weights[keep], (rows, u[keep])), shape=(n_out, n_in))
    matrix.sum_duplicates()
    return matrix


@lru_cache(maxsize=16)
def resize_cumulative(n_in: int, n_out: int) -> np.ndarray:
    """Prefix sums of :func:`resize_matrix`'s columns: ``C[u] = Σ_{u' < u} R[:, u']``.

    Shape ``(n_in + 1, n_out)`` float64, so the resized indicator of the pixel run
    ``[u0, u1)`` is ``C[u1] − C[u0]``. Cached: do not modify the result in place.
    """
    dense = resize_matrix(n_in, n_out).toarray().T
    out = np.zeros((n_in + 1, n_out))
    np.cumsum(dense, axis=0, out=out[1:])
    return out


def place(resized: np.ndarray, geometry: FrameGeometry, dtype: type = np.float32) -> np.ndarray:
    """Zero-pad a ``h × w`` (or ``... × h × w``) array into the ``S × S`` frame."""
    g = geometry
    if resized.shape[-2:] != (g.h, g.w):
        raise ValueError(f"expected ... x {g.h} x {g.w}, got {resized.shape}")
    out = np.zeros((*resized.shape[:-2], g.size, g.size), dtype=dtype)
    out[..., g.top : g.top + g.h, g.left : g.left + g.w] = resized
    return out
