"""The synthetic gaze model: display geometry, fixation statistics, realism of the association."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gazeloc.synthetic.cases import sample_case
from gazeloc.synthetic.gaze import (
    GazeScene,
    attention_episodes,
    gaze_samples,
    simulate_fixations,
    view_at,
)
from gazeloc.synthetic.generate import SynthSettings, generate
from gazeloc.synthetic.realism import measure_gaze
from gazeloc.synthetic.types import FINDING_CATEGORY, Region


def test_unzoomed_view_matches_the_format_example():
    """As in REFLACX: a 2544x3056 image unzoomed is drawn at 1021,0,2819,2160."""
    view = view_at(2544, 3056)
    assert view.shown == (0, 0, 2544, 3056)
    assert view.screen == (1021, 0, 2819, 2160)
    assert view.scale == pytest.approx(0.7068, abs=1e-3)


def test_landscape_view_fills_the_width():
    view = view_at(3056, 2544)
    assert view.screen[0] == 660 and view.screen[2] == 3180
    assert view.screen[1] > 0 and view.screen[3] < 2160


@given(
    st.integers(800, 3200),
    st.integers(800, 3200),
    st.floats(1.3, 3.0),
    st.floats(0.0, 1.0),
    st.floats(0.0, 1.0),
)
@settings(max_examples=60, deadline=None)
def test_zoomed_view_stays_on_image_and_screen(w, h, zoom, fx, fy):
    view = view_at(w, h, zoom, (fx * w, fy * h))
    x0, y0, x1, y1 = view.shown
    assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
    sx0, sy0, sx1, sy1 = view.screen
    assert 658 <= sx0 < sx1 <= 3182 and -2 <= sy0 < sy1 <= 2162
    # image -> screen -> image is the identity
    px, py = np.array([x0 + 0.3 * (x1 - x0)]), np.array([y0 + 0.6 * (y1 - y0)])
    bx, by = view.to_image(*view.to_screen(px, py))
    assert np.allclose([bx[0], by[0]], [px[0], py[0]])


def _scene(rng: np.random.Generator) -> GazeScene:
    lungs = (Region(300, 500, 150, 300), Region(700, 500, 150, 300))
    findings = ((Region(700, 700, 80, 60),), (Region(300, 300, 40, 40),))
    times = [(5.0, 6.2), (9.0, None), (12.0, 13.1)]
    targets = [[0], [], [1]]
    return GazeScene(
        width=1000,
        height=1200,
        lungs=lungs,
        heart=Region(520, 750, 180, 150),
        chest_box=(140, 180, 870, 900),
        findings=findings,
        dictation_start=5.0,
        dictation_end=15.0,
        attention=attention_episodes(times, targets, findings, rng),
    )


def test_fixation_statistics():
    rng = np.random.default_rng(1)
    fix = simulate_fixations(_scene(rng), rng)
    dur = fix.end - fix.start
    assert dur.min() >= 0.1 - 1e-9 and dur.max() <= 0.8 + 1e-9
    assert 0.2 < np.median(dur) < 0.35
    gaps = fix.start[1:] - fix.end[:-1]
    assert gaps.min() >= 0.019 and np.all(np.diff(fix.start) > 0)
    assert fix.phase[fix.start < 5.0].max() == 0 and fix.phase[fix.start > 5.0].min() == 1
    # unzoomed 1000x1200 image: scale = 2160/1200 = 1.8 screen px per image px
    full = fix.shown[:, 2] - fix.shown[:, 0] == 1000
    ppd = fix.ang_x[full] * 1.8
    assert 85 < ppd.mean() < 100


def test_episodes_point_at_their_findings():
    rng = np.random.default_rng(2)
    scene = _scene(rng)
    assert [e.sentence for e in scene.attention] == [0, 2]
    assert scene.attention[0].targets == (0,)
    assert 2.0 <= scene.attention[1].start <= 11.0 and scene.attention[1].end == 13.1
    fix = simulate_fixations(scene, rng)
    during = (fix.sentence == 2) & (fix.target == 1)
    assert during.sum() >= 3


def test_gaze_samples_follow_fixations():
    rng = np.random.default_rng(3)
    fix = simulate_fixations(_scene(rng), rng)
    samples = gaze_samples(fix, rng)
    t = samples["timestamp_sample"]
    assert np.allclose(np.diff(t), 0.001)
    k = len(fix) // 2
    inside = (t > fix.start[k] + 0.01) & (t < fix.end[k] - 0.01)
    assert abs(np.nanmedian(samples["x_position"][inside]) - fix.x[k]) <= 3
    assert np.isnan(samples["x_position"]).sum() < 0.2 * len(t)


def test_case_prevalence_roughly_follows_table_3():
    rng = np.random.default_rng(0)
    from gazeloc.labels import REFLACX_TO_MODEL

    counts: dict[str, int] = {}
    n = 4000
    for _ in range(n):
        labels = set()
        for kind, _side in sample_case(rng).kinds:
            labels.update(REFLACX_TO_MODEL.get(FINDING_CATEGORY[kind], ()))
        for label in labels:
            counts[label] = counts.get(label, 0) + 1
    share = {k: v / n for k, v in counts.items()}
    assert 0.4 < share["opacity"] < 0.7
    for common in ("consolidation", "atelectasis", "pleural_abnormality"):
        assert 0.15 < share[common] < 0.4
    for rare in ("pneumothorax", "fracture", "abnormal_mediastinal_contour", "lung_lesion"):
        assert 0.01 < share[rare] < 0.12


@pytest.fixture(scope="module")
def realism_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("realism")
    generate(
        out,
        SynthSettings(
            seed=11,
            mimic_studies=2,
            phase1_images=0,
            phase2_images=0,
            phase3_readings=120,
            image_size=256,
        ),
        workers=1,
        progress=False,
    )
    return out


def test_gaze_is_informative_but_noisy(realism_dataset):
    gaze = measure_gaze(realism_dataset / "reflacx", realism_dataset / "ground_truth")
    assert gaze.sentences > 80
    assert gaze.ratio >= 2.0
    assert 0.5 < gaze.window_share < 0.9
