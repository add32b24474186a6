"""The REFLACX annotation stores: eye-tracking heatmaps and ellipses, per experiment.

Inputs (docs/outputs.md):

* ``results/heatmaps/phase3.h5``: one group per reading with ``et`` (``10 × S × S``),
  ``et_labels``, ``report_labels`` (10 bool), ``full_report`` (``S × S``), attributes
  ``split``, ``dicom_id``, ``subject_id``;
* ``results/ellipses/phase3.h5``: per reading ``ellipses`` (``10 × S × S`` bool),
  ``ellipse_labels``, ``ellipse_labels_any`` (10 bool), same attributes.

Both HDF5 files are read directly by that layout (root groups that carry a ``dicom_id``
attribute), opened lazily once per process so that DataLoader workers never share handles.

What an annotated item supervises, per experiment (docs/method.md#experiments):

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
it (docs/method.md#losses). Every other label of an annotated image is trained on its map,
including negative labels (all cells pushed to negative, docs/method.md#losses).

A positive ellipse label whose ellipses all vanish in the frame (smaller than a pixel at
``images.size``) has an all-zero mask. ``vanishing_ellipses: negative`` (the default, the
reference) trains it like any annotated label, on that all-negative map (grid term and decoder
target); ``skip`` leaves it out of the loss and the decoder, like an ET label without
localization.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from gazeloc.errors import DataFormatError
from gazeloc.labels import MODEL_LABELS

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
            from gazeloc.h5 import open_h5

            try:
                import hdf5plugin  # noqa: F401  (compressed datasets)
            except ImportError:  # pragma: no cover
                pass
            self._handle = open_h5(self.path, "r")
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
