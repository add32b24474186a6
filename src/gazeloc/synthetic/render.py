"""Render synthetic chest radiographs as 8-bit grayscale arrays.

The frontal renderer builds a projected "density" map (water path through the body plus bone)
on a working grid of at most :data:`WORK_SIDE` pixels per side, maps it to brightness with a
partial histogram equalisation computed from the finding-free chest, upsamples it to the image
size and draws devices and a side marker at full resolution. All geometry comes from
:mod:`gazeloc.synthetic.anatomy` and is expressed in final-image pixels.

Random draws for the chest itself come first and do not depend on the findings, so rendering the
same anatomy with and without a finding from the same generator state changes only the pixels
inside that finding's regions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from scipy import ndimage

from gazeloc.synthetic.anatomy import (
    LEFT,
    RIGHT,
    SIGN,
    Anatomy,
    cardiomegaly_scale,
    collapsed_lung,
    effusion_field,
    ellipse_field,
    emphysema_anatomy,
    heart_field,
    lung_field,
    lung_field_depth,
    mediastinal_widening,
    mediastinum_bottom,
    mediastinum_field,
    pneumothorax_field,
    rib_phase,
)
from gazeloc.synthetic.types import Device, Finding, Region

WORK_SIDE = 512
"""Longest side of the working grid the anatomy is computed on (pixels), for images up to
:data:`LARGE_SIDE`; larger images use :data:`WORK_SIDE_LARGE`."""
LARGE_SIDE = 1400
_VESSEL_SIDE = 256  # vessels are drawn at this resolution, then blurred and resampled
WORK_SIDE_LARGE = 896

_COARSE_SIDE = 96
_F32 = np.float32


# --- grids -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Canvas:
    """A working grid covering the whole image; coordinates are final-image pixels."""

    width: int  # final image size
    height: int
    w: int  # grid size
    h: int
    xs: np.ndarray  # (1, w) pixel-centre x of each grid column
    ys: np.ndarray  # (h, 1)

    @property
    def step(self) -> float:
        """Final-image pixels per grid pixel."""
        return self.width / self.w

    @staticmethod
    def make(width: int, height: int, side: int) -> _Canvas:
        f = min(1.0, side / max(width, height))
        w, h = max(round(float(width * f)), 8), max(round(float(height * f)), 8)
        xs = ((np.arange(w, dtype=_F32) + 0.5) * (width / w) - 0.5)[None, :]
        ys = ((np.arange(h, dtype=_F32) + 0.5) * (height / h) - 0.5)[:, None]
        return _Canvas(width, height, w, h, xs, ys)

    def window(
        self, box: tuple[float, float, float, float], pad: float = 0.0
    ) -> tuple[slice, slice, np.ndarray, np.ndarray] | None:
        """Grid rows/columns covering ``box`` (final pixels) and their coordinates."""
        x0, y0, x1, y1 = box
        s = self.step
        c0 = max(math.floor((x0 - pad) / s), 0)
        c1 = min(math.ceil((x1 + pad) / s) + 1, self.w)
        r0 = max(math.floor((y0 - pad) / s), 0)
        r1 = min(math.ceil((y1 + pad) / s) + 1, self.h)
        if c1 <= c0 or r1 <= r0:
            return None
        rs, cs = slice(r0, r1), slice(c0, c1)
        return rs, cs, self.xs[:, cs], self.ys[rs, :]


def _upsample_noise(n: np.ndarray, w: int, h: int) -> np.ndarray:
    """Resample unit-variance noise to (h, w) over the same extent (via 8 bits: fast)."""
    q = np.clip(n * 30.0 + 128.0, 0, 255).astype(np.uint8)
    big = np.asarray(Image.fromarray(q).resize((w, h), Image.BILINEAR), dtype=_F32)
    return (big - _F32(128.0)) * _F32(1.0 / 30.0)


def _tiled(tile: np.ndarray, h: int, w: int) -> np.ndarray:
    """``tile`` repeated to cover (h, w)."""
    th, tw = tile.shape
    return np.tile(tile, (h // th + 1, w // tw + 1))[:h, :w]


def _smooth_noise(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Unit-variance smooth noise on a small (h, w) lattice."""
    n = ndimage.gaussian_filter(rng.standard_normal((h, w)), 0.8, mode="wrap")
    return (n / (n.std() + 1e-9)).astype(_F32)


def _ramp(z: np.ndarray) -> np.ndarray:
    return np.clip(z + 0.5, 0.0, 1.0)


# --- random draws independent of findings ----------------------------------------------------


@dataclass(frozen=True)
class _Chest:
    """Everything random about one image that is not a finding or device."""

    par: np.ndarray  # smooth noise: parenchymal mottling
    grain: np.ndarray  # fine grain, added after the tone curve
    tile: np.ndarray  # full-resolution noise tile (int16 grey levels)
    tile_offset: tuple[int, int]
    vessels: tuple[np.ndarray, np.ndarray]  # per side: (n, 5) x0, y0, x1, y1, width
    vertebra_phase: float
    humeral_heads: bool
    scapula_u: float
    gamma: float
    contrast: float
    eq_alpha: float
    black: float
    white: float
    heel: float
    grain_sigma: float
    marker: tuple[int, str] | None  # corner index, letter
    finding_seed: int


def _vessel_tree(anat: Anatomy, side: int, rng: np.random.Generator, depth: int = 6) -> np.ndarray:
    """Pulmonary vessels of ``side`` as line segments (x0, y0, x1, y1, width; image pixels).

    Each main branch from the hilum continues with a slight bend and gives off one thinner side
    branch per level, tapering towards the periphery.
    """
    sg = SIGN[side]
    big_t = anat.half_thorax(side)
    hx, hy = anat.hila[side]
    n_main = 10
    lateral = np.deg2rad(np.linspace(-80.0, 100.0, n_main) + rng.uniform(-7, 7, n_main))
    ang = np.pi - lateral if sg < 0 else lateral  # angle in the image, y down
    x = hx + rng.normal(0, 0.03 * big_t, n_main)
    y = hy + rng.normal(0, 0.04 * big_t, n_main)
    length = big_t * rng.uniform(0.09, 0.13, n_main)
    width = big_t * rng.uniform(0.022, 0.03, n_main)
    segs = []
    for level in range(depth + 1):
        x1 = x + length * np.cos(ang)
        y1 = y + length * np.sin(ang)
        segs.append(np.stack([x, y, x1, y1, width], axis=1))
        if level == depth:
            break
        m = x.size
        turn = rng.choice((-1.0, 1.0), m)
        ang = np.concatenate(
            [ang + rng.normal(0, 0.12, m), ang + turn * rng.uniform(0.45, 0.95, m)]
        )
        x = np.concatenate([x1, x1])
        y = np.concatenate([y1, y1])
        length = np.concatenate(
            [length * rng.uniform(0.8, 0.95, m), length * rng.uniform(0.5, 0.75, m)]
        )
        width = np.concatenate(
            [width * rng.uniform(0.76, 0.86, m), width * rng.uniform(0.42, 0.58, m)]
        )
        keep = width > 0.005 * big_t
        x, y, ang, length, width = x[keep], y[keep], ang[keep], length[keep], width[keep]
    return np.concatenate(segs, axis=0).astype(_F32)


