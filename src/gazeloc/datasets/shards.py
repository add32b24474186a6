"""``ShardDataset``: a PyTorch dataset of framed images read from the HDF5 shards.

Built from the shard manifest (``results/images/shards.parquet``: where each ``dicom_id`` is);
HDF5 files are opened lazily, once per process, on the first item a process reads — never in
``__init__`` and never shared across a ``fork`` — so it is safe with any number of DataLoader
workers and with both ``fork`` and ``spawn``.

Items are dicts: ``image`` (``torch.uint8``, shape ``1 × S × S``, the square frame), ``dicom_id``
(str) and ``index`` (int, the item's position in the dataset). ``order="given"`` keeps the
requested order (random access for a shuffling sampler); ``order="shard"`` sorts the items by
shard and row, so that iterating in order reads each file front to back (evaluation, export,
cold caches).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from torch.utils.data import Dataset

log = logging.getLogger(__name__)

ORDERS = ("given", "shard")


class ShardDataset(Dataset):
    """Framed uint8 images from HDF5 shards (module doc).

    Parameters: ``manifest`` — the shard manifest parquet; ``dicom_ids`` — the images to serve,
    in this order (default: every image in the manifest); ``order`` — ``"given"`` or
    ``"shard"``; ``missing`` — what to do with requested ids that are not in the shards (e.g.
    images skipped as bad input): ``"error"`` (default) or ``"drop"`` (logged).
    """

    def __init__(
        self,
        manifest: str | Path,
        dicom_ids: Sequence[str] | None = None,
        *,
        order: str = "given",
        missing: str = "error",
    ) -> None:
        if order not in ORDERS:
            raise ValueError(f"order must be one of {', '.join(ORDERS)}, not {order!r}")
        if missing not in ("error", "drop"):
            raise ValueError(f"missing must be 'error' or 'drop', not {missing!r}")
        manifest = Path(manifest)
        table = pl.read_parquet(manifest, columns=["dicom_id", "file", "row"])
        files = sorted(table.get_column("file").unique().to_list())
        self.files: tuple[Path, ...] = tuple((manifest.parent / f).resolve() for f in files)
        file_index = {f: i for i, f in enumerate(files)}
        table = table.with_columns(
            pl.col("file").replace_strict(file_index, return_dtype=pl.Int32).alias("_file")
        )
        if dicom_ids is not None:
            wanted = pl.DataFrame({"dicom_id": list(dicom_ids)}, schema={"dicom_id": pl.String})
            dup = wanted.get_column("dicom_id").is_duplicated()
            if dup.any():
                raise ValueError(f"dicom_id {wanted['dicom_id'][int(dup.arg_true()[0])]} twice")
            table = wanted.join(table, on="dicom_id", how="left", maintain_order="left")
            absent = table.filter(pl.col("row").is_null())
            if absent.height:
                message = (
                    f"{absent.height} requested image(s) are not in the shards of {manifest} "
                    f"(first: {absent['dicom_id'][0]}); see skipped.csv"
                )
                if missing == "error":
                    raise KeyError(message)
                log.warning("%s; dropped", message)
                table = table.filter(pl.col("row").is_not_null())
        if order == "shard":
            table = table.sort("_file", "row")
        self.order = order
        self.dicom_ids: tuple[str, ...] = tuple(table.get_column("dicom_id").to_list())
        self._file = table.get_column("_file").to_numpy().astype(np.int32)
        self._row = table.get_column("row").to_numpy().astype(np.int64)
        self._handles: dict[int, Any] = {}
        self._pid: int | None = None

    def __len__(self) -> int:
        return len(self.dicom_ids)

    def _dataset(self, file: int):
        pid = os.getpid()
        if self._pid != pid:  # first use in this process (or a forked child): fresh handles
            self._handles = {}
            self._pid = pid
        dset = self._handles.get(file)
        if dset is None:
            import hdf5plugin  # noqa: F401  (registers the Blosc filter)

            from gazeloc.h5 import open_h5

            handle = open_h5(self.files[file], "r")
            dset = self._handles[file] = handle["images"]
        return dset

    def read(self, index: int) -> np.ndarray:
        """The ``S × S`` uint8 frame of item ``index`` (numpy; no torch needed)."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        return self._dataset(int(self._file[index]))[int(self._row[index])]

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = int(index)
        image = self.read(index)
        return {
            "image": torch.from_numpy(image).unsqueeze(0),
            "dicom_id": self.dicom_ids[index],
            "index": index if index >= 0 else index + len(self),
        }

    def close(self) -> None:
        """Close the HDF5 files this process opened (they reopen on the next read)."""
        for dset in self._handles.values():
            dset.file.close()
        self._handles = {}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_handles"] = {}
        state["_pid"] = None
        return state

    def __del__(self) -> None:
        try:
            if self._pid == os.getpid():
                self.close()
        except Exception:  # interpreter shutdown
            pass

    @classmethod
    def from_index(
        cls,
        index: str | Path,
        manifest: str | Path,
        *,
        split: str | None = None,
        subset: str = "mimic",
        order: str = "given",
        missing: str = "error",
    ) -> ShardDataset:
        """The images of one ``split`` (``train``/``val``/``test``, None = all) of a set.

        ``subset`` is ``"mimic"`` (the unannotated set, ``in_mimic``), ``"reflacx"`` (images
        with a phase-3 reading, ``in_reflacx``) or ``"all"``; items follow the index's order.
        """
        frame = pl.read_parquet(index, columns=["dicom_id", "split", "in_mimic", "in_reflacx"])
        if subset == "mimic":
            frame = frame.filter(pl.col("in_mimic"))
        elif subset == "reflacx":
            frame = frame.filter(pl.col("in_reflacx"))
        elif subset != "all":
            raise ValueError(f"subset must be mimic, reflacx or all, not {subset!r}")
        if split is not None:
            frame = frame.filter(pl.col("split") == split)
        return cls(manifest, frame.get_column("dicom_id").to_list(), order=order, missing=missing)


def manifest_image_settings(manifest: str | Path) -> dict[str, Any]:
    """The frame settings the shards of a manifest were made with (their attributes):
    ``size``, ``dct_scaling``, ``resample``; what ``gazeloc predict`` must repeat. Shards
    without those attributes (written by other tools) give the image side and
    ``dct_scaling`` None (not recorded)."""
    from gazeloc.h5 import open_h5

    manifest = Path(manifest)
    files = pl.read_parquet(manifest, columns=["file"]).get_column("file").unique().sort()
    if files.is_empty():
        raise ValueError(f"{manifest}: no shard files listed")
    with open_h5(manifest.parent / files[0], "r") as f:
        attrs = dict(f.attrs)
        side = int(f["images"].shape[-1])
    dct = attrs.get("dct_scaling")
    return {
        "size": int(attrs.get("size", side)),
        "dct_scaling": None if dct is None else bool(dct),
        "resample": str(attrs.get("resample", "")),
    }
