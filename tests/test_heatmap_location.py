"""Location-extraction validation and Figure 1 (tiny synthetic data)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from test_heatmap_stage import keyword_labels

from gazeloc.errors import DataFormatError
from gazeloc.gaze import DEFAULT_METHOD, Dictation, heatmap, window
from gazeloc.gaze.figure import write_figure1
from gazeloc.gaze.labelmaps import label_maps, present_mentions
from gazeloc.gaze.location import (
    BASE_METHODS,
    THRESHOLDS,
    EvalSettings,
    MethodResult,
    ReadingTask,
    evaluate_reading,
    first_stage_methods,
    iou_thresholds,
    second_stage_methods,
    select,
    write_location_extraction,
)
from gazeloc.gaze.render import FrameRenderer
from gazeloc.gaze.stage import HeatmapSettings, reading_inputs, write_ellipses
from gazeloc.io.reflacx import read_readings
from gazeloc.labels import MODEL_LABELS
from gazeloc.metrics import REFERENCE_THRESHOLDS, iou_at_thresholds

SIZE = 32


def test_method_lists():
    first = first_stage_methods()
    assert len(first) == len(set(first)) == 35
    assert "5.0s_startofsentence_lastmention" in first and "7.5s_mention_firstmention" in first
    assert first[-len(BASE_METHODS) :] == list(BASE_METHODS)
    second = second_stage_methods("2.5s_startofsentence_lastmention", [0.5, 1, 1.5])
    assert second == [
        "0.5s_startofsentence_lastmention",
        "1.0s_startofsentence_lastmention",
        "1.5s_startofsentence_lastmention",
    ]
    with pytest.raises(ValueError):
        second_stage_methods("double_lastmention")


def test_iou_matches_the_metrics_module():
    rng = np.random.default_rng(0)
    for _ in range(20):
        heat = rng.random((16, 16)) * (rng.random((16, 16)) > 0.4)
        heat[rng.random((16, 16)) > 0.9] = rng.choice(THRESHOLDS)  # values on a threshold
        mask = rng.random((16, 16)) > 0.6
        assert np.allclose(iou_thresholds(heat, mask), iou_at_thresholds(heat, mask))
    assert not iou_thresholds(np.zeros((4, 4)), np.zeros((4, 4), dtype=bool)).any()


def test_selection_per_method_and_label():
    res = MethodResult()
    k = MODEL_LABELS.index("atelectasis")
    res.positives[k] = 2
    res.iou_sum[k] = np.linspace(0, 1, THRESHOLDS.size)[::-1] * 2  # best at tau = 0
    res.iou_sum[k, 3] = 2.0  # a tie: the lowest threshold wins
    j = MODEL_LABELS.index("fracture")
    res.positives[j] = 4
    res.iou_sum[j, 10] = 1.0
    res.existence[:, 3] = 5
    rows = {r["label"]: r for r in select("m", res)}
    assert rows["atelectasis"]["threshold"] == 0.0 and rows["atelectasis"]["iou"] == 1.0
    assert rows["fracture"]["threshold"] == REFERENCE_THRESHOLDS[10]
    assert rows["fracture"]["iou"] == 0.25
    assert rows["edema"]["iou"] is None and rows["edema"]["n_readings"] == 0
    assert rows["all"]["iou"] == pytest.approx(0.625) and rows["all"]["n_readings"] == 5


@pytest.fixture(scope="module")
def phase12(tiny_synthetic, tmp_path_factory):
    out = tmp_path_factory.mktemp("location")
    reflacx = tiny_synthetic / "reflacx"
    paths = {}
    for phase in (1, 2):
        labels = out / f"labels{phase}.parquet"
        keyword_labels(reflacx, phase).write_parquet(labels)
        ellipses = out / f"ellipses{phase}.h5"
        write_ellipses(
            reflacx,
            phase,
            tiny_synthetic / "val_subjects.txt",
            ellipses,
            size=SIZE,
            progress=False,
        )
        paths[phase] = (labels, ellipses)
    return out, paths


def test_one_reading_by_hand(tiny_synthetic, phase12):
    _, paths = phase12
    labels, ellipses = paths[1]
    mentions = present_mentions(pl.read_parquet(labels))
    reading = next(
        r
        for r in read_readings(tiny_synthetic / "reflacx", [1])
        if not r.discarded and r.id in mentions
    )
    import h5py

    with h5py.File(ellipses, "r") as f:
        masks = f[reading.id]["ellipses"][()]
        positive = f[reading.id]["ellipse_labels"][()]
    task = ReadingTask(reading, mentions[reading.id], masks, positive, str(labels))
    res = evaluate_reading(task, [DEFAULT_METHOD], EvalSettings(size=SIZE))[DEFAULT_METHOD]
    # by hand through the public API
    transcript = reading.transcript()
    d = Dictation.from_words(transcript.text, transcript.words)
    spans = [(m.start, m.end) for m in mentions[reading.id]]
    times = d.sentence_times(spans)
    et = np.zeros((10, SIZE, SIZE), dtype=np.float32)
    for m in mentions[reading.id]:
        win = window(DEFAULT_METHOD, times, d.sentence_at(m.start))
        if win is None:
            continue
        heat = heatmap(
            reading.fixations(),
            *win,
            image_width=reading.width,
            image_height=reading.height,
            size=SIZE,
        )
        for k in m.labels:
            et[k] = np.maximum(et[k], heat)
    expected = np.zeros((10, THRESHOLDS.size))
    for k in range(10):
        if positive[k]:
            expected[k] = iou_at_thresholds(et[k], masks[k])
    assert np.allclose(res.iou_sum, expected, atol=1e-6)
    assert np.array_equal(res.positives, positive.astype(int))
    present = et.reshape(10, -1).max(axis=1) > 0
    assert res.existence[:, 0].tolist() == (present & positive).astype(int).tolist()
    assert res.existence[:, 3].tolist() == (~present & ~positive).astype(int).tolist()


def test_every_method_equals_label_maps(tiny_synthetic, phase12):
    """evaluate_reading's shared renders give what label_maps gives, method by method."""
    import h5py

    second = second_stage_methods("1.5s_startofsentence_lastmention")
    methods = list(dict.fromkeys(first_stage_methods() + second))
    checked = 0
    for phase in (1, 2):
        labels, ellipses = phase12[1][phase]
        mentions = present_mentions(pl.read_parquet(labels))
        with h5py.File(ellipses, "r") as f:
            for reading in read_readings(tiny_synthetic / "reflacx", [phase]):
                if reading.discarded or reading.id not in mentions:
                    continue
                masks = f[reading.id]["ellipses"][()]
                positive = f[reading.id]["ellipse_labels"][()]
                task = ReadingTask(reading, mentions[reading.id], masks, positive, str(labels))
                got = evaluate_reading(task, methods, EvalSettings(size=SIZE))
                _, times, per_sentence, fixations = reading_inputs(
                    reading, mentions[reading.id], labels
                )
                renderer = FrameRenderer(
                    fixations, image_width=reading.width, image_height=reading.height, size=SIZE
                )
                for method in methods:
                    maps = label_maps(renderer, times, per_sentence, method)
                    res = got[method]
                    assert res.windows == len(maps.windows)
                    assert res.empty_windows == maps.empty_windows
                    assert res.empty_maps == maps.empty_maps
                    present = maps.et_labels
                    for k in range(10):
                        want = iou_thresholds(maps.et[k], masks[k])
                        want = want if positive[k] and present[k] else 0 * want
                        assert np.array_equal(res.iou_sum[k], want)
                        assert res.existence[k, 0] == int(present[k] and positive[k])
                        assert res.existence[k, 1] == int(present[k] and not positive[k])
                    checked += 1
    assert checked >= len(methods)