def _sample_chest(anat: Anatomy, rng: np.random.Generator, work: _Canvas) -> _Chest:
    """Draw everything random about the image except findings and devices (fixed order)."""
    ap = anat.view == "AP"
    asp = anat.width / anat.height
    par = _smooth_noise(rng, 56, max(int(56 * asp), 8))
    grain = _tiled(rng.standard_normal((160, 160), dtype=_F32), work.h, work.w)
    tile = np.round(rng.standard_normal((128, 128)) * 1.2).astype(np.int16)
    tile_offset = (int(rng.integers(0, 128)), int(rng.integers(0, 128)))
    vessels = (_vessel_tree(anat, RIGHT, rng), _vessel_tree(anat, LEFT, rng))
    marker = None
    if rng.random() < 0.7:
        marker = (int(rng.integers(0, 4)), "L" if rng.random() < 0.8 else "R")
    return _Chest(
        par=par,
        grain=grain,
        tile=tile,
        tile_offset=tile_offset,
        vessels=vessels,
        vertebra_phase=float(rng.uniform(0, 1)),
        humeral_heads=bool(rng.random() < 0.5),
        scapula_u=float(rng.uniform(0.82, 0.95) if not ap else rng.uniform(0.6, 0.78)),
        gamma=float(rng.uniform(0.95, 1.45)),
        contrast=float(rng.uniform(0.85, 1.0) if not ap else rng.uniform(0.75, 0.95)),
        eq_alpha=float(rng.uniform(0.45, 0.85)),
        black=float(rng.uniform(0.0, 0.06)),
        white=float(rng.uniform(0.92, 1.0)),
        heel=float(rng.normal(0.0, 0.04)),
        grain_sigma=float(rng.uniform(0.006, 0.018) * (1.5 if ap else 1.0)),
        marker=marker,
        finding_seed=int(rng.integers(0, 2**62)),
    )


# --- density map -----------------------------------------------------------------------------


@dataclass
class _Layers:
    """Working arrays of one density computation."""

    cv: _Canvas
    thick: np.ndarray  # body water path (1 = thickest)
    air: np.ndarray  # air fraction of the water path
    op: np.ndarray  # share of the air replaced by fluid/tissue (findings)
    extra_air: np.ndarray  # added air fraction (pneumothorax, emphysema, ...)
    add: np.ndarray  # additive density (bones, masses, lines)
    vmult: np.ndarray  # vessel visibility
    vessel: np.ndarray | None
    rib_weight: np.ndarray  # visibility of ribs (lower outside the lungs)
    ribs: np.ndarray  # rib density, weighted


def _body(anat: Anatomy, cv: _Canvas) -> tuple[np.ndarray, np.ndarray]:
    """Soft-tissue thickness (neck, sloping shoulders, chest wall; 0 in the air outside) and the
    body mask."""
    lh = anat.lung_height
    y = cv.ys
    mid = anat.midline_x
    neck_base = anat.shoulder_y - 0.3 * lh
    shoulder_w = anat.body_half_width * 1.1
    below = np.clip((y - anat.shoulder_y) / anat.height, 0.0, None)
    chest_w = anat.body_half_width * (1.0 + 0.1 * below)
    z = np.clip((y - neck_base) / (anat.shoulder_y - neck_base), 0.0, 1.0)
    top = anat.neck_half_width + (shoulder_w - anat.neck_half_width) * (z * z * (3.0 - 2.0 * z))
    k = np.clip((y - anat.shoulder_y) / (0.35 * lh), 0.0, 1.0)
    hb = np.where(y < anat.shoulder_y, top, shoulder_w + (chest_w - shoulder_w) * k)
    dx = np.abs(cv.xs - _F32(mid))
    e = max(2.0 * cv.step, 0.005 * anat.width)
    inv_hb = (1.0 / (hb + 1e-3)).astype(_F32)
    mask = np.clip((hb / e + 0.5).astype(_F32) - dx * _F32(1.0 / e), 0.0, 1.0)
    r = dx * inv_hb
    prof = np.sqrt(np.clip(1.0 - r * r, 0.0, 1.0))
    neck = (0.7 + 0.3 * z).astype(_F32)
    thick = (mask * neck) * (0.3 + 0.7 * prof)
    return thick, mask


def _lungs(anat: Anatomy, cv: _Canvas) -> list[tuple[slice, slice, np.ndarray, np.ndarray]]:
    """Per side: grid window, lung mask and relative lung depth."""
    out = []
    e = max(cv.step, 0.01 * anat.half_thorax(RIGHT))
    for s in (RIGHT, LEFT):
        sg = SIGN[s]
        big_t = anat.half_thorax(s)
        xa = anat.midline_x
        xb = anat.midline_x + sg * (big_t + 0.05 * big_t)
        y0 = min(anat.apex[s][1], anat.apex[1 - s][1]) - 0.02 * big_t
        y1 = anat.costophrenic[s][1] + 0.3 * anat.lung_height
        win = cv.window((min(xa, xb), y0, max(xa, xb), y1))
        if win is None:
            continue
        rs, cs, x, y = win
        m, depth = lung_field_depth(anat, s, x, y, e, recess=0.3)
        out.append((rs, cs, m.astype(_F32), depth.astype(_F32)))
    return out


def _anatomy_layers(
    anat: Anatomy,
    cv: _Canvas,
    chest: _Chest,
    *,
    heart_scale: float = 1.0,
    widen: float = 0.0,
    with_vessels: bool = True,
) -> _Layers:
    shape = (cv.h, cv.w)
    lh = anat.lung_height
    big_t = anat.half_thorax(RIGHT)
    e = max(cv.step, 0.01 * big_t)
    par = _upsample_noise(chest.par, cv.w, cv.h)
    thick, body = _body(anat, cv)
    lung = np.zeros(shape, _F32)
    depth = np.zeros(shape, _F32)
    for rs, cs, m, dp in _lungs(anat, cv):
        lung[rs, cs] = np.maximum(lung[rs, cs], m)
        depth[rs, cs] = np.maximum(depth[rs, cs], dp)
    # heart and mediastinum hide the lung in front of/behind them
    cover = np.zeros(shape, _F32)
    hb = anat.heart_ellipse
    hr = hb.rx * heart_scale * 1.6
    win = cv.window((hb.cx - hr, hb.cy - hb.ry * 1.8, hb.cx + hr, hb.cy + hb.ry * 1.4))
    if win is not None:
        rs, cs, x, y = win
        hm = heart_field(anat, x, y, e, heart_scale)
        cover[rs, cs] = hm * (0.7 + 0.2 * np.sqrt(hm))
    mw = max(anat.mediastinum_half_width) + 0.5 * big_t + anat.aortic_knob.rx
    win = cv.window((anat.midline_x - mw, 0.0, anat.midline_x + mw, mediastinum_bottom(anat)))
    if win is not None:
        rs, cs, x, y = win
        med = mediastinum_field(anat, x, y, e, widen)
        cover[rs, cs] = np.maximum(cover[rs, cs], 0.9 * med)
    air = lung * (0.55 + 0.45 * depth) * (1.0 - cover) * _F32(anat.aeration)
    air *= 1.0 + 0.08 * par
    # apices are overlapped by soft tissue; the bases by more tissue and vessels
    apex_y = min(anat.apex[RIGHT][1], anat.apex[LEFT][1])
    yy = (cv.ys - apex_y) / lh
    air *= np.clip(0.75 + yy / 0.25, 0.75, 1.0) * (1.0 - 0.12 * np.clip((yy - 0.45) / 0.55, 0, 1))

    add = np.zeros(shape, _F32)
    _trachea(anat, cv, air, e)
    _stomach(anat, cv, air, e)
    _spine(anat, cv, chest, add, e)
    ribs = np.zeros(shape, _F32)
    _ribs(anat, cv, ribs, e, ())
    rib_weight = 0.25 + 0.75 * np.clip(air / anat.aeration, 0.0, 1.0)
    ribs *= rib_weight
    _clavicles(anat, cv, add, e)
    girdle = np.zeros(shape, _F32)
    _shoulder_girdle(anat, cv, chest, girdle, e)
    add += girdle * body
    if anat.breasts:
        _breasts(anat, cv, add, e)
    vessel = _vessels(anat, cv, chest) * lung if with_vessels else None
    return _Layers(
        cv=cv,
        thick=thick,
        air=air,
        op=np.zeros(shape, _F32),
        extra_air=np.zeros(shape, _F32),
        add=add,
        vmult=np.ones(shape, _F32),
        vessel=vessel,
        rib_weight=rib_weight,
        ribs=ribs,
    )


