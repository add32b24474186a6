"""The image index and the shard manifest as the data layer reads them.

* ``results/images/index.parquet``: ``dicom_id, path, split, in_mimic`` and the 10 nullable
  label columns (:func:`read_index`, :func:`index_labels`);
* ``results/images/shards.parquet``: which images the shards hold (:func:`available_images`;
  images skipped as bad input are not in it, :func:`drop_unavailable`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import polars as pl

from gazeloc.errors import DataFormatError
from gazeloc.labels import MODEL_LABELS

log = logging.getLogger(__name__)


def index_labels(frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The 10 label columns as ``labels`` (float32, null → 0) and ``known`` (bool) arrays."""
    missing = [c for c in MODEL_LABELS if c not in frame.columns]
    if missing:
        raise KeyError(f"index has no label column {missing[0]}")
    values = frame.select(MODEL_LABELS)
    known = values.select(pl.all().is_not_null()).to_numpy().astype(bool)
    labels = values.select(pl.all().fill_null(False).cast(pl.Float32)).to_numpy()
    return labels.astype(np.float32), known


def read_index(path: str | Path) -> pl.DataFrame:
    """The image index, checked for the columns the data layer uses."""
    frame = pl.read_parquet(path)
    needed = ("dicom_id", "path", "split", "in_mimic", *MODEL_LABELS)
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DataFormatError(path, "missing column", column=missing[0])
    return frame


def available_images(manifest: str | Path) -> set[str]:
    """The ``dicom_id`` of every image in the shards (from the shard manifest)."""
    return set(pl.read_parquet(manifest, columns=["dicom_id"]).get_column("dicom_id").to_list())


def drop_unavailable(frame: pl.DataFrame, available: set[str], what: str) -> pl.DataFrame:
    """``frame`` without the rows whose ``dicom_id`` is not in ``available`` (logged, naming
    ``what``)."""
    keep = frame.filter(pl.col("dicom_id").is_in(list(available)))
    if keep.height < frame.height:
        log.warning(
            "%d %s image(s) are not in the shards (skipped as bad images?); left out",
            frame.height - keep.height,
            what,
        )
    return keep
