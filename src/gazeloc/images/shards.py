"""HDF5 image shards: every listed image in the square frame, uint8, one chunk per image.

Rows of the image list go to shard ``blake2b(dicom_id) mod n_shards`` (:func:`shard_of`: a
stable hash, the same on every machine and Python run), so a shard's content depends only on
its images, and shards are independent jobs.

Shard file layout (``shard-{i:03d}-of-{n:03d}.h5``):

* ``images`` — ``(N, S, S)`` uint8, chunks ``(1, S, S)`` (one image per chunk), compressed as
  the ``compression`` attribute says (default Blosc LZ4HC via hdf5plugin; see
  :data:`COMPRESSIONS` and ``bench/RESULTS.md`` for the measured trade-off);
* ``dicom_id`` — ``(N,)`` ASCII; ``split`` — ``(N,)`` ASCII, the *official* MIMIC-CXR-JPG split
  (``train`` / ``validate`` / ``test``). The study split (``train`` / ``val`` / ``test``) also
  depends on the validation-subjects list and lives in ``index.parquet`` and the manifest, so
  that changing the list never redoes the shards;
* ``width``, ``height`` — ``(N,)`` int32, the original size in pixels;
* attributes: the preprocessing parameters (``size``, ``resample``, ``rounding``, ``padding``,
  ``dct_scaling``, ``compression``, ``shard``, ``n_shards``, ``hash``, versions) and counts.

Files are written to a temporary name and renamed (nothing half-written). Bad images
(missing, empty, truncated, corrupt, not 8-bit grayscale, size unlike the metadata) stop the
job with an error naming the file, or with ``on_bad_image="skip"`` are left out and listed in
the shard's ``.skipped.csv`` (merged by :func:`merge_shards` into ``skipped.csv``).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import polars as pl
from tqdm import tqdm

from gazeloc.errors import DataFormatError
from gazeloc.h5 import open_h5
from gazeloc.images.frame import RESAMPLE, load_frame
from gazeloc.ioutil import atomic_path, atomic_write_text, ensure_space

log = logging.getLogger(__name__)

COMPRESSIONS = ("none", "lzf", "gzip", "blosc-lz4", "blosc-lz4hc")
"""Choices for ``images.compression``; ``blosc-*`` need the hdf5plugin package."""
DEFAULT_COMPRESSION = "blosc-lz4hc"
BAD_IMAGE_CHOICES = ("fail", "skip")
HASH = "blake2b(dicom_id, digest_size=8), big-endian integer, mod n_shards"
SKIPPED_SCHEMA = {"shard": pl.Int64, "dicom_id": pl.String, "path": pl.String, "reason": pl.String}
"""Columns of the skipped-images CSVs (per shard and merged)."""
MANIFEST_SCHEMA = {
    "dicom_id": pl.String,
    "shard": pl.Int64,
    "file": pl.String,
    "row": pl.Int64,
    "official_split": pl.String,
}
"""Columns of the shard manifest: where each image is (``file`` relative to the manifest)."""


def shard_of(dicom_id: str, n_shards: int) -> int:
    """The shard of an image: a stable hash of its ``dicom_id`` (never Python's ``hash``)."""
    digest = hashlib.blake2b(dicom_id.encode("ascii"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % n_shards


def shard_name(shard: int, n_shards: int) -> str:
    """File name of a shard: ``shard-{shard:03d}-of-{n_shards:03d}.h5``."""
    return f"shard-{shard:03d}-of-{n_shards:03d}.h5"


def shard_rows(images: pl.DataFrame, shard: int, n_shards: int) -> pl.DataFrame:
    """The image-list rows of one shard, in list order."""
    if not 0 <= shard < n_shards:
        raise ValueError(f"shard {shard} is not in 0..{n_shards - 1}")
    ids = images.get_column("dicom_id").to_list()
    mask = pl.Series([shard_of(d, n_shards) == shard for d in ids], dtype=pl.Boolean)
    return images.filter(mask)


def compression_options(name: str) -> dict[str, Any]:
    """``h5py.Group.create_dataset`` keyword arguments of a compression choice."""
    if name == "none":
        return {}
    if name == "lzf":
        return {"compression": "lzf"}
    if name == "gzip":
        return {"compression": "gzip", "compression_opts": 1}
    if name in ("blosc-lz4", "blosc-lz4hc"):
        import hdf5plugin

        cname = name.removeprefix("blosc-")
        level = 1 if cname == "lz4hc" else 5
        return dict(hdf5plugin.Blosc(cname=cname, clevel=level, shuffle=hdf5plugin.Blosc.NOSHUFFLE))
    raise ValueError(f"compression must be one of {', '.join(COMPRESSIONS)}, not {name!r}")


def compression_description(name: str) -> str:
    return {
        "none": "none",
        "lzf": "lzf",
        "gzip": "gzip level 1",
        "blosc-lz4": "Blosc LZ4 level 5, no shuffle (hdf5plugin)",
        "blosc-lz4hc": "Blosc LZ4HC level 1, no shuffle (hdf5plugin)",
    }[name]


LIBVER = ("v110", "v110")
"""HDF5 file format bounds: 1.10 features (fast chunk index), readable by HDF5 >= 1.10."""


def create_images_dataset(f: h5py.File, n: int, size: int, compression: str) -> h5py.Dataset:
    """The ``images`` dataset: ``(n, size, size)`` uint8, one chunk per image, resizable."""
    return f.create_dataset(
        "images",
        shape=(n, size, size),
        maxshape=(None, size, size),
        dtype=np.uint8,
        chunks=(1, size, size),
        track_times=False,
        **compression_options(compression),
    )


@dataclass(frozen=True)
class ShardSummary:
    """What one shard job wrote."""

    shard: int
    n_shards: int
    n_images: int
    skipped: tuple[tuple[str, str, str], ...]
    """``(dicom_id, path, reason)`` of every image left out."""


def _bounded_map(
    pool: ThreadPoolExecutor | None, fn, items: Sequence[Any], window: int
) -> Iterator[Any]:
    """Ordered results of ``fn`` over ``items``, at most ``window`` in flight."""
    if pool is None:
        for item in items:
            yield _call(fn, item)
        return
    pending: deque[Future] = deque()
    for item in items:
        pending.append(pool.submit(_call, fn, item))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _call(fn, item):
    try:
        return fn(item)
    except DataFormatError as exc:
        return exc


def write_shard(
    images: pl.DataFrame,
    mimic_root: str | Path,
    out: str | Path,
    skipped_out: str | Path | None = None,
    *,
    shard: int = 0,
    n_shards: int = 1,
    size: int = 512,
    compression: str = DEFAULT_COMPRESSION,
    dct_scaling: bool = True,
    on_bad_image: str = "fail",
    workers: int = 1,
    progress: bool = True,
) -> ShardSummary:
    """Write one shard of the image list (module doc) and, if given, its skipped-images CSV.

    ``images`` is the image list (``dicom_id, path, width, height, official_split``); only the
    rows of ``shard`` are written. ``workers`` > 1 decodes in threads (Pillow releases the GIL
    while decoding and resizing). Raises :class:`~gazeloc.errors.DataFormatError` at the first
    bad image unless ``on_bad_image="skip"``.
    """
    if on_bad_image not in BAD_IMAGE_CHOICES:
        raise ValueError(f"on_bad_image must be fail or skip, not {on_bad_image!r}")
    compression_options(compression)  # fail early on a bad choice
    rows = shard_rows(images, shard, n_shards)
    root = Path(mimic_root)
    jobs = [
        (r["dicom_id"], root / r["path"], (int(r["width"]), int(r["height"])))
        for r in rows.iter_rows(named=True)
    ]

    def load(job: tuple[str, Path, tuple[int, int]]) -> np.ndarray:
        _, path, expect = job
        return load_frame(path, size, dct_scaling=dct_scaling, expect_size=expect)

    kept: list[int] = []
    skipped: list[tuple[str, str, str]] = []
    n = len(jobs)
    with atomic_path(out) as tmp, open_h5(tmp, "w", libver=LIBVER) as f:
        dset = create_images_dataset(f, n, size, compression)
        pool = ThreadPoolExecutor(max_workers=workers) if workers > 1 else None
        try:
            results = _bounded_map(pool, load, jobs, window=4 * max(1, workers))
            bar = tqdm(
                zip(jobs, results, strict=True),
                total=n,
                desc=f"shard {shard}/{n_shards}",
                unit="img",
                disable=not progress,
            )
            for i, ((dicom_id, path, _), result) in enumerate(bar):
                if isinstance(result, DataFormatError):
                    if on_bad_image == "fail":
                        raise result
                    log.warning("skipped image %s: %s", dicom_id, result)
                    skipped.append((dicom_id, str(path), result.reason))
                    continue
                if len(kept) % 64 == 0:
                    ensure_space(out, 64 * result.nbytes)
                dset[len(kept)] = result
                kept.append(i)
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        dset.resize(len(kept), axis=0)
        chosen = rows[kept] if kept else rows.clear()
        f.create_dataset("dicom_id", data=np.array(chosen["dicom_id"].to_list(), dtype="S"))
        f.create_dataset(
            "split", data=np.array(chosen["official_split"].to_list(), dtype="S8")
        ).attrs["description"] = (
            "official MIMIC-CXR-JPG split (train/validate/test); the study split "
            "(train/val/test) is in index.parquet"
        )
        f.create_dataset("width", data=chosen["width"].to_numpy().astype(np.int32))
        f.create_dataset("height", data=chosen["height"].to_numpy().astype(np.int32))
        f.attrs.update(shard_attributes(size, compression, dct_scaling, shard, n_shards))
        f.attrs["n_images"] = len(kept)
        f.attrs["n_skipped"] = len(skipped)
        f.attrs["on_bad_image"] = on_bad_image
    if skipped_out is not None:
        frame = pl.DataFrame(
            [(shard, *s) for s in skipped],
            schema=SKIPPED_SCHEMA,
            orient="row",
        )
        atomic_write_text(skipped_out, frame.write_csv())
    log.info("shard %d of %d: %d images, %d skipped", shard, n_shards, len(kept), len(skipped))
    return ShardSummary(shard, n_shards, len(kept), tuple(skipped))


def shard_attributes(
    size: int, compression: str, dct_scaling: bool, shard: int, n_shards: int
) -> dict[str, Any]:
    """The preprocessing parameters stored on every shard file."""
    import PIL
    from PIL import features

    import gazeloc

    return {
        "size": size,
        "frame": "scale s = size / max(W, H); w = round(W*s), h = round(H*s); zero padding "
        "left = (size - w) // 2, top = (size - h) // 2",
        "resample": RESAMPLE,
        "rounding": "nearest (Pillow 8-bit resampling)",
        "dct_scaling": bool(dct_scaling),
        "dct_scaling_rule": "JPEGs at least twice the resized size are decoded at the largest "
        "DCT scale (1/2, 1/4, 1/8) that keeps them at least w x h, then resized with the "
        "original extent as the resize box",
        "compression": compression,
        "compression_detail": compression_description(compression),
        "shard": shard,
        "n_shards": n_shards,
        "hash": HASH,
        "gazeloc_version": getattr(gazeloc, "__version__", "") or "",
        "pillow_version": PIL.__version__,
        "libjpeg_turbo_version": features.version("jpg") or "",
    }


def merge_shards(
    shard_files: Sequence[str | Path],
    skipped_files: Sequence[str | Path],
    manifest_out: str | Path,
    skipped_out: str | Path,
) -> pl.DataFrame:
    """Write the manifest (``dicom_id, shard, file, row, official_split``) and ``skipped.csv``.

    ``file`` is the shard's path relative to the manifest's folder. The shard files must be one
    complete set (the same ``n_shards``, each shard once).
    """
    manifest_dir = Path(manifest_out).parent.resolve()
    parts = []
    seen: dict[int, Path] = {}
    n_total = None
    for path in shard_files:
        path = Path(path)
        with open_h5(path, "r") as f:
            shard, n = int(f.attrs["shard"]), int(f.attrs["n_shards"])
            ids = [v.decode("ascii") for v in f["dicom_id"][()]]
            splits = [v.decode("ascii") for v in f["split"][()]]
        if n_total is None:
            n_total = n
        if n != n_total or shard in seen:
            raise DataFormatError(path, f"not part of one set of {n_total} shards")
        seen[shard] = path
        rel = Path(os.path.relpath(path.resolve(), manifest_dir)).as_posix()
        parts.append(
            pl.DataFrame(
                {
                    "dicom_id": ids,
                    "shard": [shard] * len(ids),
                    "file": [rel] * len(ids),
                    "row": list(range(len(ids))),
                    "official_split": splits,
                },
                schema=MANIFEST_SCHEMA,
            )
        )
    if n_total is not None and len(seen) != n_total:
        missing = sorted(set(range(n_total)) - set(seen))
        raise ValueError(f"shards missing from the set of {n_total}: {missing}")
    manifest = pl.concat(parts) if parts else pl.DataFrame(schema=MANIFEST_SCHEMA)
    skipped = [pl.read_csv(p, schema=SKIPPED_SCHEMA) for p in skipped_files]
    skipped = [s for s in skipped if s.height]
    merged = (
        pl.concat(skipped).sort("shard", "dicom_id")
        if skipped
        else pl.DataFrame(schema=SKIPPED_SCHEMA)
    )
    with atomic_path(manifest_out) as tmp:
        manifest.write_parquet(tmp)
    atomic_write_text(skipped_out, merged.write_csv())
    log.info("%d images in %d shards; %d skipped", manifest.height, len(seen), merged.height)
    return manifest