def _trachea(anat: Anatomy, cv: _Canvas, air: np.ndarray, e: float) -> None:
    tx = anat.trachea_top[0]
    cx, cy = anat.carina
    hw = anat.trachea_half_width
    win = cv.window((min(tx, cx) - 6 * hw, 0.0, max(tx, cx) + 6 * hw, cy + 0.12 * anat.lung_height))
    if win is None:
        return
    rs, cs, x, y = win
    f = np.clip(y / cy, 0.0, 1.0)
    xc = tx + (cx - tx) * f
    tube = _ramp((hw - np.abs(x - xc)) / e) * _ramp((cy - y) / e)
    # main bronchi: right steeper and shorter, left longer and more horizontal
    for s, ang, ln in ((RIGHT, 0.45, 0.11), (LEFT, 0.8, 0.15)):
        sg = SIGN[s]
        ln_px = ln * anat.lung_height
        dx, dy = sg * math.sin(ang), math.cos(ang)
        px, py = x - cx, y - cy
        along = px * dx + py * dy
        perp = np.abs(px * dy - py * dx)
        wid = hw * 0.8 * (1.0 - 0.3 * np.clip(along / ln_px, 0, 1))
        br = _ramp((wid - perp) / e) * _ramp(along / e) * _ramp((ln_px - along) / (3 * e))
        tube = np.maximum(tube, br)
    air[rs, cs] = np.maximum(air[rs, cs], 0.33 * tube)


def _stomach(anat: Anatomy, cv: _Canvas, air: np.ndarray, e: float) -> None:
    b = anat.stomach_bubble
    if b is None:
        return
    win = cv.window(b.box, 2 * e)
    if win is None:
        return
    rs, cs, x, y = win
    level = b.cy + 0.25 * b.ry
    m = ellipse_field(b, x, y, 3 * e) * _ramp((level - y) / e)
    air[rs, cs] = np.maximum(air[rs, cs], 0.3 * m)


def _spine(anat: Anatomy, cv: _Canvas, chest: _Chest, add: np.ndarray, e: float) -> None:
    sx, hw = anat.spine_x, anat.spine_half_width
    win = cv.window((sx - 1.6 * hw, 0.0, sx + 1.6 * hw, float(anat.height)))
    if win is None:
        return
    rs, cs, x, y = win
    lean = 0.02 * (y - anat.carina[1])
    dx = x - sx - lean
    period = anat.rib_spacing * 1.05
    ph = (y - anat.rib_y0) / period + chest.vertebra_phase
    c = np.cos(2 * np.pi * ph)
    disc = np.clip((c - 0.6) / 0.4, 0.0, 1.0)
    body = _ramp((hw - np.abs(dx)) / (2.5 * e))
    cortex = np.exp(-(((np.abs(dx) - 0.9 * hw) / (0.08 * hw)) ** 2))
    # pedicles: paired ovals in each vertebra
    s = np.sin(2 * np.pi * ph)
    ped = np.clip(1 - ((np.abs(dx) - 0.62 * hw) / (0.14 * hw)) ** 2 - ((s + 0.55) / 0.5) ** 2, 0, 1)
    spinous = np.clip(1 - (dx / (0.12 * hw)) ** 2 - ((s - 0.3) / 0.55) ** 2, 0, 1)
    val = body * (0.05 - 0.018 * disc) + 0.02 * cortex + 0.025 * np.sqrt(ped) + 0.015 * spinous
    dome_low = max(anat.dome[RIGHT][1], anat.dome[LEFT][1])
    fade = 1.0 - 0.5 * np.clip((y - dome_low) / (0.1 * anat.lung_height), 0.0, 1.0)
    add[rs, cs] += val * fade


def _rib_profile(phi: np.ndarray, half: float, soft: float) -> np.ndarray:
    d = np.abs(phi - np.round(phi))
    band = np.clip((half - d) / soft + 0.5, 0.0, 1.0)
    cortex = np.clip(1.0 - np.abs(d - 0.82 * half) / (0.22 * half), 0.0, 1.0)
    valid = np.clip(phi + 0.5, 0.0, 1.0) * np.clip(11.6 - phi, 0.0, 1.0)
    return (0.75 * band + 0.35 * cortex) * valid


def _fracture_warp(
    phi: np.ndarray, x: np.ndarray, y: np.ndarray, frac: tuple[Region, float, float], rib_h: float
) -> tuple[np.ndarray, np.ndarray]:
    """Displace the rib phase across a fracture line and return the break's lucent gap."""
    region, angle, sev = frac
    ca, sa = math.cos(angle), math.sin(angle)
    dx, dy = x - region.cx, y - region.cy
    across = dx * ca + dy * sa
    r2 = (dx / region.rx) ** 2 + (dy / region.ry) ** 2
    win = np.clip(1.0 - r2, 0.0, 1.0) ** 1.5
    step = (0.06 + 0.14 * sev) * np.tanh(across / (0.08 * rib_h))
    gap_w = (0.06 + 0.1 * sev) * rib_h
    gap = np.exp(-((across / gap_w) ** 2)) * win
    return phi + step * win, gap


def _ribs(
    anat: Anatomy,
    cv: _Canvas,
    add: np.ndarray,
    e: float,
    fractures: Sequence[tuple[int, Region, float, float]],
) -> None:
    """Posterior and anterior ribs of both sides (fractures: side, region, angle, severity)."""
    dome_low = max(anat.costophrenic[RIGHT][1], anat.costophrenic[LEFT][1])
    for s in (RIGHT, LEFT):
        sg = SIGN[s]
        big_t = anat.half_thorax(s)
        xa = anat.spine_x + sg * 0.5 * anat.spine_half_width
        xb = anat.midline_x + sg * 1.12 * big_t
        y0 = anat.rib_y0 - 1.5 * anat.rib_spacing
        y1 = min(dome_low + 2.5 * anat.rib_spacing, float(anat.height))
        win = cv.window((min(xa, xb), y0, max(xa, xb), y1))
        if win is None:
            continue
        rs, cs, x, y = win
        fr = [(r, a, sv) for side, r, a, sv in fractures if side == s]
        for anterior in (False, True):
            phi = rib_phase(anat, s, x, y, anterior)
            pitch = anat.rib_spacing * (1 + 2 * anat.rib_growth * np.clip(phi, 0, 11))
            half = 0.5 * anat.rib_height / anat.rib_spacing * (1.25 if anterior else 1.0)
            gap = None
            for region, ang, sv in fr:
                phi, g = _fracture_warp(phi, x, y, (region, ang, sv), anat.rib_height)
                gap = g if gap is None else np.maximum(gap, g)
            prof = _rib_profile(phi, half, e / pitch)
            if gap is not None:
                prof = prof * (1.0 - 0.85 * gap)
            if anterior:
                v = sg * (x - anat.midline_x) / big_t
                w = np.clip((v - 0.3) / 0.2, 0.0, 1.0) * np.clip((1.1 - v) / 0.06, 0.0, 1.0)
                add[rs, cs] += (0.06 * w) * prof
            else:
                v = sg * (x - anat.spine_x) / big_t
                w = np.clip((v - 0.06) / 0.08, 0.0, 1.0) * np.clip((1.08 - v) / 0.05, 0.0, 1.0)
                add[rs, cs] += (0.11 * (1.0 - 0.25 * v) * w) * prof


