"""Two-level bootstrap over training seeds and test subjects, and paired comparisons.

Every replicate ``b`` draws, independently:

* the seeds: ``n_e`` of an experiment's ``n_e`` seeds with replacement (the draw is made from
  one uniform number per position, shared by every experiment, so two experiments with the
  same seeds get the same seed positions: the comparison is paired);
* the test subjects: ``n`` of the ``n`` test subjects (the union of the MIMIC and REFLACX test
  subjects) with replacement, as a multiplicity ``c_b(subject)`` that weights each of the
  subject's items (images or readings). The same subject draw serves every experiment and seed.

A summary figure of a replicate is computed exactly as the point estimate, with the weights:
per seed and label the weighted AUC (:func:`weighted_auc`) or the weighted mean of the
per-reading IoU (at the validation-chosen threshold) or hit; the mean over labels (labels
without a weighted positive left out); the mean over the drawn seeds. The 95% CI is the 2.5th
and 97.5th percentile of the replicates. For a pair of experiments ``A − B`` the replicate
differences give the CI and the two-sided p-value
``p = min(1, 2·min(P(d ≤ 0), P(d ≥ 0)))`` (the share of replicates on each side of 0), so
that p < 0.05 exactly when the 95% CI excludes 0 (up to ties at 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

BOOTSTRAP_SEED = 20230601
"""The random seed of the replicates (fixed: the tables are reproducible)."""


@dataclass(frozen=True)
class Draws:
    """The replicates' draws: subject multiplicities ``[B, n_subjects]`` and seed uniforms
    ``[B, max_seeds]``."""

    subjects: np.ndarray
    counts: np.ndarray
    uniforms: np.ndarray

    @property
    def n_samples(self) -> int:
        return self.counts.shape[0]

    def weights(self, subjects: np.ndarray) -> np.ndarray:
        """``[B, N]`` weights of items belonging to ``subjects`` ``[N]``."""
        position = np.searchsorted(self.subjects, subjects)
        if subjects.size and (
            position.max() >= self.subjects.size
            or not np.array_equal(self.subjects[position], subjects)
        ):
            raise ValueError("an item's subject is not among the drawn subjects")
        return self.counts[:, position].astype(np.float64)

    def seed_positions(self, n_seeds: int) -> np.ndarray:
        """``[B, n_seeds]`` drawn seed positions in ``0 .. n_seeds − 1``."""
        if n_seeds > self.uniforms.shape[1]:
            raise ValueError(f"{n_seeds} seeds but draws for {self.uniforms.shape[1]}")
        return np.minimum((self.uniforms[:, :n_seeds] * n_seeds).astype(np.int64), n_seeds - 1)


def draw(
    subjects: Sequence[int] | np.ndarray, max_seeds: int, n_samples: int, seed: int = BOOTSTRAP_SEED
) -> Draws:
    """The draws of ``n_samples`` replicates over ``subjects`` and up to ``max_seeds`` seeds."""
    if n_samples < 1:
        raise ValueError("the bootstrap needs at least one sample")
    subjects = np.unique(np.asarray(subjects, dtype=np.int64))
    rng = np.random.default_rng(seed)
    n = subjects.size
    picks = rng.integers(0, max(n, 1), size=(n_samples, n))  # n draws with replacement
    offsets = (np.arange(n_samples) * n)[:, None]
    counts = np.bincount((picks + offsets).reshape(-1), minlength=n_samples * n).reshape(
        n_samples, n
    )
    uniforms = rng.random((n_samples, max(1, max_seeds)))
    return Draws(subjects=subjects, counts=counts, uniforms=uniforms)


def weighted_auc(scores: np.ndarray, positive: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC AUC of ``scores`` ``[N]`` for labels ``positive`` ``[N]`` (bool) under each row of
    ``weights`` ``[B, N]`` (ties count one half): ``Σ_{i pos, j neg} w_i w_j [s_i > s_j] +
    ½[s_i = s_j]`` over ``Σ w_pos · Σ w_neg``; NaN where either sum is 0. With weights 1 it is
    the usual AUC; with integer weights, the AUC of the sample with items repeated."""
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    if scores.size == 0:
        return np.full(weights.shape[0], np.nan)
    order = np.argsort(scores, kind="stable")
    ordered = scores[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    w = weights[:, order]
    pos = np.add.reduceat(w * positive[order], starts, axis=1)
    neg = np.add.reduceat(w * ~positive[order], starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    num = (pos * (below + 0.5 * neg)).sum(axis=1)
    den = pos.sum(axis=1) * neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def label_means(
    values: np.ndarray, labels: np.ndarray, weights: np.ndarray, n_labels: int
) -> np.ndarray:
    """Per label the weighted mean of ``values`` ``[N]`` (items of label ``labels`` ``[N]``,
    integers in ``0 .. n_labels − 1``) under each row of ``weights`` ``[B, N]``: ``[B, K]``,
    NaN where a label has no weight."""
    onehot = np.zeros((values.size, n_labels))
    onehot[np.arange(values.size), labels] = 1.0
    num = weights @ (onehot * np.asarray(values, dtype=np.float64)[:, None])
    den = weights @ onehot
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def mean_over_labels(per_label: np.ndarray) -> np.ndarray:
    """Mean over the last axis, leaving NaN out (NaN where every label is NaN)."""
    finite = np.isfinite(per_label)
    count = finite.sum(axis=-1)
    total = np.where(finite, per_label, 0.0).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def over_seeds(per_seed: np.ndarray, draws: Draws) -> np.ndarray:
    """Replicates ``[B]`` from per-seed replicates ``[S, B]`` (seeds in a fixed order): the
    mean over each replicate's drawn seeds (NaN seeds left out)."""
    per_seed = np.asarray(per_seed, dtype=np.float64)
    picked = np.take_along_axis(per_seed.T, draws.seed_positions(per_seed.shape[0]), axis=1)
    return mean_over_labels(picked)


def percentile_ci(replicates: np.ndarray) -> tuple[float, float]:
    """The 2.5th and 97.5th percentiles of the finite replicates (NaN if there are none)."""
    finite = np.asarray(replicates, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return (float("nan"), float("nan"))
    low, high = np.percentile(finite, [2.5, 97.5])
    return (float(low), float(high))


def paired_test(difference: np.ndarray) -> tuple[float, float, float]:
    """``(ci_low, ci_high, p)`` of replicate differences ``A − B`` (module doc)."""
    d = np.asarray(difference, dtype=np.float64)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return (float("nan"), float("nan"), float("nan"))
    low, high = percentile_ci(d)
    p = min(1.0, 2.0 * min(float(np.mean(d <= 0)), float(np.mean(d >= 0))))
    return (low, high, p)


# --- replicates of the summary figures from the per-item files ------------------------------

METRICS = ("auc", "iou", "hit_rate")


def test_subjects(images, readings) -> np.ndarray:
    """The test subjects of the per-item tables (MIMIC images and REFLACX readings)."""
    parts = [
        frame.get_column("subject_id").drop_nulls().to_numpy()
        for frame in (images, readings)
        if frame.height
    ]
    return np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)


def _seed_auc(frame, draws: Draws, labels: Sequence[str]) -> np.ndarray:
    import polars as pl

    per_label = np.full((draws.n_samples, len(labels)), np.nan)
    known = frame.filter(pl.col("target").is_not_null())
    for k, label in enumerate(labels):
        rows = known.filter(pl.col("label") == label)
        if rows.height:
            per_label[:, k] = weighted_auc(
                rows["probability"].to_numpy(),
                rows["target"].to_numpy() > 0,
                draws.weights(rows["subject_id"].to_numpy()),
            )
    return mean_over_labels(per_label)


def _seed_mean(frame, column: str, draws: Draws, labels: Sequence[str]) -> np.ndarray:
    rank = {label: k for k, label in enumerate(labels)}
    if frame.height == 0:
        return np.full(draws.n_samples, np.nan)
    values = frame[column].cast(float).to_numpy()
    idx = np.asarray([rank[v] for v in frame["label"].to_list()], dtype=np.int64)
    return mean_over_labels(
        label_means(values, idx, draws.weights(frame["subject_id"].to_numpy()), len(labels))
    )


def summary_replicates(
    images,
    readings,
    chosen,
    experiments: Sequence[str],
    draws: Draws,
    labels: Sequence[str],
) -> dict[tuple[str, str], np.ndarray]:
    """``(experiment, metric)`` → ``[B]`` replicates of the summary figure (module doc).

    ``images`` and ``readings``: the test per-item tables; ``chosen``: ``experiment, source,
    label, threshold`` of the reported source with its validation-chosen thresholds."""
    import polars as pl

    out: dict[tuple[str, str], np.ndarray] = {}
    for experiment in experiments:
        pick = chosen.filter(pl.col("experiment") == experiment)
        mine_images = images.filter(pl.col("experiment") == experiment)
        mine_readings = readings.filter(pl.col("experiment") == experiment)
        at_threshold = mine_readings.join(
            pick.select("source", "label", "threshold"),
            on=["source", "label", "threshold"],
            how="inner",
        )
        # the hit rate is threshold-free: every label of the reported source
        on_source = mine_readings.join(pick.select("source").unique(), on="source", how="inner")
        hits = on_source.unique(["seed", "reading_id", "label"], keep="first", maintain_order=True)
        for metric, frame in (("auc", mine_images), ("iou", at_threshold), ("hit_rate", hits)):
            seeds = sorted(set(frame["seed"].to_list()))
            if not seeds:
                continue
            per_seed = []
            for seed in seeds:
                rows = frame.filter(pl.col("seed") == seed)
                if metric == "auc":
                    per_seed.append(_seed_auc(rows, draws, labels))
                else:
                    column = "iou" if metric == "iou" else "hit"
                    per_seed.append(_seed_mean(rows, column, draws, labels))
            out[(experiment, metric)] = over_seeds(np.stack(per_seed), draws)
    return out
