"""Fixation heatmaps in the square frame: hand-computed cases, the oracle, bad input."""

from __future__ import annotations

import logging
import math

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from gazeloc.gaze import FrameRenderer, heatmap
from gazeloc.gaze.frame import frame_geometry, resize_matrix
from gazeloc.gaze.oracle import frame_image, heatmap_oracle


def fixation(t0, t1, x, y, res=10, rect=None, res_y=None, **extra):
    """One fixations.csv row (rect = (xmin, ymin, xmax, ymax) shown from the image)."""
    xmin, ymin, xmax, ymax = rect if rect is not None else (0, 0, 10_000, 10_000)
    return {
        "timestamp_start_fixation": float(t0),
        "timestamp_end_fixation": float(t1),
        "x_position": x,
        "y_position": y,
        "angular_resolution_x_pixels_per_degree": res,
        "angular_resolution_y_pixels_per_degree": res if res_y is None else res_y,
        "xmin_shown_from_image": xmin,
        "ymin_shown_from_image": ymin,
        "xmax_shown_from_image": xmax,
        "ymax_shown_from_image": ymax,
        **extra,
    }


def frame(rows):
    return pl.DataFrame(rows)


def test_resize_matrix_is_pillows_resize():
    rng = np.random.default_rng(0)
    for width, height, size in (
        (3000, 2500, 512),
        (2544, 3056, 512),
        (300, 200, 512),
        (97, 61, 32),
    ):
        g = frame_geometry(width, height, size)
        image = rng.random((height, width)).astype(np.float32)
        pil = np.asarray(
            Image.fromarray(image, mode="F").resize((g.w, g.h), Image.Resampling.BILINEAR)
        )
        ours = resize_matrix(height, g.h) @ (resize_matrix(width, g.w) @ image.T).T
        assert np.abs(ours - pil).max() < 1e-6
        assert np.allclose(np.asarray(resize_matrix(width, g.w).sum(axis=1)).ravel(), 1.0)


def test_identity_frame_is_the_exact_gaussian():
    # W = H = S: the resize is the identity, so the map is the max-normalised density itself
    fx = frame([fixation(1, 2, 32, 20, res=10)])
    m = heatmap(fx, 0, 5, image_width=64, image_height=64, size=64)
    assert m.dtype == np.float32 and m.shape == (64, 64)
    assert m[20, 32] == pytest.approx(1.0)
    assert m[20, 42] == pytest.approx(math.exp(-0.5), rel=1e-5)
    assert m[30, 32] == pytest.approx(math.exp(-0.5), rel=1e-5)
    assert m[23, 36] == pytest.approx(math.exp(-(9 + 16) / 200), rel=1e-5)
    # separate x and y resolutions
    fx = frame([fixation(1, 2, 32, 20, res=10, res_y=5)])
    m = heatmap(fx, 0, 5, image_width=64, image_height=64, size=64)
    assert m[25, 32] == pytest.approx(math.exp(-0.5), rel=1e-5)
    assert m[20, 42] == pytest.approx(math.exp(-0.5), rel=1e-5)
    # sigma_degrees scales both
    m = heatmap(fx, 0, 5, image_width=64, image_height=64, size=64, sigma_degrees=2.0)
    assert m[20, 52] == pytest.approx(math.exp(-0.5), rel=1e-5)


def test_weights_are_in_window_durations_and_density_is_normalised():
    rows = [fixation(1, 2, 10, 10, res=5), fixation(3, 5, 50, 50, res=5)]
    # window [1.5, 4]: in-window durations 0.5 and 1.0
    m = heatmap(frame(rows), 1.5, 4, image_width=64, image_height=64, size=64)
    assert m[50, 50] == pytest.approx(1.0)
    assert m[10, 10] == pytest.approx(0.5, rel=1e-5)
    # equal durations, sigma 5 vs 10: peak density ratio (5/10)^2
    rows = [fixation(1, 2, 12, 12, res=5), fixation(3, 4, 45, 45, res=10)]
    m = heatmap(frame(rows), 0, 9, image_width=64, image_height=64, size=64)
    assert m[12, 12] == pytest.approx(1.0)
    assert m[45, 45] == pytest.approx(0.25, rel=1e-4)


def test_window_boundaries():
    rows = [
        fixation(1, 2, 10, 10, res=5),  # ends at t0: excluded
        fixation(2, 3, 30, 30, res=5),  # inside
        fixation(4, 5, 50, 50, res=5),  # starts at t1: weight 0
    ]
    m = heatmap(frame(rows), 2, 4, image_width=64, image_height=64, size=64)
    assert m[30, 30] == pytest.approx(1.0)
    assert m[10, 10] < 1e-6 and m[50, 50] < 1e-6