def _clavicles(anat: Anatomy, cv: _Canvas, add: np.ndarray, e: float) -> None:
    th = anat.clavicle_half_thickness
    for s in (RIGHT, LEFT):
        (mx, my), (lx, ly) = anat.clavicles[s]
        win = cv.window((min(mx, lx), min(my, ly) - 4 * th, max(mx, lx), max(my, ly) + 4 * th))
        if win is None:
            continue
        rs, cs, x, y = win
        t = np.clip((x - mx) / (lx - mx), 0.0, 1.0)
        yc = my + (ly - my) * t - 0.5 * th * np.sin(2 * np.pi * t) - 0.6 * th * t * (1 - t)
        wid = th * (1.25 - 0.4 * t + 0.4 * t**4)
        d = np.abs(y - yc)
        band = _ramp((wid - d) / e) * np.clip(t * 25, 0, 1) * np.clip((1 - t) * 12, 0, 1)
        cortex = np.clip(1 - np.abs(d - 0.85 * wid) / (0.25 * wid), 0, 1)
        add[rs, cs] += band * (0.1 + 0.08 * cortex)


def _shoulder_girdle(anat: Anatomy, cv: _Canvas, chest: _Chest, add: np.ndarray, e: float):
    lh = anat.lung_height
    for s in (RIGHT, LEFT):
        sg = SIGN[s]
        big_t = anat.half_thorax(s)
        (lx, ly) = anat.clavicles[s][1]
        # scapula: faint density lateral to its medial border, fading downwards
        ub = anat.midline_x + sg * chest.scapula_u * big_t
        y0, y1 = anat.shoulder_y, anat.apex[s][1] + 0.55 * lh
        win = cv.window((min(ub, lx), y0, max(ub, lx) + sg * 0.3 * big_t, y1))
        if win is not None:
            rs, cs, x, y = win
            tt = np.clip((y - y0) / (y1 - y0), 0, 1)
            border = ub + sg * 0.25 * big_t * tt**1.5
            inside = _ramp(sg * (x - border) / (3 * e)) * np.clip((1 - tt) * 2, 0, 1) ** 2
            add[rs, cs] += 0.035 * inside
        if chest.humeral_heads:
            r = 0.17 * big_t
            hx, hy = lx + sg * 0.7 * r, ly + 1.0 * r
            win = cv.window((hx - 3 * r, hy - r * 1.2, hx + 3 * r, float(anat.height)))
            if win is None:
                continue
            rs, cs, x, y = win
            d = np.sqrt((x - hx) ** 2 + (y - hy) ** 2)
            head = _ramp((r - d) / e) * (
                0.6 + 0.4 * np.clip(1 - np.abs(d - 0.9 * r) / (0.1 * r), 0, 1)
            )
            add[rs, cs] += 0.12 * head


def _breasts(anat: Anatomy, cv: _Canvas, add: np.ndarray, e: float) -> None:
    """Breast shadows: density growing towards a curved inferior margin over the lower zones."""
    lh = anat.lung_height
    for s in (RIGHT, LEFT):
        sg = SIGN[s]
        big_t = anat.half_thorax(s)
        reg = Region(
            anat.midline_x + sg * 0.66 * big_t,
            anat.costophrenic[s][1] - 0.22 * lh,
            0.55 * big_t,
            0.28 * lh,
        )
        win = cv.window(reg.box)
        if win is None:
            continue
        rs, cs, x, y = win
        r2 = ((x - reg.cx) / reg.rx) ** 2 + ((y - reg.cy) / reg.ry) ** 2
        lower = np.clip((y - reg.cy + 0.6 * reg.ry) / (1.6 * reg.ry), 0.0, 1.0) ** 1.5
        edge = _ramp((1.0 - np.sqrt(r2)) * reg.ry / (1.5 * e))
        add[rs, cs] += 0.07 * lower * edge * np.sqrt(np.clip(1.0 - r2, 0.0, 1.0) + 0.2)


def _vessels(anat: Anatomy, cv: _Canvas, chest: _Chest) -> np.ndarray:
    """Pulmonary vessel density drawn on the working grid (0..1)."""
    f = _VESSEL_SIDE / max(cv.width, cv.height)
    hw_, hh_ = max(round(cv.width * f), 8), max(round(cv.height * f), 8)
    img = Image.new("L", (hw_, hh_), 0)
    draw = ImageDraw.Draw(img)
    s = cv.width / hw_
    for segs in chest.vessels:
        px = (segs[:, :4] + 0.5) / s - 0.5
        wid = segs[:, 4] / s
        val = 255.0 * np.minimum(wid * 1.3, 1.0)
        iw = np.maximum(np.round(wid), 1).astype(int)
        for (x0, y0, x1, y1), w_, v in zip(px.tolist(), iw.tolist(), val.tolist(), strict=True):
            draw.line((x0, y0, x1, y1), fill=int(v), width=w_)
    img = img.filter(ImageFilter.BoxBlur(1)).resize((cv.w, cv.h), Image.BICUBIC)
    return np.asarray(img, dtype=_F32) * _F32(1.0 / 255.0)


def _compose(ly: _Layers) -> np.ndarray:
    """Density = water path through the body (air spaces removed) + additive bone/masses."""
    air = ly.air * (1.0 - ly.op)
    if ly.vessel is not None:
        air = air * (1.0 - 0.5 * ly.vessel * ly.vmult)
    air = np.clip(air + ly.extra_air, 0.0, 0.97)
    return ly.thick * (1.0 - air) + ly.add + ly.ribs * (1.0 - 0.6 * ly.op)


# --- findings --------------------------------------------------------------------------------


def _side_of(anat: Anatomy, region: Region) -> int:
    return RIGHT if region.cx < anat.midline_x else LEFT


def _finding_noise(rng: np.random.Generator, rs: slice, cs: slice, cell: float, step: float):
    """Smooth unit noise for a window with features about ``cell`` final pixels wide."""
    h, w = rs.stop - rs.start, cs.stop - cs.start
    gh = max(int(h * step / cell) + 2, 3)
    gw = max(int(w * step / cell) + 2, 3)
    n = rng.standard_normal((gh, gw)).astype(_F32)
    return _upsample_noise(n, w, h)


def _draw_findings(
    anat: Anatomy, ly: _Layers, findings: Sequence[Finding], seed: int
) -> list[tuple[int, Region, float, float]]:
    """Apply every finding's drawing to the layers; return rib fractures for the rib pass."""
    cv = ly.cv
    fractures: list[tuple[int, Region, float, float]] = []
    big_t = anat.half_thorax(RIGHT)
    e = max(cv.step, 0.01 * big_t)
    for i, f in enumerate(findings):
        rng = np.random.default_rng([seed, i])
        sev = f.severity
        for region in f.regions:
            side = _side_of(anat, region)
            win = cv.window(region.box, cv.step)
            if win is None:
                continue
            rs, cs, x, y = win
            inside = ellipse_field(region, x, y, e)
            if f.kind == "rib_fracture":
                fractures.append((side, region, float(rng.uniform(-0.35, 0.35)), sev))
                continue
            fn = _FINDING_DRAW.get(f.kind)
            if fn is not None:
                fn(anat, ly, f, region, side, rs, cs, x, y, inside, rng, e)
    return fractures