def test_write_location_extraction(tiny_synthetic, phase12):
    out, paths = phase12
    table = write_location_extraction(
        tiny_synthetic / "reflacx",
        [1, 2],
        [paths[1][0], paths[2][0]],
        [paths[1][1], paths[2][1]],
        tiny_synthetic / "val_subjects.txt",
        out / "le.csv",
        out / "le.md",
        out / "le_details.csv",
        out / "le.png",
        size=SIZE,
        first_delays=[2.5],
        second_delays=[1.0, 2.5],
        progress=False,
    )
    assert table.columns == ["method", "label", "iou", "threshold", "n_readings"]
    written = pl.read_csv(out / "le.csv")
    assert written.columns == table.columns and written.height == table.height
    methods = table["method"].unique(maintain_order=True).to_list()
    assert len(methods) in (8 + 11 + 2, 8 + 11 + 2 + 1)  # + the configured method if absent
    assert "1.5s_startofsentence_lastmention" in methods
    assert table.height == len(methods) * 11
    for m in methods:
        rows = table.filter(pl.col("method") == m)
        labels = rows.filter(pl.col("label") != "all").drop_nulls("iou")
        assert set(labels["threshold"].to_list()) <= set(REFERENCE_THRESHOLDS)
        overall = rows.filter(pl.col("label") == "all")["iou"][0]
        assert overall == pytest.approx(labels["iou"].mean())
    md = (out / "le.md").read_text()
    assert "Configured method `1.5s_startofsentence_lastmention`" in md
    assert (out / "le.png").read_bytes().startswith(b"\x89PNG")
    details = pl.read_csv(out / "le_details.csv")
    assert {"tp", "fp", "fn", "tn", "empty_windows"} <= set(details.columns)


