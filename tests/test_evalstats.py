"""Evaluation statistics: hit rate (pointing game), per-item results, the two-level bootstrap
and paired comparisons (hand-computed cases and calibration on null data), the inter-rater
table."""

from __future__ import annotations

import h5py
import numpy as np
import polars as pl
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from gazeloc.evaluate.maps import upscale_nearest
from gazeloc.evaluate.pointing import block_centre, pointing_hits
from gazeloc.labels import MODEL_LABELS
from gazeloc.report import bootstrap
from gazeloc.report.interrater import interrater_table, pair_ious, write_interrater

# --- hit rate ---------------------------------------------------------------------------


def test_hit_by_hand():
    maps = torch.tensor([[0.1, 0.2], [0.9, 0.3]])[None]  # max at cell (1, 0)
    inside = torch.zeros(1, 4, 4, dtype=torch.bool)
    inside[0, 2, 0] = True  # block rows 2-3, cols 0-1: centre (floor) is pixel (2, 0)
    assert pointing_hits(maps, inside).tolist() == [True]
    other = torch.zeros(1, 4, 4, dtype=torch.bool)
    other[0, 3, 1] = True  # inside the block but not its centre pixel
    assert pointing_hits(maps, other).tolist() == [False]
    # ties: the first maximum in row-major order wins
    flat = torch.full((1, 2, 2), 0.5)
    corner = torch.zeros(1, 4, 4, dtype=torch.bool)
    corner[0, 0, 0] = True
    assert pointing_hits(flat, corner).tolist() == [True]
    # odd blocks (3 px): the middle pixel; maps at the frame's own size: the pixel itself
    assert block_centre(torch.tensor([0, 1, 2]), 3, 9).tolist() == [1, 4, 7]
    assert block_centre(torch.tensor([0, 5]), 8, 8).tolist() == [0, 5]
    # side 3 in a frame of 8: blocks 0-2, 3-5, 6-7
    assert block_centre(torch.tensor([0, 1, 2]), 3, 8).tolist() == [1, 4, 6]


@settings(max_examples=40, deadline=None)
@given(side=st.integers(1, 9), extra=st.integers(0, 20))
def test_block_centre_lies_in_its_block(side, extra):
    size = side + extra
    cells = torch.arange(side)
    centre = block_centre(cells, side, size)
    square = torch.arange(side, dtype=torch.float32)[None, :].expand(side, side)
    index = upscale_nearest(square, size)[0]  # the map column of every frame column
    assert index[centre].long().tolist() == cells.tolist()


def test_hit_shapes():
    with pytest.raises(ValueError):
        pointing_hits(torch.rand(2, 4, 4), torch.zeros(2, 2, 2, dtype=torch.bool))
    with pytest.raises(ValueError):
        pointing_hits(torch.rand(2, 4, 4), torch.zeros(3, 8, 8, dtype=torch.bool))


# --- bootstrap --------------------------------------------------------------------------


def test_weighted_auc_by_hand_and_against_sklearn():
    scores = np.array([0.1, 0.4, 0.35, 0.8])
    y = np.array([False, False, True, True])
    ones = np.ones((1, 4))
    assert bootstrap.weighted_auc(scores, y, ones)[0] == pytest.approx(0.75)
    # weights (1, 1, 2, 1): positives 0.35 (×2) beats 0.1 only, 0.8 beats both: (2+2)/(3·2)
    assert bootstrap.weighted_auc(scores, y, np.array([[1, 1, 2, 1]]))[0] == pytest.approx(4 / 6)
    # a tie counts one half
    assert bootstrap.weighted_auc(
        np.array([0.5, 0.5]), np.array([True, False]), np.ones((1, 2))
    ) == pytest.approx(0.5)
    # no negative (weight 0): undefined
    assert np.isnan(bootstrap.weighted_auc(scores, y, np.array([[0, 0, 1, 1]]))[0])
    rng = np.random.default_rng(3)
    s = np.round(rng.random(60), 2)  # with ties
    t = rng.random(60) < 0.4
    w = rng.integers(0, 4, size=(5, 60))
    want = [roc_auc_score(t, s, sample_weight=row) for row in w]
    np.testing.assert_allclose(bootstrap.weighted_auc(s, t, w), want, atol=1e-12)


