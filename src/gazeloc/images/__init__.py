"""MIMIC-CXR-JPG images: the image list and index, the square frame, HDF5 shards, a reader.

* :mod:`gazeloc.images.index` — the paper's filter, labels, splits; ``dataset_counts``;
* :mod:`gazeloc.images.frame` — one JPEG into the ``S × S`` frame (fast DCT-scaled decoding);
* :mod:`gazeloc.images.shards` — HDF5 shards (one job per shard) and their manifest;
* :class:`ShardDataset` — a PyTorch dataset over the shards (imported lazily: torch is heavy).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gazeloc.images.frame import FrameGeometry, frame_array, frame_geometry, load_frame
from gazeloc.images.shards import shard_of

if TYPE_CHECKING:
    from gazeloc.images.dataset import ShardDataset

__all__ = [
    "FrameGeometry",
    "ShardDataset",
    "frame_array",
    "frame_geometry",
    "load_frame",
    "shard_of",
]


def __getattr__(name: str) -> Any:
    if name == "ShardDataset":
        from gazeloc.images.dataset import ShardDataset

        return ShardDataset
    raise AttributeError(f"module 'gazeloc.images' has no attribute {name!r}")
