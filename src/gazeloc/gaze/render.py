"""Fixation heatmaps rendered directly in the square frame (``gazeloc.gaze.heatmap``).

Reference semantics (docs/method.md#heatmap-rendering), in image pixels and seconds:

* a fixation ``[b, e]`` enters the window ``[t0, t1]`` iff ``e > t0`` and ``b ≤ t1``, with
  weight ``min(e, t1) − max(b, t0)`` (its duration inside the window; 0 for a fixation that
  starts exactly at ``t1`` or has zero duration);
* it adds ``weight × N(u; x, σx) · N(v; y, σy)`` (the normalised 2-D density, peak
  ``1 / (2π σx σy)``) at the integer pixel indices ``(u, v)`` of its displayed rectangle
  ``[xmin, xmax) × [ymin, ymax)`` (``*_shown_from_image``) and nothing outside it, with
  ``σx = sigma_degrees × angular_resolution_x_pixels_per_degree`` and ``σy`` likewise;
  positions are not filtered, so a fixation outside the rectangle or the image still adds
  the part of its Gaussian that falls inside;
* the sum ``M`` (``H × W``) is divided by its maximum, then mapped into the frame like an
  image (antialiased bilinear resize to ``w × h``, zero padding; :mod:`gazeloc.gaze.frame`).
  The mapped maximum may be slightly below 1 (the resize averages the peak with its
  neighbours; most where a rectangle's edge clips a Gaussian).

Deliberate differences from the reference (docs/method.md#heatmap-rendering): a displayed rectangle
that extends beyond the image is clipped to it (the reference's slice assignment would fail); a
window whose fixations add nothing (none in the window, only zero durations, or rectangles wholly
outside the image) gives an all-zero map and a logged warning, never NaN. A fixation far outside its
rectangle keeps its (tiny) tail inside it exactly as in the reference's float64 sum, so a window
holding only such fixations is normalised like the reference's.

How it is computed without any ``H × W`` array: the mask and the density are separable, so
``M = Gy · diag(weights) · Gxᵀ`` where column ``f`` of ``Gx`` (``W × F``) is fixation ``f``'s
horizontal profile ``1[xmin ≤ u < xmax] N(u; x, σx)`` (``Gy`` likewise), and the resize is
``Ry · M · Rxᵀ`` with Pillow's weight matrices (:func:`gazeloc.gaze.frame.resize_matrix`).
Hence the framed map is ``(Ry Gy) · diag(weights) · (Rx Gx)ᵀ``: one ``h × F`` by ``F × w``
product per window, with the framed profiles ``Rx Gx`` and ``Ry Gy`` computed once per
reading (:class:`FrameRenderer`), a few fixations at a time through a small cache-resident
buffer. Each profile is scaled to 1 at its largest value inside its rectangle (the scale
goes into the fixation's weight, in logs, so far tails never underflow) and evaluated only
within ``±TRUNCATE σ`` of that point (the neglected tail is below ``exp(−TRUNCATE²/2)`` ≈
4e-6 of the profile's peak). The maximum of ``M`` at original resolution, needed for the
normalisation, comes from the same profiles evaluated on demand: ``M`` on a coarse grid
(stride ``σ/4`` of the narrowest Gaussian, plus every rectangle edge), then a
full-resolution hill climb (``±stride`` patches) from the best coarse local maxima (within 5%
of the coarse maximum; a coarse grid point is within 1.6% of the peak it samples). The result
is never normalised by less than the framed maximum, so it never exceeds 1.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import polars as pl
from scipy import sparse

from gazeloc.gaze.frame import FrameGeometry, frame_geometry, resize_matrix

log = logging.getLogger(__name__)

TRUNCATE = 5.0
"""Gaussian profiles are evaluated within ±TRUNCATE σ of the fixation."""

FIXATION_COLUMNS: tuple[str, ...] = (
    "timestamp_start_fixation",
    "timestamp_end_fixation",
    "x_position",
    "y_position",
    "angular_resolution_x_pixels_per_degree",
    "angular_resolution_y_pixels_per_degree",
    "xmin_shown_from_image",
    "ymin_shown_from_image",
    "xmax_shown_from_image",
    "ymax_shown_from_image",
)
"""The ``fixations.csv`` columns a heatmap uses."""

_CANDIDATES = 8
_CANDIDATE_LEVEL = 0.95
_CLIMB_STEPS = 50


@dataclass(frozen=True)
class Fixations:
    """Fixation arrays in image pixels and seconds (rectangles clipped to the image)."""

    start: np.ndarray
    end: np.ndarray
    x: np.ndarray
    y: np.ndarray
    sigma_x: np.ndarray
    sigma_y: np.ndarray
    x_lo: np.ndarray
    x_hi: np.ndarray
    y_lo: np.ndarray
    y_hi: np.ndarray

    def __len__(self) -> int:
        return int(self.start.size)

    def weights(self, t0: float, t1: float) -> np.ndarray:
        """In-window durations (seconds) of every fixation for the window ``[t0, t1]``."""
        inside = (self.end > t0) & (self.start <= t1)
        w = np.minimum(self.end, t1) - np.maximum(self.start, t0)
        return np.where(inside, np.maximum(w, 0.0), 0.0)


def fixation_arrays(
    fixations: pl.DataFrame, *, image_width: int, image_height: int, sigma_degrees: float = 1.0
) -> Fixations:
    """Check a ``fixations.csv`` frame and turn it into :class:`Fixations`.

    Raises ``ValueError`` for a missing column, a null or non-finite value, a fixation that
    ends before it starts, a non-positive angular resolution or ``sigma_degrees``. Fixations
    outside the image and displayed rectangles beyond it are allowed (rectangles are clipped
    to the image; the REFLACX reader logs both as warnings).
    """
    if image_width < 1 or image_height < 1:
        raise ValueError(f"image size must be positive, not {image_width}x{image_height}")
    if not (sigma_degrees > 0 and math.isfinite(sigma_degrees)):
        raise ValueError(f"sigma_degrees must be a positive number, not {sigma_degrees}")
    missing = [c for c in FIXATION_COLUMNS if c not in fixations.columns]
    if missing:
        raise ValueError(f"fixations lack column(s) {', '.join(missing)}")
    col = {}
    for name in FIXATION_COLUMNS:
        values = fixations.get_column(name).cast(pl.Float64).to_numpy()
        bad = ~np.isfinite(values)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(f"fixation row {row}: {name} is missing or not finite")
        col[name] = values
    start, end = col["timestamp_start_fixation"], col["timestamp_end_fixation"]
    bad = end < start
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"fixation row {row} ends before it starts ({start[row]} > {end[row]}): "
            "negative duration"
        )
    for axis in ("x", "y"):
        res = col[f"angular_resolution_{axis}_pixels_per_degree"]
        bad = res <= 0
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"fixation row {row}: angular_resolution_{axis}_pixels_per_degree must be "
                f"positive, not {res[row]}"
            )
    # Rectangles are integers in REFLACX; round like the reference, then clip to the image.
    x_lo = np.clip(np.rint(col["xmin_shown_from_image"]), 0, image_width).astype(np.int64)
    x_hi = np.clip(np.rint(col["xmax_shown_from_image"]), 0, image_width).astype(np.int64)
    y_lo = np.clip(np.rint(col["ymin_shown_from_image"]), 0, image_height).astype(np.int64)
    y_hi = np.clip(np.rint(col["ymax_shown_from_image"]), 0, image_height).astype(np.int64)
    x, y = col["x_position"], col["y_position"]
    if log.isEnabledFor(logging.DEBUG):
        outside = (x < 0) | (x >= image_width) | (y < 0) | (y >= image_height)
        clipped = (
            (col["xmin_shown_from_image"] < 0)
            | (col["ymin_shown_from_image"] < 0)
            | (col["xmax_shown_from_image"] > image_width)
            | (col["ymax_shown_from_image"] > image_height)
        )
        log.debug(
            "%d fixations: %d outside the %dx%d image, %d rectangles clipped to it",
            x.size,
            int(outside.sum()),
            image_width,
            image_height,
            int(clipped.sum()),
        )
    return Fixations(
        start=start,
        end=end,
        x=x,
        y=y,
        sigma_x=sigma_degrees * col["angular_resolution_x_pixels_per_degree"],
        sigma_y=sigma_degrees * col["angular_resolution_y_pixels_per_degree"],
        x_lo=x_lo,
        x_hi=np.maximum(x_hi, x_lo),
        y_lo=y_lo,
        y_hi=np.maximum(y_hi, y_lo),
    )


class _Axis:
    """One axis of every fixation's separable Gaussian: 1-D profiles, peak-normalised.

    Profile ``f`` is ``N(u; pos_f, σ_f) / peak_f`` at the integer pixels ``u`` of
    ``[lo_f, hi_f)`` within ``±⌈TRUNCATE σ_f⌉`` of ``centre_f`` (zero elsewhere), where
    ``centre_f`` is the pixel of that range nearest to ``pos_f`` and ``peak_f`` the profile's
    largest value there (``log_peak``; ``-inf`` for an empty range). Normalising each profile
    by its own in-range peak keeps the far tail of a fixation outside its rectangle (or the
    image) representable; :class:`FrameRenderer` weighs fixations by ``exp(log_peak)``
    relative to the largest. ``framed`` (``F × n_out`` float32) holds the profiles mapped
    through Pillow's resize weights; full-resolution values are computed on demand
    (:meth:`values`), so no ``F × n_in`` array is kept.
    """

    def __init__(
        self, pos: np.ndarray, sigma: np.ndarray, lo: np.ndarray, hi: np.ndarray, n_in: int
    ) -> None:
        self.pos, self.sigma, self.n_in = pos, sigma, n_in
        nonempty = hi > lo
        self.centre = np.clip(np.rint(pos), lo, np.maximum(hi - 1, lo)).astype(np.int64)
        self.offset = self.centre - pos
        self.log_peak = np.full(pos.size, -np.inf)
        self.log_peak[nonempty] = -0.5 * (self.offset[nonempty] / sigma[nonempty]) ** 2 - np.log(
            math.sqrt(2.0 * math.pi) * sigma[nonempty]
        )
        self.half = np.ceil(TRUNCATE * sigma).astype(np.int64)
        self.a = np.maximum(lo, self.centre - self.half)
        self.b = np.minimum(hi, self.centre + self.half + 1)
        # centre = rint(pos): the profile is a shifted table shared by (sigma, offset)
        self.inside = nonempty & (pos >= lo - 0.5) & (pos <= hi - 0.5)

    def values(self, idx: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Profiles ``idx`` at pixels ``u``: ``len(idx) × len(u)`` float32."""
        pos, sigma = self.pos[idx, None], self.sigma[idx, None]
        d = (u[None, :] - pos) / sigma
        e = self.offset[idx, None] / sigma
        v = np.exp(-0.5 * (d * d - e * e))
        band = (u[None, :] >= self.a[idx, None]) & (u[None, :] < self.b[idx, None])
        return np.where(band, v, 0.0).astype(np.float32)

    def framed(self, n_out: int, block: int = 32) -> np.ndarray:
        """``F × n_out`` float32: every profile resized like an image axis.

        Profiles are written, ``block`` at a time, into a pixel-major buffer that stays in
        cache and pushed through the sparse resize matrix; fixations inside their range
        that share ``σ`` and the sub-pixel offset copy one table of values.
        """
        n = self.pos.size
        out = np.zeros((n, n_out), dtype=np.float32)
        resize = _resize32(self.n_in, n_out)
        buf = np.zeros((self.n_in, block), dtype=np.float32)
        tables: dict[tuple[float, float], np.ndarray] = {}
        rows = list(
            zip(
                self.a.tolist(),
                self.b.tolist(),
                self.centre.tolist(),
                self.half.tolist(),
                self.sigma.tolist(),
                self.offset.tolist(),
                self.inside.tolist(),
                self.pos.tolist(),
                strict=True,
            )
        )
        for first in range(0, n, block):
            chunk = rows[first : first + block]
            used = False
            for j, (a, b, c, h, s, o, inside, x) in enumerate(chunk):
                if b <= a:
                    continue
                used = True
                if inside:
                    table = tables.get((s, o))
                    if table is None:
                        k = (np.arange(-h, h + 1) + o) / s
                        table = np.exp(-0.5 * (k * k - (o / s) ** 2)).astype(np.float32)
                        tables[(s, o)] = table
                    buf[a:b, j] = table[a - c + h : b - c + h]
                else:  # outside its range: the tail inside, relative to its edge value
                    d = (np.arange(a, b) - x) / s
                    buf[a:b, j] = np.exp(-0.5 * (d * d - (o / s) ** 2))
            if used:
                out[first : first + len(chunk)] = (resize @ buf).T[: len(chunk)]
                buf.fill(0.0)
        return out