def test_figure1(tiny_synthetic, tmp_path):
    labels = tmp_path / "labels3.parquet"
    keyword_labels(tiny_synthetic / "reflacx", 3).write_parquet(labels)
    settings = HeatmapSettings(size=SIZE)
    png = tmp_path / "figure1.png"
    ids = write_figure1(
        tiny_synthetic / "reflacx", tiny_synthetic / "mimic-cxr-jpg", {3: labels}, png, settings
    )
    assert len(ids) == 1 and ids[0].startswith("P3")
    assert png.read_bytes().startswith(b"\x89PNG")
    with pytest.raises(DataFormatError, match="not among phases"):
        write_figure1(
            tiny_synthetic / "reflacx",
            tiny_synthetic / "mimic-cxr-jpg",
            {3: labels},
            tmp_path / "x.png",
            settings,
            reading_ids=["P300R000000"],
        )


def test_overlap_score_hand_cases():
    from gazeloc.gaze.figure import overlap_score

    heat = np.array([[0.0, 1.0], [0.5, 0.5]])
    mask = np.array([[False, True], [True, False]])
    assert overlap_score(heat, mask) == pytest.approx(1.5 / 2.0)
    assert overlap_score(np.zeros((2, 2)), mask) == 0.0
    assert overlap_score(heat, np.ones((2, 2), bool)) == 1.0


def test_figure1_draws_the_best_overlapping_sentence(tiny_synthetic, tmp_path):
    from gazeloc.gaze.figure import best_candidate, build_panel, score_reading

    labels = tmp_path / "labels3.parquet"
    keyword_labels(tiny_synthetic / "reflacx", 3).write_parquet(labels)
    mentions = present_mentions(pl.read_parquet(labels))
    settings = HeatmapSettings(size=SIZE)
    readings = [r for r in read_readings(tiny_synthetic / "reflacx", [3]) if not r.discarded]
    every = [
        (score, r.id, s, k)
        for r in readings
        for score, s, k in score_reading(r, mentions.get(r.id, []), settings, labels)
    ]
    assert every, "the tiny dataset has a positive label with an ellipse and a mention"
    assert all(0.0 <= score <= 1.0 for score, *_ in every)
    best = best_candidate(readings, mentions, settings, {3: labels})
    top = max(score for score, *_ in every)
    assert best[3] == top
    assert best[:3] == min((rid, s, k) for score, rid, s, k in every if score == top)
    reading = next(r for r in readings if r.id == best[0])
    panel = build_panel(
        reading,
        mentions[best[0]],
        tiny_synthetic / "mimic-cxr-jpg",
        settings,
        labels,
        choice=best[1:],
    )
    assert panel.label == best[2] and panel.sentence == best[1] and panel.ellipse.any()
    assert panel.windows == [(panel.sentence, panel.window)]
    png = tmp_path / "figure1.png"
    assert write_figure1(
        tiny_synthetic / "reflacx", tiny_synthetic / "mimic-cxr-jpg", {3: labels}, png, settings
    ) == [best[0]]
