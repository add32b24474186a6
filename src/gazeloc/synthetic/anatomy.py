"""Synthetic frontal chest anatomy, and where findings and devices go in it.

All coordinates are pixels of the final generated image (x to the right, y down, origin at the
top-left corner). Sides are the patient's: on a frontal radiograph the patient's right lung is on
the image's left. Index 0 of every ``(right, left)`` pair is the patient's right.

The shape functions (:func:`lung_field`, :func:`heart_field`, ...) are vectorised over
broadcastable ``x``/``y`` arrays and return soft masks in [0, 1]; :mod:`gazeloc.synthetic.render`
draws with the same functions, so a finding's regions and its drawn pixels agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from gazeloc.synthetic.types import DEVICE_KINDS, FINDING_KINDS, Device, Finding, Region

RIGHT, LEFT = 0, 1
SIGN: tuple[float, float] = (-1.0, 1.0)
"""Image-x direction of each patient side (patient right = image left)."""

SIDE_NAMES: tuple[str, str] = ("right", "left")

Point = tuple[float, float]

LATERALIZED = frozenset(
    {
        "effusion",
        "pneumothorax",
        "nodule",
        "mass",
        "consolidation",
        "atelectasis",
        "edema",
        "groundglass",
        "interstitial",
        "rib_fracture",
        "hilar_enlargement",
        "emphysema",
    }
)
"""Finding kinds drawn on one side or both; the others are midline."""


@dataclass(frozen=True)
class Anatomy:
    """Geometry of one synthetic frontal chest radiograph (image pixels, patient sides).

    Pairs are ``(right, left)`` in patient sides; points are ``(x, y)``.
    """

    width: int
    height: int
    view: str  # "PA" or "AP"
    midline_x: float  # mediastinal midline (sternum, trachea) at the carina
    spine_x: float  # centre of the vertebral bodies; differs from midline_x when rotated
    spine_half_width: float
    rotation: float  # apparent axial rotation in [-1, 1] (0: straight)
    apex: tuple[Point, Point]  # lung apices
    lateral_x: tuple[float, float]  # inner lateral chest wall at its widest
    dome: tuple[Point, Point]  # tops of the hemidiaphragm domes
    costophrenic: tuple[Point, Point]  # lateral costophrenic angles
    cardiophrenic_y: tuple[float, float]  # medial end of each dome
    trachea_top: Point  # trachea at the top edge of the image
    carina: Point
    trachea_half_width: float
    hila: tuple[Point, Point]
    heart_ellipse: Region  # drawn cardiac ellipse (its lower part hides below the diaphragm)
    heart_shear: float  # x shift of the heart ellipse per pixel of y (tilted long axis)
    heart: Region  # the visible cardiac silhouette
    mediastinum_half_width: tuple[float, float]  # upper mediastinum, from midline_x
    aortic_knob: Region
    mediastinum: Region  # upper mediastinum (thoracic inlet to the heart)
    right_lung: Region
    left_lung: Region
    chest_box: tuple[int, int, int, int]  # xmin, ymin, xmax, ymax around lungs and heart
    rib_y0: float  # where the first posterior rib leaves the spine
    rib_spacing: float  # posterior rib pitch at the spine near the apex, pixels
    rib_growth: float  # relative growth of the pitch per rib
    rib_sag: float  # lateral droop of a posterior rib, pixels
    rib_drop: float  # descent of an anterior rib from the lateral wall to its medial end
    rib_height: float  # posterior rib thickness, pixels
    clavicles: tuple[tuple[Point, Point], tuple[Point, Point]]  # (medial, lateral) per side
    clavicle_half_thickness: float
    body_half_width: float  # soft tissue half width at the lung bases, from midline_x
    shoulder_y: float
    neck_half_width: float
    breasts: bool
    stomach_bubble: Region | None
    aeration: float  # air fraction of normal lung, 0..1
    ctr: float  # cardiothoracic ratio as drawn

    @property
    def lung_height(self) -> float:
        """Apex to costophrenic angle of the right lung, pixels."""
        return self.costophrenic[RIGHT][1] - self.apex[RIGHT][1]

    def half_thorax(self, side: int) -> float:
        """Midline to the inner lateral chest wall of one side, pixels."""
        return SIGN[side] * (self.lateral_x[side] - self.midline_x)

    def lung(self, side: int) -> Region:
        """The visible lung field of one side (0: right, 1: left)."""
        return self.right_lung if side == RIGHT else self.left_lung


# --- small numeric helpers ------------------------------------------------------------------


def _ramp(z: np.ndarray) -> np.ndarray:
    """Linear edge: 0 below -0.5, 1 above 0.5 (z in edge widths)."""
    return np.clip(z + 0.5, 0.0, 1.0)


def default_edge(anat: Anatomy) -> float:
    """Soft-edge width of organ outlines, pixels."""
    return max(1.0, 0.01 * anat.half_thorax(RIGHT))


def ellipse_field(region: Region, x: np.ndarray, y: np.ndarray, edge: float = 1.0) -> np.ndarray:
    """Soft mask of an ellipse: 1 inside, 0 outside, a ramp of about ``edge`` pixels."""
    dx = (x - region.cx) / region.rx
    dy = (y - region.cy) / region.ry
    r = np.sqrt(dx * dx + dy * dy)
    return _ramp((1.0 - r) * (min(region.rx, region.ry) / edge) - 0.5)


def fit_region(x: np.ndarray, y: np.ndarray, mask: np.ndarray, *, q: float = 0.995) -> Region:
    """Smallest axis-aligned ellipse (about the mask's box centre) holding a ``q`` share of it.

    ``x`` (1, n) and ``y`` (m, 1) are the pixel coordinates of a regular grid and ``mask`` (m, n)
    a soft mask on it; pixels above 0.5 count.
    """
    yy, xx = np.nonzero(mask > 0.5)
    if xx.size == 0:
        raise ValueError("empty mask")
    xv = np.asarray(x).ravel()
    yv = np.asarray(y).ravel()
    sx = float(xv[1] - xv[0]) if xv.size > 1 else 1.0
    sy = float(yv[1] - yv[0]) if yv.size > 1 else 1.0
    px, py = xv[xx], yv[yy]
    x0, x1 = float(px.min()) - sx / 2, float(px.max()) + sx / 2
    y0, y1 = float(py.min()) - sy / 2, float(py.max()) + sy / 2
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    hx, hy = max((x1 - x0) / 2, sx), max((y1 - y0) / 2, sy)
    r = np.sqrt(((px - cx) / hx) ** 2 + ((py - cy) / hy) ** 2)
    k = max(1.0, float(np.quantile(r, q)))
    return Region(cx, cy, hx * k, hy * k)


def clip_region(region: Region, width: int, height: int) -> Region:
    """Shrink an ellipse so that its box lies inside the image."""
    x0 = max(region.cx - region.rx, 0.0)
    x1 = min(region.cx + region.rx, width - 1.0)
    y0 = max(region.cy - region.ry, 0.0)
    y1 = min(region.cy + region.ry, height - 1.0)
    return Region((x0 + x1) / 2, (y0 + y1) / 2, max((x1 - x0) / 2, 1.0), max((y1 - y0) / 2, 1.0))


def grid(box: tuple[float, float, float, float], step: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates ``x`` (1, n) and ``y`` (m, 1) covering ``box`` every ``step``."""
    x0, y0, x1, y1 = box
    xs = np.arange(x0 + step / 2, x1, step, dtype=np.float64)
    ys = np.arange(y0 + step / 2, y1, step, dtype=np.float64)
    return xs[None, :], ys[:, None]


# --- organ shapes ----------------------------------------------------------------------------


def dome_y(anat: Anatomy, side: int, x: np.ndarray) -> np.ndarray:
    """y of the top of the hemidiaphragm of ``side`` at image x (pixels)."""
    sg, m = SIGN[side], anat.midline_x
    dx, dy = anat.dome[side]
    cpx, cpy = anat.costophrenic[side]
    ud, ucp = sg * (dx - m), sg * (cpx - m)
    u = sg * (x - m)
    lat = np.clip((u - ud) / (ucp - ud), 0.0, None)
    med = np.clip((ud - u) / ud, 0.0, 1.0)
    return dy + (cpy - dy) * lat**2.4 + (anat.cardiophrenic_y[side] - dy) * med**2


def diaphragm_y(anat: Anatomy, x: np.ndarray) -> np.ndarray:
    """y of the diaphragm across the whole image: the dome of the side that x lies on."""
    return np.where(x < anat.midline_x, dome_y(anat, RIGHT, x), dome_y(anat, LEFT, x))


def lung_walls(
    anat: Anatomy, side: int, y: np.ndarray, *, apex_dy: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Medial and lateral limits of the hemithorax of ``side`` at each y, as distances from the
    midline (pixels, positive towards that side's lateral wall)."""
    sg, m = SIGN[side], anat.midline_x
    ax, ay = anat.apex[side]
    cpy = anat.costophrenic[side][1]
    big_t = anat.half_thorax(side)
    ua = sg * (ax - m)
    um = 0.03 * big_t
    ay2 = ay + apex_dy
    t = np.clip((y - ay2) / (cpy - ay2), 0.0, 1.0)
    u_lat = ua + (big_t - ua) * np.sqrt(1.0 - (1.0 - t) ** 2.6) * (0.93 + 0.07 * t)
    u_med = ua - (ua - um) * np.sqrt(1.0 - (1.0 - t) ** 5)
    return u_med, u_lat


def lung_field(
    anat: Anatomy,
    side: int,
    x: np.ndarray,
    y: np.ndarray,
    edge: float | None = None,
    *,
    apex_dy: float = 0.0,
    shrink: np.ndarray | float = 0.0,
) -> np.ndarray:
    """Soft mask of the hemithorax air space of ``side`` (behind the heart and mediastinum too).

    ``apex_dy`` lowers the apex and ``shrink`` (pixels, broadcast with ``y``) pulls the lateral
    wall in: both describe a collapsed lung for a pneumothorax.
    """
    return lung_field_depth(anat, side, x, y, edge, apex_dy=apex_dy, shrink=shrink)[0]


def lung_field_depth(
    anat: Anatomy,
    side: int,
    x: np.ndarray,
    y: np.ndarray,
    edge: float | None = None,
    *,
    apex_dy: float = 0.0,
    shrink: np.ndarray | float = 0.0,
    recess: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`lung_field` and a relative lung depth in [0, 1] (thin near the lateral wall, the
    apex and the dome, where x-rays cross less lung).

    Cheapest on a grid (``x`` of shape (1, n), ``y`` of shape (m, 1)). With ``recess`` > 0
    the mask also holds that much of the lung seen through the upper abdomen
    below the dome (the posterior costophrenic recess), fading downwards.
    """
    e = default_edge(anat) if edge is None else edge
    inv = 1.0 / e
    sg, m = SIGN[side], anat.midline_x
    u = sg * (x - m)
    u_med, u_lat = lung_walls(anat, side, y, apex_dy=apex_dy)
    ay = anat.apex[side][1] + apex_dy
    ui = u * inv
    z_lat = ((u_lat - shrink) * inv) - ui  # distance to the lateral wall, in edges
    z_dome = (dome_y(anat, side, x) * inv) - (y * inv)
    z_apex = (y - ay) * inv
    r_lat = np.clip(z_lat + 0.5, 0.0, 1.0)
    walls = r_lat * np.clip(ui - (u_med * inv - 0.5), 0.0, 1.0) * np.clip(z_apex + 0.5, 0.0, 1.0)
    out = walls * np.clip(z_dome + 0.5, 0.0, 1.0)
    near = np.minimum(np.minimum(z_lat, z_dome), z_apex)
    depth = np.sqrt(np.clip(near * (e / (0.35 * anat.half_thorax(side))), 0.0, 1.0))
    if recess > 0.0:
        below = np.clip(-z_dome, 0.0, None)
        fade = np.exp(below * (-e / (0.07 * anat.lung_height)))
        medial = np.clip((u / anat.half_thorax(side) - 0.25) / 0.3, 0.0, 1.0) * recess
        out = out + r_lat * medial * np.clip(below - 0.5, 0.0, 1.0) * fade
    return out, depth


def heart_geometry(anat: Anatomy, scale: float = 1.0) -> tuple[Region, float]:
    """The drawn heart ellipse enlarged by ``scale`` (width), sitting on the diaphragm."""
    h = anat.heart_ellipse
    if scale == 1.0:
        return h, anat.heart_shear
    rx = h.rx * scale
    ry = h.ry * (1.0 + 0.45 * (scale - 1.0))
    bottom = h.cy + 0.3 * h.ry
    cx = h.cx + 0.3 * (rx - h.rx)
    return Region(cx, bottom - 0.3 * ry, rx, ry), anat.heart_shear


def heart_field(
    anat: Anatomy, x: np.ndarray, y: np.ndarray, edge: float | None = None, scale: float = 1.0
) -> np.ndarray:
    """Soft mask of the cardiac ellipse (including its part below the diaphragm)."""
    e = default_edge(anat) if edge is None else edge
    h, shear = heart_geometry(anat, scale)
    dx = (x - h.cx - shear * (y - h.cy)) / h.rx
    dy = (y - h.cy) / h.ry
    r = np.sqrt(dx * dx + dy * dy)
    return _ramp((1.0 - r) * (h.rx / e))


def mediastinum_edges(
    anat: Anatomy, y: np.ndarray, widen: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """x of the right and left upper mediastinal borders at each y (aortic knob included).

    ``widen`` (fraction of the half thorax) pushes both borders out between the thoracic inlet
    and the top of the heart.
    """
    m = anat.midline_x
    mr, ml = anat.mediastinum_half_width
    k = anat.aortic_knob
    knob = np.clip(np.cos(np.clip((y - k.cy) / k.ry, -1.0, 1.0) * (np.pi / 2)), 0.0, 1.0) ** 1.5
    knob = knob * (k.cx + k.rx - m - ml)
    xr = m - mr + np.zeros_like(y)
    xl = m + np.maximum(ml, ml + knob)
    if widen > 0.0:
        y0, y1 = widening_span(anat)
        s = np.clip((y - y0) / (y1 - y0), 0.0, 1.0)
        bump = np.clip(np.sin(np.pi * s), 0.0, None) ** 0.7 * widen * anat.half_thorax(RIGHT)
        xr = xr - 0.9 * bump
        xl = xl + bump
    return xr, xl


def widening_span(anat: Anatomy) -> tuple[float, float]:
    """y range over which a wide mediastinum bulges (thoracic inlet to the top of the heart)."""
    h = anat.heart_ellipse
    y0 = min(anat.apex[RIGHT][1], anat.apex[LEFT][1]) - 0.02 * anat.lung_height
    y1 = h.cy - 0.55 * h.ry
    return y0, y1


def mediastinum_field(
    anat: Anatomy, x: np.ndarray, y: np.ndarray, edge: float | None = None, widen: float = 0.0
) -> np.ndarray:
    """Soft mask of the upper mediastinum (a vertical band down to the heart)."""
    e = default_edge(anat) if edge is None else edge
    xr, xl = mediastinum_edges(anat, y, widen)
    bottom = mediastinum_bottom(anat)
    return _ramp((x - xr) / e) * _ramp((xl - x) / e) * _ramp((bottom - y) / (4 * e))


def mediastinum_bottom(anat: Anatomy) -> float:
    """y where the upper mediastinum gives way to the heart."""
    h = anat.heart_ellipse
    return h.cy - 0.6 * h.ry


def cardiomegaly_scale(severity: float) -> float:
    """Heart width factor of a cardiomegaly of ``severity``."""
    return 1.12 + 0.42 * severity


def mediastinal_widening(severity: float) -> float:
    """Border displacement of a wide mediastinum, as a fraction of the half thorax."""
    return 0.08 + 0.22 * severity


def emphysema_anatomy(anat: Anatomy, severity: float) -> Anatomy:
    """The same chest hyperinflated: lower, flatter hemidiaphragms."""
    lh = anat.lung_height
    f = 0.45 + 0.55 * severity
    domes = []
    cps = []
    cards = []
    for s in (RIGHT, LEFT):
        dx, dy = anat.dome[s]
        cpx, cpy = anat.costophrenic[s]
        ncp = cpy + 0.07 * f * lh
        depth = (cpy - dy) * (1.0 - 0.65 * f)
        domes.append((dx, ncp - depth))
        cps.append((cpx, ncp))
        cards.append(anat.cardiophrenic_y[s] + (ncp - depth - dy))
    return replace(
        anat,
        dome=(domes[0], domes[1]),
        costophrenic=(cps[0], cps[1]),
        cardiophrenic_y=(cards[0], cards[1]),
    )


# --- ribs ------------------------------------------------------------------------------------


def _rib_index(anat: Anatomy, yy: np.ndarray) -> np.ndarray:
    """Rib phase (0 = first rib centre) of a height ``yy`` measured at the spine."""
    g = anat.rib_growth
    z = np.clip((yy - anat.rib_y0) / anat.rib_spacing, -3.0, None)
    return (np.sqrt(np.clip(1.0 + 4.0 * g * z, 1e-6, None)) - 1.0) / (2.0 * g)


def _rib_offset(anat: Anatomy, k: np.ndarray | float) -> np.ndarray | float:
    """Height at the spine of rib phase ``k`` (inverse of :func:`_rib_index`)."""
    return anat.rib_y0 + anat.rib_spacing * (k + anat.rib_growth * k * k)


def posterior_rib_sag(anat: Anatomy, side: int, x: np.ndarray) -> np.ndarray:
    """Vertical offset of a posterior rib at image x relative to where it leaves the spine."""
    sg = SIGN[side]
    big_t = anat.half_thorax(side)
    v = np.clip(sg * (x - anat.spine_x) / big_t, 0.0, 1.2)
    return anat.rib_sag * (2.6 * v**2.5 - 1.2 * v)


def rib_phase(anat: Anatomy, side: int, x: np.ndarray, y: np.ndarray, anterior: bool) -> np.ndarray:
    """Continuous rib number at (x, y): integers are rib centres (0 = first rib).

    Posterior ribs leave the spine and droop laterally; anterior ribs run from the lateral wall
    down and medially. Rib k's anterior part starts at the wall where its posterior part ends.
    """
    if not anterior:
        return _rib_index(anat, y - posterior_rib_sag(anat, side, x))
    sg = SIGN[side]
    big_t = anat.half_thorax(side)
    v = np.clip(sg * (x - anat.midline_x) / big_t, 0.0, 1.2)
    wall_sag = anat.rib_sag * 1.4
    drop = anat.rib_drop * np.clip(1.0 - v, 0.0, None) ** 1.1
    return _rib_index(anat, y - drop - wall_sag)


def rib_point(anat: Anatomy, side: int, k: float, v: float, anterior: bool) -> Point:
    """(x, y) on the centre line of rib ``k`` at lateral fraction ``v`` of the half thorax."""
    sg = SIGN[side]
    big_t = anat.half_thorax(side)
    if anterior:
        x = anat.midline_x + sg * v * big_t
        y = float(_rib_offset(anat, k)) + anat.rib_sag * 1.4
        y += anat.rib_drop * max(1.0 - v, 0.0) ** 1.1
        return x, y
    x = anat.spine_x + sg * v * big_t
    y = float(_rib_offset(anat, k)) + float(posterior_rib_sag(anat, side, np.asarray(x)))
    return x, y


# --- sampling the anatomy --------------------------------------------------------------------


def sample_anatomy(
    width: int, height: int, rng: np.random.Generator, *, view: str = "PA"
) -> Anatomy:
    """A random plausible adult chest in an image of ``width`` x ``height`` pixels.

    ``view`` is "PA" or "AP" (AP: larger heart, higher clavicles, shallower inspiration).
    """
    if view not in ("PA", "AP"):
        raise ValueError(f"view must be 'PA' or 'AP', not {view!r}")
    w, h = float(width), float(height)
    ap = view == "AP"
    lh = h * rng.uniform(0.56, 0.66) * (0.93 if ap else 1.0)
    big_t = min(lh * rng.uniform(0.6, 0.72), 0.42 * w)
    lh = min(lh, big_t / 0.52)
    apex_y = h * rng.uniform(0.05, 0.11) + (0.025 * h if ap else 0.0)
    mid = w / 2 + rng.normal(0.0, 0.012 * w)
    rotation = float(np.clip(rng.normal(0.0, 0.35 if not ap else 0.5), -1.0, 1.0))
    t_r = big_t * (1.0 - 0.04 * rotation)
    t_l = big_t * (1.0 + 0.04 * rotation)
    spine_x = mid - 0.07 * rotation * big_t
    spine_hw = big_t * rng.uniform(0.13, 0.16)

    apex_l_y = apex_y + rng.normal(0.0, 0.01 * lh)
    apex = (
        (mid - rng.uniform(0.40, 0.48) * t_r, apex_y),
        (mid + rng.uniform(0.40, 0.48) * t_l, apex_l_y),
    )
    cp_r = apex_y + lh
    cp_l = cp_r + rng.uniform(0.0, 0.03) * lh
    depth_r = rng.uniform(0.11, 0.17) * lh
    dome_r_y = cp_r - depth_r
    if rng.random() < 0.88:
        dome_l_y = dome_r_y + rng.uniform(0.01, 0.06) * lh
    else:
        dome_l_y = dome_r_y - rng.uniform(0.0, 0.03) * lh
    dome_l_y = min(dome_l_y, cp_l - 0.08 * lh)
    dome = (
        (mid - rng.uniform(0.45, 0.58) * t_r, dome_r_y),
        (mid + rng.uniform(0.48, 0.60) * t_l, dome_l_y),
    )
    costophrenic = ((mid - t_r, cp_r), (mid + t_l, cp_l))
    card_y = (
        dome_r_y + rng.uniform(0.1, 0.3) * (cp_r - dome_r_y),
        dome_l_y + rng.uniform(0.05, 0.2) * (cp_l - dome_l_y),
    )

    carina = (mid + rng.normal(0.0, 0.01 * big_t), apex_y + rng.uniform(0.25, 0.31) * lh)
    trachea_top = (mid + rng.normal(0.0, 0.025 * big_t), 0.0)
    trachea_hw = rng.uniform(0.05, 0.065) * big_t
    hila = (
        (mid - rng.uniform(0.30, 0.37) * t_r, carina[1] + rng.uniform(0.07, 0.12) * lh),
        (mid + rng.uniform(0.30, 0.37) * t_l, carina[1] + rng.uniform(0.03, 0.08) * lh),
    )

    ctr = rng.uniform(0.40, 0.49) * (1.1 if ap else 1.0)
    hw = ctr * (t_r + t_l)
    frac_right = rng.uniform(0.28, 0.36)
    shear = rng.uniform(0.15, 0.32)
    heart_bottom = max(dome_r_y, dome_l_y) + 0.03 * lh
    heart_top = carina[1] + rng.uniform(0.08, 0.13) * lh
    ry = (heart_bottom - heart_top) / 1.3
    hcy = heart_bottom - 0.3 * ry
    # the sheared ellipse is widest at its centre row: borders there are cx -/+ rx
    heart_ellipse = Region(mid - frac_right * hw + hw / 2, hcy, hw / 2, ry)

    med_hw = (rng.uniform(0.15, 0.2) * big_t, rng.uniform(0.15, 0.2) * big_t)
    knob_r = rng.uniform(0.07, 0.1) * big_t
    knob = Region(
        mid + med_hw[1] + rng.uniform(0.02, 0.06) * big_t,
        apex_y + rng.uniform(0.2, 0.25) * lh,
        knob_r,
        knob_r * 1.8,
    )

    rib_growth = 0.025
    rib_y0 = apex_y - 0.05 * lh
    rib_spacing = (dome_r_y + 0.02 * lh - rib_y0) / (9.0 + rib_growth * 81.0)
    rib_sag = rng.uniform(1.0, 1.3) * rib_spacing * (0.8 if ap else 1.0)
    rib_drop = rng.uniform(2.6, 3.4) * rib_spacing * (0.8 if ap else 1.0)
    rib_height = rng.uniform(0.42, 0.5) * rib_spacing

    if ap:
        clav_med_y = apex_y + rng.uniform(0.0, 0.05) * lh
        clav_rise = rng.uniform(-0.02, 0.03) * lh
    else:
        clav_med_y = apex_y + rng.uniform(0.09, 0.15) * lh
        clav_rise = rng.uniform(0.05, 0.1) * lh
    clav_med_dx = rng.uniform(0.09, 0.13) * big_t
    clavicles = tuple(
        (
            (mid + SIGN[s] * clav_med_dx, clav_med_y + rng.normal(0.0, 0.01 * lh)),
            (
                mid + SIGN[s] * rng.uniform(1.0, 1.12) * (t_r, t_l)[s],
                clav_med_y - clav_rise + rng.normal(0.0, 0.015 * lh),
            ),
        )
        for s in (RIGHT, LEFT)
    )
    soft = rng.uniform(0.06, 0.24)
    body_hw = big_t * (1.06 + soft)
    shoulder_y = apex_y + rng.uniform(0.0, 0.08) * lh
    neck_hw = big_t * rng.uniform(0.28, 0.36)
    breasts = bool(rng.random() < 0.45)
    bubble = None
    if rng.random() < 0.75:
        bx = mid + rng.uniform(0.35, 0.6) * t_l
        bubble = Region(
            bx,
            float(_dome_height(dome[LEFT], costophrenic[LEFT], card_y[LEFT], mid, bx))
            + rng.uniform(0.05, 0.09) * lh,
            rng.uniform(0.1, 0.18) * big_t,
            rng.uniform(0.04, 0.07) * lh,
        )

    anat = Anatomy(
        width=width,
        height=height,
        view=view,
        midline_x=mid,
        spine_x=spine_x,
        spine_half_width=spine_hw,
        rotation=rotation,
        apex=apex,
        lateral_x=(mid - t_r, mid + t_l),
        dome=dome,
        costophrenic=costophrenic,
        cardiophrenic_y=card_y,
        trachea_top=trachea_top,
        carina=carina,
        trachea_half_width=trachea_hw,
        hila=hila,
        heart_ellipse=heart_ellipse,
        heart_shear=shear,
        heart=heart_ellipse,
        mediastinum_half_width=med_hw,
        aortic_knob=knob,
        mediastinum=heart_ellipse,
        right_lung=heart_ellipse,
        left_lung=heart_ellipse,
        chest_box=(0, 0, width, height),
        rib_y0=rib_y0,
        rib_spacing=rib_spacing,
        rib_growth=rib_growth,
        rib_sag=rib_sag,
        rib_drop=rib_drop,
        rib_height=rib_height,
        clavicles=clavicles,  # type: ignore[arg-type]
        clavicle_half_thickness=rng.uniform(0.022, 0.03) * lh,
        body_half_width=body_hw,
        shoulder_y=shoulder_y,
        neck_half_width=neck_hw,
        breasts=breasts,
        stomach_bubble=bubble,
        aeration=rng.uniform(0.72, 0.82) * (0.95 if ap else 1.0),
        ctr=ctr,
    )
    return _with_regions(anat)


def _dome_height(dome: Point, cp: Point, card: float, mid: float, x: float) -> float:
    """Dome height at x before an :class:`Anatomy` exists (same curve as :func:`dome_y`)."""
    sg = 1.0 if dome[0] > mid else -1.0
    ud, ucp, u = sg * (dome[0] - mid), sg * (cp[0] - mid), sg * (x - mid)
    lat = max((u - ud) / (ucp - ud), 0.0)
    med = min(max((ud - u) / ud, 0.0), 1.0)
    return dome[1] + (cp[1] - dome[1]) * lat**2.4 + (card - dome[1]) * med**2


def _coarse_step(anat: Anatomy) -> float:
    return max(anat.width, anat.height) / 160.0


def visible_lung(anat: Anatomy, side: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Lung field of ``side`` not hidden by the heart or the mediastinum."""
    lung = lung_field(anat, side, x, y)
    return lung * (1.0 - heart_field(anat, x, y)) * (1.0 - mediastinum_field(anat, x, y))


def heart_silhouette(anat: Anatomy, x: np.ndarray, y: np.ndarray, scale: float = 1.0):
    """Visible part of the (possibly enlarged) heart: the cardiac ellipse above the diaphragm."""
    e = default_edge(anat)
    return heart_field(anat, x, y, scale=scale) * _ramp((diaphragm_y(anat, x) + e - y) / e)


def _with_regions(anat: Anatomy) -> Anatomy:
    """Fill in the derived regions (lungs, heart, mediastinum, chest box) of ``anat``."""
    x, y = grid((0.0, 0.0, float(anat.width), float(anat.height)), _coarse_step(anat))
    lungs = tuple(fit_region(x, y, visible_lung(anat, s, x, y)) for s in (RIGHT, LEFT))
    heart = fit_region(x, y, heart_silhouette(anat, x, y))
    mediastinum = fit_region(x, y, _upper_mediastinum(anat, x, y, 0.0))
    x0 = min(lungs[0].cx - lungs[0].rx, anat.lateral_x[RIGHT])
    x1 = max(lungs[1].cx + lungs[1].rx, anat.lateral_x[LEFT])
    y0 = min(anat.apex[RIGHT][1], anat.apex[LEFT][1])
    y1 = max(anat.costophrenic[RIGHT][1], anat.costophrenic[LEFT][1], heart.cy + heart.ry)
    box = (
        max(math.floor(x0), 0),
        max(math.floor(y0), 0),
        min(math.ceil(x1), anat.width - 1),
        min(math.ceil(y1), anat.height - 1),
    )
    return replace(
        anat,
        right_lung=clip_region(lungs[0], anat.width, anat.height),
        left_lung=clip_region(lungs[1], anat.width, anat.height),
        heart=clip_region(heart, anat.width, anat.height),
        mediastinum=clip_region(mediastinum, anat.width, anat.height),
        chest_box=box,
    )


def _upper_mediastinum(anat: Anatomy, x: np.ndarray, y: np.ndarray, widen: float) -> np.ndarray:
    """Mediastinum between the thoracic inlet and the top of the heart (where lungs flank it)."""
    y0, y1 = widening_span(anat)
    band = ((y >= y0) & (y <= y1)).astype(np.float64)
    return mediastinum_field(anat, x, y, widen=widen) * band


# --- findings --------------------------------------------------------------------------------

_SIZE_BANDS: dict[str, tuple[float, float]] = {
    "small": (0.0, 0.34),
    "moderate": (0.34, 0.67),
    "large": (0.67, 1.0),
}


def sample_severity(rng: np.random.Generator) -> float:
    """Severity in (0, 1]: mostly clear findings, with a subtle tail."""
    if rng.random() < 0.2:
        return float(rng.uniform(0.05, 0.3))
    return float(np.clip(rng.beta(2.4, 1.6), 0.05, 1.0))


def _sample_size(rng: np.random.Generator, severity: float) -> str:
    v = severity + rng.normal(0.0, 0.15)
    return "small" if v < 0.4 else ("moderate" if v < 0.72 else "large")


def size_extent(size: str, severity: float, lo: float, hi: float) -> float:
    """A value between ``lo`` and ``hi`` for the ``size`` band, placed in it by ``severity``."""
    a, b = _SIZE_BANDS[size]
    f = a + (b - a) * min(max(severity, 0.0), 1.0)
    return lo + (hi - lo) * f


def _zone_of(anat: Anatomy, side: int, y: float) -> str:
    ay = anat.apex[side][1]
    t = (y - ay) / (anat.costophrenic[side][1] - ay)
    return "upper" if t < 0.36 else ("middle" if t < 0.64 else "lower")


def effusion_level(anat: Anatomy, size: str, severity: float) -> float:
    """Height of an effusion's meniscus above the costophrenic angle, pixels."""
    return size_extent(size, severity, 0.05, 0.62) * anat.lung_height


def effusion_field(
    anat: Anatomy, side: int, size: str, severity: float, x: np.ndarray, y: np.ndarray
) -> np.ndarray:
    """Pleural fluid of ``side``: the hemithorax below a meniscus that climbs the lateral wall."""
    lh = anat.lung_height
    cpy = anat.costophrenic[side][1]
    level = cpy - effusion_level(anat, size, severity)
    big_t = anat.half_thorax(side)
    u = SIGN[side] * (x - anat.midline_x)
    climb = (0.06 + 0.08 * severity) * lh
    meniscus = level - climb * np.clip(u / big_t, 0.0, 1.0) ** 2.2
    # the fluid thins out upwards; behind the heart its upper edge is blurred
    soft = (0.012 + 0.02 * severity) * lh * (1.0 + 5.0 * np.clip(1.0 - u / (0.5 * big_t), 0, 1))
    return lung_field(anat, side, x, y) * _ramp((y - meniscus) / soft)


def pneumothorax_params(anat: Anatomy, size: str, severity: float) -> tuple[float, float]:
    """Gap between the collapsed lung and the chest wall (pixels) and how far down it reaches
    (fraction of the lung height)."""
    gap = size_extent(size, severity, 0.05, 0.42) * anat.half_thorax(RIGHT)
    reach = size_extent(size, severity, 0.3, 1.05)
    return gap, reach


def collapsed_lung(
    anat: Anatomy, side: int, size: str, severity: float, x: np.ndarray, y: np.ndarray
) -> np.ndarray:
    """Soft mask of the lung of ``side`` retracted by a pneumothorax."""
    gap, reach = pneumothorax_params(anat, size, severity)
    ay = anat.apex[side][1]
    t = (y - ay) / anat.lung_height
    shrink = gap * np.clip((reach - t) / (0.55 * reach), 0.0, 1.0) ** 0.7
    return lung_field(anat, side, x, y, apex_dy=0.8 * gap, shrink=shrink)


def pneumothorax_field(
    anat: Anatomy, side: int, size: str, severity: float, x: np.ndarray, y: np.ndarray
) -> np.ndarray:
    """Soft mask of the pleural air of a pneumothorax (lung field minus the collapsed lung)."""
    lung = lung_field(anat, side, x, y)
    return np.clip(lung - collapsed_lung(anat, side, size, severity, x, y), 0.0, 1.0)


def hiatal_hernia_region(anat: Anatomy, size: str, severity: float) -> Region:
    """Round retrocardiac hernia just above the diaphragm, left of the spine."""
    h = anat.heart_ellipse
    r = size_extent(size, severity, 0.16, 0.34) * h.rx
    dia = float(diaphragm_y(anat, np.asarray(anat.midline_x + 0.15 * h.rx)))
    return Region(anat.midline_x + 0.12 * h.rx + 0.3 * r, dia - 0.85 * r, r, r)


def place_finding(
    kind: str,
    anatomy: Anatomy,
    rng: np.random.Generator,
    *,
    side: str | None = None,
    severity: float | None = None,
    min_severity: float = 0.0,
) -> Finding:
    """Choose where and how large one finding of ``kind`` is in ``anatomy``.

    ``side`` is "right", "left" or "bilateral" (patient sides; ignored for midline kinds) and
    ``severity`` in (0, 1]; both are sampled when None. A sampled severity ``s`` becomes
    ``min_severity + (1 - min_severity) * s``: 0 keeps the realistic distribution (mostly clear
    findings, a subtle tail); larger values make every finding larger, denser and more surely
    reported (an easier dataset). The returned regions are ellipses in
    image pixels that hold the pixels :func:`gazeloc.synthetic.render.render_frontal` changes.
    """
    if kind not in FINDING_KINDS:
        raise ValueError(f"unknown finding kind {kind!r}")
    if not 0.0 <= min_severity < 1.0:
        raise ValueError(f"min_severity must be in [0, 1), not {min_severity}")
    if severity is None:
        sev = min_severity + (1.0 - min_severity) * sample_severity(rng)
    else:
        sev = float(severity)
    if not 0.0 < sev <= 1.0:
        raise ValueError(f"severity must be in (0, 1], not {sev}")
    size = _sample_size(rng, sev)
    if kind not in LATERALIZED:
        return _place_midline(kind, anatomy, rng, sev, size)
    if side is None:
        side = _sample_side(kind, rng)
    if side not in ("right", "left", "bilateral"):
        raise ValueError(f"side must be 'right', 'left' or 'bilateral', not {side!r}")
    sides = (RIGHT, LEFT) if side == "bilateral" else (SIDE_NAMES.index(side),)
    regions: list[Region] = []
    zones: list[str] = []
    for s in sides:
        region, zone = _place_one_side(kind, anatomy, rng, s, sev, size)
        regions.append(clip_region(region, anatomy.width, anatomy.height))
        zones.append(zone)
    zone = zones[0] if len(set(zones)) == 1 else "diffuse"
    return Finding(kind, side, zone, tuple(regions), sev, size)


def _sample_side(kind: str, rng: np.random.Generator) -> str:
    p_bilateral = {
        "edema": 0.95,
        "interstitial": 0.9,
        "emphysema": 0.95,
        "effusion": 0.25,
        "groundglass": 0.3,
        "hilar_enlargement": 0.35,
        "consolidation": 0.1,
        "atelectasis": 0.15,
        "nodule": 0.05,
    }.get(kind, 0.0)
    if rng.random() < p_bilateral:
        return "bilateral"
    return "right" if rng.random() < 0.52 else "left"


def _place_midline(
    kind: str, anat: Anatomy, rng: np.random.Generator, sev: float, size: str
) -> Finding:
    x, y = grid((0.0, 0.0, float(anat.width), float(anat.height)), _coarse_step(anat) / 1.5)
    if kind == "cardiomegaly":
        region = fit_region(x, y, heart_silhouette(anat, x, y, cardiomegaly_scale(sev)))
        zone = "cardiac"
    elif kind == "wide_mediastinum":
        region = fit_region(x, y, _upper_mediastinum(anat, x, y, mediastinal_widening(sev)))
        zone = "mediastinal"
    else:  # hiatal_hernia
        region = hiatal_hernia_region(anat, size, sev)
        region = Region(region.cx, region.cy, region.rx * 1.06, region.ry * 1.06)
        zone = "retrocardiac"
    region = clip_region(region, anat.width, anat.height)
    return Finding(kind, "midline", zone, (region,), sev, size)


def _lung_points(
    anat: Anatomy, side: int, step: float, weight: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lung = anat.lung(side)
    x, y = grid(lung.box, step)
    m = visible_lung(anat, side, x, y)
    return x, y, m if weight is None else m * weight


def _pick_in_lung(
    anat: Anatomy,
    side: int,
    rng: np.random.Generator,
    radius: float,
    zone_weights: tuple[float, float, float] = (1.0, 1.0, 1.0),
    lateral_bias: float = 0.0,
) -> Point:
    """A random point of the visible lung at least ``radius`` from its edges."""
    step = max(radius / 2.0, _coarse_step(anat) / 2.0)
    x, y, m = _lung_points(anat, side, step)
    ay = anat.apex[side][1]
    t = (y - ay) / anat.lung_height
    w = np.where(t < 0.36, zone_weights[0], np.where(t < 0.64, zone_weights[1], zone_weights[2]))
    u = SIGN[side] * (x - anat.midline_x) / anat.half_thorax(side)
    w = w * np.clip(1.0 + lateral_bias * (u - 0.5), 0.05, None)
    ok = m > 0.99
    # keep points whose surrounding circle stays in the visible lung
    ang = np.linspace(0.0, 2 * np.pi, 12, endpoint=False)
    yy, xx = np.nonzero(ok)
    px, py = x[0, xx], y[yy, 0]
    cx = px[:, None] + radius * np.cos(ang)[None, :]
    cy = py[:, None] + radius * np.sin(ang)[None, :]
    inside = visible_lung(anat, side, cx, cy).min(axis=1) > 0.5
    px, py = px[inside], py[inside]
    weights = w[yy[inside], xx[inside]]
    if px.size == 0:
        lung = anat.lung(side)
        return lung.cx, lung.cy
    i = rng.choice(px.size, p=weights / weights.sum())
    jitter = rng.uniform(-0.5, 0.5, size=2) * step
    return float(px[i] + jitter[0]), float(py[i] + jitter[1])


def _place_one_side(
    kind: str, anat: Anatomy, rng: np.random.Generator, side: int, sev: float, size: str
) -> tuple[Region, str]:
    sg = SIGN[side]
    big_t = anat.half_thorax(side)
    lh = anat.lung_height
    lung = anat.lung(side)
    hx, hy = anat.hila[side]
    if kind == "nodule":
        r = size_extent(size, sev, 0.025, 0.09) * big_t
        cx, cy = _pick_in_lung(anat, side, rng, r * 1.2, (1.3, 1.0, 0.9), 0.6)
        return Region(cx, cy, r * 1.15, r * 1.15), _zone_of(anat, side, cy)
    if kind == "mass":
        r = size_extent(size, sev, 0.1, 0.24) * big_t
        if rng.random() < 0.3:
            cx, cy = hx + sg * 0.6 * r, hy - 0.1 * r
            return Region(cx, cy, r * 1.3, r * 1.3), "perihilar"
        cx, cy = _pick_in_lung(anat, side, rng, r * 0.9, (1.5, 1.0, 0.8), 0.3)
        return Region(cx, cy, r * 1.3, r * 1.3), _zone_of(anat, side, cy)
    if kind in ("consolidation", "groundglass"):
        zone_w = (0.8, 1.0, 1.6) if kind == "consolidation" else (0.7, 1.0, 1.3)
        lo, hi = (0.18, 0.5) if kind == "consolidation" else (0.15, 0.45)
        rx = size_extent(size, sev, lo, hi) * big_t
        ry = rx * rng.uniform(0.7, 1.2) * lh / (2.0 * big_t)
        cx, cy = _pick_in_lung(anat, side, rng, 0.45 * min(rx, ry), zone_w, 0.2)
        return _fit_in_lung(anat, side, Region(cx, cy, rx, ry)), _zone_of(anat, side, cy)
    if kind == "atelectasis":
        if rng.random() < 0.65:  # plate-like band, usually basal
            rx = size_extent(size, sev, 0.2, 0.45) * big_t
            ry = rx * rng.uniform(0.12, 0.2)
            cx, cy = _pick_in_lung(anat, side, rng, ry * 1.2, (0.15, 0.6, 2.0), 0.0)
            return _fit_in_lung(anat, side, Region(cx, cy, rx, ry)), "basal"
        # lobar collapse: dense wedge against the mediastinum (upper) or the heart (lower)
        upper = rng.random() < 0.35
        rx = size_extent(size, sev, 0.22, 0.4) * big_t
        ry = size_extent(size, sev, 0.12, 0.24) * lh
        cx = anat.midline_x + sg * (anat.mediastinum_half_width[side] + 0.8 * rx)
        if upper:
            cy = anat.apex[side][1] + 0.22 * lh
            zone = "upper"
        else:
            cx = anat.midline_x + sg * (0.15 * big_t + 0.8 * rx)
            cy = anat.dome[side][1] - 0.6 * ry
            zone = "retrocardiac" if side == LEFT else "lower"
        return _fit_in_lung(anat, side, Region(cx, cy, rx, ry), visible=False), zone
    if kind == "edema":
        rx = size_extent(size, sev, 0.35, 0.6) * big_t
        ry = size_extent(size, sev, 0.22, 0.4) * lh
        cx = hx + sg * 0.35 * rx
        cy = hy + 0.15 * ry
        return _fit_in_lung(anat, side, Region(cx, cy, rx, ry)), "perihilar"
    if kind == "interstitial":
        rx = size_extent(size, sev, 0.3, 0.5) * big_t
        ry = size_extent(size, sev, 0.16, 0.32) * lh
        cx = anat.midline_x + sg * (big_t - 0.85 * rx)
        cy = anat.dome[side][1] - 0.55 * ry
        return _fit_in_lung(anat, side, Region(cx, cy, rx, ry)), "basal"
    if kind == "hilar_enlargement":
        r = size_extent(size, sev, 0.12, 0.22) * big_t
        return Region(hx + sg * 0.35 * r, hy, r * 1.3, r * 1.45), "perihilar"
    if kind == "rib_fracture":
        anterior = rng.random() < 0.25
        k = float(rng.integers(3, 9))
        v = rng.uniform(0.6, 0.92) if not anterior else rng.uniform(0.55, 0.85)
        px, py = rib_point(anat, side, k, v, anterior)
        r = anat.rib_height * rng.uniform(1.1, 1.5)
        return Region(px, py, r, r), "rib"
    if kind == "effusion":
        x, y = grid(lung.box, _coarse_step(anat) / 2.0)
        f = effusion_field(anat, side, size, sev, x, y)
        return fit_region(x, y, f), "basal"
    if kind == "pneumothorax":
        x, y = grid(lung.box, _coarse_step(anat) / 2.0)
        f = pneumothorax_field(anat, side, size, sev, x, y)
        return fit_region(x, y, f, q=0.99), ("apical" if size != "large" else "diffuse")
    if kind == "emphysema":
        big = emphysema_anatomy(anat, sev)
        box = (lung.box[0], lung.box[1], lung.box[2], lung.box[3] + 0.2 * lh)
        x, y = grid(box, _coarse_step(anat))
        return fit_region(x, y, visible_lung(big, side, x, y)), "diffuse"
    raise AssertionError(kind)


def _fit_in_lung(anat: Anatomy, side: int, region: Region, *, visible: bool = True) -> Region:
    """Tighten an ellipse to its part that overlaps the (visible) lung of ``side``."""
    step = max(min(region.rx, region.ry) / 8.0, 1.0)
    x, y = grid(region.box, step)
    lung = visible_lung(anat, side, x, y) if visible else lung_field(anat, side, x, y)
    m = ellipse_field(region, x, y, step) * lung
    if (m > 0.5).sum() < 4:
        return region
    fitted = fit_region(x, y, m)
    # never grow beyond the original ellipse's box
    x0 = max(fitted.cx - fitted.rx, region.cx - region.rx)
    x1 = min(fitted.cx + fitted.rx, region.cx + region.rx)
    y0 = max(fitted.cy - fitted.ry, region.cy - region.ry)
    y1 = min(fitted.cy + fitted.ry, region.cy + region.ry)
    return Region((x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2)


# --- devices ---------------------------------------------------------------------------------


def place_device(kind: str, anatomy: Anatomy, rng: np.random.Generator) -> Device:
    """A support device's course in image pixels.

    Path conventions: tubes and lines run from their outer end to their tip; a pacemaker's first
    point is the generator's centre and the rest its lead; sternal wires are one point per wire.
    """
    a = anatomy
    lh, big_t = a.lung_height, a.half_thorax(RIGHT)
    mid = a.midline_x
    cx, cy = a.carina
    tx, _ = a.trachea_top
    h = a.heart_ellipse
    clav_y = a.clavicles[RIGHT][0][1]

    def trachea_x(yv: float) -> float:
        return tx + (cx - tx) * yv / cy

    pts: list[Point]
    if kind == "endotracheal_tube":
        tip_y = cy - rng.uniform(0.06, 0.16) * lh
        ys = np.linspace(0.0, tip_y, 6)
        pts = [(trachea_x(float(v)) + rng.normal(0, 0.01 * big_t), float(v)) for v in ys]
    elif kind == "nasogastric_tube":
        ex = mid + rng.uniform(0.02, 0.08) * big_t
        dia = float(diaphragm_y(a, np.asarray(ex + 0.1 * big_t)))
        stomach_x = mid + rng.uniform(0.35, 0.55) * a.half_thorax(LEFT)
        sy = float(dome_y(a, LEFT, np.asarray(stomach_x))) + rng.uniform(0.1, 0.16) * lh
        pts = [
            (trachea_x(0.0) + 0.02 * big_t, 0.0),
            (ex, cy * 0.5),
            (ex + 0.02 * big_t, cy),
            (ex + 0.06 * big_t, dia - 0.1 * lh),
            (ex + 0.14 * big_t, dia + 0.04 * lh),
            (stomach_x, sy),
            (stomach_x - rng.uniform(0.05, 0.2) * big_t, sy + rng.uniform(0.0, 0.06) * lh),
        ]
    elif kind == "central_line":
        side = RIGHT if rng.random() < 0.65 else LEFT
        sg = SIGN[side]
        svc_x = mid - a.mediastinum_half_width[RIGHT] * rng.uniform(0.5, 0.8)
        tip = (svc_x, cy + rng.uniform(0.0, 0.12) * lh)
        if rng.random() < 0.6:  # subclavian
            entry = (mid + sg * rng.uniform(0.7, 0.95) * big_t, clav_y + 0.03 * lh)
            pts = [
                (entry[0] + sg * 0.15 * big_t, entry[1] + 0.04 * lh),
                entry,
                (mid + sg * 0.3 * big_t, clav_y + 0.04 * lh),
                (svc_x + (sg + 1) * 0.05 * big_t, clav_y + 0.08 * lh),
                (svc_x, cy - 0.08 * lh),
                tip,
            ]
        else:  # internal jugular
            jx = mid + sg * rng.uniform(0.18, 0.26) * big_t
            pts = [
                (jx + sg * 0.05 * big_t, max(clav_y - 0.25 * lh, 0.0)),
                (jx, clav_y - 0.05 * lh),
                (mid + sg * 0.14 * big_t, clav_y + 0.05 * lh),
                (svc_x, cy - 0.08 * lh),
                tip,
            ]
    elif kind == "pacemaker":
        side = LEFT if rng.random() < 0.85 else RIGHT
        sg = SIGN[side]
        gen = (mid + sg * rng.uniform(0.6, 0.8) * big_t, clav_y + rng.uniform(0.07, 0.14) * lh)
        apex_tip = (h.cx + 0.35 * h.rx, h.cy + 0.05 * h.ry)
        pts = [
            gen,
            (gen[0] - sg * 0.12 * big_t, gen[1] - 0.03 * lh),
            (mid + sg * 0.3 * big_t, clav_y + 0.03 * lh),
            (mid - 0.12 * big_t, clav_y + 0.1 * lh),
            (mid - 0.14 * big_t, cy + 0.05 * lh),
            (h.cx - 0.55 * h.rx, h.cy - 0.35 * h.ry),
            (h.cx - 0.1 * h.rx, h.cy - 0.05 * h.ry),
            apex_tip,
        ]
    elif kind == "sternal_wires":
        n = int(rng.integers(4, 8))
        y0 = clav_y + 0.06 * lh
        y1 = h.cy + rng.uniform(0.0, 0.2) * h.ry
        ys = np.linspace(y0, y1, n)
        pts = [(mid + rng.normal(0.0, 0.015 * big_t), float(v)) for v in ys]
    elif kind in DEVICE_KINDS:
        raise AssertionError(kind)
    else:
        raise ValueError(f"unknown device kind {kind!r}")
    w1, h1 = a.width - 1.0, a.height - 1.0
    path = tuple((min(max(float(px), 0.0), w1), min(max(float(py), 0.0), h1)) for px, py in pts)
    return Device(kind, path)
