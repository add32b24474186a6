"""The public API ``gazeloc.gaze.heatmap`` / ``gazeloc.gaze.window`` and geometry
properties of the framed heatmap (hypothesis)."""

from __future__ import annotations

import inspect
import logging

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gazeloc.gaze
from gazeloc.gaze import SentenceTimes, heatmap, window
from gazeloc.gaze.frame import frame_geometry
from gazeloc.gaze.oracle import heatmap_oracle


def fixation(t0, t1, x, y, res=10.0, rect=None):
    xmin, ymin, xmax, ymax = rect if rect is not None else (0, 0, 100_000, 100_000)
    return {
        "timestamp_start_fixation": float(t0),
        "timestamp_end_fixation": float(t1),
        "x_position": float(x),
        "y_position": float(y),
        "angular_resolution_x_pixels_per_degree": float(res),
        "angular_resolution_y_pixels_per_degree": float(res),
        "xmin_shown_from_image": xmin,
        "ymin_shown_from_image": ymin,
        "xmax_shown_from_image": xmax,
        "ymax_shown_from_image": ymax,
    }


def test_public_names_and_signatures_are_the_contract():
    assert gazeloc.gaze.heatmap is heatmap and gazeloc.gaze.window is window
    p = inspect.signature(heatmap).parameters
    assert list(p)[:3] == ["fixations", "t0", "t1"]
    for name, default in (
        ("image_width", inspect.Parameter.empty),
        ("image_height", inspect.Parameter.empty),
        ("size", 512),
        ("sigma_degrees", 1.0),
    ):
        assert p[name].kind is inspect.Parameter.KEYWORD_ONLY
        assert p[name].default == default
    p = inspect.signature(window).parameters
    assert list(p)[:3] == ["method", "sentences", "index"]
    assert all(q.default is not inspect.Parameter.empty for q in list(p.values())[3:])
    for field in ("start", "end", "first_mention", "last_mention"):
        assert hasattr(SentenceTimes(1.0, 2.0, 1.5, 1.5), field)


def test_window_contract_default_and_empty(caplog):
    sentences = [SentenceTimes(2.0, 5.0, 3.0, 4.0), SentenceTimes(6.0, 9.0, 7.0, 8.0)]
    # default: from 1.5 s before the sentence start (not before the previous start) to the
    # start of the word of the last mention
    assert window("1.5s_startofsentence_lastmention", sentences, 1) == (4.5, 8.0)
    assert window("1.5s_startofsentence_lastmention", sentences, 0) == (0.5, 4.0)
    # an empty window is None, never (t0, t1) with t0 >= t1
    with caplog.at_level(logging.DEBUG, logger="gazeloc.gaze.windows"):
        assert window("single_startofsentence", sentences, 1) is None
    assert "empty window" in caplog.text


def test_default_size_is_512_and_float32():
    m = heatmap(pl.DataFrame([fixation(0, 1, 50, 60)]), 0, 1, image_width=200, image_height=100)
    assert m.shape == (512, 512) and m.dtype == np.float32


@st.composite
def single_fixation_cases(draw):
    width = draw(st.integers(20, 400))
    height = draw(st.integers(20, 400))
    size = draw(st.sampled_from([16, 32, 64, 128]))
    g = frame_geometry(width, height, size)
    scale = max(width / g.w, height / g.h)  # image pixels per frame pixel
    res = draw(st.floats(2.0, 6.0)) * max(scale, 1.0)  # sigma >= 2 frame and image pixels
    x = draw(st.floats(0, width - 1))
    y = draw(st.floats(0, height - 1))
    return width, height, size, res, x, y


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(single_fixation_cases())
def test_peak_lands_where_the_frame_maps_the_fixation(case):
    """Image pixel (x, y) lands at ((x+.5)w/W − .5 + left, (y+.5)h/H − .5 + top).

    (docs/method.md#the-square-frame)
    """
    width, height, size, res, x, y = case
    m = heatmap(
        pl.DataFrame([fixation(0, 1, x, y, res)]),
        0,
        1,
        image_width=width,
        image_height=height,
        size=size,
    )
    g = frame_geometry(width, height, size)
    assert np.isfinite(m).all() and m.min() >= 0 and m.max() <= 1 + 1e-6
    # padding stays zero
    inside = np.zeros_like(m, dtype=bool)
    inside[g.top : g.top + g.h, g.left : g.left + g.w] = True
    assert not m[~inside].any()
    want_x = (x + 0.5) * g.w / width - 0.5 + g.left
    want_y = (y + 0.5) * g.h / height - 0.5 + g.top
    # the maximum is reached within a frame pixel of there, plus half an image pixel (the
    # density is sampled at integer image pixels; upsampling interpolates between them and
    # can make a plateau near an edge, so argmax alone could pick its far end)
    tol_x = 1.0 + 0.5 * g.w / width
    tol_y = 1.0 + 0.5 * g.h / height
    ys, xs = np.mgrid[0:size, 0:size]
    near = (np.abs(xs - want_x) <= tol_x) & (np.abs(ys - want_y) <= tol_y)
    assert m[near].max() >= m.max() - 1e-6