def test_clipped_to_the_displayed_rectangle_and_the_image():
    fx = frame([fixation(0, 1, 32, 20, res=10, rect=(0, 0, 37, 64))])
    m = heatmap(fx, 0, 1, image_width=64, image_height=64, size=64)
    assert m[20, 36] == pytest.approx(math.exp(-16 / 200), rel=1e-5)
    assert (m[:, 37:] == 0).all()
    # a fixation outside its rectangle keeps the part of its Gaussian inside it
    fx = frame([fixation(0, 1, 50, 20, res=10, rect=(0, 0, 40, 64))])
    m = heatmap(fx, 0, 1, image_width=64, image_height=64, size=64)
    assert m[20, 39] == pytest.approx(1.0)  # normalised by the max inside the rectangle
    assert (m[:, 40:] == 0).all()
    # outside the image (negative x) and a rectangle beyond the image (clipped, no error)
    fx = frame([fixation(0, 1, -5, 30, res=10, rect=(-100, -50, 200, 300))])
    m = heatmap(fx, 0, 1, image_width=64, image_height=64, size=64)
    assert m[30, 0] == pytest.approx(1.0)
    assert m[30, 10] == pytest.approx(math.exp(-(15**2 - 5**2) / 200), rel=1e-5)


def test_empty_windows_give_zeros_and_a_warning(caplog):
    rows = [fixation(1, 2, 10, 10), fixation(3, 3, 20, 20)]  # the second has zero duration
    for t0, t1 in ((5, 9), (2.5, 3.5), (3, 3)):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="gazeloc.gaze.render"):
            m = heatmap(frame(rows), t0, t1, image_width=64, image_height=64, size=32)
        assert m.shape == (32, 32) and not m.any() and not np.isnan(m).any()
        assert "no fixation adds to the heatmap" in caplog.text
    # a fixation whose displayed rectangle lies outside the image adds nothing either
    fx = frame([fixation(0, 1, 80, 10, res=5, rect=(70, 0, 120, 64))])
    assert not heatmap(fx, 0, 1, image_width=64, image_height=64, size=32).any()


def test_far_tails_are_kept_like_the_reference():
    # 21 sigma off the image: the reference's float64 sum is ~1e-97 of the peak, but it is
    # normalised to 1 all the same; the map is its tail at the image's left edge
    fx = frame([fixation(0, 1, -105, 30, res=5)])
    kw = dict(image_width=64, image_height=64, size=64)
    ours = heatmap(fx, 0, 1, **kw)
    assert ours[30, 0] == pytest.approx(1.0)
    assert np.abs(ours - heatmap_oracle(fx, 0, 1, **kw)).max() < 1e-5


def test_bad_input_is_a_clear_error():
    good = fixation(1, 2, 10, 10)
    with pytest.raises(ValueError, match="row 1 ends before it starts"):
        heatmap(frame([good, fixation(3, 2.5, 5, 5)]), 0, 9, image_width=64, image_height=64)
    with pytest.raises(ValueError, match="angular_resolution_x_pixels_per_degree must be positive"):
        heatmap(frame([fixation(1, 2, 10, 10, res=0)]), 0, 9, image_width=64, image_height=64)
    with pytest.raises(ValueError, match="lack column"):
        heatmap(frame([good]).drop("x_position"), 0, 9, image_width=64, image_height=64)
    nan = frame([good]).with_columns(pl.lit(float("nan")).alias("y_position"))
    with pytest.raises(ValueError, match="y_position is missing or not finite"):
        heatmap(nan, 0, 9, image_width=64, image_height=64)
    with pytest.raises(ValueError, match="invalid window"):
        heatmap(frame([good]), 3, 2, image_width=64, image_height=64)
    with pytest.raises(ValueError, match="sigma_degrees"):
        heatmap(frame([good]), 0, 9, image_width=64, image_height=64, sigma_degrees=0)


def test_max_below_one_after_mapping_matches_the_oracle():
    # a wide Gaussian cut by a zoomed rectangle: its max sits on the cut, and the resize
    # averages it with the zeros beyond, so the framed max is well below 1
    fx = frame([fixation(0, 1, 150, 100, res=40, rect=(0, 0, 120, 300))])
    ours = heatmap(fx, 0, 1, image_width=300, image_height=200, size=64)
    oracle = heatmap_oracle(fx, 0, 1, image_width=300, image_height=200, size=64)
    assert ours.max() < 0.95
    assert np.abs(ours - oracle).max() < 1e-5