# Each _draw_<kind>(anat, ly, f, region, side, rs, cs, x, y, inside, rng, e) draws one region of
# finding ``f`` into the layers ``ly`` on the grid window (rs, cs) whose pixel coordinates are
# x (1, n) and y (m, 1); ``inside`` is the region's soft ellipse mask there (every drawing is
# multiplied by it), ``side`` the patient side of the region, ``rng`` the finding's own generator
# and ``e`` the soft-edge width in image pixels.


def _draw_effusion(anat, ly, f, region, side, rs, cs, x, y, inside, rng, e):
    fl = effusion_field(anat, side, f.size, f.severity, x, y) * inside
    ly.op[rs, cs] = np.maximum(ly.op[rs, cs], fl * (0.8 + 0.2 * f.severity))
    ly.add[rs, cs] += 0.05 * fl * ly.thick[rs, cs]


def _draw_pneumothorax(anat, ly, f, region, side, rs, cs, x, y, inside, rng, e):
    sev = f.severity
    space = pneumothorax_field(anat, side, f.size, sev, x, y) * inside
    # pleural air: no lung tissue between the chest wall and the visceral pleura
    ly.extra_air[rs, cs] += space * (0.93 - 0.6 * anat.aeration) * (0.5 + 0.5 * sev)
    ly.vmult[rs, cs] *= 1.0 - space
    sharp = max(0.5 * ly.cv.step, 1.0)
    c = collapsed_lung(anat, side, f.size, sev, x, y)
    cs_ = np.clip(
        lung_field(anat, side, x, y, sharp) - pneumothorax_field(anat, side, f.size, sev, x, y),
        0,
        1,
    )
    line = 4.0 * cs_ * (1.0 - cs_) * (lung_field(anat, side, x, y) > 0.97) * inside
    ly.add[rs, cs] += (0.05 + 0.06 * sev) * line
    ly.op[rs, cs] = np.maximum(ly.op[rs, cs], c * inside * 0.12 * sev)


def _sphere(x, y, cx, cy, r, e):
    d = np.sqrt((x - cx) ** 2 + (y - cy) ** 2)
    return np.sqrt(np.clip(1.0 - (d / r) ** 2, 0.0, 1.0)) * _ramp((r - d) / e)


def _draw_nodule(anat, ly, f, region, side, rs, cs, x, y, inside, rng, e):
    r = min(region.rx, region.ry) / 1.15
    prof = _sphere(x, y, region.cx, region.cy, r, max(e * 0.7, 0.08 * r)) * inside
    ly.add[rs, cs] += (0.14 + 0.2 * f.severity) * prof


def _draw_mass(anat, ly, f, region, side, rs, cs, x, y, inside, rng, e):
    r0 = min(region.rx, region.ry) / 1.3
    dx, dy = x - region.cx, y - region.cy
    th = np.arctan2(dy, dx)
    k = rng.integers(3, 7, size=3)
    ph = rng.uniform(0, 2 * np.pi, size=3)
    amp = rng.uniform(0.02, 0.06, size=3)
    rr = r0 * (1.0 + sum(a * np.sin(kk * th + p) for a, kk, p in zip(amp, k, ph, strict=True)))
    d = np.sqrt(dx * dx + dy * dy)
    prof = np.sqrt(np.clip(1.0 - (d / rr) ** 2, 0.0, 1.0)) * _ramp((rr - d) / (2 * e)) * inside
    tex = _finding_noise(rng, rs, cs, 0.3 * r0, ly.cv.step)
    ly.add[rs, cs] += (0.03 + 0.07 * f.severity) * prof * (1.0 + 0.1 * tex)
    ly.op[rs, cs] = np.maximum(ly.op[rs, cs], (0.45 + 0.4 * f.severity) * np.sqrt(prof))


def _bronchograms(rng, region, rs, cs, step, side) -> np.ndarray:
    """Dark branching air bronchograms inside an opacity (0..1, working grid window)."""
    h, w = rs.stop - rs.start, cs.stop - cs.start
    img = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(img)
    x0 = cs.start * step
    y0 = rs.start * step
    sg = SIGN[side]
    for _ in range(int(rng.integers(2, 5))):
        px = region.cx - sg * region.rx * rng.uniform(0.2, 0.6)
        py = region.cy + region.ry * rng.uniform(-0.5, 0.5)
        ang = math.atan2(rng.uniform(-0.6, 0.6), sg)
        width = max(region.rx * 0.035, 1.2 * step)
        for _ in range(3):
            ln = region.rx * rng.uniform(0.25, 0.45)
            qx, qy = px + ln * math.cos(ang), py + ln * math.sin(ang)
            draw.line(
                ((px - x0) / step, (py - y0) / step, (qx - x0) / step, (qy - y0) / step),
                fill=255,
                width=max(round(float(width / step)), 1),
            )
            px, py, ang = qx, qy, ang + rng.uniform(-0.5, 0.5)
            width *= 0.75
    img = img.filter(ImageFilter.GaussianBlur(0.6))
    return np.asarray(img, dtype=_F32) / 255.0


def _draw_consolidation(anat, ly, f, region, side, rs, cs, x, y, inside, rng, e):
    r = np.sqrt(((x - region.cx) / region.rx) ** 2 + ((y - region.cy) / region.ry) ** 2)
    big = _finding_noise(rng, rs, cs, 0.45 * min(region.rx, region.ry), ly.cv.step)
    fine = _finding_noise(rng, rs, cs, 0.12 * min(region.rx, region.ry), ly.cv.step)
    patch = np.clip((1.0 - r) * 2.2 + 0.55 * big + 0.2 * fine - 0.1, 0.0, 1.0)
    if f.zone == "upper" and side == RIGHT and rng.random() < 0.6:  # minor fissure
        patch = patch * _ramp((region.cy + 0.5 * region.ry - y) / e)
    patch = patch * inside
    if rng.random() < 0.6:
        patch = patch * (1.0 - 0.35 * _bronchograms(rng, region, rs, cs, ly.cv.step, side))
    ly.op[rs, cs] = np.maximum(ly.op[rs, cs], patch * (0.5 + 0.45 * f.severity))


def _draw_atelectasis(anat, ly, f, region, side, rs, cs, x, y, inside, rng, e):
    sg = SIGN[side]
    if region.rx > 2.5 * region.ry:  # plate-like band
        slope = rng.uniform(-0.12, 0.12)
        d = np.abs(y - region.cy - slope * (x - region.cx))
        band = _ramp((0.42 * region.ry - d) / (1.5 * e))
        along = np.clip(1.0 - ((x - region.cx) / region.rx) ** 2, 0.0, 1.0) ** 0.5
        patch = band * along * inside
    else:  # lobar collapse: a dense wedge with one sharp edge
        u = sg * (x - region.cx) / region.rx
        v = (y - region.cy) / region.ry
        edge = (u + v) if f.zone == "upper" else (u - v)
        patch = _ramp((0.35 - edge) * min(region.rx, region.ry) / e) * inside
    ly.op[rs, cs] = np.maximum(ly.op[rs, cs], patch * (0.6 + 0.38 * f.severity))


