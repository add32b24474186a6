"""Evaluation metrics: confidence intervals over seeds, AUC, and IoU at many thresholds at once.

Conventions (docs/method.md#evaluation): IoU compares a heatmap upscaled to the square frame by
nearest neighbour with the ellipse mask of the label; the prediction is ``map > threshold``
(strict); 0/0 counts as 0; a label's IoU is the mean over images whose label is positive.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

REFERENCE_THRESHOLDS: tuple[float, ...] = (
    0.0,
    0.001,
    0.01,
    0.025,
    0.05,
    *(round(0.05 * k, 2) for k in range(2, 20)),
    0.975,
    0.99,
    0.999,
)
"""The reference's 26 thresholds: 0, 0.001, 0.01, 0.025, 0.05, 0.1 ... 0.95, 0.975, 0.99, 0.999."""

CI_METHODS = ("t", "normal_pop")


def mean_ci(values: Sequence[float], method: str = "t") -> tuple[float, float, float]:
    """Mean and 95% confidence interval over seeds: ``(mean, low, high)``.

    ``"t"``: Student-t interval with the sample SD and n-1 degrees of freedom.
    ``"normal_pop"``: the reference's mean ± 1.96·SD₀/√n (population SD). With fewer than two
    values the bounds are NaN.
    """
    if method not in CI_METHODS:
        raise ValueError(f"unknown CI method {method!r} (one of {', '.join(CI_METHODS)})")
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return (math.nan, math.nan, math.nan)
    mean = float(v.mean())
    if v.size < 2:
        return (mean, math.nan, math.nan)
    if method == "t":
        half = float(stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    else:
        half = float(1.96 * v.std(ddof=0) / math.sqrt(v.size))
    return (mean, mean - half, mean + half)


def auc_per_label(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """ROC AUC per label (columns); NaN where a label has no positive or no negative.

    ``scores`` and ``labels`` are (N, K); labels are 0/1.
    """
    from sklearn.metrics import roc_auc_score

    scores = np.asarray(scores, dtype=float)
    labels = np.asarray(labels).astype(bool)
    out = np.full(scores.shape[1], np.nan)
    for k in range(scores.shape[1]):
        y = labels[:, k]
        if y.any() and not y.all():
            out[k] = roc_auc_score(y, scores[:, k])
    return out


def upscale_nearest(maps: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour upscaling of (..., G, G) maps to (..., size, size), size = m·G."""
    g = maps.shape[-1]
    if size % g:
        raise ValueError(f"frame size {size} is not a multiple of the map size {g}")
    f = size // g
    return np.repeat(np.repeat(maps, f, axis=-2), f, axis=-1)


def iou_at_thresholds(
    maps: np.ndarray, masks: np.ndarray, thresholds: Sequence[float] = REFERENCE_THRESHOLDS
) -> np.ndarray:
    """IoU of ``maps > t`` with ``masks`` for every threshold t, computed all at once.

    ``maps`` (..., H, W) float and ``masks`` (..., H, W) bool of the same shape. Returns
    (..., T). Each map's values are sorted once and counted against all thresholds with a
    binary search, so the cost does not grow with the number of thresholds. 0/0 gives 0.
    """
    maps = np.asarray(maps, dtype=np.float64)
    masks = np.asarray(masks, dtype=bool)
    if maps.shape != masks.shape:
        raise ValueError(f"maps {maps.shape} and masks {masks.shape} differ in shape")
    t = np.asarray(thresholds, dtype=np.float64)
    lead = maps.shape[:-2]
    flat_maps = maps.reshape(-1, maps.shape[-2] * maps.shape[-1])
    flat_masks = masks.reshape(flat_maps.shape)
    out = np.zeros((flat_maps.shape[0], t.size))
    for i in range(flat_maps.shape[0]):
        values = flat_maps[i]
        inside = np.sort(values[flat_masks[i]])
        every = np.sort(values)
        n_true = inside.size
        predicted = every.size - np.searchsorted(every, t, side="right")
        hit = n_true - np.searchsorted(inside, t, side="right")
        union = predicted + n_true - hit
        out[i] = np.divide(hit, union, out=np.zeros(t.size), where=union > 0)
    return out.reshape(*lead, t.size)


def label_iou(iou: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-label IoU averaged over positive images only.

    ``iou`` (N, K, T) and ``positive`` (N, K) bool. Returns (K, T) means (NaN for labels with
    no positive image) and (K,) positive counts.
    """
    positive = np.asarray(positive, dtype=bool)
    counts = positive.sum(axis=0)
    sums = (iou * positive[..., None]).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts[:, None]
    means[counts == 0] = np.nan
    return means, counts


def first_argmax(values: np.ndarray) -> int:
    """Index of the first maximum (ties go to the lowest threshold), ignoring NaN."""
    values = np.asarray(values, dtype=float)
    if np.all(np.isnan(values)):
        raise ValueError("all values are NaN")
    return int(np.nanargmax(values))
