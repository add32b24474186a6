"""Synthetic chest anatomy, finding placement and rendering (gazeloc.synthetic.anatomy/render)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from gazeloc.synthetic.anatomy import (
    LATERALIZED,
    Anatomy,
    place_device,
    place_finding,
    sample_anatomy,
)
from gazeloc.synthetic.render import WORK_SIDE, render_frontal, render_lateral
from gazeloc.synthetic.types import DEVICE_KINDS, FINDING_KINDS, Finding, Region

ZONES = {
    "upper",
    "middle",
    "lower",
    "apical",
    "basal",
    "perihilar",
    "diffuse",
    "cardiac",
    "mediastinal",
    "retrocardiac",
    "rib",
}
W, H = 360, 320  # below WORK_SIDE: rendered without resampling


def _anatomy(seed: int, view: str = "PA", w: int = W, h: int = H) -> Anatomy:
    return sample_anatomy(w, h, np.random.default_rng(seed), view=view)


def _inside(regions: tuple[Region, ...], w: int, h: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    m = np.zeros((h, w), bool)
    for r in regions:
        m |= ((xx - r.cx) / r.rx) ** 2 + ((yy - r.cy) / r.ry) ** 2 <= 1.0
    return m


def _box_inside(region: Region, w: int, h: int) -> bool:
    x0, y0, x1, y1 = region.box
    return x0 >= 0 and y0 >= 0 and x1 <= w - 1 and y1 <= h - 1


# --- rendering basics ------------------------------------------------------------------------


@pytest.mark.parametrize(("w", "h", "view"), [(W, H, "PA"), (300, 420, "AP"), (700, 560, "PA")])
def test_render_frontal_is_2d_uint8_of_the_anatomy_size(w: int, h: int, view: str) -> None:
    an = _anatomy(1, view, w, h)
    img = render_frontal(an, (), (), np.random.default_rng(2))
    assert img.shape == (h, w)
    assert img.ndim == 2
    assert img.dtype == np.uint8
    # a radiograph, not a flat field: dark air/lungs and bright bone/abdomen
    assert np.percentile(img, 2) < 40
    assert np.percentile(img, 98) > 200
    assert img.std() > 40


def test_render_frontal_lungs_darker_than_heart_and_abdomen() -> None:
    an = _anatomy(3)
    img = render_frontal(an, (), (), np.random.default_rng(0)).astype(float)
    lung = an.right_lung
    heart = an.heart
    lung_px = img[int(lung.cy) - 5 : int(lung.cy) + 5, int(lung.cx) - 5 : int(lung.cx) + 5]
    heart_px = img[int(heart.cy) - 5 : int(heart.cy) + 5, int(heart.cx) - 5 : int(heart.cx) + 5]
    abdomen_px = img[H - 20 : H - 5, int(an.midline_x) + 40 : int(an.midline_x) + 60]
    assert lung_px.mean() + 60 < heart_px.mean()
    assert lung_px.mean() + 60 < abdomen_px.mean()


def test_render_frontal_is_deterministic() -> None:
    an = _anatomy(4)
    f = place_finding("consolidation", an, np.random.default_rng(5))
    d = place_device("endotracheal_tube", an, np.random.default_rng(6))
    a = render_frontal(an, [f], [d], np.random.default_rng(7))
    b = render_frontal(an, [f], [d], np.random.default_rng(7))
    c = render_frontal(an, [f], [d], np.random.default_rng(8))
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()


def test_sampling_is_deterministic() -> None:
    assert _anatomy(9) == _anatomy(9)
    assert _anatomy(9) != _anatomy(10)
    an = _anatomy(9)
    for kind in FINDING_KINDS:
        assert place_finding(kind, an, np.random.default_rng(1)) == place_finding(
            kind, an, np.random.default_rng(1)
        )


def test_render_lateral_shape_and_determinism() -> None:
    a = render_lateral(400, 360, np.random.default_rng(3))
    b = render_lateral(400, 360, np.random.default_rng(3))
    assert a.shape == (360, 400)
    assert a.dtype == np.uint8
    assert a.tobytes() == b.tobytes()
    assert a.std() > 30
    big = render_lateral(800, 900, np.random.default_rng(3))
    assert big.shape == (900, 800)


def test_large_images_are_resampled_from_the_working_grid() -> None:
    w, h = 2 * WORK_SIDE + 37, 2 * WORK_SIDE - 11
    an = _anatomy(11, "PA", w, h)
    img = render_frontal(an, (), (), np.random.default_rng(0))
    assert img.shape == (h, w)


# --- anatomy ---------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_anatomy_invariants(seed: int) -> None:
    view = "AP" if seed % 2 else "PA"
    w, h = (W, H) if seed % 3 else (1000, 820)
    an = _anatomy(seed, view, w, h)
    rl, ll, heart = an.right_lung, an.left_lung, an.heart
    # patient right on the image left; heart between the lungs, left of midline in the patient
    assert rl.cx < an.midline_x < ll.cx
    assert rl.cx < heart.cx < ll.cx
    assert heart.cx > an.midline_x
    assert an.lateral_x[0] < an.midline_x < an.lateral_x[1]
    # chest box holds the lungs (apices, lateral walls, costophrenic angles) and lies in the image
    x0, y0, x1, y1 = an.chest_box
    assert 0 <= x0 < x1 <= w - 1 and 0 <= y0 < y1 <= h - 1
    for px, py in (*an.apex, *an.costophrenic, an.carina, (an.heart.cx, an.heart.cy)):
        assert x0 - 1 <= px <= x1 + 1 and y0 - 1 <= py <= y1 + 1
    assert x0 <= an.lateral_x[0] + 1 and an.lateral_x[1] - 1 <= x1
    for lung in (rl, ll):
        assert x0 <= lung.cx <= x1 and y0 <= lung.cy <= y1
        assert _box_inside(lung, w, h)
    # apices above the carina above the domes above the costophrenic angles
    for s in (0, 1):
        assert an.apex[s][1] < an.carina[1] < an.dome[s][1] < an.costophrenic[s][1]
    assert an.costophrenic[0][0] < an.dome[0][0] < an.midline_x < an.dome[1][0]
    assert 0.36 < an.ctr < 0.6
    assert an.mediastinum.cy < heart.cy


def test_right_hemidiaphragm_usually_higher_and_ap_heart_larger() -> None:
    pa = [_anatomy(s, "PA") for s in range(40)]
    ap = [_anatomy(s, "AP") for s in range(40)]
    higher = np.mean([a.dome[0][1] < a.dome[1][1] for a in pa])
    assert higher > 0.7
    assert np.mean([a.ctr for a in ap]) > np.mean([a.ctr for a in pa]) + 0.02


def test_sample_anatomy_rejects_unknown_view() -> None:
    with pytest.raises(ValueError, match="view"):
        sample_anatomy(100, 100, np.random.default_rng(0), view="LATERAL")


# --- findings --------------------------------------------------------------------------------


def _check_finding(f: Finding, an: Anatomy, kind: str) -> None:
    assert f.kind == kind
    assert 0.0 < f.severity <= 1.0
    assert f.size in ("small", "moderate", "large")
    assert f.zone in ZONES
    assert len(f.regions) >= 1
    for r in f.regions:
        assert _box_inside(r, an.width, an.height)
        assert r.rx > 0 and r.ry > 0
    if kind not in LATERALIZED:
        assert f.side == "midline"
    elif f.side == "bilateral":
        assert len(f.regions) == 2
        assert f.regions[0].cx < an.midline_x < f.regions[1].cx
    else:
        assert len(f.regions) == 1
        r = f.regions[0]
        assert (r.cx < an.midline_x) == (f.side == "right")


@pytest.mark.parametrize("kind", FINDING_KINDS)
def test_place_finding_regions_sides_and_labels(kind: str) -> None:
    for seed in range(6):
        an = _anatomy(seed, "AP" if seed % 2 else "PA")
        rng = np.random.default_rng(100 + seed)
        side = (None, "right", "left", "bilateral")[seed % 4]
        f = place_finding(kind, an, rng, side=side)
        _check_finding(f, an, kind)
        if side is not None and kind in LATERALIZED:
            assert f.side == side


@pytest.mark.parametrize("kind", FINDING_KINDS)
def test_finding_is_drawn_inside_its_regions(kind: str) -> None:
    for seed, sev in ((0, 0.9), (1, 0.5)):
        an = _anatomy(seed, "PA" if seed == 0 else "AP")
        f = place_finding(kind, an, np.random.default_rng(200 + seed), severity=sev)
        plain = render_frontal(an, (), (), np.random.default_rng(7)).astype(float)
        with_f = render_frontal(an, (f,), (), np.random.default_rng(7)).astype(float)
        diff = np.abs(with_f - plain)
        m = _inside(f.regions, an.width, an.height)
        inside, outside = diff[m].mean(), diff[~m].mean()
        assert inside > 1.0, (kind, inside)
        assert inside > 8.0 * outside + 0.2, (kind, inside, outside)
        assert diff[m].sum() > 0.9 * diff.sum()


@pytest.mark.parametrize("kind", ["consolidation", "effusion", "edema", "pneumothorax"])
def test_clear_findings_are_visible(kind: str) -> None:
    an = _anatomy(2)
    f = place_finding(kind, an, np.random.default_rng(3), severity=0.9)
    plain = render_frontal(an, (), (), np.random.default_rng(7)).astype(float)
    with_f = render_frontal(an, (f,), (), np.random.default_rng(7)).astype(float)
    m = _inside(f.regions, an.width, an.height)
    changed = np.abs(with_f - plain)[m] > 8
    assert changed.mean() > 0.2, (kind, changed.mean())


def test_opacities_brighten_and_pneumothorax_darkens() -> None:
    an = _anatomy(5)
    plain = render_frontal(an, (), (), np.random.default_rng(1)).astype(float)
    for kind, sign in (("consolidation", 1), ("effusion", 1), ("pneumothorax", -1)):
        f = place_finding(kind, an, np.random.default_rng(4), severity=0.9)
        img = render_frontal(an, (f,), (), np.random.default_rng(1)).astype(float)
        m = _inside(f.regions, an.width, an.height)
        assert sign * (img[m] - plain[m]).mean() > 2.0, kind


def test_cardiomegaly_enlarges_the_heart_region() -> None:
    an = _anatomy(6)
    f = place_finding("cardiomegaly", an, np.random.default_rng(0), severity=0.8)
    (r,) = f.regions
    assert r.rx > 1.15 * an.heart.rx
    assert abs(r.cx - an.heart.cx) < 0.5 * an.heart.rx
    w = place_finding("wide_mediastinum", an, np.random.default_rng(0), severity=0.8)
    assert w.regions[0].rx > 1.2 * an.mediastinum.rx


def test_severity_is_sampled_with_a_subtle_tail() -> None:
    an = _anatomy(0)
    rng = np.random.default_rng(0)
    sev = np.array([place_finding("nodule", an, rng).severity for _ in range(200)])
    assert sev.min() > 0.0 and sev.max() <= 1.0
    assert 0.05 < np.mean(sev < 0.3) < 0.5


def test_bad_finding_arguments() -> None:
    an = _anatomy(0)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="unknown finding"):
        place_finding("tumour", an, rng)
    with pytest.raises(ValueError, match="severity"):
        place_finding("nodule", an, rng, severity=0.0)
    with pytest.raises(ValueError, match="side"):
        place_finding("nodule", an, rng, side="middle")


# --- devices ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", DEVICE_KINDS)
def test_device_is_drawn_along_its_path(kind: str) -> None:
    an = _anatomy(8, w=600, h=520)
    dev = place_device(kind, an, np.random.default_rng(1))
    assert dev.kind == kind
    assert len(dev.path) >= (1 if kind == "sternal_wires" else 2)
    for x, y in dev.path:
        assert 0 <= x <= an.width - 1 and 0 <= y <= an.height - 1
    plain = render_frontal(an, (), (), np.random.default_rng(2)).astype(float)
    img = render_frontal(an, (), (dev,), np.random.default_rng(2)).astype(float)
    diff = np.abs(img - plain)
    assert diff.max() > 40
    # every changed pixel lies near the path
    ys, xs = np.nonzero(diff > 0)
    pts = np.asarray(dev.path)
    near = np.zeros(xs.size, bool)
    reach = 0.2 * an.half_thorax(0)
    for (x0, y0), (x1, y1) in itertools.pairwise(pts):
        d = np.array([x1 - x0, y1 - y0])
        t = np.clip(((xs - x0) * d[0] + (ys - y0) * d[1]) / max(d @ d, 1e-9), 0, 1)
        near |= np.hypot(xs - x0 - t * d[0], ys - y0 - t * d[1]) < reach
    for x0, y0 in pts:
        near |= np.hypot(xs - x0, ys - y0) < reach
    assert near.all()


def test_unknown_device_kind() -> None:
    with pytest.raises(ValueError, match="unknown device"):
        place_device("stent", _anatomy(0), np.random.default_rng(0))


def test_min_severity_lifts_sampled_severity_affinely() -> None:
    an = _anatomy(0, "PA")
    for kind in ("consolidation", "nodule", "pneumothorax"):
        base = [place_finding(kind, an, np.random.default_rng(s)).severity for s in range(40)]
        lifted = [
            place_finding(kind, an, np.random.default_rng(s), min_severity=0.4).severity
            for s in range(40)
        ]
        # same draws, mapped s -> 0.4 + 0.6 s
        np.testing.assert_allclose(lifted, [0.4 + 0.6 * s for s in base])
        assert min(lifted) >= 0.4
    # an explicit severity is used as given
    f = place_finding("nodule", an, np.random.default_rng(0), severity=0.1, min_severity=0.5)
    assert f.severity == 0.1
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="min_severity"):
            place_finding("nodule", an, np.random.default_rng(0), min_severity=bad)