@lru_cache(maxsize=16)
def _resize32(n_in: int, n_out: int) -> sparse.csr_matrix:
    return resize_matrix(n_in, n_out).astype(np.float32)


class FrameRenderer:
    """Heatmaps of one reading's fixations for any number of time windows.

    Construction computes every fixation's full-resolution and framed 1-D profiles once;
    :meth:`render` then costs one small matrix product per window (module docstring).
    """

    def __init__(
        self,
        fixations: pl.DataFrame | Fixations,
        *,
        image_width: int,
        image_height: int,
        size: int = 512,
        sigma_degrees: float = 1.0,
        name: str = "",
    ) -> None:
        if isinstance(fixations, Fixations):
            fx = fixations
        else:
            fx = fixation_arrays(
                fixations,
                image_width=image_width,
                image_height=image_height,
                sigma_degrees=sigma_degrees,
            )
        self.fixations = fx
        self.width = image_width
        self.height = image_height
        self.geometry: FrameGeometry = frame_geometry(image_width, image_height, size)
        self.name = name
        g = self.geometry
        self._x = _Axis(fx.x, fx.sigma_x, fx.x_lo, fx.x_hi, g.width)
        self._y = _Axis(fx.y, fx.sigma_y, fx.y_lo, fx.y_hi, g.height)
        self._ax = self._x.framed(g.w)
        self._ay = self._y.framed(g.h)
        self._log_peak = self._x.log_peak + self._y.log_peak

    @property
    def size(self) -> int:
        return self.geometry.size

    def render(self, t0: float, t1: float, out: np.ndarray | None = None) -> np.ndarray:
        """The ``S × S`` float32 heatmap of the window ``[t0, t1]`` (seconds).

        All zeros, with a logged warning, when no fixation adds anything in the window.
        ``out`` (``S × S`` float32, C-contiguous) receives the map instead of a new array.
        """
        g = self.geometry
        if out is None:
            out = np.zeros((g.size, g.size), dtype=np.float32)
        elif out.shape != (g.size, g.size) or out.dtype != np.float32:
            raise ValueError(f"out must be a {g.size}x{g.size} float32 array")
        else:
            out.fill(0.0)
        self.render_resized(t0, t1, out=out[g.top : g.top + g.h, g.left : g.left + g.w])
        return out

    def render_resized(self, t0: float, t1: float, out: np.ndarray | None = None) -> np.ndarray:
        """The heatmap before padding: ``h × w`` float32 (see :meth:`render`); ``out``, if
        given, must be zero."""
        g = self.geometry
        if out is None:
            out = np.zeros((g.h, g.w), dtype=np.float32)
        idx, wi = self.scaled_weights(t0, t1)
        if idx.size:
            np.matmul((self._ay[idx] * wi[:, None]).T, self._ax[idx], out=out)
            peak = max(self.full_max(idx, wi), float(out.max()))
            if peak > 0:
                out *= np.float32(1.0 / peak)
                return out
            out.fill(0.0)
        where = f" of {self.name}" if self.name else ""
        log.warning(
            "window [%.3f, %.3f] s%s: no fixation adds to the heatmap "
            "(none in the window, zero durations or outside the displayed rectangles); "
            "all-zero map",
            t0,
            t1,
            where,
        )
        return out

    def scaled_weights(self, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
        """Fixations that add to the window and their relative weights (float32).

        Weight of fixation ``f``: in-window duration × its Gaussian's peak inside its
        rectangle, divided by the largest such product; fixations below ``1e-12`` of the
        largest are left out (their share of the normalised map is below that).
        """
        w = self.fixations.weights(t0, t1)
        candidates = np.flatnonzero((w > 0) & np.isfinite(self._log_peak))
        if not candidates.size:
            return candidates, np.zeros(0, dtype=np.float32)
        log_w = np.log(w[candidates]) + self._log_peak[candidates]
        scale = np.exp(log_w - log_w.max())
        keep = scale >= 1e-12
        return candidates[keep], scale[keep].astype(np.float32)

    def full_max(self, idx: np.ndarray, weights: np.ndarray) -> float:
        """Maximum of the full-resolution sum ``M`` of fixations ``idx`` with ``weights``.

        Coarse grid (stride a quarter of the smallest σ, plus every rectangle edge), then a
        full-resolution hill climb from the best coarse local maxima (module docstring).
        """
        fx = self.fixations
        smallest = float(min(fx.sigma_x[idx].min(), fx.sigma_y[idx].min()))
        step = max(1, int(smallest / 4))
        xs = _grid(self.width, step, fx.x_lo[idx], fx.x_hi[idx])
        ys = _grid(self.height, step, fx.y_lo[idx], fx.y_hi[idx])
        gy = self._y.values(idx, ys) * weights[:, None]
        coarse = gy.T @ self._x.values(idx, xs)
        top = float(coarse.max())
        if top <= 0:
            return 0.0
        best = top
        for j, i in _candidates(coarse, top):
            best = max(best, self._climb(idx, weights, int(xs[i]), int(ys[j]), step))
        return best

    def _climb(self, idx: np.ndarray, weights: np.ndarray, u: int, v: int, step: int) -> float:
        """Hill climb at full resolution: the max of ``±step`` patches around ``(u, v)``,
        re-centred until the max is inside the patch (or at the image's edge)."""
        width, height = self.width, self.height
        value = -np.inf
        for _ in range(_CLIMB_STEPS):
            u0, u1 = max(0, u - step), min(width, u + step + 1)
            v0, v1 = max(0, v - step), min(height, v + step + 1)
            gy = self._y.values(idx, np.arange(v0, v1)) * weights[:, None]
            patch = gy.T @ self._x.values(idx, np.arange(u0, u1))
            k = int(np.argmax(patch))
            pv, pu = divmod(k, patch.shape[1])
            value = max(value, float(patch[pv, pu]))
            nu, nv = u0 + pu, v0 + pv
            at_edge_u = (pu == 0 and u0 > 0) or (pu == patch.shape[1] - 1 and u1 < width)
            at_edge_v = (pv == 0 and v0 > 0) or (pv == patch.shape[0] - 1 and v1 < height)
            if not (at_edge_u or at_edge_v) or (nu, nv) == (u, v):
                break
            u, v = nu, nv
        return value


def _grid(n: int, step: int, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Coarse sample positions in ``[0, n)``: a regular grid plus the rectangle edges."""
    edges = np.concatenate([np.arange(0, n, step), [n - 1], lo, hi - 1])
    return np.unique(edges[(edges >= 0) & (edges < n)])


def _candidates(coarse: np.ndarray, top: float) -> list[tuple[int, int]]:
    """Coarse local maxima (3×3, ties kept) within ``_CANDIDATE_LEVEL`` of the top value,
    best first (at most ``_CANDIDATES``)."""
    jj, ii = np.nonzero(coarse >= _CANDIDATE_LEVEL * top)
    values = coarse[jj, ii]
    padded = np.pad(coarse, 1, constant_values=-np.inf)
    local = np.ones(jj.size, dtype=bool)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            if dy != 1 or dx != 1:
                local &= values >= padded[jj + dy, ii + dx]
    jj, ii, values = jj[local], ii[local], values[local]
    order = np.argsort(-values, kind="stable")[:_CANDIDATES]
    return list(zip(jj[order].tolist(), ii[order].tolist(), strict=True))


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse instead of returning it to the OS.

    Rendering allocates and frees arrays of a few MB per reading; by default glibc maps each
    one afresh and every page is faulted in again, which on some virtual machines costs as
    much as the arithmetic (``bench/RESULTS.md``). Raising the mmap and trim thresholds
    (``mallopt``) keeps the process's peak memory mapped for reuse. Process-wide, so only the
    batch commands call it. Returns whether it took effect (``False`` off glibc).
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        ok = libc.mallopt(m_mmap_threshold, 32 * 2**20) == 1
        return ok and libc.mallopt(m_trim_threshold, 2**30) == 1
    except (OSError, AttributeError):
        return False


def heatmap(
    fixations: pl.DataFrame,
    t0: float,
    t1: float,
    *,
    image_width: int,
    image_height: int,
    size: int = 512,
    sigma_degrees: float = 1.0,
) -> np.ndarray:
    """``size × size`` float32 heatmap of the fixations in the window ``[t0, t1]`` (seconds).

    ``fixations`` has REFLACX ``fixations.csv`` columns (positions and rectangles in image
    pixels of a ``image_width × image_height`` image). Rendered directly in the padded square
    frame; max-normalised at original resolution, so its maximum is 1 or slightly below; all
    zeros (and a logged warning) if no fixation falls in the window. Semantics and method in
    the module docstring. For several windows of one reading use :class:`FrameRenderer`.
    """
    if not (math.isfinite(t0) and math.isfinite(t1)) or t0 > t1:
        raise ValueError(f"invalid window [{t0}, {t1}]: need finite t0 <= t1 (seconds)")
    renderer = FrameRenderer(
        fixations,
        image_width=image_width,
        image_height=image_height,
        size=size,
        sigma_degrees=sigma_degrees,
    )
    return renderer.render(t0, t1)
