"""Training and validation data: the unannotated MIMIC set and the annotated REFLACX set.

Inputs (design.md "Contracts"):

* ``results/images/index.parquet`` (``dicom_id, path, split, in_mimic`` and the 10 nullable
  label columns) and the shard manifest ``results/images/shards.parquet``; images are read
  with :class:`gazeloc.images.ShardDataset` (uint8 ``1 × S × S``, the square frame);
* ``results/heatmaps/phase3.h5``: one group per reading with ``et`` (``10 × S × S``),
  ``et_labels``, ``report_labels`` (10 bool), ``full_report`` (``S × S``), attributes
  ``split``, ``dicom_id``, ``subject_id``;
* ``results/ellipses/phase3.h5``: per reading ``ellipses`` (``10 × S × S`` bool),
  ``ellipse_labels``, ``ellipse_labels_any`` (10 bool), same attributes.

Both HDF5 files are read directly by that layout (root groups that carry a ``dicom_id``
attribute), opened lazily once per process so that DataLoader workers never share handles.

What an annotated item supervises, per experiment (reference-method.md §5.1, §11):

==========================  ======================  =========================================
annotations                 labels                  maps (``10 × S × S``)
==========================  ======================  =========================================
``et``                      ``report_labels``       ``et``
``et``, not label-specific  ``ellipse_labels_any``  ``full_report`` in each label with an
                                                    ellipse of any certainty, else 0
``ellipse``                 ``ellipse_labels``      ``ellipses``
==========================  ======================  =========================================

A positive ET label whose map is all zero has no localization (all its mentions had empty
windows): that label's annotated term is left out of the loss and the decoder is not trained on
it (design.md quirk table). Every other label of an annotated image is trained on its map,
including negative labels (all cells pushed to negative, reference §7.2).

A positive ellipse label whose ellipses all vanish in the frame (smaller than a pixel at
``images.size``) has an all-zero mask. ``vanishing_ellipses: negative`` (the default, the
reference) trains it like any annotated label, on that all-negative map (grid term and decoder
target); ``skip`` leaves it out of the loss and the decoder, like an ET label without
localization.

Loader items hold raw arrays only (uint8 images, stored maps); conversion, augmentation and
pooling happen on the training device.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from torch.utils.data import Dataset

from gazeloc.errors import DataFormatError
from gazeloc.labels import MODEL_LABELS

log = logging.getLogger(__name__)

N_LABELS = len(MODEL_LABELS)
ATTRIBUTES = ("split", "dicom_id")
LAYOUT = {
    "heatmaps": ("et", "et_labels", "report_labels", "full_report"),
    "ellipses": ("ellipses", "ellipse_labels", "ellipse_labels_any"),
}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class _H5:
    """An HDF5 file opened lazily, once per process (safe across ``fork``)."""

    def __init__(self, path: str | Path, kind: str) -> None:
        self.path = Path(path)
        self.kind = kind
        self._handle: Any = None
        self._pid: int | None = None

    def file(self) -> Any:
        if self._pid != os.getpid() or self._handle is None:
            import h5py

            try:
                import hdf5plugin  # noqa: F401  (compressed datasets)
            except ImportError:  # pragma: no cover
                pass
            self._handle = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._handle

    def group(self, reading_id: str) -> Any:
        f = self.file()
        if reading_id not in f:
            raise DataFormatError(self.path, f"reading {reading_id} has no group")
        return f[reading_id]

    def dataset(self, reading_id: str, name: str) -> np.ndarray:
        group = self.group(reading_id)
        if name not in group:
            raise DataFormatError(self.path, f"group {reading_id} has no dataset '{name}'")
        return group[name][()]

    def readings(self) -> pl.DataFrame:
        """``reading_id, dicom_id, split`` of every reading group, in file order."""
        rows = []
        for name, group in self.file().items():
            if not hasattr(group, "attrs") or "dicom_id" not in group.attrs:
                continue
            missing = [a for a in ATTRIBUTES if a not in group.attrs]
            if missing:
                raise DataFormatError(self.path, f"group {name} lacks attribute '{missing[0]}'")
            absent = [d for d in LAYOUT[self.kind] if d not in group]
            if absent:
                raise DataFormatError(self.path, f"group {name} has no dataset '{absent[0]}'")
            rows.append(
                {
                    "reading_id": name,
                    "dicom_id": _text(group.attrs["dicom_id"]),
                    "split": _text(group.attrs["split"]),
                }
            )
        schema = {"reading_id": pl.String, "dicom_id": pl.String, "split": pl.String}
        return pl.DataFrame(rows, schema=schema)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_handle": None, "_pid": None}


def _bool10(array: np.ndarray, path: Path, reading_id: str, name: str) -> np.ndarray:
    array = np.asarray(array)
    if array.shape != (N_LABELS,):
        raise DataFormatError(path, f"{reading_id}/{name} has shape {array.shape}, not (10,)")
    return array.astype(bool)


class AnnotationStore:
    """The annotation of each REFLACX reading for one experiment (module doc table)."""

    def __init__(
        self,
        annotations: str,
        *,
        heatmaps: str | Path | None = None,
        ellipses: str | Path | None = None,
        label_specific: bool = True,
        vanishing_ellipses: str = "negative",
    ) -> None:
        if vanishing_ellipses not in ("negative", "skip"):
            raise ValueError(
                f"vanishing_ellipses must be negative or skip, not {vanishing_ellipses!r}"
            )
        self.vanishing_ellipses = vanishing_ellipses
        if annotations not in ("et", "ellipse"):
            raise ValueError(f"annotations must be et or ellipse, not {annotations!r}")
        self.annotations = annotations
        self.label_specific = label_specific
        need_heatmaps = annotations == "et"
        need_ellipses = annotations == "ellipse" or not label_specific
        if need_heatmaps and heatmaps is None:
            raise ValueError("the et experiments need the heatmaps file")
        if need_ellipses and ellipses is None:
            raise ValueError("this experiment needs the ellipses file")
        self.heatmaps = _H5(heatmaps, "heatmaps") if need_heatmaps else None
        self.ellipses = _H5(ellipses, "ellipses") if need_ellipses else None
        self.binary = annotations == "ellipse"

    @property
    def main(self) -> _H5:
        return self.heatmaps if self.heatmaps is not None else self.ellipses  # type: ignore[return-value]

    def readings(self) -> pl.DataFrame:
        """``reading_id, dicom_id, split`` of the readings (checked against the second file)."""
        frame = self.main.readings()
        if self.heatmaps is not None and self.ellipses is not None:
            other = set(self.ellipses.readings().get_column("reading_id").to_list())
            absent = [r for r in frame.get_column("reading_id").to_list() if r not in other]
            if absent:
                raise DataFormatError(
                    self.ellipses.path, f"reading {absent[0]} of {self.heatmaps.path} is missing"
                )
        return frame

    def read(self, reading_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``maps`` (``10 × S × S``, stored dtype), ``labels`` and ``localized`` (10 bool)."""
        if self.annotations == "ellipse":
            h5 = self.ellipses
            maps = np.asarray(h5.dataset(reading_id, "ellipses")).astype(bool)
            labels = _bool10(
                h5.dataset(reading_id, "ellipse_labels"), h5.path, reading_id, "ellipse_labels"
            )
            localized = (
                labels
                if self.vanishing_ellipses == "negative"
                else maps.reshape(N_LABELS, -1).any(axis=1)
            )
        elif self.label_specific:
            h5 = self.heatmaps
            maps = np.asarray(h5.dataset(reading_id, "et"))
            labels = _bool10(
                h5.dataset(reading_id, "report_labels"), h5.path, reading_id, "report_labels"
            )
            localized = _bool10(
                h5.dataset(reading_id, "et_labels"), h5.path, reading_id, "et_labels"
            )
        else:
            full = np.asarray(self.heatmaps.dataset(reading_id, "full_report"))
            labels = _bool10(
                self.ellipses.dataset(reading_id, "ellipse_labels_any"),
                self.ellipses.path,
                reading_id,
                "ellipse_labels_any",
            )
            maps = np.where(labels[:, None, None], full[None], np.zeros_like(full)[None])
            localized = labels & bool(np.any(full > 0))
        if maps.ndim != 3 or maps.shape[0] != N_LABELS or maps.shape[1] != maps.shape[2]:
            raise DataFormatError(self.main.path, f"{reading_id}: maps of shape {maps.shape}")
        return maps, labels, localized


