"""Labelled image sets for training and evaluation, and the batch collation.

Images come from the shards (:class:`gazeloc.datasets.shards.ShardDataset`: uint8 ``S × S``,
the square frame), labels from the index (:mod:`gazeloc.datasets.index`) or, for annotated
readings, from an :class:`gazeloc.datasets.annotations.AnnotationStore`.

Loader items hold raw arrays only (uint8 images, stored maps); conversion, augmentation and
pooling happen on the device of the job that reads them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch
from torch.utils.data import Dataset

from gazeloc.datasets.annotations import N_LABELS, AnnotationStore
from gazeloc.datasets.shards import ShardDataset
from gazeloc.errors import DataFormatError


@dataclass
class Item:
    """One training or validation example (raw; see :func:`collate`)."""

    image: np.ndarray  # uint8 S × S
    labels: np.ndarray  # float32 [10]
    known: np.ndarray  # bool [10]: the label takes part in the loss / AUC
    maps: np.ndarray | None = None  # annotated items only


class ImageLabelSet(Dataset):
    """Images from the shards with labels (``labels``, ``known``: one row per ``dicom_ids``
    entry), optionally followed by annotated readings whose labels come from ``store``."""

    def __init__(
        self,
        manifest: str | Path,
        dicom_ids: Sequence[str],
        labels: np.ndarray,
        known: np.ndarray,
        *,
        annotated: pl.DataFrame | None = None,
        store: AnnotationStore | None = None,
    ) -> None:
        annotated_ids = [] if annotated is None else annotated.get_column("dicom_id").to_list()
        unique = list(dict.fromkeys([*dicom_ids, *annotated_ids]))
        self.images = ShardDataset(manifest, unique)
        position = {d: i for i, d in enumerate(unique)}
        self.n_unannotated = len(dicom_ids)
        if labels.shape != (len(dicom_ids), N_LABELS) or known.shape != labels.shape:
            raise ValueError(
                f"labels {labels.shape} / known {known.shape} for {len(dicom_ids)} images"
            )
        self._image_rows = np.array(
            [position[d] for d in dicom_ids] + [position[d] for d in annotated_ids], dtype=np.int64
        )
        self.labels = labels.astype(np.float32)
        self.known = known.astype(bool)
        self.reading_ids = [] if annotated is None else annotated.get_column("reading_id").to_list()
        self.store = store
        self.dicom_ids = [*dicom_ids, *annotated_ids]

    def __len__(self) -> int:
        return len(self._image_rows)

    @property
    def n_annotated(self) -> int:
        return len(self.reading_ids)

    def __getitem__(self, index: int) -> Item:
        image = np.asarray(self.images.read(int(self._image_rows[index])))
        if index < self.n_unannotated:
            return Item(image, self.labels[index], self.known[index])
        assert self.store is not None
        maps, labels, localized = self.store.read(self.reading_ids[index - self.n_unannotated])
        if maps.shape[-1] != image.shape[-1]:
            raise DataFormatError(
                self.store.main.path,
                f"maps are {maps.shape[-1]} px but images are {image.shape[-1]} px "
                "(images.size must match)",
            )
        known = ~(labels & ~localized)
        return Item(image, labels.astype(np.float32), known, maps)


def collate(items: list[Item]) -> dict[str, torch.Tensor]:
    """Stack a batch: ``images`` uint8 ``[B, 1, S, S]``, ``labels`` float ``[B, K]``, ``known``
    bool ``[B, K]``, ``annotated`` bool ``[B]``, ``maps`` ``[A, K, S, S]`` of the annotated
    items and their batch positions ``map_index`` ``[A]``."""
    images = torch.from_numpy(np.stack([it.image for it in items]))[:, None]
    labels = torch.from_numpy(np.stack([it.labels for it in items]))
    known = torch.from_numpy(np.stack([it.known for it in items]))
    annotated = torch.tensor([it.maps is not None for it in items])
    with_maps = [it.maps for it in items if it.maps is not None]
    if with_maps:
        stacked = np.stack(with_maps)
        if stacked.dtype == np.float64:
            stacked = stacked.astype(np.float32)
        maps = torch.from_numpy(stacked)
    else:
        size = images.shape[-1]
        maps = torch.zeros((0, N_LABELS, size, size), dtype=torch.float16)
    return {
        "images": images,
        "labels": labels,
        "known": known,
        "annotated": annotated,
        "maps": maps,
        "map_index": torch.nonzero(annotated).flatten(),
    }
