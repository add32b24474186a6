"""Metrics: CIs against scipy, IoU and AUC against hand-computed cases, all-threshold IoU."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from gazeloc.metrics import (
    REFERENCE_THRESHOLDS,
    auc_per_label,
    first_argmax,
    iou_at_thresholds,
    label_iou,
    mean_ci,
    upscale_nearest,
)


def test_t_interval_by_hand_and_scipy():
    mean, low, high = mean_ci([1.0, 2.0, 3.0], "t")
    half = 4.302652729911275 / math.sqrt(3)  # t(0.975, 2) * sd(=1) / sqrt(3)
    assert (mean, low, high) == pytest.approx((2.0, 2.0 - half, 2.0 + half))
    values = [0.761, 0.765, 0.77, 0.758, 0.769]
    lo, hi = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert mean_ci(values, "t")[1:] == pytest.approx((lo, hi))


def test_reference_normal_interval():
    _, low, high = mean_ci([1.0, 2.0, 3.0], "normal_pop")
    half = 1.96 * math.sqrt(2 / 3) / math.sqrt(3)
    assert (low, high) == pytest.approx((2.0 - half, 2.0 + half))
    values = np.array([0.2, 0.25, 0.21, 0.3, 0.24])
    lo, hi = stats.norm.interval(0.95, loc=values.mean(), scale=values.std() / math.sqrt(5))
    assert mean_ci(values, "normal_pop")[1:] == pytest.approx((lo, hi), abs=1e-4)


@pytest.mark.parametrize("method", ["t", "normal_pop"])
def test_fewer_than_two_values(method):
    mean, low, high = mean_ci([0.5], method)
    assert mean == 0.5 and math.isnan(low) and math.isnan(high)
    assert all(math.isnan(v) for v in mean_ci([], method))


def test_unknown_method():
    with pytest.raises(ValueError, match="unknown CI method"):
        mean_ci([1, 2], "bootstrap")


def test_iou_by_hand():
    maps = np.array([[0.1, 0.5], [0.9, 0.0]])
    mask = np.array([[False, True], [True, True]])
    iou = iou_at_thresholds(maps, mask, [0.05, 0.5, 0.95])
    # t=0.05: predicted {0.1,0.5,0.9}, hit {0.5,0.9}, union 4; t=0.5 (strict): {0.9}, union 3
    assert iou == pytest.approx([0.5, 1 / 3, 0.0])
    empty = iou_at_thresholds(np.zeros((2, 2)), np.zeros((2, 2), bool), [0.0, 0.5])
    assert empty.tolist() == [0.0, 0.0]  # 0/0 counts as 0


@given(st.integers(0, 2**32 - 1), st.integers(1, 3), st.integers(2, 9))
@settings(max_examples=40, deadline=None)
def test_all_thresholds_equal_the_definition(seed, n, side):
    rng = np.random.default_rng(seed)
    maps = rng.choice([0.0, 0.001, 0.15, 0.5, 0.95, 0.999, 1.0], size=(n, 2, side, side))
    maps = np.where(rng.random(maps.shape) < 0.3, rng.random(maps.shape), maps)
    masks = rng.random(maps.shape) < 0.4
    fast = iou_at_thresholds(maps, masks)
    for i, t in enumerate(REFERENCE_THRESHOLDS):
        pred = maps > t
        inter = (pred & masks).sum(axis=(-2, -1))
        union = (pred | masks).sum(axis=(-2, -1))
        direct = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
        assert np.allclose(fast[..., i], direct)


def test_label_iou_averages_positive_images_only():
    iou = np.array([[[0.5], [0.9]], [[0.1], [0.0]], [[0.3], [0.7]]])  # (N=3, K=2, T=1)
    positive = np.array([[True, False], [True, False], [False, False]])
    means, counts = label_iou(iou, positive)
    assert counts.tolist() == [2, 0]
    assert means[0, 0] == pytest.approx(0.3) and math.isnan(means[1, 0])


def test_auc_by_hand():
    scores = np.array([[0.1, 0.5], [0.4, 0.5], [0.35, 0.5], [0.8, 0.5]])
    labels = np.array([[0, 0], [0, 0], [1, 0], [1, 0]])
    auc = auc_per_label(scores, labels)
    assert auc[0] == pytest.approx(0.75) and math.isnan(auc[1])


def test_first_argmax_takes_the_lowest_threshold_on_ties():
    assert first_argmax(np.array([0.1, 0.4, 0.4, np.nan])) == 1


def test_upscale_nearest_blocks():
    grid = np.arange(4.0).reshape(2, 2)
    up = upscale_nearest(grid, 4)
    assert up[:2, :2].tolist() == [[0, 0], [0, 0]] and up[3, 3] == 3
    with pytest.raises(ValueError):
        upscale_nearest(grid, 5)