def test_label_means_seeds_and_paired_test_by_hand():
    values = np.array([0.2, 0.4, 1.0])
    labels = np.array([0, 0, 1])
    weights = np.array([[1.0, 1.0, 1.0], [2.0, 0.0, 0.0]])
    got = bootstrap.label_means(values, labels, weights, 3)
    np.testing.assert_allclose(got[0, :2], [0.3, 1.0])
    np.testing.assert_allclose(got[1, :1], [0.2])
    assert np.isnan(got[1, 1]) and np.isnan(got[:, 2]).all()
    np.testing.assert_allclose(bootstrap.mean_over_labels(got), [0.65, 0.2])
    draws = bootstrap.Draws(
        subjects=np.array([1]),
        counts=np.ones((2, 1), dtype=np.int64),
        uniforms=np.array([[0.1, 0.9], [0.6, 0.7]]),
    )
    # two seeds: replicate 0 draws seeds (0, 1), replicate 1 draws (1, 1)
    assert draws.seed_positions(2).tolist() == [[0, 1], [1, 1]]
    per_seed = np.array([[1.0, 1.0], [3.0, 3.0]])
    np.testing.assert_allclose(bootstrap.over_seeds(per_seed, draws), [2.0, 3.0])
    low, _, p = bootstrap.paired_test(np.array([-1.0, 1.0, 2.0, 3.0]))
    assert p == pytest.approx(0.5)
    assert low == pytest.approx(np.percentile([-1, 1, 2, 3], 2.5))
    assert bootstrap.paired_test(np.array([1.0, 2.0]))[2] == 0.0
    assert bootstrap.paired_test(np.array([0.0, 0.0]))[2] == 1.0


def test_draws_are_reproducible_and_resample_subjects():
    a = bootstrap.draw([5, 3, 9, 3], 3, 200)
    b = bootstrap.draw([3, 9, 5], 3, 200)
    assert a.subjects.tolist() == [3, 5, 9]
    np.testing.assert_array_equal(a.counts, b.counts)
    np.testing.assert_array_equal(a.uniforms, b.uniforms)
    assert (a.counts.sum(axis=1) == 3).all()
    w = a.weights(np.array([9, 9, 3]))
    np.testing.assert_array_equal(w[:, 0], a.counts[:, 2])
    with pytest.raises(ValueError):
        a.weights(np.array([4]))


def _null_repetition(rng, n_subjects, n_items, n_seeds, n_labels, samples, seed):
    """One null data set: two experiments whose per-item values are independent draws from
    the same distribution (per experiment and item) plus independent per-seed noise."""
    subjects = rng.integers(0, n_subjects, n_items)
    labels = rng.integers(0, n_labels, n_items)
    draws = bootstrap.draw(subjects, n_seeds, samples, seed=seed)
    weights = draws.weights(subjects)
    onehot = np.zeros((n_items, n_labels))
    onehot[np.arange(n_items), labels] = 1.0
    den = weights @ onehot  # [B, K]
    item = rng.beta(2, 5, size=(2, 1, n_items))
    values = item + 0.05 * rng.normal(size=(2, n_seeds, n_items))  # [E, S, N]
    # every experiment, seed and label in one product: [B, N] @ [N, E·S·K]
    stacked = (values[..., None] * onehot).transpose(2, 0, 1, 3).reshape(n_items, -1)
    num = (weights @ stacked).reshape(samples, 2, n_seeds, n_labels).transpose(1, 2, 0, 3)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_label = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    per_seed = bootstrap.mean_over_labels(per_label)  # [E, S, B]
    a, b = (bootstrap.over_seeds(per_seed[e], draws) for e in range(2))
    return bootstrap.paired_test(a - b)


