"""MIMIC-CXR-JPG images: the image list and index, the square frame, HDF5 shards.

* :mod:`gazeloc.images.index` — the paper's filter, labels, splits; ``dataset_counts``;
* :mod:`gazeloc.images.frame` — one JPEG into the ``S × S`` frame (fast DCT-scaled decoding);
* :mod:`gazeloc.images.shards` — HDF5 shards (one job per shard) and their manifest.

The shards are read back by the data layer (:class:`gazeloc.datasets.shards.ShardDataset`).
"""

from __future__ import annotations

from gazeloc.images.frame import FrameGeometry, frame_array, frame_geometry, load_frame
from gazeloc.images.shards import shard_of

__all__ = [
    "FrameGeometry",
    "frame_array",
    "frame_geometry",
    "load_frame",
    "shard_of",
]