@st.composite
def readings(draw):
    n = draw(st.integers(1, 8))
    rows, t = [], 0.0
    for _ in range(n):
        # times on a 1/8 s grid: shifts and power-of-two scalings below are exact
        t += draw(st.integers(0, 8)) / 8
        duration = draw(st.integers(0, 8)) / 8
        x = draw(st.floats(-30, 130))
        y = draw(st.floats(-30, 110))
        res = draw(st.floats(3.0, 20.0))
        x0, y0 = draw(st.integers(-20, 60)), draw(st.integers(-20, 50))
        rect = (x0, y0, x0 + draw(st.integers(10, 150)), y0 + draw(st.integers(10, 150)))
        rows.append(fixation(t, t + duration, x, y, res, rect))
        t += duration
    t0 = draw(st.integers(-8, int(t * 8) + 8)) / 8
    t1 = t0 + draw(st.integers(0, int(t * 8) + 16)) / 8
    return rows, t0, t1


def _render(rows, t0, t1):
    return heatmap(pl.DataFrame(rows), t0, t1, image_width=100, image_height=80, size=32)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(readings(), st.integers(-400, 400), st.sampled_from([0.25, 0.5, 2.0, 4.0]))
def test_maps_depend_on_relative_times_only(case, shift, factor):
    """Shifting every time by a constant, or scaling every time by a positive factor, leaves
    the (max-normalised) map unchanged; values stay in [0, 1] and never NaN."""
    rows, t0, t1 = case
    base = _render(rows, t0, t1)
    assert np.isfinite(base).all() and base.min() >= 0 and base.max() <= 1 + 1e-6

    def moved(f):
        out = []
        for r in rows:
            r = dict(r)
            r["timestamp_start_fixation"] = f(r["timestamp_start_fixation"])
            r["timestamp_end_fixation"] = f(r["timestamp_end_fixation"])
            out.append(r)
        return out

    logging.disable(logging.WARNING)  # empty windows warn; not the point here
    try:
        shift = shift / 8
        shifted = _render(moved(lambda v: v + shift), t0 + shift, t1 + shift)
        scaled = _render(moved(lambda v: v * factor), t0 * factor, t1 * factor)
    finally:
        logging.disable(logging.NOTSET)
    np.testing.assert_allclose(shifted, base, atol=2e-4)
    np.testing.assert_allclose(scaled, base, atol=2e-4)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(readings())
def test_fixations_outside_the_window_change_nothing(case):
    rows, t0, t1 = case
    extra = [fixation(t1 + 0.5, t1 + 2.0, 50, 40), fixation(t0 - 3.0, t0, 20, 20)]
    logging.disable(logging.WARNING)
    try:
        np.testing.assert_array_equal(_render(rows + extra, t0, t1), _render(rows, t0, t1))
    finally:
        logging.disable(logging.NOTSET)


def test_bad_inputs_named_in_the_issue(caplog):
    """Each bad input of the issue: its handling (the other tests check the values)."""
    kw = dict(image_width=64, image_height=64, size=32)
    # fixation outside the image: allowed, its Gaussian's tail inside the image counts
    fx = pl.DataFrame([fixation(0, 1, -4, 30, res=8)])
    m = heatmap(fx, 0, 1, **kw)
    assert m.max() > 0.9 and m[:, 0].any()  # max 1 at the image's edge, averaged by the resize
    assert np.abs(m - heatmap_oracle(fx, 0, 1, **kw)).max() < 1e-5
    # rectangle beyond the image bounds: clipped to the image, no error
    m = heatmap(pl.DataFrame([fixation(0, 1, 30, 30, 8, (-500, -500, 900, 900))]), 0, 1, **kw)
    assert np.isfinite(m).all() and m.max() > 0.9
    # zero duration: adds nothing (all-zero map, logged); negative duration: an error
    with caplog.at_level(logging.WARNING, logger="gazeloc.gaze.render"):
        m = heatmap(pl.DataFrame([fixation(1, 1, 30, 30)]), 0, 2, **kw)
    assert not m.any() and "no fixation adds" in caplog.text
    with pytest.raises(ValueError, match="negative duration"):
        heatmap(pl.DataFrame([fixation(2, 1, 30, 30)]), 0, 3, **kw)
    # window with no fixation: all zeros, never NaN, logged
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="gazeloc.gaze.render"):
        m = heatmap(pl.DataFrame([fixation(0, 1, 30, 30)]), 5, 6, **kw)
    assert not m.any() and not np.isnan(m).any() and "all-zero map" in caplog.text
