"""The data of one training run: MIMIC train (+ the annotated REFLACX train readings) and
MIMIC val, assembled from the data layer (:mod:`gazeloc.datasets`).

What an annotated item supervises, per experiment: :mod:`gazeloc.datasets.annotations`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import torch

from gazeloc.datasets.annotations import AnnotationStore
from gazeloc.datasets.index import available_images, drop_unavailable, index_labels, read_index
from gazeloc.datasets.sets import ImageLabelSet

log = logging.getLogger(__name__)


def annotated_subset(
    readings: pl.DataFrame,
    index: pl.DataFrame,
    fraction: float,
    *,
    how: str = "prefix",
    seed: int = 0,
) -> pl.DataFrame:
    """Keep ``round(fraction · N)`` annotated readings (``training.percentage_annotated``).

    Readings are ordered by image path (the reference's metadata order); ``prefix`` keeps the
    first ones (the reference, the same subset for every seed), ``random`` a seeded random
    subset (depends on the run's seed), still in path order.
    """
    ordered = readings.join(
        index.select("dicom_id", "path"), on="dicom_id", how="left", maintain_order="left"
    ).sort("path", "reading_id", nulls_last=True)
    keep = round(fraction * ordered.height)
    if fraction >= 1 or keep >= ordered.height:
        return ordered.drop("path")
    if how == "prefix":
        chosen = ordered.head(keep)
    elif how == "random":
        generator = torch.Generator().manual_seed(seed)
        rows = torch.randperm(ordered.height, generator=generator)[:keep].sort().values
        chosen = ordered[rows.tolist()]
    else:
        raise ValueError(f"subset must be prefix or random, not {how!r}")
    return chosen.drop("path")


@dataclass
class TrainingData:
    """The training set (MIMIC train, then the annotated train readings) and MIMIC val."""

    train: ImageLabelSet
    val: ImageLabelSet
    binary_maps: bool


def build_data(
    resolved: dict[str, Any],
    *,
    index: str | Path,
    manifest: str | Path,
    heatmaps: str | Path | None = None,
    ellipses: str | Path | None = None,
    seed: int = 0,
) -> TrainingData:
    """Assemble the sets of one experiment (``resolved`` from ``resolve_experiment``)."""
    frame = read_index(index)
    available = available_images(manifest)
    mimic = frame.filter(pl.col("in_mimic"))
    train_u = drop_unavailable(mimic.filter(pl.col("split") == "train"), available, "MIMIC train")
    val = drop_unavailable(mimic.filter(pl.col("split") == "val"), available, "MIMIC val")
    labels_u, known_u = index_labels(train_u)
    store = None
    annotated = None
    annotations = resolved["annotations"]
    if annotations != "none":
        store = AnnotationStore(
            annotations,
            heatmaps=heatmaps,
            ellipses=ellipses,
            label_specific=resolved.get("label_specific_heatmaps", True),
            vanishing_ellipses=resolved.get("training", {}).get("vanishing_ellipses", "negative"),
        )
        readings = store.readings().filter(pl.col("split") == "train")
        readings = drop_unavailable(readings, available, "annotated train")
        training = resolved.get("training", {})
        annotated = annotated_subset(
            readings,
            frame,
            float(training.get("percentage_annotated", 1.0)),
            how=training.get("subset", "prefix"),
            seed=seed,
        )
    train = ImageLabelSet(
        manifest,
        train_u.get_column("dicom_id").to_list(),
        labels_u,
        known_u,
        annotated=annotated,
        store=store,
    )
    labels_v, known_v = index_labels(val)
    val_set = ImageLabelSet(manifest, val.get_column("dicom_id").to_list(), labels_v, known_v)
    log.info(
        "experiment %s: %d MIMIC train + %d annotated train images, %d MIMIC val images",
        resolved.get("experiment"),
        train.n_unannotated,
        train.n_annotated,
        len(val_set),
    )
    return TrainingData(train, val_set, binary_maps=annotations == "ellipse")