def random_reading(rng, width, height, n, res_range=(40, 120)):
    """Fixations with zoom changes, positions near and beyond the displayed rectangle's
    edges and outside the image, rectangles beyond the image."""
    rows = []
    t = 0.0
    rect, res = (0, 0, width, height), int(rng.integers(*res_range))
    for _ in range(n):
        if rng.random() < 0.3:  # zoom / pan
            x0 = int(rng.uniform(-0.1, 0.5) * width)
            y0 = int(rng.uniform(-0.1, 0.5) * height)
            rect = (
                x0,
                y0,
                x0 + int(rng.uniform(0.3, 0.8) * width),
                y0 + int(rng.uniform(0.3, 0.8) * height),
            )
            res = int(rng.integers(*res_range))
        kind = rng.random()
        if kind < 0.15:  # off the image (interface glance)
            x, y = int(rng.uniform(-0.5, 0) * width), int(rng.uniform(0, height))
        elif kind < 0.35:  # near a rectangle edge, inside or out
            x = rect[int(rng.integers(0, 2)) * 2] + int(rng.normal(0, res))
            y = int(rng.uniform(rect[1], rect[3]))
        else:
            x, y = int(rng.uniform(rect[0], rect[2])), int(rng.uniform(rect[1], rect[3]))
        duration = float(rng.uniform(0.0, 0.6)) if rng.random() > 0.05 else 0.0
        rows.append(
            fixation(
                round(t, 3), round(t + duration, 3), x, y, res, rect, res + int(rng.integers(-2, 3))
            )
        )
        t += duration + float(rng.uniform(0.02, 0.2))
    return frame(rows), t


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**31 - 1))
def test_matches_the_oracle_small(seed):
    rng = np.random.default_rng(seed)
    width, height = int(rng.integers(30, 400)), int(rng.integers(30, 400))
    size = int(rng.choice([32, 64, 128, 512]))
    fx, end = random_reading(rng, width, height, int(rng.integers(1, 25)), res_range=(3, 60))
    t0, t1 = sorted(rng.uniform(-0.5, end + 0.5, size=2))
    sigma = float(rng.choice([0.5, 1.0, 1.5]))
    kw = dict(image_width=width, image_height=height, size=size, sigma_degrees=sigma)
    ours = heatmap(fx, t0, t1, **kw)
    oracle = heatmap_oracle(fx, t0, t1, **kw)
    assert np.abs(ours - oracle).max() <= 1e-4


def test_matches_the_oracle_at_real_size():
    """Images of 2,000-3,000 px, sigma 40-120 px, zoom changes, fixations near and beyond the
    rectangles' edges and outside the image (the bench runs many more)."""
    rng = np.random.default_rng(11)
    for width, height in ((2544, 3056), (3000, 2048)):
        fx, end = random_reading(rng, width, height, 10)
        renderer = FrameRenderer(fx, image_width=width, image_height=height, size=512)
        t0, t1 = 0.0, end
        oracle = heatmap_oracle(fx, t0, t1, image_width=width, image_height=height, size=512)
        ours = renderer.render(t0, t1)
        assert np.abs(ours - oracle).max() <= 1e-3
        assert ours.max() <= 1.0 + 1e-6


def test_renderer_reuse_equals_fresh_heatmaps():
    rng = np.random.default_rng(3)
    fx, end = random_reading(rng, 300, 240, 30)
    renderer = FrameRenderer(fx, image_width=300, image_height=240, size=64)
    for t0, t1 in ((0, end / 3), (end / 4, end / 2), (0, end)):
        fresh = heatmap(fx, t0, t1, image_width=300, image_height=240, size=64)
        assert np.array_equal(renderer.render(t0, t1), fresh)


def test_frame_image_padding_matches_design():
    # docs/method.md#the-square-frame: image pixel (x, y) lands at ((x + .5) w/W - .5 + left, ...)
    g = frame_geometry(300, 200, 64)
    assert (g.w, g.h, g.left, g.top) == (64, 43, 0, 10)
    image = np.zeros((200, 300), dtype=np.float32)
    image[100:110, 150:160] = 1
    framed = frame_image(image, 64)
    ys, xs = np.nonzero(framed > 0)
    cy = (104.5 + 0.5) * 43 / 200 - 0.5 + 10
    cx = (154.5 + 0.5) * 64 / 300 - 0.5
    assert np.average(ys, weights=framed[ys, xs]) == pytest.approx(cy, abs=0.05)
    assert np.average(xs, weights=framed[ys, xs]) == pytest.approx(cx, abs=0.05)