def index_labels(frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The 10 label columns as ``labels`` (float32, null → 0) and ``known`` (bool) arrays."""
    missing = [c for c in MODEL_LABELS if c not in frame.columns]
    if missing:
        raise KeyError(f"index has no label column {missing[0]}")
    values = frame.select(MODEL_LABELS)
    known = values.select(pl.all().is_not_null()).to_numpy().astype(bool)
    labels = values.select(pl.all().fill_null(False).cast(pl.Float32)).to_numpy()
    return labels.astype(np.float32), known


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
        from gazeloc.images import ShardDataset

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


def read_index(path: str | Path) -> pl.DataFrame:
    frame = pl.read_parquet(path)
    needed = ("dicom_id", "path", "split", "in_mimic", *MODEL_LABELS)
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DataFormatError(path, "missing column", column=missing[0])
    return frame


def _available(manifest: str | Path) -> set[str]:
    return set(pl.read_parquet(manifest, columns=["dicom_id"]).get_column("dicom_id").to_list())


def _drop_unavailable(frame: pl.DataFrame, available: set[str], what: str) -> pl.DataFrame:
    keep = frame.filter(pl.col("dicom_id").is_in(list(available)))
    if keep.height < frame.height:
        log.warning(
            "%d %s image(s) are not in the shards (skipped as bad images?); left out",
            frame.height - keep.height,
            what,
        )
    return keep


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
    available = _available(manifest)
    mimic = frame.filter(pl.col("in_mimic"))
    train_u = _drop_unavailable(mimic.filter(pl.col("split") == "train"), available, "MIMIC train")
    val = _drop_unavailable(mimic.filter(pl.col("split") == "val"), available, "MIMIC val")
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
        readings = _drop_unavailable(readings, available, "annotated train")
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