def _draw_edema(anat, ly, f, region, side, rs, cs, x, y, inside, rng, e):
    r2 = ((x - region.cx) / region.rx) ** 2 + ((y - region.cy) / region.ry) ** 2
    n = _finding_noise(rng, rs, cs, 0.25 * region.rx, ly.cv.step)
    w = np.clip(1.0 - r2, 0.0, 1.0) ** 0.9 * (0.8 + 0.2 * n) * inside
    amp = 0.3 + 0.45 * f.severity
    ly.op[rs, cs] = np.maximum(ly.op[rs, cs], w * amp)
    if ly.vessel is not None:
        v = ly.vessel[rs, cs]
        blur = ndimage.gaussian_filter(v, max(0.01 * region.rx / ly.cv.step * 3, 1.2))
        ly.vmult[rs, cs] *= 1.0 - 0.6 * w
        ly.op[rs, cs] = np.maximum(ly.op[rs, cs], ly.op[rs, cs] + 0.6 * blur * w)


def _draw_groundglass(anat, ly, f, region, side, rs, cs, x, y, inside, rng, e):
    r2 = ((x - region.cx) / region.rx) ** 2 + ((y - region.cy) / region.ry) ** 2
    n = _finding_noise(rng, rs, cs, 0.3 * min(region.rx, region.ry), ly.cv.step)
    patch = np.clip((n + 0.6) / 1.2, 0.0, 1.0) * np.clip(1.0 - r2, 0.0, 1.0) ** 0.5 * inside
    ly.op[rs, cs] = np.maximum(ly.op[rs, cs], patch * (0.22 + 0.3 * f.severity))


def _draw_interstitial(anat, ly, f, region, side, rs, cs, x, y, inside, rng, e):
    big_t = anat.half_thorax(side)
    cell = max(0.035 * big_t, 2.5 * ly.cv.step)
    n = _finding_noise(rng, rs, cs, cell, ly.cv.step)
    ret = np.clip(1.0 - np.abs(n) / 0.3, 0.0, 1.0)
    u = np.clip(SIGN[side] * (x - anat.midline_x) / big_t, 0.0, 1.0)
    r2 = ((x - region.cx) / region.rx) ** 2 + ((y - region.cy) / region.ry) ** 2
    w = np.clip(1.0 - r2, 0.0, 1.0) ** 0.5 * (0.4 + 0.6 * u) * inside
    ly.op[rs, cs] = np.maximum(ly.op[rs, cs], w * (ret * (0.25 + 0.35 * f.severity) + 0.1))


def _draw_hilar(anat, ly, f, region, side, rs, cs, x, y, inside, rng, e):
    r = 0.5 * min(region.rx, region.ry)
    acc = np.zeros_like(ly.add[rs, cs])
    for _ in range(3):
        cx = region.cx + rng.uniform(-0.35, 0.35) * (region.rx - r)
        cy = region.cy + rng.uniform(-0.6, 0.6) * (region.ry - r)
        acc = np.maximum(acc, _sphere(x, y, cx, cy, r * rng.uniform(0.75, 1.0), e))
    ly.add[rs, cs] += (0.02 + 0.05 * f.severity) * acc * inside
    ly.op[rs, cs] = np.maximum(ly.op[rs, cs], (0.3 + 0.4 * f.severity) * acc * inside)


def _draw_emphysema(anat, ly, f, region, side, rs, cs, x, y, inside, rng, e):
    sev = f.severity
    big_t = anat.half_thorax(side)
    lung = lung_field(anat, side, x, y) * inside
    ly.extra_air[rs, cs] += lung * max(0.95 - anat.aeration, 0.05) * (0.35 + 0.45 * sev)
    u = np.clip(SIGN[side] * (x - anat.midline_x) / big_t, 0.0, 1.0)
    ly.vmult[rs, cs] *= 1.0 - lung * (0.3 + 0.5 * sev) * u
    for _ in range(int(rng.integers(0, 3))):  # bullae in the upper zones
        br = big_t * rng.uniform(0.07, 0.15)
        bx = anat.midline_x + SIGN[side] * big_t * rng.uniform(0.45, 0.8)
        by = anat.apex[side][1] + anat.lung_height * rng.uniform(0.12, 0.3)
        d = np.sqrt((x - bx) ** 2 + (y - by) ** 2)
        bulla = _ramp((br - d) / e) * lung
        ly.extra_air[rs, cs] += 0.1 * bulla
        ly.vmult[rs, cs] *= 1.0 - bulla
        ly.add[rs, cs] += 0.03 * np.clip(1 - np.abs(d - br) / (1.2 * e), 0, 1) * lung


def _draw_hiatal_hernia(anat, ly, f, region, side, rs, cs, x, y, inside, rng, e):
    r = min(region.rx, region.ry) / 1.06
    prof = _sphere(x, y, region.cx, region.cy, r, e) * inside
    sev = f.severity
    ly.add[rs, cs] += (0.18 + 0.2 * sev) * prof
    level = region.cy + rng.uniform(-0.2, 0.25) * r
    gas = _sphere(x, y, region.cx, region.cy, 0.85 * r, e) * _ramp((level - y) / (0.7 * e))
    ly.add[rs, cs] -= (0.2 + 0.25 * sev) * np.sqrt(gas) * inside * ly.thick[rs, cs]


_FINDING_DRAW = {
    "effusion": _draw_effusion,
    "pneumothorax": _draw_pneumothorax,
    "nodule": _draw_nodule,
    "mass": _draw_mass,
    "consolidation": _draw_consolidation,
    "atelectasis": _draw_atelectasis,
    "edema": _draw_edema,
    "groundglass": _draw_groundglass,
    "interstitial": _draw_interstitial,
    "hilar_enlargement": _draw_hilar,
    "emphysema": _draw_emphysema,
    "hiatal_hernia": _draw_hiatal_hernia,
}


def _density(
    anat: Anatomy,
    findings: Sequence[Finding],
    cv: _Canvas,
    chest: _Chest,
    *,
    with_vessels: bool = True,
) -> np.ndarray:
    heart_scale, widen = 1.0, 0.0
    drawn = anat
    for f in findings:
        if f.kind == "cardiomegaly":
            heart_scale = max(heart_scale, cardiomegaly_scale(f.severity))
        elif f.kind == "wide_mediastinum":
            widen = max(widen, mediastinal_widening(f.severity))
        elif f.kind == "emphysema":
            drawn = emphysema_anatomy(anat, f.severity)
    ly = _anatomy_layers(
        drawn, cv, chest, heart_scale=heart_scale, widen=widen, with_vessels=with_vessels
    )
    if findings:
        fractures = _draw_findings(drawn, ly, findings, chest.finding_seed)
        if fractures:
            _refracture(drawn, ly, fractures)
    return _compose(ly)


def _refracture(anat: Anatomy, ly: _Layers, fractures) -> None:
    """Redraw the ribs under each fracture's region with the break applied."""
    cv = ly.cv
    e = max(cv.step, 0.01 * anat.half_thorax(RIGHT))
    plain = np.zeros_like(ly.add)
    broken = np.zeros_like(ly.add)
    _ribs(anat, cv, plain, e, ())
    _ribs(anat, cv, broken, e, fractures)
    ly.ribs += (broken - plain) * ly.rib_weight


# --- tone, resampling, devices ---------------------------------------------------------------


_LUT_SIZE = 4096


