"""Ellipse masks in the square frame (docs/method.md#ellipse-masks)."""

from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from gazeloc.gaze.ellipses import ellipse_frame, ellipse_mask, ellipse_rows, reading_ellipses
from gazeloc.gaze.oracle import ellipse_fill, ellipse_oracle, frame_image
from gazeloc.labels import LABEL_INDEX, reflacx_labels


def filled(box, width, height):
    rows, start, stop = ellipse_rows(box, width, height)
    out = np.zeros((height, width), dtype=bool)
    for v, a, b in zip(rows, start, stop, strict=True):
        out[v, a:b] = True
    return out


def test_hand_computed_fill():
    # centre (4, 4), semi-axes 2: (u-4)^2 + (v-4)^2 < 4 holds for the 3x3 block only
    mask = filled((2, 2, 6, 6), 10, 10)
    assert mask.sum() == 9 and mask[3:6, 3:6].all()
    # W = H = S: the frame is the identity, so the mask is the fill itself
    assert np.array_equal(ellipse_mask((2, 2, 6, 6), 10, 10, 10), mask)
    # clipped to the image
    mask = filled((-4, -4, 4, 4), 10, 10)
    assert mask[0, 0] and mask.sum() == np.sum(
        (np.arange(10)[None, :] ** 2 + np.arange(10)[:, None] ** 2) < 16
    )
    # degenerate boxes fill nothing
    assert not filled((3, 3, 3, 8), 10, 10).any()
    assert not filled((3, 3, 8, 3), 10, 10).any()


@settings(max_examples=150, deadline=None)
@given(
    st.integers(8, 400),
    st.integers(8, 400),
    st.floats(-0.3, 1.1),
    st.floats(-0.3, 1.1),
    st.floats(0, 0.7),
    st.floats(0, 0.7),
    st.sampled_from([8, 16, 64, 128]),
)
def test_fill_and_frame_match_the_oracle(width, height, fx, fy, fw, fh, size):
    x0, y0 = int(fx * width), int(fy * height)
    box = (x0, y0, x0 + int(fw * width), y0 + int(fh * height))
    assert np.array_equal(filled(box, width, height), ellipse_fill(box, width, height))
    direct = frame_image(ellipse_fill(box, width, height).astype(np.float32), size)
    ours = ellipse_frame(box, width, height, size)
    assert np.abs(ours - direct).max() < 1e-5
    near_half = np.abs(direct - 0.5) < 1e-5
    assert np.array_equal((ours > 0.5) | near_half, (direct > 0.5) | near_half)


def test_real_size_matches_the_oracle():
    for box, width, height in (
        ((402, 1733, 1187, 2690), 2544, 3056),
        ((1398, 1610, 2466, 2705), 2544, 3056),
        ((-300, 2101, 1105, 3200), 3056, 2544),
    ):
        assert np.array_equal(
            ellipse_mask(box, width, height, 512), ellipse_oracle(box, width, height, 512)
        )


def ellipse_table(phase: int, rows: list[dict]) -> pl.DataFrame:
    names = reflacx_labels(phase)
    data = []
    for row in rows:
        record = {k: row[k] for k in ("xmin", "ymin", "xmax", "ymax", "certainty")}
        record.update({name: name in row["labels"] for name in names})
        data.append(record)
    return pl.DataFrame(data)


def test_reading_masks_and_labels():
    table = ellipse_table(
        3,
        [
            {
                "xmin": 100,
                "ymin": 100,
                "xmax": 900,
                "ymax": 1500,
                "certainty": 4,
                "labels": ["Atelectasis"],
            },
            {
                "xmin": 1200,
                "ymin": 1800,
                "xmax": 1900,
                "ymax": 2400,
                "certainty": 2,
                "labels": ["Pleural abnormality"],
            },
            {
                "xmin": 10,
                "ymin": 10,
                "xmax": 2000,
                "ymax": 2000,
                "certainty": 5,
                "labels": ["Support devices"],
            },
            {
                "xmin": 1500,
                "ymin": 500,
                "xmax": 1503,
                "ymax": 503,
                "certainty": 3,
                "labels": ["Lung nodule or mass"],
            },
        ],
    )
    masks, labels, labels_any = reading_ellipses(table, 2000, 2500, 64)
    idx = LABEL_INDEX
    expected = {"atelectasis", "opacity", "lung_lesion"}
    assert {k for k, i in idx.items() if labels[i]} == expected
    assert {k for k, i in idx.items() if labels_any[i]} == expected | {"pleural_abnormality"}
    assert masks[idx["atelectasis"]].any()
    assert np.array_equal(masks[idx["atelectasis"]] & ~masks[idx["opacity"]], np.zeros((64, 64)))
    # the 3-pixel nodule vanishes at S = 64 but its label stays
    assert labels[idx["lung_lesion"]] and not masks[idx["lung_lesion"]].any()
    assert not masks[idx["pleural_abnormality"]].any()  # certainty 2
    assert masks.sum(axis=(1, 2))[idx["opacity"]] == masks[idx["atelectasis"]].sum()


def test_phase_1_names_map_too():
    table = ellipse_table(
        1,
        [
            {
                "xmin": 50,
                "ymin": 50,
                "xmax": 250,
                "ymax": 250,
                "certainty": 5,
                "labels": ["Nodule", "Wide mediastinum"],
            }
        ],
    )
    masks, labels, _ = reading_ellipses(table, 300, 300, 32)
    on = {k for k, i in LABEL_INDEX.items() if labels[i]}
    assert on == {"lung_lesion", "opacity", "abnormal_mediastinal_contour"}
    assert np.array_equal(masks[LABEL_INDEX["lung_lesion"]], masks[LABEL_INDEX["opacity"]])
    assert np.array_equal(
        masks[LABEL_INDEX["opacity"]], ellipse_oracle((50, 50, 250, 250), 300, 300, 32)
    )


def test_empty_table():
    masks, labels, labels_any = reading_ellipses(ellipse_table(3, []), 300, 200, 32)
    assert masks.shape == (10, 32, 32) and not masks.any() and not labels.any()
    assert not labels_any.any()