def test_paired_bootstrap_is_calibrated_on_null_data():
    """200 repetitions at the demo's test sizes (3 seeds, about 160 positive readings of
    about 80 subjects over 10 labels, 1000 replicates): the 95% CI covers 0 in 90–99% of
    them and p < 0.05 in 1–10%."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(11)
    covered = significant = 0
    with threadpool_limits(1):  # small products: one BLAS thread is the fastest
        for rep in range(200):
            low, high, p = _null_repetition(rng, 80, 160, 3, 10, 1000, seed=rep)
            covered += low <= 0 <= high
            significant += p < 0.05
    print(f"null calibration: CI covers 0 in {covered}/200, p < 0.05 in {significant}/200")
    assert 0.90 <= covered / 200 <= 0.99, covered
    assert 0.01 <= significant / 200 <= 0.10, significant


# --- tables from per-item results --------------------------------------------------------


def _items(values_a, values_b, subjects):
    """Test per-item tables of two experiments × one seed: one reading per subject, label
    edema, source grid, one threshold; images likewise."""
    rows, images = [], []
    for experiment, values in (("a", values_a), ("b", values_b)):
        for i, (v, s) in enumerate(zip(values, subjects, strict=True)):
            rows.append(
                (experiment, 1, "test", f"r{i}", f"d{i}", s, "edema", "grid", 0.5, v, v > 0.5)
            )
            images.append((experiment, 1, "test", f"d{i}", s, "edema", v, int(i % 2)))
    from gazeloc.evaluate.run import IMAGE_SCHEMA, READING_SCHEMA

    return (
        pl.DataFrame(images, schema=IMAGE_SCHEMA, orient="row"),
        pl.DataFrame(rows, schema=READING_SCHEMA, orient="row"),
    )


def test_summary_replicates_by_hand():
    images, readings = _items([0.2, 0.6, 0.4], [0.2, 0.2, 0.2], [1, 2, 3])
    chosen = pl.DataFrame(
        {
            "experiment": ["a", "b"],
            "source": ["grid"] * 2,
            "label": ["edema"] * 2,
            "threshold": [0.5] * 2,
        }
    )
    draws = bootstrap.Draws(
        subjects=np.array([1, 2, 3]),
        counts=np.array([[1, 1, 1], [3, 0, 0], [0, 2, 1]]),
        uniforms=np.zeros((3, 1)),
    )
    reps = bootstrap.summary_replicates(images, readings, chosen, ["a", "b"], draws, MODEL_LABELS)
    np.testing.assert_allclose(reps[("a", "iou")], [0.4, 0.2, (2 * 0.6 + 0.4) / 3])
    np.testing.assert_allclose(reps[("a", "hit_rate")], [1 / 3, 0.0, 2 / 3])
    np.testing.assert_allclose(reps[("b", "iou")], [0.2, 0.2, 0.2])
    # AUC: targets (0, 1, 0); scores a (0.2, 0.6, 0.4): 1.0 at weights 1; no positive in 2
    auc = reps[("a", "auc")]
    assert auc[0] == pytest.approx(1.0) and np.isnan(auc[1]) and auc[2] == pytest.approx(1.0)


# --- inter-rater -------------------------------------------------------------------------


def test_pair_ious_by_hand():
    masks = np.zeros((3, 4, 4), dtype=bool)
    masks[0, :2, :2] = True  # 4 px
    masks[1, :2, :] = True  # 8 px, contains reader 0's
    masks[2] = False  # vanished in the frame
    present = np.array([True, True, True])
    ious, skipped = pair_ious(masks, present)
    # (0,1): 4/8; (0,2): 0/4; (1,2): 0/8; nothing skipped (unions non-empty)
    assert ious == [0.5, 0.0, 0.0] and skipped == 0
    ious, skipped = pair_ious(np.zeros((2, 4, 4), dtype=bool), np.array([True, True]))
    assert ious == [] and skipped == 1
    ious, _ = pair_ious(masks, np.array([True, False, True]))
    assert ious == [0.0]


def _ellipses_file(path, readings):
    with h5py.File(path, "w") as f:
        for name, dicom, split, masks, labels in readings:
            g = f.create_group(name)
            g.attrs.update({"dicom_id": dicom, "split": split, "subject_id": 1})
            full = np.zeros((10, 4, 4), dtype=bool)
            full[0] = masks
            g["ellipses"] = full
            lab = np.zeros(10, dtype=bool)
            lab[0] = labels
            g["ellipse_labels"] = lab
            g["ellipse_labels_any"] = lab


def test_interrater_table_by_hand(tmp_path):
    a = np.zeros((4, 4), dtype=bool)
    a[:2, :2] = True
    b = np.zeros((4, 4), dtype=bool)
    b[:2, :] = True
    empty = np.zeros((4, 4), dtype=bool)
    _ellipses_file(
        tmp_path / "phase1.h5",
        [
            ("r1", "img1", "train", a, True),
            ("r2", "img1", "train", b, True),  # pair (r1, r2): 0.5
            ("r3", "img1", "train", b, False),  # no ellipse for edema: no pair
            ("r4", "img3", "train", a, True),  # read once: no pair
        ],
    )
    _ellipses_file(
        tmp_path / "phase2.h5",
        [
            ("s1", "img2", "test", b, True),
            ("s2", "img2", "test", b, True),  # 1.0
            ("s3", "img2", "test", empty, True),  # with s1, s2: 0/8 twice
            ("t1", "img4", "test", empty, True),
            ("t2", "img4", "test", empty, True),  # empty union: skipped
        ],
    )
    paths = [tmp_path / "phase1.h5", tmp_path / "phase2.h5"]
    table = interrater_table(paths, n_samples=500)
    assert table.columns[:7] == [
        "label", "mean_iou", "n_pairs", "n_images", "n_skipped", "ci_low", "ci_high"
    ]  # fmt: skip
    edema = table.filter(pl.col("label") == "edema")
    every = edema.filter(pl.col("split") == "all").row(0, named=True)
    assert every["mean_iou"] == pytest.approx((0.5 + 1.0 + 0 + 0) / 4)
    assert (every["n_pairs"], every["n_images"], every["n_skipped"]) == (4, 2, 1)
    # bootstrap over the two images: replicates are 0.5 (img1 twice), 1/3 (img2 twice) or
    # the mean 0.375
    assert every["ci_low"] == pytest.approx(1 / 3) and every["ci_high"] == pytest.approx(0.5)
    test = edema.filter(pl.col("split") == "test").row(0, named=True)
    assert test["mean_iou"] == pytest.approx(1 / 3)
    assert (test["n_pairs"], test["n_images"], test["n_skipped"]) == (3, 1, 1)
    assert test["ci_low"] is None  # one image: no interval
    other = table.filter(pl.col("label") == "opacity").row(0, named=True)
    assert other["mean_iou"] is None and other["n_pairs"] == 0
    write_interrater(paths, tmp_path / "i.csv", tmp_path / "i.md", 100)
    md = (tmp_path / "i.md").read_text()
    assert "phase-3 test readings" in md and "| Edema | 0.375 [" in md