def _tone_lut(ref: np.ndarray, chest: _Chest) -> tuple[float, float, np.ndarray]:
    """Density -> uint8 lookup table: partial histogram equalisation fitted on ``ref`` (the
    finding-free chest), then gamma and contrast. Returns (lowest density, bins per unit, lut)."""
    levels = np.linspace(0.0, 1.0, 49)
    q = np.quantile(ref, levels).astype(np.float64)
    q = q + np.arange(q.size) * 1e-6
    span = q[-1] - q[0]
    lo, hi = q[0] - 0.05 * span, q[-1] + 0.4 * span
    d = np.linspace(lo, hi, _LUT_SIZE)
    eq = np.interp(d, q, levels)
    lin = np.clip((d - q[1]) / (q[-2] - q[1]), 0.0, 1.0)
    v = chest.eq_alpha * eq + (1.0 - chest.eq_alpha) * lin
    v = np.power(np.clip(v, 0.0, 1.0), chest.gamma)
    v = 0.5 + (v - 0.5) * chest.contrast
    v = chest.black + (chest.white - chest.black) * v
    lut = np.clip(v * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return float(lo), float((_LUT_SIZE - 1) / (hi - lo)), lut


def _to_uint8(
    d: np.ndarray, lut: tuple[float, float, np.ndarray], width: int, height: int, chest: _Chest
) -> np.ndarray:
    """Working-grid density -> full-size uint8 image (grain, heel effect, tone curve, resize)."""
    lo, scale, table = lut
    h, w = d.shape
    heel = 1.0 + chest.heel * np.linspace(-1.0, 1.0, h, dtype=_F32)[:, None]
    z = (d * (heel + chest.grain_sigma * chest.grain) - _F32(lo)) * _F32(scale)
    idx = np.clip(z, 0, _LUT_SIZE - 1).astype(np.intp)
    small = table[idx]
    if (w, h) == (width, height):
        return small
    out = np.asarray(Image.fromarray(small).resize((width, height), Image.BILINEAR))
    if width < 2.5 * w:  # the working-grid grain is fine enough
        return out
    oy, ox = chest.tile_offset
    reps = (height // 128 + 2, width // 128 + 2)
    tile = np.tile(chest.tile, reps)[oy : oy + height, ox : ox + width]
    return np.clip(out.astype(np.int16) + tile, 0, 255).astype(np.uint8)


def _smooth_path(path: list[tuple[float, float]], n: int) -> list[tuple[float, float]]:
    """Catmull-Rom spline through the points of ``path`` (``n`` samples per segment)."""
    if len(path) < 3:
        return path
    p = np.asarray(path, dtype=np.float64)
    p = np.vstack([2 * p[0] - p[1], p, 2 * p[-1] - p[-2]])
    t = np.linspace(0.0, 1.0, n, endpoint=False)[:, None]
    out = []
    for i in range(1, len(p) - 2):
        p0, p1, p2, p3 = p[i - 1], p[i], p[i + 1], p[i + 2]
        seg = 0.5 * (
            2 * p1
            + (p2 - p0) * t
            + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
            + (3 * p1 - p0 - 3 * p2 + p3) * t**3
        )
        out.extend(map(tuple, seg))
    out.append(tuple(p[-2]))
    return [(float(a), float(b)) for a, b in out]


def _draw_devices(img: np.ndarray, devices: Sequence[Device], anat: Anatomy) -> np.ndarray:
    """Draw devices at full resolution; mask values are opacities (255: fully radio-opaque)."""
    if not devices:
        return img
    big_t = anat.half_thorax(RIGHT)
    pil = Image.new("L", (anat.width, anat.height), 0)
    draw = ImageDraw.Draw(pil)

    def px(v: float) -> int:
        return max(round(float(v)), 1)

    for dev in devices:
        path = [(float(a), float(b)) for a, b in dev.path]
        if dev.kind != "sternal_wires":
            path = _smooth_path(path, 6)
        if dev.kind == "endotracheal_tube":
            draw.line(path, fill=40, width=px(0.05 * big_t), joint="curve")
            draw.line(path, fill=230, width=px(0.009 * big_t), joint="curve")
        elif dev.kind == "nasogastric_tube":
            draw.line(path, fill=215, width=px(0.016 * big_t), joint="curve")
        elif dev.kind == "central_line":
            draw.line(path, fill=200, width=px(0.011 * big_t), joint="curve")
        elif dev.kind == "pacemaker":
            gx, gy = path[0]
            gw, gh = 0.13 * big_t, 0.1 * big_t
            draw.line(path, fill=235, width=px(0.013 * big_t), joint="curve")
            draw.rounded_rectangle((gx - gw, gy - gh, gx + gw, gy + gh), radius=0.4 * gh, fill=250)
            draw.rectangle((gx - 0.6 * gw, gy - 0.35 * gh, gx + 0.2 * gw, gy + 0.1 * gh), fill=200)
        elif dev.kind == "sternal_wires":
            rw, rh = 0.035 * big_t, 0.022 * big_t
            for x, y in path:
                draw.ellipse((x - rw, y - rh, x + rw, y + rh), outline=245, width=px(0.01 * big_t))
                draw.line((x, y + rh, x + 0.3 * rw, y + 2.2 * rh), fill=245, width=px(0.01 * big_t))
    bbox = pil.getbbox()
    if bbox is None:
        return img
    x0, y0, x1, y1 = bbox
    alpha = np.asarray(pil.crop(bbox), dtype=_F32) * _F32(1.0 / 255.0)
    sub = img[y0:y1, x0:x1].astype(_F32)
    # radio-opaque: pull the pixel towards white by the device's opacity
    out = img.copy()
    out[y0:y1, x0:x1] = np.clip(sub + (255.0 - sub) * alpha + 0.5, 0, 255).astype(np.uint8)
    return out


_GLYPHS = {
    "L": ("#..", "#..", "#..", "#..", "###"),
    "R": ("##.", "#.#", "##.", "#.#", "#.#"),
}
"""3 x 5 bitmaps of the side-marker letters."""


def _draw_marker(img: np.ndarray, marker: tuple[int, str] | None) -> np.ndarray:
    if marker is None:
        return img
    corner, letter = marker
    h, w = img.shape
    u = max(int(0.008 * min(w, h)), 1)
    gw, gh = 3 * u, 5 * u
    margin = int(0.04 * min(w, h))
    x0 = margin if corner in (0, 2) else w - margin - gw
    y0 = margin if corner in (0, 1) else h - margin - gh
    out = img.copy()
    out[y0 - u : y0 + gh + u, x0 - u : x0 + gw + u] //= 3
    for row, bits in enumerate(_GLYPHS[letter]):
        for col, bit in enumerate(bits):
            if bit == "#":
                out[y0 + row * u : y0 + (row + 1) * u, x0 + col * u : x0 + (col + 1) * u] = 250
    return out


# --- public API ------------------------------------------------------------------------------


def render_frontal(
    anatomy: Anatomy,
    findings: Sequence[Finding],
    devices: Sequence[Device],
    rng: np.random.Generator,
) -> np.ndarray:
    """A frontal (PA/AP) chest radiograph: uint8, shape (anatomy.height, anatomy.width).

    Findings and devices are drawn where their regions/paths (image pixels) say. The same
    ``rng`` state gives the same bytes; the generator's draws do not depend on ``findings``.
    """
    w, h = anatomy.width, anatomy.height
    work = _Canvas.make(w, h, WORK_SIDE if max(w, h) <= LARGE_SIDE else WORK_SIDE_LARGE)
    chest = _sample_chest(anatomy, rng, work)
    coarse = _Canvas.make(w, h, _COARSE_SIDE)
    ref = _density(anatomy, (), coarse, chest, with_vessels=False)
    d = _density(anatomy, tuple(findings), work, chest)
    img = _to_uint8(d, _tone_lut(ref, chest), w, h, chest)
    img = _draw_devices(img, devices, anatomy)
    return _draw_marker(img, chest.marker)


def render_lateral(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A plausible lateral chest radiograph (uint8, shape (height, width)); no findings.

    The patient usually faces the image left: sternum and heart in front, vertebral column
    behind, both hemidiaphragms below and the raised arms over the upper chest.
    """
    cv = _Canvas.make(width, height, WORK_SIDE)
    x, y = cv.xs, cv.ys
    wf, hf = float(width), float(height)
    sg = -1.0 if rng.random() < 0.85 else 1.0  # image-x direction of the patient's front
    cx = wf / 2 + rng.normal(0, 0.02 * wf)
    half = min(wf * rng.uniform(0.34, 0.42), hf * 0.4)  # half the chest's front-back depth
    apex_y = hf * rng.uniform(0.08, 0.14)
    dia_y = hf * rng.uniform(0.6, 0.7)
    e = max(cv.step, 0.006 * half)
    eu = e / half
    u = sg * (x - cx) / half  # +1 at the front, -1 at the back
    v = (y - apex_y) / (dia_y - apex_y)  # 0 at the apex, 1 at the top of the diaphragm
    vc = np.clip(v, 0.0, 1.6)
    # body: chest wall in front and behind, narrower neck above the apex
    front = 1.02 + 0.06 * np.sin(vc * 2.0) - 0.55 * np.clip(-v / 0.5, 0.0, 1.0) ** 1.5
    back = -1.0 - 0.08 * np.sin(vc * 1.6) + 0.35 * np.clip(-v / 0.5, 0.0, 1.0) ** 1.5
    body = _ramp((front - u) / eu) * _ramp((u - back) / eu)
    mid = (front + back) / 2
    prof = np.sqrt(np.clip(1.0 - ((u - mid) / ((front - back) / 2 + 1e-3)) ** 2, 0.0, 1.0))
    thick = body * (0.45 + 0.55 * prof)
    # lungs: apex behind the middle, retrosternal space in front, deep posterior sulcus
    uf = -0.05 + 0.9 * np.sqrt(np.clip(v / 0.4, 0.0, 1.0))
    ub = -0.05 - 0.85 * np.sqrt(np.clip(v / 0.3, 0.0, 1.0))
    vd = 1.0 + 0.22 * ((u - 0.25) / 1.1) ** 2 + 0.3 * np.clip(-u - 0.35, 0.0, None) ** 1.5
    vd2 = vd + rng.uniform(0.02, 0.06)  # the other hemidiaphragm, a little lower
    lungs = _ramp((uf - u) / eu) * _ramp((u - ub) / eu) * _ramp((v - 0.0) * (dia_y - apex_y) / e)
    lung1 = lungs * _ramp((vd - v) * (dia_y - apex_y) / e)
    lung2 = lungs * _ramp((vd2 - v) * (dia_y - apex_y) / e)
    lung = 0.6 * lung1 + 0.4 * lung2
    # heart in front and below; hila in the middle
    hu, hv = 0.38 + rng.uniform(-0.05, 0.05), 0.85
    r2 = ((u - hu - 0.25 * (v - hv)) / 0.58) ** 2 + ((v - hv) / 0.4) ** 2
    heart = np.clip((1.0 - r2) / 0.25, 0.0, 1.0) ** 0.7
    r2h = ((u + 0.08) / 0.16) ** 2 + ((v - 0.42) / 0.12) ** 2
    hilum = np.clip(1.0 - r2h, 0.0, 1.0)
    aer = rng.uniform(0.6, 0.7)
    air = lung * aer * (1.0 - 0.6 * heart) * (1.0 - 0.4 * hilum)
    # trachea from the neck to the carina, sloping backwards
    tu = 0.2 - 0.28 * np.clip((v + 0.3) / 0.75, 0.0, 1.0)
    trach = _ramp((0.06 - np.abs(u - tu)) / eu) * (v < 0.45) * body
    air = np.maximum(air, 0.3 * trach)
    # stomach gas under the front of the left hemidiaphragm
    gas = np.clip(1.0 - ((u - 0.3) / 0.2) ** 2 - ((v - vd2 - 0.08) / 0.05) ** 2, 0.0, 1.0)
    air = np.maximum(air, 0.35 * np.sqrt(gas))
    add = np.zeros_like(air)
    # thoracic spine: vertebral bodies with discs, kyphotic, posterior elements behind
    su = -0.68 + 0.08 * np.sin(np.clip(v, -0.5, 1.8) * 1.7)
    vb = _ramp((0.12 - np.abs(u - su)) / eu) * body
    ph = y / (0.038 * hf) + rng.uniform(0, 1)
    disc = np.clip((np.cos(2 * np.pi * ph) - 0.6) / 0.4, 0.0, 1.0)
    add += vb * (0.16 - 0.08 * disc)
    post = _ramp((0.07 - np.abs(u - su + 0.22)) / eu) * body
    add += 0.07 * post * (0.6 + 0.4 * np.sin(2 * np.pi * ph))
    # sternum along the front wall
    st = _ramp((0.035 - np.abs(u - front + 0.06)) / eu) * (v > 0.05) * (v < 0.8)
    add += 0.08 * st
    # ribs: oblique bands sloping down towards the front, two sides slightly offset
    for k, off in enumerate((0.0, rng.uniform(0.2, 0.4))):
        rp = (v * 9.0 - 1.6 * u + off) + 0.3 * k
        ribs = np.clip(1.0 - np.abs(rp - np.round(rp)) / 0.22, 0.0, 1.0) * lung1
        add += 0.035 * ribs
    # raised arms: humeri and soft tissue running up and forward over the upper chest
    for k in range(2):
        a0 = rng.uniform(0.25, 0.45) + 0.1 * k
        au = -0.25 + 0.12 * k + a0 * (-v)
        arm = _ramp((0.16 - np.abs(u - au)) / eu) * np.clip((0.35 - v) / 0.2, 0.0, 1.0)
        bone = _ramp((0.05 - np.abs(u - au)) / eu) * np.clip((0.3 - v) / 0.2, 0.0, 1.0)
        add += 0.1 * arm + 0.12 * bone
    tex = _upsample_noise(_smooth_noise(rng, 16, 16), cv.w, cv.h)
    d = thick * (1.0 - air) * (1.0 + 0.03 * tex) + add * (0.4 + 0.6 * body)
    chest = _Chest(
        par=tex,
        grain=_tiled(rng.standard_normal((160, 160), dtype=_F32), cv.h, cv.w),
        tile=np.round(rng.standard_normal((128, 128)) * 1.2).astype(np.int16),
        tile_offset=(int(rng.integers(0, 128)), int(rng.integers(0, 128))),
        vessels=(np.zeros((0, 5), _F32), np.zeros((0, 5), _F32)),
        vertebra_phase=0.0,
        humeral_heads=False,
        scapula_u=0.0,
        gamma=float(rng.uniform(0.95, 1.4)),
        contrast=float(rng.uniform(0.8, 1.0)),
        eq_alpha=float(rng.uniform(0.5, 0.85)),
        black=float(rng.uniform(0.0, 0.05)),
        white=float(rng.uniform(0.92, 1.0)),
        heel=float(rng.normal(0.0, 0.04)),
        grain_sigma=float(rng.uniform(0.008, 0.02)),
        marker=(int(rng.integers(0, 4)), "L") if rng.random() < 0.7 else None,
        finding_seed=0,
    )
    ref = d[:: max(cv.h // 96, 1), :: max(cv.w // 96, 1)]
    img = _to_uint8(d.astype(_F32), _tone_lut(ref, chest), width, height, chest)
    return _draw_marker(img, chest.marker)
